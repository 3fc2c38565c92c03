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

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np

from ..data.textmap import read_kaldi_map
from ..errors import ArchiveError

__all__ = ["PartArchive", "journal_entries", "remove_unreferenced_parts",
           "remove_stale_temporaries", "JOURNAL"]

JOURNAL = ".journal"


class PartArchive(Mapping):
    """Read-only, lazy mapping from utterance id to rows of memory-mapped part files: the
    shared reader of feature archives and statistics archives.

    The index (``<utt> <part>[<first>:<end>]`` lines) is read on opening; an access maps
    the part file that holds the utterance (at most 64 kept open) and copies its rows out.
    """

    #: index file, and how the archive is named and made (for messages)
    _INDEX = ""
    _WHAT = "archive"
    _HOLDS = "data"
    _MAKE = ""

    def __init__(self, path: str | os.PathLike, header: str):
        self.path = Path(path)
        index = self.path / self._INDEX
        if not (self.path / header).is_file():
            raise ArchiveError(f"{self.path}: not a {self._WHAT} (no {header}); create one "
                               f"with '{self._MAKE}'")
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
            if len(self._parts) >= 64:  # bound the open file handles
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
