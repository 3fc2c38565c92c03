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
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._io import write_text_atomic
from ..datadir import (DataDir, Trials, read_data_dir, validate_data_dir, write_data_dir,
                       write_enroll_map, write_trials)
from ..errors import SpeakerGMMError

__all__ = ["prepare_speechocean762", "ENROLL_UTTERANCES"]

ENROLL_UTTERANCES = 5


def _subset(data: DataDir, utts: list[str]) -> DataDir:
    return DataDir(wav_scp={u: data.wav_scp[u] for u in utts},
                   utt2spk={u: data.utt2spk[u] for u in utts},
                   spk2gender={s: g for s, g in (data.spk2gender or {}).items()
                               if s in {data.utt2spk[u] for u in utts}} or None)


def prepare_speechocean762(corpus_root: str | os.PathLike,
                           output_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``ubm/``, ``enroll/``, ``test/``, ``enroll_map``, ``trials`` and a README.

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
        background = _subset(train, [u for u in train.utterances
                                     if train.utt2spk[u] in set(speakers[0::2])])
    spk2utt = evaluation.spk2utt
    enroll_map = {s: spk2utt[s][:ENROLL_UTTERANCES] for s in eval_speakers}
    short = [s for s, u in spk2utt.items() if s in enroll_map and len(u) <= ENROLL_UTTERANCES]
    if short:
        raise SpeakerGMMError(f"speaker {short[0]} has too few utterances for the protocol")
    test_utts = [u for s in eval_speakers for u in spk2utt[s][ENROLL_UTTERANCES:]]
    enroll_utts = [u for s in eval_speakers for u in enroll_map[s]]
    dirs = {"ubm": background, "enroll": _subset(evaluation, enroll_utts),
            "test": _subset(evaluation, test_utts)}
    written: dict[str, Path] = {}
    for name, data in dirs.items():
        write_data_dir(out / name, data)
        problems = validate_data_dir(out / name, audio_root=root)
        if problems:
            raise SpeakerGMMError(f"prepared {out / name} is invalid: {problems[0]}")
        written[name] = out / name
    write_enroll_map(out / "enroll_map", enroll_map)
    tests = sorted(test_utts)
    enroll_ids = np.array([s for s in eval_speakers for _ in tests])
    test_ids = np.array([u for _ in eval_speakers for u in tests])
    labels = np.array([evaluation.utt2spk[u] == s for s in eval_speakers for u in tests])
    write_trials(out / "trials", Trials(enroll_ids, test_ids, labels))
    write_text_atomic(out / "README", f"protocol: {protocol}\n\n" + __doc__.strip() + "\n")
    written.update(enroll_map=out / "enroll_map", trials=out / "trials")
    return written
