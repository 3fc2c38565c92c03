"""The speaker store: enrolled speakers in one SQLite file.

One file holds every speaker enrolled against one UBM: their summed Baum-Welch statistics,
zeroth and first order in float32, the precision the E-step computes them in, 125 KB per
speaker at K = 512, D = 60, and one derived term per component (2 KB): the bias of the
means-only model (:func:`~speakergmm.gmm.adapt.map_offset_bias`), which identification over
thousands of speakers would otherwise make again at every call (a quarter of its time). Speakers whose variances are
adapted also keep the second order, and all three in float64 (the adapted variance is a
difference of second moments, which float32 sums would blur): 490 KB each. Enrolling more
audio later adds statistics, so it gives the model enrolling everything at once would, to
float32 rounding. The MAP-adapted parameters
are computed from the statistics when a speaker is scored, for thousands of speakers at once
(:func:`~speakergmm.gmm.adapt.map_parameters`), and identification reads the store in
blocks, so its memory does not grow with the number of speakers. The store also records
the fingerprints of the UBM and of the channel compensation, utterance counts, seconds of
speech and timestamps.

Stores written by earlier versions are migrated on first use, in one transaction: schema 1
(float64 statistics of every order and stored adapted parameters, about 0.7 MB per speaker)
with a warning saying so, nothing lost but the derived parameters; schema 2 (no biases)
gains the column, and the next enrollment, which has the UBM at hand, fills it.

Every change is one ``BEGIN IMMEDIATE`` transaction in WAL mode, so concurrent ``enroll``
processes are serialised by SQLite and lose nothing, and a crash leaves the store as it was
before the change. All SQL is parameterised.

The default store is ``$SPEAKERGMM_HOME/speakers.db``, with ``SPEAKERGMM_HOME`` defaulting
to ``$XDG_DATA_HOME/speakergmm`` or ``~/.local/share/speakergmm``.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import sqlite3
import time
import urllib.parse
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .backend.calibration import MIN_CALIBRATION, Calibration
from .backend.scoring import ModelSet
from .constants import ADAPTABLE
from .errors import SpeakerGMMError, SpeakerGMMWarning, printable
from .gmm.adapt import SpeakerModel, map_offset_bias, map_parameters
from .gmm.mixture import DiagGMM
from .gmm.stats import GMMStats

__all__ = ["SpeakerStore", "SpeakerInfo", "StoreError", "StoreMigrated", "default_store_path",
           "check_speaker_id", "MIN_CALIBRATION", "AUTO_CALIBRATION"]

SCHEMA_VERSION = 3
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+\-]{0,63}")
# Speakers read per block when many are scored: bounds memory (a block's rows as SQLite
# returns them, their statistics joined, and the scoring temporaries: ~100 MB at K = 512,
# D = 60) whatever the size of the store. Fewer or more were slower in a fresh process.
_BLOCK = 256
_MMAP_BYTES = 4294967296

_SPEAKERS = """
CREATE TABLE IF NOT EXISTS speakers (
    id TEXT PRIMARY KEY,
    relevance REAL NOT NULL,
    adapt TEXT NOT NULL,
    stat_n BLOB NOT NULL,
    stat_f BLOB NOT NULL,
    stat_s BLOB,
    stat_llk REAL NOT NULL,
    frames INTEGER NOT NULL,
    utterances INTEGER NOT NULL,
    seconds REAL NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    stat_bias BLOB
)"""
_SPEAKER_COLUMNS = tuple(line.split()[0] for line in _SPEAKERS.splitlines()[2:-1])
_INSERTED = ", ".join(_SPEAKER_COLUMNS)
_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
# Self-calibration trials, scored at enrollment while the frames are at hand: each new
# recording against its speaker's model without it (target) and against some of the other
# speakers' models (non-target). A few floats per recording instead of its statistics.
_TRIALS = """
CREATE TABLE IF NOT EXISTS trials (
    speaker TEXT NOT NULL,
    recording INTEGER NOT NULL,
    model TEXT NOT NULL,
    score REAL NOT NULL,
    target INTEGER NOT NULL
)"""
# S-norm's Z side of each speaker (its model scored against the system's cohort recordings,
# once, at enrollment): stores of systems without a cohort leave it empty. Created on the
# first enrollment that needs it, so stores written before it existed are read as they are.
_NORMS = """
CREATE TABLE IF NOT EXISTS norms (
    speaker TEXT PRIMARY KEY,
    mean REAL NOT NULL,
    std REAL NOT NULL
)"""
#: Enrollment re-learns the store's calibration by itself once it has this many trials
#: (a system's calibration describes its training corpus; the store's own trials describe
#: the audio it is really used on: on FSDD through the telephone system, false alarms at
#: the default decision fall from 52% to 6%).
AUTO_CALIBRATION = {"target": 50, "nontarget": 200, "speakers": 5}


class StoreMigrated(SpeakerGMMWarning):
    """A store written by an earlier speakergmm was converted to the current schema."""


class StoreError(SpeakerGMMError):
    """The store is unreadable, of another UBM, or asked for a speaker it lacks."""


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


def default_store_path() -> Path:
    """``$SPEAKERGMM_HOME/speakers.db`` (see the module docstring for the default home)."""
    home = os.environ.get("SPEAKERGMM_HOME")
    if not home:
        data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"),
                                                                ".local", "share")
        home = os.path.join(data, "speakergmm")
    return Path(home) / "speakers.db"


def check_speaker_id(speaker_id: str) -> str:
    """Return ``speaker_id`` if valid: 1-64 characters from ``A-Z a-z 0-9 _ . @ + -``,
    starting with a letter or digit; otherwise raise :class:`StoreError` saying so."""
    if not isinstance(speaker_id, str) or not _ID.fullmatch(speaker_id):
        raise StoreError(f"invalid speaker id {speaker_id!r}: use 1-64 characters from "
                         "letters, digits and _ . @ + -, starting with a letter or digit")
    return speaker_id


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _blob(a: np.ndarray, dtype: str) -> bytes:
    return np.ascontiguousarray(a, dtype=dtype).tobytes()


class SpeakerStore:
    """Enrolled speakers of one UBM, in an SQLite file.

    Parameters
    ----------
    path : path-like, optional
        The store file; :func:`default_store_path` if None. Created on first write.
    timeout : float
        Seconds to wait for another process's transaction to finish.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, timeout: float = 60.0):
        self.path = Path(path) if path is not None else default_store_path()
        self.timeout = timeout
        self._conn: sqlite3.Connection | None = None
        self._writable = False

    # --- connection and transactions ------------------------------------------------------

    def _connect(self, *, create: bool) -> sqlite3.Connection:
        """Readers only read: no journal-mode switch, no schema, nothing written (SQLite
        opens a file it may not write read-only), and no wait for a writer (WAL readers
        see the last commit). Writers create the store. Either way, a file that is not a
        speakergmm store is refused before anything is done to it."""
        if self._conn is not None and (self._writable or not create):
            return self._conn
        self.close()
        if not self.path.exists():
            if not create:
                raise StoreError(f"{self.path}: no speaker store yet; enroll a speaker first "
                                 "('speakergmm enroll SPEAKER AUDIO...')")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if create and len(os.fsencode(self.path.name)) + 4 > 255:  # before SQLite makes it
            raise StoreError(f"{self.path}: cannot open the store: {self._why_not_open()}")
        conn = None
        try:
            conn = sqlite3.connect(*self._address(create), timeout=self.timeout,
                                   isolation_level=None, uri=True)
            conn.row_factory = sqlite3.Row
            # Reading the statistics through a memory map instead of read() into SQLite's
            # page cache: identification over 10,000 speakers reads 0.5 GB.
            conn.execute(f"PRAGMA mmap_size={_MMAP_BYTES}")
            version = self._check_store(conn)
            if not create and version is None:
                raise StoreError(f"{self.path}: an empty file, no speaker store yet; enroll a "
                                 "speaker first ('speakergmm enroll SPEAKER AUDIO...')")
            if not create and version != SCHEMA_VERSION:
                conn.close()  # an older store is converted once, which is a write
                return self._connect(create=True)
            if create:
                # Switching to WAL and creating the schema need a moment of exclusive
                # access; SQLite's busy handler does not cover the journal-mode switch.
                self._retry(lambda: conn.execute("PRAGMA journal_mode=WAL"))
                conn.execute("PRAGMA synchronous=NORMAL")
                self._retry(lambda: self._create_schema(conn))
        except BaseException as exc:
            if conn is not None:
                conn.close()  # (or SQLite's -wal and -shm files stay beside the store)
            if not isinstance(exc, sqlite3.DatabaseError):
                raise
            raise self._database_error(exc) from None
        self._conn, self._writable = conn, create
        return conn

    def _address(self, create: bool) -> tuple[str]:
        """The SQLite URI to open. A reader of a store in a folder it may not write (a
        shared, read-only store) cannot make the -shm file a WAL reader needs: it opens
        the store immutable, which reads without it. That is safe only while nobody
        writes the store, so only when no -wal file shows a writer at work."""
        uri = "file:" + urllib.parse.quote(str(self.path.resolve()))
        if not create and not os.access(self.path.parent, os.W_OK) and not Path(
                f"{self.path}-wal").exists():
            return (uri + "?mode=ro&immutable=1",)
        return (uri,)

    def _database_error(self, exc: sqlite3.DatabaseError) -> StoreError:
        """SQLite's error as one line naming the store and the fix."""
        if "unable to open" in str(exc):
            return StoreError(f"{self.path}: cannot open the store: {self._why_not_open()}")
        if "readonly" in str(exc) or "read-only" in str(exc):
            return StoreError(f"{self.path}: the store is read-only here ({exc}); enrolling and "
                              "removing need the right to write it and its folder")
        if "locked" in str(exc) or "busy" in str(exc):
            return StoreError(f"{self.path}: store is busy ({exc})")
        return StoreError(f"{self.path}: not a readable speaker store ({exc})")

    def _why_not_open(self) -> str:
        """Why SQLite could not open the store ("unable to open database file" says
        nothing of it), with the fix."""
        folder = self.path.parent
        if self.path.is_dir():
            return "it is a folder; give a file path, e.g. speakers.db inside it"
        if not folder.is_dir():
            return f"the folder {folder} does not exist or is not a folder"
        if not os.access(folder, os.W_OK | os.X_OK):
            return (f"the folder {folder} may not be written (SQLite keeps its -wal and "
                    "-shm files beside the store); choose a folder you may write")
        if len(os.fsencode(self.path.name)) + 4 > 255:
            return (f"its name is {len(os.fsencode(self.path.name))} bytes, and SQLite's "
                    "-wal file beside it would pass the file system's 255; use a name of "
                    "251 bytes or fewer")
        return "check that the file and its folder are readable and the disk not full"

    def _check_store(self, conn: sqlite3.Connection) -> int | None:
        """The schema version of a speakergmm store (None: an empty SQLite file, which a
        writer may make one); StoreError for any other SQLite file, whose tables this
        never touches, and for a damaged or newer store."""
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        if not tables:
            return None
        row = (conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
               if "meta" in tables else None)
        if row is None or "speakers" not in tables:
            raise StoreError(f"{self.path}: not a speakergmm speaker store (an SQLite file with "
                             f"the tables {', '.join(printable(t) for t in tables[:6])}); it "
                             "was left as it is: give --store a speakergmm store or a new file")
        try:
            version = int(row[0])
        except (TypeError, ValueError):
            raise StoreError(f"{self.path}: store schema version {printable(row[0])} is not a "
                             "number: the store is damaged") from None
        if not 1 <= version <= SCHEMA_VERSION:
            raise StoreError(f"{self.path}: store schema version {version}, this speakergmm "
                             f"reads versions 1 to {SCHEMA_VERSION}; use a newer speakergmm")
        columns = {r[1] for r in conn.execute("PRAGMA table_info(speakers)")}
        missing = sorted(set(_SPEAKER_COLUMNS) - columns) if version == SCHEMA_VERSION else []
        if missing:
            raise StoreError(f"{self.path}: the store's speakers table lacks the column(s) "
                             f"{', '.join(missing)}: the store is damaged")
        return version

    def _retry(self, action):
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            try:
                return action()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise StoreError(f"{self.path}: store is busy ({exc})") from None
                time.sleep(delay)
                delay = min(0.2, delay * 2)

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        migrated = None
        try:
            conn.execute(_META)
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                conn.execute(_SPEAKERS)
                conn.execute(_TRIALS)
                conn.execute("INSERT INTO meta VALUES ('schema_version', ?)",
                             (str(SCHEMA_VERSION),))
            elif int(row[0]) == 1:  # (_check_store has vetted the version)
                migrated = _migrate_from_1(conn)
            elif int(row[0]) == 2:
                conn.execute("ALTER TABLE speakers ADD COLUMN stat_bias BLOB")
                conn.execute("UPDATE meta SET value=? WHERE key='schema_version'",
                             (str(SCHEMA_VERSION),))
            if row is not None and int(row[0]) < SCHEMA_VERSION:
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('biases_pending', '1')")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if migrated is not None:
            before = self.path.stat().st_size
            conn.execute("VACUUM")  # give the space of the dropped columns back
            warnings.warn(f"{self.path}: converted {migrated} speaker(s) from store schema 1 "
                          f"to {SCHEMA_VERSION} (statistics kept, float32; adapted parameters "
                          f"now computed when scoring): {before / 1e6:.1f} MB -> "
                          f"{self.path.stat().st_size / 1e6:.1f} MB", StoreMigrated,
                          stacklevel=2)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn, self._writable = None, False

    def __enter__(self) -> "SpeakerStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _transaction(self):
        store = self

        class _Tx:
            def __enter__(self_inner):
                self_inner.conn = store._connect(create=True)
                try:
                    self_inner.conn.execute("BEGIN IMMEDIATE")
                except sqlite3.DatabaseError as exc:
                    raise store._database_error(exc) from None
                return self_inner.conn

            def __exit__(self_inner, exc_type, exc, tb):
                try:
                    self_inner.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
                except sqlite3.DatabaseError as error:
                    raise store._database_error(error) from None
                if isinstance(exc, sqlite3.DatabaseError):
                    raise store._database_error(exc) from None
                return False

        return _Tx()

    # --- UBM binding ------------------------------------------------------------------

    def ubm_fingerprint(self) -> str | None:
        """Fingerprint of the UBM this store belongs to (None while it is empty)."""
        if not self.path.exists():
            return None
        row = self._connect(create=False).execute(
            "SELECT value FROM meta WHERE key='ubm_fingerprint'").fetchone()
        return row[0] if row else None

    def channel_fingerprint(self) -> str | None:
        """Fingerprint of the eigenchannel compensation this store's speakers were enrolled
        with: ``"none"`` without one, None while the store is empty."""
        if not self.path.exists():
            return None
        return _bound_channel(self._connect(create=False))

    def system(self) -> dict | None:
        """``{"name", "fingerprint"}`` of the system the store's speakers were enrolled
        with; None for an empty store or one written before systems (a bare UBM)."""
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
                raise ValueError(f"not a {what}")
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
               files: dict | None = None) -> SpeakerInfo:
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
        """
        check_speaker_id(speaker_id)
        if mode not in ("new", "append", "replace"):
            raise ValueError(f"mode must be 'new', 'append' or 'replace', got {mode!r}")
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
                    raise StoreError(f"speaker '{speaker_id}' is already enrolled; use --append "
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
        return self.info(speaker_id)

    def remove(self, speaker_id: str) -> Calibration | None:
        """Delete a speaker (StoreError if unknown) with its self-calibration trials.

        A calibration the store had learnt was learnt partly from the speaker's trials: it
        is learnt again, in the same transaction, from the trials left when they reach
        :data:`MIN_CALIBRATION`, else dropped (the system's calibration is in force
        again). Returns the store's calibration after the removal, or None.
        """
        with self._transaction() as conn:
            if conn.execute("DELETE FROM speakers WHERE id=?", (speaker_id,)).rowcount == 0:
                raise StoreError(f"no speaker {printable(speaker_id)} in {self.path}")
            _forget_trials(conn, speaker_id)
            conn.execute(_NORMS)
            conn.execute("DELETE FROM norms WHERE speaker=?", (speaker_id,))
            row = conn.execute("SELECT value FROM meta WHERE key='calibration'").fetchone()
            if row is None:
                return None
            trials = _split_trials(conn.execute("SELECT speaker, score, target FROM trials"))
            if not self.has_trials(MIN_CALIBRATION, trials):
                conn.execute("DELETE FROM meta WHERE key IN ('calibration', 'calibrated')")
                return None
            cal = Calibration().fit(trials[0], trials[1],
                                    prior=Calibration.from_json(row[0]).prior_)
            self._keep_calibration(conn, cal)
            return cal

    # --- self-calibration -------------------------------------------------------------

    def calibration_trials(self) -> tuple[np.ndarray, np.ndarray, int]:
        """Target scores, non-target scores, and the number of speakers they come from."""
        if not self.path.exists():
            return np.zeros(0), np.zeros(0), 0
        return _split_trials(self._rows("SELECT speaker, score, target FROM trials"))

    def calibrate(self, *, prior: float = 0.01) -> Calibration:
        """Learn the store's calibration from its self-calibration trials and keep it.

        Raises
        ------
        StoreError
            Fewer trials or speakers than :data:`MIN_CALIBRATION`, naming how many more
            are needed.
        """
        tar, non, speakers = self.calibration_trials()
        if not self.has_trials(MIN_CALIBRATION, (tar, non, speakers)):
            raise StoreError(
                f"{self.path}: {tar.size} target and {non.size} non-target calibration trials "
                f"from {speakers} speaker(s); self-calibration needs at least "
                f"{MIN_CALIBRATION['target']} target and {MIN_CALIBRATION['nontarget']} "
                f"non-target trials from {MIN_CALIBRATION['speakers']} speakers: enroll more "
                "speakers, each with two recordings or more (their trials are scored as "
                "they enroll)")
        cal = Calibration().fit(tar, non, prior=prior)
        with self._transaction() as conn:
            self._keep_calibration(conn, cal)
        return cal

    @staticmethod
    def _keep_calibration(conn: sqlite3.Connection, cal: Calibration) -> None:
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('calibration', ?)", (cal.to_json(),))
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('calibrated', ?)", (_now(),))

    def has_trials(self, needed: dict, trials=None) -> bool:
        """Whether the store's self-calibration trials reach ``needed`` (as
        :data:`MIN_CALIBRATION`)."""
        tar, non, speakers = self.calibration_trials() if trials is None else trials
        have = {"target": tar.size, "nontarget": non.size, "speakers": speakers}
        return all(have[k] >= v for k, v in needed.items())

    def calibration(self) -> Calibration | None:
        """The store's calibration (:meth:`calibrate`), or None."""
        if not self.path.exists():
            return None
        row = self._connect(create=False).execute(
            "SELECT value FROM meta WHERE key='calibration'").fetchone()
        if row is None:
            return None
        try:
            return Calibration.from_json(row[0])
        except SpeakerGMMError as exc:
            raise StoreError(f"{self.path}: stored calibration unreadable ({exc}); run "
                             "'speakergmm speakers calibrate' again") from None

    # --- reading ----------------------------------------------------------------------

    def _rows(self, sql: str, args: tuple = (), *, plain: bool = False
              ) -> Iterator[sqlite3.Row]:
        """The rows of a query, as :class:`sqlite3.Row` (or tuples: ``plain``, for bulk
        reads), StoreError for a damaged store."""
        conn = self._connect(create=False)
        try:
            cursor = conn.cursor()
            if plain:
                cursor.row_factory = None
            cursor.execute(sql, args)
            row = next(cursor, None)
            while row is not None:
                # (not ``yield from``: closing a generator left half-read would close the
                # cursor, and fail once the connection is closed)
                yield row
                row = next(cursor, None)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot read the store ({exc})") from None

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
                raise ValueError
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
            raise StoreError(f"{self.path}: no speaker store yet; enroll a speaker first")
        for row in self._rows("SELECT * FROM speakers WHERE id=?", (speaker_id,)):
            return row
        known = len(self)
        raise StoreError(f"no speaker {printable(speaker_id)} in {self.path} ({known} enrolled; "
                         "'speakergmm speakers list' shows them)")

    def info(self, speaker_id: str) -> SpeakerInfo:
        return self._info_from_row(self._row(speaker_id), self.ubm_fingerprint())

    def model(self, speaker_id: str) -> SpeakerModel:
        """The speaker's statistics (for adaptation with other settings, or export)."""
        return self._model_from_row(self._row(speaker_id))

    def adapted(self, speaker_id: str, ubm: DiagGMM, channel: str | None = None) -> DiagGMM:
        """The speaker's MAP-adapted model (checked against ``ubm`` and ``channel``, as
        :meth:`check_ubm`)."""
        self.check_ubm(ubm, channel)
        return self.model(speaker_id).adapted(ubm)

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

    def model_sets(self, ubm: DiagGMM, channel: str | None = None, *,
                   block: int = _BLOCK, ids=None) -> Iterator[ModelSet]:
        """Every speaker (or those of ``ids``), MAP-adapted and stacked for scoring, in
        blocks of at most ``block`` speakers sorted by id (checked against ``ubm`` and
        ``channel``, as :meth:`check_ubm`): memory is bounded by the block, not by the
        store."""
        if not self.path.exists():
            raise StoreError(f"{self.path}: no speaker store yet; enroll a speaker first "
                             "('speakergmm enroll SPEAKER AUDIO...')")
        self.check_ubm(ubm, channel)
        if len(self) == 0:
            raise StoreError(f"{self.path}: no speakers enrolled; enroll some first")
        k, d = ubm.n_components, ubm.dim
        ids = None if ids is None else list(ids)
        where = "" if ids is None else f"WHERE id IN ({','.join('?' * len(ids))}) "
        if (k, d) != self._shape():
            raise StoreError(f"{self.path}: the store records models of shape {self._shape()}, "
                             f"its UBM has (K, D) = {(k, d)}: the store is damaged")
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
            groups: dict[tuple[float, str], list[int]] = {}
            for i, r in enumerate(chunk):  # speakers enrolled alike are adapted together
                groups.setdefault((r[1], r[2]), []).append(i)
            ids_chunk = [r[0] for r in chunk]
            if len(groups) == 1 and next(iter(groups))[1] == "means":
                # the common case, in one float32 pass from the statistics
                n = np.frombuffer(b"".join(r[3] for r in chunk), "<f4").reshape(-1, k)
                f = np.frombuffer(b"".join(r[4] for r in chunk), "<f4").reshape(-1, k, d)
                kept = all(isinstance(r[5], bytes) and len(r[5]) == 4 * k for r in chunk)
                bias = (np.frombuffer(b"".join(r[5] for r in chunk), "<f4").reshape(-1, k)
                        if kept else None)
                yield ModelSet.from_statistics(ubm, n, f, relevance=next(iter(groups))[0],
                                               ids=ids_chunk, bias=bias)
                continue
            stats = [self._statistics(self._row(i), k, d) for i in ids_chunk]
            n = np.stack([st[0] for st in stats])
            f = np.stack([st[1] for st in stats])
            means_only = all(adapt == "means" for _, adapt in groups)
            means = np.empty((len(chunk), k, d), np.float32)
            if not means_only:
                weights = np.empty((len(chunk), k))
                variances = np.empty((len(chunk), k, d), np.float32)
            for (relevance, adapt), idx in groups.items():
                s = None if "variances" not in adapt else np.stack([stats[i][2] for i in idx])
                w, mu, var = map_parameters(ubm, n[idx], f[idx], s, relevance=relevance,
                                            adapt=adapt)
                means[idx] = mu
                if not means_only:
                    weights[idx], variances[idx] = w, var
            extra = {} if means_only else {"weights": weights, "variances": variances}
            yield ModelSet(ubm, means, ids=ids_chunk, **extra)

    def parameters(self, ubm: DiagGMM, channel: str | None = None
                   ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """All speakers' adapted parameters as stacked float32 arrays (checked against
        ``ubm`` and ``channel``, as :meth:`check_ubm`). Holds every speaker in memory:
        identification reads :meth:`model_sets` instead.

        Returns
        -------
        ids : list of str, sorted
        weights : np.ndarray [shape=(M, K), dtype=float32]
        means : np.ndarray [shape=(M, K, D), dtype=float32]
        variances : np.ndarray [shape=(M, K, D), dtype=float32]
        """
        ids, weights, means, variances = [], [], [], []
        for speaker in (s.id for s in self.list()) if len(self) else ():
            g = self.adapted(speaker, ubm, channel)
            ids.append(speaker)
            weights.append(g.weights)
            means.append(g.means)
            variances.append(g.variances)
        if not ids:
            self.check_ubm(ubm, channel)
            raise StoreError(f"{self.path}: no speakers enrolled; enroll some first")
        return (ids, np.stack(weights).astype(np.float32), np.stack(means).astype(np.float32),
                np.stack(variances).astype(np.float32))


_NO_CHANNEL = "none"


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


def _split_trials(rows) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows of (speaker, score, target) as target scores, non-target scores and the number
    of speakers they come from."""
    rows = [tuple(r) for r in rows]
    scores = np.array([r[1] for r in rows], dtype=np.float64)
    target = np.array([bool(r[2]) for r in rows], dtype=bool)
    return scores[target], scores[~target], len({r[0] for r in rows})


def _forget_trials(conn: sqlite3.Connection, speaker_id: str) -> None:
    """A speaker's calibration trials, as recording owner or as model, are deleted."""
    conn.execute("DELETE FROM trials WHERE speaker=? OR model=?", (speaker_id, speaker_id))


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


def _biases(ubm: DiagGMM, n, f, relevance: float) -> np.ndarray:
    return map_offset_bias(ubm, np.stack(n), np.stack(f), relevance=relevance)


def _fill_biases(conn: sqlite3.Connection, ubm: DiagGMM) -> None:
    """Make the biases a store migrated from schema 2 lacks, in the caller's transaction:
    once, at its first enrollment (the first that has the UBM)."""
    if conn.execute("SELECT 1 FROM meta WHERE key='biases_pending'").fetchone() is None:
        return
    conn.execute("DELETE FROM meta WHERE key='biases_pending'")
    k, d = ubm.n_components, ubm.dim
    rows = conn.execute("SELECT id, relevance, stat_n, stat_f FROM speakers WHERE "
                        "stat_bias IS NULL AND adapt='means'").fetchall()
    for row in rows:
        n, f = row["stat_n"], row["stat_f"]
        if len(n) != 4 * k or len(f) != 4 * k * d:
            continue  # a damaged record: refused, naming the speaker, when it is read
        bias = _biases(ubm, [np.frombuffer(n, "<f4")], [np.frombuffer(f, "<f4").reshape(k, d)],
                       row["relevance"])[0]
        conn.execute("UPDATE speakers SET stat_bias=? WHERE id=?", (_blob(bias, "<f4"), row["id"]))


def _dtype(adapt) -> str:
    """Storage of a speaker's statistics: float32 (as the E-step computes them), float64
    when variances are adapted (a difference of second moments, which float32 would blur)."""
    return "<f8" if "variances" in adapt else "<f4"


def _migrate_from_1(conn: sqlite3.Connection) -> int:
    """Schema 1 -> 2 inside the caller's transaction: float64 statistics of every order and
    stored adapted parameters become float32 statistics (second order only where variances
    are adapted); the UBM's shape moves to the meta table. Returns the speakers converted."""
    rows = conn.execute("SELECT * FROM speakers").fetchall()
    conn.execute("ALTER TABLE speakers RENAME TO speakers_v1")
    conn.execute(_SPEAKERS)
    conn.execute(_TRIALS)
    for row in rows:
        adapt = row["adapt"]
        conn.execute(
            f"INSERT INTO speakers ({_INSERTED}) VALUES "
            f"({','.join('?' * len(_SPEAKER_COLUMNS))})",
            (row["id"], row["relevance"], adapt,
             _blob(np.frombuffer(row["stat_n"], "<f8"), _dtype(adapt)),
             _blob(np.frombuffer(row["stat_f"], "<f8"), _dtype(adapt)),
             row["stat_s"] if "variances" in adapt else None, row["stat_llk"], row["frames"],
             row["utterances"], row["seconds"], row["created"], row["updated"], None))
    if rows:
        for key in ("components", "dim"):
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(rows[0][key])))
    conn.execute("DROP TABLE speakers_v1")
    conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
    return len(rows)
