"""Kaldi-style data directories, trial lists and enrollment maps.

A data directory is a set of plain text maps, one entry a line, first token the key:

``wav.scp``     ``<recording> <path>`` or ``<recording> <command> |`` (required)
``utt2spk``     ``<utterance> <speaker>`` (required; the master list of utterances)
``spk2utt``     ``<speaker> <utterance> ...`` (derived from ``utt2spk``)
``segments``    ``<utterance> <recording> <start> <end>`` (seconds; ``end == -1``: to the end)
``utt2dur``     ``<utterance> <seconds>``
``spk2gender``  ``<speaker> m|f``

Without ``segments`` the recording id is the utterance id. Other files are ignored. Files
are sorted by key in C-locale byte order, which for UTF-8 text is Python's ``str`` order.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ._io import write_text_atomic
from .errors import DataDirError

__all__ = [
    "AudioRef", "DataDir", "Problem", "Trials",
    "read_kaldi_map", "read_data_dir", "write_data_dir", "validate_data_dir",
    "read_trials", "write_trials", "read_enroll_map", "write_enroll_map",
]

# Ids end up in file names (archives, model stores), so anything beyond these is refused.
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-+@:")
_ID_HINT = "ids become file names, so use only letters, digits and _ . - + @ :"
_REGEN = ("regenerate spk2utt from utt2spk (Kaldi: utils/utt2spk_to_spk2utt.pl utt2spk > "
          "spk2utt, or speakergmm.datadir.write_data_dir(d, read_data_dir(d)))")
_FIX = "(Kaldi: utils/fix_data_dir.sh removes such entries)"
# Trial formats: field holding the label, label -> is target, what the label may be.
_TRIAL_FORMATS = {
    "Kaldi": (2, {"target": True, "nontarget": False}, "'target' or 'nontarget'"),
    "VoxCeleb": (0, {"1": True, "0": False}, "1 (target) or 0 (nontarget)"),
}


@dataclass(frozen=True)
class Problem:
    """One problem found by :func:`validate_data_dir`; ``line`` is 1-based or None."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class AudioRef:
    """Where an utterance's audio is: a file, or a command whose stdout is the audio.

    ``path_or_command`` is the command without Kaldi's trailing ``|`` when ``is_pipe``.
    ``duration`` is None when the utterance runs to the end of the recording.
    """

    path_or_command: str
    is_pipe: bool
    start: float = 0.0
    duration: float | None = None


# --------------------------------------------------------------------------- parsing


def _raise(path: Path, line: int | None, message: str):
    raise DataDirError(f"{path}{'' if line is None else f':{line}'}: {message}")


def _read_lines(path: Path, fail: Callable = _raise) -> list[str] | None:
    """The lines of a UTF-8 file; on failure calls ``fail(path, line, message)``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return fail(path, None, "no such file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return fail(path, data.count(b"\n", 0, exc.start) + 1,
                    f"not UTF-8 text ({exc.reason}); re-encode the file as UTF-8")
    # Not splitlines(): it also breaks on \x0b, \x1c, U+2028 ..., which Kaldi treats as text.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
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
        raise ValueError("give either multi=True or n_values, not both")
    layout = ("<key> <value> ..." if multi else "<key> <value>" if n_values is None else
              " ".join(["<key>"] + ["<value>"] * n_values))
    return _scan(path, multi=multi, n_values=n_values, parse=parse, layout=layout)[0]


def _parse_segment(v: list[str]) -> tuple[str, float, float]:
    return v[0], _number(v[1], "start time"), _number(v[2], "end time")


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{what} '{text}' is not a number") from None


# How each file of a data directory is parsed: _scan keyword arguments and the line layout
# that error messages show.
_FILES = {
    "wav.scp": dict(layout="<recording> <path or command |>"),
    "utt2spk": dict(n_values=1, layout="<utterance> <speaker>"),
    "spk2utt": dict(multi=True, layout="<speaker> <utterance> ..."),
    "segments": dict(n_values=3, parse=_parse_segment,
                     layout="<utterance> <recording> <start> <end>"),
    "utt2dur": dict(n_values=1, parse=lambda v: _number(v, "duration"),
                    layout="<utterance> <seconds>"),
    "spk2gender": dict(n_values=1, layout="<speaker> m|f"),
}


# --------------------------------------------------------------------------- data dirs


@dataclass
class DataDir:
    """A Kaldi-style data directory in memory.

    ``spk2utt`` is not stored: it is derived from ``utt2spk`` on each access, so the two
    can never disagree (hold on to the result when you need it in a loop).
    """

    wav_scp: dict[str, str]
    utt2spk: dict[str, str]
    segments: dict[str, tuple[str, float, float]] | None = None
    utt2dur: dict[str, float] | None = None
    spk2gender: dict[str, str] | None = None
    path: Path | None = None

    @property
    def spk2utt(self) -> dict[str, list[str]]:
        """Speaker to its sorted utterances, speakers sorted."""
        out: dict[str, list[str]] = defaultdict(list)
        for utt in sorted(self.utt2spk):
            out[self.utt2spk[utt]].append(utt)
        return {spk: out[spk] for spk in sorted(out)}

    @property
    def utterances(self) -> list[str]:
        """Sorted utterance ids (those of ``utt2spk``)."""
        return sorted(self.utt2spk)

    @property
    def speakers(self) -> list[str]:
        """Sorted speaker ids."""
        return sorted(set(self.utt2spk.values()))

    def audio_of(self, utt: str, audio_root: str | os.PathLike | None = None) -> AudioRef:
        """Locate the audio of ``utt``.

        Relative paths are joined to ``audio_root``; with None they stay relative, i.e.
        relative to the current directory as in Kaldi. Pipe commands are returned as they
        are (without the trailing ``|``): paths inside them cannot be resolved safely.
        """
        where = self.path if self.path is not None else Path("<data dir>")
        start, duration = 0.0, None
        if self.segments is not None:
            if utt not in self.segments:
                raise DataDirError(f"{where / 'segments'}: no segment for utterance '{utt}'")
            rec, start, end = self.segments[utt]
            duration = None if end == -1 else end - start
        else:
            rec = utt
        try:
            entry = self.wav_scp[rec]
        except KeyError:
            raise DataDirError(f"{where / 'wav.scp'}: no recording '{rec}' "
                               f"(needed by utterance '{utt}')") from None
        if entry.endswith("|"):
            return AudioRef(entry[:-1].rstrip(), True, start, duration)
        if audio_root is not None and not os.path.isabs(entry):
            entry = os.path.join(os.fspath(audio_root), entry)
        return AudioRef(entry, False, start, duration)


def read_data_dir(path: str | os.PathLike) -> DataDir:
    """Read a data directory (``spk2utt`` is not read: it is derived from ``utt2spk``).

    Only parse failures raise; run :func:`validate_data_dir` for consistency checks.

    Raises
    ------
    DataDirError
        Not a directory, ``wav.scp`` or ``utt2spk`` missing, or a malformed line.
    """
    d = Path(path)
    if not d.is_dir():
        raise DataDirError(f"{d}: not a directory")
    for required in ("wav.scp", "utt2spk"):
        if not (d / required).is_file():
            raise DataDirError(f"{d / required}: missing; a data directory needs wav.scp "
                               "and utt2spk")

    def read(name: str) -> dict | None:
        return _scan(d / name, **_FILES[name])[0] if (d / name).is_file() else None

    return DataDir(wav_scp=read("wav.scp"), utt2spk=read("utt2spk"), segments=read("segments"),
                   utt2dur=read("utt2dur"), spk2gender=read("spk2gender"), path=d)


def _check_tokens(where: Path, tokens: list[str]) -> None:
    # One split of the joined tokens finds any empty token or whitespace in bulk.
    if len(" ".join(tokens).split()) != len(tokens):
        bad = next(t for t in tokens if len(t.split()) != 1 or t != t.strip())
        raise DataDirError(f"{where}: id {bad!r} is empty or contains whitespace; it would "
                           "corrupt the file")


def _write_map(path: Path, items, fmt: Callable) -> None:
    write_text_atomic(path, "".join(fmt(k, v) + "\n" for k, v in sorted(items)))


def write_data_dir(path: str | os.PathLike, data: DataDir) -> None:
    """Write ``data`` as sorted files, each atomically, including ``spk2utt``.

    Optional files whose field is None are removed if present, so that the directory
    describes ``data`` and nothing stale is left beside it.
    """
    d = Path(path)
    d.mkdir(parents=True, exist_ok=True)
    entries = [v.strip() for v in data.wav_scp.values()]
    if not all(entries) or len("\n".join(entries).splitlines()) != len(entries):
        raise DataDirError(f"{d / 'wav.scp'}: an entry is empty or spans lines")
    _check_tokens(d / "wav.scp", list(data.wav_scp))
    _check_tokens(d / "utt2spk", [*data.utt2spk, *data.utt2spk.values()])
    _write_map(d / "wav.scp", zip(data.wav_scp, entries), lambda k, v: f"{k} {v}")
    _write_map(d / "utt2spk", data.utt2spk.items(), lambda k, v: f"{k} {v}")
    _write_map(d / "spk2utt", data.spk2utt.items(), lambda k, v: f"{k} {' '.join(v)}")
    # repr() round-trips floats exactly; -1 ("to the end") stays recognisable as -1.0.
    optional = {
        "segments": (data.segments, lambda k, v: f"{k} {v[0]} {float(v[1])!r} {float(v[2])!r}",
                     lambda m: [*m, *(v[0] for v in m.values())]),
        "utt2dur": (data.utt2dur, lambda k, v: f"{k} {float(v)!r}", list),
        "spk2gender": (data.spk2gender, lambda k, v: f"{k} {v}", lambda m: [*m, *m.values()]),
    }
    for name, (mapping, fmt, tokens) in optional.items():
        if mapping is None:
            (d / name).unlink(missing_ok=True)
            continue
        _check_tokens(d / name, tokens(mapping))
        _write_map(d / name, mapping.items(), fmt)


# --------------------------------------------------------------------------- validation


def _check_ids(line_of: dict[str, int], kind: str, add: Callable) -> None:
    # One superset test over all ids at once; per-id work only when something is wrong.
    if _ID_CHARS.issuperset("".join(line_of)):
        return
    for ident, line in line_of.items():
        if bad := "".join(sorted(set(ident) - _ID_CHARS)):
            add(line, f"{kind} id '{ident}' contains {bad!r}; {_ID_HINT}")


def validate_data_dir(path: str | os.PathLike, *, audio_root: str | os.PathLike | None = None,
                      check_audio: bool = True) -> list[Problem]:
    """Check a data directory the way Kaldi's ``utils/validate_data_dir.sh`` does.

    Every problem is reported, not only the first, each with its file and (where there is
    one) line; an empty list means the directory is clean. Unknown files are ignored.

    Parameters
    ----------
    path : path-like
        The data directory.
    audio_root : path-like, optional
        Directory that relative ``wav.scp`` paths resolve against [default: current
        directory]. Pipe commands (``... |``) are never checked.
    check_audio : bool
        Check that every audio file exists.

    Returns
    -------
    list of Problem
        Sorted by file, then line (file-level problems first).
    """
    d = Path(path)
    if not d.is_dir():
        return [Problem(str(d), None, "not a directory")]
    problems: list[Problem] = []

    def add(name: str, line: int | None, message: str) -> None:
        problems.append(Problem(str(d / name), line, message))

    def load(name: str):
        if not (d / name).is_file():
            return None, {}
        return _scan(d / name, problems=problems, **_FILES[name])

    def orphans(name: str, keys, line_of: dict, known, message: str) -> None:
        # A missing or unreadable side (None) is reported once, not once per entry.
        for key in () if keys is None or known is None else keys:
            if key not in known:
                add(name, line_of.get(key), message.format(key))

    wav, wav_l = load("wav.scp")
    u2s, u2s_l = load("utt2spk")
    s2u, s2u_l = load("spk2utt")
    seg, seg_l = load("segments")
    dur, dur_l = load("utt2dur")
    gen, gen_l = load("spk2gender")

    for name in ("wav.scp", "utt2spk"):
        if not (d / name).is_file():
            add(name, None, "missing: every data directory needs wav.scp and utt2spk")
    if not (d / "spk2utt").is_file() and u2s is not None:
        add("spk2utt", None, f"missing: {_REGEN}")
    for name, kind, line_of in (("wav.scp", "recording", wav_l), ("utt2spk", "utterance", u2s_l),
                                ("spk2utt", "speaker", s2u_l), ("segments", "utterance", seg_l),
                                ("utt2dur", "utterance", dur_l), ("spk2gender", "speaker", gen_l)):
        _check_ids(line_of, kind, lambda line, msg, name=name: add(name, line, msg))
    _check_ids({spk: u2s_l[utt] for utt, spk in (u2s or {}).items()}, "speaker",
               lambda line, msg: add("utt2spk", line, msg))
    # Kaldi keeps utt2spk sorted by utterance and assumes it is then sorted by speaker too.
    spk2utt: dict[str, list[str]] | None = None if u2s is None else defaultdict(list)
    ordered, prev_utt, prev_spk = True, None, None
    for utt in sorted(u2s or ()):
        spk = u2s[utt]
        spk2utt[spk].append(utt)
        if ordered and prev_spk is not None and spk < prev_spk:
            ordered = False  # the first disagreement is enough to act on
            add("utt2spk", u2s_l[utt],
                f"utterance '{utt}' of speaker '{spk}' sorts after '{prev_utt}' of speaker "
                f"'{prev_spk}', so sorting by speaker and by utterance disagree; make speaker "
                f"ids prefixes of utterance ids (e.g. '{spk}-{utt}')")
        prev_utt, prev_spk = utt, spk

    if seg is not None:
        for utt, (rec, start, end) in seg.items():
            where = ("segments", seg_l[utt])
            if not (math.isfinite(start) and math.isfinite(end)):
                add(*where, f"times {start} {end} of utterance '{utt}' must be finite")
            elif start < 0:
                add(*where, f"start time {start} of utterance '{utt}' is negative")
            elif end <= start and end != -1:
                add(*where, f"end time {end} of utterance '{utt}' is not after its start "
                            f"{start} (use -1 for 'to the end of the recording')")
            if wav is not None and rec not in wav:
                add(*where, f"recording '{rec}' of utterance '{utt}' is not in wav.scp; add it "
                            f"or remove the segment {_FIX}")
        orphans("segments", seg, seg_l, u2s, "utterance '{}' has no speaker in utt2spk " + _FIX)
        orphans("utt2spk", u2s, u2s_l, seg, "utterance '{}' has no segment in segments; add "
                                            "one or remove the utterance " + _FIX)
        orphans("wav.scp", wav, wav_l, {rec for rec, _, _ in seg.values()},
                "recording '{}' is used by no segment in segments " + _FIX)
    else:  # without segments, recording id == utterance id
        orphans("utt2spk", u2s, u2s_l, wav, "utterance '{}' has no recording in wav.scp; add "
                                            "one or remove the utterance " + _FIX)
        orphans("wav.scp", wav, wav_l, u2s, "recording '{}' has no speaker in utt2spk; add it "
                                            "to utt2spk or remove it " + _FIX)

    if s2u is not None and spk2utt is not None:  # exactly what utt2spk implies
        seen: dict[str, int] = {}
        for spk, utts in s2u.items():
            line = s2u_l[spk]
            for utt in utts:
                if utt in seen:
                    add("spk2utt", line, f"utterance '{utt}' listed twice (also on line "
                                         f"{seen[utt]}); {_REGEN}")
                seen.setdefault(utt, line)
            want = spk2utt.get(spk)
            if want is None or utts == want:
                continue
            missing, extra = sorted(set(want) - set(utts)), sorted(set(utts) - set(want))
            if missing or extra:
                add("spk2utt", line, f"utterances of speaker '{spk}' disagree with utt2spk "
                                     f"(missing: {_few(missing)}; not in utt2spk for this "
                                     f"speaker: {_few(extra)}); {_REGEN}")
            elif len(set(utts)) == len(utts):
                add("spk2utt", line, f"utterances of speaker '{spk}' are not sorted; {_REGEN}")
        orphans("spk2utt", s2u, s2u_l, spk2utt, "speaker '{}' is not in utt2spk; " + _REGEN)
        orphans("spk2utt", spk2utt, {}, s2u, "speaker '{}' of utt2spk is missing; " + _REGEN)

    if dur is not None:
        for utt, seconds in dur.items():
            if not (math.isfinite(seconds) and seconds > 0):
                add("utt2dur", dur_l[utt], f"duration {seconds} of utterance '{utt}' must be a "
                                           "positive number; recompute it or drop the utterance")
        orphans("utt2dur", dur, dur_l, u2s, "utterance '{}' is not in utt2spk " + _FIX)
        orphans("utt2dur", u2s, {}, dur, "utterance '{}' has no duration; recompute utt2dur")

    if gen is not None:
        for spk, gender in gen.items():
            if gender not in ("m", "f"):
                add("spk2gender", gen_l[spk], f"gender '{gender}' of speaker '{spk}' must be "
                                              "'m' or 'f'")
        orphans("spk2gender", gen, gen_l, spk2utt, "speaker '{}' is not in utt2spk " + _FIX)
        orphans("spk2gender", spk2utt, {}, gen, "speaker '{}' has no gender")

    if check_audio and wav:
        _check_audio(wav, wav_l, audio_root, lambda line, msg: add("wav.scp", line, msg))
    return sorted(problems, key=lambda p: (p.file, -1 if p.line is None else p.line))


def _check_audio(wav: dict[str, str], line_of: dict[str, int], audio_root, add) -> None:
    root = None if audio_root is None else os.fspath(audio_root)
    where = "the current directory" if root is None else f"'{root}'"
    for rec, entry in wav.items():
        if entry.endswith("|"):
            continue  # a command: whatever it reads is its own business
        full = entry if root is None or os.path.isabs(entry) else os.path.join(root, entry)
        if not os.path.isfile(full):
            hint = "" if os.path.isabs(entry) else (
                f"; relative paths resolve against {where}: pass audio_root (CLI: "
                "--audio-root) if they are relative to another directory")
            add(line_of[rec], f"audio file '{full}' of recording '{rec}' not found{hint}")


def _few(items: list[str], n: int = 5) -> str:
    if not items:
        return "none"
    shown = ", ".join(items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


# --------------------------------------------------------------------------- trials


@dataclass(eq=False)
class Trials:
    """A trial list: ``enroll[i]`` (model) against ``test[i]`` (utterance).

    ``is_target`` is None for an unlabelled list (scoring without a key).
    """

    enroll: np.ndarray
    test: np.ndarray
    is_target: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.enroll = np.asarray(self.enroll, dtype=str)
        self.test = np.asarray(self.test, dtype=str)
        if self.is_target is not None:
            self.is_target = np.asarray(self.is_target, dtype=bool)
        sizes = {a.shape for a in (self.enroll, self.test, self.is_target) if a is not None}
        if len(sizes) != 1 or self.enroll.ndim != 1:
            raise DataDirError(f"Trials: enroll, test and is_target must be 1-D and of equal "
                               f"length, got shapes {sorted(sizes)}")

    def __len__(self) -> int:
        return len(self.enroll)


def read_trials(path: str | os.PathLike) -> Trials:
    """Read a trial list, detecting its format from the first line.

    Accepted: Kaldi ``<enroll> <test> target|nontarget``, VoxCeleb ``1|0 <enroll> <test>``
    and unlabelled ``<enroll> <test>``. One file must use one format.

    Raises
    ------
    DataDirError
        Unknown or mixed formats, bad labels, duplicated (enroll, test) pairs, empty file;
        the message names file and line.
    """
    path = Path(path)
    enroll, test, labels = [], [], []
    first_line: dict[tuple[str, str], int] = {}
    fmt = fmt_line = None
    for lineno, line in enumerate(_read_lines(path), 1):
        parts = line.split()
        if not parts:
            continue
        if fmt is None:
            fmt, fmt_line = _trial_format(parts), lineno
            if fmt is None:
                _raise(path, lineno, f"unknown trial format {line.strip()!r}; expected "
                       "'<enroll> <test> target|nontarget', '1|0 <enroll> <test>' or "
                       "'<enroll> <test>'")
        if len(parts) != (2 if fmt == "unlabelled" else 3):
            _raise(path, lineno, f"{len(parts)} fields, but line {fmt_line} set the format to "
                                 f"{fmt}; use one format per file")
        if fmt == "unlabelled":
            e, t = parts
        else:
            where, to_bool, allowed = _TRIAL_FORMATS[fmt]
            if parts[where] not in to_bool:
                other = _trial_format(parts)
                _raise(path, lineno, f"{other} line in a {fmt} trial list (format set by line "
                       f"{fmt_line}); use one format per file" if other else
                       f"label '{parts[where]}' must be {allowed}")
            labels.append(to_bool[parts[where]])
            e, t = parts[:2] if where == 2 else parts[1:]
        if (e, t) in first_line:
            _raise(path, lineno, f"trial '{e} {t}' duplicates line {first_line[e, t]}; keep "
                                 "one of them")
        first_line[e, t] = lineno
        enroll.append(e)
        test.append(t)
    if not enroll:
        _raise(path, None, "no trials")
    return Trials(np.array(enroll, dtype=str), np.array(test, dtype=str),
                  None if fmt == "unlabelled" else np.array(labels, dtype=bool))


def _trial_format(parts: list[str]) -> str | None:
    if len(parts) == 2:
        return "unlabelled"
    return next((name for name, (where, to_bool, _) in _TRIAL_FORMATS.items()
                 if len(parts) == 3 and parts[where] in to_bool), None)


def write_trials(path: str | os.PathLike, trials: Trials) -> None:
    """Write trials in Kaldi format (two columns when unlabelled), in their order, atomically."""
    path = Path(path)
    _check_tokens(path, trials.enroll.tolist() + trials.test.tolist())
    if trials.is_target is None:
        rows = (f"{e} {t}\n" for e, t in zip(trials.enroll.tolist(), trials.test.tolist()))
    else:
        rows = (f"{e} {t} {'target' if y else 'nontarget'}\n" for e, t, y in
                zip(trials.enroll.tolist(), trials.test.tolist(), trials.is_target.tolist()))
    write_text_atomic(path, "".join(rows))


# --------------------------------------------------------------------------- enrollment


def read_enroll_map(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read ``<model> <utt1> <utt2> ...`` lines (the ``spk2utt`` format)."""
    return read_kaldi_map(path, multi=True)


def write_enroll_map(path: str | os.PathLike, enroll: dict[str, list[str]]) -> None:
    """Write an enrollment map sorted by model, atomically; utterance order is kept."""
    path = Path(path)
    for model, utts in enroll.items():
        if not utts:
            raise DataDirError(f"{path}: model '{model}' has no utterances")
        _check_tokens(path, [model, *utts])
    _write_map(path, enroll.items(), lambda k, v: f"{k} {' '.join(v)}")
