"""Scoring models from a store's records: its speakers MAP-adapted from their statistics and
stacked for scoring, block by block (the scoring side of the store; :mod:`.records` keeps
the statistics and imports no scoring)."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from ..backend.scoring import ModelSet
from ..gmm.adapt import map_parameters
from ..gmm.mixture import DiagGMM
from .records import SpeakerRecords, StatisticsBlock

__all__ = ["BLOCK", "model_sets", "model_set", "adapted", "parameters"]

# Speakers read per block when many are scored: bounds memory (a block's rows as SQLite
# returns them, their statistics joined, and the scoring temporaries: ~100 MB at K = 512,
# D = 60) whatever the size of the store. Fewer or more were slower in a fresh process.
BLOCK = 256


def model_sets(store: SpeakerRecords, ubm: DiagGMM, channel: str | None = None, *,
               block: int = BLOCK, ids=None) -> Iterator[ModelSet]:
    """Every speaker of ``store`` (or those of ``ids``), MAP-adapted and stacked for
    scoring, in blocks of at most ``block`` speakers sorted by id (checked against ``ubm``
    and ``channel``, as :meth:`~.records.SpeakerRecords.check_ubm`): memory is bounded by
    the block, not by the store."""
    store.check_ubm(ubm, channel)
    for stats in store.statistics_blocks(ubm.n_components, ubm.dim, block=block, ids=ids):
        yield model_set(ubm, stats)


def model_set(ubm: DiagGMM, stats: StatisticsBlock) -> ModelSet:
    """One block of a store's speakers as a :class:`~speakergmm.backend.scoring.ModelSet`:
    means-only speakers straight from their float32 statistics (and kept biases), others
    adapted in float64, grouped by their enrollment settings."""
    groups: dict[tuple[float, tuple], list[int]] = {}
    for i, key in enumerate(zip(stats.relevance, stats.adapt)):
        groups.setdefault(key, []).append(i)
    if len(groups) == 1 and next(iter(groups))[1] == ("means",):  # the common case
        return ModelSet.from_statistics(ubm, stats.n, stats.f, relevance=stats.relevance[0],
                                        ids=stats.ids, bias=stats.bias)
    m, (k, d) = len(stats.ids), (ubm.n_components, ubm.dim)
    means_only = all(adapt == ("means",) for _, adapt in groups)
    means = np.empty((m, k, d), np.float32)
    weights = np.empty((m, k))
    variances = np.empty((m, k, d), np.float32)
    for (relevance, adapt), idx in groups.items():
        s = None if "variances" not in adapt else np.stack([stats.s[i] for i in idx])
        w, mu, var = map_parameters(ubm, stats.n[idx], stats.f[idx], s, relevance=relevance,
                                    adapt=adapt)
        means[idx], weights[idx], variances[idx] = mu, w, var
    extra = {} if means_only else {"weights": weights, "variances": variances}
    return ModelSet(ubm, means, ids=stats.ids, **extra)


def adapted(store: SpeakerRecords, speaker_id: str, ubm: DiagGMM,
            channel: str | None = None) -> DiagGMM:
    """A speaker's MAP-adapted model (checked against ``ubm`` and ``channel``)."""
    store.check_ubm(ubm, channel)
    return store.model(speaker_id).adapted(ubm)


def parameters(store: SpeakerRecords, ubm: DiagGMM, channel: str | None = None
               ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """All speakers' adapted parameters as stacked float32 arrays (checked against ``ubm``
    and ``channel``). Holds every speaker in memory: identification reads
    :func:`model_sets` instead.

    Returns
    -------
    ids : list of str, sorted
    weights : np.ndarray [shape=(M, K), dtype=float32]
    means : np.ndarray [shape=(M, K, D), dtype=float32]
    variances : np.ndarray [shape=(M, K, D), dtype=float32]
    """
    store.check_ubm(ubm, channel)
    store.check_enrolled()
    ids, weights, means, variances = [], [], [], []
    for speaker in (s.id for s in store.list()):
        g = store.model(speaker).adapted(ubm)
        ids.append(speaker)
        weights.append(g.weights)
        means.append(g.means)
        variances.append(g.variances)
    return (ids, np.stack(weights).astype(np.float32), np.stack(means).astype(np.float32),
            np.stack(variances).astype(np.float32))
