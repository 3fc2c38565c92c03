import numpy as np
import pytest
from scipy.special import ndtri

from speakergmm.frontend.cmvn import cmvn, feature_warping, normalize, sliding_cmvn


@pytest.fixture
def x(rng):
    return (rng.standard_normal((500, 4)) * [1, 2, 3, 4] + [5, -1, 0, 10]).astype(np.float32)


def test_cmvn(x):
    out = cmvn(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(0), 1, atol=1e-4)
    np.testing.assert_allclose(cmvn(x, variance=False).std(0), x.std(0), rtol=1e-5)


def test_constant_dimension_stays_finite():
    x = np.ones((50, 3), np.float32)
    assert np.isfinite(cmvn(x)).all() and np.isfinite(sliding_cmvn(x, variance=True)).all()
    assert np.isfinite(feature_warping(x)).all()


def _naive_bounds(t, n, w):
    w = min(w, n)
    s = min(max(t - w // 2, 0), n - w)
    return s, s + w


@pytest.mark.parametrize("n,w", [(500, 300), (120, 300), (301, 301), (50, 7)])
def test_sliding_cmvn_matches_naive(rng, n, w):
    x = rng.standard_normal((n, 3)) * 2 + 1
    out = sliding_cmvn(x, window=w, variance=True)
    for t in range(n):
        s, e = _naive_bounds(t, n, w)
        seg = x[s:e]
        np.testing.assert_allclose(out[t], (x[t] - seg.mean(0)) / seg.std(0), rtol=1e-8)
    mean_only = sliding_cmvn(x, window=w)
    s, e = _naive_bounds(n // 2, n, w)
    np.testing.assert_allclose(mean_only[n // 2], x[n // 2] - x[s:e].mean(0), rtol=1e-10)


@pytest.mark.parametrize("n,w", [(700, 301), (100, 301), (40, 9)])
def test_feature_warping_matches_naive(rng, n, w):
    x = rng.standard_normal((n, 2)).astype(np.float32)
    x[::5, 1] = 0.5  # ties
    out = feature_warping(x, window=w, block=64)
    ww = min(w, n)
    for t in range(0, n, 7):
        s, e = _naive_bounds(t, n, ww)
        for d in range(2):
            seg = x[s:e, d]
            rank = (seg < x[t, d]).sum() + 0.5 * ((seg == x[t, d]).sum() + 1)
            assert out[t, d] == pytest.approx(ndtri((rank - 0.5) / ww), rel=1e-5)


def test_warped_values_are_normal_quantiles(rng):
    x = rng.exponential(size=(301, 1))
    out = feature_warping(x, window=301)
    np.testing.assert_allclose(np.sort(out[:, 0]), ndtri((np.arange(301) + 0.5) / 301), rtol=1e-6)


def test_normalize_dispatch(x):
    np.testing.assert_array_equal(normalize(x, method="cmvn"), cmvn(x))
    assert normalize(x, method="none") is x
    np.testing.assert_array_equal(normalize(x, method="sliding_cmn"), sliding_cmvn(x, window=300))
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalize(x, method="zscore")
