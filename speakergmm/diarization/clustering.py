"""Average-linkage clustering of windows by their PLDA pair scores, without the matrix of
pairs of a long recording.

The symmetric PLDA LLR of two windows is a form of their diagonal-space images
(:meth:`PLDA.pair_form <speakergmm.backend.plda.PLDA.pair_form>`): ``α·(u² + v²) +
β·(u∘v) + c``. Its average over the pairs of two groups A and B needs only each group's
size ``n``, ``s1 = Σu`` and ``s2 = Σ α·u²``::

    (n_B s2_A + n_A s2_B + β·(s1_A ∘ s1_B)) / (n_A n_B) + c

so a merged group is the sum of its parts, and average linkage runs on those summaries.
A recording of one chunk is clustered in one go, exactly as average linkage of the pair
matrix would (scipy's ``linkage(method="average")``, which a test compares). A longer one
is clustered in two stages, so that memory stays linear in its length: the windows of each
chunk merge while their average LLR stays above ``sure`` (merges nobody would undo), then
the chunks' groups are clustered together under the real rules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Groups", "agglomerate", "cluster_windows", "pair_matrix"]


@dataclass(frozen=True)
class Groups:
    """Summaries of groups of vectors under a pair form: ``n`` (g,), ``s1`` (g, dim),
    ``s2`` (g,)."""

    n: np.ndarray
    s1: np.ndarray
    s2: np.ndarray

    @classmethod
    def of(cls, u: np.ndarray, alpha: np.ndarray) -> "Groups":
        """One group per row of ``u`` (diagonal-space vectors)."""
        u = np.asarray(u, np.float64)
        return cls(np.ones(len(u)), u, (u * u) @ alpha)

    def summed(self, labels: np.ndarray) -> "Groups":
        """The groups of the same label added (labels ``0..L-1``)."""
        k = int(labels.max()) + 1
        s1 = np.zeros((k, self.s1.shape[1]))
        np.add.at(s1, labels, self.s1)
        return Groups(np.bincount(labels, self.n, k), s1, np.bincount(labels, self.s2, k))


def pair_matrix(groups: Groups, beta: np.ndarray, c: float) -> np.ndarray:
    """The average pair form between every two groups, ``(g, g)`` (the diagonal: a group
    against itself, pairs of one vector with itself included)."""
    n = groups.n
    return (np.outer(groups.s2, n) + np.outer(n, groups.s2)
            + (groups.s1 * beta) @ groups.s1.T) / np.outer(n, n) + c


def agglomerate(groups: Groups, beta: np.ndarray, c: float, *, scale: float = 1.0,
                offset: float = 0.0, threshold: float = 0.0,
                num_speakers: int | None = None,
                max_speakers: int | None = None) -> np.ndarray:
    """Average-linkage clustering of groups on the calibrated average pair score
    ``scale · form + offset``: merging the best pair while it reaches ``threshold``;
    with ``num_speakers``, until that many are left whatever the scores; with
    ``max_speakers``, on until at most that many.

    Returns
    -------
    np.ndarray [shape=(g,), dtype=int]
        Labels ``0..L-1`` in order of first appearance.
    """
    m = len(groups.n)
    if m == 1:
        return np.zeros(1, int)
    n, s1, s2 = groups.n.astype(np.float64).copy(), groups.s1.copy(), groups.s2.copy()
    link = scale * pair_matrix(groups, beta, c) + offset
    np.fill_diagonal(link, -np.inf)
    alive = np.ones(m, bool)
    owner = np.arange(m)
    for left in range(m, 1, -1):
        flat = int(np.argmax(link))
        i, j = divmod(flat, m)
        if num_speakers is not None:
            if left <= num_speakers:
                break
        elif link[i, j] < threshold and (max_speakers is None or left <= max_speakers):
            break
        n[i] += n[j]
        s1[i] += s1[j]
        s2[i] += s2[j]
        owner[owner == j] = i
        alive[j] = False
        row = scale * ((n * s2[i] + n[i] * s2 + (s1 * beta) @ s1[i]) / (n * n[i]) + c) + offset
        row[~alive] = -np.inf
        row[i] = -np.inf
        link[i], link[:, i] = row, row
        link[j], link[:, j] = -np.inf, -np.inf
    return _in_order(owner)


def _in_order(owner: np.ndarray) -> np.ndarray:
    """Labels renumbered ``0..L-1`` in order of first appearance."""
    first = {}
    return np.array([first.setdefault(int(o), len(first)) for o in owner], int)


def cluster_windows(u: np.ndarray, chunk: np.ndarray, form, *, scale: float, offset: float,
                    threshold: float, sure: float, num_speakers: int | None = None,
                    max_speakers: int | None = None) -> np.ndarray:
    """Labels of windows (module docstring).

    Parameters
    ----------
    u : np.ndarray [shape=(windows, dim)]
        The windows' vectors in the PLDA's diagonal space.
    chunk : np.ndarray [shape=(windows,)]
        The chunk of the recording each window is in (non-decreasing).
    form : (alpha, beta, c)
        :meth:`PLDA.pair_form <speakergmm.backend.plda.PLDA.pair_form>`.
    scale, offset : float
        The calibration of pair scores.
    threshold, num_speakers, max_speakers
        As :func:`agglomerate`.
    sure : float
        The calibrated LLR above which windows of one chunk merge first (several chunks).
    """
    alpha, beta, c = form
    groups = Groups.of(u, alpha)
    rules = dict(scale=scale, offset=offset, threshold=threshold, num_speakers=num_speakers,
                 max_speakers=max_speakers)
    chunks = np.unique(chunk)
    if len(chunks) <= 1:
        return agglomerate(groups, beta, c, **rules)
    first = np.empty(len(u), int)
    base = 0
    for k in chunks:
        rows = np.flatnonzero(chunk == k)
        part = Groups(groups.n[rows], groups.s1[rows], groups.s2[rows])
        first[rows] = base + agglomerate(part, beta, c, scale=scale, offset=offset,
                                         threshold=max(sure, threshold))
        base = int(first[rows].max()) + 1
    return agglomerate(groups.summed(first), beta, c, **rules)[first]
