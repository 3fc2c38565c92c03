"""Factor analysis of the UBM mean supervector: what the eigenchannel subspace (session
variability U, :mod:`speakergmm.gmm.eigenchannel`) and the i-vector extractor (total
variability T, :mod:`speakergmm.gmm.ivector`) share.

Both model an utterance's centred, variance-normalised first-order statistics ``f̃`` (K·D)
with counts ``N`` (K) as a low-rank offset ``V x`` of the UBM means, ``x ~ N(0, I)``
(R factors). Given ``V`` (K·D × R), the posterior of ``x`` is Gaussian with precision and
mean

    L = I + Σ_k N_k V_kᵀ V_k,        x̂ = L⁻¹ Vᵀ f̃,

and the EM update of ``V`` is, per component, ``V_k = C_k A_k⁻¹`` with
``A_k = Σ_h N_hk (L_h⁻¹ + x̂_h x̂_hᵀ)`` and ``C = Σ_h f̃_h x̂_hᵀ`` (Kenny et al., 2005,
"Eigenvoice modeling with sparse training data"; the same algebra as SIDEKIT's FactorAnalyser
and bob.learn.em's ISV and IVector trainers).

The utterances' statistics are read a block of :data:`BLOCK` at a time (again at each pass
from a statistics archive, so memory does not grow with their number) and the work is mapped
over spans of :data:`SPAN` blocks, reduced in span order: the same result on one process,
local workers or a Dask cluster.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from .._io import read_npz, write_npz
from ..errors import ModelError
from ..exec import get_executor
from .mixture import DiagGMM
from .stats import GMMStats, centred_first_order

__all__ = ["Subspace", "describe_file", "BLOCK", "SPAN", "Supervectors", "spans", "add_by_class",
           "minus_scaled", "init_subspace", "gram", "packed_size", "pack", "unpack", "posteriors",
           "row_chunks", "posterior_terms", "solve_loadings"]

class Subspace:
    """A (K, D, R) subspace of a UBM's mean supervector in the variance-normalised space,
    tied to that UBM: what :class:`~speakergmm.gmm.eigenchannel.EigenChannel` and
    :class:`~speakergmm.gmm.ivector.IVectorExtractor` are. Subclasses name their array,
    file format and training command.

    Parameters
    ----------
    ubm : DiagGMM
        The UBM the matrix was trained with (its fingerprint is checked on loading).
    matrix : array_like [shape=(K, D, R)]
        Component k's mean offset in feature units is ``sqrt(ubm.variances[k]) *
        (matrix[k] @ x)`` for factors ``x``.
    metadata : dict, optional
        JSON-serialisable; the training record.
    """

    _ARRAY = ""       # the array's name in the file
    _FORMAT = ""      # the file's format name
    _WHAT = ""        # what it is, in messages
    _COMMAND = ""     # the command that trains one
    _KIND = ""        # the prefix of the fingerprint

    def __init__(self, ubm: DiagGMM, matrix, *, metadata: Mapping[str, Any] | None = None):
        V = _checked_matrix(matrix, self._WHAT)
        if V.shape[:2] != (ubm.n_components, ubm.dim):
            raise ModelError(f"{self._WHAT} matrix of shape {V.shape} does not fit a UBM of "
                             f"K={ubm.n_components}, D={ubm.dim}: expected (K, D, R)")
        self.ubm, self.matrix = ubm, V
        self.metadata = dict(metadata or {})
        K, D, R = V.shape
        self._V = V.reshape(K * D, R)
        self._VtV = gram(self._V, K, D)

    @property
    def n_factors(self) -> int:
        """R, the rank of the subspace."""
        return self.matrix.shape[2]

    def __repr__(self) -> str:
        K, D, R = self.matrix.shape
        return f"{type(self).__name__}(K={K}, D={D}, R={R}, ubm={self.ubm.fingerprint()})"

    def fingerprint(self) -> str:
        """16 hex digits identifying the subspace (as saved: float32) and its UBM; what
        depends on it (a speaker store, a vector archive) records it."""
        shape = self.matrix.shape
        h = hashlib.sha256(f"{self._KIND}:{shape}:{self.ubm.fingerprint()}:".encode())
        h.update(np.ascontiguousarray(self.matrix, dtype="<f4").tobytes())
        return h.hexdigest()[:16]

    def save(self, path: str | os.PathLike) -> None:
        """Write to ``path`` (``.npz``: the matrix as float32 and a JSON header) atomically."""
        write_npz(path, {self._ARRAY: self.matrix.astype(np.float32)},
                  format_name=self._FORMAT, format_version=1, metadata=self.metadata)

    @classmethod
    def load(cls, path: str | os.PathLike, ubm: DiagGMM):
        """Read a file written by :meth:`save` for use with ``ubm``.

        Raises
        ------
        ModelError
            If the file is missing or corrupt, or was trained with another UBM.
        """
        path = Path(path)
        arrays, header = read_npz(path, (cls._ARRAY,), format_name=cls._FORMAT,
                                  format_version=1, what=cls._WHAT)
        meta = header["metadata"]
        trained_on = meta.get("ubm_fingerprint")
        if trained_on != ubm.fingerprint():
            raise ModelError(f"{path}: trained with UBM {trained_on}, but the UBM given is "
                             f"{ubm.fingerprint()}; train it again with this UBM "
                             f"({cls._COMMAND})")
        try:
            return cls(ubm, _stored_matrix(arrays[cls._ARRAY], cls._WHAT), metadata=meta)
        except ModelError as exc:
            raise ModelError(f"{path}: {exc}") from None


#: No subspace training gives entries this large (they are of the order of the UBM's
#: standard deviations); beyond it a file lies, and its products overflow float32.
MAX_SUBSPACE_VALUE = 1e6


def _checked_matrix(matrix, what: str) -> np.ndarray:
    """A subspace matrix as float64 (K, D, R), all of them at least 1, finite; ModelError
    otherwise (what a file holds is checked before it is described or used)."""
    V = np.asarray(matrix, np.float64)
    if V.ndim != 3 or min(V.shape) < 1:
        raise ModelError(f"{what} matrix of shape {V.shape}: expected (K, D, R), each at "
                         "least 1")
    if not np.all(np.isfinite(V)):
        raise ModelError(f"{what} matrix holds non-finite values")
    return V


def _stored_matrix(matrix: np.ndarray, what: str) -> np.ndarray:
    """A subspace matrix read from a file, checked as :func:`_checked_matrix` and as what
    training writes: float32 (:meth:`save`), entries of bounded size, no all-zero
    direction (a zero subspace is the identity in memory, but no file of a trained one)."""
    if matrix.dtype != np.float32:
        raise ModelError(f"{what} matrix stored as {matrix.dtype}, not float32: not written "
                         "by speakergmm")
    V = _checked_matrix(matrix, what)
    if np.abs(V).max() > MAX_SUBSPACE_VALUE:
        raise ModelError(f"{what} matrix holds values up to {np.abs(V).max():.3g}, beyond "
                         f"what training gives ({MAX_SUBSPACE_VALUE:g})")
    empty = np.flatnonzero(~V.reshape(-1, V.shape[2]).any(axis=0))
    if empty.size:
        raise ModelError(f"{what} matrix: direction {empty[0]} (of {V.shape[2]}) is all "
                         "zeros: not a trained subspace")
    return V


# What each subspace file holds: format name -> (array, title, what R is).
_FILES = {
    "speakergmm.eigenchannel": ("U", "eigenchannel (session variability subspace)",
                                "rank (R):      "),
    "speakergmm.ivector": ("T", "i-vector extractor (total variability subspace)",
                           "i-vectors (R): "),
}


def describe_file(path) -> str:
    """A human-readable summary of an eigenchannel or i-vector extractor file
    (``speakergmm info``), read without its UBM. ModelError if it is neither."""
    error = None
    for name, (key, title, rank) in _FILES.items():
        try:
            arrays, header = read_npz(path, (key,), format_name=name, format_version=1,
                                      what=title.split(" (")[0])
        except ModelError as exc:
            error = error or exc
            continue
        try:
            K, D, R = _stored_matrix(arrays[key], title.split(" (")[0]).shape
        except ModelError as exc:
            raise ModelError(f"{path}: {exc}") from None
        meta = header["metadata"]
        record = meta.get("training") or {}
        lines = [f"speakergmm {title}", f"  components (K): {K}", f"  dimension (D):  {D}",
                 f"  {rank} {R}", f"  UBM:            {meta.get('ubm_fingerprint')}"]
        if "relevance" in meta:
            lines.append(f"  relevance:      {meta.get('relevance')}")
        if record:
            classes = (f" in {record['classes']} classes" if "classes" in record else "")
            lines.append(f"  trained on:     {record.get('utterances')} utterances{classes}, "
                         f"{record.get('iterations')} EM iterations, seed "
                         f"{record.get('seed')}")
        lines.append(f"  file:           format {header['format']} "
                     f"v{header['format_version']}, speakergmm "
                     f"{header.get('library_version')}")
        return "\n".join(lines)
    raise error


# Utterances per block of the vectorised E-step (bounds the (block × KD) temporaries).
BLOCK = 128
# Blocks per task (4,096 utterances): each task reduces its blocks to one sum.
SPAN = 32


def _utt_stats(state, utt: str) -> tuple[np.ndarray, np.ndarray]:
    ubm, features = state
    item = features[utt]
    stats = item if isinstance(item, GMMStats) else ubm.accumulate(item)
    return stats.n, stats.f.astype(np.float32)


class Supervectors:
    """The utterances' counts N (h, K) float64 and first-order statistics F (h, K·D)
    float32, centred on the UBM and normalised by Σ^½, by blocks of rows: read again from a
    statistics archive at each pass (memory bounded by the block), or computed once from
    frames and kept."""

    def __init__(self, ubm: DiagGMM, features, utts: list[str], executor):
        from .statsarchive import StatsArchive

        self.ubm, self.utts = ubm, utts
        self.archive = features if isinstance(features, StatsArchive) else None
        if self.archive is None:
            stats = get_executor(executor).map(_utt_stats, utts, (ubm, features))
            self._N = np.stack([n for n, _ in stats])
            self._F = np.stack([f for _, f in stats]).reshape(len(utts), -1)
            del stats
            for blk in self.blocks():
                self._F[blk] = self._centred(self._N[blk], self._F[blk])

    def __len__(self) -> int:
        return len(self.utts)

    def blocks(self) -> list[slice]:
        H = len(self.utts)
        return [slice(lo, min(lo + BLOCK, H)) for lo in range(0, H, BLOCK)]

    def _centred(self, N, F) -> np.ndarray:
        K, D = self.ubm.n_components, self.ubm.dim
        return centred_first_order(N, F.reshape(-1, K, D), self.ubm.means,
                                   self.ubm.variances).reshape(len(N), K * D)

    def block(self, blk: slice) -> tuple[np.ndarray, np.ndarray]:
        """``(N, F)`` of the rows ``blk``."""
        if self.archive is None:
            return self._N[blk], self._F[blk]
        N, F = self.archive.first_order(self.utts[blk])
        self.archive.release()
        N = N.astype(np.float64)
        F = F.reshape(len(N), -1)
        F[...] = self._centred(N, F)  # back into the float32 block
        return N, F


def spans(H: int) -> list[list[slice]]:
    """Blocks of rows grouped by :data:`SPAN`: the unit of one task."""
    blocks = [slice(lo, min(lo + BLOCK, H)) for lo in range(0, H, BLOCK)]
    return [blocks[i:i + SPAN] for i in range(0, len(blocks), SPAN)]


def add_by_class(out: np.ndarray, rows: np.ndarray, cls: np.ndarray) -> None:
    """``out[c] += sum of rows of class c``, for rows sorted by class (``cls`` ascending);
    np.add.at would do it 20x slower."""
    starts = np.flatnonzero(np.r_[True, cls[1:] != cls[:-1]])
    out[cls[starts]] += np.add.reduceat(rows, starts, axis=0)


def minus_scaled(F, N, Y):
    """``F - n_k · Y`` for blocks of supervectors (H, K·D), with ``Y`` (a new float64 array)
    overwritten by the result: no (H, K·D) copy of the counts repeated D times, and no
    temporary beyond ``Y``."""
    H, K = N.shape
    Y3 = Y.reshape(H, K, -1)
    Y3 *= N[:, :, None]
    return np.subtract(F, Y, out=Y)


@functools.lru_cache(maxsize=8)
def _triangle(R: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flat indices into (R, R) of the upper triangle, row by row, and of its mirror; then
    its row and column indices."""
    i, j = np.triu_indices(R)
    return i * R + j, j * R + i, i, j


def packed_size(R: int) -> int:
    """``R (R + 1) / 2``: the length of a packed symmetric (R, R) matrix."""
    return R * (R + 1) // 2


def pack(M: np.ndarray) -> np.ndarray:
    """The upper triangles of symmetric matrices, (..., R, R) -> (..., R(R+1)/2)."""
    R = M.shape[-1]
    return np.take(M.reshape(M.shape[:-2] + (R * R,)), _triangle(R)[0], axis=-1)


def unpack(packed: np.ndarray, R: int) -> np.ndarray:
    """The symmetric matrices of packed upper triangles, (..., R(R+1)/2) -> (..., R, R)."""
    upper, mirror, _, _ = _triangle(R)
    out = np.empty(packed.shape[:-1] + (R * R,))
    out[..., upper] = packed
    out[..., mirror] = packed
    return out.reshape(packed.shape[:-1] + (R, R))


def gram(V: np.ndarray, K: int, D: int) -> np.ndarray:
    """``V_kᵀ V_k`` of each component, packed: (K, R(R+1)/2).

    Symmetric, so the E-step's precisions ``N @ gram`` and its sums ``Nᵀ @ covariances``
    are made on the upper triangles only: half the products and a third of the time at
    R = 300, where these two products were most of an iteration."""
    R = V.shape[1]
    V3 = V.reshape(K, D, R)
    return pack(np.matmul(V3.transpose(0, 2, 1), V3))  # BLAS, not einsum


# Rows of a block whose (rows, R, R) precisions and covariances are made at once: a few MB
# whatever R (128 rows at R = 60, 12 at R = 400).
_POSTERIOR_BYTES = 16 << 20


def posteriors(N: np.ndarray, centred: np.ndarray, V: np.ndarray, VtV: np.ndarray, *,
               covariances: bool = True):
    """Posterior means and covariances of the factors of a few utterances.

    Parameters
    ----------
    N : np.ndarray [shape=(h, K)]
    centred : np.ndarray [shape=(h, K·D)]
        Centred, variance-normalised first-order statistics (less any known offset).
    V : np.ndarray [shape=(K·D, R)]
    VtV : np.ndarray [shape=(K, R(R+1)/2)]
        :func:`gram` of ``V``.
    covariances : bool
        Also make the covariances (an EM step needs them; extracting the means does not).

    Returns
    -------
    x : np.ndarray [shape=(h, R)]
    cov : np.ndarray [shape=(h, R(R+1)/2)] or None
        ``L⁻¹``, packed (:func:`unpack`); None without ``covariances``.
    b : np.ndarray [shape=(h, R)]
        ``Vᵀ f̃``.
    logdet : np.ndarray [shape=(h,)]
        ``log |L|``.
    """
    h, R = len(N), V.shape[1]
    L = unpack(N @ VtV, R)
    L[:, np.arange(R), np.arange(R)] += 1.0
    b = centred @ V
    x, logdet = np.empty((h, R)), np.empty(h)
    cov = np.empty((h, packed_size(R))) if covariances else None
    upper = _triangle(R)[0]
    # L = I + Σ_k N_k V_kᵀV_k is positive definite: its Cholesky factor gives log|L| and
    # L⁻¹ (or the means alone) at a third of the cost of numpy's batched LU inverse from
    # R = 60 up; numpy has no batched potri, hence the loop. One BLAS thread: threads on
    # one R × R matrix at a time cost more than they give (an EM iteration at R = 300 took
    # 10.3 s with two threads here, 4.9 s so).
    # (imported here: scipy.linalg takes 0.2 s to import, which every verify and identify
    # of an eigenchannel system paid without ever calling it)
    from scipy.linalg import blas as _blas
    from scipy.linalg import lapack as _lapack

    with threadpool_limits(limits=1, user_api="blas"):
        for i in range(h):
            # L[i] is symmetric: its transpose is the Fortran-ordered matrix LAPACK wants
            c, info = _lapack.dpotrf(L[i].T, lower=1, clean=0, overwrite_a=1)
            logdet[i] = 2.0 * np.log(np.diagonal(c)).sum()
            if info != 0 or not np.isfinite(logdet[i]):  # (LAPACK passes NaN through)
                raise ModelError("a factor posterior precision is not positive definite: "
                                 "the statistics or the subspace hold non-finite values")
            if covariances:
                inv, _ = _lapack.dpotri(c, lower=1, overwrite_c=1)  # its lower triangle
                x[i] = _blas.dsymv(1.0, inv, b[i], lower=1)
                cov[i] = np.take(inv.T.reshape(-1), upper)  # inv.T: C order, upper triangle
            else:
                x[i] = _lapack.dpotrs(c, b[i], lower=1)[0]
    return x, cov, b, logdet


def row_chunks(h: int, R: int) -> list[slice]:
    """Rows of a block taken together by :func:`posteriors` (bounded (rows, R, R))."""
    step = max(1, _POSTERIOR_BYTES // (8 * R * R))
    return [slice(lo, min(lo + step, h)) for lo in range(0, h, step)]


def posterior_terms(N: np.ndarray, centred: np.ndarray, V: np.ndarray, VtV: np.ndarray):
    """The factor posteriors of a block of utterances and their EM sums.

    Parameters are those of :func:`posteriors`.

    Returns
    -------
    x : np.ndarray [shape=(h, R)]
        Posterior means.
    a : np.ndarray [shape=(K, R(R+1)/2)]
        ``Σ_h N_hk (cov_h + x_h x_hᵀ)``, packed.
    c : np.ndarray [shape=(K·D, R)]
        ``Σ_h f̃_h x_hᵀ``.
    second : np.ndarray [shape=(R, R)]
        ``Σ_h cov_h + x_h x_hᵀ`` (what minimum-divergence re-estimation reads).
    objective : float
        ``Σ_h ½ x_hᵀ Vᵀ f̃_h - ½ log|L_h|``: the log-likelihood of the statistics under
        the factor model, up to terms that do not depend on ``V``.
    """
    h, R = len(N), V.shape[1]
    x = np.empty((h, R))
    a = np.zeros((N.shape[1], packed_size(R)))
    second = np.zeros(packed_size(R))
    _, _, i, j = _triangle(R)
    objective = 0.0
    for rows in row_chunks(h, R):
        x_r, cov, b, logdet = posteriors(N[rows], centred[rows], V, VtV)
        cov += x_r[:, i] * x_r[:, j]  # now the second moments (packed)
        a += N[rows].T @ cov
        second += cov.sum(axis=0)
        objective += float(np.sum(0.5 * np.einsum("hr,hr->h", b, x_r) - 0.5 * logdet))
        x[rows] = x_r
    return x, a, centred.T @ x, unpack(second, R), objective


def solve_loadings(A: np.ndarray, C: np.ndarray, K: int, D: int,
                   previous: np.ndarray | None = None) -> np.ndarray:
    """The M-step ``V_k = C_k A_k⁻¹`` from the summed (K, R(R+1)/2) (packed) and (K·D, R)
    terms.

    A component no training frame reached (``A_k`` zero, e.g. a UBM's silence component
    under windows of speech only) keeps its ``previous`` loadings, as Kaldi's i-vector
    estimation leaves a Gaussian under its minimum count; the others get a ridge of
    1e-9 of their mean eigenvalue, far below what changes a solution.
    """
    R = C.shape[1]
    A = unpack(A, R)
    C = C.reshape(K, D, R)
    scale = np.trace(A, axis1=1, axis2=2) / R
    used = scale > 1e-12 * max(float(scale.max()), np.finfo(float).tiny)
    out = np.zeros((K, D, R)) if previous is None else \
        np.array(previous, np.float64).reshape(K, D, R)
    ridge = 1e-9 * scale[used, None, None] * np.eye(R)
    out[used] = np.linalg.solve(A[used] + ridge,
                                C[used].transpose(0, 2, 1)).transpose(0, 2, 1)
    return out.reshape(K * D, R)


# -- initialisation: randomised SVD of the MAP offsets ---------------------------------------

def init_subspace(session, H: int, KD: int, R: int, rng, classes=None):
    """Leading directions of the utterances' MAP offsets (randomised SVD, Halko et al. 2011,
    in 7 passes mapped over spans of utterances like the E-step), scaled to their standard
    deviation: a start near the EM solution.

    The session's state is ``(Supervectors, D, cls_of, relevance)``. With ``classes``
    (``cls_of``, the class of each row, ascending; and the number of classes) the
    directions are those of the deviations from each class's mean offset (session
    variability), and the classes' summed counts are returned too; without, of the offsets
    themselves (total variability).
    """
    rows = _whole
    class_n = None
    if classes is not None:
        cls_of, n_classes = classes
        sums = np.zeros((n_classes, KD))
        for first, dev_sums, n_sums in session.map(_offset_sums, spans(H)):
            sums[first:first + len(dev_sums)] += dev_sums
            if class_n is None:
                class_n = np.zeros((n_classes, n_sums.shape[1]))
            class_n[first:first + len(n_sums)] += n_sums
        centres = sums
        centres /= np.bincount(cls_of, minlength=n_classes)[:, None]
        centres = centres.astype(np.float32)
        del sums

        def rows(span):  # a span's rows and its classes' centres
            lo, hi = cls_of[span[0].start], cls_of[span[-1].stop - 1] + 1
            return span, lo, centres[lo:hi]

    def times(M):  # dev @ M: (H, m)
        return np.concatenate(list(session.map(_times, [rows(sp) for sp in spans(H)],
                                               shared=M)))

    def transposed_times(Y):  # dev.T @ Y: (K·D, m)
        total = None
        for part in session.map(_transposed_times, [
                (*rows(sp), Y[sp[0].start:sp[-1].stop]) for sp in spans(H)]):
            total = part if total is None else total + part
        return total

    Y = times(rng.standard_normal((KD, R + 10)).astype(np.float32))
    for _ in range(2):  # power iterations sharpen the spectrum
        Y = np.linalg.qr(Y)[0]
        Y = times(transposed_times(Y).astype(np.float32))
    Q = np.linalg.qr(Y.astype(np.float64))[0]
    _, s, vt = np.linalg.svd(transposed_times(Q).T, full_matrices=False)
    return vt[:R].T * (s[:R] / np.sqrt(H)), class_n


def _whole(span):
    return span, 0, None


def _map_offsets(state, blk: slice):
    """A block's MAP offsets (float32) and counts."""
    source, D, cls_of, relevance = state
    N, F = source.block(blk)
    return F / (np.repeat(N, D, axis=1) + relevance), N


def _offset_sums(state, span):
    """Per class of a span: summed MAP offsets and counts; with the span's first class."""
    cls_of = state[2]
    first = cls_of[span[0].start]
    classes = cls_of[span[-1].stop - 1] - first + 1
    dev_sums = n_sums = None
    for blk in span:
        dev, N = _map_offsets(state, blk)
        if dev_sums is None:
            dev_sums = np.zeros((classes, dev.shape[1]))
            n_sums = np.zeros((classes, N.shape[1]))
        add_by_class(dev_sums, dev, cls_of[blk] - first)
        add_by_class(n_sums, N, cls_of[blk] - first)
    return first, dev_sums, n_sums


def _within(state, blk, first, centres):
    """A block's MAP offsets, less their classes' centres when there are classes."""
    offsets = _map_offsets(state, blk)[0]
    return offsets if centres is None else offsets - centres[state[2][blk] - first]


def _times(state, M, item):
    span, first, centres = item
    return np.concatenate([_within(state, blk, first, centres) @ M for blk in span])


def _transposed_times(state, item):
    span, first, centres, Y = item
    base, total = span[0].start, None
    for blk in span:
        part = _within(state, blk, first, centres).T @ Y[blk.start - base:blk.stop - base]
        total = part if total is None else total + part
    return total
