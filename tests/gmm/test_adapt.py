"""Tests of speakergmm.gmm.adapt: relevance-MAP adaptation against the formulas of Reynolds et al.
(2000) written as a naive per-component loop, its limits in r, and incremental enrollment."""

from __future__ import annotations

import numpy as np
import pytest

from speakergmm import FeatureError, ModelError
from speakergmm.gmm.adapt import SpeakerModel, map_adapt, parse_adapt
from speakergmm.gmm.stats import GMMStats

ALL = ("means", "weights", "variances")


from conftest import random_gmm, sample  # noqa: E402


def with_empty(stats, empty):
    """``stats`` with the components ``empty`` holding no data at all."""
    n, f, s = stats.n.copy(), stats.f.copy(), stats.s.copy()
    n[empty], f[empty], s[empty] = 0.0, 0.0, 0.0
    return GMMStats(n, f, s, stats.llk, stats.frames)


def naive_map(ubm, stats, r, floor):
    """Eqs. 11-14 of Reynolds et al. (2000), literally, one component at a time."""
    K = ubm.n_components
    T = stats.n.sum()
    w, mu, var = ubm.weights.copy(), ubm.means.copy(), ubm.variances.copy()
    for k in range(K):
        n_k = stats.n[k]
        alpha = n_k / (n_k + r)
        w[k] = alpha * n_k / T + (1 - alpha) * ubm.weights[k]
        if n_k == 0:
            continue
        ex, ex2 = stats.f[k] / n_k, stats.s[k] / n_k
        mu[k] = alpha * ex + (1 - alpha) * ubm.means[k]
        v = alpha * ex2 + (1 - alpha) * (ubm.variances[k] + ubm.means[k] ** 2) - mu[k] ** 2
        var[k] = np.maximum(v, floor)
    return w / w.sum(), mu, var


@pytest.fixture
def setup(rng):
    ubm = random_gmm(rng)
    stats = ubm.accumulate(sample(rng, ubm, 400, shift=0.7))
    return ubm, with_empty(stats, [2, 7])


def test_small_relevance_gives_ml_means_where_there_are_data(setup):
    ubm, stats = setup
    spk = map_adapt(ubm, stats, relevance=1e-9)
    seen = stats.n > 0
    np.testing.assert_allclose(spk.means[seen], stats.f[seen] / stats.n[seen, None], rtol=1e-7)
    np.testing.assert_array_equal(spk.means[~seen], ubm.means[~seen])


def test_large_relevance_gives_the_ubm(setup):
    ubm, stats = setup
    spk = map_adapt(ubm, stats, relevance=1e12, adapt=ALL)
    for name in ("weights", "means", "variances"):
        np.testing.assert_allclose(getattr(spk, name), getattr(ubm, name), rtol=1e-8, atol=1e-12)
    moved = map_adapt(ubm, stats, relevance=16.0, adapt=ALL)
    assert np.abs(moved.means - ubm.means).max() > 0.1  # the limit above is not trivial


def test_components_without_data_keep_the_ubm_exactly(setup):
    ubm, stats = setup
    spk = map_adapt(ubm, stats, relevance=4.0, adapt=ALL)
    empty = [2, 7]
    np.testing.assert_array_equal(spk.means[empty], ubm.means[empty])
    np.testing.assert_array_equal(spk.variances[empty], ubm.variances[empty])
    # Weights must still sum to 1: the empty ones are the UBM's times the common factor.
    ratio = spk.weights[empty] / ubm.weights[empty]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-12)
    assert spk.weights.sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("r", [0.5, 16.0, 200.0])
def test_all_parameters_match_the_naive_formulas(setup, r):
    ubm, stats = setup
    floor = 0.5 * ubm.variances.min(axis=0)
    w, mu, var = naive_map(ubm, stats, r, floor)
    spk = map_adapt(ubm, stats, relevance=r, adapt="means,weights,variances")
    np.testing.assert_allclose(spk.weights, w, rtol=1e-10)
    np.testing.assert_allclose(spk.means, mu, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(spk.variances, var, rtol=1e-9)
    # Each type on its own changes only that type.
    only_w = map_adapt(ubm, stats, relevance=r, adapt=["weights"])
    np.testing.assert_allclose(only_w.weights, w, rtol=1e-10)
    np.testing.assert_array_equal(only_w.means, ubm.means)
    np.testing.assert_array_equal(only_w.variances, ubm.variances)


def test_variances_without_means_are_taken_about_the_ubm_mean(setup):
    ubm, stats = setup
    r = 8.0
    spk = map_adapt(ubm, stats, relevance=r, adapt=("variances",))
    np.testing.assert_array_equal(spk.means, ubm.means)
    for k in np.flatnonzero(stats.n > 0):
        n_k = stats.n[k]
        alpha = n_k / (n_k + r)
        mu = ubm.means[k]
        spread = (stats.s[k] - 2 * mu * stats.f[k] + n_k * mu * mu) / n_k  # E[(x - μ)²]
        np.testing.assert_allclose(spk.variances[k],
                                   alpha * spread + (1 - alpha) * ubm.variances[k], rtol=1e-10)


def test_variances_are_floored(rng):
    ubm = random_gmm(rng, k=4, d=3)
    x = np.repeat(ubm.means[:1].astype(np.float32), 500, axis=0)  # constant frames
    stats = with_empty(ubm.accumulate(x), [3])
    spk = map_adapt(ubm, stats, relevance=1.0, adapt=ALL)
    k = int(np.argmax(stats.n))
    np.testing.assert_allclose(spk.variances[k], 0.5 * ubm.variances.min(axis=0), rtol=1e-6)
    # A floor above some UBM variances applies to adapted components only.
    high = float(np.median(ubm.variances))
    floored = map_adapt(ubm, stats, relevance=1.0, adapt=ALL, variance_floor=high)
    seen = stats.n > 0
    assert floored.variances[seen].min() >= high - 1e-15
    np.testing.assert_array_equal(floored.variances[~seen], ubm.variances[~seen])
    assert ubm.variances[~seen].min() < high and (~seen).any()
    with pytest.raises(ModelError, match="variance_floor"):
        map_adapt(ubm, stats, adapt=ALL, variance_floor=-1.0)


def test_incremental_enrollment_equals_enrollment_at_once(rng):
    ubm = random_gmm(rng)
    x1, x2, x3 = (sample(rng, ubm, n, 0.5) for n in (300, 200, 50))
    once = SpeakerModel.enroll(ubm, [x1, x2, x3], relevance=10.0, adapt=ALL)
    first = SpeakerModel.enroll(ubm, [x1], relevance=10.0, adapt=ALL)
    step = first.add(ubm.accumulate(x2)).add(ubm.accumulate(x3))
    merged = first.add(SpeakerModel.enroll(ubm, [x2, x3]))
    for m in (step, merged):
        assert (m.utterances, m.frames) == (3, 550)
        a, b = once.adapted(ubm), m.adapted(ubm)
        for name in ("weights", "means", "variances"):
            np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=1e-12)
    assert once.relevance == 10.0 and once.adapt == ALL


def test_speaker_model_round_trips_through_arrays(rng):
    ubm = random_gmm(rng)
    model = SpeakerModel.enroll(ubm, [sample(rng, ubm, 100)], adapt="weights, means")
    back = SpeakerModel.from_arrays(model.to_arrays())
    assert (back.ubm_fingerprint, back.relevance, back.adapt, back.utterances) == (
        model.ubm_fingerprint, 16.0, ("means", "weights"), 1)
    np.testing.assert_array_equal(back.stats.f, model.stats.f)


def test_fingerprint_mismatch_is_rejected(rng):
    ubm, other = random_gmm(rng), random_gmm(rng)
    model = SpeakerModel.enroll(ubm, [sample(rng, ubm, 100)])
    with pytest.raises(ModelError, match=f"adapted from UBM {ubm.fingerprint()}, not "
                                         f"{other.fingerprint()}"):
        model.adapted(other)
    with pytest.raises(ModelError, match="cannot add"):
        model.add(SpeakerModel.enroll(other, [sample(rng, other, 50)]))


def test_invalid_arguments(setup, rng):
    ubm, stats = setup
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ModelError, match="relevance"):
            map_adapt(ubm, stats, relevance=bad)
    with pytest.raises(ModelError, match=r"shape \(K, D\) = \(12, 3\)"):
        map_adapt(ubm, GMMStats.zeros(12, 3))
    assert parse_adapt(["variances", "means"]) == ("means", "variances")
    assert parse_adapt("means,weights") == ("means", "weights")
    with pytest.raises(ModelError, match="cannot adapt"):
        parse_adapt("means,covariances")
    with pytest.raises(ModelError, match="nothing to adapt"):
        parse_adapt("")
    with pytest.raises(FeatureError, match="no enrollment utterances"):
        SpeakerModel.enroll(ubm, [])
    with pytest.raises(FeatureError, match="utterance 1 has no frames"):
        SpeakerModel.enroll(ubm, [sample(rng, ubm, 10), np.zeros((0, 4), np.float32)])
    with pytest.raises(ModelError, match="dimensions"):
        SpeakerModel.enroll(ubm, [np.zeros((10, 5), np.float32)])
