"""Crash safety, proven from outside (issue 14): each writing command is SIGKILLed (as the
OOM killer or ``kill -9`` would: the command's own process, not its workers) at the moments
its files change, and at random times, then run again. After every kill no partial file
is visible (only whole files, or hidden temporaries that later runs remove), the killed
command's workers are gone, and the run that follows gives what an uninterrupted run
gives: the same arrays, the same model bit for bit, the same store rows, the same scores.

The moments: every atomic rename (just before it, with the temporary file whole, and just
after it, with nothing later done) and every SQL statement, counted by ``killable.py``.
Between two such moments the disk holds nothing else a rerun could see, so a sample of
them (seeded) plus the last (the final rename, the commit) covers what a kill can leave.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import SR, voice, write_audio

KILLABLE = Path(__file__).with_name("killable.py")
SAMPLED = 3  # kill moments drawn at random per command, beside the last ones


# --- running a command, and killing it ---------------------------------------------------

def run(root: Path, args, *, kill: dict | None = None, kill_after: float | None = None,
        count: bool = False) -> tuple[int, str, dict | None]:
    """Run ``speakergmm ARGS`` in ``root`` through killable.py: killed at the moment
    ``kill`` names (``{"KILL_AT_RENAME": "3:after"}``) or after ``kill_after`` seconds.
    Returns the exit status, stderr, and the moments counted (``count``)."""
    env = {**os.environ, **(kill or {})}
    counts = root / ".counts.json"
    if count:
        env["COUNT_TO"] = str(counts)
    proc = subprocess.Popen([sys.executable, str(KILLABLE), *map(str, args)], cwd=root,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    if kill_after is not None:
        try:
            proc.wait(kill_after)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=3600)  # a hang guard only
    _wait_group_gone(proc.pid)
    moments = json.loads(counts.read_text()) if count else None
    counts.unlink(missing_ok=True)
    return proc.returncode, err, moments


def _wait_group_gone(pgid: int, timeout: float = 60.0) -> None:
    """Every process of the command's group has ended: workers do not outlive a parent
    killed outright (an orphan would go on writing into the folder the rerun resumes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in Path("/proc").glob("[0-9]*") if _in_group(p, pgid)]
        if not alive:
            return
        time.sleep(0.05)
    pytest.fail(f"processes of the killed command still run: {alive}")


def _in_group(proc: Path, pgid: int) -> bool:
    try:
        fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z" and int(fields[2]) == pgid  # state, ppid, pgrp


def killed(result, why=None) -> None:
    assert result[0] == -signal.SIGKILL, (why, result[1][-2000:])


def completed(result) -> str:
    assert result[0] == 0, result[1][-2000:]
    return result[1]


def moments(total: dict, seed: int, *, kind: str = "renames") -> list[dict]:
    """The kill moments to try: the last rename (before and after it), or every COMMIT (as
    it starts) and the statement after the last (committed, nothing more done); and
    ``SAMPLED`` others drawn with ``seed``."""
    n = total[kind]
    assert n >= 1, total
    if kind == "sql":
        last = [*total["commits"], total["commits"][-1] + 1]
        others = sorted(set(range(1, n + 1)) - set(last))
        picks = random.Random(seed).sample(others, min(SAMPLED, len(others)))
        return [{"KILL_AT_SQL": str(k)} for k in sorted(picks) + last]
    every = [f"{k}{when}" for k in range(1, n) for when in ("", ":after")]
    picks = random.Random(seed).sample(every, min(SAMPLED, len(every)))
    return [{"KILL_AT_RENAME": k} for k in picks + [str(n), f"{n}:after"]]


# --- what an output holds ------------------------------------------------------------------

def no_temporaries(root: Path) -> None:
    left = [str(p) for p in root.rglob("*.tmp")]
    assert not left, left


def visible(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)}


def archive_view(out: Path, index: str, parts: str, read) -> dict:
    """An archive as a reader sees it, and the check that no part file is stray: every
    visible part is one the index uses."""
    used = {line.split()[1].split("[")[0].split("/")[1].split(".")[0]
            for line in (out / index).read_text().splitlines()}
    on_disk = {p.name.split(".")[0] for p in (out / parts).iterdir() if not p.name.startswith(".")}
    assert on_disk == used, (sorted(on_disk - used), sorted(used - on_disk))
    view = read(out)
    texts = {name: (out / name).read_text() for name in sorted(visible(out))
             if "/" not in name and name not in (index, "summary.json")}
    return {"items": view, "texts": texts}


def features_of(out: Path) -> dict:
    from speakergmm.frontend.archive import read_features

    archive = read_features(out)
    return {u: archive[u].tobytes() for u in sorted(archive)}


def stats_of(out: Path) -> dict:
    from speakergmm.gmm.statsarchive import read_stats

    archive = read_stats(out)
    return {u: (archive[u].n.tobytes(), archive[u].f.tobytes(), archive[u].llk,
                archive[u].frames) for u in sorted(archive)}


def npz_arrays(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k].tobytes() for k in npz.files if k != "metadata"}


def store_rows(path: Path) -> dict:
    """Every row of every table, but the enrollment times, read from a copy (with its -wal
    and -shm files) so that the store is left as the kill left it for the next command."""
    copy = path.parent / "copies" / path.name
    copy.parent.mkdir(exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{copy}{suffix}").unlink(missing_ok=True)
        if Path(f"{path}{suffix}").exists():
            shutil.copy(f"{path}{suffix}", f"{copy}{suffix}")
    conn = sqlite3.connect(copy)
    try:
        rows = {}
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            cols = [c[1] for c in conn.execute(f"PRAGMA table_info({table})")
                    if c[1] not in ("created", "updated")]
            rows[table] = sorted(conn.execute(f"SELECT {', '.join(cols)} FROM {table}"))
        # the time the calibration was learnt, and the store's own path it records as what
        # it was trained on, differ between copies of one content
        rows["meta"] = [(k, "<when>" if k == "calibrated" else
                         json.dumps({**json.loads(v), "trained_on": None}) if k == "calibration"
                         else v) for k, v in rows.get("meta", [])]
        return rows
    finally:
        conn.close()


# --- the work: a small corpus, and uninterrupted runs of every command --------------------

@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    """``root`` with 8 synthetic speakers x 12 one-second utterances, and each command's
    uninterrupted output and kill moments."""
    from speakergmm.data import DataDir, write_data_dir

    root = tmp_path_factory.mktemp("crash")
    wav, utt2spk = {}, {}
    for s in range(8):
        for u in range(12):
            utt = f"s{s}-u{u:02d}"
            write_audio(root / "audio" / f"{utt}.wav", voice(s, u, 1.0), SR)
            wav[utt], utt2spk[utt] = f"audio/{utt}.wav", f"s{s}"
    write_data_dir(root / "data", DataDir(wav_scp=wav, utt2spk=utt2spk))
    (root / "trials").write_text("".join(f"s{a} s{b}-u{u:02d}\n" for a in range(8)
                                         for b in range(8) for u in (10, 11)))
    (root / "enroll.map").write_text("".join(
        f"s{s} {' '.join(f's{s}-u{u:02d}' for u in range(10))}\n" for s in range(8)))
    out = {"root": root, "moments": {}}
    # the first run also caches the filterbank (one more rename than any run after it)
    completed(run(root, COMMANDS["extract"](root, "warm-up")))
    shutil.rmtree(root / "warm-up")
    for name, args in COMMANDS.items():
        out["moments"][name] = completed_counts(root, args(root, name))
    return out


def completed_counts(root, args):
    result = run(root, args, count=True)
    completed(result)
    return result[2]


COMMANDS = {
    "extract": lambda root, o: ["extract", "data", o, "--audio-root", ".", "-q"],
    "train-ubm": lambda root, o: ["train-ubm", "extract", "-c", "8", "--split-iterations", "1",
                                  "-n", "3", "-o", o],
    "stats": lambda root, o: ["stats", "extract", "--ubm", "train-ubm", "-o", o, "-q"],
    "train-channel": lambda root, o: ["train-channel", "stats", "--ubm", "train-ubm", "-r", "3",
                                      "-n", "3", "-o", o],
    "score": lambda root, o: ["score", "trials", "--enroll", "stats", "--enroll-map",
                              "enroll.map", "--test", "extract", "--ubm", "train-ubm",
                              "-o", o],
}


def jobs2(args: list) -> list:
    return [*args, "-j", "2"]


# --- extract and stats: resumable archives --------------------------------------------------

@pytest.mark.parametrize("name, index, parts, read", [
    ("extract", "feats.index", "feats", features_of),
    ("stats", "stats.scp", "stats", stats_of),
])
def test_archive_writers_killed_then_resumed(ref, name, index, parts, read):
    root = ref["root"]
    want = archive_view(root / name, index, parts, read)
    cases = [({"kill": k},) for k in moments(ref["moments"][name], seed=len(name))]
    # and at random times, with workers (killed twice in a row, then finished)
    delays = random.Random(1).sample([0.3, 0.6, 0.9, 1.2, 1.5], 2)
    cases.append(tuple({"kill_after": d, "jobs": True} for d in delays))
    for i, kills in enumerate(cases):
        out = f"{name}-k{i}"
        for kill in kills:
            args = COMMANDS[name](root, out)
            result = run(root, jobs2(args) if kill.pop("jobs", False) else args, **kill)
            if "kill" in kill:
                killed(result, (kill, ref["moments"][name]))
            assert not [f for f in visible(root / out) if f.endswith(".tmp")]
        completed(run(root, COMMANDS[name](root, out)))
        assert archive_view(root / out, index, parts, read) == want, kills
        no_temporaries(root / out)
        shutil.rmtree(root / out)


# --- train-ubm: resumes from its last finished iteration ------------------------------------

def test_train_ubm_killed_then_resumed_gives_the_same_model(ref):
    root = ref["root"]
    want = npz_arrays(root / "train-ubm")
    total = ref["moments"]["train-ubm"]["renames"]
    for i, kill in enumerate(moments(ref["moments"]["train-ubm"], seed=3)):
        out = root / f"ubm-k{i}.npz"
        killed(run(root, COMMANDS["train-ubm"](root, out.name), kill=kill))
        k, _, when = kill["KILL_AT_RENAME"].partition(":")
        assert out.exists() == (int(k) == total and when == "after")
        err = completed(run(root, COMMANDS["train-ubm"](root, out.name)))
        if int(k) > 1 or when:  # a step was saved: the rerun starts after it
            assert "resumed after iteration" in err, (kill, err)
        assert npz_arrays(out) == want, kill
        assert sorted(p.name for p in root.glob(f"*{out.name}*")) == [out.name]
    # killed at random times with a worker pool, twice, then finished
    out = root / "ubm-random.npz"
    for delay in (0.8, 1.3):
        run(root, jobs2(COMMANDS["train-ubm"](root, out.name)), kill_after=delay)
    completed(run(root, COMMANDS["train-ubm"](root, out.name)))
    assert npz_arrays(out) == want
    assert sorted(p.name for p in root.glob(f"*{out.name}*")) == [out.name]


# --- one-file outputs: train-channel and score -----------------------------------------------

@pytest.mark.parametrize("name, read", [
    ("train-channel", npz_arrays),
    ("score", lambda path: path.read_bytes()),
])
def test_one_file_writers_killed_then_run_again(ref, name, read):
    root = ref["root"]
    want = read(root / name)
    kills = [{"kill": k} for k in moments(ref["moments"][name], seed=5)]
    kills += [{"kill_after": d} for d in (0.7, 1.1)]
    for i, kill in enumerate(kills):
        out = root / f"{name}-k{i}"
        result = run(root, jobs2(COMMANDS[name](root, out.name)), **kill)
        if "kill" in kill:
            killed(result)
        assert not out.exists() or read(out) == want, kill  # nothing, or the whole file
        completed(run(root, COMMANDS[name](root, out.name)))
        assert read(out) == want, kill
        assert sorted(p.name for p in root.glob(f"*{out.name}*")) == [out.name]


# --- enroll: one transaction per enrollment --------------------------------------------------

def _enroll(speaker: str, store: str) -> list[str]:
    return ["enroll", speaker, *(f"audio/{speaker}-u{u:02d}.wav" for u in range(3)),
            "--store", store]


@pytest.fixture(scope="module")
def stores(ref):
    """A store of 6 speakers (``base.db``), the same with a seventh (``full.db``), and the
    seventh enrollment's SQL statements."""
    root = ref["root"]
    for s in range(6):
        completed(run(root, _enroll(f"s{s}", "base.db")))
    shutil.copy(root / "base.db", root / "full.db")
    counts = completed_counts(root, _enroll("s6", "full.db"))
    return root, store_rows(root / "base.db"), store_rows(root / "full.db"), counts


def test_enroll_killed_leaves_the_store_whole_and_the_rerun_completes_it(stores):
    root, before, after, counts = stores
    kills = [{"kill": k} for k in moments(counts, seed=7, kind="sql")]
    kills += [{"kill_after": d} for d in (0.8, 1.4)]
    for i, kill in enumerate(kills):
        store = root / f"enroll-k{i}.db"
        shutil.copy(root / "base.db", store)
        result = run(root, _enroll("s6", store.name), **kill)
        if "kill" in kill:
            killed(result)
        rows = store_rows(store)
        assert rows in (before, after), kill  # the enrollment is all there, or not at all
        code, err, _ = run(root, _enroll("s6", store.name))
        if rows == after:  # committed before the kill: the rerun says so, changes nothing
            assert code == 2 and "already enrolled" in err, err
        else:
            assert code == 0, err
        # SQLite's -wal and -shm files are gone once the last connection closes
        assert sorted(p.name for p in root.glob(f"{store.name}*")) == [store.name]
        assert store_rows(store) == after, kill
