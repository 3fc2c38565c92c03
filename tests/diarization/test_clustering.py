"""Average linkage on pair-form summaries (speakergmm.diarization.clustering) against the
explicit pair matrix and scipy."""

import numpy as np
import pytest

from speakergmm.backend.plda import PLDA
from speakergmm.diarization.clustering import (
    Groups,
    agglomerate,
    cluster_windows,
    pair_matrix,
)


def _plda_and_vectors(seed, speakers=6, per=8, dim=5, spread=2.0):
    rng = np.random.default_rng(seed)
    centres = spread * rng.standard_normal((speakers, dim))
    X = np.repeat(centres, per, axis=0) + rng.standard_normal((speakers * per, dim))
    labels = np.repeat(np.arange(speakers), per)
    return PLDA.fit(X, labels, n_iterations=5), X, labels


def _partition(labels):
    return sorted(sorted(np.flatnonzero(labels == k).tolist()) for k in np.unique(labels))


@pytest.mark.parametrize("seed", range(4))
def test_pair_form_is_the_symmetric_plda_llr(seed):
    plda, X, _ = _plda_and_vectors(seed)
    scores = plda.models(X, np.ones(len(X))).scores(X)
    alpha, beta, c = plda.pair_form()
    u = plda.diagonal(X)
    explicit = (scores + scores.T) / 2
    np.testing.assert_allclose(pair_matrix(Groups.of(u, alpha), beta, c), explicit,
                               rtol=1e-10, atol=1e-9)
    # a summed group's form is the average over its pairs with another group
    labels = np.arange(len(X)) % 3
    summed = pair_matrix(Groups.of(u, alpha).summed(labels), beta, c)
    block = explicit[np.ix_(labels == 0, labels == 2)].mean()
    assert summed[0, 2] == pytest.approx(block, rel=1e-10)


@pytest.mark.parametrize("seed", range(6))
def test_agglomerate_equals_scipy_average_linkage(seed):
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    plda, X, _ = _plda_and_vectors(seed)
    alpha, beta, c = plda.pair_form()
    groups = Groups.of(plda.diagonal(X), alpha)
    scale, offset = 0.3, 1.5
    scores = scale * pair_matrix(groups, beta, c) + offset
    top = scores.max()
    distance = top - scores
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform(distance, checks=False), method="average")
    for threshold in (-5.0, 0.0, 5.0):
        expected = fcluster(tree, t=top - threshold, criterion="distance")
        got = agglomerate(groups, beta, c, scale=scale, offset=offset, threshold=threshold)
        assert _partition(got) == _partition(expected)
        assert got[0] == 0 and set(got) == set(range(got.max() + 1))
    for k in (1, 2, 4, 7):
        expected = fcluster(tree, t=k, criterion="maxclust")
        assert _partition(agglomerate(groups, beta, c, scale=scale, offset=offset,
                                      num_speakers=k)) == _partition(expected)
    many = agglomerate(groups, beta, c, scale=scale, offset=offset, threshold=1e9)
    assert len(set(many)) == len(X)
    assert len(set(agglomerate(groups, beta, c, scale=scale, offset=offset, threshold=1e9,
                               max_speakers=3))) == 3


def test_two_stages_find_the_speakers_across_chunks():
    """Windows of 4 speakers spread over 3 chunks (a speaker in several chunks): the
    chunks' groups are joined again, as one stage finds them."""
    plda, X, labels = _plda_and_vectors(0, speakers=4, per=12, dim=6, spread=5.0)
    alpha, beta, c = plda.pair_form()
    u = plda.diagonal(X)
    order = np.random.default_rng(1).permutation(len(X))
    u, labels = u[order], labels[order]
    chunk = np.repeat(np.arange(3), len(X) // 3)
    rules = dict(scale=1.0, offset=0.0, threshold=0.0, sure=4.6)
    one = cluster_windows(u, np.zeros(len(u), int), (alpha, beta, c), **rules)
    two = cluster_windows(u, chunk, (alpha, beta, c), **rules)
    assert _partition(one) == _partition(labels)
    assert _partition(two) == _partition(labels)
    assert len(set(cluster_windows(u, chunk, (alpha, beta, c), num_speakers=2,
                                   **rules))) == 2
