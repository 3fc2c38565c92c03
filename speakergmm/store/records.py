"""The store's records: speakers (statistics, counts, timestamps), the UBM, channel and
system they are bound to, their self-calibration trials and S-norm terms, and the
calibration learnt from them, kept as JSON (see :mod:`speakergmm.store`). Nothing here
scores or calibrates: :mod:`.selfcal` and :mod:`.models` build on these records.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import sqlite3
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from ..constants import ADAPTABLE
from ..errors import ParameterError, printable
from ..gmm.adapt import SpeakerModel
from ..gmm.mixture import DiagGMM
from ..gmm.stats import GMMStats
from .database import (
    _INSERTED,
    _NORMS,
    _SPEAKER_COLUMNS,
    BadSpeakerId,
    Database,
    SpeakerExists,
    StoreError,
    UnknownSpeaker,
    _biases,
    _blob,
    _dtype,
    _fill_biases,
    _now,
)

__all__ = ["SpeakerRecords", "SpeakerInfo", "StatisticsBlock", "check_speaker_id"]

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+\-]{0,63}")

@dataclass(frozen=True)
class SpeakerInfo:
    """What the store knows of a speaker, without its parameters."""

    id: str
    utterances: int
    seconds: float
    frames: int
    ubm_fingerprint: str
    relevance: float
    adapt: tuple[str, ...]
    created: str
    updated: str



def check_speaker_id(speaker_id: str) -> str:
    """Return ``speaker_id`` if valid: 1-64 characters from ``A-Z a-z 0-9 _ . @ + -``,
    starting with a letter or digit; otherwise raise :class:`StoreError` saying so."""
    if not isinstance(speaker_id, str) or not _ID.fullmatch(speaker_id):
        raise BadSpeakerId(f"invalid speaker id {speaker_id!r}: use 1-64 characters from "
                         "letters, digits and _ . @ + -, starting with a letter or digit")
    return speaker_id



@dataclass(frozen=True)
class StatisticsBlock:
    """Up to a block of speakers' statistics as the store keeps them, sorted by id.

    Attributes
    ----------
    ids : list of str
    relevance : list of float
    adapt : list of tuple of str
        What each speaker's MAP adapts.
    n : np.ndarray [shape=(M, K)]
    f : np.ndarray [shape=(M, K, D)]
        float32 when every speaker adapts its means only (the common case), else float64.
    s : list of (np.ndarray [shape=(K, D)] or None)
        Second order, kept for speakers whose variances are adapted.
    bias : np.ndarray [shape=(M, K), dtype=float32] or None
        :func:`~speakergmm.gmm.adapt.map_offset_bias` of every speaker, when all have it.
    """

    ids: list
    relevance: list
    adapt: list
    n: np.ndarray
    f: np.ndarray
    s: list
    bias: np.ndarray | None = None


class SpeakerRecords(Database):
    """The speakers of one UBM (and channel compensation, and system) in an SQLite file.

    Parameters as :class:`~.database.Database`: the file and the seconds to wait for
    another process's transaction.
    """

    # --- UBM binding ------------------------------------------------------------------

    def ubm_fingerprint(self) -> str | None:
        """Fingerprint of the UBM this store belongs to (None while it is empty)."""
        if not self.path.exists():
            return None
        row = self._connect(create=False).execute(
            "SELECT value FROM meta WHERE key='ubm_fingerprint'").fetchone()
        return row[0] if row else None

    def channel_fingerprint(self) -> str | None:
        """Fingerprint of the speakers' eigenchannel compensation ("none"; None if empty)."""
        if not self.path.exists():
            return None
        return _bound_channel(self._connect(create=False))

    def system(self) -> dict | None:
        """``{"name", "fingerprint"}`` of the speakers' system (None: empty, or a bare UBM)."""
        return self._json_record("system", "fingerprint", "system record", "")

    def files(self) -> dict | None:
        """``{"ubm": path, "channel": path or None}`` of the bare UBM the store's speakers
        were last enrolled with (``enroll --ubm``), or None."""
        return self._json_record("files", "ubm", "record of its UBM files",
                                 "; give --ubm (and --channel)")

    def _json_record(self, key: str, field: str, what: str, fix: str) -> dict | None:
        """The JSON object the store keeps under ``key`` in its meta table (it must hold
        the string ``field``), or None."""
        if not self.path.exists():
            return None
        row = self._connect(create=False).execute(
            "SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        try:
            value = json.loads(row[0])
            if not isinstance(value, dict) or not isinstance(value.get(field), str):
                raise ValueError(f"not a {what}")  # (caught below)
        except ValueError as exc:
            raise StoreError(f"{self.path}: unreadable {what} ({exc}){fix}") from None
        return value

    def norms(self) -> dict[str, tuple[float, float]]:
        """Each speaker's S-norm Z side (mean, std); empty for stores of systems without a
        cohort."""
        if not self.path.exists():
            return {}
        conn = self._connect(create=False)
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='norms'"
                        ).fetchone() is None:
            return {}
        return {r["speaker"]: (r["mean"], r["std"])
                for r in self._rows("SELECT speaker, mean, std FROM norms")}

    def check_system(self, system: dict | None) -> None:
        """Raise :class:`StoreError` if the store records another system than ``system``
        (``{"name", "fingerprint"}``; None: a bare UBM)."""
        _check_system(self.path, self.system(), system)

    def check_ubm(self, ubm: DiagGMM, channel: str | None = None) -> None:
        """Raise :class:`StoreError` if the store belongs to another UBM, or to another
        channel compensation than ``channel`` (a fingerprint; None: no compensation)."""
        fp = self.ubm_fingerprint()
        if fp is not None and fp != ubm.fingerprint():
            raise StoreError(f"{self.path}: speakers here were enrolled with UBM {fp}, not with "
                             f"UBM {ubm.fingerprint()}; use the same --ubm, or another --store")
        _check_channel(self.path, self.channel_fingerprint(), channel)

    # --- writing ------------------------------------------------------------------------

    def enroll(self, speaker_id: str, model: SpeakerModel, ubm: DiagGMM, *, seconds: float,
               utterances: int, mode: str = "new", channel: str | None = None,
               trials=(), system: dict | None = None,
               norm: tuple[float, float] | None = None,
               files: dict | None = None,
               relearn: Callable[[tuple], str | None] | None = None) -> SpeakerInfo:
        """Add a speaker, or add audio to one, in one transaction.

        Parameters
        ----------
        speaker_id : str
        model : SpeakerModel
            Statistics of the new enrollment audio under ``ubm``.
        ubm : DiagGMM
        seconds : float
            Seconds of speech in the new audio.
        utterances : int
            Number of recordings in the new audio.
        mode : {"new", "append", "replace"}
            ``new`` refuses an existing speaker; ``append`` adds the audio to it (its
            statistics are summed, so the result equals enrolling everything at once);
            ``replace`` discards what it had.
        channel : str, optional
            Fingerprint of the eigenchannel compensation the audio went through (None:
            none). A store holds speakers of one compensation only, as of one UBM.
        trials : iterable of (recording, model, score, is_target)
            Self-calibration trials of the new recordings (numbered from 0 in the order
            given; stored after the speaker's earlier ones).
        system : dict, optional
            ``{"name": ..., "fingerprint": ...}`` of the system the speaker was enrolled
            with (:class:`~speakergmm.system.System`); the store records the first and
            refuses another.
        norm : (mean, std), optional
            The S-norm Z side of the speaker's model as it now is (after appending).
        files : dict, optional
            ``{"ubm": path, "channel": path or None}``: the files of a bare UBM (no
            system), recorded so that later commands need not name them again
            (:meth:`files`); the latest enrollment's are kept.
        relearn : callable, optional
            Called in the same transaction, after the new trials are stored, with every
            trial (as :meth:`calibration_trial_rows`); the calibration it returns (JSON) is
            kept as the store's own, None keeps the store's as it is: a crash never leaves
            an enrollment without the calibration learnt from it.
        """
        check_speaker_id(speaker_id)
        if mode not in ("new", "append", "replace"):
            raise ParameterError(f"mode must be 'new', 'append' or 'replace', got {mode!r}")
        fp = ubm.fingerprint()
        if model.ubm_fingerprint != fp:
            raise StoreError(f"speaker model of '{speaker_id}' was adapted from UBM "
                             f"{model.ubm_fingerprint}, not {fp}")
        with self._transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key='ubm_fingerprint'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('ubm_fingerprint', ?)", (fp,))
            elif row[0] != fp:
                raise StoreError(f"{self.path}: speakers here were enrolled with UBM {row[0]}, "
                                 f"not with UBM {fp}; use the same --ubm, or another --store")
            bound = _bound_channel(conn, empty=row is None)
            _check_channel(self.path, bound, channel)
            _bind_system(self.path, conn, system, empty=row is None)
            if files is not None:
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('files', ?)",
                             (json.dumps(files),))
            bound_row = conn.execute("SELECT 1 FROM meta WHERE key='channel_fingerprint'")
            if bound_row.fetchone() is None:
                conn.execute("INSERT INTO meta VALUES ('channel_fingerprint', ?)",
                             (channel or _NO_CHANNEL,))
            old = conn.execute("SELECT * FROM speakers WHERE id=?", (speaker_id,)).fetchone()
            now = _now()
            created, first = now, 0
            if old is not None:
                if mode == "new":
                    raise SpeakerExists(f"speaker '{speaker_id}' is already enrolled; use --append "
                                     "to add audio to it or --replace to start again")
                if mode == "append":
                    previous = self._model_from_row(old)
                    if (previous.relevance, previous.adapt) != (model.relevance, model.adapt):
                        raise StoreError(f"speaker '{speaker_id}' was enrolled with relevance "
                                         f"{previous.relevance} and adapted {previous.adapt}; "
                                         "append with the same settings")
                    model = previous.add(model)
                    first = old["utterances"]
                    seconds += old["seconds"]
                    utterances += old["utterances"]
                else:  # replace: its old trials go with its old audio
                    _forget_trials(conn, speaker_id)
                created = old["created"]
            stats = model.stats
            k = conn.execute("SELECT value FROM meta WHERE key='components'").fetchone()
            if k is None:
                conn.execute("INSERT INTO meta VALUES ('components', ?)", (str(ubm.n_components),))
                conn.execute("INSERT INTO meta VALUES ('dim', ?)", (str(ubm.dim),))
            means_only = model.adapt == ("means",)
            conn.execute(
                f"INSERT OR REPLACE INTO speakers ({_INSERTED}) VALUES "
                f"({','.join('?' * len(_SPEAKER_COLUMNS))})",
                (speaker_id, float(model.relevance), ",".join(model.adapt),
                 _blob(stats.n, _dtype(model.adapt)), _blob(stats.f, _dtype(model.adapt)),
                 _blob(stats.s, "<f8") if "variances" in model.adapt else None,
                 float(stats.llk), int(stats.frames), int(utterances), float(seconds),
                 created, now,
                 _blob(_biases(ubm, [stats.n], [stats.f], model.relevance)[0], "<f4")
                 if means_only else None))
            _fill_biases(conn, ubm)
            conn.execute(_NORMS)
            conn.execute("DELETE FROM norms WHERE speaker=?", (speaker_id,))
            if norm is not None:
                conn.execute("INSERT INTO norms VALUES (?,?,?)",
                             (speaker_id, float(norm[0]), float(norm[1])))
            conn.executemany("INSERT INTO trials VALUES (?,?,?,?,?)", [
                (speaker_id, first + int(r), m, float(sc), int(bool(t)))
                for r, m, sc, t in trials])
            if relearn is not None:
                kept = relearn(_trial_rows(conn.execute(_TRIALS)))
                if kept is not None:
                    _keep_calibration(conn, kept)
        return self.info(speaker_id)


    def delete(self, speaker_id: str, *,
               relearn: Callable[[tuple, str], str | None] | None = None) -> str | None:
        """Delete a speaker (StoreError if unknown) with its self-calibration trials and
        S-norm terms, in one transaction.

        A calibration the store had learnt was learnt partly from the speaker's trials: in
        the same transaction ``relearn(trials, calibration_json)`` is called with the trials
        left (as :meth:`calibration_trials`) and returns the calibration to keep (JSON) or
        None to drop it. Returns the calibration kept after the removal (JSON), or None.
        """
        with self._transaction() as conn:
            if conn.execute("DELETE FROM speakers WHERE id=?", (speaker_id,)).rowcount == 0:
                raise UnknownSpeaker(f"no speaker {printable(speaker_id)} in {self.path}")
            _forget_trials(conn, speaker_id)
            conn.execute(_NORMS)
            conn.execute("DELETE FROM norms WHERE speaker=?", (speaker_id,))
            row = conn.execute("SELECT value FROM meta WHERE key='calibration'").fetchone()
            if row is None:
                return None
            kept = None if relearn is None else relearn(
                counted_trials(_trial_rows(conn.execute(_TRIALS))), row[0])
            if kept is None:
                conn.execute("DELETE FROM meta WHERE key IN ('calibration', 'calibrated')")
            else:
                _keep_calibration(conn, kept)
            return kept

    # --- self-calibration records -----------------------------------------------------

    def calibration_trials(self) -> tuple[np.ndarray, np.ndarray, int]:
        """Target scores, non-target scores, and the number of speakers they come from."""
        if not self.path.exists():
            return np.zeros(0), np.zeros(0), 0
        return counted_trials(_trial_rows(self._rows(_TRIALS)))

    def calibration_trial_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                              np.ndarray]:
        """Every self-calibration trial: the recording's speaker, the model's speaker,
        the score and whether it is a target trial (arrays of one length)."""
        return _trial_rows(self._rows(_TRIALS) if self.path.exists() else [])

    def calibration_json(self) -> str | None:
        """The calibration the store learnt from its trials, as kept (JSON), or None."""
        if not self.path.exists():
            return None
        row = self._connect(create=False).execute(
            "SELECT value FROM meta WHERE key='calibration'").fetchone()
        return None if row is None else row[0]

    def keep_calibration(self, calibration_json: str) -> None:
        """Keep a calibration (JSON) as the store's own, in one transaction."""
        with self._transaction() as conn:
            _keep_calibration(conn, calibration_json)

    # --- reading ----------------------------------------------------------------------

    def _info_from_row(self, row, ubm_fingerprint: str) -> SpeakerInfo:
        self._check_row(row)
        return SpeakerInfo(row["id"], row["utterances"], row["seconds"], row["frames"],
                           ubm_fingerprint, row["relevance"], tuple(row["adapt"].split(",")),
                           row["created"], row["updated"])

    def _shape(self) -> tuple[int, int]:
        conn = self._connect(create=False)
        rows = [conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
                for key in ("components", "dim")]
        try:
            k, d = (int(r[0]) for r in rows)
            if k < 1 or d < 1:
                raise ValueError  # (caught below)
        except (TypeError, ValueError):
            raise StoreError(f"{self.path}: the store's model shape (components, dim) "
                             f"{tuple(None if r is None else printable(r[0]) for r in rows)} "
                             "is not two positive integers: the store is damaged") from None
        return k, d

    def _check_row(self, row) -> None:
        """StoreError naming the speaker when a value of its row (those ``row`` holds) is not
        what enrollment writes: a damaged or hand-edited record."""
        columns = row.keys()
        for column, ok in _ROW_CHECKS.items():
            if column in columns and not ok(row[column]):
                raise StoreError(
                    f"{self.path}: speaker {printable(row['id'])} has a damaged record "
                    f"({column} = {printable(row[column])[:60]}); remove it ('speakergmm "
                    "speakers remove ID') and enroll it again")

    def _statistics(self, row, k: int, d: int, *, second: bool = True):
        """A row's zeroth, first (and second) order statistics, checked against the store's
        shape: StoreError naming the speaker for a truncated or foreign blob."""
        self._check_row(row)
        dtype = _dtype(row["adapt"])
        wanted = {"stat_n": (dtype, (k,)), "stat_f": (dtype, (k, d))}
        if second and (row["stat_s"] is not None or "variances" in row["adapt"]):
            wanted["stat_s"] = ("<f8", (k, d))
        arrays = {}
        for column, (kind, shape) in wanted.items():
            blob = row[column]
            size = np.dtype(kind).itemsize * math.prod(shape)  # (np.prod: 10x slower here)
            if not isinstance(blob, bytes) or len(blob) != size:
                got = f"{len(blob)} bytes" if isinstance(blob, bytes) else type(blob).__name__
                raise StoreError(
                    f"{self.path}: speaker {printable(row['id'])} has damaged statistics "
                    f"({column}: {got}, expected {size} for K={k}, D={d}); remove it "
                    "('speakergmm speakers remove ID') and enroll it again")
            arrays[column] = np.frombuffer(blob, kind).reshape(shape)
        return arrays["stat_n"], arrays["stat_f"], arrays.get("stat_s")

    def _model_from_row(self, row) -> SpeakerModel:
        k, d = self._shape()
        n, f, s = self._statistics(row, k, d)
        stats = GMMStats(n, f, np.zeros((k, d)) if s is None else s, row["stat_llk"],
                         row["frames"])
        return SpeakerModel(stats=stats, ubm_fingerprint=self.ubm_fingerprint(),
                            relevance=row["relevance"], adapt=tuple(row["adapt"].split(",")),
                            utterances=row["utterances"])

    def _row(self, speaker_id: str):
        if not self.path.exists():
            raise UnknownSpeaker(f"{self.path}: no speaker store yet; enroll a speaker first")
        for row in self._rows("SELECT * FROM speakers WHERE id=?", (speaker_id,)):
            return row
        known = len(self)
        raise UnknownSpeaker(f"no speaker {printable(speaker_id)} in {self.path} ({known} "
                             "enrolled; 'speakergmm speakers list' shows them)")

    def info(self, speaker_id: str) -> SpeakerInfo:
        return self._info_from_row(self._row(speaker_id), self.ubm_fingerprint())

    def model(self, speaker_id: str) -> SpeakerModel:
        """The speaker's statistics (for adaptation with other settings, or export)."""
        return self._model_from_row(self._row(speaker_id))

    def list(self) -> list[SpeakerInfo]:
        """Every speaker, sorted by id."""
        if not self.path.exists():
            return []
        fp = self.ubm_fingerprint()
        return [self._info_from_row(r, fp) for r in self._rows(
            "SELECT id, utterances, seconds, frames, relevance, adapt, created, updated "
            "FROM speakers ORDER BY id")]

    def __len__(self) -> int:
        if not self.path.exists():
            return 0
        return next(self._rows("SELECT COUNT(*) AS n FROM speakers"))["n"]

    def check_enrolled(self) -> None:
        """StoreError saying what to do if there is no store yet, or nobody in it."""
        if not self.path.exists():
            raise StoreError(f"{self.path}: no speaker store yet; enroll a speaker first "
                             "('speakergmm enroll SPEAKER AUDIO...')")
        if len(self) == 0:
            raise StoreError(f"{self.path}: no speakers enrolled; enroll some first")

    def statistics_blocks(self, k: int, d: int, *, block: int,
                          ids=None) -> Iterator[StatisticsBlock]:
        """Every speaker's statistics (or those of ``ids``) in blocks of at most ``block``
        speakers sorted by id, checked against the store's shape (K, D) = ``(k, d)``:
        memory is bounded by the block, not by the store."""
        self.check_enrolled()
        if (k, d) != self._shape():
            raise StoreError(f"{self.path}: the store records models of shape {self._shape()}, "
                             f"its UBM has (K, D) = {(k, d)}: the store is damaged")
        ids = None if ids is None else list(ids)
        where = "" if ids is None else f"WHERE id IN ({','.join('?' * len(ids))}) "
        columns = ("id", "relevance", "adapt", "stat_n", "stat_f", "stat_bias")
        rows = self._rows(f"SELECT {', '.join(columns)} FROM speakers {where}ORDER BY id",
                          tuple(ids or ()), plain=True)
        checked: set[tuple] = set()
        while chunk := list(itertools.islice(rows, block)):
            # Checked per distinct enrollment setting and blob size, not per row: with
            # thousands of speakers the row-by-row checks cost as much as the scoring.
            for r in chunk:
                key = (type(r[0]), r[1], r[2], len(r[3]) if isinstance(r[3], bytes) else -1,
                       len(r[4]) if isinstance(r[4], bytes) else -1)
                if key not in checked or not r[0]:
                    self._statistics(dict(zip(columns, r)), k, d, second=False)
                    checked.add(key)
            ids_chunk = [r[0] for r in chunk]
            adapt = [tuple(r[2].split(",")) for r in chunk]
            relevance = [r[1] for r in chunk]
            if all(a == ("means",) for a in adapt):  # float32 as kept, in one copy
                n = np.frombuffer(b"".join(r[3] for r in chunk), "<f4").reshape(-1, k)
                f = np.frombuffer(b"".join(r[4] for r in chunk), "<f4").reshape(-1, k, d)
                kept = all(isinstance(r[5], bytes) and len(r[5]) == 4 * k for r in chunk)
                bias = (np.frombuffer(b"".join(r[5] for r in chunk), "<f4").reshape(-1, k)
                        if kept else None)
                yield StatisticsBlock(ids_chunk, relevance, adapt, n, f, [None] * len(chunk),
                                      bias)
                continue
            stats = [self._statistics(self._row(i), k, d) for i in ids_chunk]
            yield StatisticsBlock(ids_chunk, relevance, adapt,
                                  np.stack([st[0] for st in stats]).astype(np.float64),
                                  np.stack([st[1] for st in stats]).astype(np.float64),
                                  [st[2] for st in stats])


_NO_CHANNEL = "none"
_TRIALS = "SELECT speaker, model, score, target FROM trials"


def _bound_channel(conn: sqlite3.Connection, *, empty: bool | None = None) -> str | None:
    """The store's channel fingerprint; stores written before compensation existed record
    none, and their speakers were enrolled without it. None for an empty store."""
    row = conn.execute("SELECT value FROM meta WHERE key='channel_fingerprint'").fetchone()
    if row is not None:
        return row[0]
    if empty is None:
        empty = conn.execute("SELECT 1 FROM meta WHERE key='ubm_fingerprint'").fetchone() is None
    return None if empty else _NO_CHANNEL


def _check_channel(path, bound: str | None, channel: str | None) -> None:
    want = channel or _NO_CHANNEL
    if bound is None or bound == want:
        return
    were = ("without channel compensation" if bound == _NO_CHANNEL
            else f"with channel compensation {bound}")
    now = "none is given" if want == _NO_CHANNEL else f"channel {want} is given"
    raise StoreError(f"{path}: speakers here were enrolled {were}, but {now}; use the same "
                     "--channel (or none), or another --store")


def _bind_system(path, conn: sqlite3.Connection, system: dict | None, *, empty: bool) -> None:
    """Record the system of a new store; refuse another system than the recorded one."""
    row = conn.execute("SELECT value FROM meta WHERE key='system'").fetchone()
    if row is None:
        if system is not None and empty:
            conn.execute("INSERT INTO meta VALUES ('system', ?)",
                         (json.dumps(system, sort_keys=True),))
        elif system is not None:
            raise StoreError(f"{path}: its speakers were enrolled with a bare UBM (--ubm), "
                             f"not with system '{system['name']}'; use the same --ubm, or "
                             "another --store")
        return
    _check_system(path, json.loads(row[0]), system)


def _check_system(path, bound: dict | None, system: dict | None) -> None:
    """Refuse to score or enroll with another system than the one the store records."""
    if bound is None or (system is not None
                         and bound.get("fingerprint") == system.get("fingerprint")):
        return
    given = "a bare UBM" if system is None else (
        f"system '{system['name']}' ({system['fingerprint']})")
    raise StoreError(f"{path}: its speakers were enrolled with system '{bound.get('name')}' "
                     f"({bound.get('fingerprint')}), not with {given}; use --system "
                     f"{bound.get('name')}, or another --store")


def counted_trials(arrays) -> tuple[np.ndarray, np.ndarray, int]:
    """Trials as (speaker, model, score, target) arrays (:func:`_trial_rows`) as target
    scores, non-target scores and the number of speakers they come from."""
    speaker, _, score, target = arrays
    return score[target], score[~target], len(set(speaker))


def _trial_rows(rows) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows of (speaker, model, score, target) as four arrays."""
    rows = [tuple(r) for r in rows]
    return (np.array([r[0] for r in rows], dtype=object),
            np.array([r[1] for r in rows], dtype=object),
            np.array([r[2] for r in rows], dtype=np.float64),
            np.array([bool(r[3]) for r in rows], dtype=bool))


def _forget_trials(conn: sqlite3.Connection, speaker_id: str) -> None:
    """A speaker's calibration trials, as recording owner or as model, are deleted."""
    conn.execute("DELETE FROM trials WHERE speaker=? OR model=?", (speaker_id, speaker_id))


def _keep_calibration(conn: sqlite3.Connection, calibration_json: str) -> None:
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('calibration', ?)", (calibration_json,))
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('calibrated', ?)", (_now(),))


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


# What each scalar column of a speaker's row must hold (the blobs are checked by shape).
_ROW_CHECKS = {
    "id": lambda v: isinstance(v, str) and v != "",
    "relevance": lambda v: _number(v) and v > 0,
    "adapt": lambda v: isinstance(v, str) and bool(v) and len(set(v.split(","))) == len(
        v.split(",")) and set(v.split(",")) <= set(ADAPTABLE),
    "stat_llk": lambda v: _number(v) or (isinstance(v, float) and v == -math.inf),
    "frames": lambda v: isinstance(v, int) and v >= 0,
    "utterances": lambda v: isinstance(v, int) and v >= 0,
    "seconds": lambda v: _number(v) and v >= 0,
    "created": lambda v: isinstance(v, str),
    "updated": lambda v: isinstance(v, str),
}
