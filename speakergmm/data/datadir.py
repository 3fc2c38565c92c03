"""Kaldi-style data directories.

A data directory is a set of plain text maps (:mod:`speakergmm.data.textmap`):

``wav.scp``     ``<recording> <path>`` or ``<recording> <command> |`` (required)
``utt2spk``     ``<utterance> <speaker>`` (required; the master list of utterances)
``spk2utt``     ``<speaker> <utterance> ...`` (derived from ``utt2spk``)
``segments``    ``<utterance> <recording> <start> <end>`` (seconds; ``end == -1``: to the end)
``utt2dur``     ``<utterance> <seconds>``
``spk2gender``  ``<speaker> m|f``

Without ``segments`` the recording id is the utterance id. Other files are ignored.
"""

from __future__ import annotations

import math
import os
from collections.abc import Container, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataDirError
from .textmap import _scan, check_tokens, write_kaldi_map

__all__ = ["AudioRef", "DataDir", "read_data_dir", "write_data_dir", "spk2utt"]


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



def spk2utt(utt2spk: Mapping[str, str], keep: Container[str] | None = None) -> dict[str, list[str]]:
    """Speaker to its sorted utterances, speakers sorted (Kaldi's ``utt2spk_to_spk2utt``).

    Parameters
    ----------
    utt2spk : mapping utterance -> speaker
    keep : container, optional
        Only the utterances it contains (e.g. those of a feature archive).
    """
    out: dict[str, list[str]] = {}
    for utt in sorted(utt2spk):
        if keep is None or utt in keep:
            out.setdefault(utt2spk[utt], []).append(utt)
    return {spk: out[spk] for spk in sorted(out)}


def _parse_segment(v: list[str]) -> tuple[str, float, float]:
    """``(recording, start, end)``; ValueError for times no recording has (so that every
    reader refuses them with the line, not one utterance at a time when its audio is cut).
    The text map reader catches the ValueErrors of its parsers and names the file and line."""
    start, end = _number(v[1], "start time"), _number(v[2], "end time")
    if not (math.isfinite(start) and math.isfinite(end)):
        raise ValueError(f"times {v[1]} {v[2]} must be finite")  # (caught by the reader)
    if start < 0:
        raise ValueError(f"start time {v[1]} is negative")  # (caught by the reader)
    if end <= start and end != -1:
        raise ValueError(  # (caught by the reader)
            f"end time {v[2]} is not after the start {v[1]} (use -1 for 'to the end of the "
            "recording')")
    return v[0], start, end


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{what} '{text}' is not a number") from None  # (caught by the reader)


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
        """Speaker to its sorted utterances, speakers sorted (:func:`spk2utt`)."""
        return spk2utt(self.utt2spk)

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

    utt2spk = read("utt2spk")
    if not utt2spk:  # (every command would do nothing, and say it succeeded)
        raise DataDirError(f"{d / 'utt2spk'}: no utterances; a data directory lists at least "
                           "one")
    return DataDir(wav_scp=read("wav.scp"), utt2spk=utt2spk, segments=read("segments"),
                   utt2dur=read("utt2dur"), spk2gender=read("spk2gender"), path=d)



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
    check_tokens(d / "wav.scp", list(data.wav_scp))
    check_tokens(d / "utt2spk", [*data.utt2spk, *data.utt2spk.values()])
    write_kaldi_map(d / "wav.scp", zip(data.wav_scp, entries), lambda k, v: f"{k} {v}")
    write_kaldi_map(d / "utt2spk", data.utt2spk.items(), lambda k, v: f"{k} {v}")
    write_kaldi_map(d / "spk2utt", data.spk2utt.items(), lambda k, v: f"{k} {' '.join(v)}")
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
        check_tokens(d / name, tokens(mapping))
        write_kaldi_map(d / name, mapping.items(), fmt)


