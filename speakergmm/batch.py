"""Batch enrollment and trial-list scoring from feature archives (what ``speakergmm score``
and the recipes call).

Enrollment models come from an enroll map (model id → utterance ids; by default one model
per speaker of the archive's ``utt2spk``). Scores are average per-frame LLRs, optionally
normalised against an impostor cohort (Z/T/ZT/S/AS-norm, :mod:`speakergmm.backend.scorenorm`) and
calibrated (:mod:`speakergmm.backend.calibration`).

Cohort: the cohort *models* are one MAP model per cohort speaker, the cohort *utterances*
are that cohort's utterances; Z-norm scores each enrollment model against the cohort
utterances, T-norm each test utterance against the cohort models, S-norm does both.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backend.models import stack_models
from .backend.scorenorm import check_norm, cohort_stats, normalize_with_stats, zscore_cohort
from .backend.scoring import (
    ModelSet,
    TestUtterance,
    check_method,
    prepare_test,
    score,
    score_rows,
)
from .constants import DEFAULT_C, MODEL_MEMORY
from .data.datadir import spk2utt as _spk2utt
from .data.trials import Trials
from .errors import ArchiveError, SpeakerGMMError
from .exec import Executor, get_executor
from .gmm.adapt import SpeakerModel
from .gmm.mixture import DiagGMM, check_feature_config
from .sources import frames_of, open_features, open_vectors

__all__ = ["enroll_models", "enroll_speakers", "Cohort", "score_trial_list",
           "EnrollmentStatistics", "MODEL_MEMORY", "check_enroll_map",
           "score_from_paths"]


def enroll_models(ubm: DiagGMM, features: Mapping[str, np.ndarray],
                  enroll_map: Mapping[str, Sequence[str]], *, relevance: float = 16.0,
                  adapt=("means",), executor: Executor | int | None = None) -> ModelSet:
    """MAP-adapt one model per entry of ``enroll_map`` and stack them.

    Parameters
    ----------
    ubm : DiagGMM
    features : mapping utt -> (frames, D) array, or utt -> GMMStats
        A feature archive, or a statistics archive (:func:`speakergmm.read_stats`) whose
        statistics are summed as they are, with no pass over the frames.
    enroll_map : mapping model id -> utterance ids
    relevance, adapt : MAP settings (:func:`speakergmm.gmm.adapt.map_adapt`)
    executor : int, Executor or dask.distributed.Client, optional
        Where the statistics are computed (:func:`speakergmm.exec.get_executor`).

    Raises
    ------
    SpeakerGMMError
        Naming the model and utterance when an enrollment utterance has no features.
    """
    check_feature_config(ubm, features)
    return stack_models(ubm, enroll_speakers(ubm, features, enroll_map, relevance=relevance,
                                             adapt=adapt, executor=executor),
                        list(enroll_map))


def enroll_speakers(ubm: DiagGMM, features: Mapping[str, np.ndarray],
                    enroll_map: Mapping[str, Sequence[str]], *, relevance: float = 16.0,
                    adapt=("means",), executor: Executor | int | None = None) -> list[SpeakerModel]:
    """The statistics of each entry of ``enroll_map`` (model id → utterance ids), in its
    order: what :func:`enroll_models` stacks. Raises as it does."""
    check_enroll_map(features, enroll_map)
    return get_executor(executor).map(
        _enroll, list(enroll_map.items()), (ubm, features, relevance, adapt))


def _enroll(state, entry) -> SpeakerModel:
    ubm, features, relevance, adapt = state
    _, utts = entry
    return SpeakerModel.enroll(ubm, (features[u] for u in utts), relevance=relevance,
                               adapt=adapt)


@dataclass
class Cohort:
    """An impostor cohort: stacked cohort-speaker models and the cohort utterances."""

    models: ModelSet
    features: Mapping[str, np.ndarray]
    utterances: list[str]

    @classmethod
    def from_archive(cls, ubm: DiagGMM, features: Mapping[str, np.ndarray],
                     utt2spk: Mapping[str, str], *, max_utterances: int | None = None,
                     enroll_utterances: int | None = None, relevance: float = 16.0,
                     adapt=("means",), stats: Mapping | None = None,
                     executor: Executor | int | None = None) -> "Cohort":
        """One model per cohort speaker; every cohort utterance (or an even subset of at
        most ``max_utterances``) as a cohort test utterance.

        ``relevance``, ``adapt`` and ``enroll_utterances`` should match the models being
        normalised, so that cohort models are built like them: a cohort model enrolled on
        more data than the target models is sharper than they are, which biases the T-norm
        statistics. ``enroll_utterances`` caps each cohort model's enrollment at that many
        of its speaker's utterances, spread evenly over them in sorted order (None: all).
        ``stats`` (a statistics archive of the same utterances) enrolls the models from
        stored statistics instead of the frames.
        """
        check_feature_config(ubm, features)
        spk2utt, utts = cohort_members(utt2spk, features, max_utterances)
        if enroll_utterances:
            spk2utt = {s: spread(us, enroll_utterances) for s, us in spk2utt.items()}
        models = enroll_models(ubm, features if stats is None else stats, spk2utt,
                               relevance=relevance, adapt=adapt, executor=executor)
        return cls(models, features, utts)


def cohort_members(utt2spk: Mapping[str, str], present: Mapping,
                   max_utterances: int | None) -> tuple[dict[str, list[str]], list[str]]:
    """A cohort's speakers (speaker -> its utterances in ``present``) and its test
    utterances: all of them, or an even subset of at most ``max_utterances``."""
    spk2utt = _spk2utt(utt2spk, keep=present)
    if not spk2utt:
        raise SpeakerGMMError(f"{getattr(present, 'path', 'the cohort')}: the cohort has no "
                              "utterances with features")
    utts = [u for us in spk2utt.values() for u in us]
    if max_utterances and len(utts) > max_utterances:
        utts = spread(utts, max_utterances)
    return spk2utt, utts


def spread(items: list, n: int) -> list:
    """At most ``n`` of ``items``, evenly spaced, first and last included."""
    if len(items) <= n:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, n).astype(int)]


def _features(feats: Mapping[str, np.ndarray], utt: str) -> np.ndarray:
    try:
        return feats[utt]
    except KeyError:
        raise SpeakerGMMError(f"no features for test utterance '{utt}'; was it "
                              "extracted?") from None


# Models per Z-norm task: scored against every cohort utterance at once.
_Z_BLOCK_BYTES = 32 << 20


class EnrollmentStatistics:
    """Enrollment models kept as their statistics and MAP-adapted when they are scored.

    What :func:`score_trial_list` takes when the models need not all be in memory at once:
    a model costs K x (D+1) float32 once adapted, but nothing until then, and adapting it
    from its statistics is a fraction of the cost of scoring it.

    Parameters
    ----------
    ubm : DiagGMM
    stats : mapping key -> GMMStats
        A statistics archive (:func:`speakergmm.read_stats`) of the UBM, of utterances or of
        whole models (:func:`~speakergmm.gmm.statsarchive.extract_stats` with ``groups``).
    enroll_map : mapping model id -> keys of ``stats``
        Each model's statistics are the sum of its keys'.
    relevance, adapt : MAP settings (:func:`speakergmm.gmm.adapt.map_adapt`)

    Raises
    ------
    SpeakerGMMError
        A key missing from ``stats``, an empty enroll map, or variance adaptation from
        statistics without the second order.
    """

    def __init__(self, ubm: DiagGMM, stats: Mapping, enroll_map: Mapping[str, Sequence[str]],
                 *, relevance: float = 16.0, adapt=("means",)):
        from .gmm.adapt import parse_adapt

        check_enroll_map(stats, enroll_map)
        self.ubm_fingerprint = ubm.fingerprint()
        of = getattr(stats, "ubm_fingerprint", self.ubm_fingerprint)
        if of != self.ubm_fingerprint:
            raise SpeakerGMMError(f"{getattr(stats, 'path', 'the statistics')}: statistics of "
                                  f"UBM {of}, not of the UBM given ({self.ubm_fingerprint})")
        self.stats, self.relevance = stats, float(relevance)
        self.adapt = parse_adapt(adapt)
        if "variances" in self.adapt and getattr(stats, "second_order", True) is False:
            raise SpeakerGMMError(f"{getattr(stats, 'path', 'the statistics')}: no second-"
                                  "order statistics, which variance adaptation needs; "
                                  "compute them with 'speakergmm stats --second-order'")
        self.ids = tuple(enroll_map)
        self._keys = [tuple(enroll_map[m]) for m in self.ids]
        self._index = {m: i for i, m in enumerate(self.ids)}
        self.model_bytes = 4 * ubm.n_components * (
            ubm.dim + 1 if self.adapt == ("means",) else 2 * ubm.dim + 1)

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, model_id: str) -> int:
        return self._index[model_id]

    def model_set(self, ubm: DiagGMM, rows: Sequence[int]) -> ModelSet:
        """The models at ``rows`` adapted and stacked (means-only: straight from the
        statistics in float32, :meth:`ModelSet.from_statistics`)."""
        ids = [self.ids[r] for r in rows]
        if self.adapt != ("means",):
            return stack_models(ubm, [SpeakerModel(self._sum(r), self.ubm_fingerprint,
                                                   self.relevance, self.adapt)
                                      for r in rows], ids)  # checks the UBM
        K, D = ubm.n_components, ubm.dim
        n = np.empty((len(rows), K), np.float32)
        f = np.empty((len(rows), K, D), np.float32)
        for i, r in enumerate(rows):
            keys = self._keys[r]
            if len(keys) == 1 and hasattr(self.stats, "first_order"):
                n[i : i + 1], f[i : i + 1] = self.stats.first_order(keys)  # as stored
            else:
                st = self._sum(r)
                n[i], f[i] = st.n, st.f
        models = ModelSet.from_statistics(ubm, n, f, relevance=self.relevance, ids=ids)
        if models.ubm_fingerprint != self.ubm_fingerprint:
            raise SpeakerGMMError(f"these enrollment statistics are of UBM "
                                  f"{self.ubm_fingerprint}, not {models.ubm_fingerprint}")
        return models

    def _sum(self, row: int):
        from .gmm.stats import GMMStats

        stats = None
        for key in self._keys[row]:
            x = self.stats[key]
            stats = (GMMStats.zeros(x.n_components, x.dim) if stats is None else stats) + x
        return stats


def check_enroll_map(features: Mapping, enroll_map: Mapping[str, Sequence[str]]) -> None:
    """SpeakerGMMError naming the model and the utterance unless every utterance of
    ``enroll_map`` is in ``features`` (and the map names a model)."""
    if not enroll_map:
        raise SpeakerGMMError("the enroll map is empty: no model to score")
    for model_id, utts in enroll_map.items():
        missing = [u for u in utts if u not in features]
        if missing:
            raise SpeakerGMMError(f"model '{model_id}': no features for enrollment utterance "
                                  f"'{missing[0]}' ({len(missing)} missing); was it extracted?")
        if not utts:
            raise SpeakerGMMError(f"model '{model_id}': no enrollment utterances")


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
    models = _model_set(sources[which], ubm, rows)
    block = np.empty((len(rows), len(cohort_tests)), np.float64)
    for j, test in enumerate(cohort_tests):
        block[:, j] = score(ubm, models, test)
        test.release()  # the next block whitens them again: a copy of each would not fit
    return cohort_stats(block, top_n)


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
    row = score(ubm, cohort_models, test)[None]
    if cohort_z is not None:
        row = zscore_cohort(row, cohort_z)
    mean, std = cohort_stats(row, top_n)
    return own, (mean[0], std[0])


def score_trial_list(ubm: DiagGMM, trials: Trials, models: ModelSet | EnrollmentStatistics,
                     test_features: Mapping[str, np.ndarray], *, method: str = "topc",
                     c: int = 5, norm: str = "none", cohort: Cohort | None = None,
                     top_n: int | None = None, executor: Executor | int | None = None,
                     return_raw: bool = False,
                     model_memory: int = MODEL_MEMORY,
                     progress: Callable[[int, int], None] | None = None):
    """Scores of a trial list, normalised if asked, in memory that does not grow with it.

    Each test utterance is read, compensated and Gaussian-selected once, then scored
    against its trials' models and (T-norm side) the cohort models together, and only its
    scores and two cohort statistics come back. The cohort utterances (Z-norm side) are
    prepared once and scored against blocks of models, each block reduced to its models'
    cohort statistics where it was scored: no (models x cohort) or (tests x cohort) matrix
    is ever held.

    Models given as :class:`EnrollmentStatistics` are adapted once and held in every
    process when they fit ``model_memory`` bytes; beyond it, each test utterance adapts its
    own trials' models from their statistics (a model scored in several trials is adapted
    for each: cheap next to scoring it). Both give the same scores to float32 rounding (the
    scoring kernel picks a GEMM or a gather by the number of models). Held models take
    about twice ``model_memory`` in the caller while they are adapted.

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
    executor : int, Executor or dask.distributed.Client, optional
        Where the work runs (:func:`speakergmm.exec.get_executor`).
    return_raw : bool
        Return the scores before normalisation as well.
    model_memory : int
        Bytes of adapted models a process may hold (:data:`MODEL_MEMORY`).
    progress : callable(step, total), optional
        Called as each test utterance's trials are scored: ``step`` trials more of
        ``total``.

    Returns
    -------
    np.ndarray [shape=(len(trials),), float64]
        Or ``(scores, raw_scores)`` with ``return_raw``.

    Raises
    ------
    ValueError
        A bad method, ``c``, normalisation or ``top_n``, before any work is done.
    SpeakerGMMError
        A trial model that is not enrolled, a missing test utterance, no cohort.

    Notes
    -----
    Per process, beyond the models: one test utterance (frames, top-C pairs) and, on the Z
    side, the prepared cohort utterances (frames and top-C indices) and one block of models
    (32 MiB). In the caller: the trials, their scores and two floats per model and test.
    """
    check_method(method, c, ubm.n_components)
    check_norm(norm, top_n)
    check_feature_config(ubm, test_features)
    _check_enrolled(trials, models.ids)
    if norm != "none" and cohort is None:
        raise SpeakerGMMError(f"{norm} needs an impostor cohort (--cohort FEATS)")
    z_side = norm in ("znorm", "ztnorm", "snorm", "asnorm")
    t_side = norm in ("tnorm", "ztnorm", "snorm", "asnorm")
    executor = get_executor(executor)

    tests, test_index = np.unique(trials.test, return_inverse=True)
    wanted, model_index = np.unique([models.index(m) for m in trials.enroll],
                                    return_inverse=True)
    source = models
    if not isinstance(models, ModelSet) and len(wanted) * models.model_bytes <= model_memory:
        source = models.model_set(ubm, wanted)  # they fit: adapted once, held everywhere
    # The row in ``source`` of each model of the trials (``model_index`` indexes these).
    rows = np.arange(len(wanted)) if source is not models else wanted

    cohort_z = enroll_stats = None
    if z_side:
        # Cohort utterances prepared once (their number is the cohort's, not the data's).
        prepared = executor.map(_prepare, cohort.utterances,
                                (ubm, cohort.features, method, c))
        per_block = max(1, _Z_BLOCK_BYTES // _model_bytes(source))
        items = [(0, rows[i:i + per_block]) for i in range(0, len(rows), per_block)]
        n_own = len(items)
        if norm == "ztnorm":
            own = np.arange(len(cohort.models))
            items += [(1, own[i:i + per_block]) for i in range(0, len(own), per_block)]
        results = executor.map(_cohort_block, items,
                               (ubm, (source, cohort.models), prepared, top_n))
        del prepared
        enroll_stats = tuple(np.concatenate(a) for a in zip(*results[:n_own]))
        if norm == "ztnorm":
            cohort_z = tuple(np.concatenate(a) for a in zip(*results[n_own:]))

    order = np.argsort(test_index, kind="stable")
    cuts = np.flatnonzero(np.diff(test_index[order])) + 1
    groups = np.split(order, cuts)  # trials of each test utterance, in trial order
    items = [(str(u), rows[model_index[g]], t_side) for u, g in zip(tests, groups)]
    state = (ubm, test_features, source, None if cohort is None else cohort.models, cohort_z,
             method, c, top_n)
    raw = np.empty(len(trials), np.float64)
    test_mean, test_std = np.empty(len(tests)), np.empty(len(tests))
    with executor.start(state) as session:
        for i, (g, (own, t_stats)) in enumerate(zip(groups, session.map(_score_test, items))):
            raw[g] = own
            if t_stats is not None:
                test_mean[i], test_std[i] = t_stats
            if progress is not None:
                progress(len(g), len(trials))
    if norm == "none":
        return (raw, raw.copy()) if return_raw else raw
    normalised = normalize_with_stats(
        norm, raw,
        enroll_stats=None if enroll_stats is None else tuple(a[model_index]
                                                             for a in enroll_stats),
        test_stats=(test_mean[test_index], test_std[test_index]) if t_side else None)
    return (normalised, raw) if return_raw else normalised


def _check_enrolled(trials: Trials, models) -> None:
    """SpeakerGMMError naming a trial model that ``models`` (ids) does not hold."""
    unknown = sorted(set(trials.enroll) - set(models))
    if unknown:
        raise SpeakerGMMError(f"trial model '{unknown[0]}' is not enrolled ({len(unknown)} "
                              "unknown); check the enroll map")


def _model_bytes(source) -> int:
    if isinstance(source, ModelSet):
        return max(1, source.nbytes // len(source))
    return source.model_bytes


# --- from paths: what `speakergmm score` runs -----------------------------------------------




def score_from_paths(trials: Trials | str | os.PathLike, *, enroll, test, ubm=None,
                     enroll_map=None, cohort=None, cohort_utt2spk=None, channel=None,
                     audio_root=None, return_raw: bool = False,
                     method: str = "topc", c: int | None = None, relevance: float = 16.0,
                     adapt=("means",), norm: str = "none", top_n: int | None = None,
                     cohort_utts: int | None = 500, cohort_enroll_utts: int | None = None,
                     calibration=None, model_memory: int = MODEL_MEMORY,
                     executor: Executor | int | None = None,
                     progress: Callable[[int, int], None] | None = None
                     ) -> tuple[Trials, np.ndarray]:
    """Score a trial list from archives on disk (``speakergmm score``).

    Every option is checked before any work: the method and ``c`` against the UBM, the
    normalisation against ``top_n`` and the cohort, each archive against the UBM's feature
    config, statistics archives against the UBM and the channel.

    Parameters
    ----------
    trials : Trials or path
    enroll : path or list of paths
        Feature archives, statistics archives or data directories of the enrollment
        utterances (several: one union of distinct utterances).
    test : path or list of paths
        Feature archives or data directories of the test utterances.
    ubm : DiagGMM, path or None (the bundled UBM)
    enroll_map : mapping or path, optional
        Model -> utterances (default: one model per speaker of the enrollment archive).
    cohort : path, optional
        Feature or statistics archive of the impostor cohort (needed by ``norm``).
    cohort_utt2spk : mapping or path, optional
        The cohort's utterances and speakers, when they are a part of ``cohort`` (e.g.
        some of the UBM's speakers, whose features are in the UBM's archive) [default: the
        archive's ``utt2spk``].
    return_raw : bool
        Also return the scores before normalisation and calibration.
    channel : EigenChannel or path, optional
        Session compensation of every utterance.
    audio_root : path, optional
        For data directories given instead of archives.
    method, c, relevance, adapt, norm, top_n, cohort_utts, cohort_enroll_utts
        As :func:`score_trial_list`, :func:`enroll_models` and :meth:`Cohort.from_archive`;
        ``c`` defaults to :data:`DEFAULT_C`, or K for a smaller UBM (top-C with C = K is
        the full LLR), while a ``c`` given above K is refused.
    calibration : Calibration or path, optional
        Applied to the scores.
    model_memory, progress : int, callable(step, total)
        As :func:`score_trial_list`.
    executor : int, Executor or dask.distributed.Client, optional
        Where the work runs (:func:`speakergmm.exec.get_executor`).

    Returns
    -------
    trials : Trials
    scores : np.ndarray [shape=(len(trials),), float64]
    raw_scores : np.ndarray [shape=(len(trials),), float64]
        Only with ``return_raw``: the same trials before normalisation and calibration (computed in
        the same pass).
    """
    import tempfile

    from .backend.calibration import Calibration
    from .data.textmap import read_kaldi_map
    from .data.trials import read_enroll_map, read_trials
    from .gmm.eigenchannel import EigenChannel
    from .gmm.statsarchive import StatsArchive

    if ubm is None:
        from .pretrained import load_default_ubm

        ubm = load_default_ubm()
    elif not isinstance(ubm, DiagGMM):
        ubm = DiagGMM.load(ubm)
    if c is None:
        c = min(DEFAULT_C, ubm.n_components)
    check_method(method, c, ubm.n_components)
    check_norm(norm, top_n)
    if norm != "none" and cohort is None:
        raise SpeakerGMMError(f"--norm {norm} needs an impostor cohort (--cohort)")
    if norm == "none" and cohort is not None:
        raise SpeakerGMMError("a cohort is only used by a score normalisation: give --norm, "
                              "or leave out --cohort")
    if cohort is None and cohort_utt2spk is not None:
        raise SpeakerGMMError("a cohort utt2spk selects utterances of a cohort archive: give "
                              "--cohort too")
    trials = trials if isinstance(trials, Trials) else read_trials(trials)
    if channel is not None and not isinstance(channel, EigenChannel):
        channel = EigenChannel.load(channel, ubm)
    if calibration is not None and not isinstance(calibration, Calibration):
        calibration = Calibration.load(calibration)
    executor = get_executor(executor)
    with tempfile.TemporaryDirectory(prefix="speakergmm-") as workdir:
        opened = dict(channel=channel, audio_root=audio_root, workdir=workdir)
        enroll_src = open_features(enroll, ubm, **opened)
        test_src = open_features(test, ubm, **opened, stats_ok=False)
        cohort_src = None if cohort is None else open_features(cohort, ubm, **opened)
        if enroll_map is None:
            spk2utt = _spk2utt(enroll_src.utt2spk)
        else:
            spk2utt = enroll_map if isinstance(enroll_map, Mapping) else read_enroll_map(
                enroll_map)
        wanted = set(trials.enroll)
        _check_enrolled(trials, spk2utt)  # a trial model nobody enrolls, named up front
        models = _enrollment(ubm, enroll_src, {m: u for m, u in spk2utt.items() if m in wanted},
                             relevance=relevance, adapt=adapt, channel=channel,
                             workdir=workdir, executor=executor)
        impostors = None
        if cohort_src is not None:
            stats = cohort_src if isinstance(cohort_src, StatsArchive) else None
            frames = cohort_src if stats is None else frames_of(stats, ubm, channel)
            if cohort_utt2spk is None:
                cohort_utt2spk = cohort_src.utt2spk
            elif not isinstance(cohort_utt2spk, Mapping):
                cohort_utt2spk = read_kaldi_map(cohort_utt2spk, n_values=1)
            missing = [u for u in cohort_utt2spk if u not in cohort_src]
            if missing:
                raise ArchiveError(f"{cohort}: no features for cohort utterance "
                                   f"'{missing[0]}' ({len(missing)} missing); give the "
                                   "archive that holds the cohort's utterances")
            impostors = Cohort.from_archive(
                ubm, frames, cohort_utt2spk, max_utterances=cohort_utts,
                enroll_utterances=cohort_enroll_utts, relevance=relevance, adapt=adapt,
                stats=stats, executor=executor)
        scores = score_trial_list(ubm, trials, models, test_src, method=method, c=c, norm=norm,
                                  cohort=impostors, top_n=top_n, executor=executor,
                                  return_raw=return_raw, model_memory=model_memory,
                                  progress=progress)
    scores, unnormalised = scores if return_raw else (scores, None)
    if calibration is not None:
        scores = calibration.transform(scores)
    return (trials, scores, unnormalised) if return_raw else (trials, scores)


def _enrollment(ubm: DiagGMM, source, enroll_map, *, relevance, adapt, channel, workdir,
                executor) -> EnrollmentStatistics:
    """The models' statistics: a statistics archive of single-utterance models as it is,
    else each model's summed statistics computed once into ``workdir`` (on a cluster it
    must be on the shared file system: the workers write there)."""
    from .gmm.adapt import parse_adapt
    from .gmm.statsarchive import StatsArchive, extract_stats

    check_enroll_map(source, enroll_map)
    if not (isinstance(source, StatsArchive) and all(len(u) == 1
                                                     for u in enroll_map.values())):
        # Features are compensated on access already: the channel only checks statistics.
        source = extract_stats(ubm, source, Path(workdir) / "enroll-stats", groups=enroll_map,
                               second_order="variances" in parse_adapt(adapt),
                               channel=channel if isinstance(source, StatsArchive) else None,
                               executor=executor)
        enroll_map = {m: (m,) for m in enroll_map}
    return EnrollmentStatistics(ubm, source, enroll_map, relevance=relevance, adapt=adapt)





# --- vector back-ends: i-vector archives scored by PLDA or cosine --------------------------

# Models scored against the cohort at once on the Z side (bounds a models x cohort block).
_VECTOR_BLOCK = 8192





def score_vector_trials(trials: Trials | str | os.PathLike, *, enroll, test, backend,
                        kind: str = "plda", enroll_map=None, norm: str = "none",
                        cohort=None, cohort_utt2spk=None, cohort_utts: int | None = 500,
                        top_n: int | None = None, calibration=None,
                        return_raw: bool = False):
    """Score a trial list from vector archives (i-vectors) with a trained back-end.

    Parameters
    ----------
    trials : Trials or path
    enroll, test : VectorArchive or path
        Vectors of the enrollment and test utterances (the same archive may serve both).
    backend : VectorBackend or path
        From ``speakergmm train-plda``: its transforms, then PLDA (``kind="plda"``) or the
        cosine of the transformed vectors (``kind="cosine"``).
    kind : {"plda", "cosine"}
    enroll_map : mapping or path, optional
        Model -> utterances (default: one model per speaker of the enrollment archive);
        several vectors per model are scored by the book (PLDA) or averaged (cosine).
    norm, top_n : score normalisation, as :func:`score_trial_list`
    cohort : VectorArchive or path, optional
        The impostor cohort's vectors: each cohort speaker a model (as the targets are
        enrolled), each cohort utterance (at most ``cohort_utts``, spread) a test.
    cohort_utt2spk : mapping or path, optional
        Its utterances and speakers [default: the archive's utt2spk].
    calibration : Calibration or path, optional
    return_raw : bool
        Also return the scores before normalisation and calibration.

    Returns
    -------
    trials, scores[, raw_scores]
    """
    from .backend.calibration import Calibration
    from .backend.vectors import BACKENDS, VectorBackend
    from .data.textmap import read_kaldi_map
    from .data.trials import read_enroll_map, read_trials
    if kind not in BACKENDS:
        raise SpeakerGMMError(f"unknown vector back-end {kind!r}: choose {', '.join(BACKENDS)}")
    check_norm(norm, top_n)
    if (norm != "none") != (cohort is not None):
        raise SpeakerGMMError(f"--norm {norm} needs an impostor cohort (--cohort)" if cohort
                              is None else "a cohort is only used by a score normalisation: "
                              "give --norm, or leave out --cohort")
    trials = trials if isinstance(trials, Trials) else read_trials(trials)
    backend_name = "the back-end" if isinstance(backend, VectorBackend) else str(backend)
    backend = backend if isinstance(backend, VectorBackend) else VectorBackend.load(backend)
    if calibration is not None and not isinstance(calibration, Calibration):
        calibration = Calibration.load(calibration)
    enroll, test = (open_vectors(a, backend, name=backend_name) for a in (enroll, test))
    if cohort is not None:
        cohort = open_vectors(cohort, backend, name=backend_name)
    if enroll_map is None:
        enroll_map = _spk2utt(enroll.utt2spk)
    elif not isinstance(enroll_map, Mapping):
        enroll_map = read_enroll_map(enroll_map)
    _check_enrolled(trials, enroll_map)
    ids, model_index = np.unique(trials.enroll, return_inverse=True)
    check_enroll_map(enroll, {m: enroll_map[m] for m in ids})
    tests, test_index = np.unique(trials.test, return_inverse=True)
    missing = [u for u in tests if u not in test]
    if missing:
        raise SpeakerGMMError(f"no vector for test utterance '{missing[0]}' ({len(missing)} "
                              "missing); was it extracted?")
    models = backend.models([enroll.matrix(enroll_map[m]) for m in ids], backend=kind)
    T = backend.transform(test.matrix(tests))
    raw = np.empty(len(trials))
    for lo in range(0, len(trials), _VECTOR_BLOCK):
        hi = lo + _VECTOR_BLOCK
        raw[lo:hi] = models.pair_scores(model_index[lo:hi], T[test_index[lo:hi]])
    scores = raw
    if norm != "none":
        archive = cohort
        if cohort_utt2spk is None:
            cohort_utt2spk = archive.utt2spk
        elif not isinstance(cohort_utt2spk, Mapping):
            cohort_utt2spk = read_kaldi_map(cohort_utt2spk, n_values=1)
        by_speaker, utts = cohort_members(cohort_utt2spk, archive, cohort_utts)
        cohort_models = backend.models([archive.matrix(us) for us in by_speaker.values()],
                                       backend=kind)
        cohort_tests = backend.transform(archive.matrix(utts))
        z_side = norm in ("znorm", "ztnorm", "snorm", "asnorm")
        t_side = norm in ("tnorm", "ztnorm", "snorm", "asnorm")
        cohort_z = enroll_stats = test_stats = None
        if norm == "ztnorm":
            cohort_z = cohort_stats(cohort_models.scores(cohort_tests))
        if z_side:
            parts = [cohort_stats(models[lo:lo + _VECTOR_BLOCK].scores(cohort_tests), top_n)
                     for lo in range(0, len(models), _VECTOR_BLOCK)]
            enroll_stats = tuple(np.concatenate(a)[model_index] for a in zip(*parts))
        if t_side:
            rows = cohort_models.scores(T).T  # (tests, cohort models)
            if cohort_z is not None:
                rows = zscore_cohort(rows, cohort_z)
            test_stats = tuple(a[test_index] for a in cohort_stats(rows, top_n))
        scores = normalize_with_stats(norm, raw, enroll_stats=enroll_stats,
                                      test_stats=test_stats)
    if calibration is not None:
        scores = calibration.transform(scores)
    return (trials, scores, raw) if return_raw else (trials, scores)
