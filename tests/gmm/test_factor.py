"""The factor-analysis kernels the eigenchannel and the i-vector extractor share
(speakergmm/gmm/factor.py): packed Gram blocks and the Cholesky posteriors against the
naive dense computation."""

import numpy as np
import pytest

from speakergmm.errors import ModelError
from speakergmm.gmm import factor


def _problem(seed, h=7, K=5, D=3, R=4):
    rng = np.random.default_rng(seed)
    V = rng.standard_normal((K * D, R))
    N = rng.gamma(2.0, 3.0, size=(h, K))
    centred = rng.standard_normal((h, K * D))
    return N, centred, V, K, D


@pytest.mark.parametrize("R", [1, 2, 7])
def test_pack_unpack_round_trip(R):
    rng = np.random.default_rng(R)
    A = rng.standard_normal((3, R, R))
    S = A + A.transpose(0, 2, 1)
    packed = factor.pack(S)
    assert packed.shape == (3, factor.packed_size(R))
    np.testing.assert_array_equal(factor.unpack(packed, R), S)


def test_gram_is_the_packed_blocks():
    _, _, V, K, D = _problem(0)
    R = V.shape[1]
    naive = np.stack([V[k * D:(k + 1) * D].T @ V[k * D:(k + 1) * D] for k in range(K)])
    np.testing.assert_allclose(factor.unpack(factor.gram(V, K, D), R), naive, rtol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_posteriors_equal_the_dense_inverse(seed):
    N, centred, V, K, D = _problem(seed)
    R = V.shape[1]
    x, cov, b, logdet = factor.posteriors(N, centred, V, factor.gram(V, K, D))
    for h in range(len(N)):
        L = np.eye(R) + sum(N[h, k] * V[k * D:(k + 1) * D].T @ V[k * D:(k + 1) * D]
                            for k in range(K))
        np.testing.assert_allclose(factor.unpack(cov[h], R), np.linalg.inv(L), rtol=1e-10,
                                   atol=1e-13)
        np.testing.assert_allclose(b[h], V.T @ centred[h], rtol=1e-12)
        np.testing.assert_allclose(x[h], np.linalg.solve(L, b[h]), rtol=1e-10, atol=1e-13)
        assert logdet[h] == pytest.approx(np.linalg.slogdet(L)[1], rel=1e-12)
    means, none, _, logdet2 = factor.posteriors(N, centred, V, factor.gram(V, K, D),
                                                covariances=False)
    assert none is None
    np.testing.assert_allclose(means, x, rtol=1e-10, atol=1e-13)
    np.testing.assert_array_equal(logdet2, logdet)


def test_posterior_terms_equal_their_definitions():
    N, centred, V, K, D = _problem(4, h=30)
    R = V.shape[1]
    x, a, c, second, objective = factor.posterior_terms(N, centred, V, factor.gram(V, K, D))
    xs, covs, bs, logdets = factor.posteriors(N, centred, V, factor.gram(V, K, D))
    moments = factor.unpack(covs, R) + x[:, :, None] * x[:, None, :]
    np.testing.assert_allclose(factor.unpack(a, R), np.einsum("hk,hrs->krs", N, moments),
                               rtol=1e-10)
    np.testing.assert_allclose(second, moments.sum(axis=0), rtol=1e-10)
    np.testing.assert_allclose(c, centred.T @ x, rtol=1e-10)
    assert objective == pytest.approx(np.sum(0.5 * np.sum(bs * xs, axis=1) - 0.5 * logdets))


def test_non_finite_statistics_are_named():
    N, centred, V, K, D = _problem(5)
    N[2, 1] = np.nan
    with pytest.raises(ModelError, match="not positive definite"):
        factor.posteriors(N, centred, V, factor.gram(V, K, D))
