"""Framing of a signal: the one leaf that the front end's modules share."""

from __future__ import annotations

import numpy as np

__all__ = ["frame_signal"]


def frame_signal(y: np.ndarray, *, frame_length: int, hop_length: int, left: int) -> np.ndarray:
    """Frames ``t = 0 .. len(y) // hop_length`` of ``frame_length`` samples starting at
    ``t * hop_length - left``, zeros outside the signal, as a strided view (no copy of the
    samples). ``left = frame_length // 2`` is librosa's ``center=True``.

    Returns
    -------
    np.ndarray [shape=(1 + len(y) // hop_length, frame_length)], read-only view
    """
    n_frames = 1 + len(y) // hop_length
    padded = np.zeros(left + len(y) + frame_length, dtype=y.dtype)
    padded[left:left + len(y)] = y
    step = padded.strides[0]
    return np.lib.stride_tricks.as_strided(padded, shape=(n_frames, frame_length),
                                           strides=(hop_length * step, step), writeable=False)
