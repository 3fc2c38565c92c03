"""Diagonal-covariance Gaussian mixtures and their Baum-Welch sufficient statistics.

:class:`GMMStats` is the hinge of the toolkit (see ARCHITECTURE.md): EM, MAP adaptation and
linear scoring are all functions of summed statistics. :class:`DiagGMM` computes them fast.

The E-step runs in float32 over chunks of frames. For a chunk ``X`` (n×D) the log joint
``log w_k + log N(x|k)`` of all frames and components is ONE matrix product

    Z = [X - c, (X - c)², 1] (n×(2D+1))  ·  [μ'/σ²; -½/σ²; b] ((2D+1)×K),   μ' = μ - c,

then an in-place log-sum-exp over K; ``γᵀ Z`` is ONE more product giving the first-, second-
and zeroth-order statistics together. The posteriors are normalised by scaling the rows of Z
(2D+1 wide) rather than of γ (K wide). Statistics are summed in float64; chunks bound memory.

The shift ``c = Σ_k w_k μ_k`` is an exact reparametrisation that keeps float32 accurate on
features that are not centred (x·μ/σ² and x²/σ² cancel in the product). Measured worst
per-frame relative error with a feature offset of 0 / 5 / 100: 8e-7 / 2e-5 / 7e-3 without the
shift, 8e-7 / 8e-7 / 1e-6 with it. Features are CMVN-normalised in practice, but the shift
costs nothing (it replaces a copy), so it is always applied.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .._io import read_npz, write_npz
from ..errors import ArchiveError, FeatureError, ModelError, ParameterError
from ..exec import local_threads, thread_map
from .stats import GMMStats

__all__ = ["DiagGMM", "FORMAT_NAME", "FORMAT_VERSION", "check_feature_config",
           "default_chunk_size"]

FORMAT_NAME = "speakergmm.diaggmm"
FORMAT_VERSION = 1

# Frames per chunk: the (chunk × K) float32 log-joint block is about this many bytes.
# Measured with tests/benchmarks/bench_em.py on 2 cores (1 MiB L2, 32 MiB L3): with K=512
# blocks of 1-4 MiB (512-2048 frames) are fastest, 8 MiB is 9% and 16 MiB 25% slower, as
# the exp and the row reductions stop hitting cache; K=2048 was fastest at 512 frames
# (4 MiB) and K=64 flat from 2048 to 8192 frames.
_CHUNK_BYTES = 4 << 20
_MIN_CHUNK, _MAX_CHUNK = 256, 8192


_local = threading.local()


def _scratch(rows: int, K: int, D: int):
    """This thread's E-step buffers for chunks of up to ``rows`` frames (kept between calls:
    fresh 4 MB buffers per chunk would cost their page faults every time)."""
    have = getattr(_local, "shape", (0, 0, 0))
    if have[1:] != (K, D) or have[0] < rows:
        _local.shape = (rows, K, D)
        _local.buffers = (np.empty((rows, 2 * D + 1), np.float32),
                          np.empty((rows, K), np.float32), np.empty(rows, np.float32),
                          np.empty(rows, np.float32))
    return tuple(b[:rows] for b in _local.buffers)


def default_chunk_size(n_components: int) -> int:
    """Frames per chunk used when ``chunk_size`` is not given (2048 for K=512)."""
    return int(np.clip(_CHUNK_BYTES // (4 * max(1, n_components)), _MIN_CHUNK, _MAX_CHUNK))


# The largest |μ - c|(1 + |μ - c|)/σ² a model may have: its float32 scoring kernel keeps
# room for feature values and sums of D terms below float32's 3.4e38.
_MAX_KERNEL = 1e30

# |Σ w - 1| allowed for stored or given weights.
_WEIGHT_TOL = 1e-6

# log(0) would put -inf in the product, and 0·(-inf) = NaN if a BLAS kernel ever multiplies
# it by a zero; this finite stand-in still gives exp() == 0 exactly in float32.
_LOG_ZERO = -1e30


class DiagGMM:
    """A Gaussian mixture with diagonal covariances.

    Parameters
    ----------
    weights : array_like [shape=(K,)]
        Non-negative, summing to 1 (within 1e-6).
    means : array_like [shape=(K, D)]
    variances : array_like [shape=(K, D)]
        Strictly positive.
    metadata : dict, optional
        JSON-serialisable information kept with the model (feature config, training record).

    Raises
    ------
    ModelError
        If the parameters are inconsistent, non-finite or out of range.

    Notes
    -----
    Parameters are read-only float64 arrays: the model is immutable (:meth:`m_step` returns
    a new one) and its methods are thread-safe (each call has its own buffers).
    """

    def __init__(self, weights, means, variances, *, metadata: Mapping[str, Any] | None = None):
        self._weights, self._means, self._variances = _validate_params(weights, means, variances)
        self.metadata: dict[str, Any] = dict(metadata or {})
        # Filled by load(): format name/version and the library version that wrote the file.
        self.file_header: dict[str, Any] = {}

    # -- parameters --------------------------------------------------------------------

    weights = property(lambda self: self._weights, doc="np.ndarray [shape=(K,)], read-only")
    means = property(lambda self: self._means, doc="np.ndarray [shape=(K, D)], read-only")
    variances = property(lambda self: self._variances, doc="np.ndarray [shape=(K, D)], read-only")

    @property
    def n_components(self) -> int:
        """K, the number of components."""
        return self._means.shape[0]

    @property
    def dim(self) -> int:
        """D, the feature dimension."""
        return self._means.shape[1]

    def __repr__(self) -> str:
        return f"DiagGMM(K={self.n_components}, D={self.dim}, fingerprint={self.fingerprint()})"

    @functools.cached_property
    def _kernel(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(W, c32, c)``: the (2D+1, K) float32 matrix [μ'/σ²; -½/σ²; b] and the shift c."""
        w, mu, var = self._weights, self._means, self._variances
        c = w @ mu
        mu_c = mu - c
        prec = 1.0 / var
        with np.errstate(divide="ignore"):
            log_w = np.where(w > 0, np.log(w), _LOG_ZERO)
        # The bias is a sum of D large terms of both signs: compute it in float64, cast once.
        bias = log_w - 0.5 * np.sum(np.log(2.0 * np.pi * var) + mu_c * mu_c * prec, axis=1)
        kernel = np.concatenate([(mu_c * prec).T, -0.5 * prec.T, bias[None, :]], axis=0)
        return np.ascontiguousarray(kernel, dtype=np.float32), c.astype(np.float32), c

    def fingerprint(self) -> str:
        """First 16 hex digits of the SHA-256 of K, D and the float64 parameter bytes.

        Identifies the parameters (not the metadata): a speaker model records the
        fingerprint of the UBM it was adapted from.
        """
        h = hashlib.sha256(f"diaggmm:{self.n_components}:{self.dim}:".encode())
        for arr in (self._weights, self._means, self._variances):
            h.update(np.ascontiguousarray(arr, dtype="<f8").tobytes())
        return h.hexdigest()[:16]

    # -- E-step --------------------------------------------------------------------------

    def _check_features(self, X) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 2:
            raise ParameterError(f"features must be a 2-D (frames, dims) array, got shape "
                                 f"{X.shape}")
        if X.dtype.kind not in "fiu":
            raise ParameterError(f"features must be a real numeric array, got dtype {X.dtype}")
        if X.shape[1] != self.dim:
            raise ModelError(
                f"features have {X.shape[1]} dimensions but the model expects {self.dim}; "
                "were they extracted with the model's feature configuration?"
            )
        return X

    def _chunk_size(self, chunk_size: int | None, n_frames: int) -> int:
        size = default_chunk_size(self.n_components) if chunk_size is None else int(chunk_size)
        if size < 1:
            raise ParameterError(f"chunk_size must be a positive number of frames, got "
                                 f"{chunk_size}")
        return max(1, min(size, n_frames))

    def _log_joint_into(self, x: np.ndarray, z: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Write ``log w_k + log N(x_t|k)`` (float32) into ``out`` (n, K) with one GEMM.

        ``z`` (n, 2D+1) float32 is scratch and holds ``[x - c, (x - c)², 1]`` afterwards.
        """
        W, c32, _ = self._kernel
        D = self.dim
        np.subtract(x, c32, out=z[:, :D], casting="same_kind")  # also casts float64 input
        np.square(z[:, :D], out=z[:, D:2 * D])
        z[:, 2 * D] = 1.0
        return np.matmul(z, W, out=out)

    @staticmethod
    def _exp_normalise(lj: np.ndarray, m: np.ndarray, s: np.ndarray, start: int):
        """In place: ``lj ← exp(lj - m)``, ``m`` ← row max, ``s`` ← row sum of the exps, so
        that ``log p(x_t) = m + log s`` and ``γ = lj / s``. FeatureError on a non-finite frame.
        """
        np.max(lj, axis=1, out=m)
        if not np.isfinite(m).all():
            bad = start + int(np.flatnonzero(~np.isfinite(m))[0])
            raise FeatureError(
                f"frame {bad}: features are not finite (NaN or inf) or too large for float32"
            )
        np.subtract(lj, m[:, None], out=lj)
        np.exp(lj, out=lj)  # float32: no subnormal slow path (see ARCHITECTURE.md)
        np.sum(lj, axis=1, out=s)
        return m, s

    def _chunks(self, X: np.ndarray, chunk_size: int | None, *, normalise: bool = True,
                out: np.ndarray | None = None):
        """Yield ``(start, z, lj, m, s)`` per chunk: ``lj`` (b, K) is the log joint, or with
        ``normalise`` the output of :meth:`_exp_normalise`; a row block of ``out`` if given.
        """
        N = X.shape[0]
        size = self._chunk_size(chunk_size, N)
        z = np.empty((size, 2 * self.dim + 1), np.float32)
        lj = np.empty((size, self.n_components), np.float32) if out is None else None
        m, s = np.empty(size, np.float32), np.empty(size, np.float32)
        for start in range(0, N, size):
            x = X[start:start + size]
            b = x.shape[0]
            lb = lj[:b] if out is None else out[start:start + b]
            self._log_joint_into(x, z[:b], lb)
            if normalise:
                self._exp_normalise(lb, m[:b], s[:b], start)
            yield start, z[:b], lb, m[:b], s[:b]

    def log_likelihood(self, X, *, chunk_size: int | None = None) -> np.ndarray:
        """Per-frame log-likelihood ``log p(x_t) = log Σ_k w_k N(x_t | μ_k, σ²_k)``.

        Parameters
        ----------
        X : array_like [shape=(N, D)]
            Features (float32 preferred; float64 is converted chunk by chunk).
        chunk_size : int, optional
            Frames per chunk (default :func:`default_chunk_size`); bounds memory to about
            ``chunk_size × K`` floats.

        Returns
        -------
        np.ndarray [shape=(N,), float64]
        """
        X = self._check_features(X)
        out = np.empty(X.shape[0], np.float64)
        for start, _, _, m, s in self._chunks(X, chunk_size):
            rows = out[start:start + m.shape[0]]
            np.log(s, out=rows, dtype=np.float64)
            rows += m
        return out

    def posteriors(self, X, *, chunk_size: int | None = None) -> np.ndarray:
        """Component posteriors ``γ_t(k) = p(k | x_t)``.

        Returns
        -------
        np.ndarray [shape=(N, K), float32]
            Rows sum to 1 (to float32 precision).
        """
        X = self._check_features(X)
        out = np.empty((X.shape[0], self.n_components), np.float32)
        for _, _, rows, _, s in self._chunks(X, chunk_size, out=out):
            rows /= s[:, None]
        return out

    def top_components(self, X, c: int, *, chunk_size: int | None = None) -> np.ndarray:
        """Indices of the ``c`` components with the highest ``w_k N(x_t|k)`` per frame.

        Used for top-C scoring: the UBM selects, the speaker model is evaluated only there.

        Parameters
        ----------
        X : array_like [shape=(N, D)]
        c : int
            1 <= c <= K.

        Returns
        -------
        np.ndarray [shape=(N, c), intp]
            Best component first.
        """
        X = self._check_features(X)
        K = self.n_components
        if not 1 <= int(c) <= K:
            raise ParameterError(f"c must be between 1 and the number of components {K}, got {c}")
        c = int(c)
        out = np.empty((X.shape[0], c), np.intp)
        for start, _, scores, _, _ in self._chunks(X, chunk_size, normalise=False):
            b = scores.shape[0]
            if c <= 8:
                # c passes of argmax, each masking its winner: ~8x faster than argpartition
                # over K for the usual c = 5, and already best first.
                rows = np.arange(b)
                for j in range(c):
                    best = np.argmax(scores, axis=1)
                    out[start:start + b, j] = best
                    scores[rows, best] = -np.inf
                continue
            # argpartition is O(K) per frame; only the c winners are then sorted.
            idx = np.argpartition(scores, K - c, axis=1)[:, K - c:]
            order = np.argsort(-np.take_along_axis(scores, idx, axis=1), axis=1, kind="stable")
            out[start:start + b] = np.take_along_axis(idx, order, axis=1)
        return out

    def accumulate(self, X, *, chunk_size: int | None = None,
                   posteriors: list | None = None) -> GMMStats:
        """Sufficient statistics of the frames ``X`` under this model (the E-step).

        Parameters
        ----------
        X : array_like [shape=(N, D)]
            Features (float32 preferred).
        chunk_size : int, optional
            Frames per chunk (default :func:`default_chunk_size`); the result does not
            depend on it beyond float32 rounding.
        posteriors : list, optional
            Receives each chunk's ``(frames, K)`` float32 posteriors, for a caller that needs
            them as well as the statistics (eigenchannel compensation): computed once.

        Returns
        -------
        GMMStats
            Statistics of shape (K,), (K, D), (K, D), summed in float64.

        Raises
        ------
        ModelError
            If the feature dimension differs from the model's (also in the other methods).
        FeatureError
            If a frame is not finite (also in the other methods).
        """
        X = self._check_features(X)
        K, D = self.n_components, self.dim
        size = self._chunk_size(chunk_size, X.shape[0])
        keep = posteriors is not None
        starts = range(0, X.shape[0], size)
        group = 4 * local_threads()  # chunks in flight: memory bounded whatever N is
        total = np.zeros((K, 2 * D + 1), np.float64)
        llk = 0.0
        for g in range(0, len(starts), group):
            parts = thread_map(lambda start: self._chunk_stats(X, start, size, keep),
                               starts[g:g + group])
            for part, chunk_llk, post in parts:  # chunk order: the same sum wherever it ran
                llk += chunk_llk
                total += part
                if keep:
                    posteriors.append(post)
        c = self._kernel[2]
        n = total[:, 2 * D]
        f_c, s_c = total[:, :D], total[:, D:2 * D]
        # Undo the shift exactly, in float64: x = x' + c.
        f = f_c + n[:, None] * c
        s2 = s_c + 2.0 * c * f_c + n[:, None] * (c * c)
        return GMMStats(n, f, s2, llk, X.shape[0])

    def _chunk_stats(self, X: np.ndarray, start: int, size: int, keep: bool):
        """One chunk's E-step: ``(part, llk, posteriors or None)`` with ``part`` (K, 2D+1)
        float32 = ``[f', s', n]`` about the shift ``c``. Scratch buffers are per thread."""
        x = X[start:start + size]
        b = x.shape[0]
        z, lj, m, s = _scratch(b, self.n_components, self.dim)
        self._log_joint_into(x, z, lj)
        self._exp_normalise(lj, m, s, start)
        llk = float(m.sum(dtype=np.float64)) + float(np.log(s, dtype=np.float64).sum())
        # Normalise the posteriors by scaling z's rows (2D+1 wide) instead of lj's (K).
        np.reciprocal(s, out=s)
        post = lj * s[:, None] if keep else None
        z *= s[:, None]
        return np.matmul(lj.T, z), llk, post

    # -- M-step --------------------------------------------------------------------------

    def m_step(self, stats: GMMStats, *, variance_floor=1e-3,
               min_weight: float = 1e-5) -> "DiagGMM":
        """Maximum-likelihood parameters from statistics (the M-step of EM).

        Parameters
        ----------
        stats : GMMStats
            Statistics accumulated under this model (summed over all data).
        variance_floor : float or array_like [shape=(D,)]
            Absolute lower bound on every variance (> 0). The default suits CMVN-normalised
            features; for others pass e.g. ``0.01 * global_variance``.
        min_weight : float
            Components whose new weight ``n_k / Σ n`` is below this (and any with ``n_k = 0``)
            keep their previous mean and variance, because so few frames give no reliable
            estimate (and none at all for ``n_k = 0``, which would be NaN). Their weight is
            still ``n_k / Σ n``. This method does not re-seed them: the caller (UBM training)
            finds them with ``stats.starved(min_weight)`` and decides.

        Returns
        -------
        DiagGMM
            The new model, carrying a copy of this model's metadata.
        """
        K, D = self.n_components, self.dim
        if stats.f.shape != (K, D):
            raise ModelError(
                f"statistics have shape (K, D) = {stats.f.shape} but the model is {(K, D)}"
            )
        floor = np.asarray(variance_floor, dtype=np.float64)
        if floor.shape not in ((), (D,)) or not np.all(np.isfinite(floor)) or np.any(floor <= 0):
            raise ParameterError(
                f"variance_floor must be a positive finite scalar or a ({D},) array, "
                f"got {variance_floor!r}"
            )
        total = stats.n.sum()
        if not total > 0:
            raise ParameterError("the statistics hold no posterior mass (no frames): nothing "
                                 "to fit")
        weights = stats.n / total
        ok = (weights >= min_weight) & (stats.n > 0)
        means = self._means.copy()
        variances = self._variances.copy()
        n_ok = stats.n[ok, None]
        means[ok] = stats.f[ok] / n_ok
        variances[ok] = stats.s[ok] / n_ok - means[ok] ** 2
        np.maximum(variances, floor, out=variances)
        return DiagGMM(weights, means, variances, metadata=self.metadata)

    # -- files ---------------------------------------------------------------------------

    def save(self, path: str | os.PathLike, *, metadata: Mapping[str, Any] | None = None) -> None:
        """Write the model to ``path`` (``.npz``) atomically.

        Parameters
        ----------
        path : path-like
        metadata : dict, optional
            JSON-serialisable; defaults to :attr:`metadata`. Stored with the format name,
            format version and library version.
        """
        write_npz(path, {"weights": self._weights, "means": self._means,
                         "variances": self._variances},
                  format_name=FORMAT_NAME, format_version=FORMAT_VERSION,
                  metadata=self.metadata if metadata is None else metadata)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "DiagGMM":
        """Read a model written by :meth:`save`, checking everything.

        Raises
        ------
        ModelError
            Naming the path and the problem: missing file, not an npz, pickled objects,
            missing arrays, wrong format or version, or invalid parameters.
        """
        path = Path(path)
        arrays, header = read_npz(path, ("weights", "means", "variances"),
                                  format_name=FORMAT_NAME, format_version=FORMAT_VERSION)
        try:
            model = cls(arrays["weights"], arrays["means"], arrays["variances"],
                        metadata=header["metadata"])
        except ModelError as exc:
            raise ModelError(f"{path}: {exc}") from exc
        recorded = header["metadata"].get("feature_config")
        if recorded is not None:  # what the features will be checked against, checked first
            from ..frontend.config import FeatureConfig

            try:
                FeatureConfig.from_dict(recorded)
            except FeatureError as exc:
                raise ModelError(f"{path}: the feature config it records is unusable ({exc}); "
                                 "the file is damaged or was edited") from None
        model.file_header = {k: v for k, v in header.items() if k != "metadata"}
        return model

    def describe(self) -> str:
        """A human-readable multi-line summary (used by ``speakergmm info MODEL``)."""
        w, var = self._weights, self._variances
        lines = [
            "speakergmm diagonal GMM",
            f"  components (K): {self.n_components}",
            f"  dimension (D):  {self.dim}",
            f"  weights:        min {w.min():.3g}, max {w.max():.3g}, "
            f"zero {int(np.sum(w == 0))}",
            f"  variances:      min {var.min():.3g}, median {np.median(var):.3g}, "
            f"max {var.max():.3g}",
            f"  fingerprint:    {self.fingerprint()}",
        ]
        if self.file_header:
            lines.append(f"  written by:     speakergmm {self.file_header.get('library_version')}"
                         f" ({self.file_header.get('format')} v"
                         f"{self.file_header.get('format_version')})")
        if self.metadata:
            lines.append("  metadata:")
            for key in sorted(self.metadata):
                text = json.dumps(self.metadata[key], sort_keys=True)
                if len(text) > 70:
                    text = text[:67] + "..."
                lines.append(f"    {key}: {text}")
        return "\n".join(lines)


def check_feature_config(model: DiagGMM, features) -> None:
    """ArchiveError naming the archive and the fix if ``features`` (anything with a
    ``config``: a feature or statistics archive) were made with another feature config
    than the one ``model`` was trained on (its ``metadata["feature_config"]``); ModelError
    if the model records none to check them against (it was trained on plain arrays).

    Plain arrays (features without a recorded config) are taken as they are: there is
    nothing to compare.
    """
    recorded = model.metadata.get("feature_config")
    config = getattr(features, "config", None)
    if config is None:
        return
    if recorded is None:
        where = getattr(features, "path", "the features")
        raise ModelError(f"the model records no feature config, so {where} (extracted with "
                         "one) cannot be checked against it; train it on a feature archive "
                         "(train_ubm records its config) or give its metadata the "
                         "'feature_config' the features were made with")
    from ..frontend.config import FeatureConfig

    if config != FeatureConfig.from_dict(recorded):
        where = getattr(features, "path", "the features")
        raise ArchiveError(f"{where} was extracted with another feature config than the UBM "
                           "was trained with; re-extract it with the UBM's config")


def _validate_params(weights, means, variances) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return read-only float64 copies of the parameters, or raise ModelError saying why."""
    try:
        w = np.array(weights, dtype=np.float64)
        mu = np.array(means, dtype=np.float64)
        var = np.array(variances, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"GMM parameters must be real numeric arrays ({exc})") from exc
    if mu.ndim != 2 or mu.shape[0] < 1 or mu.shape[1] < 1:
        raise ModelError(f"means must have shape (K, D) with K, D >= 1, got {mu.shape}")
    if w.shape != (mu.shape[0],):
        raise ModelError(f"weights have shape {w.shape}, expected ({mu.shape[0]},) to match means")
    if var.shape != mu.shape:
        raise ModelError(f"variances have shape {var.shape}, expected {mu.shape} to match means")
    for name, arr in (("weights", w), ("means", mu), ("variances", var)):
        if not np.all(np.isfinite(arr)):
            raise ModelError(f"{name} contain {int(np.sum(~np.isfinite(arr)))} non-finite values")
    if np.any(var <= 0):
        raise ModelError(
            f"variances must be > 0, {int(np.sum(var <= 0))} are not (min {var.min():.3g}); "
            "train with a variance floor"
        )
    if np.any(w < 0):
        raise ModelError(f"weights must be >= 0, min is {w.min():.3g}")
    if abs(w.sum() - 1.0) > _WEIGHT_TOL:
        raise ModelError(f"weights sum to {w.sum():.9g}, expected 1 (within {_WEIGHT_TOL:g})")
    # Scoring runs in float32 on μ/σ², 1/σ² and μ²/σ²: finite but extreme parameters would
    # overflow there and be taken for bad features.
    with np.errstate(over="ignore"):
        centred = mu - w @ mu
        largest = float(np.max(np.abs(centred) * (1.0 + np.abs(centred)) / var))
    if not largest < _MAX_KERNEL:
        raise ModelError(f"parameters too extreme to score in float32 (|μ|/σ² and μ²/σ² up to "
                         f"{largest:.3g}: means up to {np.abs(mu).max():.3g}, variances down to "
                         f"{var.min():.3g}); the model is damaged, or was trained on "
                         "unnormalised features")
    for arr in (w, mu, var):
        arr.setflags(write=False)
    return w, mu, var
