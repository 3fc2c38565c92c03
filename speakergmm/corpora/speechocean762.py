"""speechocean762 (Zhang et al., Interspeech 2021; OpenSLR resource 101; CC BY 4.0).

Non-native English read speech (Mandarin first language), 16 kHz: two speaker-disjoint
halves, ``train/`` and ``test/``, of 125 speakers x 20 utterances each, laid out with Kaldi
lists (``wav.scp`` paths relative to the corpus root, ``utt2spk``, ``spk2utt``,
``spk2gender``) and audio under ``WAVE/SPEAKERnnnn/``.

Protocols (speaker verification):

- **official** (both halves present): UBM, cohort and calibration data from ``train``; each
  ``test`` speaker enrolled on its first 5 utterances (sorted ids), its other 15 tested
  against every ``test`` speaker: 1,875 target and 232,500 non-target trials.
- **dev** (only ``train/``, as in a copy of the train half): speakers in sorted order, even
  positions (0, 2, ...) are background (UBM and cohort), odd positions evaluation, same
  enroll/test rule: 62 evaluation speakers, 930 target and 56,730 non-target trials.

Both also write calibration trials among the background speakers (``cal_enroll_map``,
``cal_trials``: the same enroll/test rule; the utterances are those of ``ubm/``).
"""

from __future__ import annotations

import os
from pathlib import Path

from .._io import write_text_atomic
from ..datadir import read_data_dir, write_enroll_map
from ..errors import SpeakerGMMError
from ._protocol import enroll_test_split, subset, write_data_dirs, write_trials_all_vs_all

__all__ = ["prepare_speechocean762", "ENROLL_UTTERANCES"]

ENROLL_UTTERANCES = 5


def prepare_speechocean762(corpus_root: str | os.PathLike,
                           output_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``ubm/``, ``enroll/``, ``test/``, ``enroll_map``, ``trials``, ``cal_enroll_map``,
    ``cal_trials`` and a README.

    The protocol is ``official`` when ``corpus_root/test`` exists, else ``dev`` (see the
    module docstring). ``wav.scp`` paths stay relative to the corpus root: pass it as
    ``--audio-root``.
    """
    root, out = Path(corpus_root), Path(output_dir)
    if not (root / "train" / "wav.scp").is_file():
        raise SpeakerGMMError(f"{root}: no train/wav.scp; point at the speechocean762 root "
                              "(the folder that holds train/ and WAVE/)")
    train = read_data_dir(root / "train")
    if (root / "test" / "wav.scp").is_file():
        protocol, evaluation = "official", read_data_dir(root / "test")
        background = train
        eval_speakers = evaluation.speakers
    else:
        protocol, evaluation = "dev", train
        speakers = train.speakers
        eval_speakers = speakers[1::2]
        background = subset(train, [u for u in train.utterances
                                     if train.utt2spk[u] in set(speakers[0::2])])
    enroll, test, enroll_map = enroll_test_split(evaluation, ENROLL_UTTERANCES, eval_speakers)
    dirs = {"ubm": background, "enroll": enroll, "test": test}
    written = write_data_dirs(out, dirs, root)
    write_enroll_map(out / "enroll_map", enroll_map)
    write_trials_all_vs_all(out / "trials", list(eval_speakers), test)
    # Calibration trials among the background speakers, same enroll/test rule; their
    # utterances are those of ubm/, so the UBM's features serve them.
    _, cal_test, cal_map = enroll_test_split(background, ENROLL_UTTERANCES)
    write_enroll_map(out / "cal_enroll_map", cal_map)
    write_trials_all_vs_all(out / "cal_trials", sorted(cal_map), cal_test)
    write_text_atomic(out / "README", f"protocol: {protocol}\n\n" + __doc__.strip() + "\n")
    written.update(enroll_map=out / "enroll_map", trials=out / "trials",
                   cal_enroll_map=out / "cal_enroll_map", cal_trials=out / "cal_trials")
    return written
