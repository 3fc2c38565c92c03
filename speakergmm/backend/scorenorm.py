"""Score normalisation: Z-, T-, ZT-, S- and adaptive S-norm (AS-norm).

A raw GMM-UBM log-likelihood ratio drifts with the enrolment model (some models score
everything high) and with the test utterance (its length, channel, noise). Normalisation
removes both drifts by comparing a trial score with the scores the same model or the same
test utterance gets against an *impostor cohort*: speakers known not to be the target.

Everything here works on score arrays, so it does not matter how the scores were computed
(full, top-C or linear scoring). For ``N`` trials and a cohort of ``C`` entries:

========================  ============  ==============================================
array                     shape         content
========================  ============  ==============================================
``scores``                (N,)          trial n: model(n) scored on test utterance(n)
``enroll_cohort``         (N, C_u)      model(n) scored on C_u cohort *utterances*
``test_cohort``           (N, C_m)      C_m cohort *models* scored on test utterance(n)
``cohort_cohort``         (C_m, C_u)    cohort model i scored on cohort utterance j
========================  ============  ==============================================

Statistics are the mean and the population standard deviation (``ddof=0``, as Kaldi and
SIDEKIT compute them) of each row, in float64. All of them go through :func:`cohort_stats`.

References
----------
R. Auckenthaler, M. Carey, H. Lloyd-Thomas, "Score normalization for text-independent
speaker verification systems", Digital Signal Processing 10, 2000 (Z-, T- and ZT-norm).
S. Cumani et al., "Comparison of speaker recognition approaches for real applications",
Interspeech 2011; P. Matějka et al., "Analysis of score normalization in multilingual
speaker recognition", Interspeech 2017 (adaptive S-norm, top-N cohort selection).
"""

from __future__ import annotations

import numpy as np

from ..constants import NORM_METHODS
from ..data.scores import as_scores
from ..errors import ParameterError

__all__ = ["check_norm", "cohort_stats", "znorm", "tnorm", "ztnorm", "snorm", "normalize_scores",
           "normalize_with_stats", "finish_scores", "standardise", "zscore_cohort", "NORM_METHODS"]


# A cohort whose scores are all equal (a degenerate model, duplicated cohort entries) has
# σ = 0. Dividing by the floor keeps the result finite (a large score rather than ±inf/NaN
# that would poison every later mean, EER sweep and calibration fit). LLRs are O(0.1–10),
# so 1e-6 never touches a real cohort.
_MIN_STD = 1e-6


def _trial_stats(cohort_scores, index, scores: np.ndarray, name: str,
                 top_n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and deviation of the cohort scores of each trial.

    Without ``index`` the cohort matrix has one row per trial. With ``index`` it has one row
    per model (or test utterance) and ``index[n]`` is the row of trial n: the statistics are
    computed once per row, then indexed, instead of once per trial.
    """
    cohort = as_scores(cohort_scores, name, ndim=2)
    if index is None:
        if cohort.shape[0] != scores.shape[0]:
            raise ParameterError(f"{name} has shape {cohort.shape} but scores has shape "
                             f"{scores.shape}: need one row of cohort scores per trial "
                             f"(shape ({scores.shape[0]}, C)), or an index of rows")
        return cohort_stats(cohort, top_n)
    index = np.asarray(index)
    if index.shape != scores.shape or index.dtype.kind not in "iu" or (
            index.size and not 0 <= index.min() <= index.max() < cohort.shape[0]):
        raise ParameterError(f"the index of {name} must hold one row number in "
                         f"[0, {cohort.shape[0]}) per trial, shape {scores.shape}")
    mean, std = cohort_stats(cohort, top_n)
    return mean[index], std[index]


def cohort_stats(cohort_scores, top_n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each row of cohort scores.

    Parameters
    ----------
    cohort_scores : np.ndarray [shape=(N, C)]
        Row n holds the C cohort scores of trial n (or of cohort model n).
    top_n : int, optional
        Use only the ``top_n`` highest scores of each row (adaptive normalisation). The
        highest-scoring impostors are the ones closest to the model or test utterance, so
        they describe the impostor distribution *near the decision threshold* better than
        the whole cohort does. ``None`` uses all C.

    Returns
    -------
    mean, std : np.ndarray [shape=(N,)]
        float64; ``std`` is the population standard deviation, floored at 1e-6 so that a
        constant cohort does not divide by zero.

    Raises
    ------
    ValueError
        Wrong number of dimensions, non-finite scores, an empty cohort, or ``top_n`` < 1.

    Notes
    -----
    A ``top_n`` larger than the cohort uses the whole cohort (AS-norm usually has cohorts of
    different sizes on the enrollment and test sides, and one ``top_n`` for both).
    """
    cohort = as_scores(cohort_scores, "cohort scores", ndim=2)
    n_cohort = cohort.shape[1]
    if n_cohort == 0:
        raise ParameterError(f"cohort scores have shape {cohort.shape}: the cohort is empty; "
                         "score at least one cohort model/utterance")
    if top_n is not None:
        if isinstance(top_n, bool) or not isinstance(top_n, (int, np.integer)):
            raise ParameterError(f"top_n must be an integer, got {top_n!r}")
        if top_n < 1:
            raise ParameterError(f"top_n={top_n} must be at least 1")
        if top_n < n_cohort:
            # Partition, not sort: O(C) per row, and the order inside the top-N is irrelevant.
            cohort = np.partition(cohort, n_cohort - top_n, axis=1)[:, n_cohort - top_n:]
    mean = cohort.mean(axis=1)
    std = np.sqrt(np.mean(np.square(cohort - mean[:, None]), axis=1))
    return mean, np.maximum(std, _MIN_STD)


def _standardise(scores, cohort_scores, name: str, index=None) -> np.ndarray:
    """``(s - μ) / σ`` with μ, σ of each trial's cohort scores (Z- and T-norm alike: they
    differ only in which cohort scores they are given)."""
    s = as_scores(scores, "scores", ndim=1)
    return standardise(s, _trial_stats(cohort_scores, index, s, name))


def standardise(scores: np.ndarray, stats: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``(s - μ) / σ`` for cohort statistics ``stats = (μ, σ)`` of each trial (from
    :func:`cohort_stats`): the one formula every normalisation here applies, whether its
    statistics come from whole cohort matrices or were reduced where the scores were made
    (:func:`speakergmm.batch.score_trial_list` never holds the matrices)."""
    mean, std = stats
    return (scores - mean) / std


def normalize_with_stats(method: str, scores, *, enroll_stats=None,
                         test_stats=None) -> np.ndarray:
    """A normalisation from each trial's cohort statistics instead of cohort matrices.

    Parameters
    ----------
    method : {"none", "znorm", "tnorm", "ztnorm", "snorm", "asnorm"}
    scores : np.ndarray [shape=(N,)]
    enroll_stats : (mean, std), each np.ndarray [shape=(N,)]
        :func:`cohort_stats` of the trial's model over the cohort utterances (top-N for
        AS-norm). Needed by every method but ``"tnorm"``.
    test_stats : (mean, std), each np.ndarray [shape=(N,)]
        :func:`cohort_stats` of the trial's test utterance over the cohort models (for
        ZT-norm: over the cohort models' Z-normalised scores, see :func:`ztnorm`).

    Returns
    -------
    np.ndarray [shape=(N,)] float64
    """
    check_norm(method, 1 if method == "asnorm" else None)  # top-N is in the statistics
    s = as_scores(scores, "scores", ndim=1)
    if method == "none":
        return s.copy()
    if method == "znorm":
        return standardise(s, enroll_stats)
    if method == "tnorm":
        return standardise(s, test_stats)
    if method == "ztnorm":
        return standardise(standardise(s, enroll_stats), test_stats)
    return 0.5 * (standardise(s, enroll_stats) + standardise(s, test_stats))


def finish_scores(raw, *, norm: str = "none", enroll_stats=None, test_stats=None,
                  calibration=None) -> np.ndarray:
    """The tail every scorer ends with: raw scores normalised (:func:`normalize_with_stats`)
    and then calibrated (anything with ``transform``, e.g. a
    :class:`~speakergmm.backend.calibration.Calibration`; None: left as they are).

    Returns
    -------
    np.ndarray [shape=(N,)] float64
    """
    scores = normalize_with_stats(norm, raw, enroll_stats=enroll_stats, test_stats=test_stats)
    return scores if calibration is None else np.asarray(calibration.transform(scores),
                                                         np.float64)


def znorm(scores, enroll_cohort, *, enroll_index=None) -> np.ndarray:
    """Zero normalisation: standardise by the enrolment model's impostor scores.

    ``(s - μ_e) / σ_e``, with μ_e, σ_e the statistics of the model scored on cohort
    utterances. The cohort scores do not depend on the test utterance, so in practice
    they are computed once per model, offline.

    Parameters
    ----------
    scores : np.ndarray [shape=(N,)]
    enroll_cohort : np.ndarray [shape=(N, C)]
        Row n: the model of trial n scored on C impostor cohort utterances; with
        ``enroll_index``, one row per model.
    enroll_index : np.ndarray [shape=(N,), int], optional
        Row of ``enroll_cohort`` of each trial.

    Returns
    -------
    np.ndarray [shape=(N,)] float64
    """
    return _standardise(scores, enroll_cohort, "enroll_cohort", enroll_index)


def tnorm(scores, test_cohort, *, test_index=None) -> np.ndarray:
    """Test normalisation: standardise by the test utterance's scores on cohort models.

    ``(s - μ_t) / σ_t``, with μ_t, σ_t the statistics of the test utterance scored against
    cohort models. It removes the shift and spread a test condition (length, channel)
    gives every model at once.

    Parameters
    ----------
    scores : np.ndarray [shape=(N,)]
    test_cohort : np.ndarray [shape=(N, C)]
        Row n: C impostor cohort models scored on the test utterance of trial n; with
        ``test_index``, one row per test utterance.
    test_index : np.ndarray [shape=(N,), int], optional
        Row of ``test_cohort`` of each trial.

    Returns
    -------
    np.ndarray [shape=(N,)] float64
    """
    return _standardise(scores, test_cohort, "test_cohort", test_index)


def ztnorm(scores, enroll_cohort, test_cohort, cohort_cohort, *, enroll_index=None,
           test_index=None) -> np.ndarray:
    """ZT-norm: Z-norm, then T-norm against Z-normalised cohort scores.

    The standard definition (Auckenthaler et al. 2000; SIDEKIT ``ztnorm``, Kaldi/BOSARIS
    recipes): every score that enters the T-norm must have been Z-normalised first, the
    cohort model scores included, otherwise the T-norm compares Z-normalised trial scores
    with raw cohort scores on a different scale. So, for trial n and cohort model i:

    1. ``z_n = (s_n - μ_e[n]) / σ_e[n]``: Z-norm of the trial with its model's statistics
       over the cohort utterances (``enroll_cohort``);
    2. ``z'_{n,i} = (test_cohort[n, i] - μ_c[i]) / σ_c[i]``: Z-norm of cohort model i's
       score on the test utterance, with cohort model i's own statistics over the *same*
       cohort utterances (row i of ``cohort_cohort``);
    3. result ``(z_n - mean_i z'_{n,i}) / std_i z'_{n,i}``: T-norm of ``z_n`` with the
       Z-normalised test cohort.

    Parameters
    ----------
    scores : np.ndarray [shape=(N,)]
    enroll_cohort : np.ndarray [shape=(N, C_u)]
        Row n: the model of trial n scored on C_u cohort utterances.
    test_cohort : np.ndarray [shape=(N, C_m)]
        Row n: C_m cohort models scored on the test utterance of trial n.
    cohort_cohort : np.ndarray [shape=(C_m, C_u)]
        Entry (i, j): cohort model i scored on cohort utterance j (the utterances of
        ``enroll_cohort``, in the same order; the models of ``test_cohort``, in order).
    enroll_index, test_index : np.ndarray [shape=(N,), int], optional
        Rows of ``enroll_cohort`` (one per model) and ``test_cohort`` (one per test
        utterance) of each trial; without them the matrices have one row per trial.

    Returns
    -------
    np.ndarray [shape=(N,)] float64
    """
    s = as_scores(scores, "scores", ndim=1)
    enroll = as_scores(enroll_cohort, "enroll_cohort", ndim=2)
    test = as_scores(test_cohort, "test_cohort", ndim=2)
    cc = as_scores(cohort_cohort, "cohort_cohort", ndim=2)
    if cc.shape != (test.shape[1], enroll.shape[1]):
        # The transposed matrix is the likely mistake; the message gives both dimensions.
        raise ParameterError(
            f"cohort_cohort has shape {cc.shape}, expected (C_m, C_u) = "
            f"({test.shape[1]}, {enroll.shape[1]}): one row per cohort model of test_cohort "
            f"{test.shape}, one column per cohort utterance of enroll_cohort {enroll.shape}")
    z_test = zscore_cohort(test, cohort_stats(cc))
    return normalize_with_stats("ztnorm", s, enroll_stats=_trial_stats(
        enroll, enroll_index, s, "enroll_cohort"), test_stats=_trial_stats(
        z_test, test_index, s, "test_cohort"))


def zscore_cohort(test_cohort: np.ndarray, cohort_model_stats) -> np.ndarray:
    """Cohort model scores on test utterances (rows), each column Z-normalised with that
    cohort model's own statistics ``(μ_c, σ_c)`` over the cohort utterances: what ZT-norm
    takes the T-side statistics of."""
    mean_c, std_c = cohort_model_stats
    return (test_cohort - mean_c[None, :]) / std_c[None, :]


def snorm(scores, enroll_cohort, test_cohort, *, top_n: int | None = None,
          enroll_index=None, test_index=None) -> np.ndarray:
    """Symmetric normalisation, adaptive (AS-norm) when ``top_n`` is given.

    ``½ [(s - μ_e)/σ_e + (s - μ_t)/σ_t]``: the mean of the Z-norm and the T-norm of the
    same score, so enrolment and test sides are treated alike (swapping them gives the
    same result). With ``top_n``, each side's statistics come from its ``top_n`` highest
    cohort scores only (Cumani et al. 2011; Matějka et al. 2017), which typically helps
    further; top_n of 100-300 is common for cohorts of a few thousand.

    Parameters
    ----------
    scores : np.ndarray [shape=(N,)]
    enroll_cohort : np.ndarray [shape=(N, C_u)]
        Row n: the model of trial n scored on C_u cohort utterances.
    test_cohort : np.ndarray [shape=(N, C_m)]
        Row n: C_m cohort models scored on the test utterance of trial n.
    top_n : int, optional
        Cohort scores used per side; a side with fewer uses all of them; ``None`` uses
        whole cohorts (plain S-norm).
    enroll_index, test_index : np.ndarray [shape=(N,), int], optional
        As in :func:`ztnorm`.

    Returns
    -------
    np.ndarray [shape=(N,)] float64
    """
    s = as_scores(scores, "scores", ndim=1)
    return normalize_with_stats(
        "snorm", s, enroll_stats=_trial_stats(enroll_cohort, enroll_index, s, "enroll_cohort",
                                              top_n),
        test_stats=_trial_stats(test_cohort, test_index, s, "test_cohort", top_n))


# Which cohort arrays each method reads (and so must be given).
_NEEDS = {
    "none": (),
    "znorm": ("enroll_cohort",),
    "tnorm": ("test_cohort",),
    "ztnorm": ("enroll_cohort", "test_cohort", "cohort_cohort"),
    "snorm": ("enroll_cohort", "test_cohort"),
    "asnorm": ("enroll_cohort", "test_cohort"),
}


def check_norm(method: str, top_n: int | None = None) -> None:
    """ValueError unless ``method`` is one of :data:`NORM_METHODS` and ``top_n`` is given
    exactly when it is used (AS-norm): checked before any scoring, so that a bad
    combination fails at once."""
    if method not in _NEEDS:
        raise ParameterError(f"unknown score normalisation {method!r}; choose one of "
                         f"{', '.join(NORM_METHODS)}")
    if method == "asnorm" and top_n is None:
        raise ParameterError("asnorm needs top_n, the number of highest cohort scores to keep "
                         "(e.g. 200); use snorm for the whole cohort")
    if method != "asnorm" and top_n is not None:
        # Silently ignoring it would let a user believe adaptive selection took place.
        raise ParameterError(f"top_n only applies to asnorm, not to {method}")


def normalize_scores(method: str, scores, *, enroll_cohort=None, test_cohort=None,
                     cohort_cohort=None, top_n: int | None = None, enroll_index=None,
                     test_index=None) -> np.ndarray:
    """Apply the normalisation named ``method`` (one of :data:`NORM_METHODS`).

    Parameters
    ----------
    method : {"none", "znorm", "tnorm", "ztnorm", "snorm", "asnorm"}
    scores : np.ndarray [shape=(N,)]
    enroll_cohort, test_cohort, cohort_cohort : np.ndarray, optional
        As in :func:`ztnorm`; only those the method reads are required.
    enroll_index, test_index : np.ndarray [shape=(N,), int], optional
        Rows of per-model / per-test-utterance cohort matrices for each trial (see
        :func:`ztnorm`): each row's statistics are then computed once.
    top_n : int, optional
        Required by, and only used by, ``"asnorm"``.

    Returns
    -------
    np.ndarray [shape=(N,)] float64 (``"none"`` returns the scores validated, as float64)

    Raises
    ------
    ValueError
        Unknown method, missing cohort scores (the message names them), or ``top_n`` given
        to a method that would ignore it.
    """
    check_norm(method, top_n)
    given = {"enroll_cohort": enroll_cohort, "test_cohort": test_cohort,
             "cohort_cohort": cohort_cohort}
    missing = [name for name in _NEEDS[method] if given[name] is None]
    if missing:
        raise ParameterError(f"{method} needs {' and '.join(missing)} scores "
                         f"(shapes: enroll_cohort (N, C_u), test_cohort (N, C_m), "
                         f"cohort_cohort (C_m, C_u))")
    if method == "none":
        return as_scores(scores, "scores", ndim=1).copy()  # never alias the caller's array
    if method == "znorm":
        return znorm(scores, enroll_cohort, enroll_index=enroll_index)
    if method == "tnorm":
        return tnorm(scores, test_cohort, test_index=test_index)
    if method == "ztnorm":
        return ztnorm(scores, enroll_cohort, test_cohort, cohort_cohort,
                      enroll_index=enroll_index, test_index=test_index)
    return snorm(scores, enroll_cohort, test_cohort, top_n=top_n, enroll_index=enroll_index,
                 test_index=test_index)
