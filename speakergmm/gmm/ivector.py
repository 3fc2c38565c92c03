"""The i-vector extractor: a total variability subspace of the UBM mean supervector.

Dehak et al. (2011) model every utterance's mean supervector, speaker and session alike, as

    M_h = m + T w_h,      w_h ~ N(0, I),

with ``m`` the UBM means, ``T`` (K·D × R) the *total variability* matrix and ``w_h`` the
utterance's R factors. The i-vector is the posterior mean of ``w_h`` given the utterance's
Baum-Welch statistics under the UBM: a few hundred numbers standing for the whole
utterance, which a vector back-end (LDA, WCCN, length normalisation, PLDA or cosine
scoring: :mod:`speakergmm.backend.vectors`) then compares.

``T`` is trained by EM on background statistics, each utterance its own class (the algebra
the eigenchannel shares, :mod:`speakergmm.gmm.factor`), with minimum-divergence
re-estimation after each M-step (Kenny 2008; Brümmer's "prior re-estimation"): the prior of
``w`` is re-estimated as the average second moment ``E[wwᵀ]`` and absorbed into ``T``, which
speeds convergence and keeps the factors standardised. As SIDEKIT, the MSR Identity Toolbox
and bob.learn.em (by default) do, the residual covariance is the UBM's and is not
re-estimated, and the prior has zero mean (no prior offset as in Kaldi: the statistics are
centred on the UBM means already). Everything runs in the variance-normalised space.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from .._io import output_lock, write_text_atomic
from ..errors import ArchiveError, ModelError, ParameterError, SpeakerGMMError
from ..exec import DaskExecutor, Executor, SerialExecutor, get_executor
from ..frontend.kaldi import stack_vectors, write_ark_part
from ..frontend.parts import (
    PartArchive,
    prepare_dir,
    remove_unreferenced_parts,
    write_part,
    write_parts,
)
from .factor import (
    Subspace,
    Supervectors,
    gram,
    init_subspace,
    packed_size,
    posterior_terms,
    posteriors,
    row_chunks,
    solve_loadings,
    spans,
    unpack,
)
from .mixture import DiagGMM, check_feature_config
from .stats import GMMStats, centred_first_order

__all__ = ["IVectorExtractor", "VectorArchive", "extract_ivectors", "read_vectors",
           "FORMAT_NAME", "FORMAT_VERSION", "VECTORS_FORMAT"]

FORMAT_NAME = "speakergmm.ivector"
FORMAT_VERSION = 1
#: Format name of a vector archive's header (``vectors.json``).
VECTORS_FORMAT = "speakergmm.vectors"
_VECTORS = "vectors"
_VHEADER = "vectors.json"
# Relevance of the MAP offsets whose principal directions start T.
_INIT_RELEVANCE = 16.0


class IVectorExtractor(Subspace):
    """A total variability matrix tied to one UBM; maps an utterance's statistics to its
    i-vector.

    Parameters
    ----------
    ubm : DiagGMM
        The UBM the matrix was trained with (its fingerprint is checked on loading).
    T : array_like [shape=(K, D, R)]
        In the variance-normalised space: component k's mean offset in feature units is
        ``sqrt(ubm.variances[k]) * (T[k] @ w)``.
    metadata : dict, optional
        JSON-serialisable; the training record.
    """

    _ARRAY, _FORMAT, _WHAT = "T", FORMAT_NAME, "i-vector extractor"
    _COMMAND, _KIND = "speakergmm train-ivector", "ivector"

    @property
    def T(self) -> np.ndarray:
        """The total variability matrix, (K, D, R)."""
        return self.matrix

    # -- training --------------------------------------------------------------------------

    @classmethod
    def fit(cls, ubm: DiagGMM, features: Mapping[str, np.ndarray], *,
            utterances=None, n_factors: int = 400, n_iterations: int = 10,
            min_divergence: bool = True, seed: int = 0, executor: Executor | int | None = None,
            progress: Callable[[int, float], None] | None = None) -> "IVectorExtractor":
        """Learn ``T`` from background recordings.

        Parameters
        ----------
        ubm : DiagGMM
        features : mapping utt → GMMStats or (frames, D) array
            A statistics archive under ``ubm`` (:func:`speakergmm.read_stats`; read a block
            of 128 utterances at a time at each pass, so memory does not grow with their
            number) or a feature archive (statistics computed once and kept).
        utterances : iterable of str, optional
            The utterances to train on (default: all of ``features``).
        n_factors : int
            R, the i-vector dimension (400-600 on large corpora; tens on small ones).
        n_iterations : int
            EM iterations.
        min_divergence : bool
            Re-estimate the prior after each M-step and absorb it into ``T``.
        seed : int
            Seeds the randomised SVD of the initialisation (principal directions of the
            utterances' MAP offsets).
        executor : int, Executor or dask.distributed.Client, optional
            Where the work runs (:func:`speakergmm.exec.get_executor`); every pass runs on
            a Dask cluster's workers when ``features`` is a statistics archive.
        progress : callable(iteration, objective), optional
            Called after each iteration with the average per-utterance log-likelihood of
            the statistics under the model (up to a constant; EM never lowers it).

        Raises
        ------
        SpeakerGMMError
            Bad settings, an utterance without features, fewer utterances than factors.

        Notes
        -----
        One pass costs about ``H·K·R²`` multiply-adds for the posterior precisions and as
        much for their sums (H utterances): R is what makes i-vectors expensive. Memory:
        ``K·R² + K·D·R`` float64 for the sums and ``T``, and one block of statistics.
        """
        if n_factors < 1 or n_iterations < 0:
            raise SpeakerGMMError(f"i-vector extractor: need n_factors >= 1 (got {n_factors}) "
                                  f"and n_iterations >= 0 (got {n_iterations})")
        check_feature_config(ubm, features)
        utts = sorted(features if utterances is None else utterances)
        missing = [u for u in utts if u not in features]
        if missing:
            raise SpeakerGMMError(f"i-vector extractor: no features for utterance "
                                  f"'{missing[0]}' ({len(missing)} missing); was it extracted?")
        if len(utts) <= n_factors:
            raise SpeakerGMMError(f"i-vector extractor: {n_factors} factors need more than "
                                  f"{n_factors} training utterances, got {len(utts)}; use "
                                  "fewer factors")
        K, D, H = ubm.n_components, ubm.dim, len(utts)
        source = Supervectors(ubm, features, utts, executor)
        where = get_executor(executor)
        if not isinstance(where, DaskExecutor) or source.archive is None:
            where = SerialExecutor()  # as the eigenchannel: BLAS already uses every core
        record = []
        with where.start((source, D, None, _INIT_RELEVANCE)) as session:
            V, _ = init_subspace(session, H, K * D, n_factors, np.random.default_rng(seed))
            for it in range(1, n_iterations + 1):
                V, objective = _em_step(session, H, K, D, V, min_divergence)
                record.append(round(objective, 6))
                if progress is not None:
                    progress(it, objective)
        meta = {"kind": "ivector", "ubm_fingerprint": ubm.fingerprint(),
                "feature_config": ubm.metadata.get("feature_config"), "n_factors": n_factors,
                "training": {"utterances": H, "iterations": n_iterations,
                             "min_divergence": min_divergence, "seed": seed,
                             "objective": record}}
        return cls(ubm, V.reshape(K, D, n_factors), metadata=meta)

    # -- extraction ----------------------------------------------------------------------

    def extract(self, n, f, *, return_cov: bool = False):
        """i-vectors of utterances from their statistics under the UBM.

        Parameters
        ----------
        n : array_like [shape=(K,) or (h, K)]
            Zeroth-order statistics.
        f : array_like [shape=(K, D) or (h, K, D)]
            First-order statistics (not centred).
        return_cov : bool
            Also return the posterior covariances ``L⁻¹``.

        Returns
        -------
        w : np.ndarray [shape=(R,) or (h, R), float64]
            Posterior means.
        cov : np.ndarray [shape=(R, R) or (h, R, R)]
            Only with ``return_cov``.
        """
        n, f = np.asarray(n, np.float64), np.asarray(f, np.float64)
        one = n.ndim == 1
        N, F = np.atleast_2d(n), f[None] if one else f
        K, D, R = self.T.shape
        if N.shape[1:] != (K,) or F.shape != (len(N), K, D):
            raise ModelError(f"statistics of shapes {n.shape} and {f.shape} do not fit the "
                             f"extractor's UBM (K, D) = {(K, D)}")
        centred = centred_first_order(N, F, self.ubm.means, self.ubm.variances).reshape(
            len(N), K * D)
        w = np.empty((len(N), R))
        cov = np.empty((len(N), R, R)) if return_cov else None
        for rows in row_chunks(len(N), R):
            w[rows], c, _, _ = posteriors(N[rows], centred[rows], self._V, self._VtV,
                                          covariances=return_cov)
            if return_cov:
                cov[rows] = unpack(c, R)
        if one:
            w, cov = w[0], None if cov is None else cov[0]
        return (w, cov) if return_cov else w


# --- vector archives ------------------------------------------------------------------------

class VectorArchive(PartArchive):
    """Read-only, lazy mapping from utterance id to its vector (R,) float32: i-vectors as
    :func:`extract_ivectors` writes them (the layout of a statistics archive: parts of
    consecutive utterances' rows, an index, a JSON header naming what made them).

    Attributes
    ----------
    path : Path
    header : dict
        ``dim``, ``extractor_fingerprint``, ``ubm_fingerprint``, ``source``.
    dim : int
    """

    _INDEX = "vectors.scp"
    _WHAT = "vector archive"
    _HOLDS = "vectors"
    _MAKE = "speakergmm extract-ivectors"

    def __init__(self, path: str | os.PathLike):
        super().__init__(path, _VHEADER)
        self.header = self._json_header(_VHEADER, VECTORS_FORMAT, FORMAT_VERSION)
        self.dim = int(self.header["dim"])

    @property
    def extractor_fingerprint(self) -> str | None:
        return self.header.get("extractor_fingerprint")

    def _check_part(self, path: Path, part: np.ndarray) -> None:
        if part.ndim != 2 or part.shape[1] != self.dim or part.dtype != np.float32:
            raise ArchiveError(f"{path}: holds {part.dtype} vectors of shape {part.shape}; "
                               f"expected (utterances, {self.dim}) float32; the archive is "
                               f"damaged, re-run '{self._MAKE}'")

    def __getitem__(self, utt: str) -> np.ndarray:
        vector = self._rows(utt, ".w.npy")[0]
        if not np.isfinite(vector).all():  # (NaN i-vectors were scored: NaN scores, exit 0)
            raise ArchiveError(f"{self.path}: the vector of '{utt}' is not finite (NaN or "
                               f"inf); the archive is damaged, re-run '{self._MAKE}'")
        return vector

    def matrix(self, utts) -> np.ndarray:
        """The vectors of ``utts`` stacked, (len(utts), R) float32."""
        return stack_vectors(self, utts)

    def __repr__(self) -> str:
        return f"VectorArchive({str(self.path)!r}, {len(self)} vectors, dim={self.dim})"


def read_vectors(path: str | os.PathLike) -> VectorArchive:
    """Open a vector archive written by :func:`extract_ivectors`."""
    return VectorArchive(path)


def extract_ivectors(extractor: IVectorExtractor, features: Mapping, out: str | os.PathLike,
                     *, utterances=None, batch_size: int = 256,
                     executor: Executor | int | None = None,
                     progress: Callable[[int], None] | None = None,
                     format: str = "speakergmm"):
    """Write the i-vector of every utterance of ``features`` into an archive at ``out``.

    Resumable (utterances an earlier run into ``out`` with the same extractor finished are
    kept), written atomically, mapped over batches on the executor (each worker writes its
    batch's part).

    Parameters
    ----------
    extractor : IVectorExtractor
    features : StatsArchive or feature archive
        Statistics under the extractor's UBM (read as stored), or features (accumulated).
    out : path
    utterances : iterable of str, optional
        A subset (default: all).
    batch_size : int
        Utterances per part and task.
    executor, progress : as :func:`speakergmm.gmm.statsarchive.extract_stats`.
    format : {"speakergmm", "kaldi"}
        A vector archive (parts of ``.npy`` rows, ``vectors.scp``), or Kaldi's layout:
        binary ark parts of float vectors indexed by ``ivector.scp`` (absolute paths), as
        Kaldi's extract_ivectors.sh writes, for Kaldi's and ESPnet's back-ends; both keep
        ``vectors.json`` (what made them) and ``utt2spk``.

    Returns
    -------
    VectorArchive or KaldiVectors

    Raises
    ------
    ArchiveError
        ``out`` holds vectors of another extractor; an utterance has no features.
    ModelError
        Statistics of another UBM.
    """
    from ..frontend.kaldi import (
        KALDI_VECTOR_INDEX,
        KaldiVectors,
        ark_part_present,
        write_kaldi_index,
    )
    from .statsarchive import UNCOMPENSATED, StatsArchive

    if format not in ("speakergmm", "kaldi"):
        raise ParameterError(f"format must be 'speakergmm' or 'kaldi', not {format!r}")
    kaldi = format == "kaldi"
    ubm = extractor.ubm
    check_feature_config(ubm, features)
    if isinstance(features, StatsArchive):
        features.check(ubm, fix=UNCOMPENSATED)  # (T models the sessions itself)
    out = Path(out)
    header = {"format": VECTORS_FORMAT, "format_version": FORMAT_VERSION, "kind": "ivector",
              "dim": extractor.n_factors, "extractor_fingerprint": extractor.fingerprint(),
              "ubm_fingerprint": ubm.fingerprint(),
              "source": str(Path(features.path).resolve()) if hasattr(features, "path")
              else None, "layout": "kaldi" if kaldi else None}
    with output_lock(out):
        prepare_dir(out, _VECTORS, _VHEADER, header, what="vectors",
                    keys=("format", "format_version", "dim", "extractor_fingerprint",
                          "layout"))
        utts = sorted(features if utterances is None else utterances)
        missing = [u for u in utts if u not in features]
        if missing:
            raise ArchiveError(f"no features for utterance '{missing[0]}' ({len(missing)} "
                               "missing); was it extracted?")
        parts = out / _VECTORS
        done = write_parts(out, _VECTORS, utts, _vectors_batch,
                           (extractor, features, parts, kaldi), arrays=("w",), n_extra=0,
                           batch_size=batch_size, executor=executor, progress=progress,
                           present=(lambda name: ark_part_present(parts, name)) if kaldi
                           else None)
        if kaldi:
            write_kaldi_index(out / KALDI_VECTOR_INDEX, parts, {u: done[u][0] for u in utts})
        else:
            write_text_atomic(out / VectorArchive._INDEX, "".join(
                f"{u} {_VECTORS}/{done[u][0]}[{done[u][1]}:{done[u][1] + 1}]\n" for u in utts))
        utt2spk = getattr(features, "utt2spk", None)
        if utt2spk is not None:
            write_text_atomic(out / "utt2spk", "".join(f"{u} {utt2spk[u]}\n" for u in utts
                                                       if u in utt2spk))
        remove_unreferenced_parts(parts, {done[u][0].split(".")[0] for u in utts})
        return KaldiVectors(out) if kaldi else VectorArchive(out)


def _vectors_batch(state, batch: list[str]) -> list[tuple[str, str, int]]:
    """Worker: a batch's i-vectors, written as one part."""
    extractor, features, parts, kaldi = state
    ubm = extractor.ubm
    K, D = ubm.n_components, ubm.dim
    N, F = np.empty((len(batch), K)), np.empty((len(batch), K, D))
    for i, utt in enumerate(batch):
        x = features[utt]
        stats = x if isinstance(x, GMMStats) else ubm.accumulate(x)
        N[i], F[i] = stats.n, stats.f
    W = extractor.extract(N, F).astype(np.float32)
    name = write_ark_part(parts, list(zip(batch, W))) if kaldi else write_part(parts, {"w": W})
    return [(utt, name, row) for row, utt in enumerate(batch)]


# --- internals ----------------------------------------------------------------------------

def _em_step(session, H: int, K: int, D: int, V: np.ndarray, min_divergence: bool):
    """One EM iteration over spans of utterances (each reduced where it runs; only ``V``
    and its Gram blocks are broadcast), then minimum-divergence re-estimation."""
    R = V.shape[1]
    A, C, second = np.zeros((K, packed_size(R))), np.zeros((K * D, R)), np.zeros((R, R))
    objective = 0.0
    for a, c, s, obj in session.map(_span_sums, spans(H), shared=(V, gram(V, K, D))):
        A += a
        C += c
        second += s
        objective += obj
    V = solve_loadings(A, C, K, D, V)
    if min_divergence:
        # w ~ N(0, E[wwᵀ]) is w = G z with z ~ N(0, I), G Gᵀ = E[wwᵀ]: T w = (T G) z.
        V = V @ np.linalg.cholesky(second / H)
    return V, objective / H


def _span_sums(state, shared, span):
    """A span's terms of A, C, the second moments and the objective."""
    V, VtV = shared
    source = state[0]
    total = None
    for blk in span:
        N, F = source.block(blk)
        _, a, c, s, obj = posterior_terms(N, F, V, VtV)
        if total is None:
            total = [a, c, s, obj]
        else:
            total[0] += a
            total[1] += c
            total[2] += s
            total[3] += obj
    return tuple(total)
