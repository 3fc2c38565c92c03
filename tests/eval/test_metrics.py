import numpy as np
import pytest
from scipy.stats import norm

from speakergmm.eval.metrics import (
    DCF_PRESETS,
    det_curve,
    eer_interpolated,
    min_dcf,
    rocch,
    rocch_eer,
)


def test_perfect_and_useless_systems():
    tar, non = np.array([2.0, 3.0, 4.0]), np.array([-1.0, 0.0, 1.0])
    assert rocch_eer(tar, non) == 0.0 and eer_interpolated(tar, non) == 0.0
    assert min_dcf(tar, non, "sre10") == 0.0
    same = np.zeros(10)
    assert rocch_eer(same, same) == pytest.approx(0.5)
    assert min_dcf(same, same, "vox") == pytest.approx(1.0)


def test_gaussian_scores_match_theory(rng):
    tar, non = rng.normal(1, 1, 200_000), rng.normal(-1, 1, 200_000)
    expected = norm.cdf(-1.0)
    assert rocch_eer(tar, non) == pytest.approx(expected, abs=0.003)
    assert eer_interpolated(tar, non) == pytest.approx(expected, abs=0.003)
    # theory for minDCF: minimise Cmiss P Φ((t-1)) + Cfa (1-P) (1-Φ(t+1)) over t
    p = DCF_PRESETS["vox"]
    t = np.linspace(-5, 5, 20001)
    cost = p.c_miss * p.p_target * norm.cdf(t - 1) + p.c_fa * (1 - p.p_target) * norm.sf(t + 1)
    assert min_dcf(tar, non, "vox") == pytest.approx(cost.min() / p.p_target, abs=0.02)


def test_hand_example():
    # targets 0.3 0.7 0.9, non-targets 0.1 0.5 0.8
    tar, non = [0.3, 0.7, 0.9], [0.1, 0.5, 0.8]
    thr, pm, pf = det_curve(tar, non)
    np.testing.assert_allclose(thr[:-1], [0.1, 0.3, 0.5, 0.7, 0.8, 0.9])
    np.testing.assert_allclose(pm, [0, 0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1])
    np.testing.assert_allclose(pf, [1, 2 / 3, 2 / 3, 1 / 3, 1 / 3, 0, 0])
    assert eer_interpolated(tar, non) == pytest.approx(1 / 3)
    pmiss, pfa = rocch(tar, non)
    assert pmiss[0] == 0 and pfa[0] == 1 and pmiss[-1] == 1 and pfa[-1] == 0
    assert rocch_eer(tar, non) <= eer_interpolated(tar, non) + 1e-12


def test_rocch_eer_never_above_interpolated(rng):
    for _ in range(5):
        tar, non = rng.normal(0.5, 1, 300), rng.normal(0, 1.3, 900)
        assert rocch_eer(tar, non) <= eer_interpolated(tar, non) + 1e-9


def test_bad_input():
    with pytest.raises(ValueError, match="need target and non-target"):
        rocch_eer([], [1.0])
    with pytest.raises(ValueError, match="finite"):
        min_dcf([np.nan], [1.0])


def test_linear_eer_against_sklearn_roc_curve(rng):
    from sklearn.metrics import roc_curve

    tar, non = rng.normal(1, 1, 400), rng.normal(0, 1, 1500)
    fpr, tpr, _ = roc_curve(np.r_[np.ones(400), np.zeros(1500)], np.r_[tar, non])
    fnr = 1 - tpr
    i = np.flatnonzero(fnr <= fpr)[0]  # first point past the crossing
    # linear interpolation between the two ROC points around fnr = fpr
    a0, a1 = fpr[i - 1] - fnr[i - 1], fpr[i] - fnr[i]
    w = a0 / (a0 - a1)
    expected = fpr[i - 1] + w * (fpr[i] - fpr[i - 1])
    assert eer_interpolated(tar, non) == pytest.approx(expected, abs=2e-3)


def test_ties_are_not_rewarded():
    # all scores tied: no threshold separates anything
    assert rocch_eer([1.0, 1.0], [1.0, 1.0, 1.0]) == pytest.approx(0.5)
    assert min_dcf([1.0, 1.0], [1.0, 1.0], "vox") == pytest.approx(1.0)


def test_presets_and_act_dcf():
    from speakergmm.eval.metrics import act_dcf

    assert (DCF_PRESETS["sre08"].c_miss, DCF_PRESETS["sre08"].p_target) == (10.0, 0.01)
    assert DCF_PRESETS["sre10"].p_target == 0.001 and DCF_PRESETS["vox05"].p_target == 0.05
    # LLRs all 0: at P=0.01 the Bayes threshold is log(99) > 0, everything is rejected:
    # cost = Cmiss P / (Cmiss P) = 1
    assert act_dcf([0.0, 0.0], [0.0], "vox") == pytest.approx(1.0)
    assert act_dcf([10.0], [-10.0], "vox") == 0.0
    with pytest.raises(KeyError):
        min_dcf([1.0], [0.0], "nist99")


def test_min_cllr(rng):
    from speakergmm.eval.metrics import cllr, min_cllr

    assert min_cllr([2.0, 3.0], [0.0, 1.0]) == 0.0  # separable: PAV gives infinite LLRs
    tar, non = rng.normal(2, 1, 3000), rng.normal(-2, 1, 3000)
    best = min_cllr(tar, non)
    assert 0 < best <= cllr(4 * tar, 4 * non)  # 4s is the true LLR here
    assert min_cllr(7 * tar + 3, 7 * non + 3) == pytest.approx(best)  # invariant to scaling
