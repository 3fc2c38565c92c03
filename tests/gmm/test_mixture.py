"""Tests of speakergmm.gmm: the fast float32 E-step against naive float64 maths and
scikit-learn, EM properties, and the model file format."""

from __future__ import annotations

import io
import json
import os
import warnings

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import norm

from speakergmm import FeatureError, ModelError
from speakergmm._version import __version__
from speakergmm.gmm.mixture import FORMAT_NAME, FORMAT_VERSION, DiagGMM
from speakergmm.gmm.stats import GMMStats

# -- helpers ----------------------------------------------------------------------------------

def random_gmm(rng, k, d, *, offset=0.0, scale=1.0):
    weights = rng.dirichlet(np.full(k, 2.0))
    means = offset + scale * rng.standard_normal((k, d))
    variances = scale ** 2 * rng.uniform(0.3, 2.0, (k, d))
    return DiagGMM(weights, means, variances)


def sample(rng, gmm, n):
    """Frames drawn from ``gmm`` (float32) and their true components."""
    comp = rng.choice(gmm.n_components, n, p=gmm.weights)
    x = gmm.means[comp] + np.sqrt(gmm.variances[comp]) * rng.standard_normal((n, gmm.dim))
    return x.astype(np.float32), comp


def naive_log_joint(X, gmm):
    """log w_k + Σ_d log N(x_d | μ_kd, σ²_kd) in float64 with scipy.stats, shape (N, K)."""
    X = np.asarray(X, np.float64)
    logpdf = norm.logpdf(X[:, None, :], loc=gmm.means[None], scale=np.sqrt(gmm.variances)[None])
    with np.errstate(divide="ignore"):
        return np.log(gmm.weights)[None] + logpdf.sum(axis=2)


def naive_stats(X, gmm):
    lj = naive_log_joint(X, gmm)
    llk = logsumexp(lj, axis=1)
    gamma = np.exp(lj - llk[:, None])
    X = np.asarray(X, np.float64)
    return gamma.sum(0), gamma.T @ X, gamma.T @ X ** 2, llk.sum()


def run_em(gmm, X, iters, **kw):
    llks = []
    for _ in range(iters):
        stats = gmm.accumulate(X)
        llks.append(stats.llk / stats.frames)
        gmm = gmm.m_step(stats, **kw)
    return gmm, llks


# -- the E-step against naive float64 -----------------------------------------------------------

@pytest.mark.parametrize("offset", [0.0, 5.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_likelihood_matches_naive(offset, dtype):
    rng = np.random.default_rng(1)
    gmm = random_gmm(rng, 12, 7, offset=offset)
    X, _ = sample(rng, gmm, 400)
    X = X.astype(dtype)
    ref = logsumexp(naive_log_joint(X, gmm), axis=1)
    got = gmm.log_likelihood(X, chunk_size=97)
    assert got.shape == (400,) and got.dtype == np.float64
    np.testing.assert_allclose(got, ref, rtol=1e-5)


@pytest.mark.parametrize("offset", [5.0, 100.0])
def test_uncentred_features_keep_float32_accuracy(offset):
    # The kernel shifts by Σ w_k μ_k; without it an offset of 100 costs 7e-3 per frame.
    rng = np.random.default_rng(2)
    gmm = random_gmm(rng, 32, 60, offset=offset)
    X, _ = sample(rng, gmm, 2000)
    ref = logsumexp(naive_log_joint(X, gmm), axis=1)
    got = gmm.log_likelihood(X)
    assert abs(got.mean() - ref.mean()) <= 1e-5 * abs(ref.mean())
    np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_posteriors_sum_to_one_and_match_naive():
    rng = np.random.default_rng(3)
    gmm = random_gmm(rng, 10, 5)
    X, _ = sample(rng, gmm, 300)
    post = gmm.posteriors(X, chunk_size=64)
    assert post.shape == (300, 10) and post.dtype == np.float32
    np.testing.assert_allclose(post.sum(axis=1), 1.0, atol=1e-5)
    lj = naive_log_joint(X, gmm)
    np.testing.assert_allclose(post, np.exp(lj - logsumexp(lj, axis=1, keepdims=True)), atol=1e-5)


def test_top_components_match_argsort_of_naive_log_joint():
    rng = np.random.default_rng(4)
    gmm = random_gmm(rng, 20, 6)
    X, _ = sample(rng, gmm, 500)
    c = 5
    top = gmm.top_components(X, c, chunk_size=128)
    assert top.shape == (500, c) and np.issubdtype(top.dtype, np.integer)
    lj = naive_log_joint(X, gmm)
    ref = np.argsort(-lj, axis=1)[:, :c]
    ordered = np.take_along_axis(lj, ref, axis=1)
    # Best first; a swap is allowed only between near-ties that float32 cannot separate.
    for t in np.flatnonzero((top != ref).any(axis=1)):
        got_scores = lj[t, top[t]]
        np.testing.assert_allclose(got_scores, ordered[t], atol=1e-4)
    assert (top == ref).all(axis=1).mean() > 0.99
    assert np.array_equal(gmm.top_components(X, gmm.n_components)[:, 0], np.argmax(lj, axis=1))


def test_statistics_match_naive_and_do_not_depend_on_chunking():
    rng = np.random.default_rng(5)
    gmm = random_gmm(rng, 8, 4, offset=2.0)
    X, _ = sample(rng, gmm, 1000)
    n, f, s, llk = naive_stats(X, gmm)
    whole = gmm.accumulate(X)
    np.testing.assert_allclose(whole.n, n, rtol=1e-5, atol=1e-6 * len(X))
    np.testing.assert_allclose(whole.f, f, rtol=1e-5, atol=1e-5 * np.abs(f).max())
    np.testing.assert_allclose(whole.s, s, rtol=1e-5, atol=1e-5 * np.abs(s).max())
    assert whole.llk == pytest.approx(llk, rel=1e-6)
    assert whole.frames == 1000
    for size in (1, 7, 333, 1000, 5000):
        other = gmm.accumulate(X, chunk_size=size)
        for a, b in ((other.n, whole.n), (other.f, whole.f), (other.s, whole.s)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * np.abs(b).max())
        assert other.llk == pytest.approx(whole.llk, rel=1e-6)
    fortran = gmm.accumulate(np.asfortranarray(X, dtype=np.float64), chunk_size=100)
    np.testing.assert_allclose(fortran.s, whole.s, rtol=1e-5)
    split = gmm.accumulate(X[:377]) + gmm.accumulate(X[377:])
    np.testing.assert_allclose(split.f, whole.f, rtol=1e-5, atol=1e-6 * np.abs(f).max())
    assert split.frames == whole.frames


def test_gmmstats_arithmetic_and_arrays():
    rng = np.random.default_rng(6)
    gmm = random_gmm(rng, 4, 3)
    parts = [gmm.accumulate(sample(rng, gmm, 50)[0]) for _ in range(3)]
    total = sum(parts)
    assert total.frames == 150 and total.n_components == 4 and total.dim == 3
    np.testing.assert_allclose(total.n, parts[0].n + parts[1].n + parts[2].n)
    assert (GMMStats.zeros(4, 3) + parts[0]).llk == parts[0].llk
    buf = io.BytesIO()
    np.savez(buf, **total.to_arrays())
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as npz:
        back = GMMStats.from_arrays(npz)
    for name in ("n", "f", "s"):
        assert np.array_equal(getattr(back, name), getattr(total, name))
    assert (back.llk, back.frames) == (total.llk, total.frames)
    with pytest.raises(ValueError, match="different models"):
        total + GMMStats.zeros(5, 3)
    with pytest.raises(ValueError):
        total.n[0] = 1.0  # frozen


def test_empty_input():
    gmm = random_gmm(np.random.default_rng(7), 3, 2)
    empty = np.zeros((0, 2), np.float32)
    assert gmm.log_likelihood(empty).shape == (0,)
    assert gmm.accumulate(empty).frames == 0
    assert gmm.top_components(empty, 2).shape == (0, 2)


# -- EM -------------------------------------------------------------------------------------------

def test_em_matches_scikit_learn():
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(8)
    truth = random_gmm(rng, 4, 3, scale=2.0)
    X, _ = sample(rng, truth, 4000)
    w0 = np.full(6, 1 / 6)
    mu0 = X[rng.choice(len(X), 6, replace=False)].astype(np.float64)
    var0 = np.tile(X.var(axis=0, dtype=np.float64), (6, 1))
    iters = 5
    ours, _ = run_em(DiagGMM(w0, mu0, var0), X, iters, variance_floor=1e-12, min_weight=0.0)
    sk = GaussianMixture(6, covariance_type="diag", max_iter=iters, tol=0.0, reg_covar=0.0,
                         weights_init=w0, means_init=mu0, precisions_init=1 / var0,
                         init_params="random_from_data", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.fit(X.astype(np.float64))
    theirs = DiagGMM(sk.weights_, sk.means_, sk.covariances_)
    # Compare the final models by the same measure (sklearn's lower_bound_ is from the
    # E-step of its last iteration, i.e. of the model before the last M-step).
    ll_ours = ours.log_likelihood(X).mean()
    ll_theirs = theirs.log_likelihood(X).mean()
    assert ll_ours == pytest.approx(ll_theirs, rel=1e-5)
    assert ll_theirs == pytest.approx(sk.score(X.astype(np.float64)), rel=1e-5)
    big = sk.weights_ > 0.05
    assert big.sum() >= 3
    np.testing.assert_allclose(ours.weights, sk.weights_, atol=1e-3)
    np.testing.assert_allclose(ours.means[big], sk.means_[big], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(ours.variances[big], sk.covariances_[big], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("seed", [10, 11, 12])
def test_em_log_likelihood_never_decreases(seed):
    rng = np.random.default_rng(seed)
    truth = random_gmm(rng, 5, 4, scale=1.5)
    X, _ = sample(rng, truth, 1500)
    start = DiagGMM(np.full(8, 1 / 8), X[rng.choice(len(X), 8, replace=False)],
                    np.ones((8, 4)))
    _, llks = run_em(start, X, 20)
    # float32 rounding of the E-step is ~1e-7 relative; EM steps are larger until converged.
    for before, after in zip(llks, llks[1:]):
        assert after >= before - 1e-6 * abs(before)
    assert llks[-1] > llks[0]


def test_em_recovers_ground_truth():
    rng = np.random.default_rng(13)
    truth = DiagGMM([0.5, 0.3, 0.2], [[0, 0], [6, 0], [0, 6]],
                    [[1.0, 0.5], [0.3, 2.0], [1.5, 1.0]])
    X, _ = sample(rng, truth, 20000)
    start = DiagGMM(np.full(3, 1 / 3), truth.means + rng.normal(0, 1.0, (3, 2)), np.ones((3, 2)))
    fit, _ = run_em(start, X, 30)
    np.testing.assert_allclose(fit.weights, truth.weights, atol=0.02)
    np.testing.assert_allclose(fit.means, truth.means, atol=0.1)
    np.testing.assert_allclose(fit.variances, truth.variances, rtol=0.1)


def test_degenerate_data_stays_finite_with_variance_floor():
    rng = np.random.default_rng(14)
    X = rng.standard_normal((600, 3)).astype(np.float32)
    X[:, 1] = 3.0  # a constant dimension
    X[:200] = X[0]  # a third of the frames duplicated
    start = DiagGMM(np.full(4, 0.25), X[[0, 300, 400, 500]], np.ones((4, 3)))
    fit, llks = run_em(start, X, 15, variance_floor=1e-3)
    for arr in (fit.weights, fit.means, fit.variances, llks):
        assert np.all(np.isfinite(arr))
    assert fit.variances.min() >= 1e-3
    floor = np.array([1e-2, 1e-4, 1e-2])  # per-dimension floors
    fit2 = start.m_step(start.accumulate(X), variance_floor=floor)
    assert np.all(fit2.variances >= floor)


def test_components_without_posterior_mass_keep_their_parameters():
    rng = np.random.default_rng(15)
    X = rng.standard_normal((500, 2)).astype(np.float32)
    far = [1e3, 1e3]
    gmm = DiagGMM([0.5, 0.3, 0.2], [[0, 0], [0.5, 0.5], far], np.ones((3, 2)))
    stats = gmm.accumulate(X)
    assert stats.n[2] == 0.0
    assert list(stats.starved(1e-5)) == [2]
    new = gmm.m_step(stats, min_weight=0.0)
    assert new.weights[2] == 0.0
    np.testing.assert_array_equal(new.means[2], far)
    np.testing.assert_array_equal(new.variances[2], [1.0, 1.0])
    # A zero-weight component is harmless: finite likelihood, zero posterior.
    assert np.all(np.isfinite(new.log_likelihood(X)))
    assert np.all(new.posteriors(X)[:, 2] == 0)
    again = new.m_step(new.accumulate(X))
    assert np.all(np.isfinite(again.means)) and np.all(np.isfinite(again.variances))


def test_min_weight_components_keep_old_mean_and_variance():
    rng = np.random.default_rng(16)
    X = rng.standard_normal((1000, 2)).astype(np.float32)
    gmm = DiagGMM([0.6, 0.399, 0.001], [[0, 0], [0.2, 0], [4.0, 4.0]], np.ones((3, 2)))
    stats = gmm.accumulate(X)
    weight = stats.n[2] / stats.n.sum()
    assert 0 < weight < 0.01
    new = gmm.m_step(stats, min_weight=0.01)
    np.testing.assert_array_equal(new.means[2], gmm.means[2])
    assert new.weights[2] == pytest.approx(weight)
    assert not np.allclose(new.means[0], gmm.means[0])


# -- validation -----------------------------------------------------------------------------------

@pytest.mark.parametrize("weights, means, variances, message", [
    ([0.5, 0.5], [[0.0, 0.0]], [[1.0, 1.0]], "weights have shape"),
    ([1.0], [[0.0, 0.0]], [[1.0]], "variances have shape"),
    ([1.0], [0.0, 0.0], [1.0, 1.0], "means must have shape"),
    ([1.0], [[np.nan, 0.0]], [[1.0, 1.0]], "non-finite"),
    ([1.0], [[0.0, 0.0]], [[-1.0, 1.0]], "variances must be > 0"),
    ([1.0], [[0.0, 0.0]], [[0.0, 1.0]], "variances must be > 0"),
    ([0.5, 0.4], [[0.0], [1.0]], [[1.0], [1.0]], "sum to"),
    ([1.5, -0.5], [[0.0], [1.0]], [[1.0], [1.0]], ">= 0"),
])
def test_invalid_parameters_are_rejected(weights, means, variances, message):
    with pytest.raises(ModelError, match=message):
        DiagGMM(weights, means, variances)


def test_invalid_arguments_are_rejected():
    gmm = random_gmm(np.random.default_rng(17), 3, 2)
    X = np.zeros((5, 2), np.float32)
    with pytest.raises(ModelError, match="3 dimensions but the model expects 2"):
        gmm.log_likelihood(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="2-D"):
        gmm.accumulate(np.zeros(5))
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(FeatureError, match="frame 3"):
        gmm.accumulate(bad)
    with pytest.raises(ValueError, match="chunk_size"):
        gmm.accumulate(X, chunk_size=0)
    with pytest.raises(ValueError, match="between 1 and"):
        gmm.top_components(X, 4)
    stats = gmm.accumulate(X)
    with pytest.raises(ValueError, match="variance_floor"):
        gmm.m_step(stats, variance_floor=0.0)
    with pytest.raises(ValueError, match="variance_floor"):
        gmm.m_step(stats, variance_floor=[1e-3, 1e-3, 1e-3])
    with pytest.raises(ValueError, match="no posterior mass"):
        gmm.m_step(GMMStats.zeros(3, 2))
    with pytest.raises(ModelError, match="statistics have shape"):
        gmm.m_step(GMMStats.zeros(4, 2))
    with pytest.raises(ValueError):
        gmm.weights[0] = 1.0  # parameters are read-only


# -- files ----------------------------------------------------------------------------------

def test_save_load_round_trip_is_bit_exact(tmp_path):
    rng = np.random.default_rng(18)
    gmm = random_gmm(rng, 16, 5)
    meta = {"feature_config": {"n_mfcc": 13, "delta_order": 1},
            "training": {"iterations": 3, "llk": [-10.5, -9.25, -9.0], "seed": 7}}
    path = tmp_path / "ubm.npz"
    gmm.save(path, metadata=meta)
    assert sorted(os.listdir(tmp_path)) == ["ubm.npz"]  # no temporary left behind
    back = DiagGMM.load(path)
    for name in ("weights", "means", "variances"):
        a, b = getattr(gmm, name), getattr(back, name)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    assert back.metadata == meta
    assert back.file_header == {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                                "library_version": __version__}
    assert back.fingerprint() == gmm.fingerprint() and len(gmm.fingerprint()) == 16
    X, _ = sample(rng, gmm, 50)
    np.testing.assert_array_equal(back.log_likelihood(X), gmm.log_likelihood(X))
    # Metadata survives load -> save -> load and an M-step.
    back.save(tmp_path / "copy.npz")
    assert DiagGMM.load(tmp_path / "copy.npz").metadata == meta
    assert back.m_step(back.accumulate(X)).metadata == meta
    text = back.describe()
    assert "components (K): 16" in text and "dimension (D):  5" in text
    assert "feature_config" in text and gmm.fingerprint() in text
    with pytest.raises(ValueError, match="JSON"):
        gmm.save(tmp_path / "bad.npz", metadata={"x": object()})
    assert not (tmp_path / "bad.npz").exists()


def test_fingerprint_depends_on_parameters():
    gmm = DiagGMM([0.5, 0.5], [[0.0], [1.0]], [[1.0], [1.0]])
    same = DiagGMM([0.5, 0.5], [[0.0], [1.0]], [[1.0], [1.0]], metadata={"x": 1})
    other = DiagGMM([0.5, 0.5], [[0.0], [1.0 + 1e-12]], [[1.0], [1.0]])
    assert gmm.fingerprint() == same.fingerprint() != other.fingerprint()


def _write_npz(path, *, weights=(1.0,), means=((0.0,),), variances=((1.0,),), header=None,
               **extra):
    header = header if header is not None else {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "metadata": {}}
    arrays = {"weights": weights, "means": means, "variances": variances,
              "metadata": np.array(json.dumps(header))}
    arrays = {k: np.asarray(v) for k, v in arrays.items() if v is not None}
    arrays.update(extra)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _truncated(path):
    DiagGMM([0.5, 0.5], np.zeros((2, 40)), np.ones((2, 40))).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _pickled(path):
    _write_npz(path, weights=np.array([{"evil": 1}], dtype=object))


def _pickled_metadata(path):
    with open(path, "wb") as fh:
        np.savez(fh, weights=[1.0], means=[[0.0]], variances=[[1.0]],
                 metadata=np.array([{"format": FORMAT_NAME}], dtype=object))


CORRUPTIONS = {
    "random bytes": (lambda p: p.write_bytes(np.random.default_rng(0).bytes(500)),
                     "not a valid .npz"),
    "empty file": (lambda p: p.write_bytes(b""), "not a valid .npz"),
    "truncated npz": (_truncated, "not a valid .npz"),
    "pickled weights": (_pickled, "pickled"),
    "pickled metadata": (_pickled_metadata, "pickled"),
    "missing array": (lambda p: _write_npz(p, variances=None), "missing"),
    "wrong shapes": (lambda p: _write_npz(p, variances=[[1.0, 1.0]]), "variances have shape"),
    "negative variance": (lambda p: _write_npz(p, variances=[[-1.0]]), "> 0"),
    "nan mean": (lambda p: _write_npz(p, means=[[np.nan]]), "non-finite"),
    "weights not summing to 1": (
        lambda p: _write_npz(p, weights=[0.5, 0.4], means=[[0.0], [1.0]],
                             variances=[[1.0], [1.0]]), "sum to"),
    "string weights": (lambda p: _write_npz(p, weights=np.array(["1.0"])), "dtype"),
    "wrong format": (lambda p: _write_npz(p, header={"format": "other", "format_version": 1}),
                     "format is 'other'"),
    "future version": (lambda p: _write_npz(
        p, header={"format": FORMAT_NAME, "format_version": 99}), "version 99"),
    "metadata not json": (lambda p: _overwrite_metadata(p, "{not json"), "metadata"),
}


def _overwrite_metadata(path, text):
    with open(path, "wb") as fh:
        np.savez(fh, weights=[1.0], means=[[0.0]], variances=[[1.0]], metadata=np.array(text))


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_bad_model_files_are_rejected_naming_the_file(tmp_path, case):
    make, message = CORRUPTIONS[case]
    path = tmp_path / "model.npz"
    make(path)
    with pytest.raises(ModelError, match=message) as info:
        DiagGMM.load(path)
    assert str(path) in str(info.value)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelError, match="no such model file") as info:
        DiagGMM.load(tmp_path / "nope.npz")
    assert "nope.npz" in str(info.value)
