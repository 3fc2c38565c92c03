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

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from ..errors import SpeakerGMMError
from ..exec import DaskExecutor, Executor, SerialExecutor, get_executor
from .factor import (
    Subspace,
    Supervectors,
    add_by_class,
    gram,
    init_subspace,
    minus_scaled,
    packed_size,
    posterior_terms,
    solve_loadings,
    spans,
    unpack,
)
from .mixture import DiagGMM, check_feature_config, default_chunk_size
from .stats import centred_first_order

__all__ = ["EigenChannel", "CompensatedFeatures", "FORMAT_NAME",
           "FORMAT_VERSION"]

FORMAT_NAME = "speakergmm.eigenchannel"
FORMAT_VERSION = 1
# Posteriors of an utterance kept between the two passes of compensate() up to this size.
_KEEP_POSTERIOR_BYTES = 64 << 20


class EigenChannel(Subspace):
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

    _ARRAY, _FORMAT, _WHAT = "U", FORMAT_NAME, "eigenchannel"
    _COMMAND, _KIND = "speakergmm train-channel", "eigenchannel"

    def __init__(self, ubm: DiagGMM, U, *, metadata: Mapping[str, Any] | None = None):
        super().__init__(ubm, U, metadata=metadata)
        K, D, R = self.U.shape
        self._basis = (self.U * np.sqrt(ubm.variances.astype(np.float64))[:, :, None]).reshape(
            K * D, R)

    @property
    def U(self) -> np.ndarray:
        """The eigenchannels, (K, D, R)."""
        return self.matrix

    # -- training --------------------------------------------------------------------------

    @classmethod
    def fit(cls, ubm: DiagGMM, features: Mapping[str, np.ndarray], utt2class: Mapping[str, str],
            *, n_factors: int = 10, n_iterations: int = 10, relevance: float = 16.0,
            seed: int = 0, executor: Executor | int | None = None,
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
        executor : int, Executor or dask.distributed.Client, optional
            Where the statistics are computed (:func:`speakergmm.exec.get_executor`).
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
        source = Supervectors(ubm, features, utts, executor)
        cls_of = np.repeat(np.arange(len(starts)), counts)
        X = np.zeros((len(utts), n_factors))
        record = []
        # Initialisation and E-step are maps over spans of utterances reduced in span
        # order. On a Dask cluster the spans run on the workers (which read the statistics
        # archive); local work stays in this process: its GEMMs already use every core
        # through BLAS, and on two local workers shipping each span's sums cost more than
        # it saved (speechocean762, R = 60: 4.8 s in process, 6.0 s on two workers).
        where = get_executor(executor)
        if not isinstance(where, DaskExecutor) or source.archive is None:
            where = SerialExecutor()  # (statistics held in memory stay where they are)
        with where.start((source, D, cls_of, relevance)) as session:
            U, class_n = init_subspace(session, len(utts), K * D, n_factors,
                                       np.random.default_rng(seed),
                                       classes=(cls_of, len(starts)))
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
        L = np.eye(R) + unpack(n @ self._VtV, R)
        return np.linalg.solve(L, self._V.T @ centred.ravel())

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


def _em_step(session, shape, class_n, D, U, X, starts, relevance, cls_of):
    """One iteration: class offsets given the current factors, then the factors' posteriors
    and the ML update of ``U`` (per component k: U_k = C_k A_k⁻¹).

    Mapped over spans of :data:`~speakergmm.gmm.factor.SPAN` blocks, each reduced where it
    runs and carrying its own rows of the factors and of the class offsets: what travels per
    task is bounded by the span, not by the number of utterances or classes; only ``U`` is
    broadcast."""
    H, KD = shape
    K, R = KD // D, U.shape[1]
    spans_ = spans(H)
    # class offsets: MAP of the statistics with each recording's channel offset removed
    num = np.zeros((len(starts), KD))
    items = [(span, X[span[0].start:span[-1].stop]) for span in spans_]
    for first, sums in session.map(_residual_sums, items, shared=U):
        num[first:first + len(sums)] += sums
    offsets = num  # divided in place: no second (classes, K·D) array, no repeated counts
    offsets.reshape(len(starts), K, D)[...] /= (class_n + relevance)[:, :, None]
    # factors given the class offsets; accumulate A (K×R×R) and C (KD×R)
    UtU = gram(U, K, D)
    A = np.zeros((K, packed_size(R)))
    C = np.zeros((KD, R))
    X = np.empty((H, R))
    objective = 0.0
    items = []
    for span in spans_:
        lo, hi = cls_of[span[0].start], cls_of[span[-1].stop - 1] + 1
        items.append((span, lo, offsets[lo:hi]))
    for span, (x, a, c, obj) in zip(spans_, session.map(_factor_sums, items,
                                                        shared=(U, UtU))):
        X[span[0].start:span[-1].stop] = x
        A += a
        C += c
        objective += obj
    return solve_loadings(A, C, K, D, U), X, objective / H


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
        resid = minus_scaled(F, N, X[blk.start - base:blk.stop - base] @ U.T)
        add_by_class(out, resid, cls_of[blk] - first)
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
    N, F = source.block(blk)
    centred = minus_scaled(F, N, offsets[cls_of[blk] - first])
    x, a, c, _, objective = posterior_terms(N, centred, U, UtU)
    return x, a, c, objective
