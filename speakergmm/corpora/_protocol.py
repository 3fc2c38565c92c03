"""What several protocols share: data directory subsets (each speaker's first utterances,
the enroll/test split) and all-against-all trial lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.datadir import DataDir

from ..data.trials import Trials, write_trials
from ..errors import SpeakerGMMError


def write_data_dirs(out: Path, dirs: dict[str, DataDir], audio_root) -> dict[str, Path]:
    """Write each data directory under ``out`` and validate it (audio resolved against
    ``audio_root``); an invalid result is a bug in the preparation, raised loudly."""
    from ..data.validate import validate_data_dir
    from ..data.datadir import write_data_dir

    written = {}
    for name, data in dirs.items():
        write_data_dir(out / name, data)
        problems = validate_data_dir(out / name, audio_root=audio_root)
        if problems:
            raise SpeakerGMMError(f"prepared {out / name} is invalid: {problems[0]}")
        written[name] = out / name
    return written


def subset(data: DataDir, utts: list[str]) -> DataDir:
    """The data directory restricted to ``utts``."""
    speakers = {data.utt2spk[u] for u in utts}
    return DataDir(wav_scp={u: data.wav_scp[u] for u in utts},
                   utt2spk={u: data.utt2spk[u] for u in utts},
                   spk2gender={s: g for s, g in (data.spk2gender or {}).items()
                               if s in speakers} or None)


def first_utterances(data: DataDir, n: int, speakers: list[str] | None = None) -> DataDir:
    """The data directory restricted to the first ``n`` utterances (sorted ids) of each of
    ``speakers`` (default: every speaker), all of a speaker's when it has fewer."""
    spk2utt = data.spk2utt
    speakers = list(spk2utt) if speakers is None else speakers
    return subset(data, [u for s in speakers for u in spk2utt[s][:n]])


def enroll_test_split(data: DataDir, n_enroll: int, speakers: list[str] | None = None):
    """Each speaker's first ``n_enroll`` utterances (sorted ids) enroll it, the rest test.

    Returns
    -------
    enroll, test : DataDir
    enroll_map : dict speaker -> utterances
    """
    spk2utt = data.spk2utt
    speakers = list(spk2utt) if speakers is None else speakers
    short = [s for s in speakers if len(spk2utt[s]) <= n_enroll]
    if short:
        raise SpeakerGMMError(f"speaker {short[0]} has {len(spk2utt[short[0]])} utterances; the "
                              f"protocol needs more than {n_enroll}")
    enroll_map = {s: spk2utt[s][:n_enroll] for s in speakers}
    test = [u for s in speakers for u in spk2utt[s][n_enroll:]]
    return first_utterances(data, n_enroll, speakers), subset(data, test), enroll_map


def write_trials_all_vs_all(path: Path, models: list[str], test: DataDir) -> None:
    """Every test utterance against every model; target when the speakers match."""
    tests = sorted(test.utt2spk)
    write_trials(path, Trials(np.array([m for m in models for _ in tests]),
                              np.array([u for _ in models for u in tests]),
                              np.array([test.utt2spk[u] == m for m in models for u in tests])))
