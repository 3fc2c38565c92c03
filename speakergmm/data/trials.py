"""Trial lists and enrollment maps.

Trials are Kaldi ``<enroll> <test> target|nontarget``, VoxCeleb ``1|0 <enroll> <test>`` or
unlabelled ``<enroll> <test>``; an enrollment map is ``<model> <utt1> <utt2> ...`` (the
``spk2utt`` layout).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import write_text_atomic
from ..errors import DataDirError
from .textmap import _raise, _read_lines, check_tokens, read_kaldi_map, write_kaldi_map

__all__ = ["Trials", "read_trials", "write_trials", "read_enroll_map", "write_enroll_map"]

# Trial formats: field holding the label, label -> is target, what the label may be.
_TRIAL_FORMATS = {
    "Kaldi": (2, {"target": True, "nontarget": False}, "'target' or 'nontarget'"),
    "VoxCeleb": (0, {"1": True, "0": False}, "1 (target) or 0 (nontarget)"),
}



# --------------------------------------------------------------------------- trials


@dataclass(eq=False)
class Trials:
    """A trial list: ``enroll[i]`` (model) against ``test[i]`` (utterance).

    ``is_target`` is None for an unlabelled list (scoring without a key).
    """

    enroll: np.ndarray
    test: np.ndarray
    is_target: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.enroll = np.asarray(self.enroll, dtype=str)
        self.test = np.asarray(self.test, dtype=str)
        if self.is_target is not None:
            self.is_target = np.asarray(self.is_target, dtype=bool)
        sizes = {a.shape for a in (self.enroll, self.test, self.is_target) if a is not None}
        if len(sizes) != 1 or self.enroll.ndim != 1:
            raise DataDirError(f"Trials: enroll, test and is_target must be 1-D and of equal "
                               f"length, got shapes {sorted(sizes)}")

    def __len__(self) -> int:
        return len(self.enroll)


def read_trials(path: str | os.PathLike) -> Trials:
    """Read a trial list, detecting its format from the first line.

    Accepted: Kaldi ``<enroll> <test> target|nontarget``, VoxCeleb ``1|0 <enroll> <test>``
    and unlabelled ``<enroll> <test>``. One file must use one format.

    Raises
    ------
    DataDirError
        Unknown or mixed formats, bad labels, duplicated (enroll, test) pairs, empty file;
        the message names file and line.
    """
    path = Path(path)
    enroll, test, labels = [], [], []
    first_line: dict[tuple[str, str], int] = {}
    fmt = fmt_line = None
    for lineno, line in enumerate(_read_lines(path), 1):
        parts = line.split()
        if not parts:
            continue
        if fmt is None:
            fmt, fmt_line = _trial_format(parts), lineno
            if fmt is None:
                _raise(path, lineno, f"unknown trial format {line.strip()!r}; expected "
                       "'<enroll> <test> target|nontarget', '1|0 <enroll> <test>' or "
                       "'<enroll> <test>'")
        if len(parts) != (2 if fmt == "unlabelled" else 3):
            _raise(path, lineno, f"{len(parts)} fields, but line {fmt_line} set the format to "
                                 f"{fmt}; use one format per file")
        if fmt == "unlabelled":
            e, t = parts
        else:
            where, to_bool, allowed = _TRIAL_FORMATS[fmt]
            if parts[where] not in to_bool:
                other = _trial_format(parts)
                _raise(path, lineno, f"{other} line in a {fmt} trial list (format set by line "
                       f"{fmt_line}); use one format per file" if other else
                       f"label '{parts[where]}' must be {allowed}")
            labels.append(to_bool[parts[where]])
            e, t = parts[:2] if where == 2 else parts[1:]
        if (e, t) in first_line:
            _raise(path, lineno, f"trial '{e} {t}' duplicates line {first_line[e, t]}; keep "
                                 "one of them")
        first_line[e, t] = lineno
        enroll.append(e)
        test.append(t)
    if not enroll:
        _raise(path, None, "no trials")
    return Trials(np.array(enroll, dtype=str), np.array(test, dtype=str),
                  None if fmt == "unlabelled" else np.array(labels, dtype=bool))


def _trial_format(parts: list[str]) -> str | None:
    if len(parts) == 2:
        return "unlabelled"
    return next((name for name, (where, to_bool, _) in _TRIAL_FORMATS.items()
                 if len(parts) == 3 and parts[where] in to_bool), None)


def write_trials(path: str | os.PathLike, trials: Trials) -> None:
    """Write trials in Kaldi format (two columns when unlabelled), in their order, atomically."""
    path = Path(path)
    check_tokens(path, trials.enroll.tolist() + trials.test.tolist())
    if trials.is_target is None:
        rows = (f"{e} {t}\n" for e, t in zip(trials.enroll.tolist(), trials.test.tolist()))
    else:
        rows = (f"{e} {t} {'target' if y else 'nontarget'}\n" for e, t, y in
                zip(trials.enroll.tolist(), trials.test.tolist(), trials.is_target.tolist()))
    write_text_atomic(path, "".join(rows))


# --------------------------------------------------------------------------- enrollment


def read_enroll_map(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read ``<model> <utt1> <utt2> ...`` lines (the ``spk2utt`` format)."""
    return read_kaldi_map(path, multi=True)


def write_enroll_map(path: str | os.PathLike, enroll: dict[str, list[str]]) -> None:
    """Write an enrollment map sorted by model, atomically; utterance order is kept."""
    path = Path(path)
    for model, utts in enroll.items():
        if not utts:
            raise DataDirError(f"{path}: model '{model}' has no utterances")
        check_tokens(path, [model, *utts])
    write_kaldi_map(path, enroll.items(), lambda k, v: f"{k} {' '.join(v)}")

