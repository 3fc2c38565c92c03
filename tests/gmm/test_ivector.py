"""The i-vector extractor (speakergmm.gmm.ivector) on statistics drawn from a known T."""

import numpy as np
import pytest

from speakergmm.errors import ModelError, SpeakerGMMError
from speakergmm.gmm.ivector import IVectorExtractor
from speakergmm.gmm.stats import GMMStats

from conftest import random_gmm

K, D, R = 8, 4, 3


def _draw(rng, ubm, T, w, frames):
    """Statistics of ``frames`` frames of an utterance whose means are m + T w: counts from
    the UBM weights, first order with unit-variance residuals (whitened space)."""
    n = rng.multinomial(frames, ubm.weights).astype(np.float64)
    centred = n[:, None] * (T @ w) + np.sqrt(n)[:, None] * rng.standard_normal((K, D))
    sd = np.sqrt(ubm.variances)
    return GMMStats(n, centred * sd + n[:, None] * ubm.means, np.zeros((K, D)), 0.0,
                    frames)


def _world(seed=0, speakers=60, sessions=5, frames=300):
    """Utterances of speakers: w = speaker part + session part (total variability)."""
    rng = np.random.default_rng(seed)
    ubm = random_gmm(rng, k=K, d=D, scale=3.0)
    T = 0.5 * rng.standard_normal((K, D, R))
    stats, spk, truth = {}, {}, {}
    for s in range(speakers):
        y = rng.standard_normal(R) * 0.9
        for h in range(sessions):
            w = y + 0.45 * rng.standard_normal(R)
            utt = f"s{s:03d}-{h}"
            stats[utt], spk[utt], truth[utt] = _draw(rng, ubm, T, w, frames), s, w
    return ubm, T, stats, spk, truth


@pytest.fixture(scope="module")
def world():
    return _world()


@pytest.fixture(scope="module")
def fitted(world):
    ubm, T, stats, *_ = world
    return IVectorExtractor.fit(ubm, stats, n_factors=R, n_iterations=10)


def _cosines(A, B):
    """Cosines of the principal angles between the column spans of A and B."""
    qa, qb = np.linalg.qr(A)[0], np.linalg.qr(B)[0]
    return np.linalg.svd(qa.T @ qb, compute_uv=False)


def test_recovers_the_total_variability_subspace(world, fitted):
    T = world[1]
    cos = _cosines(T.reshape(K * D, R), fitted.T.reshape(K * D, R))
    assert cos.min() > 0.97, cos
    rand = np.random.default_rng(5).standard_normal((K * D, R))
    assert _cosines(T.reshape(K * D, R), rand).min() < 0.7  # the check can fail


@pytest.mark.parametrize("min_divergence", [True, False])
def test_em_never_lowers_the_likelihood(world, min_divergence):
    ubm, _, stats, *_ = world
    model = IVectorExtractor.fit(ubm, stats, n_factors=R, n_iterations=8,
                                 min_divergence=min_divergence, seed=3)
    record = np.array(model.metadata["training"]["objective"])
    assert len(record) == 8
    assert np.all(np.diff(record) >= -1e-9 * np.abs(record[1:])), record
    assert record[-1] > record[0]


def test_minimum_divergence_standardises_the_factors(world, fitted):
    """After re-estimating the prior, the training i-vectors' second moment is near I (it is
    whatever the initial scale made it without)."""
    ubm, _, stats, *_ = world
    W, covs = [], []
    for st in stats.values():
        w, cov = fitted.extract(st.n, st.f, return_cov=True)
        W.append(w)
        covs.append(cov)
    W = np.array(W)
    second = (W.T @ W + np.sum(covs, axis=0)) / len(W)
    np.testing.assert_allclose(second, np.eye(R), atol=0.05)
    plain = IVectorExtractor.fit(ubm, stats, n_factors=R, n_iterations=2,
                                 min_divergence=False)
    Wp = np.array([plain.extract(st.n, st.f) for st in stats.values()])
    assert np.abs(Wp.T @ Wp / len(Wp) - np.eye(R)).max() > 0.1


def _auc(vectors, labels):
    """P(same-speaker pair's cosine > different-speaker pair's)."""
    W = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sim = W @ W.T
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(len(W), dtype=bool)
    return np.mean(sim[same & off][:, None] > sim[~same][None, ::7])


def test_ivectors_of_a_speaker_cluster(world, fitted):
    """Same-speaker i-vectors are as close as the factors that generated them (the best any
    extractor can do), far closer than those of a subspace that misses T's."""
    ubm, T, stats, spk, truth = world
    utts = sorted(stats)
    labels = np.array([spk[u] for u in utts])
    W = np.array([fitted.extract(stats[u].n, stats[u].f) for u in utts])
    oracle = _auc(np.array([truth[u] for u in utts]), labels)
    got = _auc(W, labels)
    # orthogonal to T in the metric the counts weight it with: sees none of the speakers
    Tm, g = T.reshape(K * D, R), np.repeat(ubm.weights, D)[:, None]
    off = np.random.default_rng(1).standard_normal((K * D, R))
    off -= Tm @ np.linalg.solve(Tm.T @ (g * Tm), Tm.T @ (g * off))
    blind = IVectorExtractor(ubm, off.reshape(K, D, R))
    chance = _auc(np.array([blind.extract(stats[u].n, stats[u].f) for u in utts]), labels)
    assert got > oracle - 0.02 and got > chance + 0.15, (got, oracle, chance)


def test_extraction_equals_the_naive_posterior(world, fitted):
    ubm, _, stats, *_ = world
    st = stats["s000-0"]
    T = fitted.T
    L = np.eye(R)
    b = np.zeros(R)
    for k in range(K):
        L += st.n[k] * T[k].T @ T[k]
        b += T[k].T @ ((st.f[k] - st.n[k] * ubm.means[k]) / np.sqrt(ubm.variances[k]))
    w, cov = fitted.extract(st.n, st.f, return_cov=True)
    np.testing.assert_allclose(w, np.linalg.solve(L, b), rtol=1e-10)
    np.testing.assert_allclose(cov, np.linalg.inv(L), rtol=1e-10)
    some = [stats[u] for u in sorted(stats)[:7]]
    batch = fitted.extract(np.array([s.n for s in some]), np.array([s.f for s in some]))
    np.testing.assert_allclose(batch[0], w, rtol=1e-12)
    assert batch.shape == (7, R)


def test_blocks_and_spans_do_not_change_the_model(world, fitted, monkeypatch):
    """The E-step mapped over many blocks and spans reduces to the same sums."""
    import speakergmm.gmm.factor as factor

    ubm, _, stats, *_ = world
    monkeypatch.setattr(factor, "BLOCK", 7)
    monkeypatch.setattr(factor, "SPAN", 3)
    again = IVectorExtractor.fit(ubm, stats, n_factors=R, n_iterations=10)
    np.testing.assert_allclose(again.T, fitted.T, rtol=1e-8, atol=1e-10)


def test_file_round_trip_and_refusals(world, fitted, tmp_path):
    ubm = world[0]
    fitted.save(tmp_path / "iv.npz")
    back = IVectorExtractor.load(tmp_path / "iv.npz", ubm)
    assert back.fingerprint() == fitted.fingerprint()
    np.testing.assert_allclose(back.T, fitted.T, rtol=1e-6)
    assert back.metadata["training"]["iterations"] == 10
    other = random_gmm(np.random.default_rng(9), k=K, d=D)
    with pytest.raises(ModelError, match="trained with UBM .* train it again"):
        IVectorExtractor.load(tmp_path / "iv.npz", other)
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(ModelError):
        IVectorExtractor.load(tmp_path / "bad.npz", ubm)
    with pytest.raises(SpeakerGMMError, match="need more than"):
        IVectorExtractor.fit(ubm, dict(list(world[2].items())[:3]), n_factors=3)
    with pytest.raises(SpeakerGMMError, match="no features for utterance 'zz'"):
        IVectorExtractor.fit(ubm, world[2], utterances=["zz"], n_factors=1)
    with pytest.raises(ModelError, match="do not fit"):
        fitted.extract(np.ones(K + 1), np.ones((K + 1, D)))


def test_vector_archive_round_trip_resume_and_refusal(world, fitted, tmp_path):
    from speakergmm.errors import ArchiveError
    from speakergmm.gmm.ivector import extract_ivectors, read_vectors

    ubm, _, stats, *_ = world
    utts = sorted(stats)
    archive = extract_ivectors(fitted, stats, tmp_path / "iv", batch_size=32, executor=2)
    assert len(archive) == len(stats) and archive.dim == R
    assert archive.extractor_fingerprint == fitted.fingerprint()
    want = fitted.extract(np.array([stats[u].n for u in utts]),
                          np.array([stats[u].f for u in utts]))
    np.testing.assert_allclose(archive.matrix(utts), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(read_vectors(tmp_path / "iv")[utts[5]],
                                  archive.matrix(utts)[5])
    # a second run into the same directory finds everything done and changes nothing
    before = (tmp_path / "iv" / "vectors.scp").read_text()
    calls = []
    extract_ivectors(fitted, stats, tmp_path / "iv", batch_size=32, progress=calls.append)
    assert calls == [len(stats)]  # all of them found done at once, no batch run
    assert (tmp_path / "iv" / "vectors.scp").read_text() == before
    other = IVectorExtractor(ubm, fitted.T[:, :, :2])
    with pytest.raises(ArchiveError, match="made otherwise"):
        extract_ivectors(other, stats, tmp_path / "iv")
    with pytest.raises(ArchiveError, match="not a vector archive|no vectors.json"):
        read_vectors(tmp_path)


def test_a_component_no_frame_reaches_keeps_its_loadings(world):
    """Statistics that never reach component 0 (a silence component under windows of
    speech only) used to make the M-step's A_0 singular: it keeps its loadings, and the
    others still recover T."""
    ubm, T, stats, *_ = world
    cut = {}
    for utt, s in stats.items():
        n, f = s.n.copy(), s.f.copy()
        n[0], f[0] = 0.0, 0.0
        cut[utt] = GMMStats(n, f, np.zeros_like(f), 0.0, s.frames)
    fitted = IVectorExtractor.fit(ubm, cut, n_factors=R, n_iterations=5)
    assert np.all(np.isfinite(fitted.T))
    cos = _cosines(T[1:].reshape(-1, R), fitted.T[1:].reshape(-1, R))
    assert cos.min() > 0.95, cos
    w = fitted.extract(cut["s000-0"].n, cut["s000-0"].f)
    assert np.all(np.isfinite(w))
