"""Run the speakergmm CLI, SIGKILLing this very process at a chosen file write or SQL
statement: the moments at which what is on disk changes.

Used by ``test_sigkill.py`` (``python killable.py ARGS...``), configured by environment:

- ``KILL_AT_RENAME=N`` (or ``N:after``): at the N-th atomic rename of this process, before it
  (a whole temporary file, not yet in place) or after it (in place, nothing later done);
- ``KILL_AT_SQL=N``: as the N-th SQL statement starts (``COMMIT`` included);
- ``COUNT_TO=FILE``: at a normal exit, write ``{"renames": r, "sql": q, "commits": [i...]}``
  there (``i``: the statement number of each ``COMMIT``), so that a test knows a
  command's moments.

Worker processes (forked) count and die on their own: only this process is killed, as the
OOM killer or ``kill -9`` of the command would.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import sqlite3
import sys

_PID = os.getpid()
_counts = {"renames": 0, "sql": 0, "commits": []}
_rename_at, _, _when = os.environ.get("KILL_AT_RENAME", "0").partition(":")
_sql_at = int(os.environ.get("KILL_AT_SQL", "0"))
_replace = os.replace
_connect = sqlite3.connect


def _die() -> None:
    os.kill(_PID, signal.SIGKILL)


def replace(src, dst, *args, **kwargs):
    if os.getpid() != _PID:
        return _replace(src, dst, *args, **kwargs)
    _counts["renames"] += 1
    now = _counts["renames"] == int(_rename_at)
    if now and _when != "after":
        _die()
    _replace(src, dst, *args, **kwargs)
    if now:
        _die()


def _statement(sql: str) -> None:
    if os.getpid() == _PID:
        _counts["sql"] += 1
        if sql.strip().upper() == "COMMIT":
            _counts["commits"].append(_counts["sql"])
        if _counts["sql"] == _sql_at:
            _die()


def connect(*args, **kwargs):
    conn = _connect(*args, **kwargs)
    conn.set_trace_callback(_statement)
    return conn


def _write_counts() -> None:
    if os.getpid() == _PID and os.environ.get("COUNT_TO"):
        with open(os.environ["COUNT_TO"], "w") as fh:
            json.dump(_counts, fh)


os.replace = replace
sqlite3.connect = connect
atexit.register(_write_counts)

if __name__ == "__main__":
    from speakergmm.cli import main

    main(sys.argv[1:], prog_name="speakergmm")
