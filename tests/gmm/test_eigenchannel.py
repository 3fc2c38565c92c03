"""Eigenchannel training and feature-domain compensation (speakergmm.gmm.eigenchannel)."""

import numpy as np
import pytest

from speakergmm.errors import ModelError, SpeakerGMMError
from speakergmm.gmm.eigenchannel import CompensatedFeatures, EigenChannel
from speakergmm.gmm.mixture import DiagGMM

from conftest import random_gmm

K, D, R_TRUE = 6, 4, 2


def _world(seed=0, speakers=24, sessions=6, frames=400):
    """Frames of ``speakers`` × ``sessions`` recordings: each recording's means are the UBM's,
    moved by its speaker's offset and by a channel offset U_true x (x ~ N(0, I))."""
    rng = np.random.default_rng(seed)
    ubm = random_gmm(rng, k=K, d=D, scale=4.0)
    sd = np.sqrt(ubm.variances)
    U_true = rng.standard_normal((K, D, R_TRUE)) * 0.6   # variance-normalised units
    feats, utt2spk, truth = {}, {}, {}
    for s in range(speakers):
        spk_offset = 0.3 * rng.standard_normal((K, D)) * sd
        for h in range(sessions):
            x = rng.standard_normal(R_TRUE)
            means = ubm.means + spk_offset + (U_true @ x) * sd
            comp = rng.choice(K, frames, p=ubm.weights)
            X = means[comp] + sd[comp] * rng.standard_normal((frames, D))
            utt = f"s{s:02d}-{h}"
            feats[utt], utt2spk[utt], truth[utt] = X.astype(np.float32), f"s{s:02d}", x
    return ubm, U_true, feats, utt2spk, truth


@pytest.fixture(scope="module")
def world():
    return _world()


@pytest.fixture(scope="module")
def fitted(world):
    ubm, U_true, feats, utt2spk, truth = world
    return EigenChannel.fit(ubm, feats, utt2spk, n_factors=R_TRUE, n_iterations=10,
                            relevance=16.0)


def _cosines(A, B):
    """Cosines of the principal angles between the column spans of A and B."""
    qa, qb = np.linalg.qr(A)[0], np.linalg.qr(B)[0]
    return np.linalg.svd(qa.T @ qb, compute_uv=False)


def test_recovers_the_channel_subspace(world, fitted):
    U_true = world[1]
    cos = _cosines(U_true.reshape(K * D, -1), fitted.U.reshape(K * D, -1))
    assert cos.min() > 0.95, cos
    # a random subspace of the same rank is far from it: the check can fail
    rand = np.random.default_rng(5).standard_normal((K * D, R_TRUE))
    assert _cosines(U_true.reshape(K * D, -1), rand).min() < 0.6
    record = fitted.metadata["training"]
    assert record["utterances"] == 144 and record["classes"] == 24
    assert len(record["objective"]) == 10


def test_factors_track_the_true_channel(world, fitted):
    ubm, U_true, feats, utt2spk, truth = world
    est = np.array([fitted.factors(*(lambda s: (s.n, s.f))(ubm.accumulate(feats[u])))
                    for u in sorted(feats)])
    true = np.array([truth[u] for u in sorted(feats)])
    # x is identified up to a rotation of the subspace: regress the truth on the estimate
    coef, *_ = np.linalg.lstsq(est, true, rcond=None)
    resid = true - est @ coef
    assert np.sum(resid ** 2) / np.sum((true - true.mean(0)) ** 2) < 0.1


def _session_spread(ubm, feats, utt2spk):
    """Within-speaker over between-speaker scatter of the utterances' mean supervectors."""
    sv = {u: (lambda s: (s.f / np.maximum(s.n, 1e-3)[:, None]).ravel())(ubm.accumulate(x))
          for u, x in feats.items()}
    spk = sorted(set(utt2spk.values()))
    by = {s: np.array([sv[u] for u in sorted(sv) if utt2spk[u] == s]) for s in spk}
    within = np.mean([np.sum((v - v.mean(0)) ** 2) / len(v) for v in by.values()])
    centres = np.array([v.mean(0) for v in by.values()])
    between = np.sum((centres - centres.mean(0)) ** 2) / len(centres)
    return within / between


def test_compensation_removes_session_variability(world, fitted):
    ubm, U_true, feats, utt2spk, truth = world
    before = _session_spread(ubm, feats, utt2spk)
    after = _session_spread(ubm, {u: fitted.compensate(x) for u, x in feats.items()}, utt2spk)
    assert after < 0.5 * before, (before, after)


def test_zero_subspace_is_the_identity(world):
    ubm, _, feats, _, _ = world
    ch = EigenChannel(ubm, np.zeros((K, D, 3)))
    x = feats["s00-0"]
    np.testing.assert_array_equal(ch.compensate(x), x)
    assert ch.compensate(np.zeros((0, D), np.float32)).shape == (0, D)


def test_compensate_is_chunked_consistently(world, fitted, monkeypatch):
    ubm, _, feats, _, _ = world
    x = np.concatenate([feats["s00-0"], feats["s00-1"]])
    whole = fitted.compensate(x)
    import speakergmm.gmm.eigenchannel as mod

    monkeypatch.setattr(mod, "default_chunk_size", lambda k: 7)
    np.testing.assert_allclose(fitted.compensate(x), whole, rtol=1e-5, atol=1e-5)
    # a long utterance's posteriors are recomputed instead of kept: the same result
    monkeypatch.setattr(mod, "_KEEP_POSTERIOR_BYTES", 0)
    np.testing.assert_allclose(fitted.compensate(x), whole, rtol=1e-5, atol=1e-5)
    # the statistics behind the factors are the UBM's own
    stats = ubm.accumulate(x)
    offsets = (fitted._basis @ fitted.factors(stats.n, stats.f)).reshape(K, D)
    np.testing.assert_allclose(whole, x - ubm.posteriors(x) @ offsets, rtol=1e-4, atol=1e-4)


def test_workers_give_the_same_matrix(world, fitted):
    ubm, _, feats, utt2spk, _ = world
    par = EigenChannel.fit(ubm, feats, utt2spk, n_factors=R_TRUE, n_iterations=10,
                           relevance=16.0, executor=2)
    np.testing.assert_array_equal(par.U, fitted.U)


def test_compensated_features_mapping(world, fitted):
    ubm, _, feats, _, _ = world

    class Archive(dict):
        utt2spk = {"a": "b"}

    wrapped = CompensatedFeatures(Archive(feats), fitted)
    assert len(wrapped) == len(feats) and "s00-0" in wrapped and "nope" not in wrapped
    assert list(wrapped) == list(feats)
    np.testing.assert_array_equal(wrapped["s01-2"], fitted.compensate(feats["s01-2"]))
    assert wrapped.utt2spk == {"a": "b"}


def test_save_load_round_trip(world, fitted, tmp_path):
    ubm = world[0]
    path = tmp_path / "channel.npz"
    fitted.save(path)
    back = EigenChannel.load(path, ubm)
    np.testing.assert_allclose(back.U, fitted.U, rtol=1e-6, atol=1e-7)  # stored as float32
    assert back.metadata == fitted.metadata
    other = DiagGMM(ubm.weights, ubm.means + 1.0, ubm.variances)
    with pytest.raises(ModelError, match="trained with UBM .* train it again"):
        EigenChannel.load(path, other)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="junk.npz: not a valid .npz eigenchannel file"):
        EigenChannel.load(tmp_path / "junk.npz", ubm)
    ubm.save(tmp_path / "ubm.npz")
    with pytest.raises(ModelError, match="format is 'speakergmm.diaggmm'"):
        EigenChannel.load(tmp_path / "ubm.npz", ubm)
    with pytest.raises(ModelError, match="no such eigenchannel file"):
        EigenChannel.load(tmp_path / "missing.npz", ubm)


def test_bad_input_is_refused(world):
    ubm, _, feats, utt2spk, _ = world
    with pytest.raises(ModelError, match="does not fit a UBM"):
        EigenChannel(ubm, np.zeros((K + 1, D, 2)))
    with pytest.raises(ModelError, match="non-finite"):
        EigenChannel(ubm, np.full((K, D, 2), np.nan))
    one_class = {u: "same" for u in utt2spk}
    EigenChannel.fit(ubm, feats, one_class, n_factors=2, n_iterations=1)  # one class suffices
    singletons = {u: u for u in utt2spk}
    with pytest.raises(SpeakerGMMError, match="of which 0 have two or more"):
        EigenChannel.fit(ubm, feats, singletons, n_factors=2)
    few = {u: utt2spk[u] for u in sorted(utt2spk)[:4]}  # one class of 4: 3 degrees of freedom
    with pytest.raises(SpeakerGMMError, match="5 factors but only 3 within-class"):
        EigenChannel.fit(ubm, feats, few, n_factors=5)
    with pytest.raises(SpeakerGMMError, match="no features for utterance 'ghost'"):
        EigenChannel.fit(ubm, feats, {**utt2spk, "ghost": "s00"}, n_factors=2)
    with pytest.raises(SpeakerGMMError, match="n_factors >= 1"):
        EigenChannel.fit(ubm, feats, utt2spk, n_factors=0)
