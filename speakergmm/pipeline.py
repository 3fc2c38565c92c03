"""Batch enrollment and trial-list scoring from feature archives (what ``speakergmm score``
and the recipes call).

Enrollment models come from an enroll map (model id → utterance ids; by default one model
per speaker of the archive's ``utt2spk``). Scores are average per-frame LLRs, optionally
normalised against an impostor cohort (Z/T/ZT/S/AS-norm, :mod:`speakergmm.norm`) and
calibrated (:mod:`speakergmm.calibration`).

Cohort: the cohort *models* are one MAP model per cohort speaker, the cohort *utterances*
are that cohort's utterances; Z-norm scores each enrollment model against the cohort
utterances, T-norm each test utterance against the cohort models, S-norm does both.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .datadir import Trials
from .errors import SpeakerGMMError
from .gmm import DiagGMM
from .map import SpeakerModel
from .norm import normalize_scores
from .scoring import ModelSet, score, score_trials

__all__ = ["enroll_models", "Cohort", "score_trial_list"]


def enroll_models(ubm: DiagGMM, features: Mapping[str, np.ndarray],
                  enroll_map: Mapping[str, Sequence[str]], *, relevance: float = 16.0,
                  adapt=("means",)) -> ModelSet:
    """MAP-adapt one model per entry of ``enroll_map`` and stack them.

    Raises
    ------
    SpeakerGMMError
        Naming the model and utterance when an enrollment utterance has no features.
    """
    means, weights, variances, ids = [], [], [], []
    for model_id, utts in enroll_map.items():
        missing = [u for u in utts if u not in features]
        if missing:
            raise SpeakerGMMError(f"model '{model_id}': no features for enrollment utterance "
                                  f"'{missing[0]}' ({len(missing)} missing); was it extracted?")
        adapted = SpeakerModel.enroll(ubm, (features[u] for u in utts), relevance=relevance,
                                      adapt=adapt).adapted(ubm)
        ids.append(model_id)
        means.append(adapted.means.astype(np.float32))
        weights.append(adapted.weights)
        variances.append(adapted.variances.astype(np.float32))
    if not ids:
        raise SpeakerGMMError("the enroll map is empty: no model to score")
    shared = tuple(adapt) == ("means",)
    return ModelSet(ubm, np.stack(means), ids=ids,
                    weights=None if shared else np.stack(weights),
                    variances=None if shared else np.stack(variances))


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
                     adapt=("means",)) -> "Cohort":
        """One model per cohort speaker; every cohort utterance (or an even subset of at
        most ``max_utterances``) as a cohort test utterance.

        ``relevance``, ``adapt`` and ``enroll_utterances`` should match the models being
        normalised, so that cohort models are built like them: a cohort model enrolled on
        more data than the target models is sharper than they are, which biases the T-norm
        statistics. ``enroll_utterances`` caps each cohort model's enrollment at that many
        of its speaker's utterances, spread evenly over them in sorted order (None: all).
        """
        spk2utt: dict[str, list[str]] = {}
        for utt in sorted(utt2spk):
            if utt in features:
                spk2utt.setdefault(utt2spk[utt], []).append(utt)
        if not spk2utt:
            raise SpeakerGMMError("the cohort has no utterances with features")
        utts = [u for us in spk2utt.values() for u in us]
        if max_utterances and len(utts) > max_utterances:
            utts = _spread(utts, max_utterances)
        if enroll_utterances:
            spk2utt = {s: _spread(us, enroll_utterances) for s, us in spk2utt.items()}
        return cls(enroll_models(ubm, features, spk2utt, relevance=relevance, adapt=adapt),
                   features, utts)


def _spread(items: list, n: int) -> list:
    """At most ``n`` of ``items``, evenly spaced, first and last included."""
    if len(items) <= n:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, n).astype(int)]


def _map(fn, items: list, jobs: int, state) -> list:
    """``[fn(item) for item in items]``, over ``jobs`` forked workers sharing ``state``
    (models and archives are inherited, not pickled)."""
    global _state
    _state = state
    if jobs <= 1 or len(items) < 2:
        return [fn(item) for item in items]
    ctx = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    with ctx.Pool(jobs, initializer=_quiet_worker) as pool:
        return pool.map(fn, items, chunksize=max(1, len(items) // (4 * jobs)))


_state = None


def _quiet_worker():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def _features(feats: Mapping[str, np.ndarray], utt: str) -> np.ndarray:
    try:
        return feats[utt]
    except KeyError:
        raise SpeakerGMMError(f"no features for test utterance '{utt}'; was it extracted?") from None


def _column(utt: str) -> np.ndarray:
    ubm, models, feats, method, c = _state
    return score(ubm, models, _features(feats, utt), method=method, c=c)


def _scores_against(ubm, models: ModelSet, feats, utts: Sequence[str], method: str, c: int,
                    jobs: int) -> np.ndarray:
    """(M, len(utts)) scores of every model against every utterance (cohort matrices)."""
    cols = _map(_column, list(utts), jobs, (ubm, models, feats, method, c))
    return np.stack(cols, axis=1)


def _trial_group(idx: np.ndarray) -> np.ndarray:
    ubm, models, feats, trials, method, c = _state
    return score_trials(ubm, models, feats, trials.enroll[idx], trials.test[idx], method=method,
                        c=c)


def _raw_scores(ubm, trials: Trials, models: ModelSet, feats, method: str, c: int,
                jobs: int) -> np.ndarray:
    """Trial scores; each test utterance against only the models its trials name."""
    tests = np.unique(trials.test, return_inverse=True)[1]
    groups = [np.flatnonzero(tests % max(1, jobs) == g) for g in range(max(1, jobs))]
    groups = [g for g in groups if len(g)]
    out = np.empty(len(trials), np.float64)
    for idx, part in zip(groups, _map(_trial_group, groups, jobs,
                                      (ubm, models, feats, trials, method, c))):
        out[idx] = part
    return out


def score_trial_list(ubm: DiagGMM, trials: Trials, models: ModelSet,
                     test_features: Mapping[str, np.ndarray], *, method: str = "topc",
                     c: int = 5, norm: str = "none", cohort: Cohort | None = None,
                     top_n: int | None = None, jobs: int = 1) -> np.ndarray:
    """Scores of a trial list, normalised if asked.

    Parameters
    ----------
    ubm : DiagGMM
    trials : Trials
        ``enroll`` ids must be models of ``models``; ``test`` ids utterances of
        ``test_features``.
    models : ModelSet
    test_features : mapping utt → (frames, D) array
    method, c : scoring method and top-C
    norm : {"none", "znorm", "tnorm", "ztnorm", "snorm", "asnorm"}
    cohort : Cohort, needed unless ``norm == "none"``
    top_n : int, for AS-norm
    jobs : int, worker processes

    Returns
    -------
    np.ndarray [shape=(len(trials),), float64]
    """
    unknown = sorted(set(trials.enroll) - set(models.ids))
    if unknown:
        raise SpeakerGMMError(f"trial model '{unknown[0]}' is not enrolled ({len(unknown)} "
                              "unknown); check the enroll map")
    raw = _raw_scores(ubm, trials, models, test_features, method, c, jobs)
    if norm == "none":
        return raw
    if cohort is None:
        raise SpeakerGMMError(f"{norm} needs an impostor cohort (--cohort FEATS)")
    tests = list(dict.fromkeys(trials.test))
    col = {u: i for i, u in enumerate(tests)}
    t = np.array([col[u] for u in trials.test])
    r = np.array([models.index(m) for m in trials.enroll])
    kw = {}
    if norm in ("znorm", "ztnorm", "snorm", "asnorm"):
        kw["enroll_cohort"] = _scores_against(ubm, models, cohort.features, cohort.utterances,
                                              method, c, jobs)[r]
    if norm in ("tnorm", "ztnorm", "snorm", "asnorm"):
        kw["test_cohort"] = _scores_against(ubm, cohort.models, test_features, tests, method,
                                            c, jobs).T[t]
    if norm == "ztnorm":
        kw["cohort_cohort"] = _scores_against(ubm, cohort.models, cohort.features,
                                              cohort.utterances, method, c, jobs)
    return normalize_scores(norm, raw, top_n=top_n, **kw)
