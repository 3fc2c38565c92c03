"""Trial lists scored from paths: what ``speakergmm score`` and the recipes call.

Each function opens its inputs through :mod:`speakergmm.sources` (checked against the
models that use them), enrolls what the enroll map names (by default one model per
speaker of the enrollment archive's ``utt2spk``), and scores through the one trial scorer,
:mod:`speakergmm.backend.trials` (MAP models and frames, or a vector back-end and
i-vectors), whose tail normalises against an impostor cohort (Z/T/ZT/S/AS-norm) and
calibrates.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from .backend.enrollment import (  # noqa: F401  (enroll_*: in __all__, as before the move)
    Cohort,
    EnrollmentStatistics,
    check_enroll_map,
    enroll_models,
    enroll_speakers,
)
from .backend.scorenorm import check_norm
from .backend.scoring import check_method
from .backend.trials import VectorTrialScorer, check_enrolled, score_trial_list, score_trials
from .constants import DEFAULT_C, MODEL_MEMORY
from .data.datadir import spk2utt as _spk2utt
from .data.trials import Trials
from .errors import ArchiveError, SpeakerGMMError
from .exec import Executor, get_executor
from .gmm.mixture import DiagGMM
from .sources import frames_of, open_features, open_vectors

__all__ = ["enroll_models", "enroll_speakers", "Cohort", "score_trial_list",
           "EnrollmentStatistics", "MODEL_MEMORY", "check_enroll_map",
           "score_from_paths", "score_vector_trials"]


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
        check_enrolled(trials, spk2utt)  # a trial model nobody enrolls, named up front
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
                                  calibration=calibration,
                                  cohort=impostors, top_n=top_n, executor=executor,
                                  return_raw=return_raw, model_memory=model_memory,
                                  progress=progress)
    scores, unnormalised = scores if return_raw else (scores, None)
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
        if cohort_utt2spk is None:
            cohort_utt2spk = cohort.utt2spk
        elif not isinstance(cohort_utt2spk, Mapping):
            cohort_utt2spk = read_kaldi_map(cohort_utt2spk, n_values=1)
    if enroll_map is None:
        enroll_map = _spk2utt(enroll.utt2spk)
    elif not isinstance(enroll_map, Mapping):
        enroll_map = read_enroll_map(enroll_map)
    check_enrolled(trials, enroll_map)
    wanted = set(trials.enroll)
    scorer = VectorTrialScorer(backend, enroll, {m: u for m, u in enroll_map.items()
                                                 if m in wanted}, test, kind=kind,
                               cohort=cohort, cohort_utt2spk=cohort_utt2spk,
                               cohort_utterances=cohort_utts)
    scores = score_trials(scorer, trials, norm=norm, top_n=top_n, calibration=calibration,
                          return_raw=return_raw)
    return (trials, *scores) if return_raw else (trials, scores)
