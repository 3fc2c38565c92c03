"""Detection metrics for verification scores: EER (ROC convex hull and linear interpolation)
and minimum detection cost.

Conventions follow BOSARIS / SIDEKIT: miss = target scored below the threshold, false alarm
= non-target scored at or above it. The primary EER is the ROCCH-EER (the EER of the
convex hull of the ROC, which is what a calibrated system can reach); the EER by linear
interpolation between the two empirical operating points around the crossing (as the MSR
Identity Toolbox) is also given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.scores import as_scores
from ..data.trials import Trials
from ..errors import ParameterError

__all__ = ["DCF_PRESETS", "DCFParams", "det_curve", "eer_interpolated", "rocch", "rocch_eer",
           "min_dcf", "act_dcf", "cllr", "min_cllr", "identification_accuracy", "check_scores"]


@dataclass(frozen=True)
class DCFParams:
    """Costs and prior of a detection cost function."""

    c_miss: float
    c_fa: float
    p_target: float


DCF_PRESETS = {
    "sre08": DCFParams(10.0, 1.0, 0.01),
    "sre10": DCFParams(1.0, 1.0, 0.001),
    "vox": DCFParams(1.0, 1.0, 0.01),
    "vox05": DCFParams(1.0, 1.0, 0.05),
}


def check_scores(tar, non) -> tuple[np.ndarray, np.ndarray]:
    """Both classes present and finite, as float64 vectors; ValueError otherwise."""
    tar = as_scores(tar, "target scores", ndim=None)
    non = as_scores(non, "non-target scores", ndim=None)
    if tar.size == 0 or non.size == 0:
        raise ParameterError(f"need target and non-target scores, got {tar.size} target and "
                         f"{non.size} non-target")
    return tar, non


def det_curve(tar, non) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empirical miss and false-alarm rates at every distinct threshold.

    Returns
    -------
    thresholds : np.ndarray [shape=(n+1,)]
        Sorted; the last is +inf (everything rejected).
    p_miss, p_fa : np.ndarray [shape=(n+1,)]
        Non-decreasing and non-increasing respectively.
    """
    tar, non = check_scores(tar, non)
    scores = np.concatenate([tar, non])
    is_tar = np.concatenate([np.ones(tar.size, bool), np.zeros(non.size, bool)])
    order = np.argsort(scores, kind="mergesort")
    scores, is_tar = scores[order], is_tar[order]
    # rates at threshold t = scores[i]: misses are the targets strictly below it
    first = np.r_[True, scores[1:] != scores[:-1]]
    miss_below = np.r_[0, np.cumsum(is_tar)][:-1][first]
    fa_below = np.r_[0, np.cumsum(~is_tar)][:-1][first]
    thresholds = np.r_[scores[first], np.inf]
    p_miss = np.r_[miss_below, tar.size] / tar.size
    p_fa = 1.0 - np.r_[fa_below, non.size] / non.size
    return thresholds, p_miss, p_fa


def eer_interpolated(tar, non) -> float:
    """EER by linear interpolation between the operating points around P_miss = P_fa."""
    _, p_miss, p_fa = det_curve(tar, non)
    diff = p_miss - p_fa                      # rises from -1 to +1
    i = int(np.searchsorted(diff, 0.0))
    if diff[i] == 0 or i == 0:
        return float(p_miss[i])
    d0, d1 = diff[i - 1], diff[i]
    w = -d0 / (d1 - d0)
    return float((1 - w) * p_miss[i - 1] + w * p_miss[i] + (1 - w) * p_fa[i - 1]
                 + w * p_fa[i]) / 2


def _pav(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pool adjacent violators: a non-decreasing fit of ``y``; block widths and values.

    Runs of equal values never violate each other, so they enter as blocks: the labels of
    sorted trials (0/1) come in long runs, and the loop is over runs, not trials.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.size == 0:
        return np.zeros(0, int), np.zeros(0)
    firsts = np.flatnonzero(np.r_[True, y[1:] != y[:-1]])
    values, widths = [], []
    for v, w in zip(y[firsts].tolist(), np.diff(np.r_[firsts, y.size]).tolist()):
        values.append(v)
        widths.append(w)
        while len(values) > 1 and values[-2] > values[-1]:
            w = widths[-2] + widths[-1]
            values[-2] = (values[-2] * widths[-2] + values[-1] * widths[-1]) / w
            widths[-2] = w
            values.pop()
            widths.pop()
    return np.array(widths), np.array(values)


def rocch(tar, non) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of the ROC convex hull as (P_miss, P_fa), by PAV (as BOSARIS ``rocch``)."""
    tar, non = check_scores(tar, non)
    scores = np.concatenate([tar, non])
    ideal = np.concatenate([np.ones(tar.size), np.zeros(non.size)])
    # stable sort of [targets, non-targets]: tied targets come first, so ties cannot help
    # (pessimistic, as BOSARIS)
    ideal = ideal[np.argsort(scores, kind="mergesort")]
    widths, _ = _pav(ideal)
    bounds = np.r_[0, np.cumsum(widths)]
    tar_below = np.r_[0, np.cumsum(ideal)][bounds]
    p_miss = tar_below / tar.size
    p_fa = (non.size - (bounds - tar_below)) / non.size
    return p_miss, p_fa


def rocch_eer(tar, non) -> float:
    """EER of the ROC convex hull (BOSARIS ``rocch2eer``)."""
    p_miss, p_fa = rocch(tar, non)
    eer = 0.0
    for i in range(len(p_fa) - 1):
        xx, yy = p_fa[i:i + 2], p_miss[i:i + 2]
        dx, dy = xx[0] - xx[1], yy[0] - yy[1]
        if dx == 0 or dy == 0:
            seg = 0.0
        else:
            # the segment's line a·pfa + b·pmiss = 1 meets pfa = pmiss at 1 / (a + b)
            a, b = np.linalg.solve(np.column_stack([xx, yy]), np.ones(2))
            seg = 1.0 / (a + b)
        eer = max(eer, seg)
    return float(eer)


def min_dcf(tar, non, params: DCFParams | str = "vox") -> float:
    """Minimum normalised detection cost over all thresholds.

    Normalised by the default cost ``min(C_miss·P_tar, C_fa·(1 − P_tar))``.
    """
    p = DCF_PRESETS[params] if isinstance(params, str) else params
    _, p_miss, p_fa = det_curve(tar, non)
    cost = p.c_miss * p.p_target * p_miss + p.c_fa * (1 - p.p_target) * p_fa
    return float(cost.min() / min(p.c_miss * p.p_target, p.c_fa * (1 - p.p_target)))


def act_dcf(tar_llrs, non_llrs, params: DCFParams | str = "vox") -> float:
    """Normalised detection cost of calibrated LLRs at the Bayes threshold
    ``log(C_fa (1 - P_tar) / (C_miss P_tar))``."""
    p = DCF_PRESETS[params] if isinstance(params, str) else params
    tar, non = check_scores(tar_llrs, non_llrs)
    threshold = np.log(p.c_fa * (1 - p.p_target) / (p.c_miss * p.p_target))
    cost = (p.c_miss * p.p_target * np.mean(tar < threshold)
            + p.c_fa * (1 - p.p_target) * np.mean(non >= threshold))
    return float(cost / min(p.c_miss * p.p_target, p.c_fa * (1 - p.p_target)))


def min_cllr(tar, non) -> float:
    """Cllr after the best monotone recalibration (PAV), in bits: the discrimination part
    of Cllr, as BOSARIS ``min_cllr``."""
    tar, non = check_scores(tar, non)
    scores = np.concatenate([tar, non])
    ideal = np.concatenate([np.ones(tar.size), np.zeros(non.size)])
    order = np.argsort(scores, kind="mergesort")
    widths, posterior = _pav(ideal[order])
    p = np.repeat(posterior, widths)
    with np.errstate(divide="ignore"):
        llr = np.log(p) - np.log1p(-p) - np.log(tar.size / non.size)
    out = np.empty_like(llr)
    out[order] = llr
    return cllr(out[: tar.size], out[tar.size:])


def cllr(target_llrs, nontarget_llrs) -> float:
    """Log-likelihood-ratio cost Cllr in bits (Brümmer & du Preez 2006).

    ``Cllr = 1/(2 log 2) · [mean_t log(1 + exp(-ℓ_t)) + mean_n log(1 + exp(ℓ_n))]``

    0 for perfect, confident LLRs; 1 for a system that always outputs 0 ("don't know");
    above 1 when the LLRs mislead. It judges calibration and discrimination together.
    ±inf LLRs are allowed (a wrong infinite one makes Cllr infinite).

    Parameters
    ----------
    target_llrs : array-like [shape=(N_t,)]
    nontarget_llrs : array-like [shape=(N_n,)]

    Returns
    -------
    float
    """
    t = as_scores(target_llrs, "target_llrs", ndim=None, allow_inf=True, allow_empty=False)
    n = as_scores(nontarget_llrs, "nontarget_llrs", ndim=None, allow_inf=True,
                  allow_empty=False)
    # logaddexp(0, x) = log(1 + exp(x)), without overflow
    return float((np.logaddexp(0.0, -t).mean() + np.logaddexp(0.0, n).mean())
                 / (2.0 * np.log(2.0)))


def identification_accuracy(values: np.ndarray, trials: Trials) -> float | None:
    """Closed-set identification accuracy implied by a verification key: the share of test
    utterances whose best-scoring model is their target. None unless every test utterance
    has exactly one target trial and at least one non-target trial."""
    order = np.lexsort((-values, trials.test))
    tests, first = np.unique(trials.test[order], return_index=True)
    counts = np.diff(np.r_[first, len(order)])
    targets = np.add.reduceat(trials.is_target[order].astype(int), first)
    if np.any(targets != 1) or np.any(counts < 2):
        return None
    return float(np.mean(trials.is_target[order][first]))
