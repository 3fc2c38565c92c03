"""Archives of part files: the on-disk machinery that feature archives and statistics
archives share.

An archive is a directory of part files (``.npy`` arrays of consecutive utterances, memory-
mapped on access), an index (``<utt> <part>[<first>:<end>]`` lines), and a journal
(``.journal``) that a resumable writer appends one line to per finished utterance, after
the utterance's part is in place. Everything is written atomically, so a run killed at any
moment leaves whole files only: the next run keeps what the journal and the disk agree on,
and removes the rest.
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write, write_text_atomic
from ..data.textmap import read_kaldi_map
from ..errors import ArchiveError, SpeakerGMMWarning
from ..exec import Executor, get_executor

__all__ = ["PartArchive", "journal_entries", "remove_unreferenced_parts",
           "remove_stale_temporaries", "prepare_dir", "write_part", "write_parts", "JOURNAL"]

JOURNAL = ".journal"

# Part files a reader keeps mapped. The pages it has read count in its resident memory while
# mapped, so this bounds that memory (a few parts' size, whatever the archive's), not only
# the open file handles; mapping a part again costs ~0.1 ms, against milliseconds of work
# on each utterance read from it.
_OPEN_PARTS = 4


class PartArchive(Mapping):
    """Read-only, lazy mapping from utterance id to rows of memory-mapped part files: the
    shared reader of feature archives and statistics archives.

    The index (``<utt> <part>[<first>:<end>]`` lines) is read on opening; an access maps
    the part file that holds the utterance (the last few kept open) and copies its rows out.
    """

    #: index file, and how the archive is named and made (for messages)
    _INDEX = ""
    #: the index's name in archives written by earlier versions (read, with a note)
    _OLD_INDEX: str | None = None
    _WHAT = "archive"
    _HOLDS = "data"
    _MAKE = ""

    def __init__(self, path: str | os.PathLike, header: str):
        self.path = Path(path)
        index = self.path / self._INDEX
        if not (self.path / header).is_file():
            raise ArchiveError(f"{self.path}: not a {self._WHAT} (no {header}); create one "
                               f"with '{self._MAKE}'")
        if not index.is_file() and self._OLD_INDEX and (self.path / self._OLD_INDEX).is_file():
            index = self.path / self._OLD_INDEX
            warnings.warn(f"{self.path}: a {self._WHAT} of an earlier speakergmm, indexed by "
                          f"{self._OLD_INDEX} (the name of Kaldi's own index); it is read as "
                          f"it is: rename that file {self._INDEX}, or run '{self._MAKE}' "
                          "again into it, to bring it up to date", SpeakerGMMWarning,
                          stacklevel=3)
        if not index.is_file():
            raise ArchiveError(f"{self.path}: incomplete {self._WHAT} (no {self._INDEX}: the "
                               f"run did not finish); re-run '{self._MAKE}' to complete it")
        self._index: dict[str, tuple[str, int, int]] = {}
        for utt, entry in read_kaldi_map(index).items():
            try:
                rel, rows = entry.rstrip("]").split("[")
                a, b = rows.split(":")
                self._index[utt] = (rel, int(a), int(b))
            except ValueError:
                raise ArchiveError(f"{index}: malformed entry for '{utt}': {entry!r}") from None
        self._parts: dict[str, np.ndarray] = {}

    def _json_header(self, name: str, format_name: str, version: int) -> dict:
        """The archive's JSON header ``name``, checked to be of ``format_name`` and
        ``version``; ArchiveError naming the fix otherwise."""
        path = self.path / name
        try:
            header = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ArchiveError(f"{path}: unreadable ({exc})") from None
        if not isinstance(header, dict) or header.get("format") != format_name or \
                header.get("format_version") != version:
            raise ArchiveError(f"{path}: not a speakergmm {self._WHAT} of format version "
                               f"{version}; make it again with '{self._MAKE}'")
        return header

    def __getstate__(self) -> dict:
        # Sent to worker processes: the open memory maps would travel as whole arrays.
        return {**self.__dict__, "_parts": {}}

    def release(self) -> None:
        """Close the part files mapped so far. Their pages count in the process's resident
        memory while mapped: a reader streaming the whole archive calls this between
        blocks, so that what it holds stays bounded by the block."""
        self._parts.clear()

    def _check_part(self, path: Path, part: np.ndarray) -> None:
        """ArchiveError if a part file's array is not what this archive holds."""

    def _part(self, rel: str) -> np.ndarray:
        part = self._parts.get(rel)
        if part is None:
            path = self.path / rel
            try:
                part = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise ArchiveError(f"{path}: cannot read {self._HOLDS} ({exc})") from None
            self._check_part(path, part)
            if len(self._parts) >= _OPEN_PARTS:
                self._parts.pop(next(iter(self._parts)))
            self._parts[rel] = part
        return part

    def _rows(self, utt: str, suffix: str = "") -> np.ndarray:
        """A copy of the rows of ``utt`` in the part file (``suffix`` appended to its name)."""
        try:
            rel, a, b = self._index[utt]
        except KeyError:
            raise KeyError(utt) from None
        part = self._part(rel + suffix)
        if b > part.shape[0]:
            raise ArchiveError(f"{self.path / (rel + suffix)}: rows {a}:{b} of '{utt}' lie "
                               f"beyond its {part.shape[0]} rows; the archive is damaged, "
                               f"re-run '{self._MAKE}' into a new directory")
        return np.array(part[a:b])

    def __contains__(self, utt) -> bool:
        return utt in self._index  # never reads the data

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    @property
    def utt2spk(self) -> dict[str, str]:
        """Speaker of each utterance (the data directory's ``utt2spk``, copied along)."""
        path = self.path / "utt2spk"
        if not path.is_file():
            raise ArchiveError(f"{self.path}: no utt2spk (made by an older speakergmm?); give "
                               "an enroll map instead")
        return {u: s for u, s in read_kaldi_map(path, n_values=1).items() if u in self._index}


def journal_entries(out: Path, wanted: set[str], n_fields: int,
                    present: Callable[[str], bool]) -> dict[str, list[str]]:
    """``utt -> fields`` of the utterances an earlier run of a resumable archive writer
    finished: a whole line of ``n_fields`` fields in ``out/.journal`` whose part (the first
    field after the utterance) is ``present`` on disk. Lines cut by a crash, of utterances
    no longer wanted, or whose values do not parse are skipped: those are done again."""
    journal = out / JOURNAL
    if not journal.is_file():
        return {}
    done: dict[str, list[str]] = {}
    with open(journal, encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) == n_fields and parts[0] in wanted and line.endswith("\n"):
                done[parts[0]] = parts[1:]
    return {u: f for u, f in done.items() if present(f[0])}


def remove_unreferenced_parts(parts_dir: Path, referenced: set[str]) -> None:
    """Part files no finished utterance points to (written by a run killed before it
    logged them, or holding only utterances since redone) are removed; a part is named by
    its file name up to the first dot, so one part may span several files."""
    for path in parts_dir.glob("part-*"):
        if path.name.split(".")[0] not in referenced:
            path.unlink(missing_ok=True)


def remove_stale_temporaries(parts_dir: Path) -> None:
    """Temporary files of a killed run: never read, removed here."""
    for stale in parts_dir.glob(".*.tmp"):
        stale.unlink(missing_ok=True)


def prepare_dir(out: Path, parts: str, header_name: str, header: dict, *,
                keys: Sequence[str], what: str) -> None:
    """Create an archive directory with its header, or check that an existing one's header
    agrees on ``keys`` (so that a resumed run adds to an archive made the same way)."""
    (out / parts).mkdir(parents=True, exist_ok=True)
    path = out / header_name
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            old = {}
        diff = [f"{k}: {old.get(k)!r} -> {header[k]!r}" for k in keys if old.get(k) != header[k]]
        if diff:
            raise ArchiveError(f"{out}: holds {what} made otherwise ({', '.join(diff)}); "
                               "use a new output directory or remove this one")
    else:
        write_text_atomic(path, json.dumps(header, indent=2, sort_keys=True) + "\n")
    remove_stale_temporaries(out / parts)


def write_part(parts_dir: Path, arrays: Mapping[str, np.ndarray]) -> str:
    """Worker side of :func:`write_parts`: one batch's arrays saved atomically as
    ``<name>.<key>.npy`` under a fresh name, which is returned."""
    name = f"part-{uuid.uuid4().hex[:16]}"
    for key, value in arrays.items():
        with atomic_write(parts_dir / f"{name}.{key}.npy", "wb") as fh:
            np.save(fh, value, allow_pickle=False)
    return name


def write_parts(out: Path, parts: str, utts: Sequence[str], fn: Callable, state: Any, *,
                arrays: Sequence[str], n_extra: int, batch_size: int, executor: Executor,
                progress: Callable[[int], None] | None = None,
                present: Callable[[str], bool] | None = None) -> dict[str, tuple[str, int]]:
    """The resumable writing loop of an archive of per-utterance rows.

    ``fn(state, batch)`` runs on the executor for batches of ``utts`` not finished by an
    earlier run: it writes its batch as one part (:func:`write_part`, the files
    ``arrays`` under ``out/parts``) and returns ``(utt, name, row, *extra)`` for each
    utterance (``n_extra`` extra fields), which are logged in the journal as they come back.
    ``present(name)`` says whether a part is whole on disk (default: its ``arrays`` files
    are).

    Returns
    -------
    dict utt -> (part name, row)
        Every utterance of ``utts``, finished now or before.
    """
    if present is None:
        def present(name: str) -> bool:
            return all((out / parts / f"{name}.{a}.npy").is_file() for a in arrays)

    done = {u: (f[0], int(f[1]))
            for u, f in journal_entries(out, set(utts), 3 + n_extra, present).items()}
    todo = [u for u in utts if u not in done]
    if progress and done:
        progress(len(done))
    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    executor = get_executor(executor, n_items=len(batches))
    with open(out / JOURNAL, "a", encoding="utf-8") as journal, \
            executor.start(state, blas_threads=1) as session:
        for results in session.map(fn, batches):
            for utt, name, row, *extra in results:
                done[utt] = (name, row)
                journal.write(" ".join([utt, name, str(row), *map(repr, extra)]) + "\n")
            journal.flush()
            if progress:
                progress(len(results))
    return done
