"""LibriSpeech (Panayotov et al., ICASSP 2015; OpenSLR resource 12; CC BY 4.0).

Read English audiobooks, 16 kHz FLAC, laid out as
``<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac``.

Protocol (speaker verification): the UBM is trained on ``train-clean-100`` (251 speakers);
evaluation on ``test-clean`` (40 speakers): each speaker enrolled on its first 5 utterances
(sorted ids), every other utterance tested against every test speaker.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._io import write_text_atomic
from ..datadir import DataDir, write_enroll_map
from ..errors import SpeakerGMMError
from ._protocol import enroll_test_split, write_data_dirs, write_trials_all_vs_all

__all__ = ["prepare_librispeech", "SUBSETS"]

SUBSETS = {"ubm": "train-clean-100", "eval": "test-clean"}
ENROLL_UTTERANCES = 5


def _scan(root: Path, subset: str) -> DataDir:
    folder = root / subset
    if not folder.is_dir():
        raise SpeakerGMMError(f"{root}: no {subset}/ folder; point at the LibriSpeech root "
                              f"(the folder that holds {', '.join(SUBSETS.values())})")
    wav, utt2spk = {}, {}
    for path in sorted(folder.glob("*/*/*.flac")):
        spk = path.parent.parent.name
        wav[path.stem] = str(path.relative_to(root))
        utt2spk[path.stem] = spk
    if not wav:
        raise SpeakerGMMError(f"{folder}: no <speaker>/<chapter>/*.flac files")
    return DataDir(wav_scp=wav, utt2spk=utt2spk)


def prepare_librispeech(corpus_root: str | os.PathLike,
                        output_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``ubm/``, ``enroll/``, ``test/``, ``enroll_map`` and ``trials``."""
    root, out = Path(corpus_root), Path(output_dir)
    ubm = _scan(root, SUBSETS["ubm"])
    evaluation = _scan(root, SUBSETS["eval"])
    enroll, test, enroll_map = enroll_test_split(evaluation, ENROLL_UTTERANCES)
    written = write_data_dirs(out, {"ubm": ubm, "enroll": enroll, "test": test}, root)
    write_enroll_map(out / "enroll_map", enroll_map)
    write_trials_all_vs_all(out / "trials", sorted(enroll_map), test)
    write_text_atomic(out / "README", __doc__.strip() + "\n")
    written.update(enroll_map=out / "enroll_map", trials=out / "trials")
    return written
