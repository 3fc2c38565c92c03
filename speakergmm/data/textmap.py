"""Kaldi text maps: one entry a line, the first whitespace-separated token the key.

Every map file of the toolkit (data directories, enrollment and class maps, the index files
of feature and statistics archives) is read by :func:`read_kaldi_map` and written by
:func:`write_kaldi_map`. Files are sorted by key in C-locale byte order, which for UTF-8
text is Python's ``str`` order.
"""

from __future__ import annotations

import contextlib
import gc
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .._io import write_text_atomic
from ..errors import DataDirError, ParameterError

__all__ = ["Problem", "read_kaldi_map", "write_kaldi_map", "check_tokens"]


@dataclass(frozen=True)
class Problem:
    """One problem found by :func:`validate_data_dir`; ``line`` is 1-based or None."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"


def _raise(path: Path, line: int | None, message: str):
    raise DataDirError(f"{path}{'' if line is None else f':{line}'}: {message}")


#: The longest line a text map, trial list or scores file may hold: a line of ids and a
#: path or pipe command is far shorter; a longer one is not such a file (a binary, a list
#: with its newlines lost), and reading on would fill the memory or the error message.
MAX_LINE = 1 << 16


def _read_lines(path: Path, fail: Callable = _raise) -> list[str] | None:
    """The lines of a UTF-8 file (a leading byte-order mark dropped); on failure calls
    ``fail(path, line, message)``. A device (``/dev/zero`` never ends) and lines over
    :data:`MAX_LINE` characters fail too."""
    import stat

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return fail(path, None, "no such file")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return fail(path, None, "a device, not a text file")
    data = path.read_bytes()
    try:
        # utf-8-sig: editors on Windows start UTF-8 files with a byte-order mark, which
        # would otherwise glue itself to the first id
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return fail(path, data.count(b"\n", 0, exc.start) + 1,
                    f"not UTF-8 text ({exc.reason}); re-encode the file as UTF-8")
    # Not splitlines(): it also breaks on \x0b, \x1c, U+2028 ..., which Kaldi treats as text.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(text) > MAX_LINE and max(map(len, lines), default=0) > MAX_LINE:
        n = next(i for i, line in enumerate(lines, 1) if len(line) > MAX_LINE)
        return fail(path, n, f"a line of {len(lines[n - 1]):,} characters (at most "
                             f"{MAX_LINE:,}): not a text file of lines")
    return lines


@contextlib.contextmanager
def _gc_paused():
    # Building 1M small lists makes the cyclic GC rescan them again and again (~2x the
    # parse time); nothing built here can form a cycle.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _fast_parse(lines: list[str], multi: bool, n_values: int | None, parse) -> dict | None:
    """Parse a regular file with C-level loops; None if anything is irregular."""
    if multi or n_values is not None:
        rows = [line.split() for line in lines]
        lengths = set(map(len, rows))
        if multi and rows and min(lengths) > 1:
            out = {r[0]: r[1:] for r in rows}
        elif n_values == 1 and lengths == {2}:
            out = dict(rows)
        elif not multi and lengths == {n_values + 1}:
            out = {r[0]: r[1:] for r in rows}
        else:
            return None
    else:
        rows = [line.split(None, 1) for line in lines]
        if set(map(len, rows)) != {2}:
            return None
        out = {k: v.strip() for k, v in rows}
    if len(out) != len(rows):
        return None
    if parse is not None:
        try:
            out = {k: parse(v) for k, v in out.items()}
        except ValueError:
            return None
    return out


def _scan(path, *, multi: bool = False, n_values: int | None = None,
          parse: Callable | None = None, layout: str = "<key> <value>",
          problems: list[Problem] | None = None):
    """Parse one map file; every map reader and the validator go through here.

    With ``problems=None`` the first bad line raises :class:`DataDirError`; otherwise every
    bad line is appended to ``problems`` and skipped. Returns ``(values, line_of_key)``
    (``line_of_key`` is empty on the fast read path, which does not need it).
    """
    path = Path(path)
    name = str(path)
    collect = problems is not None

    def fail(lineno: int | None, message: str) -> None:
        if not collect:
            _raise(path, lineno, message)
        problems.append(Problem(name, lineno, message))

    lines = _read_lines(path, lambda _, lineno, message: fail(lineno, message))
    if lines is None:  # unreadable: callers treat it as absent, and no cascade follows
        return None, {}

    def unsorted(lineno: int, key: str, prev: str) -> None:
        fail(lineno, f"not sorted: '{key}' comes after '{prev}'; sort the file with "
                     "'LC_ALL=C sort -k1,1'")

    # Nearly every file is regular and 1M-line files must load in about a second: try the
    # C-level path first, and go line by line only to say what is wrong where.
    with _gc_paused():
        out = _fast_parse(lines, multi, n_values, parse)
    if out is not None:
        if not collect:
            return out, {}
        keys = list(out)  # no blank lines on this path, so line number == index + 1
        bad = next((i for i in range(1, len(keys)) if keys[i] < keys[i - 1]), None)
        if bad is not None:
            unsorted(bad + 1, keys[bad], keys[bad - 1])
        return out, dict(zip(keys, range(1, len(keys) + 1)))

    rest_of_line = not multi and n_values is None
    out, line_of = {}, {}
    prev, sorted_so_far = None, True
    for lineno, line in enumerate(lines, 1):
        parts = line.split(None, 1) if rest_of_line else line.split()
        if not parts:
            continue  # blank lines carry nothing; skipping them keeps hand-edited files usable
        key = parts[0]
        if collect and sorted_so_far and prev is not None and key < prev:
            sorted_so_far = False  # the first out-of-order line is enough to act on
            unsorted(lineno, key, prev)
        prev = key
        if key in line_of:
            fail(lineno, f"duplicate key '{key}' (first on line {line_of[key]}); keep one")
            continue
        line_of[key] = lineno
        if rest_of_line:
            value = parts[1].strip() if len(parts) > 1 else ""
            ok = bool(value)
        elif multi:
            value = parts[1:]
            ok = bool(value)
        else:
            ok = len(parts) == n_values + 1
            value = parts[1] if ok and n_values == 1 else parts[1:]
        if not ok:
            fail(lineno, f"expected {'' if multi or rest_of_line else f'{n_values + 1} fields '}"
                         f"'{layout}', found {len(line.split())} field(s)")
            continue
        if parse is not None:
            try:
                value = parse(value)
            except ValueError as exc:
                fail(lineno, str(exc))
                continue
        out[key] = value
    return out, {k: line_of[k] for k in out}


def read_kaldi_map(path: str | os.PathLike, *, multi: bool = False,
                   n_values: int | None = None, parse: Callable | None = None) -> dict:
    """Read a Kaldi text map: first whitespace-separated token is the key.

    Parameters
    ----------
    path : path-like
        The file (UTF-8). Blank lines are skipped.
    multi : bool
        Value is the list of the remaining tokens (at least one), as in ``spk2utt``.
    n_values : int, optional
        Require exactly this many value tokens; the value is the token when 1, else the
        list of tokens. When neither ``multi`` nor ``n_values`` is given the value is the
        rest of the line, stripped (``wav.scp``: commands may contain spaces).
    parse : callable, optional
        Converts each value; a ``ValueError`` it raises becomes a :class:`DataDirError`
        naming the file and line.

    Returns
    -------
    dict
        Key to value, in file order.

    Raises
    ------
    DataDirError
        Missing or non-UTF-8 file, wrong number of fields, duplicate key, ``parse`` failure.
    """
    if multi and n_values is not None:
        raise ParameterError("give either multi=True or n_values, not both")
    layout = ("<key> <value> ..." if multi else "<key> <value>" if n_values is None else
              " ".join(["<key>"] + ["<value>"] * n_values))
    return _scan(path, multi=multi, n_values=n_values, parse=parse, layout=layout)[0]


def read_ids(path: str | os.PathLike) -> list[str]:
    """The first token of each non-blank line of ``path``, in file order: a list of ids one
    per line, or any Kaldi map (``utt2spk``, ``utt2class``) whose keys are wanted. An id
    given twice is an error naming the line."""
    path = Path(path)
    ids: dict[str, int] = {}
    for lineno, line in enumerate(_read_lines(path), 1):
        fields = line.split()
        if not fields:
            continue
        if fields[0] in ids:
            _raise(path, lineno, f"'{fields[0]}' again (first on line {ids[fields[0]]})")
        ids[fields[0]] = lineno
    return list(ids)


def check_tokens(where: Path, tokens: list[str]) -> None:
    """DataDirError naming ``where`` if a token is empty or holds whitespace (it would
    corrupt a map file)."""
    # One split of the joined tokens finds any empty token or whitespace in bulk.
    if len(" ".join(tokens).split()) != len(tokens):
        bad = next(t for t in tokens if len(t.split()) != 1 or t != t.strip())
        raise DataDirError(f"{where}: id {bad!r} is empty or contains whitespace; it would "
                           "corrupt the file")


def write_kaldi_map(path: str | os.PathLike, items, fmt: Callable[[str, object], str]) -> None:
    """Write ``fmt(key, value)`` lines sorted by key, atomically."""
    write_text_atomic(path, "".join(fmt(k, v) + "\n" for k, v in sorted(items)))
