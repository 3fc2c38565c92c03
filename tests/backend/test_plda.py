"""Two-covariance PLDA (speakergmm.backend.plda): EM recovers known covariances, the LLR
equals a naive joint-Gaussian computation, fast scoring equals the one-at-a-time LLR."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from speakergmm.backend.plda import PLDA
from speakergmm.errors import ModelError

DIM = 4


def _truth(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((DIM, DIM))
    b = rng.standard_normal((DIM, DIM)) * 0.5
    return rng.standard_normal(DIM), a @ a.T + np.eye(DIM), b @ b.T + 0.2 * np.eye(DIM)


def _draw(rng, mean, between, within, speakers, per):
    y = rng.multivariate_normal(np.zeros(DIM), between, speakers)
    eps = rng.multivariate_normal(np.zeros(DIM), within, speakers * per)
    return mean + np.repeat(y, per, axis=0) + eps, np.repeat(np.arange(speakers), per)


@pytest.fixture(scope="module")
def trained():
    mean, between, within = _truth()
    X, labels = _draw(np.random.default_rng(1), mean, between, within, 3000, 6)
    return PLDA.fit(X, labels, n_iterations=15), (mean, between, within), (X, labels)


def test_em_recovers_the_covariances(trained):
    plda, (mean, between, within), _ = trained
    rel = lambda a, b: np.linalg.norm(a - b) / np.linalg.norm(b)  # noqa: E731
    assert rel(plda.within, within) < 0.05
    assert rel(plda.between, between) < 0.1
    np.testing.assert_allclose(plda.mean, mean, atol=0.1)
    # swapped, they would be far off: the check can fail
    assert rel(plda.within, between) > 0.5


def test_em_never_lowers_the_likelihood(trained):
    plda, _, (X, labels) = trained
    record = np.array(plda.training["log_likelihood"])
    assert np.all(np.diff(record) >= -1e-10), record
    assert plda.log_likelihood(X, labels) >= record[-1] - 1e-10


def test_log_likelihood_equals_the_joint_gaussian(trained):
    plda = trained[0]
    rng = np.random.default_rng(2)
    X = rng.standard_normal((3, DIM))
    cov = np.kron(np.ones((3, 3)), plda.between) + np.kron(np.eye(3), plda.within)
    want = multivariate_normal(np.tile(plda.mean, 3), cov).logpdf(X.ravel()) / 3
    assert plda.log_likelihood(X, np.zeros(3)) == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("n_enroll", [1, 3])
def test_llr_equals_the_naive_two_gaussian_ratio(trained, n_enroll):
    """log p(e_1..e_n, t | same) - log p(e_1..e_n | same) - log p(t), from the joint
    Gaussians of the stacked vectors."""
    plda = trained[0]
    rng = np.random.default_rng(3 + n_enroll)
    E, t = rng.standard_normal((n_enroll, DIM)) * 2, rng.standard_normal(DIM) * 2
    B, W, m = plda.between, plda.within, plda.mean

    def joint(n):
        return np.kron(np.ones((n, n)), B) + np.kron(np.eye(n), W)

    same = multivariate_normal(np.tile(m, n_enroll + 1), joint(n_enroll + 1)).logpdf(
        np.concatenate([E.ravel(), t]))
    enroll_only = multivariate_normal(np.tile(m, n_enroll), joint(n_enroll)).logpdf(E.ravel())
    alone = multivariate_normal(m, B + W).logpdf(t)
    assert plda.llr(E, t) == pytest.approx(same - enroll_only - alone, rel=1e-9, abs=1e-9)


def test_many_models_at_once_equal_one_at_a_time(trained):
    plda = trained[0]
    rng = np.random.default_rng(7)
    groups = [rng.standard_normal((n, DIM)) for n in (1, 2, 5, 1, 3)]
    tests = rng.standard_normal((4, DIM))
    models = plda.models(np.array([g.mean(axis=0) for g in groups]),
                         [len(g) for g in groups])
    got = models.scores(tests)
    want = np.array([[plda.llr(g, t) for t in tests] for g in groups])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    assert got.shape == (5, 4) and len(models) == 5


def test_refusals():
    rng = np.random.default_rng(0)
    with pytest.raises(ModelError, match="two or more speakers"):
        PLDA.fit(rng.standard_normal((5, DIM)), np.arange(5))
    with pytest.raises(ModelError, match="does not fit"):
        PLDA(np.zeros(DIM), np.eye(DIM + 1), np.eye(DIM))
    plda = PLDA(np.zeros(DIM), np.eye(DIM), np.eye(DIM))
    with pytest.raises(ModelError, match="dimension"):
        plda.models(np.zeros((1, DIM)), 1).scores(np.zeros((1, DIM + 1)))
