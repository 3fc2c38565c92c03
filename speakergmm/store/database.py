"""The store's database engine: the SQLite file, its schema and migrations, connections
for readers and writers, and transactions (see :mod:`speakergmm.store`).

Readers only read: no journal-mode switch, no schema, nothing written, and no wait for a
writer (WAL readers see the last commit). Every change is one ``BEGIN IMMEDIATE``
transaction in WAL mode, so concurrent writers are serialised by SQLite and lose nothing,
and a crash leaves the store as it was before the change. All SQL is parameterised.
"""

from __future__ import annotations

import os
import sqlite3
import time
import urllib.parse
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import SpeakerGMMError, SpeakerGMMWarning, printable
from ..gmm.adapt import map_offset_bias
from ..gmm.mixture import DiagGMM

__all__ = ["SCHEMA_VERSION", "StoreError", "StoreMigrated", "Database", "default_store_path"]

SCHEMA_VERSION = 3
# Reading the statistics through a memory map instead of read() into SQLite's page cache:
# identification over 10,000 speakers reads 0.5 GB.
_MMAP_BYTES = 1 << 32

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


class StoreMigrated(SpeakerGMMWarning):
    """A store written by an earlier speakergmm was converted to the current schema."""


class StoreError(SpeakerGMMError):
    """The store is unreadable, of another UBM, or asked for a speaker it lacks."""


class UnknownSpeaker(StoreError):
    """A speaker asked for is not enrolled (the service answers 404)."""


class StoreBusy(StoreError):
    """Another process held the store for longer than the wait allowed (503: try again)."""


class BadSpeakerId(StoreError):
    """A speaker id that is not 1-64 safe characters (the service answers 400)."""


class SpeakerExists(StoreError):
    """A new enrollment names a speaker already enrolled (the service answers 409)."""



def default_store_path() -> Path:
    """``$SPEAKERGMM_HOME/speakers.db`` (see the module docstring for the default home)."""
    home = os.environ.get("SPEAKERGMM_HOME")
    if not home:
        data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"),
                                                                ".local", "share")
        home = os.path.join(data, "speakergmm")
    return Path(home) / "speakers.db"



def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _blob(a: np.ndarray, dtype: str) -> bytes:
    return np.ascontiguousarray(a, dtype=dtype).tobytes()


class Database:
    """An SQLite speaker store file: connections, schema, migration and transactions.

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
            return StoreBusy(f"{self.path}: store is busy ({exc})")
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
                    raise StoreBusy(f"{self.path}: store is busy ({exc})") from None
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

    def __enter__(self) -> "Database":
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
