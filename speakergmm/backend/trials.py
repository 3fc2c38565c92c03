"""Trial-list scoring: the one scorer of trial lists, whatever scores them.

A trial list is scored in two sides and one tail. The Z side scores blocks of models
against the cohort's test utterances and keeps two statistics per model; the test side
reads each test once (a GMM test utterance is read, compensated and Gaussian-selected once;
a vector transformed once) and scores it against its trials' models and, for the T side,
the cohort models, keeping its trial scores and two statistics; the tail
(:func:`~speakergmm.backend.scorenorm.finish_scores`) normalises and calibrates. No
(models x cohort), (tests x cohort) or (models x tests) matrix is held: memory is bounded
by a block, not by the number of models or trials.

Two scorers fill the sides: :class:`GMMTrialScorer` (MAP models against frames, top-C
LLR; models held, or adapted from their statistics for each test when they do not fit)
and :class:`VectorTrialScorer` (PLDA or cosine of i-vectors). ``speakergmm score``
(:mod:`speakergmm.batch`), the recipes and ``build-system``'s calibration trials
(:meth:`speakergmm.system.System.trial_scores`) all score through
:func:`score_trial_list`. The models and the cohort come from
:mod:`speakergmm.backend.enrollment`: Z-norm scores each model against the cohort's
utterances, T-norm each test utterance against the cohort's models, S-norm does both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ..constants import MODEL_MEMORY
from ..data.trials import Trials
from ..errors import SpeakerGMMError
from ..exec import Executor, get_executor
from ..gmm.mixture import DiagGMM, check_feature_config
from .enrollment import Cohort, EnrollmentStatistics, check_enroll_map, cohort_members
from .models import ModelSet
from .scorenorm import check_norm, cohort_stats, finish_scores, zscore_cohort
from .scoring import TestUtterance, check_method, prepare_test, score, score_rows

__all__ = ["score_trial_list", "check_enrolled", "score_trials", "GMMTrialScorer",
           "VectorTrialScorer", "model_cohort_stats", "test_cohort_stats"]


def _features(feats: Mapping[str, np.ndarray], utt: str) -> np.ndarray:
    try:
        return feats[utt]
    except KeyError:
        raise SpeakerGMMError(f"no features for test utterance '{utt}'; was it "
                              "extracted?") from None


# Models per Z-norm task: scored against every cohort utterance at once.
_Z_BLOCK_BYTES = 32 << 20


# --- the driver: one trial scorer, two sides and one tail ----------------------------------

def score_trials(scorer, trials: Trials, *, norm: str = "none", top_n: int | None = None,
                 calibration=None, return_raw: bool = False,
                 progress: Callable[[int, int], None] | None = None):
    """Scores of a trial list by ``scorer`` (:class:`GMMTrialScorer`,
    :class:`VectorTrialScorer`), normalised and calibrated as asked.

    Parameters
    ----------
    scorer : GMMTrialScorer or VectorTrialScorer
    trials : Trials
        ``enroll`` ids must be the scorer's models, ``test`` ids its test utterances.
    norm : {"none", "znorm", "tnorm", "ztnorm", "snorm", "asnorm"}
        Needs a scorer with a cohort unless "none".
    top_n : int, for AS-norm
    calibration : Calibration, optional
        Applied last.
    return_raw : bool
        Return the scores before normalisation and calibration as well.
    progress : callable(step, total), optional
        Called as trials are scored: ``step`` trials more of ``total``.

    Returns
    -------
    np.ndarray [shape=(len(trials),), float64]
        Or ``(scores, raw_scores)`` with ``return_raw``.
    """
    check_norm(norm, top_n)
    check_enrolled(trials, scorer.ids)
    if norm != "none" and not scorer.has_cohort:
        raise SpeakerGMMError(f"{norm} needs an impostor cohort (--cohort)")
    z_side = norm in ("znorm", "ztnorm", "snorm", "asnorm")
    t_side = norm in ("tnorm", "ztnorm", "snorm", "asnorm")
    tests, test_index = np.unique(trials.test, return_inverse=True)
    wanted, model_index = np.unique([scorer.index(m) for m in trials.enroll],
                                    return_inverse=True)
    rows = scorer.hold(wanted)  # the row of each wanted model in what the scorer holds
    enroll_stats = cohort_z = None
    if z_side:
        enroll_stats, cohort_z = scorer.model_side(rows, top_n=top_n, ztnorm=norm == "ztnorm")
    raw, test_stats = scorer.test_side(tests, test_index, rows[model_index], t_side=t_side,
                                       cohort_z=cohort_z, top_n=top_n, progress=progress)
    scores = finish_scores(
        raw, norm=norm, calibration=calibration,
        enroll_stats=None if enroll_stats is None else tuple(a[model_index]
                                                             for a in enroll_stats),
        test_stats=None if test_stats is None else tuple(a[test_index] for a in test_stats))
    return (scores, raw) if return_raw else scores


def _by_test(test_index: np.ndarray) -> list[np.ndarray]:
    """The trials of each test (in the order of the tests), each in trial order."""
    order = np.argsort(test_index, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(test_index[order])) + 1)


def check_enrolled(trials: Trials, models) -> None:
    """SpeakerGMMError naming a trial model that ``models`` (ids) does not hold."""
    unknown = sorted(set(trials.enroll) - set(models))
    if unknown:
        raise SpeakerGMMError(f"trial model '{unknown[0]}' is not enrolled ({len(unknown)} "
                              "unknown); check the enroll map")


# --- GMM: MAP models against frames --------------------------------------------------------

class GMMTrialScorer:
    """The sides of a trial list scored by MAP models against test frames (top-C LLR).

    Each test utterance is read, compensated and Gaussian-selected once, then scored
    against its trials' models and (T side) the cohort models together, and only its
    scores and two cohort statistics come back. The cohort utterances (Z side) are
    prepared once and scored against blocks of models, each block reduced to its models'
    cohort statistics where it was scored.

    Models given as :class:`EnrollmentStatistics` are adapted once and held in every
    process when they fit ``model_memory`` bytes; beyond it, each test utterance adapts its
    own trials' models from their statistics (a model scored in several trials is adapted
    for each: cheap next to scoring it). Both give the same scores to float32 rounding (the
    scoring kernel picks a GEMM or a gather by the number of models).

    Per process, beyond held models: one test utterance (frames, top-C pairs) and, on the
    Z side, the prepared cohort utterances and one block of models (32 MiB).
    """

    def __init__(self, ubm: DiagGMM, models: ModelSet | EnrollmentStatistics,
                 test_features: Mapping[str, np.ndarray], *, method: str = "topc",
                 c: int = 5, cohort: Cohort | None = None,
                 executor: Executor | int | None = None, model_memory: int = MODEL_MEMORY):
        check_method(method, c, ubm.n_components)
        check_feature_config(ubm, test_features)
        self.ubm, self.models, self.features = ubm, models, test_features
        self.method, self.c, self.cohort = method, c, cohort
        self.executor = get_executor(executor)
        self.model_memory = model_memory
        self.ids = models.ids
        self.index = models.index
        self.has_cohort = cohort is not None
        self._source = models

    def hold(self, wanted: np.ndarray) -> np.ndarray:
        models = self.models
        if not isinstance(models, ModelSet) and \
                len(wanted) * models.model_bytes <= self.model_memory:
            self._source = models.model_set(self.ubm, wanted)  # adapted once, held everywhere
            return np.arange(len(wanted))
        return wanted

    def model_side(self, rows: np.ndarray, *, top_n, ztnorm: bool):
        cohort, ubm = self.cohort, self.ubm
        # Cohort utterances prepared once (their number is the cohort's, not the data's).
        prepared = self.executor.map(_prepare, cohort.utterances,
                                     (ubm, cohort.features, self.method, self.c))
        per_block = max(1, _Z_BLOCK_BYTES // _model_bytes(self._source))
        items = [(0, rows[i:i + per_block]) for i in range(0, len(rows), per_block)]
        n_own = len(items)
        if ztnorm:
            own = np.arange(len(cohort.models))
            items += [(1, own[i:i + per_block]) for i in range(0, len(own), per_block)]
        results = self.executor.map(_cohort_block, items,
                                    (ubm, (self._source, cohort.models), prepared, top_n))
        del prepared
        enroll_stats = tuple(np.concatenate(a) for a in zip(*results[:n_own]))
        cohort_z = tuple(np.concatenate(a) for a in zip(*results[n_own:])) if ztnorm else None
        return enroll_stats, cohort_z

    def test_side(self, tests, test_index, model_rows, *, t_side: bool, cohort_z, top_n,
                  progress):
        groups = _by_test(test_index)
        items = [(str(u), model_rows[g], t_side) for u, g in zip(tests, groups)]
        state = (self.ubm, self.features, self._source,
                 None if self.cohort is None else self.cohort.models, cohort_z, self.method,
                 self.c, top_n)
        raw = np.empty(len(test_index), np.float64)
        mean, std = np.empty(len(tests)), np.empty(len(tests))
        with self.executor.start(state) as session:
            for i, (g, (own, t_stats)) in enumerate(zip(groups, session.map(_score_test,
                                                                            items))):
                raw[g] = own
                if t_stats is not None:
                    mean[i], std[i] = t_stats
                if progress is not None:
                    progress(len(g), len(test_index))
        return raw, ((mean, std) if t_side else None)


def _prepare(state, utt: str) -> TestUtterance:
    ubm, features, method, c = state
    return prepare_test(ubm, _features(features, utt), method=method, c=c)


def _model_set(source, ubm: DiagGMM, rows) -> ModelSet:
    if isinstance(source, ModelSet):
        return source if len(rows) == len(source) else source.select(
            [source.ids[r] for r in rows])
    return source.model_set(ubm, rows)


def _cohort_block(state, item) -> tuple[np.ndarray, np.ndarray]:
    """Z side: a block of models (of the enrollment source, or the cohort models) scored on
    every prepared cohort utterance, reduced at once to each model's cohort statistics."""
    ubm, sources, cohort_tests, top_n = state
    which, rows = item
    return model_cohort_stats(ubm, _model_set(sources[which], ubm, rows), cohort_tests, top_n)


def model_cohort_stats(ubm: DiagGMM, models: ModelSet, cohort_tests: Sequence[TestUtterance],
                       top_n: int | None = None, *, keep: bool = False
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The Z side of a block of models: each model's scores on the prepared cohort
    utterances reduced to their (mean, std) (:func:`cohort_stats`, top-N for AS-norm).
    ``keep``: leave each utterance's whitened pairs for the next call (the memory of
    :meth:`TestUtterance.release`, against the time of making them again)."""
    block = np.empty((len(models), len(cohort_tests)), np.float64)
    for j, test in enumerate(cohort_tests):
        block[:, j] = score(ubm, models, test)
        if not keep:
            test.release()  # the next block whitens them again: a copy of each would not fit
    return cohort_stats(block, top_n)


def test_cohort_stats(ubm: DiagGMM, cohort_models: ModelSet, test: TestUtterance,
                      cohort_z=None, top_n: int | None = None) -> tuple[float, float]:
    """The T side of a prepared test utterance: its scores against the cohort models
    (Z-normalised by the cohort's own statistics ``cohort_z`` for ZT-norm) reduced to
    their mean and deviation."""
    row = score(ubm, cohort_models, test)[None]
    if cohort_z is not None:
        row = zscore_cohort(row, cohort_z)
    mean, std = cohort_stats(row, top_n)
    return float(mean[0]), float(std[0])


def _score_test(state, item) -> tuple[np.ndarray, tuple | None]:
    """One test utterance, read (and compensated) once, its Gaussian selection made once:
    its scores against its trials' models and, when asked, its T-side cohort statistics."""
    ubm, features, source, cohort_models, cohort_z, method, c, top_n = state
    utt, rows, with_cohort = item
    test = prepare_test(ubm, _features(features, utt), method=method, c=c)
    if isinstance(source, ModelSet):
        own = score_rows(ubm, source, test, rows)
    else:
        uniq, where = np.unique(rows, return_inverse=True)
        own = score(ubm, source.model_set(ubm, uniq), test)[where]
    if not with_cohort:
        return own, None
    return own, test_cohort_stats(ubm, cohort_models, test, cohort_z, top_n)


def _model_bytes(source) -> int:
    if isinstance(source, ModelSet):
        return max(1, source.nbytes // len(source))
    return source.model_bytes


def score_trial_list(ubm: DiagGMM, trials: Trials, models: ModelSet | EnrollmentStatistics,
                     test_features: Mapping[str, np.ndarray], *, method: str = "topc",
                     c: int = 5, norm: str = "none", cohort: Cohort | None = None,
                     top_n: int | None = None, calibration=None,
                     executor: Executor | int | None = None, return_raw: bool = False,
                     model_memory: int = MODEL_MEMORY,
                     progress: Callable[[int, int], None] | None = None):
    """Scores of a trial list by MAP models against test frames, normalised and calibrated
    if asked, in memory that does not grow with it (:class:`GMMTrialScorer`,
    :func:`score_trials`).

    Parameters
    ----------
    ubm : DiagGMM
    trials : Trials
        ``enroll`` ids must be models of ``models``; ``test`` ids utterances of
        ``test_features``.
    models : ModelSet or EnrollmentStatistics
        Models in memory (broadcast to every worker as they are), or their statistics.
    test_features : mapping utt → (frames, D) array
    method, c : scoring method and top-C
    norm : {"none", "znorm", "tnorm", "ztnorm", "snorm", "asnorm"}
    cohort : Cohort, needed unless ``norm == "none"``
    top_n : int, for AS-norm
    calibration : Calibration, optional
        Applied to the normalised scores.
    executor : int, Executor or dask.distributed.Client, optional
        Where the work runs (:func:`speakergmm.exec.get_executor`).
    return_raw : bool
        Return the scores before normalisation and calibration as well.
    model_memory : int
        Bytes of adapted models a process may hold (:data:`MODEL_MEMORY`); held models
        take about twice that in the caller while they are adapted.
    progress : callable(step, total), optional
        Called as each test utterance's trials are scored.

    Returns
    -------
    np.ndarray [shape=(len(trials),), float64]
        Or ``(scores, raw_scores)`` with ``return_raw``.

    Raises
    ------
    ParameterError
        A bad method, ``c``, normalisation or ``top_n``, before any work is done.
    SpeakerGMMError
        A trial model that is not enrolled, a missing test utterance, no cohort.
    """
    check_norm(norm, top_n)
    scorer = GMMTrialScorer(ubm, models, test_features, method=method, c=c, cohort=cohort,
                            executor=executor, model_memory=model_memory)
    return score_trials(scorer, trials, norm=norm, top_n=top_n, calibration=calibration,
                        return_raw=return_raw, progress=progress)


# --- vectors: PLDA or cosine of i-vectors ---------------------------------------------------

# Trials, tests or models per block of vector scoring: bounds every matrix held to
# (block x dimension) or (block x cohort).
_VECTOR_BLOCK = 8192


class VectorTrialScorer:
    """The sides of a trial list scored by a vector back-end (PLDA or cosine) on vectors.

    Models are made for each block of trials from their enrollment vectors, and tests
    transformed for it: nothing is held for all models or all tests.

    Parameters
    ----------
    backend : VectorBackend
    enroll : mapping utt -> (R,) vector with ``matrix(utts)``
        A vector archive (:func:`speakergmm.sources.open_vectors`).
    enroll_map : mapping model id -> utterance ids
        Several vectors per model are scored by the book (PLDA) or averaged (cosine).
    test : like ``enroll`` (the same archive may serve both)
    kind : {"plda", "cosine"}
    cohort : like ``enroll``, optional
        The impostor cohort's vectors: each cohort speaker a model (as the targets are
        enrolled), each of ``cohort_utterances`` a test.
    cohort_utt2spk : mapping utt -> speaker
        Needed with ``cohort``.
    cohort_utterances : int or None
        At most this many cohort tests, spread over the cohort (None: all).
    """

    def __init__(self, backend, enroll, enroll_map: Mapping[str, Sequence[str]], test, *,
                 kind: str = "plda", cohort=None, cohort_utt2spk=None,
                 cohort_utterances: int | None = 500):
        check_enroll_map(enroll, enroll_map)
        self.backend, self.enroll, self.test, self.kind = backend, enroll, test, kind
        self.ids = tuple(enroll_map)
        self._row = {m: i for i, m in enumerate(self.ids)}
        self._groups = [list(enroll_map[m]) for m in self.ids]
        self.has_cohort = cohort is not None
        if cohort is not None:
            by_speaker, utts = cohort_members(cohort_utt2spk, cohort, cohort_utterances)
            self._cohort_models = backend.models(
                [cohort.matrix(us) for us in by_speaker.values()], backend=kind)
            self._cohort_tests = backend.transform(cohort.matrix(utts))

    def index(self, model_id: str) -> int:
        return self._row[model_id]

    def hold(self, wanted: np.ndarray) -> np.ndarray:
        return wanted  # made block by block

    def _models(self, rows):
        return self.backend.models([self.enroll.matrix(self._groups[r]) for r in rows],
                                   backend=self.kind)

    def model_side(self, rows: np.ndarray, *, top_n, ztnorm: bool):
        parts = [cohort_stats(self._models(rows[lo:lo + _VECTOR_BLOCK]).scores(
            self._cohort_tests), top_n) for lo in range(0, len(rows), _VECTOR_BLOCK)]
        enroll_stats = tuple(np.concatenate(a) for a in zip(*parts))
        cohort_z = cohort_stats(self._cohort_models.scores(self._cohort_tests)) if ztnorm \
            else None
        return enroll_stats, cohort_z

    def test_side(self, tests, test_index, model_rows, *, t_side: bool, cohort_z, top_n,
                  progress):
        missing = [u for u in tests if u not in self.test]
        if missing:
            raise SpeakerGMMError(f"no vector for test utterance '{missing[0]}' "
                                  f"({len(missing)} missing); was it extracted?")
        raw = np.empty(len(test_index))
        for lo in range(0, len(raw), _VECTOR_BLOCK):
            block = slice(lo, lo + _VECTOR_BLOCK)
            models, m = np.unique(model_rows[block], return_inverse=True)
            utts, t = np.unique(test_index[block], return_inverse=True)
            T = self.backend.transform(self.test.matrix(tests[utts]))
            raw[block] = self._models(models).pair_scores(m, T[t])
            if progress is not None:
                progress(len(m), len(raw))
        if not t_side:
            return raw, None
        mean, std = np.empty(len(tests)), np.empty(len(tests))
        for lo in range(0, len(tests), _VECTOR_BLOCK):
            T = self.backend.transform(self.test.matrix(tests[lo:lo + _VECTOR_BLOCK]))
            rows = self._cohort_models.scores(T).T  # (tests, cohort models)
            if cohort_z is not None:
                rows = zscore_cohort(rows, cohort_z)
            mean[lo:lo + len(T)], std[lo:lo + len(T)] = cohort_stats(rows, top_n)
        return raw, (mean, std)
