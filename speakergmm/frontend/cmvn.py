"""Feature normalisation: per-utterance CMVN, sliding-window CMN/CMVN and feature warping.

All functions take and return ``(frames, dims)`` arrays; statistics are computed in float64
and the result has the input's dtype. They are applied to the frames VAD kept, so that
silence does not pull the mean.
"""

from __future__ import annotations

import numpy as np

from ..constants import NORMALISATIONS
from ..errors import ParameterError

__all__ = ["cmvn", "sliding_cmvn", "feature_warping", "normalize", "NORMALISATIONS"]


# A standard deviation below this is a constant dimension (digital silence, a muted
# channel): dividing by it would blow rounding noise up to unit variance.
_MIN_STD = 1e-5
_CHUNK = 1 << 16  # frames (11 minutes at 10 ms)


def cmvn(x: np.ndarray, *, variance: bool = True, overwrite: bool = False) -> np.ndarray:
    """Per-utterance cepstral mean (and variance) normalisation.

    Parameters
    ----------
    x : np.ndarray [shape=(frames, dims)]
    variance : bool
        Also scale each dimension to unit variance.
    overwrite : bool
        Normalise ``x`` itself (its memory is reused) instead of a copy.

    Returns
    -------
    np.ndarray [shape=(frames, dims)]
    """
    mean = x.mean(axis=0, dtype=np.float64)
    if overwrite:
        x -= mean.astype(x.dtype)
        out = x
    else:
        out = x - mean.astype(x.dtype)
    if variance:
        # squares summed a chunk of frames at a time: a float64 copy of a long recording's
        # features would double its memory (hours of audio)
        sq = sum(np.square(out[b:b + _CHUNK], dtype=np.float64).sum(axis=0)
                 for b in range(0, len(out), _CHUNK)) if len(out) else np.zeros(x.shape[1])
        std = np.sqrt(sq / max(len(out), 1))
        out /= np.maximum(std, _MIN_STD).astype(x.dtype)
    return out


def _window_bounds(n: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end of a centred window per frame, shifted at the edges to stay inside
    the utterance (Kaldi's ``apply-cmvn-sliding --center=true``); the whole utterance
    when it is shorter than the window."""
    window = min(window, n)
    start = np.clip(np.arange(n) - window // 2, 0, n - window)
    return start, start + window


def sliding_cmvn(x: np.ndarray, *, window: int = 300, variance: bool = False) -> np.ndarray:
    """Sliding-window mean (and variance) normalisation over ``window`` frames.

    Parameters
    ----------
    x : np.ndarray [shape=(frames, dims)]
    window : int
        Window length in frames (300 = 3 s, Kaldi's speaker-recognition setting).
    variance : bool
        Also normalise the variance within the window.

    Returns
    -------
    np.ndarray [shape=(frames, dims)]
    """
    n = x.shape[0]
    start, end = _window_bounds(n, window)
    count = (end - start)[:, None].astype(np.float64)
    csum = np.zeros((n + 1, x.shape[1]), dtype=np.float64)
    np.cumsum(x, axis=0, dtype=np.float64, out=csum[1:])
    mean = (csum[end] - csum[start]) / count
    out = (x - mean).astype(x.dtype)
    if variance:
        csq = np.zeros_like(csum)
        np.cumsum(np.square(x, dtype=np.float64), axis=0, out=csq[1:])
        var = (csq[end] - csq[start]) / count - mean**2
        out /= np.sqrt(np.maximum(var, _MIN_STD**2)).astype(x.dtype)
    return out


def feature_warping(x: np.ndarray, *, window: int = 301, block: int = 1024) -> np.ndarray:
    """Feature warping (Pelecanos and Sridharan, 2001): map each value to the standard
    normal quantile of its rank within a sliding window of ``window`` frames.

    Ties share the mean of their ranks. Near the edges the window is shifted to stay inside
    the utterance; a shorter utterance is warped as a whole.

    Parameters
    ----------
    x : np.ndarray [shape=(frames, dims)]
    window : int
        Window length in frames (301 = 3 s).
    block : int
        Frames ranked at once; bounds memory at ``block * dims * window`` bytes.

    Returns
    -------
    np.ndarray [shape=(frames, dims)]
    """
    from scipy.special import ndtri  # here: its import costs every verify ~0.3 s

    n, d = x.shape
    start, _ = _window_bounds(n, window)
    w = min(window, n)
    windows = np.lib.stride_tricks.sliding_window_view(x, w, axis=0)  # (n - w + 1, d, w)
    out = np.empty_like(x)
    for b0 in range(0, n, block):
        b1 = min(n, b0 + block)
        win = windows[start[b0:b1]]                       # (b, d, w)
        centre = x[b0:b1, :, None]
        below = np.count_nonzero(win < centre, axis=2)
        equal = np.count_nonzero(win == centre, axis=2)   # includes the frame itself
        rank = below + 0.5 * (equal + 1)                  # 1-based mid-rank
        out[b0:b1] = ndtri((rank - 0.5) / w)
    return out


def normalize(x: np.ndarray, *, method: str, window: int | None = None,
              overwrite: bool = False) -> np.ndarray:
    """Apply the normalisation named by ``method`` (one of :data:`NORMALISATIONS`).

    ``window`` is the sliding window in frames for ``sliding_cmn``, ``sliding_cmvn``
    (default 300) and ``warp`` (default 301); it is ignored by the others. With
    ``overwrite``, ``cmvn`` and ``cmn`` reuse the memory of ``x``.
    """
    if method == "cmvn":
        return cmvn(x, variance=True, overwrite=overwrite)
    if method == "cmn":
        return cmvn(x, variance=False, overwrite=overwrite)
    if method in ("sliding_cmn", "sliding_cmvn"):
        return sliding_cmvn(x, window=window or 300, variance=method == "sliding_cmvn")
    if method == "warp":
        return feature_warping(x, window=window or 301)
    if method == "none":
        return x
    raise ParameterError(f"unknown normalisation {method!r}; choose one of "
                         f"{', '.join(NORMALISATIONS)}")
