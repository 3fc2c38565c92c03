"""Vector transforms and cosine scoring (speakergmm.backend.vectors) against closed forms."""

import numpy as np
import pytest

from speakergmm.backend.vectors import (
    LDA,
    WCCN,
    LengthNorm,
    VectorPipeline,
    Whitening,
    class_scatter,
    cosine_scores,
)
from speakergmm.errors import ModelError


@pytest.fixture(scope="module")
def labelled():
    """Speakers in 6 dimensions whose between- and within-class covariances differ."""
    rng = np.random.default_rng(0)
    dim, speakers, per = 6, 40, 8
    mix_b = rng.standard_normal((dim, dim))
    mix_w = rng.standard_normal((dim, dim)) * 0.4
    centres = rng.standard_normal((speakers, dim)) @ mix_b + 3.0
    X = np.repeat(centres, per, axis=0) + rng.standard_normal((speakers * per, dim)) @ mix_w
    labels = np.repeat(np.arange(speakers), per)
    return X, labels


def _naive_scatter(X, labels):
    mean = X.mean(axis=0)
    within = np.zeros((X.shape[1],) * 2)
    between = np.zeros_like(within)
    for s in np.unique(labels):
        rows = X[labels == s]
        mu = rows.mean(axis=0)
        within += sum(np.outer(x - mu, x - mu) for x in rows)
        between += len(rows) * np.outer(mu - mean, mu - mean)
    return mean, within / len(X), between / len(X)


def test_class_scatter_equals_the_definition(labelled):
    X, labels = labelled
    for got, want in zip(class_scatter(X, labels), _naive_scatter(X, labels)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_lda_solves_the_fisher_eigenproblem(labelled):
    X, labels = labelled
    lda = LDA(3).fit(X, labels)
    Y = lda.transform(X)
    _, within, between = class_scatter(Y, labels)
    np.testing.assert_allclose(within, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(between, np.diag(lda.eigenvalues_), atol=1e-6)
    _, sw, sb = _naive_scatter(X, labels)
    naive = np.sort(np.linalg.eigvals(np.linalg.solve(sw, sb)).real)[::-1][:3]
    np.testing.assert_allclose(lda.eigenvalues_, naive, rtol=1e-6)
    assert np.all(np.diff(lda.eigenvalues_) <= 0)
    np.testing.assert_allclose(Y.mean(axis=0), 0, atol=1e-9)
    with pytest.raises(ModelError, match="needs at least 7 classes"):
        LDA(6).fit(X[:48], labels[:48])
    with pytest.raises(ModelError, match="needs the class"):
        LDA(2).fit(X)


def test_wccn_makes_the_within_class_covariance_identity(labelled):
    X, labels = labelled
    wccn = WCCN().fit(X, labels)
    _, within, _ = class_scatter(wccn.transform(X), labels)
    np.testing.assert_allclose(within, np.eye(X.shape[1]), atol=1e-6)
    _, sw, _ = _naive_scatter(X, labels)
    B = wccn.projection_
    np.testing.assert_allclose(B @ B.T, np.linalg.inv(sw), rtol=1e-6)


def test_whitening_and_length_norm(labelled):
    X, _ = labelled
    Y = Whitening().fit_transform(X)
    np.testing.assert_allclose(Y.mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(Y.T @ Y / len(Y), np.eye(X.shape[1]), atol=1e-9)
    Z = LengthNorm().transform(Y)
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, rtol=1e-12)
    with pytest.raises(ModelError, match="not fitted"):
        Whitening().transform(X)


def test_pipeline_state_round_trip(labelled):
    X, labels = labelled
    pipe = VectorPipeline([Whitening(), LDA(4), WCCN(), LengthNorm()]).fit(X, labels)
    description, arrays = pipe.state()
    assert [d["kind"] for d in description] == ["whitening", "lda", "wccn", "length_norm"]
    back = VectorPipeline.from_state(description, arrays)
    np.testing.assert_array_equal(back.transform(X), pipe.transform(X))
    with pytest.raises(ModelError, match="cannot be rebuilt"):
        VectorPipeline.from_state([{"kind": "lda", "params": {"n_components": 4}}], {})


def test_cosine_scores_are_dot_products_of_normalised_vectors():
    rng = np.random.default_rng(1)
    enroll, test = rng.standard_normal((5, 7)), rng.standard_normal((3, 7))
    want = np.array([[e @ t / np.linalg.norm(e) / np.linalg.norm(t) for t in test]
                     for e in enroll])
    np.testing.assert_allclose(cosine_scores(enroll, test), want, rtol=1e-12)
    with pytest.raises(ModelError, match="dimension"):
        cosine_scores(enroll, test[:, :6])


def test_vector_backend_round_trip_and_scoring(labelled, tmp_path):
    from speakergmm.backend.vectors import VectorBackend

    X, labels = labelled
    backend = VectorBackend.train(X, labels, whiten=True, lda=4, wccn=True,
                                  metadata={"extractor_fingerprint": "abc"})
    backend.save(tmp_path / "b.npz")
    back = VectorBackend.load(tmp_path / "b.npz")
    np.testing.assert_array_equal(back.transform(X), backend.transform(X))
    assert back.metadata["extractor_fingerprint"] == "abc"
    assert [s.kind for s in back.pipeline.steps] == ["whitening", "lda", "wccn",
                                                     "length_norm"]
    groups = [X[labels == s][:3] for s in range(5)]
    tests = X[labels == 0][3:6]
    plda = back.models(groups).scores(back.transform(tests))
    want = np.array([[backend.plda.llr(backend.transform(g), backend.transform(t[None])[0])
                      for t in tests] for g in groups])
    np.testing.assert_allclose(plda, want, rtol=1e-9, atol=1e-9)
    assert plda[0].min() > plda[1:].max()  # the enrolled speaker wins
    cos = back.models(groups, backend="cosine").scores(back.transform(tests))
    means = np.array([backend.transform(g).mean(axis=0) for g in groups])
    np.testing.assert_allclose(cos, cosine_scores(means, backend.transform(tests)), rtol=1e-12)
    rows = np.array([0, 3, 1])
    np.testing.assert_allclose(back.models(groups).pair_scores(rows, back.transform(tests)),
                               plda[rows, np.arange(3)], rtol=1e-10)
    with pytest.raises(ModelError, match="unknown vector back-end"):
        back.models(groups, backend="svm")
    (tmp_path / "bad.npz").write_bytes(b"x")
    with pytest.raises(ModelError):
        VectorBackend.load(tmp_path / "bad.npz")
