"""Score normalisation: hand-computed examples, identities between methods, errors."""

from __future__ import annotations

import numpy as np
import pytest

from speakergmm.backend.scorenorm import (
    NORM_METHODS,
    cohort_stats,
    normalize_scores,
    snorm,
    tnorm,
    znorm,
    ztnorm,
)

SCORES = np.array([1.0, 2.0])
# Row means 1 and 2; population stds 1 and 1.
COHORT_A = np.array([[0.0, 2.0], [1.0, 3.0]])
# Row means 2 and 0; population stds 2 and 1.
COHORT_B = np.array([[0.0, 4.0], [-1.0, 1.0]])


def test_cohort_stats_hand_example():
    mean, std = cohort_stats([[0.0, 2.0, 4.0], [1.0, 1.0, 4.0]])
    np.testing.assert_allclose(mean, [2.0, 2.0])
    np.testing.assert_allclose(std, [np.sqrt(8 / 3), np.sqrt(2.0)])  # ddof=0


def test_cohort_stats_top_n_uses_highest_scores():
    mean, std = cohort_stats([[5.0, -3.0, 1.0, 3.0], [0.0, 10.0, 2.0, -7.0]], top_n=2)
    np.testing.assert_allclose(mean, [4.0, 6.0])   # {5, 3} and {10, 2}
    np.testing.assert_allclose(std, [1.0, 4.0])


def test_znorm_hand_example():
    np.testing.assert_allclose(znorm(SCORES, COHORT_A), [0.0, 0.0])
    # (1 - 2)/2, (2 - 0)/1
    np.testing.assert_allclose(znorm(SCORES, COHORT_B), [-0.5, 2.0])


def test_tnorm_hand_example():
    # Same formula, other side: test utterance against cohort models.
    np.testing.assert_allclose(tnorm(SCORES, COHORT_B), [-0.5, 2.0])
    np.testing.assert_allclose(tnorm([3.0, 0.0], COHORT_A), [2.0, -2.0])


def test_snorm_is_mean_of_z_and_t(rng):
    scores = rng.normal(size=20)
    enroll, test = rng.normal(1, 2, (20, 30)), rng.normal(-1, 0.5, (20, 40))
    expected = 0.5 * (znorm(scores, enroll) + tnorm(scores, test))
    np.testing.assert_allclose(snorm(scores, enroll, test), expected, rtol=1e-12)
    # Hand example: z = [0, 0] from COHORT_A, t = [-0.5, 2] from COHORT_B.
    np.testing.assert_allclose(snorm(SCORES, COHORT_A, COHORT_B), [-0.25, 1.0])


def test_asnorm_full_cohort_equals_snorm(rng):
    scores = rng.normal(size=10)
    enroll, test = rng.normal(size=(10, 25)), rng.normal(size=(10, 25))
    np.testing.assert_allclose(snorm(scores, enroll, test, top_n=25),
                               snorm(scores, enroll, test), rtol=1e-12)


def test_asnorm_small_top_n_hand_example():
    scores = [4.0]
    enroll = [[5.0, -3.0, 1.0, 3.0]]      # top 2: {5, 3} -> mean 4, std 1
    test = [[0.0, 10.0, 2.0, -7.0]]       # top 2: {10, 2} -> mean 6, std 4
    # ½[(4 - 4)/1 + (4 - 6)/4] = -0.25
    np.testing.assert_allclose(snorm(scores, enroll, test, top_n=2), [-0.25])
    # The low scores really are ignored: changing them changes nothing.
    np.testing.assert_allclose(snorm(scores, [[5.0, -99.0, -50.0, 3.0]],
                                     [[-1e3, 10.0, 2.0, -7.0]], top_n=2), [-0.25])
    assert not np.allclose(snorm(scores, enroll, test), [-0.25])


def test_ztnorm_hand_example():
    scores = [3.0]
    enroll = [[1.0, 3.0]]                  # mu_e = 2, sigma_e = 1 -> z = 1
    cohort_cohort = [[0.0, 2.0],           # cohort model 0: mu 1, sigma 1
                     [2.0, 6.0]]           # cohort model 1: mu 4, sigma 2
    test = [[3.0, 4.0]]                    # z-normed: (3-1)/1 = 2, (4-4)/2 = 0 -> mean 1, std 1
    # T-norm of z = 1 with {2, 0}: (1 - 1)/1 = 0
    np.testing.assert_allclose(ztnorm(scores, enroll, test, cohort_cohort), [0.0])
    # Raw test cohort {3, 4} would give (1 - 3.5)/0.5 = -5: the cohort Z-norm matters.
    np.testing.assert_allclose(tnorm(znorm(scores, enroll), test), [-5.0])
    np.testing.assert_allclose(ztnorm([5.0], enroll, test, cohort_cohort), [2.0])


def test_ztnorm_equals_znorm_then_tnorm_when_cohort_models_are_standard(rng):
    # Cohort models already standard on the cohort utterances: their Z-norm is identity.
    cc = rng.normal(size=(6, 9))
    cc = (cc - cc.mean(axis=1, keepdims=True)) / cc.std(axis=1, keepdims=True)
    scores, enroll, test = rng.normal(size=5), rng.normal(size=(5, 9)), rng.normal(size=(5, 6))
    np.testing.assert_allclose(ztnorm(scores, enroll, test, cc),
                               tnorm(znorm(scores, enroll), test), rtol=1e-10)


@pytest.mark.parametrize("func", [znorm, tnorm])
def test_zero_variance_cohort_stays_finite(func):
    out = func([1.0, 2.0], [[3.0, 3.0, 3.0], [0.0, 1.0, 2.0]])
    assert np.all(np.isfinite(out))
    assert out[0] < 0
    out = snorm([2.0], [[2.0, 2.0]], [[1.0, 1.0]], top_n=1)
    assert np.all(np.isfinite(out))
    cc = np.ones((2, 2))
    assert np.all(np.isfinite(ztnorm([1.0], [[1.0, 1.0]], [[1.0, 1.0]], cc)))


def test_shape_errors():
    with pytest.raises(ValueError, match=r"enroll_cohort has shape \(3, 2\).*\(2,\)"):
        znorm(SCORES, np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"test_cohort must have shape \(N, C\), got shape \(2,\)"):
        tnorm(SCORES, [1.0, 2.0])
    with pytest.raises(ValueError, match=r"scores must have shape \(N,\)"):
        znorm([[1.0, 2.0]], COHORT_A)
    with pytest.raises(ValueError, match="empty"):
        znorm(SCORES, np.zeros((2, 0)))
    with pytest.raises(ValueError, match=r"cohort_cohort has shape \(2, 3\), expected .*\(3, 2\)"):
        ztnorm(SCORES, np.zeros((2, 2)), np.zeros((2, 3)), np.zeros((2, 3)))
    # a top_n beyond the cohort size uses the whole cohort: AS-norm becomes S-norm
    np.testing.assert_allclose(snorm(SCORES, COHORT_A, COHORT_B, top_n=3),
                               snorm(SCORES, COHORT_A, COHORT_B))
    with pytest.raises(ValueError, match="top_n=0 must be at least 1"):
        snorm(SCORES, COHORT_A, COHORT_B, top_n=0)
    with pytest.raises(ValueError, match="top_n"):
        cohort_stats(COHORT_A, top_n=0)
    with pytest.raises(ValueError, match="non-finite"):
        znorm([np.nan, 1.0], COHORT_A)


def test_normalize_scores_dispatch():
    for method in NORM_METHODS:
        kwargs = dict(enroll_cohort=COHORT_A, test_cohort=COHORT_B,
                      cohort_cohort=np.array([[0.0, 2.0], [2.0, 6.0]]))
        if method == "asnorm":
            kwargs["top_n"] = 2
        out = normalize_scores(method, SCORES, **kwargs)
        assert out.shape == (2,)
    np.testing.assert_allclose(normalize_scores("znorm", SCORES, enroll_cohort=COHORT_B),
                               [-0.5, 2.0])
    np.testing.assert_allclose(normalize_scores("asnorm", SCORES, enroll_cohort=COHORT_A,
                                                test_cohort=COHORT_B, top_n=2),
                               [-0.25, 1.0])
    out = normalize_scores("none", SCORES)
    np.testing.assert_array_equal(out, SCORES)
    assert out is not SCORES


def test_normalize_scores_errors():
    with pytest.raises(ValueError, match="tnorm needs test_cohort"):
        normalize_scores("tnorm", SCORES, enroll_cohort=COHORT_A)
    with pytest.raises(ValueError, match="ztnorm needs test_cohort and cohort_cohort"):
        normalize_scores("ztnorm", SCORES, enroll_cohort=COHORT_A)
    with pytest.raises(ValueError, match="asnorm needs top_n"):
        normalize_scores("asnorm", SCORES, enroll_cohort=COHORT_A, test_cohort=COHORT_B)
    with pytest.raises(ValueError, match="top_n only applies to asnorm"):
        normalize_scores("snorm", SCORES, enroll_cohort=COHORT_A, test_cohort=COHORT_B, top_n=1)
    with pytest.raises(ValueError, match="unknown score normalisation 'bogus'"):
        normalize_scores("bogus", SCORES)
