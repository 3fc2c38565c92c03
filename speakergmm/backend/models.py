"""Speaker models stacked for vectorised scoring against a UBM (:class:`ModelSet`).

In UBM-whitened coordinates ``y = (x - μ_k)/σ_k`` a speaker component's log joint is the
UBM's plus ``e_mk(y) = b_mk + y·A_mk + y²·B_mk``; for means-only MAP (the usual case)
``A = (μ_mk - μ_k)/σ_k``, ``B = 0``, ``b = -½‖A‖²``. :class:`ModelSet` holds M models as one
(K, M, W) float32 tensor ``[A, b]`` (W = D+1, means-only) or ``[A, b, B]`` (W = 2D+1),
which :mod:`speakergmm.backend.scoring` multiplies with a test's whitened frames. A set made
from statistics (:meth:`ModelSet.from_statistics`, what identification against a store
reads) keeps them as they are, with the biases, and makes the tensor only when a scoring
path needs it (top-C over many models does not).
"""

from __future__ import annotations

import weakref
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..errors import ModelError
from ..gmm.adapt import SpeakerModel, map_offset_bias
from ..gmm.mixture import DiagGMM

__all__ = ["ModelSet", "stack_models"]

# Relative tolerance for "this model shares the UBM's weights and variances": float32 storage
# rounds at 6e-8, so models that went through a float32 store are still recognised.
_SHARED_RTOL = 1e-6
# Stand-in for log 0 (a zero speaker weight): exp() of it is exactly 0 in float32, and unlike
# -inf it never makes NaN in a product or a subtraction.
_LOG_ZERO = np.float32(-1e30)
# Models per block when building a ModelSet (float64 temporaries of Mb × K × D).
_BUILD_BLOCK = 64


class _UBMTerms:
    """Per-UBM constants: fingerprint, float32 means and 1/σ, ``log w_k - ½Σ log 2πσ²_k``."""

    def __init__(self, ubm: DiagGMM):
        self.fingerprint = ubm.fingerprint()
        self.mu32 = ubm.means.astype(np.float32)
        self.isig32 = (1.0 / np.sqrt(ubm.variances)).astype(np.float32)
        w = ubm.weights
        log_w = np.where(w > 0, np.log(np.where(w > 0, w, 1.0)), float(_LOG_ZERO))
        self.h = log_w - 0.5 * np.sum(np.log(2.0 * np.pi * ubm.variances), axis=1)


# DiagGMM is immutable: its constants and fingerprint (a SHA-256 of its parameters) are
# computed once per object, not once per trial.
_TERMS: "weakref.WeakKeyDictionary[DiagGMM, _UBMTerms]" = weakref.WeakKeyDictionary()


def _terms(ubm: DiagGMM) -> _UBMTerms:
    if ubm not in _TERMS:
        _TERMS[ubm] = _UBMTerms(ubm)
    return _TERMS[ubm]


class ModelSet:
    """M speaker models adapted from one UBM, stacked for vectorised scoring.

    Parameters
    ----------
    ubm : DiagGMM
        The UBM (K components, D dimensions) the models were adapted from.
    means : array_like [shape=(M, K, D)]
    weights : array_like [shape=(M, K)], optional
    variances : array_like [shape=(M, K, D)], optional
        Default: the UBM's, for every model.
    ids : sequence of str, optional
        Unique model identifiers (default ``"0" .. "M-1"``).

    Notes
    -----
    If every model's weights and variances are the UBM's (to 1e-6 relative, so float32-stored
    models qualify) -- means-only MAP, :attr:`means_only` -- only a (K, M, D+1) float32 tensor
    of whitened offsets and biases is kept, else (K, M, 2D+1); the inputs are not kept. It is
    built in blocks of models: a float32 ``means`` adds only that tensor to peak memory.
    """

    def __init__(self, ubm: DiagGMM, means, *, weights=None, variances=None,
                 ids: Sequence[str] | None = None):
        K, D = ubm.n_components, ubm.dim
        means = np.asarray(means)
        M = means.shape[0] if means.ndim == 3 else -1
        for name, arr, shape in (("means", means, (M, K, D)), ("weights", weights, (M, K)),
                                 ("variances", variances, (M, K, D))):
            if arr is not None and np.shape(arr) != shape:
                raise ModelError(f"{name} have shape {np.shape(arr)}; expected (M, K, D) for "
                                 f"means and variances, (M, K) for weights, (K, D) = {(K, D)}")
        shared = (weights is None or _shares(ubm.weights, weights)) and (
            variances is None or _shares(ubm.variances, variances))
        self._init(ubm, M, ids, shared, lambda m0, m1: (
            None if weights is None else weights[m0:m1], means[m0:m1],
            None if variances is None else variances[m0:m1]))

    @classmethod
    def from_arrays(cls, ubm: DiagGMM, means, *, weights=None, variances=None,
                    ids: Sequence[str] | None = None) -> "ModelSet":
        """Same as the constructor: stack raw (M, K) weights, (M, K, D) means and variances."""
        return cls(ubm, means, weights=weights, variances=variances, ids=ids)

    @classmethod
    def from_models(cls, ubm: DiagGMM, models: Iterable[DiagGMM] | Mapping[str, DiagGMM],
                    ids: Sequence[str] | None = None) -> "ModelSet":
        """Stack adapted models (a sequence, or a mapping id → model that also gives the ids).

        Raises
        ------
        ModelError
            If a model's shape differs from the UBM's, or its ``metadata["adaptation"]``
            (written by :func:`~speakergmm.gmm.adapt.map_adapt`) names another UBM.
        """
        if isinstance(models, Mapping):
            ids = list(models.keys()) if ids is None else ids
        models = list(models.values() if isinstance(models, Mapping) else models)
        fp = _terms(ubm).fingerprint
        for i, g in enumerate(models):
            name = ids[i] if ids is not None and i < len(ids) else i
            if not isinstance(g, DiagGMM) or g.means.shape != ubm.means.shape:
                raise ModelError(f"model {name!r} is not a DiagGMM of (K, D) = "
                                 f"{ubm.means.shape} like the UBM")
            src = (g.metadata.get("adaptation") or {}).get("ubm_fingerprint")
            if src is not None and src != fp:
                raise ModelError(f"model {name!r} was adapted from UBM {src}, not {fp}")
        shared = all(_shares(ubm.weights, g.weights) and _shares(ubm.variances, g.variances)
                     for g in models)
        self = cls.__new__(cls)
        self._init(ubm, len(models), ids, shared, lambda m0, m1: (
            np.stack([g.weights for g in models[m0:m1]]),
            np.stack([g.means for g in models[m0:m1]]),
            np.stack([g.variances for g in models[m0:m1]])))
        return self

    def _identify(self, ubm, M, ids, shared) -> None:
        ids = tuple(str(i) for i in (range(M) if ids is None else ids))
        if M == 0 or len(ids) != M or len(set(ids)) != M:
            raise ModelError(f"a ModelSet needs one or more models, each with a unique id: "
                             f"got {M} models, {len(ids)} ids, {len(set(ids))} distinct")
        self.ids = ids
        self._index = {name: m for m, name in enumerate(ids)}
        self.ubm_fingerprint = _terms(ubm).fingerprint
        self.means_only = bool(shared)
        self.n_components, self.dim = ubm.n_components, ubm.dim
        self._stats: _MeansStatistics | None = None

    def _init(self, ubm, M, ids, shared, block, offsets=None):
        self._identify(ubm, M, ids, shared)
        K, D = ubm.n_components, ubm.dim
        W = D + 1 if shared else 2 * D + 1
        self._kernel_array = kernel = np.empty((K, M, W), np.float32)
        isig = 1.0 / np.sqrt(ubm.variances)
        for m0 in range(0, M, _BUILD_BLOCK):
            m1 = min(M, m0 + _BUILD_BLOCK)
            out = kernel[:, m0:m1]  # (K, Mb, W) view
            if offsets is not None:
                offsets(out, m0, m1)
            elif shared:
                w_b, mu_b, var_b = block(m0, m1)
                # Whitened offsets and their bias in float64, written straight into the view.
                a = np.subtract(mu_b, ubm.means, dtype=np.float64)
                a *= isig
                _write_offsets(out, a)
            else:
                w_b, mu_b, var_b = block(m0, m1)
                b = _general_kernel(ubm, w_b, np.subtract(mu_b, ubm.means, dtype=np.float64),
                                    var_b)
                out[...] = b.transpose(1, 0, 2)
            if not np.all(np.isfinite(out)):
                raise ModelError(f"models {m0}..{m1 - 1} have non-finite parameters")
        kernel.setflags(write=False)

    @property
    def _kernel(self) -> np.ndarray:
        """The (K, M, W) float32 scoring tensor; a set built from statistics makes it when
        first needed (top-C scoring of many models does without it)."""
        if self._kernel_array is None:
            st = self._stats.ready()
            self._kernel_array = np.empty((self.n_components, len(self), self.dim + 1),
                                          np.float32)
            for m0 in range(0, len(self), _BUILD_BLOCK):
                m1 = min(len(self), m0 + _BUILD_BLOCK)
                out = self._kernel_array[:, m0:m1]
                t = _terms(st.ubm)
                a = st.n[m0:m1, :, None] * -t.mu32  # contiguous passes: faster than strided
                a += st.f[m0:m1]
                a *= st.scale_t.T[m0:m1, :, None]
                a *= t.isig32
                out[:, :, :self.dim] = a.transpose(1, 0, 2)
                out[:, :, self.dim] = st.bias_t[:, m0:m1]
            self._kernel_array.setflags(write=False)
        return self._kernel_array

    @classmethod
    def from_statistics(cls, ubm: DiagGMM, n, f, *, relevance: float,
                        ids: Sequence[str] | None = None, bias=None) -> "ModelSet":
        """Means-only relevance-MAP models straight from their statistics, in float32.

        The whitened offset of an adapted mean is ``A = s (f_k - n_k μ_k) / σ_k`` with
        ``s = 1/(n_k + r)``, so ``y·A = s (u·f_k - n_k u·μ_k)`` with ``u = y/σ_k``: top-C
        scoring of many models multiplies the test's pairs with the statistics as they are,
        and only the biases ``-½‖A‖²`` are computed up front (one pass), not the whitened
        (K, M, D+1) tensor (a transposed copy of everything, which is what identification
        over a large store spent its time on). Equal to ``ModelSet(ubm,
        map_parameters(...)[1])`` to float32 rounding (tested).

        Parameters
        ----------
        n : array_like [shape=(M, K)]
        f : array_like [shape=(M, K, D)]
        relevance : float
        bias : array_like [shape=(M, K)], optional
            The models' :func:`~speakergmm.gmm.adapt.map_offset_bias`, if kept (a store
            keeps them); else made when the set is first scored.

        Non-finite statistics raise ModelError when the set is first scored.
        """
        K, D = ubm.n_components, ubm.dim
        n, f = np.asarray(n, np.float32), np.asarray(f, np.float32)
        if n.ndim != 2 or n.shape[1] != K or f.shape != (n.shape[0], K, D):
            raise ModelError(f"statistics of shapes {n.shape} and {f.shape} do not fit a UBM "
                             f"of (K, D) = {(K, D)}")
        self = cls.__new__(cls)
        self._identify(ubm, n.shape[0], ids, True)
        if bias is not None:
            bias = np.asarray(bias, np.float32)
            if bias.shape != n.shape:
                raise ModelError(f"biases of shape {bias.shape} do not fit statistics of "
                                 f"shape {n.shape}")
        self._stats = _MeansStatistics(ubm, n, f, relevance, bias)
        self._kernel_array = None
        return self

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, model_id) -> bool:
        return model_id in self._index

    def __repr__(self) -> str:
        kind = "means-only" if self.means_only else "general"
        return (f"ModelSet(M={len(self)}, K={self.n_components}, D={self.dim}, {kind}, "
                f"ubm={self.ubm_fingerprint}, {self.nbytes / 2**20:.1f} MiB)")

    @property
    def nbytes(self) -> int:
        """Bytes held by the stacked parameters."""
        if self._kernel_array is None:
            return self._stats.nbytes
        return self._kernel_array.nbytes + (0 if self._stats is None else self._stats.nbytes)

    def index(self, model_id: str) -> int:
        """Row of ``model_id``; ModelError if it is not in the set."""
        try:
            return self._index[model_id]
        except KeyError:
            raise ModelError(f"no model {model_id!r} in this model set") from None

    def model(self, ubm: DiagGMM, model: str | int) -> DiagGMM:
        """One model (by id or row) rebuilt as a DiagGMM, to float32 precision."""
        m = model if isinstance(model, (int, np.integer)) else self.index(model)
        if _terms(ubm).fingerprint != self.ubm_fingerprint:
            raise ModelError(f"the model set was adapted from UBM {self.ubm_fingerprint}, "
                             f"not {_terms(ubm).fingerprint}")
        D, sig = self.dim, np.sqrt(ubm.variances)
        k = self._kernel[:, m].astype(np.float64)  # (K, W)
        if self.means_only:
            return DiagGMM(ubm.weights, ubm.means + k[:, :D] * sig, ubm.variances)
        rho = 1.0 - 2.0 * k[:, D + 1:]  # inverse of _general_kernel
        z = k[:, :D] / rho
        log_ratio = k[:, D] + 0.5 * np.sum(rho * z * z - np.log(rho), axis=1)
        w = ubm.weights * np.exp(np.minimum(log_ratio, 700.0))
        return DiagGMM(w / w.sum(), ubm.means + z * sig, ubm.variances / rho)

    def select(self, model_ids: Sequence[str]) -> "ModelSet":
        """A new set of the given models, in that order (copies their rows)."""
        rows = [self.index(m) for m in model_ids]
        new = ModelSet.__new__(ModelSet)
        new.__dict__.update(self.__dict__)
        new.ids = tuple(model_ids)
        new._index = {name: m for m, name in enumerate(new.ids)}
        if self._kernel_array is not None:
            new._kernel_array = self._kernel_array[:, rows]
            new._kernel_array.setflags(write=False)
        if self._stats is not None:
            new._stats = self._stats.select(rows)
        return new


class _MeansStatistics:
    """Means-only MAP models kept as their statistics (see :meth:`ModelSet.from_statistics`):
    ``n`` (M, K), ``f`` (M, K, D) float32, the biases ``-½‖A‖²`` (M, K) when known, and,
    made on first use, the shrinkage ``scale = 1/(n + r)`` and the biases if unknown."""

    __slots__ = ("n", "f", "relevance", "ubm", "bias", "scale_t", "shift_t", "bias_t")

    def __init__(self, ubm: DiagGMM, n, f, relevance, bias=None):
        self.n, self.f, self.relevance, self.ubm, self.bias = n, f, relevance, ubm, bias
        self.bias_t = None

    def ready(self) -> "_MeansStatistics":
        if self.bias_t is not None:
            return self
        n = self.n
        with np.errstate(all="ignore"):  # (a bad relevance or count is refused below)
            scale = 1.0 / (n + np.float32(self.relevance))
        bias = self.bias
        if bias is None:
            bias = map_offset_bias(self.ubm, n, self.f, relevance=self.relevance)
        bad = ~(np.isfinite(bias) & np.isfinite(scale)).all(axis=1)
        if bad.any():
            raise ModelError(f"model {int(np.argmax(bad))} has non-finite parameters "
                             "(statistics, relevance or bias)")
        # Per component, across models (K, M): what the top-C GEMMs scale and shift by.
        self.scale_t = np.ascontiguousarray(scale.T)
        self.shift_t = np.ascontiguousarray((scale * n).T)
        self.bias, self.bias_t = bias, np.ascontiguousarray(bias.T)
        return self

    @property
    def nbytes(self) -> int:
        return self.n.nbytes * (1 if self.bias_t is None else 5) + self.f.nbytes

    def select(self, rows) -> "_MeansStatistics":
        return _MeansStatistics(self.ubm, self.n[rows], self.f[rows], self.relevance,
                                None if self.bias is None else self.bias[rows])


def _write_offsets(out: np.ndarray, a: np.ndarray) -> None:
    """Whitened mean offsets ``a`` (Mb, K, D) and their biases ``-½|a|²`` into a block
    ``out`` (K, Mb, D+1) of a means-only kernel."""
    D = a.shape[2]
    b = np.einsum("mkd,mkd->mk", a, a)
    b *= -0.5
    out[:, :, :D] = a.transpose(1, 0, 2)
    out[:, :, D] = b.T


def _shares(ubm_param: np.ndarray, param) -> bool:
    """True if every model's ``param`` (one or a stack) is the UBM's to float32 rounding."""
    param = np.asarray(param)
    stack = param.reshape((-1,) + ubm_param.shape)
    tol = _SHARED_RTOL * np.abs(ubm_param)
    return all(np.all(np.abs(np.subtract(stack[i:i + _BUILD_BLOCK], ubm_param, dtype=np.float64))
                      <= tol) for i in range(0, stack.shape[0], _BUILD_BLOCK))


def _general_kernel(ubm: DiagGMM, w_b, delta, var_b) -> np.ndarray:
    """``[A, b, B]`` (Mb, K, 2D+1) for models with their own weights and/or variances.

    With ``y = (x - μ_k)/σ_k``, ``δ = μ_mk - μ_k`` and ``ρ = σ²_k/σ²_mk``, the speaker's log
    joint minus the UBM's is ``b + y·A + y²·B`` with ``A = ρ δ/σ_k``, ``B = -½(ρ - 1)`` and
    ``b = log(w_mk/w_k) - ½Σ log(1/ρ) - ½Σ ρ δ²/σ²_k``.
    """
    w, var = ubm.weights, ubm.variances
    w_b = w[None] if w_b is None else np.asarray(w_b, np.float64)
    var_b = var[None] if var_b is None else np.asarray(var_b, np.float64)
    if not (np.all(var_b > 0) and np.all(w_b >= 0)):  # NaN fails too
        raise ModelError("model variances must be > 0 and weights >= 0")
    rho = var / var_b
    z = delta / np.sqrt(var)  # whitened offset
    log_ratio = np.log(np.where(w_b > 0, w_b, 1.0)) - np.log(np.where(w > 0, w, 1.0))
    # A UBM component of weight 0 has posterior 0 and is never counted: ratio 1 keeps it so.
    log_ratio = np.where(w == 0, 0.0, np.where(w_b > 0, log_ratio, float(_LOG_ZERO)))
    b = log_ratio + 0.5 * np.sum(np.log(rho) - rho * z * z, axis=2)
    return np.concatenate([rho * z, b[..., None], -0.5 * (rho - 1.0)], axis=2)


def stack_models(ubm: DiagGMM, speakers: Sequence[SpeakerModel],
                 ids: Sequence[str] | None = None) -> ModelSet:
    """Speakers' statistics MAP-adapted and stacked for scoring (means-only when every
    speaker adapted its means only)."""
    means, weights, variances = [], [], []
    for speaker in speakers:
        adapted = speaker.adapted(ubm)
        means.append(adapted.means.astype(np.float32))
        weights.append(adapted.weights)
        variances.append(adapted.variances.astype(np.float32))
    shared = all(tuple(s.adapt) == ("means",) for s in speakers)
    return ModelSet(ubm, np.stack(means), ids=None if ids is None else list(ids),
                    weights=None if shared else np.stack(weights),
                    variances=None if shared else np.stack(variances))
