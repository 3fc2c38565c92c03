"""What every protocol shares: the :class:`Protocol` value each ``prepare_<corpus>``
returns (validated in memory, written by one function), data directory subsets (each
speaker's first utterances, the enroll/test split) and all-against-all trial lists."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._io import write_text_atomic
from ..data.datadir import DataDir, write_data_dir
from ..data.trials import Trials, write_enroll_map, write_trials
from ..errors import SpeakerGMMError


@dataclass(frozen=True)
class Protocol:
    """A corpus's protocol in memory: data directories, enrollment maps, trial lists and a
    README, checked for consistency when made.

    Attributes
    ----------
    corpus : str
    audio_root : Path
        What the data directories' relative ``wav.scp`` paths resolve against.
    data : mapping name -> DataDir
        Written as ``<name>/``.
    enroll_maps : mapping file name -> (model -> utterances)
    trials : mapping file name -> Trials
    readme : str
    stale : tuple of str
        Files or folders an earlier preparation may have left that this one does not
        write (removed by :meth:`write`).
    paths : dict name -> Path
        What :meth:`write` wrote (empty before).
    """

    corpus: str
    audio_root: Path
    data: Mapping[str, DataDir]
    enroll_maps: Mapping[str, Mapping[str, list[str]]]
    trials: Mapping[str, Trials]
    readme: str
    stale: tuple[str, ...] = ()
    paths: dict[str, Path] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """SpeakerGMMError on an inconsistency: a bug in the preparation, raised loudly."""
        def bad(message: str):
            raise SpeakerGMMError(f"{self.corpus} protocol: {message}")

        utts: dict[str, str] = {}
        for name, data in self.data.items():
            recordings = set(data.wav_scp)
            needed = ({rec for rec, _, _ in data.segments.values()} if data.segments
                      else set(data.utt2spk))
            if not data.utt2spk or not needed <= recordings:
                bad(f"data directory {name} has {len(data.utt2spk)} utterances, "
                    f"{len(needed - recordings)} without a recording")
            utts.update(data.utt2spk)
        models: set[str] = set()
        for name, enroll in self.enroll_maps.items():
            for model, members in enroll.items():
                missing = [u for u in members if u not in utts]
                if not members or missing:
                    bad(f"{name}: model {model} has {len(members)} utterances, "
                        f"{len(missing)} in no data directory")
            models.update(enroll)
        for name, trials in self.trials.items():
            unknown = sorted(set(trials.enroll.tolist()) - models)
            absent = sorted(set(trials.test.tolist()) - set(utts))
            if unknown or absent:
                bad(f"{name}: {len(unknown)} trial models in no enroll map, {len(absent)} test "
                    "utterances in no data directory")

    def write(self, output_dir: str | os.PathLike) -> dict[str, Path]:
        """Write everything under ``output_dir`` (atomically, file by file), validate the
        data directories on disk (audio included) and return name -> path."""
        from ..data.validate import validate_data_dir

        out = Path(output_dir)
        for name in self.stale:
            shutil.rmtree(out / name, ignore_errors=True)
            (out / name).unlink(missing_ok=True)
        paths = {}
        for name, data in self.data.items():
            write_data_dir(out / name, data)
            problems = validate_data_dir(out / name, audio_root=self.audio_root)
            if problems:
                raise SpeakerGMMError(f"prepared {out / name} is invalid: {problems[0]}")
            paths[name] = out / name
        for name, enroll in self.enroll_maps.items():
            write_enroll_map(out / name, dict(enroll))
            paths[name] = out / name
        for name, trials in self.trials.items():
            write_trials(out / name, trials)
            paths[name] = out / name
        write_text_atomic(out / "README", self.readme.strip() + "\n")
        self.paths.clear()
        self.paths.update(paths)
        return paths


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


def all_vs_all(models: list[str], test: DataDir) -> Trials:
    """Every test utterance against every model; target when the speakers match."""
    tests = sorted(test.utt2spk)
    return Trials(np.array([m for m in models for _ in tests]),
                  np.array([u for _ in models for u in tests]),
                  np.array([test.utt2spk[u] == m for m in models for u in tests]))
