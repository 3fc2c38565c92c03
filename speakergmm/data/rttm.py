"""RTTM, the diarization exchange format of NIST's Rich Transcription evaluations (md-eval,
dscore, pyannote, Kaldi's ``diarization/make_rttm.py``): one ``SPEAKER`` line per turn,

    SPEAKER <recording> <channel> <onset> <duration> <NA> <NA> <speaker> <NA> <NA>

times in seconds. Lines of other types (``SPKR-INFO``, ``LEXEME``, ...) are skipped, as
md-eval skips them for diarization; ``;;`` starts a comment.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .._io import write_text_atomic
from .textmap import _raise, _read_lines, check_tokens

__all__ = ["Turn", "read_rttm", "write_rttm", "format_rttm", "read_uem"]


@dataclass(frozen=True, order=True)
class Turn:
    """One speaker's stretch of speech in a recording: ``[start, end)`` seconds."""

    start: float
    end: float
    speaker: str

    @property
    def duration(self) -> float:
        return self.end - self.start


def read_rttm(path: str | os.PathLike) -> dict[str, list[Turn]]:
    """The turns of every recording of an RTTM file.

    Returns
    -------
    dict
        Recording id -> its turns, sorted by start (a recording with none does not appear).

    Raises
    ------
    DataDirError
        Naming the file and line: too few fields, a time that is not a finite number, a
        negative onset or duration.
    """
    path = Path(path)
    out: dict[str, list[Turn]] = {}
    for number, line in enumerate(_read_lines(path), 1):
        fields = line.split()
        if not fields or fields[0].startswith(";;") or fields[0] != "SPEAKER":
            continue
        if len(fields) < 8:
            _raise(path, number, f"a SPEAKER line has at least 8 fields (SPEAKER recording "
                                 f"channel onset duration <NA> <NA> speaker), got "
                                 f"{len(fields)}")
        try:
            onset, duration = float(fields[3]), float(fields[4])
        except ValueError:
            _raise(path, number, f"onset {fields[3]!r} and duration {fields[4]!r} must be "
                                 "numbers of seconds")
        if not (math.isfinite(onset) and math.isfinite(duration)) or onset < 0 or duration < 0:
            _raise(path, number, f"onset {fields[3]} and duration {fields[4]} must be finite "
                                 "and not negative")
        out.setdefault(fields[1], []).append(Turn(onset, onset + duration, fields[7]))
    for turns in out.values():
        turns.sort()
    return out


def format_rttm(recording: str, turns: Sequence[Turn]) -> str:
    """RTTM lines of one recording's turns (channel 1, times to the millisecond)."""
    check_tokens(Path(recording), [recording, *(t.speaker for t in turns)])
    return "".join(f"SPEAKER {recording} 1 {t.start:.3f} {t.duration:.3f} <NA> <NA> "
                   f"{t.speaker} <NA> <NA>\n" for t in sorted(turns))


def write_rttm(path: str | os.PathLike, recordings: Mapping[str, Sequence[Turn]]) -> None:
    """Write the turns of each recording (sorted by recording id, then start), atomically."""
    write_text_atomic(path, "".join(format_rttm(r, recordings[r]) for r in sorted(recordings)))


def read_uem(path: str | os.PathLike) -> dict[str, list[tuple[float, float]]]:
    """A NIST evaluation map (UEM): ``<recording> <channel> <start> <end>`` per line, the
    stretches of each recording to score.

    Raises
    ------
    DataDirError
        Naming the file and line.
    """
    path = Path(path)
    out: dict[str, list[tuple[float, float]]] = {}
    for number, line in enumerate(_read_lines(path), 1):
        fields = line.split()
        if not fields or fields[0].startswith(";;"):
            continue
        if len(fields) != 4:
            _raise(path, number, f"a UEM line is: recording channel start end; got "
                                 f"{len(fields)} fields")
        try:
            start, end = float(fields[2]), float(fields[3])
        except ValueError:
            _raise(path, number, f"start {fields[2]!r} and end {fields[3]!r} must be seconds")
        if not (math.isfinite(start) and math.isfinite(end)) or not 0 <= start <= end:
            _raise(path, number, f"need 0 <= start <= end, finite; got {fields[2]} {fields[3]}")
        out.setdefault(fields[0], []).append((start, end))
    return out
