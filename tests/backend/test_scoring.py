"""Tests of speakergmm.backend.scoring: full / top-C / linear LLR against naive float64 scipy
implementations, the vectorised ModelSet against per-model scoring, and behaviour on
synthetic speakers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import norm, spearmanr

import speakergmm.backend.scoring as scoring
from speakergmm import FeatureError, ModelError
from speakergmm.backend.scoring import ModelSet, llr, score, score_trials
from speakergmm.gmm.adapt import map_adapt
from speakergmm.gmm.mixture import DiagGMM

K, D = 16, 5
ALL = ("means", "weights", "variances")


def random_gmm(rng, k=K, d=D):
    return conftest.random_gmm(rng, k, d, scale=1.5)


import conftest  # noqa: E402
from conftest import sample  # noqa: E402,F401


def log_joint(X, gmm):
    """log w_k + log N(x_t | k) in float64 with scipy.stats, shape (N, K)."""
    X = np.asarray(X, np.float64)
    lp = norm.logpdf(X[:, None, :], gmm.means[None], np.sqrt(gmm.variances)[None]).sum(axis=2)
    return np.log(gmm.weights)[None] + lp


def naive_llr(ubm, spk, X, method, c=None):
    lu, ls = log_joint(X, ubm), log_joint(X, spk)
    if method == "topc":
        top = np.argsort(-lu, axis=1)[:, :c]
        lu, ls = np.take_along_axis(lu, top, 1), np.take_along_axis(ls, top, 1)
    if method in ("full", "topc"):
        return float(np.mean(logsumexp(ls, axis=1) - logsumexp(lu, axis=1)))
    # linear: statistics from float64 posteriors, then the documented dot product.
    gamma = np.exp(lu - logsumexp(lu, axis=1, keepdims=True))
    n, f = gamma.sum(0), gamma.T @ np.asarray(X, np.float64)
    total = 0.0
    for k in range(ubm.n_components):
        total += (spk.means[k] - ubm.means[k]) / ubm.variances[k] @ (f[k] - n[k] * ubm.means[k])
    return total / len(X)


@pytest.fixture
def world(rng):
    ubm = random_gmm(rng)
    adapt = [("means",), ("means",), ALL, ("weights", "variances")]
    models = [map_adapt(ubm, ubm.accumulate(sample(rng, ubm, 300, shift=0.4 * i)),
                        relevance=8.0, adapt=a) for i, a in enumerate(adapt)]
    return ubm, models, sample(rng, ubm, 200, shift=0.4)


@pytest.mark.parametrize("method,c", [("full", None), ("topc", 3), ("topc", 1), ("linear", None)])
def test_llr_matches_a_naive_float64_implementation(world, method, c):
    ubm, models, X = world
    for spk in models[:3]:  # linear is means-only by definition
        assert llr(ubm, spk, X, method=method, c=c or 5) == pytest.approx(
            naive_llr(ubm, spk, X, method, c), abs=2e-5)


def test_topc_with_all_components_equals_full(world):
    ubm, models, X = world
    for spk in models:
        full = llr(ubm, spk, X, method="full")
        assert llr(ubm, spk, X, method="topc", c=K) == pytest.approx(full, abs=1e-5)
        assert abs(llr(ubm, spk, X, method="topc", c=2) - full) > 1e-5  # C < K differs


def test_a_ubm_component_of_zero_weight_is_never_counted(rng):
    w = rng.dirichlet(np.ones(K))
    w[3] = 0.0
    ubm = DiagGMM(w / w.sum(), rng.standard_normal((K, D)), rng.uniform(0.5, 1.5, (K, D)))
    X = sample(rng, ubm, 150, shift=0.3)
    for adapt in (("means",), ALL):
        spk = map_adapt(ubm, ubm.accumulate(X), adapt=adapt)
        full = llr(ubm, spk, X, method="full")
        assert np.isfinite(full)
        assert llr(ubm, spk, X, method="topc", c=K) == pytest.approx(full, abs=1e-5)


@pytest.mark.parametrize("kind", ["means-only", "general"])
@pytest.mark.parametrize("method", ["full", "topc", "linear"])
def test_model_set_equals_per_model_llr(world, rng, monkeypatch, kind, method):
    ubm, _, X = world
    adapt = ("means",) if kind == "means-only" else ALL
    models = [map_adapt(ubm, ubm.accumulate(sample(rng, ubm, 200, shift=rng.normal(0, 0.5))),
                        adapt=adapt) for _ in range(7)]
    ms = ModelSet.from_models(ubm, models)
    assert ms.means_only == (kind == "means-only")
    for name in ("weights", "means", "variances"):  # the stored parameters, to float32
        np.testing.assert_allclose(getattr(ms.model(ubm, "6"), name), getattr(models[6], name),
                                   rtol=1e-5, atol=1e-6)
    expected = [llr(ubm, m, X, method=method, c=4) for m in models]
    np.testing.assert_allclose(score(ubm, ms, X, method=method, c=4), expected, atol=2e-5)
    # Top-C with one GEMM per component instead of a gather (used for many models).
    monkeypatch.setattr(scoring, "_GATHER_BYTES", 0)
    np.testing.assert_allclose(score(ubm, ms, X, method=method, c=4), expected, atol=2e-5)
    # Small blocks: several model blocks and frame chunks give the same scores.
    monkeypatch.setattr(scoring, "_BLOCK_BYTES", 4 * 4 * 3 * 7)
    monkeypatch.setattr(scoring, "_TOPC_FRAMES", 7)
    for gather in (0, 1 << 20):
        monkeypatch.setattr(scoring, "_GATHER_BYTES", gather)
        np.testing.assert_allclose(score(ubm, ms, X, method=method, c=4), expected, atol=2e-5)


def test_model_set_from_float32_arrays_is_means_only(world):
    ubm, models, X = world
    means = np.stack([m.means for m in models[:2]]).astype(np.float32)
    w32 = np.tile(ubm.weights, (2, 1)).astype(np.float32)
    v32 = np.tile(ubm.variances, (2, 1, 1)).astype(np.float32)
    ms = ModelSet.from_arrays(ubm, means, weights=w32, variances=v32, ids=["a", "b"])
    assert ms.means_only and ms.ids == ("a", "b")
    assert ms.nbytes == K * 2 * (D + 1) * 4
    general = ModelSet(ubm, means, variances=v32 * 1.01)
    assert not general.means_only
    np.testing.assert_allclose(score(ubm, ms, X), [llr(ubm, m, X) for m in models[:2]],
                               atol=1e-5)
    assert ms.select(["b"]).ids == ("b",)
    np.testing.assert_allclose(score(ubm, ms.select(["b"]), X), score(ubm, ms, X)[1:], atol=1e-6)


def test_model_set_from_statistics_equals_map_then_stack(rng, monkeypatch):
    """Models kept as their statistics score as MAP-adapting in float64 and stacking does
    (to float32 rounding), unseen components included, by every path and method."""
    import speakergmm.backend.scoring as scoring
    from speakergmm.gmm.adapt import map_offset_bias, map_parameters

    ubm = random_gmm(rng)
    stats = [ubm.accumulate(sample(rng, ubm, 150, shift=0.3 * i)) for i in range(70)]
    n = np.stack([s.n for s in stats]).astype(np.float32)
    n[0, :4] = 0  # components a speaker never saw keep the UBM's means
    f = np.stack([s.f for s in stats]).astype(np.float32)
    f[0, :4] = 0
    X = sample(rng, ubm, 200, shift=0.3)
    fast = ModelSet.from_statistics(ubm, n, f, relevance=8.0)
    slow = ModelSet(ubm, map_parameters(ubm, n, f, relevance=8.0)[1])
    want = score(ubm, slow, X)
    np.testing.assert_allclose(score(ubm, fast, X), want, rtol=0, atol=2e-5)
    assert fast.means_only and len(fast) == 70  # more than one build block
    # Many models: top-C multiplies the test's pairs with the statistics themselves
    # (no whitened tensor), and a kept bias is the one made from the statistics.
    monkeypatch.setattr(scoring, "_GATHER_BYTES", 0)
    fresh = ModelSet.from_statistics(ubm, n, f, relevance=8.0)
    np.testing.assert_allclose(score(ubm, fresh, X), want, rtol=0, atol=2e-5)
    assert fresh._stats is not None and fresh._kernel_array is None
    bias = map_offset_bias(ubm, n, f, relevance=8.0)
    kept = ModelSet.from_statistics(ubm, n, f, relevance=8.0, bias=bias)
    np.testing.assert_array_equal(score(ubm, kept, X), score(ubm, fresh, X))
    np.testing.assert_allclose(score(ubm, kept.select(["3", "1"]), X), want[[3, 1]],
                               rtol=0, atol=2e-5)
    for method in ("full", "linear"):  # the other methods make the tensor when needed
        np.testing.assert_allclose(score(ubm, fresh, X, method=method),
                                   score(ubm, slow, X, method=method), rtol=0, atol=2e-5)
    bad = f.copy()
    bad[2, 1, 0] = np.nan
    with pytest.raises(ModelError, match="model 2 has non-finite"):
        score(ubm, ModelSet.from_statistics(ubm, n, bad, relevance=8.0), X)
    with pytest.raises(ModelError, match="do not fit"):
        ModelSet.from_statistics(ubm, n[:, :3], f, relevance=8.0)


def synthetic_speakers(rng, n_spk=20):
    """A UBM and speakers whose true GMMs are the UBM with shifted means."""
    ubm = random_gmm(rng, k=32, d=8)
    enrolled, tests = {}, {}
    for s in range(n_spk):
        true = DiagGMM(ubm.weights, ubm.means + 0.5 * rng.standard_normal((32, 8)),
                       ubm.variances)
        enrolled[f"spk{s}"] = map_adapt(ubm, ubm.accumulate(sample(rng, true, 600)))
        tests[f"utt{s}"] = sample(rng, true, 200)
    return ubm, enrolled, tests


def test_targets_outscore_nontargets_and_linear_ranks_like_full(rng):
    ubm, enrolled, tests = synthetic_speakers(rng)
    ms = ModelSet.from_models(ubm, enrolled)
    S = {m: np.stack([score(ubm, ms, tests[u], method=m) for u in tests])
         for m in scoring.METHODS}  # (test, model)
    target = np.eye(len(tests), dtype=bool)
    for m, s in S.items():
        assert np.mean(s.argmax(axis=1) == np.arange(len(tests))) >= 0.9, m
        assert s[target].min() > np.median(s[~target]), m
    assert spearmanr(S["linear"].ravel(), S["full"].ravel())[0] > 0.9
    assert spearmanr(S["topc"].ravel(), S["full"].ravel())[0] > 0.99


def test_score_trials_scores_each_test_once(rng):
    ubm, enrolled, tests = synthetic_speakers(rng, n_spk=6)

    class Counting(dict):
        reads = 0

        def __getitem__(self, key):
            Counting.reads += 1
            return super().__getitem__(key)

    feats = Counting(tests)
    enroll = ["spk0", "spk1", "spk0", "spk5", "spk2", "spk3", "spk4", "spk5", "spk1"]
    test = ["utt0", "utt0", "utt1", "utt1", "utt2", "utt2", "utt2", "utt2", "utt2"]
    expected = [llr(ubm, enrolled[e], tests[t]) for e, t in zip(enroll, test)]
    got = score_trials(ubm, enrolled, feats, enroll, test)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert Counting.reads == 3
    ms = ModelSet.from_models(ubm, enrolled)
    np.testing.assert_allclose(score_trials(ubm, ms, tests, enroll, test, method="linear"),
                               [llr(ubm, enrolled[e], tests[t], method="linear")
                                for e, t in zip(enroll, test)], atol=1e-6)
    with pytest.raises(ModelError, match="'nobody'"):
        score_trials(ubm, enrolled, tests, ["nobody"], ["utt0"])
    with pytest.raises(ModelError, match="'nobody'"):
        score_trials(ubm, ms, tests, ["nobody"], ["utt0"])
    with pytest.raises(FeatureError, match="'utt99'"):
        score_trials(ubm, enrolled, tests, ["spk0"], ["utt99"])


def test_mismatches_and_bad_input_are_rejected(world, rng):
    ubm, models, X = world
    ms = ModelSet.from_models(ubm, models[:2])
    wrong = np.zeros((10, D + 1), np.float32)
    for method in scoring.METHODS:
        with pytest.raises(ModelError, match="6 dimensions but the UBM expects 5"):
            llr(ubm, models[0], wrong, method=method)
        with pytest.raises(ModelError, match="dimensions"):
            score(ubm, ms, wrong, method=method)
        with pytest.raises(FeatureError, match="no frames"):
            score(ubm, ms, np.zeros((0, D), np.float32), method=method)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(FeatureError, match="not finite"):
        score(ubm, ms, bad)
    other = random_gmm(rng)
    with pytest.raises(ModelError, match="adapted from UBM"):
        score(other, ms, X)
    with pytest.raises(ModelError, match="adapted from UBM"):
        ModelSet.from_models(other, models[:1])
    with pytest.raises(ModelError, match=r"means have shape \(2, 16, 6\)"):
        ModelSet(ubm, np.zeros((2, K, D + 1)))
    with pytest.raises(ModelError, match=r"weights have shape \(16,\)"):
        ModelSet(ubm, np.zeros((2, K, D)), weights=ubm.weights)
    with pytest.raises(ModelError, match="unique id"):
        ModelSet(ubm, np.zeros((2, K, D)), ids=["a", "a"])
    with pytest.raises(ValueError, match="unknown scoring method"):
        score(ubm, ms, X, method="fast")
    with pytest.raises(ValueError, match="must lie in 1..16"):
        score(ubm, ms, X, c=K + 1)
