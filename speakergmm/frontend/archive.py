"""Feature archives: the features of every utterance of a data directory, on disk.

Layout of an archive directory::

    config.json          the FeatureConfig the features were made with
    feats/part-*.npy     float32 arrays of shape (frames, D): the frames of consecutive
                         utterances stacked, one file per batch of utterances (a plain .npy:
                         numpy, or any tool that reads .npy, maps it without loading it)
    feats.index          index, Kaldi style with a row range: "<utt> feats/part-x.npy[0:412]"
                         (not feats.scp, Kaldi's name: archives that used it still read)
    utt2num_frames       frames kept per utterance (Kaldi's file of that name)
    utt2dur              audio duration per utterance, seconds
    utt2spk              speaker of each extracted utterance (from the data directory)
    failed               "<utt> <reason>" for every utterance that could not be extracted
    summary.json         counts, hours of audio, share of frames kept by VAD
    .journal             extraction log used to resume (one line per finished utterance)

With ``format="kaldi"`` (``speakergmm extract --format kaldi``) the parts are binary Kaldi
arks (``feats/part-*.ark``, each with its ``part-*.scp`` of offsets) and the index is
Kaldi's ``feats.scp`` (absolute paths, as Kaldi's make_mfcc.sh writes): the folder is a
Kaldi data directory that ``copy-feats scp:DIR/feats.scp`` and every speakergmm command read
(:class:`~speakergmm.frontend.kaldi.KaldiFeatures`, which finds config.json beside it).

Batches keep the file count low: creating a file costs more than computing the features of
a short utterance, and corpora of a million utterances would otherwise mean a million files.

Every file is written atomically (temporary file + rename), so a run killed at any moment
leaves only whole files; the next run skips the utterances whose features exist and are
logged, retries the failed ones, and removes the temporary files a killed run left.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import atomic_write, output_lock, write_text_atomic
from ..data.datadir import AudioRef, DataDir, read_data_dir, spk2utt
from ..errors import ArchiveError, ParameterError, SpeakerGMMError
from ..exec import Executor, get_executor
from .config import FeatureConfig
from .kaldi import ark_part_present, is_kaldi_source, write_ark_part, write_kaldi_index
from .parts import (
    JOURNAL,
    PartArchive,
    journal_entries,
    remove_stale_temporaries,
    remove_unreferenced_parts,
)

__all__ = ["ArchiveSet", "ArchiveUnion", "FeatureArchive", "ExtractSummary", "extract_archive",
           "read_features"]

_FEATS = "feats"
#: The archive's index: not ``feats.scp`` (Kaldi's index, which a Kaldi data directory holds:
#: archives of earlier versions used that name and are still read, with a note).
INDEX = "feats.index"
KALDI_INDEX = "feats.scp"
#: Where features are written: speakergmm's own archive, or Kaldi's ark/scp.
FORMATS = ("speakergmm", "kaldi")
# A part file is closed once it holds this many bytes of features (bounds worker memory).
_PART_BYTES = 64 << 20


@dataclass(frozen=True)
class ExtractSummary:
    """What an extraction run did (also written to ``summary.json``).

    ``extracted`` counts utterances computed in this run, ``skipped`` those found finished
    from an earlier run; ``hours``, ``frames`` and ``vad_kept`` cover every finished
    utterance.
    """

    utterances: int
    extracted: int
    skipped: int
    failed: dict[str, str]
    hours: float
    vad_kept: float
    frames: int
    seconds: float

    def __str__(self) -> str:
        lines = [
            f"utterances: {self.utterances} ({self.extracted} extracted, {self.skipped} already "
            f"done, {len(self.failed)} failed)",
            f"audio: {self.hours:.3f} h, {self.frames} frames kept "
            f"({100 * self.vad_kept:.1f}% of frames kept by VAD)",
            f"time: {self.seconds:.1f} s",
        ]
        for utt, reason in list(self.failed.items())[:10]:
            lines.append(f"failed: {utt}: {reason}")
        if len(self.failed) > 10:
            lines.append(f"failed: ... and {len(self.failed) - 10} more (see the 'failed' file)")
        return "\n".join(lines)


class FeatureArchive(PartArchive):
    """Read-only, lazy mapping from utterance id to its ``(frames, D)`` float32 features.

    Only the index is read on opening; an access memory-maps the part file that holds the
    utterance and copies its rows out.

    Attributes
    ----------
    path : Path
    config : FeatureConfig
    """

    _INDEX = INDEX
    _OLD_INDEX = KALDI_INDEX
    _WHAT = "feature archive"
    _HOLDS = "features"
    _MAKE = "speakergmm extract"

    def __init__(self, path: str | os.PathLike):
        super().__init__(path, "config.json")
        self.config = FeatureConfig.load(self.path / "config.json")

    def _check_part(self, path: Path, part: np.ndarray) -> None:
        if part.ndim != 2 or part.shape[1] != self.config.dim or part.dtype != np.float32:
            raise ArchiveError(f"{path}: holds {part.dtype} features of shape {part.shape}; "
                               f"expected (frames, {self.config.dim}) float32")

    def __getitem__(self, utt: str) -> np.ndarray:
        return self._rows(utt)

    def num_frames(self, utt: str) -> int:
        """Frames of ``utt`` without reading its features."""
        _, a, b = self._index[utt]
        return b - a

    def __repr__(self) -> str:
        return f"FeatureArchive({str(self.path)!r}, {len(self)} utterances, dim={self.config.dim})"


class ArchiveSet(Mapping):
    """Several feature archives made with one config, as one lazy mapping.

    Keys are ``(archive index, utterance id)``, so the same utterance id may appear in
    two archives.

    Raises
    ------
    ArchiveError
        If the archives were made with different feature configs.
    """

    def __init__(self, paths: Iterable):
        # paths, or archives opened already (Kaldi feature tables: speakergmm.sources)
        self.archives = [p if isinstance(p, Mapping) else FeatureArchive(p) for p in paths]
        if not self.archives:
            raise ArchiveError("no feature archive given")
        self.config = self.archives[0].config
        first = self.archives[0]
        for archive in self.archives[1:]:
            if archive.config != self.config or getattr(archive, "dim", None) != getattr(
                    first, "dim", None):
                raise ArchiveError(f"{archive.path} was extracted with another feature config "
                                   f"than {first.path}; use archives of one config")

    def __getitem__(self, key: tuple[int, str]) -> np.ndarray:
        return self.archives[key[0]][key[1]]

    def __iter__(self) -> Iterator[tuple[int, str]]:
        for i, archive in enumerate(self.archives):
            for utt in archive:
                yield i, utt

    def __len__(self) -> int:
        return sum(len(a) for a in self.archives)

    def num_frames(self, key: tuple[int, str]) -> int:
        archive = self.archives[key[0]]
        if hasattr(archive, "num_frames"):
            return archive.num_frames(key[1])
        return archive[key[1]].shape[0]


class ArchiveUnion(Mapping):
    """Several archives (or any utterance mappings) as one mapping by utterance id, for a
    run that reads utterances of several data sets (e.g. evaluation and calibration trials
    scored together).

    Raises
    ------
    ArchiveError
        An utterance in two of them, or feature configs that differ.
    """

    def __init__(self, members):
        self.members = list(members)
        if not self.members:
            raise ArchiveError("no archive given")
        self._where: dict[str, int] = {}
        for i, member in enumerate(self.members):
            for utt in member:
                if self._where.setdefault(utt, i) != i:
                    raise ArchiveError(f"utterance '{utt}' is in both "
                                       f"{_name(self.members[self._where[utt]])} and "
                                       f"{_name(member)}; give archives of distinct utterances")
        configs = {getattr(m, "config", None) for m in self.members} - {None}
        if len(configs) > 1:
            raise ArchiveError(f"{', '.join(_name(m) for m in self.members)} were made with "
                               "different feature configs; use archives of one config")
        self.config = next(iter(configs), None)
        self.path = Path(_name(self.members[0]))

    def __getitem__(self, utt: str):
        return self.members[self._where[utt]][utt]

    def __contains__(self, utt) -> bool:
        return utt in self._where

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    @property
    def utt2spk(self) -> dict[str, str]:
        """The members' speakers, merged."""
        return {u: s for m in self.members for u, s in m.utt2spk.items()}


def _name(mapping) -> str:
    return str(getattr(mapping, "path", type(mapping).__name__))


def read_features(path: str | os.PathLike) -> FeatureArchive:
    """Open a feature archive written by :func:`extract_archive` (``speakergmm extract``;
    in Kaldi's format, or any Kaldi feature table, with the extra ``[kaldi]``).

    Returns
    -------
    FeatureArchive or KaldiFeatures
        A lazy mapping ``utt -> np.ndarray [shape=(frames, D), dtype=float32]``.
    """
    if is_kaldi_source(path):
        from .kaldi import KaldiFeatures

        return KaldiFeatures(path)
    return FeatureArchive(path)


def extract_archive(
    data: DataDir | str | os.PathLike,
    feats_dir: str | os.PathLike,
    *,
    config: FeatureConfig | None = None,
    audio_root: str | os.PathLike | None = None,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
    executor: Executor | int | None = None,
    format: str = "speakergmm",
) -> ExtractSummary:
    """Extract the features of every utterance of a data directory into ``feats_dir``.

    Resumable: utterances finished by an earlier run (with the same config) are skipped.
    Utterances that fail (unreadable audio, no speech) are recorded in ``feats_dir/failed``
    and in the returned summary; the others are still written.

    Parameters
    ----------
    data : DataDir or path
        The data directory (``wav.scp``, ``utt2spk``, optional ``segments``).
    feats_dir : path
        Output directory, created if needed.
    config : FeatureConfig, optional
        Defaults to ``FeatureConfig()``; must equal the config of an existing archive.
    audio_root : path, optional
        Directory that relative ``wav.scp`` paths resolve against (default: the current
        directory, as in Kaldi).
    batch_size : int
        Utterances per task; a task's features go to one part file, and an interrupted
        run loses at most the tasks under way.
    progress : callable, optional
        Called with the number of utterances just finished (for a progress bar).
    executor : int, Executor or dask.distributed.Client, optional
        Where the batches run (:func:`speakergmm.exec.get_executor`): a number of local
        processes, an Executor, or a Dask client; default: this process.
    format : {"speakergmm", "kaldi"}
        Part files of ``.npy`` arrays indexed by ``feats.index``, or binary Kaldi arks
        indexed by a ``feats.scp`` that Kaldi's tools read; an existing archive must be
        of the same format.

    Returns
    -------
    ExtractSummary
    """
    if format not in FORMATS:
        raise ParameterError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    kaldi = format == "kaldi"
    started = time.perf_counter()
    data = data if isinstance(data, DataDir) else read_data_dir(data)
    config = config or FeatureConfig()
    out = Path(feats_dir)
    utts = data.utterances
    # every utterance located before anything is written: a data directory that cannot
    # be (an utterance without a recording or segment) leaves no output folder behind
    refs = {utt: data.audio_of(utt, audio_root) for utt in utts}
    with output_lock(out):
        _check_same_utterances(out, utts, data, kaldi)
        _prepare_dir(out, config)

        done = _finished(out, set(utts), kaldi)
        todo = [(utt, refs[utt]) for utt in utts if utt not in done]
        if progress and done:
            progress(len(done))
        failed: dict[str, str] = {}
        batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
        executor = get_executor(executor, n_items=len(batches))
        with open(out / JOURNAL, "a", encoding="utf-8") as journal:
            for results in _run(batches, out, config, kaldi, executor):
                for utt, result in results:
                    if isinstance(result, str):
                        failed[utt] = result
                    else:
                        done[utt] = result
                        # Its part file is already in place: once logged, the utterance is done.
                        journal.write(f"{utt} {' '.join(map(str, result))}\n")
                journal.flush()
                if progress:
                    progress(len(results))

        finished = sorted(done)
        if kaldi:
            write_kaldi_index(out / KALDI_INDEX, out / _FEATS, {u: done[u][0] for u in finished})
            # (Kaldi's data directories have both; its scripts read spk2utt)
            write_text_atomic(out / "spk2utt", "".join(
                f"{s} {' '.join(us)}\n" for s, us in spk2utt(data.utt2spk, done).items()))
        else:
            write_text_atomic(out / INDEX, "".join(
                f"{u} {_FEATS}/{done[u][0]}[{done[u][1]}:{done[u][2]}]\n" for u in finished))
        if not kaldi:
            (out / KALDI_INDEX).unlink(missing_ok=True)  # an earlier version's own index
        write_text_atomic(out / "utt2num_frames",
                          "".join(f"{u} {done[u][2] - done[u][1]}\n" for u in finished))
        write_text_atomic(out / "utt2dur", "".join(f"{u} {done[u][3]:.4f}\n" for u in finished))
        write_text_atomic(out / "failed", "".join(f"{u} {r}\n" for u, r in sorted(failed.items())))
        # The speakers travel with the features, as in a Kaldi data directory.
        write_text_atomic(out / "utt2spk", "".join(f"{u} {data.utt2spk[u]}\n" for u in finished))
        remove_unreferenced_parts(out / _FEATS, {done[u][0].split('.')[0] for u in finished})
        total = sum(done[u][4] for u in finished)
        kept = sum(done[u][2] - done[u][1] for u in finished)
        summary = ExtractSummary(
            utterances=len(utts), extracted=len(todo) - len(failed), skipped=len(utts) - len(todo),
            failed=dict(sorted(failed.items())), hours=sum(done[u][3] for u in finished) / 3600,
            vad_kept=kept / total if total else 0.0, frames=kept,
            seconds=time.perf_counter() - started)
        write_text_atomic(out / "summary.json", json.dumps(dataclasses.asdict(summary), indent=2))
        return summary


# --- internals ------------------------------------------------------------------------

# A finished utterance: (part file name, first row, end row, seconds of audio, frames
# before VAD).
_Done = tuple[str, int, int, float, int]


def _prepare_dir(out: Path, config: FeatureConfig) -> None:
    """Create the archive directory, or check an existing one was made with ``config``."""
    (out / _FEATS).mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.json"
    if cfg_path.is_file():
        old = FeatureConfig.load(cfg_path)
        if old != config:
            new = config.to_dict()
            diff = ", ".join(f"{k}: {v!r} -> {new[k]!r}"
                             for k, v in old.to_dict().items() if new[k] != v)
            raise ArchiveError(f"{out}: archive was extracted with another feature config "
                               f"({diff}); use a new output directory or remove this one")
    else:
        write_text_atomic(cfg_path, config.to_json() + "\n")
    remove_stale_temporaries(out / _FEATS)


def _check_same_utterances(out: Path, utts, data: DataDir, kaldi: bool) -> None:
    """An archive written before into ``out`` is of the same format and holds only
    utterances of ``data``: one of another data directory would lose its utterances
    silently (its index is rewritten with this data directory's)."""
    index = next((out / name for name in (INDEX, KALDI_INDEX) if (out / name).is_file()), None)
    if index is None:
        return
    if kaldi != is_kaldi_source(out):
        have, want = ("Kaldi", "speakergmm") if is_kaldi_source(out) else ("speakergmm", "Kaldi")
        raise ArchiveError(f"{out}: holds features in {have}'s format, not {want}'s; write "
                           "elsewhere, or give the format it was written in")
    from ..data.textmap import read_ids

    wanted = set(utts)
    foreign = [u for u in read_ids(index) if u not in wanted]
    if foreign:
        source = data.path if data.path is not None else "the data directory"
        raise ArchiveError(f"{out}: holds {len(foreign)} utterance(s) that {source} does not "
                           f"list (e.g. '{foreign[0]}'): it is another data directory's "
                           "archive, and extracting into it would drop them; write elsewhere, "
                           "or remove it first")


def _finished(out: Path, wanted: set[str], kaldi: bool) -> dict[str, _Done]:
    """Utterances an earlier run finished: logged in the journal, part file (of this
    format) on disk."""
    def present(name: str) -> bool:
        if kaldi:
            return ark_part_present(out / _FEATS, name)
        return name.endswith(".npy") and (out / _FEATS / name).is_file()

    done = {}
    for utt, f in journal_entries(out, wanted, 6, present).items():
        done[utt] = (f[0], int(f[1]), int(f[2]), float(f[3]), int(f[4]))
    return done


def _extract_batch(batch: list[tuple[str, AudioRef]], out: Path, config: FeatureConfig,
                   kaldi: bool):
    """Worker: features of a batch of utterances, written to part files.

    Returns ``(utt, _Done)`` for each utterance done and ``(utt, reason)`` for each failure.
    """
    from .audio import AudioBlocks
    from .features import features_from_blocks

    results: list = []
    pending: list[tuple[str, np.ndarray, float, int]] = []
    size = 0

    def flush() -> None:
        nonlocal pending, size
        if not pending:
            return
        if kaldi:
            name = write_ark_part(out / _FEATS, [(p[0], p[1]) for p in pending])
        else:
            name = f"part-{uuid.uuid4().hex[:16]}.npy"
            with atomic_write(out / _FEATS / name, "wb") as fh:
                # (one long recording is saved as it is, not copied)
                np.save(fh, pending[0][1] if len(pending) == 1 else
                        np.concatenate([p[1] for p in pending]), allow_pickle=False)
        row = 0
        for utt, feats, seconds, total in pending:
            results.append((utt, (name, row, row + len(feats), round(seconds, 4), total)))
            row += len(feats)
        pending, size = [], 0

    for utt, ref in batch:
        try:
            # decoded, resampled and framed in blocks: a long recording is never held whole
            audio = AudioBlocks(ref.path_or_command, sr=config.sample_rate, offset=ref.start,
                                duration=ref.duration, pipe=ref.is_pipe)
            with audio:
                feats, speech, samples = features_from_blocks(audio, config=config, name=utt)
        except SpeakerGMMError as exc:
            results.append((utt, _one_line(str(exc))))
            continue
        except Exception as exc:  # a bug or an unforeseen input: recorded, never dropped
            results.append((utt, _one_line(f"{type(exc).__name__}: {exc}")))
            continue
        pending.append((utt, feats, samples / config.sample_rate, int(speech.size)))
        size += feats.nbytes
        if size >= _PART_BYTES:
            flush()
    flush()
    return results


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _extract_task(state: tuple[Path, FeatureConfig, bool], batch) -> list:
    return _extract_batch(batch, *state)


def _run(batches: list, out: Path, config: FeatureConfig, kaldi: bool,
         executor: Executor) -> Iterable:
    if not batches:
        return
    from .features import extract_features

    if executor.n_workers > 1:
        # Import librosa and build the filterbank before forking, so that forked workers
        # inherit them instead of each paying the ~2 s of imports and set-up again.
        with contextlib.suppress(SpeakerGMMError):
            extract_features(y=np.full(config.sample_rate, 0.1, np.float32),
                             sr=config.sample_rate, config=config)
    # One BLAS thread: the per-utterance matrix products are small, and two threads on
    # them run 5x slower than one.
    with executor.start((out, config, kaldi), blas_threads=1) as session:
        yield from session.map(_extract_task, batches)
