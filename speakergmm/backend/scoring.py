"""Log-likelihood-ratio scoring of test utterances against speaker models adapted from a UBM.

The score of a test utterance X (N frames) against a speaker is the average per-frame LLR

    (1/N) Σ_t [log p(x_t | speaker) - log p(x_t | UBM)],

computed by one of three methods:

``"full"``
    Every component of both models: ``DiagGMM.log_likelihood`` of each, per model.
``"topc"`` (default, C = 5)
    Reynolds et al. (2000) fast scoring: ``ubm.top_components`` picks the C best UBM
    components of each frame and BOTH log-likelihoods are sums over only those C components.
``"linear"``
    Glembek et al. (ICASSP 2009) first-order Taylor approximation around the UBM, means only:
    with the test statistics (n, f) under the UBM (``ubm.accumulate``), N their frame count,
    ``(1/N) Σ_k (μ_spk,k - μ_k)ᵀ Σ_k⁻¹ (f_k - n_k μ_k)``: the term of the (posterior-weighted)
    log-likelihood ratio that is linear in the speaker's mean offset, expanded at the UBM;
    the quadratic term ``-½ n_k ‖μ_spk,k - μ_k‖²_Σk⁻¹`` is dropped and the speaker's weights
    and variances are ignored. No channel term. One dot product per model.

**Top-C, speaker relative to the UBM.** In UBM-whitened coordinates ``y = (x - μ_k)/σ_k``
a speaker component's log joint is the UBM's plus ``e_mk(y) = b_mk + y·A_mk + y²·B_mk``; for
means-only MAP (the usual case) ``A = (μ_mk - μ_k)/σ_k``, ``B = 0``, ``b = -½‖A‖²``. A
frame's LLR is ``log Σ_j π_tj exp(e_mj(y_tj))``, ``π`` the UBM posteriors over its C
components: a log of small numbers, never a difference of two large log-likelihoods, so
float32 stays accurate. ``ubm.top_components`` picks the pairs; the UBM log joint there
comes from the same ``y`` (``log w_k - ½Σ log 2πσ²_k - ½‖y‖²``).

**Vectorised over models.** :class:`~speakergmm.backend.models.ModelSet` holds M models
as one (K, M, W) float32 tensor ``[A, b]`` (W = D+1, means-only) or ``[A, b, B]``
(W = 2D+1). For top-C the N·C pairs are
grouped by component, one small GEMM ``[y, 1, y²] (n_k × W) · kernel_k (W × M)`` per used
component (a gather for a few models), then a float32 log-sum-exp over C; frame sums are
float64. Linear scoring is one batched GEMV over the same tensor. A set made from
statistics (:meth:`ModelSet.from_statistics`, what identification against a store reads)
skips the tensor for top-C over many models: since ``A = s (f - n μ)/σ``, the GEMM takes
``y/σ`` against the stored ``f`` directly and the result is scaled by ``s`` and shifted,
so its time is reading the statistics and the N·C × M log-sum-exp;
tests/benchmarks/bench_scoring.py and bench_store.py measure it.
"""


from __future__ import annotations

import itertools
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..constants import DEFAULT_C
from ..constants import SCORING_METHODS as METHODS
from ..errors import FeatureError, ModelError, ParameterError
from ..gmm.mixture import DiagGMM
from ..gmm.stats import centred_first_order
from .models import ModelSet, _MeansStatistics, _terms, _UBMTerms

__all__ = ["METHODS", "DEFAULT_C", "ModelSet", "check_method", "TestUtterance", "prepare_test",
           "score", "score_rows", "llr", "score_trials"]


# Bytes of the float32 (pairs × models) block of frame LLR terms: bounds memory whatever the
# number of models. Measured (K=512, D=60, 300 frames, C=5, 1,000 / 10,000 models, loaded
# 2-core machine): 4 MiB blocks 49 / 415 ms; 16-128 MiB 31-42 / 306-375 ms, within noise.
_BLOCK_BYTES = 32 << 20
# Below this many bytes of gathered (pairs × models × W) kernel rows, top-C gathers the rows
# per pair instead of one GEMM per used component. Measured at 1500 pairs, K=512, W=61: with
# 1 / 16 / 32 models the gather takes 0.09 / 1.1 / 3.4 ms, the ~450 GEMM calls 2.2 / 3.1 /
# 3.3 ms (call overhead), so the crossover is near 12 MiB.
_GATHER_BYTES = 6 << 20
# Frames per chunk for top-C (pairs = chunk × C).
_TOPC_FRAMES = 2048
# Whitened top-C pairs of a test utterance kept between model sets up to this size.
_KEEP_PAIR_BYTES = 64 << 20

# -- the test side ------------------------------------------------------------------------------

def check_method(method: str, c: int, n_components: int) -> None:
    """ValueError unless ``method`` is one of :data:`METHODS` and, for top-C, ``c`` lies in
    [1, K]: checked before any work, so that a bad option fails at once."""
    if method not in METHODS:
        raise ParameterError(f"unknown scoring method {method!r}: choose from {', '.join(METHODS)}")
    if method == "topc" and not 1 <= int(c) <= n_components:
        raise ParameterError(f"top-C scoring keeps C of the UBM's {n_components} components: C "
                         f"(--top-c) must lie in 1..{n_components}, got {c}")


def _check(ubm: DiagGMM, X, method: str, c: int) -> np.ndarray:
    """Validate the method, ``c`` and the test features; return the features as float32."""
    check_method(method, c, ubm.n_components)
    if X is None:
        return X
    X = np.asarray(X)
    if X.ndim != 2 or X.dtype.kind not in "fiu":
        raise FeatureError(f"test features must be a 2-D real (frames, dims) array, "
                           f"got shape {X.shape}, dtype {X.dtype}")
    if X.shape[1] != ubm.dim:
        raise ModelError(f"test features have {X.shape[1]} dimensions but the UBM expects "
                         f"{ubm.dim}; were they extracted with the model's feature config?")
    if X.shape[0] == 0:
        raise FeatureError("test features have no frames: nothing to score")
    X = np.asarray(X, np.float32)
    if not np.all(np.isfinite(X)):
        raise FeatureError("test features are not finite (NaN or inf)")
    return X


def _whiten(t: _UBMTerms, x: np.ndarray, k: np.ndarray, width: int):
    """``[y, 1, y²]`` (first ``width`` columns) of frames ``x`` (P, D) at components ``k`` (P,),
    and the UBM log joint ``log w_k N(x|k)`` there (P,), float32."""
    D = x.shape[1]
    z = np.empty((x.shape[0], width), np.float32)
    y = z[:, :D]
    np.subtract(x, t.mu32[k], out=y)
    y *= t.isig32[k]
    z[:, D] = 1.0
    if width > D + 1:
        np.square(y, out=z[:, D + 1:])
    a = t.h[k] - 0.5 * np.einsum("pd,pd->p", y, y, dtype=np.float64)
    return z, a.astype(np.float32)


def _lse_frames(E: np.ndarray, axis: int) -> np.ndarray:
    """Σ over frames of the log-sum-exp along ``axis`` of ``E`` (already holding log π + e):
    float32 in place, frame sums in float64. ``E`` is (frames, C, M) or (K, frames, M)."""
    mx = E.max(axis=axis, keepdims=True)
    E -= mx
    np.exp(E, out=E)
    s = E.sum(axis=axis)
    np.log(s, out=s)
    s += np.squeeze(mx, axis)
    return s.sum(axis=0, dtype=np.float64)


class _PairChunk:
    """The model-independent part of top-C scoring for a chunk of frames: the (frame,
    component) pairs grouped by component, their whitened ``[y, 1, y²]`` rows and the UBM
    log posteriors over each frame's C components."""

    __slots__ = ("n", "P", "ks", "starts", "ends", "z", "inv", "lp")


def _pair_chunks(t: _UBMTerms, X: np.ndarray, top: np.ndarray, W: int) -> Iterator[_PairChunk]:
    C = top.shape[1]
    for f0 in range(0, X.shape[0], _TOPC_FRAMES):
        x, tp = X[f0:f0 + _TOPC_FRAMES], top[f0:f0 + _TOPC_FRAMES]
        ch = _PairChunk()
        ch.n, ch.P = x.shape[0], x.shape[0] * C
        # Group the (frame, component) pairs by component: one GEMM per used component.
        kf = tp.ravel()
        order = np.argsort(kf, kind="stable")
        ch.ks = kf[order]
        cuts = np.flatnonzero(np.diff(ch.ks)) + 1
        ch.starts, ch.ends = np.r_[0, cuts], np.r_[cuts, ch.P]
        ch.z, a = _whiten(t, x[order // C], ch.ks, W)
        ch.inv = np.empty_like(order)
        ch.inv[order] = np.arange(ch.P)
        # UBM posteriors over the C selected components, frame-major (n, C, 1).
        lp = a[ch.inv].reshape(ch.n, C)
        lp -= lp.max(axis=1, keepdims=True)
        lp -= np.log(np.exp(lp).sum(axis=1, keepdims=True))
        ch.lp = lp[:, :, None]
        yield ch


def _score_topc(ms: ModelSet, chunks: Iterable[_PairChunk]) -> np.ndarray:
    chunks = iter(chunks)
    first = next(chunks, None)  # the largest: chunks after it hold fewer frames
    chunks = itertools.chain([] if first is None else [first], chunks)
    M = len(ms)
    if ms._stats is not None and first is not None and (
            first.P * M * (ms.dim + 1) * 4 > _GATHER_BYTES):
        terms = _statistics_terms(ms._stats.ready())
    else:
        terms = _kernel_terms(ms._kernel)
    total = np.zeros(M, np.float64)
    for ch in chunks:
        n, P = ch.n, ch.P
        C = P // n
        fill = terms(ch)
        mb = max(1, min(M, _BLOCK_BYTES // (4 * P)))
        Es = np.empty((P, mb), np.float32)
        E = np.empty((P, mb), np.float32)
        for m0 in range(0, M, mb):
            m1 = min(M, m0 + mb)
            es, e = Es[:, :m1 - m0], E[:, :m1 - m0]
            fill(m0, m1, es)
            np.take(es, ch.inv, axis=0, out=e)
            e3 = e.reshape(n, C, m1 - m0)
            e3 += ch.lp
            total[m0:m1] += _lse_frames(e3, axis=1)
    return total


def _kernel_terms(kernel: np.ndarray):
    """For each chunk of pairs, a function writing ``e`` of the pairs (grouped by component)
    for models ``m0:m1`` from the whitened (K, M, W) tensor."""
    W = kernel.shape[2]

    def terms(ch: _PairChunk):
        P, ks, z = ch.P, ch.ks, ch.z

        def fill(m0, m1, es):
            if P * (m1 - m0) * W * 4 <= _GATHER_BYTES:
                # Few models: gathering their rows for every pair beats ~K tiny GEMM calls.
                np.einsum("pw,pmw->pm", z, kernel[ks, m0:m1], out=es)
            else:
                for s, stop in zip(ch.starts, ch.ends):
                    np.matmul(z[s:stop], kernel[ks[s], m0:m1].T, out=es[s:stop])
        return fill
    return terms


def _statistics_terms(st: _MeansStatistics):
    """:func:`_kernel_terms` of models kept as statistics: per used component k, the pairs'
    ``u = y/σ_k`` times the models' ``f_k`` (one GEMM on the statistics as stored), then
    ``e = s (u·f - n u·μ_k) + b``."""
    t = _terms(st.ubm)
    D = st.f.shape[2]

    def terms(ch: _PairChunk):
        ks = ch.ks
        u = ch.z[:, :D] * t.isig32[ks]
        c = np.einsum("pd,pd->p", u, t.mu32[ks])[:, None]

        def fill(m0, m1, es):
            f = st.f[m0:m1]
            for s, stop in zip(ch.starts, ch.ends):
                np.matmul(u[s:stop], f[:, ks[s], :].T, out=es[s:stop])
            # Over the whole block at once: per component, three passes over its few pairs
            # cost as much as the GEMMs (call overhead).
            es *= st.scale_t[ks, m0:m1]
            tail = st.shift_t[ks, m0:m1]
            tail *= c
            es -= tail
            es += st.bias_t[ks, m0:m1]
        return fill
    return terms


def _score_full(ubm: DiagGMM, ms: ModelSet, X: np.ndarray) -> np.ndarray:
    # One model at a time through DiagGMM.log_likelihood (one GEMM per model). A batched
    # whitened-pair version over the set was no faster per model (2.4 ms at N=300, K=512,
    # D=60) and cost ~80 ms up front for the (K, N, D) pairs, which hurt small sets; this
    # costs 1.8 ms per model, 3.3 ms for one. Full scoring is the reference, not the fast path.
    ubm_ll = ubm.log_likelihood(X)
    return np.array([np.sum(ms.model(ubm, m).log_likelihood(X) - ubm_ll, dtype=np.float64)
                     for m in range(len(ms))])


def _score_linear(ubm: DiagGMM, ms: ModelSet, stats) -> np.ndarray:
    K, M, W = ms._kernel.shape
    D = ubm.dim
    # Centred, whitened first-order statistics (f_k - n_k μ_k)/σ_k, padded with a 0 for the
    # bias column so that the kernel is used as stored (no (K, M, D) copy).
    fc = centred_first_order(stats.n, stats.f, ubm.means, ubm.variances)
    if ms.means_only:
        v = np.zeros((K, W, 1), np.float32)
        v[:, :D, 0] = fc
        per_k = np.matmul(ms._kernel, v)[:, :, 0]  # (K, M)
        return per_k.sum(axis=0, dtype=np.float64) / stats.frames
    total = np.zeros(M, np.float64)
    fc32 = fc.astype(np.float32)
    for k in range(K):
        # The whitened mean offset is A/ρ, with ρ = 1 - 2B.
        A, B = ms._kernel[k, :, :D], ms._kernel[k, :, D + 1:]
        total += (A / (1.0 - 2.0 * B)) @ fc32[k]
    return total / stats.frames


# -- public API ---------------------------------------------------------------------------------

class TestUtterance:
    """A test utterance made ready for scoring: its features validated as float32 and what
    the method needs from the UBM (top-C: the C best components per frame, and the whitened
    pairs they make; linear: the statistics), computed once however many model sets it is
    scored against (the trials' models, then the T-norm cohort).

    Build it with :func:`prepare_test`.
    """

    __slots__ = ("X", "method", "c", "top", "stats", "ubm_fingerprint", "_pairs")

    def __init__(self, X, method, c, top, stats, ubm_fingerprint):
        self.X, self.method, self.c = X, method, c
        self.top, self.stats, self.ubm_fingerprint = top, stats, ubm_fingerprint
        self._pairs: dict[int, list[_PairChunk]] = {}

    @property
    def frames(self) -> int:
        return self.X.shape[0]

    def release(self) -> None:
        """Drop the whitened pairs kept for the next model set (N x C x W float32, several
        times the frames): a holder of many prepared utterances calls this after each use."""
        self._pairs.clear()

    def pairs(self, t: _UBMTerms, W: int) -> Iterable[_PairChunk]:
        """The top-C pairs whitened to width ``W``: kept for the next model set unless the
        utterance is so long that they would not fit comfortably (then made again)."""
        if W in self._pairs:
            return self._pairs[W]
        chunks = _pair_chunks(t, self.X, self.top, W)
        if self.top.size * W * 4 > _KEEP_PAIR_BYTES:
            return chunks
        self._pairs[W] = list(chunks)
        return self._pairs[W]


def prepare_test(ubm: DiagGMM, X, *, method: str = "topc", c: int = DEFAULT_C) -> TestUtterance:
    """Validate one test utterance and run the UBM's part of ``method`` on it once.

    Raises as :func:`score`.
    """
    X = _check(ubm, X, method, c)
    top = ubm.top_components(X, int(c)) if method == "topc" else None
    stats = ubm.accumulate(X) if method == "linear" else None
    return TestUtterance(X, method, int(c), top, stats, _terms(ubm).fingerprint)


def score(ubm: DiagGMM, model_set: ModelSet, X, *, method: str = "topc",
          c: int = DEFAULT_C) -> np.ndarray:
    """Score one test utterance against every model of a set.

    Parameters
    ----------
    ubm : DiagGMM
        The UBM the models were adapted from.
    model_set : ModelSet
    X : array_like [shape=(N, D)] or TestUtterance
        Test features (float32 preferred), or an utterance from :func:`prepare_test`
        (then ``method`` and ``c`` are the ones it was prepared for).
    method : {"topc", "full", "linear"}
    c : int
        Components per frame for ``"topc"`` (1 <= c <= K).

    Returns
    -------
    np.ndarray [shape=(M,), float64]
        Average per-frame LLR of each model, in ``model_set.ids`` order.

    Raises
    ------
    ModelError
        If the set was built from another UBM, or the feature dimension is not D.
    FeatureError
        If ``X`` has no frames or non-finite values. (ValueError: bad ``method`` or ``c``.)
    """
    test = X if isinstance(X, TestUtterance) else prepare_test(ubm, X, method=method, c=c)
    t = _terms(ubm)
    if test.ubm_fingerprint != t.fingerprint:
        raise ModelError(f"the test utterance was prepared with UBM {test.ubm_fingerprint}, "
                         f"not {t.fingerprint}")
    if model_set.ubm_fingerprint != t.fingerprint:
        raise ModelError(f"the model set was adapted from UBM {model_set.ubm_fingerprint}, "
                         f"not {t.fingerprint}")
    if test.method == "linear":
        return _score_linear(ubm, model_set, test.stats)
    if test.method == "full":
        return _score_full(ubm, model_set, test.X) / test.frames
    width = model_set.dim + 1 if model_set.means_only else 2 * model_set.dim + 1
    return _score_topc(model_set, test.pairs(t, width)) / test.frames


def score_rows(ubm: DiagGMM, model_set: ModelSet, test: TestUtterance,
               rows: np.ndarray) -> np.ndarray:
    """Scores of the models in ``rows`` of ``model_set`` (repeats allowed) for one prepared
    test utterance; only the models needed are scored, unless they are most of the set
    (a copy of their rows would then cost more than scoring them all)."""
    uniq, where = np.unique(rows, return_inverse=True)
    if 2 * len(uniq) > len(model_set):
        return score(ubm, model_set, test)[rows]
    return score(ubm, model_set.select([model_set.ids[r] for r in uniq]), test)[where]


def llr(ubm: DiagGMM, speaker: DiagGMM, X, *, method: str = "topc",
        c: int = DEFAULT_C) -> float:
    """Average per-frame LLR of one test utterance ``X`` (N, D) for one speaker model.

    ``"full"`` is computed independently of :class:`ModelSet`, as
    ``mean(speaker.log_likelihood(X) - ubm.log_likelihood(X))``; the other methods score a
    one-model :class:`ModelSet`. Raises as :func:`score`.
    """
    X = _check(ubm, X, method, c)
    if method == "full":
        if speaker.means.shape != ubm.means.shape:
            raise ModelError(f"speaker model has (K, D) = {speaker.means.shape}, "
                             f"the UBM {ubm.means.shape}")
        return float(np.mean(speaker.log_likelihood(X) - ubm.log_likelihood(X)))
    return float(score(ubm, ModelSet.from_models(ubm, [speaker]), X, method=method, c=c)[0])


def score_trials(ubm: DiagGMM, models: Mapping[str, DiagGMM] | ModelSet,
                 test_features: Mapping[str, np.ndarray], enroll_ids: Sequence[str],
                 test_ids: Sequence[str], *, method: str = "topc",
                 c: int = DEFAULT_C) -> np.ndarray:
    """Scores (n_trials,) of trials ``(enroll_ids[i], test_ids[i])``, in trial order.

    Each test utterance is read from ``test_features`` (e.g. an archive) and processed by the
    UBM once; all its trials are scored together. ``models`` is a ModelSet or a mapping
    model id → DiagGMM, of which the models named in ``enroll_ids`` are stacked once.
    A missing model raises ModelError, missing features FeatureError, both naming the id;
    otherwise raises as :func:`score`.
    """
    enroll_ids, test_ids = list(enroll_ids), list(test_ids)
    if len(enroll_ids) != len(test_ids):
        raise ParameterError(f"{len(enroll_ids)} enrollment ids but {len(test_ids)} test ids")
    _check(ubm, None, method, c)
    wanted = list(dict.fromkeys(enroll_ids))
    if isinstance(models, ModelSet):
        model_set = models
    else:
        missing = [m for m in wanted if m not in models]
        if missing:
            raise ModelError(f"no enrolled model for {missing[0]!r} "
                             f"({len(missing)} trial models missing)")
        model_set = ModelSet.from_models(ubm, {m: models[m] for m in wanted})
    rows = np.array([model_set.index(m) for m in enroll_ids], dtype=np.intp)
    by_test: dict[str, list[int]] = {}
    for i, utt in enumerate(test_ids):
        by_test.setdefault(utt, []).append(i)
    out = np.empty(len(enroll_ids), np.float64)
    for utt, trials in by_test.items():
        try:
            X = test_features[utt]
        except KeyError:
            raise FeatureError(f"no features for test utterance {utt!r}") from None
        try:
            out[trials] = score_rows(ubm, model_set, prepare_test(ubm, X, method=method, c=c),
                                     rows[trials])
        except (FeatureError, ModelError) as exc:
            raise type(exc)(f"test utterance {utt!r}: {exc}") from exc
    return out
