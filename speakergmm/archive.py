"""Feature archives: the features of every utterance of a data directory, on disk.

Layout of an archive directory::

    config.json        the FeatureConfig the features were made with
    feats/<utt>.npy    one (frames, D) float32 array per utterance (plain .npy: any tool
                       reads it, np.load(..., mmap_mode="r") maps it)
    feats.scp          index, Kaldi style: "<utt> feats/<utt>.npy", sorted
    utt2num_frames     frames kept per utterance (Kaldi's file of that name)
    utt2dur            audio duration per utterance, seconds
    failed             "<utt> <reason>" for every utterance that could not be extracted
    summary.json       counts, hours of audio, share of frames kept by VAD
    .journal           extraction log used to resume (one line per finished utterance)

Every file is written atomically (temporary file + rename), so a run killed at any moment
leaves only whole files; the next run skips the utterances whose features exist and are
logged, retries the failed ones, and removes the temporary files a killed run left.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._io import atomic_write, write_text_atomic
from .audio import load, load_pipe
from .datadir import AudioRef, DataDir, read_data_dir
from .errors import ArchiveError, SpeakerGMMError
from .features import FeatureConfig, extract_features

__all__ = ["FeatureArchive", "ExtractSummary", "extract_archive", "read_features"]

_FEATS = "feats"
_JOURNAL = ".journal"


@dataclass(frozen=True)
class ExtractSummary:
    """What an extraction run did (also written to ``summary.json``).

    ``extracted`` counts utterances computed in this run, ``skipped`` those found finished
    from an earlier run; ``hours`` and ``vad_kept`` cover every finished utterance.
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
            f"time: {self.seconds:.1f} s"
            + (f" ({self.hours * 3600 / self.seconds:.0f}x real time)"
               if self.extracted and self.seconds > 0 else ""),
        ]
        for utt, reason in list(self.failed.items())[:10]:
            lines.append(f"failed: {utt}: {reason}")
        if len(self.failed) > 10:
            lines.append(f"failed: ... and {len(self.failed) - 10} more (see the 'failed' file)")
        return "\n".join(lines)


class FeatureArchive(Mapping):
    """Read-only, lazy mapping from utterance id to its ``(frames, D)`` float32 features.

    Only the index is read on opening; each access loads one ``.npy`` file.

    Attributes
    ----------
    path : Path
    config : FeatureConfig
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        index = self.path / "feats.scp"
        if not (self.path / "config.json").is_file():
            raise ArchiveError(f"{self.path}: not a feature archive (no config.json); "
                               "create one with 'speakergmm extract'")
        if not index.is_file():
            raise ArchiveError(f"{self.path}: incomplete feature archive (no feats.scp: the "
                               "extraction did not finish); re-run 'speakergmm extract' to "
                               "complete it")
        self.config = FeatureConfig.load(self.path / "config.json")
        self._files = _read_pairs(index)
        counts = self.path / "utt2num_frames"
        self._frames = ({u: int(n) for u, n in _read_pairs(counts).items()}
                        if counts.is_file() else None)

    def __getitem__(self, utt: str) -> np.ndarray:
        try:
            rel = self._files[utt]
        except KeyError:
            raise KeyError(utt) from None
        path = self.path / rel
        try:
            feats = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ArchiveError(f"{path}: cannot read features of '{utt}' ({exc})") from None
        if feats.ndim != 2 or feats.shape[1] != self.config.dim or feats.dtype != np.float32:
            raise ArchiveError(f"{path}: features of '{utt}' have shape {feats.shape} and dtype "
                               f"{feats.dtype}; expected (frames, {self.config.dim}) float32")
        return feats

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def num_frames(self, utt: str) -> int:
        """Frames of ``utt`` without loading its features."""
        if self._frames is not None and utt in self._frames:
            return self._frames[utt]
        return int(np.load(self.path / self._files[utt], mmap_mode="r").shape[0])

    def __repr__(self) -> str:
        return f"FeatureArchive({str(self.path)!r}, {len(self)} utterances, dim={self.config.dim})"


def read_features(path: str | os.PathLike) -> FeatureArchive:
    """Open a feature archive written by :func:`extract_archive` (``speakergmm extract``).

    Returns
    -------
    FeatureArchive
        A lazy mapping ``utt -> np.ndarray [shape=(frames, D), dtype=float32]``.
    """
    return FeatureArchive(path)


def extract_archive(
    data: DataDir | str | os.PathLike,
    feats_dir: str | os.PathLike,
    *,
    config: FeatureConfig | None = None,
    audio_root: str | os.PathLike | None = None,
    jobs: int = 1,
    progress: Callable[[int], None] | None = None,
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
    jobs : int
        Worker processes.
    progress : callable, optional
        Called with the number of utterances just finished (for a progress bar).

    Returns
    -------
    ExtractSummary
    """
    started = time.perf_counter()
    data = data if isinstance(data, DataDir) else read_data_dir(data)
    config = config or FeatureConfig()
    out = Path(feats_dir)
    _prepare_dir(out, config)

    utts = data.utterances
    done = _finished(out, set(utts))
    todo = [(utt, data.audio_of(utt, audio_root)) for utt in utts if utt not in done]
    if progress and done:
        progress(len(done))
    failed: dict[str, str] = {}
    with open(out / _JOURNAL, "a", encoding="utf-8") as journal:
        for utt, result in _run(todo, out, config, jobs):
            if isinstance(result, str):
                failed[utt] = result
            else:
                done[utt] = result
                # The features file is already in place: log it, then it counts as done.
                journal.write(f"{utt} {result[0]:.4f} {result[1]} {result[2]}\n")
                journal.flush()
            if progress:
                progress(1)

    finished = sorted(done)
    write_text_atomic(out / "feats.scp", "".join(f"{u} {_FEATS}/{u}.npy\n" for u in finished))
    write_text_atomic(out / "utt2num_frames", "".join(f"{u} {done[u][2]}\n" for u in finished))
    write_text_atomic(out / "utt2dur", "".join(f"{u} {done[u][0]:.4f}\n" for u in finished))
    write_text_atomic(out / "failed", "".join(f"{u} {r}\n" for u, r in sorted(failed.items())))
    total = sum(done[u][1] for u in finished)
    kept = sum(done[u][2] for u in finished)
    summary = ExtractSummary(
        utterances=len(utts), extracted=len(todo) - len(failed), skipped=len(utts) - len(todo),
        failed=dict(sorted(failed.items())), hours=sum(done[u][0] for u in finished) / 3600,
        vad_kept=kept / total if total else 0.0, frames=kept,
        seconds=time.perf_counter() - started)
    write_text_atomic(out / "summary.json", json.dumps(dataclasses.asdict(summary), indent=2))
    return summary


# --- internals ------------------------------------------------------------------------

def _read_pairs(path: Path) -> dict[str, str]:
    pairs = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            key, _, value = line.strip().partition(" ")
            if key:
                pairs[key] = value.strip()
    return pairs


def _prepare_dir(out: Path, config: FeatureConfig) -> None:
    """Create the archive directory, or check an existing one was made with ``config``."""
    (out / _FEATS).mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.json"
    if cfg_path.is_file():
        old = FeatureConfig.load(cfg_path)
        if old != config:
            diff = ", ".join(f"{k}: {v!r} -> {config.to_dict()[k]!r}"
                             for k, v in old.to_dict().items() if config.to_dict()[k] != v)
            raise ArchiveError(f"{out}: archive was extracted with another feature config "
                               f"({diff}); use a new output directory or remove this one")
    else:
        write_text_atomic(cfg_path, config.to_json() + "\n")
    # Temporary files of a killed run: never read, removed here.
    for stale in (out / _FEATS).glob(".*.tmp"):
        stale.unlink(missing_ok=True)


def _finished(out: Path, wanted: set[str]) -> dict[str, tuple[float, int, int]]:
    """Utterances an earlier run finished: logged in the journal and with features on disk."""
    done: dict[str, tuple[float, int, int]] = {}
    journal = out / _JOURNAL
    if not journal.is_file():
        return done
    with open(journal, encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) != 4 or parts[0] not in wanted:
                continue  # a line cut by a crash, or an utterance no longer in the data dir
            try:
                done[parts[0]] = (float(parts[1]), int(parts[2]), int(parts[3]))
            except ValueError:
                continue
    present = {p.name[:-4] for p in (out / _FEATS).iterdir() if p.name.endswith(".npy")}
    return {u: v for u, v in done.items() if u in present}


def _extract_one(job: tuple[str, AudioRef], out: Path, config: FeatureConfig):
    """Worker: features of one utterance written to disk; (duration, frames, kept) or a reason."""
    utt, ref = job
    try:
        reader = load_pipe if ref.is_pipe else load
        y, sr = reader(ref.path_or_command, sr=config.sample_rate, offset=ref.start,
                       duration=ref.duration)
        feats, speech = extract_features(y=y, sr=sr, config=config, name=utt, return_vad=True)
        with atomic_write(out / _FEATS / f"{utt}.npy", "wb") as fh:
            np.save(fh, feats, allow_pickle=False)
    except SpeakerGMMError as exc:
        return utt, _one_line(str(exc))
    except Exception as exc:  # a bug or an unforeseen input: recorded, never silently dropped
        return utt, _one_line(f"{type(exc).__name__}: {exc}")
    return utt, (len(y) / sr, int(speech.size), int(feats.shape[0]))


def _one_line(text: str) -> str:
    return " ".join(text.split())


_worker_state: tuple[Path, FeatureConfig] | None = None


def _worker_init(out: Path, config: FeatureConfig) -> None:
    global _worker_state
    _worker_state = (out, config)
    _single_thread_blas()


def _worker_run(job):
    return _extract_one(job, *_worker_state)


def _single_thread_blas():
    """Keep BLAS to one thread: the per-utterance matrix products are small, and two
    threads on them run 5x slower than one; processes give the parallelism."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _run(todo: list, out: Path, config: FeatureConfig, jobs: int) -> Iterable:
    if not todo:
        return
    if jobs <= 1 or len(todo) < 2:
        with _single_thread_blas():
            for job in todo:
                yield _extract_one(job, out, config)
        return
    # Import librosa and build the filterbank before forking, so that the workers inherit
    # them instead of each paying the ~2 s of imports and set-up again.
    extract_features(y=np.zeros(config.sample_rate, np.float32) + 0.1, sr=config.sample_rate,
                     config=dataclasses.replace(config, vad="none"))
    ctx = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    chunk = max(1, min(32, len(todo) // (8 * jobs)))
    pool = ctx.Pool(jobs, initializer=_worker_init, initargs=(out, config))
    try:
        yield from pool.imap_unordered(_worker_run, todo, chunksize=chunk)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
