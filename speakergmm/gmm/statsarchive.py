"""Statistics archives: each utterance's Baum-Welch statistics under one UBM, on disk.

Statistics are the hinge of the toolkit (ARCHITECTURE.md): enrollment, cohort models and
eigenchannel training read nothing else. An archive computes them once per utterance per
UBM (and channel compensation), as SIDEKIT's StatServer and Kaldi's stages do, instead of
every command accumulating them again from the frames.

Layout of an archive directory (the feature archive's, with statistics for frames)::

    stats.json           UBM and channel fingerprints, K, D, orders, feature config, and
                         the feature archive the statistics came from
    stats/part-*.n.npy   float32 (B, K): zeroth order of B consecutive utterances
    stats/part-*.f.npy   float32 (B, K, D): first order
    stats/part-*.s.npy   float32 (B, K, D): second order (only with ``second_order``)
    stats/part-*.info.npy  float64 (B, 2): frames and total log-likelihood
    stats.scp            index: "<utt> stats/part-x[row:row+1]"
    utt2num_frames, utt2spk
    .journal             log of finished utterances (resume)

Statistics are summed in float64 and stored in float32, as SIDEKIT stores them: they are
float32-accurate to begin with (the E-step runs in float32), and half the size matters at
(utterances × K × D). Every file is written atomically; a killed run leaves only whole
files, and the next run skips the utterances already logged.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from .._io import output_lock, write_text_atomic
from ..errors import ArchiveError, ModelError, ParameterError
from ..exec import Executor
from ..frontend.parts import (
    PartArchive,
    prepare_dir,
    remove_unreferenced_parts,
    write_part,
    write_parts,
)
from .mixture import DiagGMM, check_feature_config
from .stats import GMMStats

__all__ = ["StatsArchive", "read_stats", "extract_stats", "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "speakergmm.stats"
FORMAT_VERSION = 1
_STATS = "stats"
_HEADER = "stats.json"
_INDEX = "stats.scp"


#: The advice for statistics of a compensation given to a command that takes none
#: (train-channel, train-ivector, extract-ivectors learn or model the sessions themselves).
UNCOMPENSATED = "compute them without --channel ('speakergmm stats' with the UBM alone)"


class StatsArchive(PartArchive):
    """Read-only, lazy mapping from utterance id to its :class:`GMMStats` (float64 copies
    of the stored float32 statistics).

    Attributes
    ----------
    path : Path
    header : dict
        ``stats.json``: ``ubm_fingerprint``, ``channel_fingerprint`` (None without
        compensation), ``components``, ``dim``, ``second_order``, ``feature_config``,
        ``features`` (the feature archive's path).
    """

    _INDEX = _INDEX
    _WHAT = "statistics archive"
    _HOLDS = "statistics"
    _MAKE = "speakergmm stats"

    def __init__(self, path: str | os.PathLike):
        super().__init__(path, _HEADER)
        self.header = self._json_header(_HEADER, FORMAT_NAME, FORMAT_VERSION)
        self.K, self.D = int(self.header["components"]), int(self.header["dim"])
        self.second_order = bool(self.header["second_order"])

    @property
    def config(self):
        """The feature config of the features the statistics were computed from (their
        UBM's), or None where it records none (statistics of plain arrays): never a
        default."""
        from ..frontend.config import FeatureConfig

        recorded = self.header.get("feature_config")
        return None if recorded is None else FeatureConfig.from_dict(recorded)

    @property
    def ubm_fingerprint(self) -> str:
        return self.header["ubm_fingerprint"]

    @property
    def channel_fingerprint(self) -> str | None:
        return self.header.get("channel_fingerprint")

    def _check_part(self, path: Path, part: np.ndarray) -> None:
        name = path.name.split(".")[-2]
        shape = {"n": (self.K,), "f": (self.K, self.D), "s": (self.K, self.D), "info": (2,)}
        if part.ndim < 1 or part.shape[1:] != shape[name]:
            raise ArchiveError(f"{path}: holds an array of shape {part.shape}; expected "
                               f"(utterances, {', '.join(map(str, shape[name]))}); the "
                               f"archive is damaged, recompute it")

    def __getitem__(self, utt: str) -> GMMStats:
        n, f = self._rows(utt, ".n.npy")[0], self._rows(utt, ".f.npy")[0]
        frames, llk = self._rows(utt, ".info.npy")[0]
        # without second order, s is the zero it contributes to nothing but variance MAP
        s = self._rows(utt, ".s.npy")[0] if self.second_order else np.zeros_like(f)
        return GMMStats(n, f, s, float(llk), int(frames))

    def first_order(self, utts) -> tuple[np.ndarray, np.ndarray]:
        """Zeroth and first order of several utterances as stored: ``n`` (h, K) and ``f``
        (h, K, D), float32, without the float64 copies of :meth:`__getitem__` (what a
        reader streaming the whole archive wants)."""
        utts = list(utts)
        n = np.empty((len(utts), self.K), np.float32)
        f = np.empty((len(utts), self.K, self.D), np.float32)
        for i, utt in enumerate(utts):
            n[i], f[i] = self._rows(utt, ".n.npy")[0], self._rows(utt, ".f.npy")[0]
        return n, f

    def frames(self, utt: str) -> int:
        """Frames of ``utt`` (read from its part's info)."""
        return int(self._rows(utt, ".info.npy")[0, 0])

    def check(self, ubm: DiagGMM, channel=None, *, fix: str | None = None) -> "StatsArchive":
        """ModelError unless the statistics were computed under ``ubm`` and with ``channel``
        (an :class:`~speakergmm.gmm.EigenChannel`, or None for none); returns self.
        ``fix`` replaces the advice given for statistics of another compensation (for a
        caller that takes no --channel)."""
        if self.ubm_fingerprint != ubm.fingerprint():
            raise ModelError(f"{self.path}: statistics of UBM {self.ubm_fingerprint}, but the "
                             f"UBM given is {ubm.fingerprint()}; recompute them with this UBM "
                             f"('{self._MAKE} ... --ubm')")
        want = None if channel is None else channel.fingerprint()
        if self.channel_fingerprint != want:
            have = self.channel_fingerprint or "no channel compensation"
            raise ModelError(f"{self.path}: statistics computed with {have}, but "
                             f"{want or 'no channel compensation'} is asked for; " + (
                                 fix or "recompute them with the same --channel, or give "
                                        "the same --channel"))
        return self

    def __repr__(self) -> str:
        return (f"StatsArchive({str(self.path)!r}, {len(self)} utterances, K={self.K}, "
                f"D={self.D}, ubm={self.ubm_fingerprint})")


def read_stats(path: str | os.PathLike) -> StatsArchive:
    """Open a statistics archive written by :func:`extract_stats` (``speakergmm stats``)."""
    return StatsArchive(path)


def extract_stats(ubm: DiagGMM, features: Mapping[str, np.ndarray], out: str | os.PathLike,
                  *, channel=None, second_order: bool = False, utterances=None,
                  groups: Mapping[str, Sequence[str]] | None = None, batch_size: int = 64,
                  executor: Executor | int | None = None,
                  progress: Callable[[int], None] | None = None) -> StatsArchive:
    """Compute and store the statistics of every utterance of ``features`` under ``ubm``.

    Resumable: utterances an earlier run into the same directory (same UBM, channel and
    orders) finished are skipped.

    Parameters
    ----------
    ubm : DiagGMM
    features : FeatureArchive (or mapping utt -> (frames, D) array)
        Checked against the UBM's feature config.
    out : path
        The archive directory, created if needed.
    channel : EigenChannel, optional
        Compensate each utterance's frames first (the statistics are then tied to it).
    second_order : bool
        Keep the second-order statistics too (needed to MAP-adapt variances).
    utterances : iterable of str, optional
        A subset of ``features`` (default: all).
    groups : mapping id -> utterance ids, optional
        Store one entry per group instead of one per utterance: the sum of its utterances'
        statistics (what MAP adaptation of a model enrolled on them reads; SIDEKIT's
        ``sum_stat_per_model``). ``features`` may then also be a statistics archive of the
        utterances, whose statistics are summed as stored. Not with ``utterances``.
    batch_size : int
        Utterances per part file and per task.
    executor : int, Executor or dask.distributed.Client, optional
        Where the work runs (:func:`speakergmm.exec.get_executor`).
    progress : callable, optional
        Called with the number of utterances just finished.

    Returns
    -------
    StatsArchive

    Raises
    ------
    ArchiveError
        ``out`` holds an archive made with another UBM, channel or orders; features made
        with another config than the UBM's.
    """
    check_feature_config(ubm, features)
    if groups is not None and utterances is not None:
        raise ParameterError("give utterances or groups, not both")
    if channel is not None and channel.ubm.fingerprint() != ubm.fingerprint():
        raise ModelError("the eigenchannel was trained with another UBM; train it again with "
                         "this UBM (speakergmm train-channel)")
    out = Path(out)
    header = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
              "ubm_fingerprint": ubm.fingerprint(),
              "channel_fingerprint": None if channel is None else channel.fingerprint(),
              "components": ubm.n_components, "dim": ubm.dim, "second_order": second_order,
              "feature_config": ubm.metadata.get("feature_config"),
              "features": str(Path(features.path).resolve()) if hasattr(features, "path")
              else None,
              "groups": None if groups is None else _digest(groups)}
    with output_lock(out):
        prepare_dir(out, _STATS, _HEADER, header, what="statistics",
                    keys=("format", "format_version", "ubm_fingerprint", "channel_fingerprint",
                          "second_order", "groups"))
        if groups is None:
            groups = {u: (u,) for u in (features if utterances is None else utterances)}
            missing = [u for u in groups if u not in features]
            if missing:
                raise ArchiveError(f"no features for utterance '{missing[0]}' ({len(missing)} "
                                   "missing); was it extracted?")
        else:
            if isinstance(features, StatsArchive):
                features.check(ubm, channel)
                if second_order and not features.second_order:
                    raise ArchiveError(f"{features.path}: no second-order statistics to sum; "
                                       "compute them with 'speakergmm stats --second-order'")
            groups = {g: tuple(us) for g, us in groups.items()}
            for g, us in groups.items():
                missing = [u for u in us if u not in features]
                if missing or not us:
                    raise ArchiveError(f"'{g}': no features for its utterance '{missing[0]}' "
                                       f"({len(missing)} missing); was it extracted?" if missing
                                       else f"'{g}' has no utterances")
        utts = sorted(groups)
        done = write_parts(out, _STATS, utts, _stats_batch,
                           (ubm, features, channel, second_order, out / _STATS, groups),
                           arrays=_arrays(second_order), n_extra=2, batch_size=batch_size,
                           executor=executor, progress=progress)
        write_text_atomic(out / _INDEX, "".join(
            f"{u} {_STATS}/{done[u][0]}[{done[u][1]}:{done[u][1] + 1}]\n" for u in utts))
        archive = StatsArchive(out)
        write_text_atomic(out / "utt2num_frames", "".join(f"{u} {archive.frames(u)}\n"
                                                          for u in utts))
        utt2spk = getattr(features, "utt2spk", None) if header["groups"] is None else None
        if utt2spk is not None:
            write_text_atomic(out / "utt2spk", "".join(f"{u} {utt2spk[u]}\n" for u in utts
                                                       if u in utt2spk))
        remove_unreferenced_parts(out / _STATS, {done[u][0] for u in utts})
        return archive


def _arrays(second_order: bool) -> tuple[str, ...]:
    return ("n", "f", "s", "info") if second_order else ("n", "f", "info")


def _digest(groups: Mapping[str, Sequence[str]]) -> str:
    """A fingerprint of the groups an archive sums (so that a resumed run sums the same)."""
    text = json.dumps(sorted((g, list(us)) for g, us in groups.items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _stats_batch(state, batch: list[str]) -> list[tuple[str, str, int, int, float]]:
    """Worker: the statistics of a batch of utterances (or groups), written as one part."""
    ubm, features, channel, second_order, parts, groups = state
    K, D = ubm.n_components, ubm.dim
    arrays = {"n": np.empty((len(batch), K), np.float32),
              "f": np.empty((len(batch), K, D), np.float32),
              "info": np.empty((len(batch), 2), np.float64)}
    if second_order:
        arrays["s"] = np.empty((len(batch), K, D), np.float32)
    for row, utt in enumerate(batch):
        stats = GMMStats.zeros(K, D)
        for u in groups[utt]:  # summed as SpeakerModel.enroll sums, in float64
            X = features[u]
            if not isinstance(X, GMMStats):
                X = ubm.accumulate(X if channel is None else channel.compensate(X))
            stats = stats + X
        arrays["n"][row], arrays["f"][row] = stats.n, stats.f
        arrays["info"][row] = (stats.frames, stats.llk)
        if second_order:
            arrays["s"][row] = stats.s
    name = write_part(parts, arrays)
    return [(utt, name, row, int(arrays["info"][row, 0]), float(arrays["info"][row, 1]))
            for row, utt in enumerate(batch)]
