"""Score files: ``<model> <test> <score>`` per line, and their pairing with a trial key."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._io import write_text_atomic
from ..errors import DataDirError, ParameterError
from .textmap import _read_lines
from .trials import Trials

__all__ = ["as_scores", "read_scores", "write_scores", "key_scores", "labelled_scores"]


def as_scores(x, name: str = "scores", *, ndim: int | None = 1, allow_inf: bool = False,
              allow_empty: bool = True) -> np.ndarray:
    """``x`` as a float64 array of scores, or a ValueError naming it and what is wrong.

    The one validator of score arrays: normalisation, calibration and the metrics all
    call it.

    Parameters
    ----------
    x : array_like
    name : str
        Named in the message.
    ndim : int or None
        Required number of dimensions; None flattens ``x`` to a vector.
    allow_inf : bool
        Accept ±inf (log-likelihood ratios may be infinite); NaN is never accepted.
    allow_empty : bool
        Accept an array with no score.

    Returns
    -------
    np.ndarray [float64]
    """
    arr = np.asarray(x, dtype=np.float64)
    if ndim is None:
        arr = arr.ravel()
    elif arr.ndim != ndim:
        want = "(N,)" if ndim == 1 else "(N, C)"
        raise ParameterError(f"{name} must have shape {want}, got shape {arr.shape}")
    if not allow_empty and arr.size == 0:
        raise ParameterError(f"{name} is empty: need at least one score")
    bad = np.isnan(arr) if allow_inf else ~np.isfinite(arr)
    if bad.any():
        what = "NaN" if allow_inf else "non-finite (NaN or ±inf)"
        raise ParameterError(f"{name} holds {int(bad.sum())} {what} value(s); check the step "
                         "that produced them")
    return arr


def read_scores(path: str | os.PathLike) -> dict[tuple[str, str], float]:
    """Read a score file; a malformed line, a non-finite score or a trial scored twice is an
    error naming the file and line."""
    lines = _read_lines(Path(path))  # (names the file and line of a non-UTF-8 byte)
    # A regular file (the usual case) is parsed in bulk; anything irregular is read again
    # line by line, which names the line at fault.
    tokens = "\n".join(lines).split()
    if len(tokens) == 3 * sum(1 for line in lines if line.strip()):
        try:
            values = np.array(tokens[2::3], dtype=np.float64)
        except ValueError:
            values = None
        if values is not None and np.isfinite(values).all():
            scores = dict(zip(zip(tokens[0::3], tokens[1::3]), values.tolist()))
            if len(scores) == len(values):
                return scores
    return _read_scores_by_line(path, lines)


def _read_scores_by_line(path, lines: list[str]) -> dict[tuple[str, str], float]:
    scores: dict[tuple[str, str], float] = {}
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise DataDirError(f"{path}:{n}: expected '<model> <test> <score>', got "
                               f"{line.strip()!r}")
        try:
            value = float(parts[2])
        except ValueError:
            raise DataDirError(f"{path}:{n}: score {parts[2]!r} is not a number") from None
        if not math.isfinite(value):
            raise DataDirError(f"{path}:{n}: score {parts[2]} is not finite")
        key = (parts[0], parts[1])
        if key in scores:
            raise DataDirError(f"{path}:{n}: trial {key[0]} {key[1]} scored twice")
        scores[key] = value
    return scores


def write_scores(path: str | os.PathLike, enroll: Sequence[str], test: Sequence[str],
                 values: np.ndarray) -> None:
    """Write ``<model> <test> <score>`` lines (6 decimals), atomically."""
    write_text_atomic(path, "".join(f"{e} {t} {v:.6f}\n" for e, t, v in zip(enroll, test, values)))


def key_scores(path: str | os.PathLike, trials: Trials) -> np.ndarray:
    """Scores of a score file in the order of ``trials`` (a labelled key with both classes);
    every trial of the key must be scored."""
    if trials.is_target is None:
        raise DataDirError("the trial list has no target/nontarget labels")
    n_tar = int(np.sum(trials.is_target))
    if n_tar == 0 or n_tar == len(trials):
        raise DataDirError(f"the trial key has {n_tar} target and {len(trials) - n_tar} "
                           "non-target trials; error rates need both")
    scores = read_scores(path)
    keys = list(zip(trials.enroll.tolist(), trials.test.tolist()))  # str, not numpy str
    missing = [key for key in keys if key not in scores]
    if missing:
        raise DataDirError(f"{path}: {len(missing)} trial(s) of the key are not scored, e.g. "
                           f"{missing[0][0]} {missing[0][1]}")
    return np.array([scores[key] for key in keys])


def aligned_scores(paths: Sequence[str | os.PathLike],
                   trials: Trials | None = None) -> tuple[list[str], list[str], np.ndarray]:
    """Several systems' score files on the same trials, as a (trials, systems) matrix.

    The trials are those of ``trials`` (a key: :func:`key_scores` checks each file) or,
    without one, those of the first file in its order; every file must score all of them.

    Returns
    -------
    enroll, test : list of str
    scores : np.ndarray [shape=(n_trials, len(paths))]
    """
    if trials is not None:
        return (trials.enroll.tolist(), trials.test.tolist(),
                np.column_stack([key_scores(p, trials) for p in paths]))
    files = [read_scores(p) for p in paths]
    keys = list(files[0])
    for path, scores in zip(paths[1:], files[1:]):
        missing = [key for key in keys if key not in scores]
        if missing:
            raise DataDirError(f"{path}: {len(missing)} trial(s) of {paths[0]} are not "
                               f"scored, e.g. {missing[0][0]} {missing[0][1]}; fused files "
                               "must score the same trials")
    return ([e for e, _ in keys], [t for _, t in keys],
            np.array([[scores[key] for scores in files] for key in keys]).reshape(
                len(keys), len(files)))


def labelled_scores(path: str | os.PathLike, trials: Trials) -> tuple[np.ndarray, np.ndarray]:
    """Target and non-target scores of ``trials`` from a score file."""
    values = key_scores(path, trials)
    return values[trials.is_target], values[~trials.is_target]
