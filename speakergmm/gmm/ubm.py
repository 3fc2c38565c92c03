"""Universal background model training: EM over sufficient statistics, streaming.

The data are never held at once: each EM iteration sums :class:`~speakergmm.gmm.GMMStats`
over shards of utterances (map), then takes one M-step (reduce). A shard (about
``shard_frames`` frames) is read into one array, and its E-step chunks run on every
thread of the process that holds it (BLAS on one thread each). Shards are fixed groups of
utterances in a fixed order and their statistics are added in that order, so the result is
the same bit for bit whatever runs it (``-j 1``, ``-j N``, a Dask cluster), and a seed
makes the whole training reproducible.

Initialisation, as in Kaldi and SIDEKIT:

- ``"split"`` (default, as HTK, Kaldi and SIDEKIT): one Gaussian at the global mean and
  variance; then repeatedly split the components of largest weight × total variance (means
  moved ±0.2σ along each dimension) until K are reached, with ``split_iterations`` EM
  iterations after each split. Any K works: the last round splits only as many components
  as are missing. Like every splitting scheme it can leave two well-separated clusters
  under one component when K is small; for a UBM of hundreds of components over speech it
  is the standard.
- ``"kmeans++"``: greedy k-means++ seeding (as scikit-learn) and 5 Lloyd iterations on a
  random subsample of at most ``kmeans_frames`` frames; better at separating distinct
  clusters.

Components whose weight collapses below ``min_weight`` are re-seeded by splitting the
heaviest component, and reported in the training record.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._io import read_npz, write_npz
from .._version import __version__
from ..constants import UBM_INITS
from ..errors import FeatureError, ModelError, ParameterError, SpeakerGMMError
from ..exec import Executor, get_executor
from .mixture import DiagGMM
from .stats import GMMStats

__all__ = ["train_ubm", "IterationReport", "MIN_FRAMES_PER_COMPONENT"]

MIN_FRAMES_PER_COMPONENT = 10
_SPLIT_OFFSET = 0.2  # in standard deviations


@dataclass(frozen=True)
class IterationReport:
    """One EM iteration, as passed to ``progress`` and kept in the training record."""

    stage: str            # "split" while growing, "em" at the final size
    iteration: int        # 1-based, counted over the whole training
    components: int
    avg_llk: float        # average log-likelihood per frame under the model of this iteration
    change: float | None  # avg_llk minus the previous iteration's at the same size
    seconds: float
    reseeded: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        change = "" if self.change is None else f" ({self.change:+.5f})"
        extra = f", re-seeded {len(self.reseeded)} component(s)" if self.reseeded else ""
        return (f"iter {self.iteration:3d} [{self.stage} K={self.components}] avg log-likelihood "
                f"{self.avg_llk:.5f}{change}, {self.seconds:.2f} s{extra}")


def train_ubm(
    features: Mapping[str, np.ndarray] | Iterable[np.ndarray],
    *,
    n_components: int,
    n_iterations: int = 10,
    init: str = "split",
    split_iterations: int = 2,
    seed: int = 0,
    subsample: int = 1,
    variance_floor: float = 1e-3,
    min_weight: float = 1e-5,
    kmeans_frames: int = 200_000,
    shard_frames: int = 50_000,
    chunk_size: int | None = None,
    metadata: Mapping[str, Any] | None = None,
    progress: Callable[[IterationReport], None] | None = None,
    executor: Executor | int | None = None,
    checkpoint: str | os.PathLike | None = None,
) -> DiagGMM:
    """Train a diagonal-covariance UBM by EM.

    Parameters
    ----------
    features : mapping or iterable of arrays
        A feature archive (:func:`speakergmm.read_features`: streamed from disk on every
        iteration), any mapping of utterance id to ``(frames, D)`` arrays, or a sequence of
        such arrays. A one-shot iterator (a generator) is read into a list first, since EM
        reads the data once per iteration: that holds all its frames in memory.
    n_components : int
        K.
    n_iterations : int
        EM iterations at the final K.
    init : {"split", "kmeans++"}
    split_iterations : int
        EM iterations after each split (``init="split"``).
    seed : int
        Seed of every random choice; the same seed gives the same model bit for bit.
    subsample : int
        Use every ``subsample``-th frame (Kaldi's ``subsample-feats``).
    variance_floor : float
        Floor on variances, relative to the global variance of each dimension.
    min_weight : float
        Components lighter than this are re-seeded.
    kmeans_frames : int
        Frames drawn for k-means++ initialisation.
    shard_frames : int
        About this many frames make one unit of work (a shard of whole utterances).
    chunk_size : int, optional
        Frames per E-step chunk (memory bound); see :meth:`DiagGMM.accumulate`.
    metadata : mapping, optional
        Extra metadata for the model. What the features record is added (as a
        scikit-learn estimator records what ``fit`` saw): their feature config
        (``"feature_config"``, which :class:`~speakergmm.system.System` and every reader
        of features check against) and the archives they came from (``"data"``).
    progress : callable, optional
        Called with an :class:`IterationReport` after every iteration.
    executor : int, Executor or dask.distributed.Client, optional
        Where the shards' statistics are computed (:func:`speakergmm.exec.get_executor`):
        a number of local processes, an Executor, or a Dask client; default: this
        process. The result does not depend on it.
    checkpoint : path-like, optional
        Resume file. After every step (split, initialisation, EM iteration) the model so
        far and the training record are written there atomically; a later call with the
        same data, settings and ``checkpoint`` starts after the last finished step and gives
        the same model bit for bit (its record says ``resumed_after_iteration``). A file
        made by other data or settings, or unreadable, is ignored and overwritten. The
        caller removes it once the model is saved (``speakergmm train-ubm`` does).

    Returns
    -------
    DiagGMM
        With ``metadata["training"]`` holding the training record.

    Raises
    ------
    SpeakerGMMError
        No data, inconsistent dimensions, or fewer than
        :data:`MIN_FRAMES_PER_COMPONENT` frames per component.
    """
    started = time.perf_counter()
    if n_components < 1 or n_iterations < 0 or subsample < 1 or split_iterations < 0:
        raise ParameterError("need n_components >= 1, n_iterations >= 0, subsample >= 1, "
                             "split_iterations >= 0")
    if init not in UBM_INITS:
        raise ParameterError(f"init must be one of {', '.join(UBM_INITS)}, got {init!r}")
    metadata = recorded_inputs(features, metadata)
    source = _Source.of(features, subsample)
    shards, frames, dim = source.plan(shard_frames)
    if frames < MIN_FRAMES_PER_COMPONENT * n_components:
        raise SpeakerGMMError(
            f"only {frames} frames for {n_components} components (fewer than "
            f"{MIN_FRAMES_PER_COMPONENT} per component): use at most "
            f"{max(1, frames // MIN_FRAMES_PER_COMPONENT)} components, more data, or a smaller "
            "subsampling factor")
    rng = np.random.default_rng(seed)
    ops = _schedule(n_components, init, split_iterations, n_iterations)
    resume = _Checkpoint(checkpoint, {
        "components": n_components, "iterations": n_iterations, "init": init,
        "split_iterations": split_iterations, "seed": seed, "subsample": subsample,
        "variance_floor": variance_floor, "min_weight": min_weight,
        "kmeans_frames": kmeans_frames, "shard_frames": shard_frames, "chunk_size": chunk_size,
        "frames": frames, "dim": dim, "data": _identity(source, shards),
        "metadata": json.dumps(metadata or {}, sort_keys=True, default=str)})
    state = resume.load()
    done = state["done"] if state else 0
    reports = [IterationReport(**r) for r in state["reports"]] if state else []
    reseeded_all: list[dict[str, int]] = state["reseeded"] if state else []
    previous, last_stage = (state["previous"], state["last_stage"]) if state else (None, None)

    executor = get_executor(executor, n_items=len(shards))
    with executor.start((source, chunk_size)) as session:
        def stats_of(model: DiagGMM) -> GMMStats:
            # Shards in a fixed order, summed in that order: the same sum on any executor.
            total = GMMStats.zeros(model.n_components, model.dim)
            for part in session.map(_shard_stats, shards, shared=model):
                total = total + part
            return total

        if state:
            model, floor = state["model"], state["floor"]
        else:
            glob = stats_of(DiagGMM(np.ones(1), np.zeros((1, dim)), np.ones((1, dim))))
            mean = glob.f[0] / glob.n[0]
            var = np.maximum(glob.s[0] / glob.n[0] - mean**2, 1e-10)
            floor = variance_floor * var
            model = DiagGMM(np.ones(1), mean[None], var[None])

        for i, (op, arg) in enumerate(ops[done:], start=done):
            if op == "split":
                model, last_stage = _split(model, arg, floor), None
            elif op == "kmeans++":
                model = _kmeanspp_init(source, shards, arg, kmeans_frames, rng, floor)
                last_stage = None
            else:
                t0 = time.perf_counter()
                stats = stats_of(model)
                avg = stats.llk / stats.frames
                model = model.m_step(stats, variance_floor=floor, min_weight=min_weight)
                starved = stats.starved(min_weight)
                if len(starved) and model.n_components > 1:
                    model, pairs = _reseed(model, starved)
                    reseeded_all.extend({"iteration": len(reports) + 1, "component": int(k),
                                         "split_from": int(j)} for k, j in pairs)
                change = avg - previous if last_stage == arg and previous is not None else None
                report = IterationReport(arg, len(reports) + 1, model.n_components, avg, change,
                                         time.perf_counter() - t0, [int(k) for k in starved])
                previous, last_stage = avg, arg
                reports.append(report)
            resume.save(model, floor, {
                "done": i + 1, "reports": [dataclasses.asdict(r) for r in reports],
                "reseeded": reseeded_all, "previous": previous, "last_stage": last_stage})
            if progress and op == "em":
                progress(reports[-1])

    record = {
        "components": n_components, "iterations": n_iterations, "init": init,
        "split_iterations": split_iterations if init == "split" else None, "seed": seed,
        "subsample": subsample, "frames": frames, "utterances": source.count,
        "variance_floor": variance_floor, "min_weight": min_weight,
        "avg_llk_per_iteration": [r.avg_llk for r in reports],
        "reseeded": reseeded_all, "seconds": round(time.perf_counter() - started, 3),
        "library_version": __version__,
    }
    if state:
        record["resumed_after_iteration"] = len(state["reports"])
    meta = dict(metadata or {})
    meta["training"] = record
    return DiagGMM(model.weights, model.means, model.variances, metadata=meta)


def recorded_inputs(features, metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """``metadata`` with what ``features`` record: the feature config of an archive (or of
    archives of one config) and their paths. ParameterError if ``metadata`` names another
    feature config than the features'."""
    meta = dict(metadata or {})
    config = getattr(features, "config", None)
    if config is not None:
        from ..frontend.config import FeatureConfig

        given = meta.get("feature_config")
        if given is not None and FeatureConfig.from_dict(given) != config:
            raise ParameterError("metadata['feature_config'] differs from the feature config "
                                 "the features were extracted with; leave it out (it is "
                                 "recorded from the features)")
        meta["feature_config"] = config.to_dict()
    paths = [getattr(a, "path", None) for a in getattr(features, "archives", [features])]
    if "data" not in meta and paths and all(p is not None for p in paths):
        meta["data"] = [str(p) for p in paths]
    return meta


# --- the schedule of steps, and resuming it -----------------------------------------------

def _schedule(n_components: int, init: str, split_iterations: int,
              n_iterations: int) -> list[tuple[str, Any]]:
    """The training as a flat list of steps: ``("split", K)``, ``("kmeans++", K)`` or
    ``("em", stage)``; a checkpoint records how many are done."""
    ops: list[tuple[str, Any]] = []
    if init == "split":
        k = 1
        while k < n_components:
            k = min(2 * k, n_components)
            ops += [("split", k)] + [("em", "split")] * split_iterations
    else:
        ops.append(("kmeans++", n_components))
    return ops + [("em", "em")] * n_iterations


def _identity(source: "_Source", shards: list[list[int]]) -> str:
    """A digest of the utterances and of how they are grouped (their order and sizes)."""
    h = hashlib.sha256(json.dumps(shards).encode())
    if source.keys is not None:
        h.update("\n".join(map(str, source.keys)).encode())
    return h.hexdigest()


class _Checkpoint:
    """The resume file of one training run: written after every step, read once."""

    _FORMAT = "speakergmm.ubm-checkpoint"

    def __init__(self, path: str | os.PathLike | None, settings: dict):
        self.path, self.settings = path, settings

    def load(self) -> dict | None:
        """The saved state (with ``model`` and ``floor``), or None when there is no file,
        it cannot be read, or another run (other data or settings) wrote it."""
        if self.path is None or not os.path.isfile(self.path):
            return None
        try:
            arrays, header = read_npz(self.path, ("weights", "means", "variances", "floor"),
                                      format_name=self._FORMAT, format_version=1,
                                      what="UBM checkpoint")
            meta = header["metadata"]
            if meta.get("settings") != self.settings:
                return None
            state = dict(meta["state"])
            state["model"] = DiagGMM(arrays["weights"], arrays["means"], arrays["variances"])
            state["floor"] = arrays["floor"]
            return state
        except (ModelError, SpeakerGMMError, KeyError, TypeError, ValueError):
            return None

    def save(self, model: DiagGMM, floor: np.ndarray, state: dict) -> None:
        if self.path is not None:
            write_npz(self.path, {"weights": model.weights, "means": model.means,
                                  "variances": model.variances, "floor": floor},
                      format_name=self._FORMAT, format_version=1,
                      metadata={"settings": self.settings, "state": state})


# --- data sources and the statistics map ------------------------------------------------

class _Source:
    """Re-iterable access to the utterances by index, the same in every process (plain
    attributes, no closures: it is sent to spawned workers)."""

    def __init__(self, data, keys: list | None, subsample: int):
        self.data, self.keys, self.subsample = data, keys, subsample
        self.count = len(keys) if keys is not None else len(data)
        self._sized = keys is not None and hasattr(data, "num_frames")

    @classmethod
    def of(cls, features, subsample: int) -> "_Source":
        if isinstance(features, Mapping):
            return cls(features, list(features), subsample)
        if isinstance(features, np.ndarray) and features.ndim == 2:
            features = [features]  # one utterance given as a single (frames, D) array
        if not isinstance(features, (Sequence, np.ndarray)):
            if not isinstance(features, Iterable):
                raise ParameterError("features must be a mapping (e.g. a FeatureArchive) or an "
                                f"iterable of (frames, D) arrays, got {type(features).__name__}")
            features = list(features)
        return cls(features, None, subsample)

    def get(self, i: int) -> np.ndarray:
        return self.data[self.keys[i] if self.keys is not None else i]

    def size(self, i: int) -> int | None:
        """Frames of item ``i`` after subsampling, from an index without reading, or None."""
        if not self._sized:
            return None
        return -(-self.data.num_frames(self.keys[i]) // self.subsample)

    def frames_of(self, i: int) -> np.ndarray:
        x = np.asarray(self.get(i))
        if x.ndim != 2:
            raise FeatureError(f"features of item {i} have shape {x.shape}; expected (frames, D)")
        return x[:: self.subsample] if self.subsample > 1 else x

    def plan(self, shard_frames: int) -> tuple[list[list[int]], int, int]:
        """Group items into shards of about ``shard_frames`` frames; total frames; D."""
        if self.count == 0:
            raise SpeakerGMMError("no features to train on")
        shards, current, size, total, dim = [], [], 0, 0, None
        for i in range(self.count):
            if self._sized and dim is not None:
                n = self.size(i)
            else:
                x = self.frames_of(i)
                n = x.shape[0]
                if dim is None:
                    dim = x.shape[1]
                elif x.shape[1] != dim:
                    raise FeatureError(f"item {i} has dimension {x.shape[1]}, the first had {dim}")
            current.append(i)
            size += n
            total += n
            if size >= shard_frames:
                shards.append(current)
                current, size = [], 0
        if current:
            shards.append(current)
        return shards, total, dim


def _shard_stats(state: tuple[_Source, int | None], model: DiagGMM,
                 shard: list[int]) -> GMMStats:
    source, chunk_size = state
    # One E-step over the shard's frames together: its chunks then run on every thread
    # of this process (utterances are often shorter than one chunk).
    frames = np.concatenate([source.frames_of(i) for i in shard])
    return model.accumulate(frames, chunk_size=chunk_size)


# --- initialisation and re-seeding ------------------------------------------------------

def _split(model: DiagGMM, k_new: int, floor: np.ndarray) -> DiagGMM:
    """Split the ``k_new - K`` heaviest components in two (means ±0.2σ, weights halved)."""
    w, mu, var = model.weights.copy(), model.means.copy(), model.variances.copy()
    order = np.argsort(-w * var.sum(axis=1), kind="stable")[: k_new - len(w)]
    offset = _SPLIT_OFFSET * np.sqrt(var[order])
    w[order] /= 2
    new_mu = mu[order] - offset
    mu[order] += offset
    return DiagGMM(np.concatenate([w, w[order]]), np.concatenate([mu, new_mu]),
                   np.maximum(np.concatenate([var, var[order]]), floor))


def _reseed(model: DiagGMM, starved: np.ndarray) -> tuple[DiagGMM, list[tuple[int, int]]]:
    """Move each starved component onto half of the heaviest component at that moment."""
    w, mu, var = model.weights.copy(), model.means.copy(), model.variances.copy()
    pairs = []
    for k in starved:
        j = int(np.argmax(w))
        offset = _SPLIT_OFFSET * np.sqrt(var[j])
        total = w[j] + w[k]
        w[j] = w[k] = total / 2
        mu[k] = mu[j] - offset
        mu[j] = mu[j] + offset
        var[k] = var[j]
        pairs.append((int(k), j))
    return DiagGMM(w / w.sum(), mu, var), pairs


def _kmeanspp_init(source: _Source, shards, k: int, n_sample: int, rng: np.random.Generator,
                   floor: np.ndarray) -> DiagGMM:
    """k-means++ seeding and Lloyd iterations on a random frame subsample."""
    # frame counts from the archive index where there is one, not by reading every utterance
    total = sum(source.size(i) if source._sized else source.frames_of(i).shape[0]
                for s in shards for i in s)
    keep = min(n_sample, total)
    chosen = np.sort(rng.choice(total, size=keep, replace=False))
    sample, offset, pos = [], 0, 0
    for s in shards:
        for i in s:
            x = source.frames_of(i)
            hi = np.searchsorted(chosen, offset + x.shape[0])
            sample.append(x[chosen[pos:hi] - offset])
            pos, offset = hi, offset + x.shape[0]
    X = np.concatenate(sample).astype(np.float64)
    x2 = np.sum(X**2, axis=1)
    # Greedy k-means++ (as scikit-learn): of 2 + log k candidates drawn ∝ D², keep the one
    # that lowers the potential most. Plain k-means++ often seeds two centres in one cluster.
    trials = 2 + int(np.log(k))
    centres = np.empty((k, X.shape[1]))
    centres[0] = X[rng.integers(len(X))]
    d2 = np.maximum(x2 - 2 * X @ centres[0] + centres[0] @ centres[0], 0)
    for c in range(1, k):
        cum = np.cumsum(d2)
        if cum[-1] <= 0:  # fewer distinct frames than centres: repeat one
            centres[c:] = centres[0]
            break
        cand = np.searchsorted(cum, rng.uniform(0, cum[-1], trials))
        cand = np.minimum(cand, len(X) - 1)
        dc = np.maximum(x2[:, None] - 2 * X @ X[cand].T + x2[cand], 0)  # (M, trials)
        np.minimum(dc, d2[:, None], out=dc)
        best = int(np.argmin(dc.sum(axis=0)))
        centres[c] = X[cand[best]]
        d2 = dc[:, best]
    for _ in range(5):
        dist = x2[:, None] - 2 * X @ centres.T + np.sum(centres**2, axis=1)
        label = np.argmin(dist, axis=1)
        counts = np.bincount(label, minlength=k).astype(np.float64)
        sums = np.zeros_like(centres)
        np.add.at(sums, label, X)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    sq = np.zeros_like(centres)
    np.add.at(sq, label, X**2)
    counts = np.bincount(label, minlength=k).astype(np.float64)
    safe = np.maximum(counts, 1)[:, None]
    var = np.where(counts[:, None] > 1, sq / safe - centres**2, X.var(axis=0))
    weights = (counts + 1) / (counts.sum() + k)  # no empty cluster gets weight 0
    return DiagGMM(weights, centres, np.maximum(var, floor))
