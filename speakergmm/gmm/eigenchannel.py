"""Session variability compensation: an eigenchannel subspace of the UBM's mean supervector,
removed from the features (feature-domain latent factor analysis).

Two recordings of one speaker never give the same MAP model: the channel, the session, the
words spoken move the utterance's statistics. Joint factor analysis (Kenny et al., 2007)
models that nuisance as a low-rank offset of the mean supervector,

    M_h = m + d_s + U x_h,     x_h ~ N(0, I),

with ``m`` the UBM means, ``d_s`` the speaker's offset (relevance MAP), ``U`` (KD × R) the
*eigenchannel* matrix and ``x_h`` (R) the channel factors of recording ``h``. ``U`` is learnt
from background data where each class (a speaker, or a speaker saying one word) has several
recordings, by alternating MAP estimates of the class offsets with EM for ``U`` (Vogt and
Sridharan, 2008; Matrouf et al., 2007; ALIZE's EigenChannel, bob's ISV trainer).

Compensation follows Vair et al. (2006) and Castaldo et al. (2007): the channel factors of an
utterance are its posterior mean given its statistics under the UBM, and each frame loses
the channel offset of the components it belongs to,

    x̂_t = x_t - Σ_k γ_t(k) U_k x_h.

The compensated frames go through MAP adaptation, scoring and normalisation unchanged, so the
whole GMM-UBM pipeline benefits; the UBM itself is kept. Everything is computed in the
variance-normalised supervector space (each block of ``U`` scaled by Σ_k^{-1/2}), where the
prior on ``x`` is isotropic.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._io import read_npz, write_npz
from ..errors import ModelError, SpeakerGMMError
from ..exec import DaskExecutor, Executor, SerialExecutor, get_executor
from .mixture import DiagGMM, check_feature_config, default_chunk_size
from .stats import GMMStats, centred_first_order

__all__ = ["EigenChannel", "CompensatedFeatures", "describe_file", "FORMAT_NAME",
           "FORMAT_VERSION"]

FORMAT_NAME = "speakergmm.eigenchannel"
FORMAT_VERSION = 1
# Utterances per block of the vectorised E-step (bounds the (block × KD) temporaries).
_BLOCK = 128
# Blocks per task of the E-step (4,096 utterances): each task carries its rows of the
# factors and of the class offsets and returns one K·R² + K·D·R sum.
_SPAN = 32
# Posteriors of an utterance kept between the two passes of compensate() up to this size.
_KEEP_POSTERIOR_BYTES = 64 << 20


class EigenChannel:
    """An eigenchannel matrix tied to one UBM; removes session variability from features.

    Parameters
    ----------
    ubm : DiagGMM
        The UBM the matrix was trained with (its fingerprint is checked on loading).
    U : array_like [shape=(K, D, R)]
        Eigenchannels in the variance-normalised space: the channel offset of component k
        in feature units is ``sqrt(ubm.variances[k]) * (U[k] @ x)``.
    metadata : dict, optional
        JSON-serialisable; the training record.

    See Also
    --------
    EigenChannel.fit : train one.
    """

    def __init__(self, ubm: DiagGMM, U, *, metadata: Mapping[str, Any] | None = None):
        U = np.asarray(U, np.float64)
        if U.ndim != 3 or U.shape[:2] != (ubm.n_components, ubm.dim) or U.shape[2] < 1:
            raise ModelError(f"eigenchannel matrix of shape {U.shape} does not fit a UBM of "
                             f"K={ubm.n_components}, D={ubm.dim}: expected (K, D, R), R >= 1")
        if not np.all(np.isfinite(U)):
            raise ModelError("eigenchannel matrix holds non-finite values")
        self.ubm = ubm
        self.U = U
        self.metadata = dict(metadata or {})
        K, D, R = U.shape
        self._P = U.reshape(K * D, R)
        self._UtU = np.matmul(U.transpose(0, 2, 1), U).reshape(K, R * R)  # BLAS, not einsum
        self._basis = (U * np.sqrt(ubm.variances.astype(np.float64))[:, :, None]).reshape(K * D, R)

    @property
    def n_factors(self) -> int:
        """R, the rank of the channel subspace."""
        return self.U.shape[2]

    def __repr__(self) -> str:
        K, D, R = self.U.shape
        return f"EigenChannel(K={K}, D={D}, R={R}, ubm={self.ubm.fingerprint()})"

    def fingerprint(self) -> str:
        """16 hex digits identifying the subspace (as saved: float32) and its UBM; a speaker
        store records it, so that speakers are never scored with another compensation."""
        h = hashlib.sha256(f"eigenchannel:{self.U.shape}:{self.ubm.fingerprint()}:".encode())
        h.update(np.ascontiguousarray(self.U, dtype="<f4").tobytes())
        return h.hexdigest()[:16]

    # -- training --------------------------------------------------------------------------

    @classmethod
    def fit(cls, ubm: DiagGMM, features: Mapping[str, np.ndarray], utt2class: Mapping[str, str],
            *, n_factors: int = 10, n_iterations: int = 10, relevance: float = 16.0,
            seed: int = 0, jobs: int = 1, executor: Executor | None = None,
            progress: Callable[[int, float], None] | None = None) -> "EigenChannel":
        """Learn ``U`` from background recordings grouped in classes.

        A class is what must *not* vary: a speaker, or (for text-dependent data) a speaker
        saying one text. Within-class differences between recordings are what ``U`` learns
        to remove, so each useful class has two recordings or more.

        Parameters
        ----------
        ubm : DiagGMM
        features : mapping utt → (frames, D) array, or utt → GMMStats
            A feature archive, or a statistics archive under ``ubm`` without channel
            compensation (:func:`speakergmm.read_stats`: no pass over the frames).
        utt2class : mapping utt → class id
            Utterances missing from ``features`` are an error; utterances of ``features``
            missing from the map are ignored.
        n_factors : int
            R, the rank of the subspace.
        n_iterations : int
            EM iterations (each re-estimates the class offsets, then ``U``).
        relevance : float
            Relevance factor of the class offsets' MAP estimate.
        seed : int
            Seeds the randomised SVD of the initialisation.
        jobs : int
            Worker processes for the statistics (when no ``executor`` is given).
        executor : Executor, optional
            Where the statistics are computed (:mod:`speakergmm.exec`).
        progress : callable(iteration, objective), optional
            Called after each iteration with the average per-utterance log-likelihood of the
            centred statistics under the factor model (up to a constant).

        Returns
        -------
        EigenChannel

        Raises
        ------
        SpeakerGMMError
            If a mapped utterance has no features, or no class has two recordings, or
            ``n_factors`` exceeds the within-class degrees of freedom.

        Notes
        -----
        From a statistics archive the utterances' statistics are read again, a block of
        128 at a time, at every pass (7 for the initialisation, 2 per iteration), so memory
        does not grow with their number: about ``C·K·D + H·(R + K)`` float64 (C classes,
        H utterances: the class sums, the factors and the counts) plus one block. From
        frames the statistics are computed once and kept, (H, K·D) float32: about 1 GB for
        10,000 utterances at K = 512, D = 48 (an E-step per utterance per pass would cost
        far more than the reading); give ``speakergmm stats`` output for large sets.
        """
        if n_factors < 1 or n_iterations < 0 or relevance <= 0:
            raise SpeakerGMMError(f"eigenchannel: need n_factors >= 1 (got {n_factors}), "
                                  f"n_iterations >= 0 (got {n_iterations}) and relevance > 0 "
                                  f"(got {relevance})")
        check_feature_config(ubm, features)
        missing = [u for u in utt2class if u not in features]
        if missing:
            raise SpeakerGMMError(f"eigenchannel: no features for utterance '{missing[0]}' of "
                                  f"the class map ({len(missing)} missing); was it extracted?")
        utts = sorted(utt2class, key=lambda u: (utt2class[u], u))
        labels = [utt2class[u] for u in utts]  # sorted: each class is one run of rows
        starts = np.flatnonzero([i == 0 or labels[i] != labels[i - 1]
                                 for i in range(len(labels))])
        counts = np.diff(np.append(starts, len(utts)))
        repeated = int(np.sum(counts >= 2))
        dof = len(utts) - len(starts)
        if repeated < 1:
            raise SpeakerGMMError(f"eigenchannel: {len(utts)} utterances in {len(starts)} "
                                  f"classes, of which {repeated} have two or more; session "
                                  "variability is learnt from classes with several recordings "
                                  "each (check the class map: utt2spk by default)")
        if n_factors > dof:
            raise SpeakerGMMError(f"eigenchannel: {n_factors} factors but only {dof} within-class "
                                  f"degrees of freedom ({len(utts)} utterances in "
                                  f"{len(starts)} classes); use fewer factors")
        K, D = ubm.n_components, ubm.dim
        source = _Supervectors(ubm, features, utts, executor or jobs)
        cls_of = np.repeat(np.arange(len(starts)), counts)
        X = np.zeros((len(utts), n_factors))
        record = []
        # Initialisation and E-step are maps over spans of utterances reduced in span
        # order. On a Dask cluster the spans run on the workers (which read the statistics
        # archive); local work stays in this process: its GEMMs already use every core
        # through BLAS, and on two local workers shipping each span's sums cost more than
        # it saved (speechocean762, R = 60: 4.8 s in process, 6.0 s on two workers).
        where = get_executor(executor or jobs)
        if not isinstance(where, DaskExecutor) or source.archive is None:
            where = SerialExecutor()  # (statistics held in memory stay where they are)
        with where.start((source, D, cls_of, relevance)) as session:
            U, class_n = _init(session, len(utts), K * D, cls_of, starts, n_factors,
                               np.random.default_rng(seed))
            for it in range(1, n_iterations + 1):
                U, X, objective = _em_step(session, (len(utts), K * D), class_n, D, U, X,
                                           starts, relevance, cls_of)
                record.append(round(objective, 6))
                if progress is not None:
                    progress(it, objective)
        meta = {"kind": "eigenchannel", "ubm_fingerprint": ubm.fingerprint(),
                "feature_config": ubm.metadata.get("feature_config"),
                "n_factors": n_factors, "relevance": relevance,
                "training": {"utterances": len(utts), "classes": len(starts),
                             "repeated_classes": repeated, "iterations": n_iterations,
                             "seed": seed, "objective": record}}
        return cls(ubm, U.reshape(K, D, n_factors), metadata=meta)

    # -- compensation ------------------------------------------------------------------------

    def factors(self, n, f) -> np.ndarray:
        """Posterior mean of the channel factors of an utterance given its statistics.

        Parameters
        ----------
        n : array_like [shape=(K,)]
            Zeroth-order statistics under the UBM.
        f : array_like [shape=(K, D)]
            First-order statistics (not centred).

        Returns
        -------
        np.ndarray [shape=(R,), float64]
        """
        n = np.asarray(n, np.float64)
        centred = centred_first_order(n, np.asarray(f, np.float64), self.ubm.means,
                                      self.ubm.variances)
        R = self.n_factors
        L = np.eye(R) + (n @ self._UtU).reshape(R, R)
        return np.linalg.solve(L, self._P.T @ centred.ravel())

    def compensate(self, X) -> np.ndarray:
        """Remove the utterance's channel offset from its frames.

        Parameters
        ----------
        X : array_like [shape=(frames, D)]
            The features of one utterance (one recording: the factors are per recording).

        Returns
        -------
        np.ndarray [shape=(frames, D), float32]
        """
        X = np.asarray(X, np.float32)
        if len(X) == 0:
            return X
        K, D = self.ubm.n_components, self.ubm.dim
        step = default_chunk_size(K)
        # The posteriors serve twice (statistics, then the offsets): kept unless the
        # utterance is so long that they would not fit comfortably, then recomputed.
        keep = len(X) * K * 4 <= _KEEP_POSTERIOR_BYTES
        kept = [] if keep else None
        stats = self.ubm.accumulate(X, chunk_size=step, posteriors=kept)
        offsets = (self._basis @ self.factors(stats.n, stats.f)).reshape(K, D).astype(np.float32)
        out = np.empty_like(X)
        for i, lo in enumerate(range(0, len(X), step)):
            chunk = X[lo:lo + step]
            post = kept[i] if keep else self.ubm.posteriors(chunk)
            out[lo:lo + step] = chunk - post @ offsets
        return out

    # -- files -------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write to ``path`` (``.npz``: the matrix as float32 and a JSON header) atomically."""
        write_npz(path, {"U": self.U.astype(np.float32)}, format_name=FORMAT_NAME,
                  format_version=FORMAT_VERSION, metadata=self.metadata)

    @classmethod
    def load(cls, path: str | os.PathLike, ubm: DiagGMM) -> "EigenChannel":
        """Read a file written by :meth:`save` for use with ``ubm``.

        Raises
        ------
        ModelError
            If the file is missing or corrupt, or was trained with another UBM.
        """
        path = Path(path)
        arrays, header = read_npz(path, ("U",), format_name=FORMAT_NAME,
                                  format_version=FORMAT_VERSION, what="eigenchannel")
        meta = header["metadata"]
        trained_on = meta.get("ubm_fingerprint")
        if trained_on != ubm.fingerprint():
            raise ModelError(f"{path}: trained with UBM {trained_on}, but the UBM given is "
                             f"{ubm.fingerprint()}; train it again with this UBM "
                             "(speakergmm train-channel)")
        try:
            return cls(ubm, arrays["U"], metadata=meta)
        except ModelError as exc:
            raise ModelError(f"{path}: {exc}") from None


def describe_file(path: str | os.PathLike) -> str:
    """A human-readable summary of an eigenchannel file (``speakergmm info``), read without
    its UBM."""
    arrays, header = read_npz(path, ("U",), format_name=FORMAT_NAME,
                              format_version=FORMAT_VERSION, what="eigenchannel")
    K, D, R = arrays["U"].shape if arrays["U"].ndim == 3 else (None, None, None)
    meta = header["metadata"]
    record = meta.get("training") or {}
    lines = ["speakergmm eigenchannel (session variability subspace)",
             f"  components (K): {K}", f"  dimension (D):  {D}", f"  rank (R):       {R}",
             f"  UBM:            {meta.get('ubm_fingerprint')}",
             f"  relevance:      {meta.get('relevance')}"]
    if record:
        lines.append(f"  trained on:     {record.get('utterances')} utterances in "
                     f"{record.get('classes')} classes, {record.get('iterations')} EM "
                     f"iterations, seed {record.get('seed')}")
    lines.append(f"  file:           format {header['format']} v{header['format_version']}, "
                 f"speakergmm {header.get('library_version')}")
    return "\n".join(lines)


class CompensatedFeatures(Mapping):
    """A features mapping whose utterances come out channel-compensated, computed on access.

    Parameters
    ----------
    features : mapping utt → (frames, D) array
        A feature archive, typically; its other attributes (``utt2spk``, ``config``,
        ``path``) are passed through.
    channel : EigenChannel
    """

    def __init__(self, features: Mapping[str, np.ndarray], channel: EigenChannel):
        self.features = features
        self.channel = channel

    def __getitem__(self, utt: str) -> np.ndarray:
        return self.channel.compensate(self.features[utt])

    def __iter__(self) -> Iterator[str]:
        return iter(self.features)

    def __len__(self) -> int:
        return len(self.features)

    def __contains__(self, utt) -> bool:
        return utt in self.features

    def __getattr__(self, name: str):
        if name in ("features", "channel"):  # not yet set (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.features, name)


# --- internals ----------------------------------------------------------------------------

def _utt_stats(state, utt: str) -> tuple[np.ndarray, np.ndarray]:
    ubm, features = state
    item = features[utt]
    stats = item if isinstance(item, GMMStats) else ubm.accumulate(item)
    return stats.n, stats.f.astype(np.float32)


class _Supervectors:
    """The utterances' counts N (h, K) float64 and first-order statistics F (h, K·D)
    float32, centred on the UBM and normalised by Σ^½, by blocks of rows: read again from a
    statistics archive at each pass (memory bounded by the block), or computed once from
    frames and kept."""

    def __init__(self, ubm: DiagGMM, features, utts: list[str], jobs):
        from .statsarchive import StatsArchive

        self.ubm, self.utts = ubm, utts
        self.archive = features if isinstance(features, StatsArchive) else None
        if self.archive is None:
            stats = get_executor(jobs).map(_utt_stats, utts, (ubm, features))
            self._N = np.stack([n for n, _ in stats])
            self._F = np.stack([f for _, f in stats]).reshape(len(utts), -1)
            del stats
            for blk in self.blocks():
                self._F[blk] = self._centred(self._N[blk], self._F[blk])

    def __len__(self) -> int:
        return len(self.utts)

    def blocks(self) -> list[slice]:
        H = len(self.utts)
        return [slice(lo, min(lo + _BLOCK, H)) for lo in range(0, H, _BLOCK)]

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


def _add_by_class(out: np.ndarray, rows: np.ndarray, cls: np.ndarray) -> None:
    """``out[c] += sum of rows of class c``, for rows sorted by class (``cls`` ascending);
    np.add.at would do it 20x slower."""
    starts = np.flatnonzero(np.r_[True, cls[1:] != cls[:-1]])
    out[cls[starts]] += np.add.reduceat(rows, starts, axis=0)


def _init(session, H, KD, cls_of, starts, R, rng):
    """Leading within-class directions of the utterances' MAP offsets (randomised SVD,
    Halko et al. 2011, in 7 passes mapped over spans of utterances like the E-step), scaled
    to their standard deviation: a start near the EM solution. Also returns the classes'
    summed counts."""
    spans = _spans(H)
    sums, class_n = np.zeros((len(starts), KD)), None
    for first, dev_sums, n_sums in session.map(_offset_sums, spans):
        sums[first:first + len(dev_sums)] += dev_sums
        if class_n is None:
            class_n = np.zeros((len(starts), n_sums.shape[1]))
        class_n[first:first + len(n_sums)] += n_sums
    centres = sums
    centres /= np.bincount(cls_of)[:, None]
    centres = centres.astype(np.float32)
    del sums

    def rows(span):  # a span's rows and its classes' centres
        lo, hi = cls_of[span[0].start], cls_of[span[-1].stop - 1] + 1
        return span, lo, centres[lo:hi]

    def times(M):  # dev @ M: (H, m)
        return np.concatenate(list(session.map(_times, [rows(sp) for sp in spans],
                                               shared=M)))

    def transposed_times(Y):  # dev.T @ Y: (K·D, m)
        total = None
        for part in session.map(_transposed_times, [
                (*rows(sp), Y[sp[0].start:sp[-1].stop]) for sp in spans]):
            total = part if total is None else total + part
        return total

    Y = times(rng.standard_normal((KD, R + 10)).astype(np.float32))
    for _ in range(2):  # power iterations sharpen the spectrum
        Y = np.linalg.qr(Y)[0]
        Y = times(transposed_times(Y).astype(np.float32))
    Q = np.linalg.qr(Y.astype(np.float64))[0]
    _, s, vt = np.linalg.svd(transposed_times(Q).T, full_matrices=False)
    return vt[:R].T * (s[:R] / np.sqrt(H)), class_n


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
        _add_by_class(dev_sums, dev, cls_of[blk] - first)
        _add_by_class(n_sums, N, cls_of[blk] - first)
    return first, dev_sums, n_sums


def _within(state, blk, first, centres):
    """A block's within-class deviations of the MAP offsets."""
    return _map_offsets(state, blk)[0] - centres[state[2][blk] - first]


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


def _minus_scaled(F, N, Y):
    """``F - n_k · Y`` for blocks of supervectors (H, K·D), with ``Y`` (a new float64 array)
    overwritten by the result: no (H, K·D) copy of the counts repeated D times, and no
    temporary beyond ``Y``."""
    H, K = N.shape
    Y3 = Y.reshape(H, K, -1)
    Y3 *= N[:, :, None]
    return np.subtract(F, Y, out=Y)


def _em_step(session, shape, class_n, D, U, X, starts, relevance, cls_of):
    """One iteration: class offsets given the current factors, then the factors' posteriors
    and the ML update of ``U`` (per component k: U_k = C_k A_k⁻¹).

    Mapped over spans of :data:`_SPAN` blocks, each reduced where it runs and carrying its
    own rows of the factors and of the class offsets: what travels per task is bounded by
    the span, not by the number of utterances or classes; only ``U`` is broadcast."""
    H, KD = shape
    K, R = KD // D, U.shape[1]
    spans = _spans(H)
    # class offsets: MAP of the statistics with each recording's channel offset removed
    num = np.zeros((len(starts), KD))
    items = [(span, X[span[0].start:span[-1].stop]) for span in spans]
    for first, sums in session.map(_residual_sums, items, shared=U):
        num[first:first + len(sums)] += sums
    offsets = num  # divided in place: no second (classes, K·D) array, no repeated counts
    offsets.reshape(len(starts), K, D)[...] /= (class_n + relevance)[:, :, None]
    # factors given the class offsets; accumulate A (K×R×R) and C (KD×R)
    UtU = np.matmul(U.reshape(K, D, R).transpose(0, 2, 1), U.reshape(K, D, R)).reshape(
        K, R * R)
    A = np.zeros((K, R * R))
    C = np.zeros((KD, R))
    X = np.empty((H, R))
    objective = 0.0
    items = []
    for span in spans:
        lo, hi = cls_of[span[0].start], cls_of[span[-1].stop - 1] + 1
        items.append((span, lo, offsets[lo:hi]))
    for span, (x, a, c, obj) in zip(spans, session.map(_factor_sums, items,
                                                        shared=(U, UtU))):
        X[span[0].start:span[-1].stop] = x
        A += a
        C += c
        objective += obj
    A = A.reshape(K, R, R)
    C = C.reshape(K, D, R)
    U = np.linalg.solve(A, C.transpose(0, 2, 1)).transpose(0, 2, 1).reshape(KD, R)
    return U, X, objective / H


def _spans(H: int) -> list[list[slice]]:
    """Blocks of rows grouped by :data:`_SPAN`: the unit of one task."""
    blocks = [slice(lo, min(lo + _BLOCK, H)) for lo in range(0, H, _BLOCK)]
    return [blocks[i:i + _SPAN] for i in range(0, len(blocks), _SPAN)]


def _residual_sums(state, U, item):
    """Per class of a span: the sum of its recordings' statistics less their channel
    offsets (rows sorted by class); the first class and the sums of its classes."""
    source, D, cls_of, _ = state
    span, X = item
    base = span[0].start
    first = cls_of[base]
    out = np.zeros((cls_of[span[-1].stop - 1] - first + 1, U.shape[0]))
    for blk in span:
        N, F = source.block(blk)
        resid = _minus_scaled(F, N, X[blk.start - base:blk.stop - base] @ U.T)
        _add_by_class(out, resid, cls_of[blk] - first)
    return first, out


def _factor_sums(state, shared, item):
    """A span's factor posteriors and its terms of A, C and the objective."""
    U, UtU = shared
    span, first, offsets = item
    xs, a, c, objective = [], None, None, 0.0
    for blk in span:  # summed in place as they come: one block's terms at a time
        x, a_b, c_b, obj = _block_factor_sums(state, U, UtU, blk, offsets, first)
        xs.append(x)
        objective += obj
        if a is None:
            a, c = a_b, c_b
        else:
            a += a_b
            c += c_b
    return np.concatenate(xs), a, c, objective


def _block_factor_sums(state, U, UtU, blk: slice, offsets, first):
    """A block's factor posteriors and its terms of A, C and the objective."""
    source, D, cls_of, _ = state
    R = U.shape[1]
    N, F = source.block(blk)
    centred = _minus_scaled(F, N, offsets[cls_of[blk] - first])
    L = np.eye(R) + (N @ UtU).reshape(-1, R, R)
    b = centred @ U
    cov = np.linalg.inv(L)
    x = np.einsum("hrs,hs->hr", cov, b)
    a = N.T @ (cov + x[:, :, None] * x[:, None, :]).reshape(-1, R * R)
    objective = float(np.sum(0.5 * np.einsum("hr,hr->h", b, x)
                             - 0.5 * np.linalg.slogdet(L)[1]))
    return x, a, centred.T @ x, objective
