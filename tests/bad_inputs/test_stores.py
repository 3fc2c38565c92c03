"""Speaker stores: foreign, damaged, future, locked and read-only files (issue 14). Readers
(`speakers list`, `verify`, `identify`) open a store read-only: they never change a file,
never wait for a writer; anything that is not a sound speakergmm store is refused with one
line naming the file and what is wrong, and left byte for byte as it was."""

import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from speakergmm.cli import main
from speakergmm.frontend.features import FeatureConfig, extract_features
from speakergmm.gmm.ubm import train_ubm

from conftest import SR, refused, tree_state, voice, write_audio

pytestmark = pytest.mark.filterwarnings("ignore::speakergmm.recognizer.ShortEnrollment")


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory):
    """A small UBM, two enrolled speakers in a store, and a test recording."""
    root = tmp_path_factory.mktemp("stores")
    cfg = FeatureConfig()
    ubm = train_ubm([extract_features(y=voice(s, u), sr=SR, config=cfg)
                     for s in range(100, 110) for u in range(2)], n_components=8,
                    n_iterations=3, metadata={"feature_config": cfg.to_dict()})
    ubm.save(root / "ubm.npz")
    audio = {s: write_audio(root / f"s{s}.wav", voice(s, 0), SR) for s in range(3)}
    for s in (0, 1):
        r = CliRunner().invoke(main, ["enroll", f"spk{s}", str(audio[s]), "--ubm",
                                      str(root / "ubm.npz"), "--store", str(root / "s.db")])
        assert r.exit_code == 0, r.output
    return root, audio[2]


def _copy(enrolled, tmp_path):
    root, audio = enrolled
    store = tmp_path / "s.db"
    shutil.copy(root / "s.db", store)
    return root / "ubm.npz", store, audio


def _readers(ubm, store, audio):
    return [["speakers", "--store", store, "list"],
            ["verify", "spk0", audio, "--ubm", ubm, "--store", store],
            ["identify", audio, "--ubm", ubm, "--store", store]]


def _edit(store, *sql):
    conn = sqlite3.connect(store, isolation_level=None)
    for statement in sql:
        conn.execute(statement)
    conn.close()
    for suffix in ("-wal", "-shm"):
        assert not os.path.exists(f"{store}{suffix}")


def test_another_applications_sqlite_file_is_never_touched(enrolled, tmp_path):
    ubm, _, audio = _copy(enrolled, tmp_path)
    foreign = tmp_path / "app.db"
    _edit(foreign, "CREATE TABLE invoices (id INTEGER, total REAL)",
          "INSERT INTO invoices VALUES (1, 9.5)")
    for args in _readers(ubm, foreign, audio) + [
            ["enroll", "x", audio, "--ubm", ubm, "--store", foreign],
            ["speakers", "--store", foreign, "remove", "x"]]:
        refused(args, str(foreign), "not a speakergmm speaker store", "invoices",
                roots=[tmp_path])


def test_a_file_that_is_not_sqlite(enrolled, tmp_path):
    ubm, _, audio = _copy(enrolled, tmp_path)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is a text file, not a database\n" * 100)
    for args in _readers(ubm, junk, audio):
        refused(args, str(junk), "not a readable speaker store", roots=[tmp_path])


@pytest.mark.parametrize("version, says", [("two", "'two' is not a number"),
                                           ("9", "version 9"), ("", "is not a number")])
def test_schema_versions(enrolled, tmp_path, version, says):
    ubm, store, audio = _copy(enrolled, tmp_path)
    _edit(store, f"UPDATE meta SET value='{version}' WHERE key='schema_version'")
    for args in _readers(ubm, store, audio):
        refused(args, str(store), says, roots=[tmp_path])


def test_a_missing_column(enrolled, tmp_path):
    ubm, store, audio = _copy(enrolled, tmp_path)
    _edit(store, "ALTER TABLE speakers DROP COLUMN seconds")
    for args in _readers(ubm, store, audio):
        refused(args, "lacks the column(s) seconds", roots=[tmp_path])


def test_a_truncated_blob_names_the_speaker_and_the_fix(enrolled, tmp_path):
    ubm, store, audio = _copy(enrolled, tmp_path)
    _edit(store, "UPDATE speakers SET stat_f=substr(stat_f, 1, 10) WHERE id='spk1'")
    readers = _readers(ubm, store, audio)[1:]
    readers[0][1] = "spk1"
    for args in readers:
        refused(args, "speaker 'spk1' has damaged statistics", "speakers remove",
                roots=[tmp_path])


@pytest.mark.parametrize("column, value", [
    ("relevance", "x''"), ("relevance", "0"), ("adapt", "'means,colour'"),
    ("adapt", "''"), ("frames", "-3"), ("utterances", "1.5"), ("seconds", "'long'"),
])  # found by tests/fuzz (a blob for the relevance was a ValueError traceback)
def test_a_damaged_record_names_the_speaker_and_the_fix(enrolled, tmp_path, column, value):
    ubm, store, audio = _copy(enrolled, tmp_path)
    _edit(store, f"UPDATE speakers SET {column}={value} WHERE id='spk1'")
    readers = _readers(ubm, store, audio)
    readers[1][1] = "spk1"
    if column in ("frames", "utterances", "seconds"):  # not needed to score
        readers = readers[:1] + [["speakers", "--store", store, "show", "spk1"]]
    for args in readers:
        refused(args, "speaker 'spk1' has a damaged record", column, "speakers remove",
                roots=[tmp_path])


@pytest.mark.parametrize("components", ["7", "x", "-1"])
def test_a_wrong_component_count(enrolled, tmp_path, components):
    ubm, store, audio = _copy(enrolled, tmp_path)
    _edit(store, f"UPDATE meta SET value='{components}' WHERE key='components'")
    for args in _readers(ubm, store, audio)[1:]:
        refused(args, str(store), "damaged", roots=[tmp_path])


def test_speaker_ids_cannot_split_the_line_or_drive_the_terminal(enrolled, tmp_path):
    ubm, store, audio = _copy(enrolled, tmp_path)
    line = refused(["verify", "a\nb\x1b[31mred", audio, "--ubm", ubm, "--store", store],
                   "\\x1b", roots=[tmp_path])
    assert "\x1b" not in line
    line = refused(["speakers", "--store", store, "show", "ghost\x1b]0;title\x07"], "\\x07",
                   roots=[tmp_path])
    assert "\x07" not in line and "\x1b" not in line


def test_readers_do_not_wait_for_a_writer(enrolled, tmp_path):
    """Another process holding the write lock (an enrollment under way) does not delay a
    reader: WAL readers see the last commit (it waited 60 s before)."""
    ubm, store, audio = _copy(enrolled, tmp_path)
    writer = sqlite3.connect(store, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN EXCLUSIVE")
    try:
        for args in _readers(ubm, store, audio):
            start = time.monotonic()
            result = CliRunner().invoke(main, [str(a) for a in args])
            assert result.exit_code in (0, 1), result.output  # verify: 1 = rejected
            assert time.monotonic() - start < 45, args  # the lock waited 60 s
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_readers_leave_the_store_as_it_was(enrolled, tmp_path):
    ubm, store, audio = _copy(enrolled, tmp_path)
    before = store.read_bytes()
    for args in _readers(ubm, store, audio):
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code in (0, 1), result.output
    assert store.read_bytes() == before


@pytest.mark.skipif(os.geteuid() == 0, reason="file modes do not bind root")
def test_a_read_only_store(enrolled, tmp_path):
    ubm, store, audio = _copy(enrolled, tmp_path)
    store.chmod(0o444)
    for args in _readers(ubm, store, audio):
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code in (0, 1), result.output
    refused(["enroll", "spk9", audio, "--ubm", ubm, "--store", store], "read-only",
            roots=[tmp_path])


def test_a_store_opened_read_only_by_sqlite_refuses_writes_with_one_line(enrolled, tmp_path,
                                                                          monkeypatch):
    """What a read-only file gives a writer (tested as root too): SQLite's readonly error,
    named as such."""
    from speakergmm.store import database as store_module

    ubm, store, audio = _copy(enrolled, tmp_path)
    real = sqlite3.connect

    def read_only(path, *args, **kwargs):
        if "?" not in str(path):  # (the store is opened by a file: URI)
            return real(f"{store.resolve().as_uri()}?mode=ro", *args,
                        **{**kwargs, "uri": True})
        return real(path, *args, **kwargs)

    monkeypatch.setattr(store_module.sqlite3, "connect", read_only)
    # (a read-only WAL connection cannot remove SQLite's -wal and -shm files: the store file
    # itself is what must not change)
    refused(["enroll", "spk9", audio, "--ubm", ubm, "--store", store], "read-only",
            str(store), roots=[store])


def test_enroll_refuses_append_with_replace(enrolled, tmp_path):
    ubm, store, audio = _copy(enrolled, tmp_path)
    refused(["enroll", "spk0", audio, "--append", "--replace", "--ubm", ubm, "--store",
             store], "--append", "--replace", "not both", roots=[tmp_path])


def test_readers_of_a_store_in_a_folder_they_may_not_write(enrolled, tmp_path, monkeypatch):
    """Issue 25: verify on a store in a read-only folder failed ("unable to open database
    file": a WAL reader makes a -shm file beside the store); readers now open it immutable
    there. (Run as root, whom file modes do not bind, the folder is declared unwritable.)"""
    from speakergmm.store import database as store_module

    ubm, store, audio = _copy(enrolled, tmp_path)
    expected = [CliRunner().invoke(main, [str(a) for a in args]).output
                for args in _readers(ubm, store, audio)]
    real_access = os.access
    monkeypatch.setattr(store_module.os, "access", lambda path, mode: False if Path(
        path) == tmp_path else real_access(path, mode))
    opened = []
    real_connect = sqlite3.connect
    monkeypatch.setattr(store_module.sqlite3, "connect",
                        lambda address, *a, **k: opened.append(address) or real_connect(
                            address, *a, **k))
    before = tree_state(tmp_path)
    for args, output in zip(_readers(ubm, store, audio), expected):
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code in (0, 1) and result.output == output, result.output
    assert opened and all("immutable=1" in str(a) for a in opened)
    assert tree_state(tmp_path) == before


@pytest.mark.parametrize("case", ["a folder", "a name too long for -wal", "under a file"])
def test_a_store_that_cannot_be_opened_says_why(enrolled, tmp_path, case):
    """"unable to open database file" was all a user saw, whatever the reason."""
    root, audio = enrolled
    if case == "a folder":
        store, says = tmp_path / "box", "is a directory"
        store.mkdir()
    elif case == "a name too long for -wal":
        store, says = tmp_path / ("s" * 250 + ".db"), "251 bytes or fewer"
    else:
        (tmp_path / "file").write_text("not a folder\n")
        store, says = tmp_path / "file" / "s.db", "file"
    refused(["enroll", "spk0", audio, "--ubm", root / "ubm.npz", "--store", store],
            str(store) if case != "under a file" else str(tmp_path / "file"), says,
            roots=[tmp_path])
