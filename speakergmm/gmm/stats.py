"""Baum-Welch sufficient statistics: the hinge of the toolkit (see ARCHITECTURE.md).

EM, MAP adaptation, eigenchannel training and compensation, and linear scoring are all
functions of summed statistics; :meth:`speakergmm.gmm.DiagGMM.accumulate` computes them.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

from ..errors import ParameterError

__all__ = ["GMMStats", "centred_first_order"]


@dataclasses.dataclass(frozen=True, eq=False)
class GMMStats:
    """Zeroth-, first- and second-order statistics of frames under a K-component GMM.

    Attributes
    ----------
    n : np.ndarray [shape=(K,), float64]
        ``Σ_t γ_t(k)``.
    f : np.ndarray [shape=(K, D), float64]
        ``Σ_t γ_t(k) x_t``.
    s : np.ndarray [shape=(K, D), float64]
        ``Σ_t γ_t(k) x_t²``.
    llk : float
        ``Σ_t log p(x_t)``, the total log-likelihood of the frames.
    frames : int
        Number of frames.

    Statistics of disjoint sets of frames add: ``a + b`` and ``sum([a, b, c])`` work.
    """

    n: np.ndarray
    f: np.ndarray
    s: np.ndarray
    llk: float
    frames: int

    def __post_init__(self):
        n = np.array(self.n, dtype=np.float64)
        f = np.array(self.f, dtype=np.float64)
        s = np.array(self.s, dtype=np.float64)
        if n.ndim != 1 or f.ndim != 2 or f.shape != s.shape or f.shape[0] != n.shape[0]:
            raise ParameterError(
                f"GMMStats shapes do not agree: n {n.shape}, f {f.shape}, s {s.shape}; "
                "expected (K,), (K, D), (K, D)"
            )
        for name, value in (("n", n), ("f", f), ("s", s)):
            value.setflags(write=False)  # frozen means frozen: never aliases a caller's array
            object.__setattr__(self, name, value)
        object.__setattr__(self, "llk", float(self.llk))
        object.__setattr__(self, "frames", int(self.frames))

    @classmethod
    def zeros(cls, n_components: int, dim: int) -> "GMMStats":
        """Empty statistics (the neutral element of ``+``) for K components in D dimensions."""
        return cls(np.zeros(n_components), np.zeros((n_components, dim)),
                   np.zeros((n_components, dim)), 0.0, 0)

    @property
    def n_components(self) -> int:
        return self.n.shape[0]

    @property
    def dim(self) -> int:
        return self.f.shape[1]

    def __add__(self, other: "GMMStats") -> "GMMStats":
        if not isinstance(other, GMMStats):
            return NotImplemented
        if other.f.shape != self.f.shape:
            raise ParameterError(
                f"cannot add statistics of shape (K, D) = {self.f.shape} and {other.f.shape}: "
                "they come from different models"
            )
        return GMMStats(self.n + other.n, self.f + other.f, self.s + other.s,
                        self.llk + other.llk, self.frames + other.frames)

    def __radd__(self, other):
        # sum() starts from the integer 0.
        if isinstance(other, (int, float)) and other == 0:
            return self
        return NotImplemented

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (for ``np.savez``, pickling-free IPC, Dask); inverse of
        :meth:`from_arrays`."""
        return {"n": self.n, "f": self.f, "s": self.s,
                "llk": np.array(self.llk, dtype=np.float64),
                "frames": np.array(self.frames, dtype=np.int64)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> "GMMStats":
        """Rebuild statistics from :meth:`to_arrays` output (or an ``np.load`` of it)."""
        return cls(arrays["n"], arrays["f"], arrays["s"],
                   float(np.asarray(arrays["llk"])), int(np.asarray(arrays["frames"])))

    def starved(self, min_weight: float) -> np.ndarray:
        """Indices of components whose weight ``n_k / Σ n`` is below ``min_weight`` (or zero).

        These are the components :meth:`DiagGMM.m_step` left unchanged; UBM training re-seeds
        them (e.g. by splitting the heaviest component).
        """
        total = self.n.sum()
        weights = self.n / total if total > 0 else np.zeros_like(self.n)
        return np.flatnonzero((weights < min_weight) | (self.n <= 0))


def centred_first_order(n, f, means, variances) -> np.ndarray:
    """First-order statistics centred on the UBM means and whitened by its deviations,
    ``(f_k - n_k μ_k) / σ_k``: what eigenchannel training, channel factors and linear
    scoring read.

    Parameters
    ----------
    n : array_like [shape=(K,) or (H, K)]
        Zeroth order, of one utterance or of a block of H.
    f : array_like [shape=(K, D) or (H, K, D)]
        First order.
    means, variances : array_like [shape=(K, D)]
        The UBM's.

    Returns
    -------
    np.ndarray [shape of ``f``, float64]
    """
    inv_sd = 1.0 / np.sqrt(np.asarray(variances, np.float64))
    n = np.asarray(n, np.float64)
    return (f - n[..., None] * np.asarray(means, np.float64)) * inv_sd
