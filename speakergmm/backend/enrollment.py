"""Enrollment for trial lists: MAP models from an enroll map (model id -> utterance ids),
held in memory (:func:`enroll_models`) or kept as their statistics and adapted when they
are scored (:class:`EnrollmentStatistics`), and the impostor cohort of score
normalisation (:class:`Cohort`: one model per cohort speaker, and the cohort's utterances
as tests). What :mod:`speakergmm.backend.trials` scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..data.datadir import spk2utt as _spk2utt
from ..errors import SpeakerGMMError
from ..exec import Executor, get_executor
from ..gmm.adapt import SpeakerModel
from ..gmm.mixture import DiagGMM, check_feature_config
from .models import ModelSet, stack_models

__all__ = ["enroll_models", "enroll_speakers", "Cohort", "cohort_members", "spread",
           "EnrollmentStatistics", "check_enroll_map"]


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
        from ..gmm.adapt import parse_adapt

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
        from ..gmm.stats import GMMStats

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
