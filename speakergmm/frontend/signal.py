"""Framing of a signal: the one leaf that the front end's modules share."""

from __future__ import annotations

import numpy as np

__all__ = ["frame_signal", "frame_view", "sample_problem", "MAX_AMPLITUDE", "GROUP"]

#: Frames transformed at once (spectra, energies): it bounds the temporaries of a long
#: recording, and groups counted from the first frame give the same float32 results however
#: a signal arrives (BLAS kernels differ with the number of rows).
GROUP = 8192

#: The largest sample magnitude taken: any PCM scale (a float file holding int32 values
#: reaches 2^31). Beyond it the power spectrum overflows float32 and every feature is NaN;
#: such values come from corrupt or wrongly scaled files, not from microphones.
MAX_AMPLITUDE = 2.0**31


def sample_problem(y: np.ndarray) -> str | None:
    """What is wrong with a signal's samples (non-finite, or beyond :data:`MAX_AMPLITUDE`),
    or None."""
    finite = np.isfinite(y)
    if not finite.all():
        return (f"{int(np.count_nonzero(~finite))} non-finite sample(s) (NaN or inf); the "
                "file is corrupt")
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > MAX_AMPLITUDE:
        return (f"samples reach {peak:.3g}, beyond any PCM scale ({MAX_AMPLITUDE:.3g}); the "
                "file is corrupt or wrongly scaled")
    return None


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
    return frame_view(padded, frame_length=frame_length, hop_length=hop_length)[:n_frames]


def frame_view(x: np.ndarray, *, frame_length: int, hop_length: int) -> np.ndarray:
    """Every whole frame of ``frame_length`` samples of ``x``, ``hop_length`` apart from its
    first sample, as a read-only strided view.

    Returns
    -------
    np.ndarray [shape=(1 + (len(x) - frame_length) // hop_length, frame_length)]
    """
    x = np.ascontiguousarray(x)
    n = max(0, 1 + (len(x) - frame_length) // hop_length)
    step = x.strides[0]
    return np.lib.stride_tricks.as_strided(x, shape=(n, frame_length),
                                           strides=(hop_length * step, step), writeable=False)
