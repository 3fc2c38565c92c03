import numpy as np
import pytest
from scipy.stats import norm

from speakergmm.metrics import (DCF_PRESETS, det_curve, eer_interpolated, min_dcf, rocch,
                                rocch_eer)


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
