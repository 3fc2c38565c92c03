import numpy as np
import pytest
from click.testing import CliRunner

from speakergmm.cli import main
from speakergmm.errors import SpeakerGMMError
from speakergmm.frontend.archive import extract_archive, read_features
from speakergmm.gmm.mixture import DiagGMM
from speakergmm.gmm.ubm import train_ubm


def mixture_data(seed=0, k=6, d=4, n_utts=8, frames=1500):
    """Utterances drawn from a well-separated seeded mixture; returns them and the truth."""
    rng = np.random.default_rng(seed)
    # distinct points of a lattice with spacing 8: clusters well apart (stds <= 1.5)
    grid = np.stack(np.meshgrid(*[np.arange(3)] * d, indexing="ij"), -1).reshape(-1, d)
    means = 8.0 * grid[rng.choice(len(grid), size=k, replace=False)] + rng.normal(0, 0.5, (k, d))
    stds = rng.uniform(0.5, 1.5, (k, d))
    weights = rng.dirichlet(np.full(k, 5.0))
    utts = []
    for _ in range(n_utts):
        comp = rng.choice(k, size=frames, p=weights)
        x = means[comp] + stds[comp] * rng.standard_normal((frames, d))
        utts.append(x.astype(np.float32))
    return utts, DiagGMM(weights, means, stds**2)


def _match(model, truth):
    """Pair each true component with the nearest learnt mean."""
    dist = ((truth.means[:, None] - model.means[None]) ** 2).sum(-1)
    return dist.argmin(axis=1)


@pytest.mark.parametrize("seed,k", [(0, 6), (1, 8), (2, 6), (3, 8)])
def test_kmeanspp_recovers_ground_truth(seed, k):
    utts, truth = mixture_data(seed=seed, k=k)
    model = train_ubm(utts, n_components=k, n_iterations=30, init="kmeans++", seed=seed)
    idx = _match(model, truth)
    assert len(set(idx)) == k
    n_k = truth.weights * sum(len(u) for u in utts)
    # within 4 standard errors of the estimates
    assert np.all(np.abs(model.means[idx] - truth.means)
                  < 4 * np.sqrt(truth.variances / n_k[:, None]))
    assert np.all(np.abs(model.variances[idx] / truth.variances - 1)
                  < 4 * np.sqrt(2 / n_k[:, None]))
    np.testing.assert_allclose(model.weights[idx], truth.weights, atol=0.01)
    # the learnt model explains fresh data as well as the truth does
    test, _ = mixture_data(seed=seed, k=k, n_utts=1)
    assert model.log_likelihood(test[0]).mean() == pytest.approx(
        truth.log_likelihood(test[0]).mean(), abs=0.02)


@pytest.mark.parametrize("seed", range(4))
def test_split_recovers_two_clusters(seed):
    utts, truth = mixture_data(seed=seed, k=2)
    model = train_ubm(utts, n_components=2, n_iterations=20, init="split", seed=seed)
    idx = _match(model, truth)
    assert sorted(idx) == [0, 1]
    np.testing.assert_allclose(model.means[idx], truth.means, atol=0.1)


def test_split_reaches_a_good_likelihood():
    utts, truth = mixture_data(seed=0, k=8)
    model = train_ubm(utts, n_components=8, n_iterations=30, init="split")
    one = train_ubm(utts, n_components=1, n_iterations=1)
    got, best, single = (m.log_likelihood(np.concatenate(utts)).mean()
                         for m in (model, truth, one))
    # far above one Gaussian; binary splitting may merge two clusters, so not always the truth
    assert got - single > 0.8 * (best - single)


def test_likelihood_never_decreases_at_fixed_size():
    utts, _ = mixture_data(seed=3, k=8)
    model = train_ubm(utts, n_components=8, n_iterations=25, init="kmeans++", seed=0)
    llk = np.array(model.metadata["training"]["avg_llk_per_iteration"])
    # float32 E-step: allow rounding-level wiggles (1e-6 relative) once converged
    assert np.all(np.diff(llk) >= -1e-6 * np.abs(llk[1:]))
    assert llk[-1] > llk[0]


def test_any_k_by_splitting():
    utts, _ = mixture_data(seed=2)
    reports = []
    model = train_ubm(utts, n_components=7, n_iterations=2, seed=0, progress=reports.append)
    assert model.n_components == 7
    assert [r.components for r in reports if r.stage == "split"] == [2, 2, 4, 4, 7, 7]
    assert np.isclose(model.weights.sum(), 1.0)


def test_same_seed_same_model_and_jobs_do_not_matter():
    utts, _ = mixture_data(seed=4)
    a = train_ubm(utts, n_components=5, n_iterations=4, init="kmeans++", seed=7, shard_frames=2000)
    b = train_ubm(utts, n_components=5, n_iterations=4, init="kmeans++", seed=7, shard_frames=2000,
                  executor=2)
    for x, y in [(a.weights, b.weights), (a.means, b.means), (a.variances, b.variances)]:
        np.testing.assert_array_equal(x, y)
    c = train_ubm(utts, n_components=5, n_iterations=4, init="kmeans++", seed=8, shard_frames=2000)
    assert not np.array_equal(a.means, c.means)


def test_degenerate_data_stays_finite():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3000, 3)).astype(np.float32)
    x[:, 1] = 2.0                      # a constant dimension
    x[:1000] = x[0]                    # a third of the frames duplicated
    model = train_ubm([x[:1500], x[1500:]], n_components=8, n_iterations=5)
    for arr in (model.weights, model.means, model.variances):
        assert np.isfinite(arr).all()
    assert model.variances[:, 1].min() > 0


def test_collapsed_components_are_reseeded_and_reported():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (4000, 2)), rng.normal(50, 1, (2, 2))]).astype(np.float32)
    model = train_ubm([x], n_components=4, n_iterations=3, init="kmeans++", seed=0,
                      min_weight=0.01)
    record = model.metadata["training"]
    assert record["reseeded"], record
    assert {"iteration", "component", "split_from"} <= set(record["reseeded"][0])
    assert np.all(model.weights > 0)


def test_too_few_frames_is_a_clear_error():
    x = np.random.default_rng(0).standard_normal((100, 3)).astype(np.float32)
    with pytest.raises(SpeakerGMMError, match=r"only 100 frames for 64 components.*at most 10"):
        train_ubm([x], n_components=64)


def test_subsample_and_generators():
    utts, _ = mixture_data(seed=5, n_utts=2)
    model = train_ubm((u for u in utts), n_components=3, n_iterations=1, subsample=3)
    assert model.metadata["training"]["frames"] == sum(-(-len(u) // 3) for u in utts)
    with pytest.raises(TypeError, match="mapping"):
        train_ubm(42, n_components=2)


class _Stop(Exception):
    pass


@pytest.mark.parametrize("init", ["split", "kmeans++"])
def test_interrupted_training_resumes_to_the_same_model(tmp_path, init):
    """Stopped after every single EM iteration in turn, the training resumes from its
    checkpoint each time and ends with the uninterrupted model, bit for bit, and the same
    record of iterations."""
    rng = np.random.default_rng(0)
    data = {f"u{i}": (rng.standard_normal((300, 3)) + i % 3).astype(np.float32)
            for i in range(30)}
    kw = dict(n_components=5, n_iterations=3, init=init, shard_frames=2000)
    want = train_ubm(data, **kw)
    checkpoint = tmp_path / "resume.npz"

    def stop(report):
        raise _Stop

    runs = 0
    while True:
        runs += 1
        try:
            got = train_ubm(data, **kw, checkpoint=checkpoint, progress=stop)
            break
        except _Stop:
            continue
    record, wanted = got.metadata["training"], want.metadata["training"]
    assert runs == len(wanted["avg_llk_per_iteration"]) + 1
    assert got.fingerprint() == want.fingerprint()
    assert record["avg_llk_per_iteration"] == wanted["avg_llk_per_iteration"]
    assert record["resumed_after_iteration"] == runs - 1
    # other settings, or other data: the checkpoint is not theirs, and is ignored
    other = train_ubm(data, **{**kw, "n_iterations": 4}, checkpoint=checkpoint)
    assert "resumed_after_iteration" not in other.metadata["training"]
    assert other.fingerprint() == train_ubm(data, **{**kw, "n_iterations": 4}).fingerprint()
    fewer = dict(list(data.items())[:-1])
    assert "resumed_after_iteration" not in train_ubm(
        fewer, **{**kw, "n_iterations": 4}, checkpoint=checkpoint).metadata["training"]
    # an unreadable checkpoint is ignored too
    checkpoint.write_bytes(b"PK\x03\x04 cut short")
    assert train_ubm(data, **kw, checkpoint=checkpoint).fingerprint() == want.fingerprint()


def test_trains_from_an_archive_and_cli(tmp_path):
    from conftest import make_data_dir

    data = make_data_dir(tmp_path)
    extract_archive(data, tmp_path / "feats", audio_root=tmp_path)
    feats = read_features(tmp_path / "feats")
    model = train_ubm(feats, n_components=4, n_iterations=2, seed=0)
    assert model.dim == 60
    out = tmp_path / "ubm.npz"
    result = CliRunner().invoke(main, ["train-ubm", str(tmp_path / "feats"), "-c", "4", "-n", "2",
                                       "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "iter   1 [split K=2]" in result.output and "wrote" in result.output
    saved = DiagGMM.load(out)
    np.testing.assert_array_equal(saved.means, model.means)  # same seed: same model
    assert saved.metadata["feature_config"]["n_mfcc"] == 20
    assert len(saved.metadata["training"]["avg_llk_per_iteration"]) == 2 * 2 + 2
    result = CliRunner().invoke(main, ["info", str(out)])
    assert result.exit_code == 0 and "components (K): 4" in result.output
    # archives of different configs are refused
    extract_archive(data, tmp_path / "f13", audio_root=tmp_path,
                    config=feats.config.preset("wideband", n_mfcc=13))
    result = CliRunner().invoke(main, ["train-ubm", str(tmp_path / "feats"), str(tmp_path / "f13"),
                                       "-c", "2", "-o", str(tmp_path / "x.npz")])
    assert result.exit_code == 2 and "another feature config" in result.output
    assert not (tmp_path / "x.npz").exists()


def test_train_ubm_on_speechocean762(speechocean_train_feats):
    feats = read_features(speechocean_train_feats[1])
    model = train_ubm(feats, n_components=32, n_iterations=3, executor=2, subsample=2)
    llk = model.metadata["training"]["avg_llk_per_iteration"]
    assert model.n_components == 32 and np.isfinite(llk).all()
    assert llk[-1] > llk[0]
