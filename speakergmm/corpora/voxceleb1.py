"""VoxCeleb1 (Nagrani, Chung and Zisserman, Interspeech 2017).

Celebrity interviews from YouTube, 16 kHz WAV laid out as
``wav/<speaker>/<video>/<nnnnn>.wav`` (1,251 speakers). The corpus needs registration
with its authors: the user provides it. The VoxCeleb1-O trial lists are published beside
it: ``veri_test.txt`` (original, 37,720 trials) and ``veri_test2.txt`` (cleaned, 37,611),
lines ``1|0 <enroll wav> <test wav>``; place them in the corpus root.

Protocol: the UBM is trained on the development speakers (every speaker that does not
appear in the trial lists); each trial's enrollment is a single utterance, so the enroll
map has one model per enrollment utterance, named like it. Published GMM-UBM anchor on
VoxCeleb1-O: EER 15.0% (Nagrani et al. 2017).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._io import write_text_atomic
from ..datadir import DataDir, Trials, read_trials, write_enroll_map, write_trials
from ..errors import SpeakerGMMError
from ._protocol import subset, write_data_dirs

__all__ = ["prepare_voxceleb1", "TRIAL_LISTS"]

TRIAL_LISTS = {"trials": "veri_test.txt", "trials_cleaned": "veri_test2.txt"}


def utt_id(wav: str) -> str:
    """``id10270/x6uYqmx31kE/00001.wav`` -> ``id10270-x6uYqmx31kE-00001`` (ids are file
    names downstream, so no slashes)."""
    return wav[:-4].replace("/", "-") if wav.endswith(".wav") else wav.replace("/", "-")


def prepare_voxceleb1(corpus_root: str | os.PathLike,
                      output_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``ubm/``, ``enroll/``, ``test/``, ``enroll_map`` and the trial lists found."""
    root, out = Path(corpus_root), Path(output_dir)
    if not (root / "wav").is_dir():
        raise SpeakerGMMError(f"{root}: no wav/ folder; point at the VoxCeleb1 root "
                              "(wav/<speaker>/<video>/<nnnnn>.wav)")
    lists = {name: root / f for name, f in TRIAL_LISTS.items() if (root / f).is_file()}
    if not lists:
        raise SpeakerGMMError(f"{root}: no {' or '.join(TRIAL_LISTS.values())}; download the "
                              "VoxCeleb1-O trial list from the VoxCeleb website into it")
    wav, utt2spk = {}, {}
    for path in sorted((root / "wav").glob("*/*/*.wav")):
        rel = path.relative_to(root / "wav").as_posix()
        wav[utt_id(rel)] = f"wav/{rel}"
        utt2spk[utt_id(rel)] = path.parent.parent.name
    data = DataDir(wav_scp=wav, utt2spk=utt2spk)
    keys = {name: read_trials(path) for name, path in lists.items()}
    enroll_utts, test_utts = set(), set()
    for trials in keys.values():
        enroll_utts.update(utt_id(u) for u in trials.enroll)
        test_utts.update(utt_id(u) for u in trials.test)
    missing = sorted((enroll_utts | test_utts) - set(wav))
    if missing:
        raise SpeakerGMMError(f"{root}: {len(missing)} trial utterance(s) have no audio, e.g. "
                              f"{missing[0]}")
    test_speakers = {utt2spk[u] for u in enroll_utts | test_utts}
    dirs = {"ubm": subset(data, [u for u in wav if utt2spk[u] not in test_speakers]),
            "enroll": subset(data, sorted(enroll_utts)), "test": subset(data, sorted(test_utts))}
    written = write_data_dirs(out, dirs, root)
    write_enroll_map(out / "enroll_map", {u: [u] for u in sorted(enroll_utts)})
    for name, trials in keys.items():
        write_trials(out / name, Trials(np.array([utt_id(u) for u in trials.enroll]),
                                        np.array([utt_id(u) for u in trials.test]),
                                        trials.is_target))
        written[name] = out / name
    write_text_atomic(out / "README", __doc__.strip() + "\n")
    written["enroll_map"] = out / "enroll_map"
    return written
