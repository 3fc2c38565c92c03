import multiprocessing
import sqlite3

import numpy as np
import pytest

from speakergmm.gmm.adapt import SpeakerModel
from speakergmm.gmm.mixture import DiagGMM
from speakergmm.store import (
    SCHEMA_VERSION,
    SpeakerStore,
    StoreError,
    check_speaker_id,
    default_store_path,
)


def small_ubm(seed=0, k=8, d=3):
    rng = np.random.default_rng(seed)
    return DiagGMM(np.full(k, 1 / k), rng.normal(0, 2, (k, d)), rng.uniform(0.5, 1.5, (k, d)))


def speaker_frames(seed, n=400, d=3):
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 2, d) + rng.standard_normal((n, d))).astype(np.float32)


def test_round_trip(tmp_path):
    ubm = small_ubm()
    model = SpeakerModel.enroll(ubm, [speaker_frames(1), speaker_frames(2)])
    with SpeakerStore(tmp_path / "s.db") as store:
        info = store.enroll("alice", model, ubm, seconds=7.5, utterances=2)
        assert (info.id, info.utterances, info.seconds, info.frames) == ("alice", 2, 7.5, 800)
        back = store.model("alice")
        # kept in float32, the precision the E-step computes them in; second order only for
        # variance adaptation (means only here)
        for a, b in [(back.stats.n, model.stats.n), (back.stats.f, model.stats.f)]:
            np.testing.assert_array_equal(a, b.astype(np.float32))
        assert not back.stats.s.any() and back.stats.frames == model.stats.frames
        adapted = store.adapted("alice", ubm)
        np.testing.assert_allclose(adapted.means, model.adapted(ubm).means, rtol=1e-6)
        assert [s.id for s in store.list()] == ["alice"] and len(store) == 1
        assert store.ubm_fingerprint() == ubm.fingerprint()


def test_append_equals_enrolling_at_once_and_replace(tmp_path):
    ubm = small_ubm()
    a, b = speaker_frames(1), speaker_frames(2)
    store = SpeakerStore(tmp_path / "s.db")
    store.enroll("bob", SpeakerModel.enroll(ubm, [a]), ubm, seconds=1, utterances=1)
    with pytest.raises(StoreError, match="already enrolled; use --append"):
        store.enroll("bob", SpeakerModel.enroll(ubm, [b]), ubm, seconds=1, utterances=1)
    info = store.enroll("bob", SpeakerModel.enroll(ubm, [b]), ubm, seconds=2, utterances=1,
                        mode="append")
    assert (info.utterances, info.seconds) == (2, 3.0)
    once = SpeakerModel.enroll(ubm, [a, b]).adapted(ubm)
    np.testing.assert_allclose(store.adapted("bob", ubm).means, once.means, rtol=1e-6)
    store.enroll("bob", SpeakerModel.enroll(ubm, [b]), ubm, seconds=2, utterances=1,
                 mode="replace")
    assert store.info("bob").utterances == 1


def test_other_ubm_is_refused(tmp_path):
    ubm, other = small_ubm(0), small_ubm(1)
    store = SpeakerStore(tmp_path / "s.db")
    store.enroll("c", SpeakerModel.enroll(ubm, [speaker_frames(1)]), ubm, seconds=1, utterances=1)
    with pytest.raises(StoreError, match="enrolled with UBM .* not with UBM"):
        store.enroll("d", SpeakerModel.enroll(other, [speaker_frames(1)]), other, seconds=1,
                     utterances=1)
    with pytest.raises(StoreError, match="enrolled with UBM"):
        store.parameters(other)
    with pytest.raises(StoreError, match="adapted from UBM"):
        store.enroll("d", SpeakerModel.enroll(other, [speaker_frames(1)]), ubm, seconds=1,
                     utterances=1)


def test_unknown_remove_and_empty(tmp_path):
    ubm = small_ubm()
    store = SpeakerStore(tmp_path / "s.db")
    assert store.list() == [] and len(store) == 0
    with pytest.raises(StoreError, match="no speaker store yet"):
        store.info("x")
    store.enroll("e", SpeakerModel.enroll(ubm, [speaker_frames(1)]), ubm, seconds=1, utterances=1)
    with pytest.raises(StoreError, match="no speaker 'zed'.*1 enrolled"):
        store.info("zed")
    store.remove("e")
    with pytest.raises(StoreError, match="no speaker 'e'"):
        store.remove("e")
    with pytest.raises(StoreError, match="no speakers enrolled"):
        store.parameters(ubm)


@pytest.mark.parametrize("bad", ["", "-x", "a b", "a/b", "x" * 65, "é", "../etc"])
def test_bad_speaker_ids(bad):
    with pytest.raises(StoreError, match="invalid speaker id"):
        check_speaker_id(bad)


def test_good_speaker_ids():
    for ok in ["alice", "0001", "a.b-c_d@e+f", "x" * 64]:
        assert check_speaker_id(ok) == ok


def test_not_a_store(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a readable speaker store"):
        len(SpeakerStore(path))


def test_default_path(monkeypatch, tmp_path):
    monkeypatch.setenv("SPEAKERGMM_HOME", str(tmp_path / "home"))
    assert default_store_path() == tmp_path / "home" / "speakers.db"
    monkeypatch.delenv("SPEAKERGMM_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_store_path() == tmp_path / "xdg" / "speakergmm" / "speakers.db"


def test_parameters_stack_all_speakers(tmp_path):
    ubm = small_ubm()
    store = SpeakerStore(tmp_path / "s.db")
    for i, name in enumerate(["zoe", "amy", "max"]):
        store.enroll(name, SpeakerModel.enroll(ubm, [speaker_frames(i)]), ubm, seconds=1,
                     utterances=1)
    ids, w, mu, var = store.parameters(ubm)
    assert ids == ["amy", "max", "zoe"]
    assert w.shape == (3, 8) and mu.shape == (3, 8, 3) and var.dtype == np.float32
    np.testing.assert_allclose(mu[0], store.adapted("amy", ubm).means)


def _enroll_many(path, prefix, n):
    ubm = small_ubm()
    store = SpeakerStore(path)
    for i in range(n):
        model = SpeakerModel.enroll(ubm, [speaker_frames(hash((prefix, i)) % 10_000)])
        store.enroll(f"{prefix}{i:03d}", model, ubm, seconds=1.0, utterances=1)
    store.close()


def test_two_processes_enrolling_concurrently_lose_nothing(tmp_path):
    path = tmp_path / "shared.db"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_enroll_many, args=(path, p, 50)) for p in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = SpeakerStore(path)
    speakers = store.list()
    assert len(speakers) == 100
    assert [s.id for s in speakers] == [f"{p}{i:03d}" for p in "ab" for i in range(50)]
    ubm = small_ubm()
    for s in speakers[::17]:
        model = store.model(s.id)
        assert model.stats.frames == 400 and np.isfinite(store.adapted(s.id, ubm).means).all()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_store_is_bound_to_one_channel_compensation(tmp_path):
    ubm = small_ubm()
    model = SpeakerModel.enroll(ubm, [speaker_frames(1)])
    store = SpeakerStore(tmp_path / "s.db")
    assert store.channel_fingerprint() is None
    store.enroll("a", model, ubm, seconds=1, utterances=1, channel="0123456789abcdef")
    assert store.channel_fingerprint() == "0123456789abcdef"
    store.check_ubm(ubm, "0123456789abcdef")
    with pytest.raises(StoreError, match="with channel compensation 0123456789abcdef, but "
                                         "channel fedcba9876543210 is given"):
        store.enroll("b", model, ubm, seconds=1, utterances=1, channel="fedcba9876543210")
    with pytest.raises(StoreError, match="but none is given"):
        store.adapted("a", ubm)
    with pytest.raises(StoreError, match="but none is given"):
        store.parameters(ubm)
    assert len(store) == 1

    # a store written before compensation existed (no channel key): enrolled without one
    old = SpeakerStore(tmp_path / "old.db")
    old.enroll("a", model, ubm, seconds=1, utterances=1)
    with sqlite3.connect(tmp_path / "old.db") as conn:
        conn.execute("DELETE FROM meta WHERE key='channel_fingerprint'")
    assert old.channel_fingerprint() == "none"
    with pytest.raises(StoreError, match="without channel compensation"):
        old.enroll("b", model, ubm, seconds=1, utterances=1, channel="0123456789abcdef")
    old.enroll("b", model, ubm, seconds=1, utterances=1)
    assert old.channel_fingerprint() == "none" and len(old) == 2


_V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE speakers (
    id TEXT PRIMARY KEY, ubm_fingerprint TEXT NOT NULL, components INTEGER NOT NULL,
    dim INTEGER NOT NULL, relevance REAL NOT NULL, adapt TEXT NOT NULL, stat_n BLOB NOT NULL,
    stat_f BLOB NOT NULL, stat_s BLOB NOT NULL, stat_llk REAL NOT NULL, frames INTEGER NOT NULL,
    weights BLOB NOT NULL, means BLOB NOT NULL, variances BLOB NOT NULL,
    utterances INTEGER NOT NULL, seconds REAL NOT NULL, created TEXT NOT NULL,
    updated TEXT NOT NULL)
"""


def _write_v1_store(path, ubm, speakers):
    """A store as speakergmm 0.1.0 before schema 2 wrote it (float64 statistics of every
    order and the adapted parameters), for the migration test."""
    with sqlite3.connect(path) as conn:
        conn.executescript(_V1_SCHEMA)
        conn.executemany("INSERT INTO meta VALUES (?, ?)", [
            ("schema_version", "1"), ("ubm_fingerprint", ubm.fingerprint()),
            ("channel_fingerprint", "none")])
        for name, model in speakers.items():
            g, st = model.adapted(ubm), model.stats
            conn.execute("INSERT INTO speakers VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", (
                name, ubm.fingerprint(), ubm.n_components, ubm.dim, model.relevance,
                ",".join(model.adapt), st.n.tobytes(), st.f.tobytes(), st.s.tobytes(),
                st.llk, st.frames, g.weights.astype("<f4").tobytes(),
                g.means.astype("<f4").tobytes(), g.variances.astype("<f4").tobytes(),
                model.utterances, 3.5, "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"))


def test_a_schema_1_store_is_migrated_without_loss(tmp_path):
    from speakergmm.store import StoreMigrated

    ubm = small_ubm()
    speakers = {"amy": SpeakerModel.enroll(ubm, [speaker_frames(1), speaker_frames(2)]),
                "bo": SpeakerModel.enroll(ubm, [speaker_frames(3)], relevance=4,
                                          adapt=("means", "weights", "variances"))}
    path = tmp_path / "old.db"
    _write_v1_store(path, ubm, speakers)
    store = SpeakerStore(path)
    with pytest.warns(StoreMigrated, match="converted 2 speaker"):
        infos = store.list()
    assert [(i.id, i.utterances, i.seconds, i.created) for i in infos] == [
        ("amy", 2, 3.5, "2026-11-01T00:00:00Z"), ("bo", 1, 3.5, "2026-11-01T00:00:00Z")]
    for name, model in speakers.items():
        back = store.model(name)
        # float32 statistics, float64 for speakers whose variances are adapted
        kept = np.float64 if "variances" in model.adapt else np.float32
        np.testing.assert_array_equal(back.stats.f, model.stats.f.astype(kept))
        assert (back.relevance, back.adapt) == (model.relevance, model.adapt)
        want = model.adapted(ubm)
        got = store.adapted(name, ubm)
        for a, b in ((got.weights, want.weights), (got.means, want.means),
                     (got.variances, want.variances)):
            np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_array_equal(store.model("bo").stats.s, speakers["bo"].stats.s)
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() \
            == (str(SCHEMA_VERSION),)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # opened again: nothing left to migrate
        assert len(SpeakerStore(path)) == 2


def test_model_sets_stream_every_speaker_in_blocks(tmp_path):
    from speakergmm.backend.scoring import llr, score

    ubm = small_ubm()
    store = SpeakerStore(tmp_path / "s.db")
    settings = [dict(), dict(relevance=4.0), dict(adapt=("means", "weights", "variances"))]
    for i in range(7):
        model = SpeakerModel.enroll(ubm, [speaker_frames(i)], **settings[i % 3])
        store.enroll(f"s{i}", model, ubm, seconds=1, utterances=1)
    x = speaker_frames(3)
    ids, scores = [], []
    for models in store.model_sets(ubm, block=3):
        assert len(models) <= 3
        ids += models.ids
        scores += list(score(ubm, models, x, method="full"))
    assert ids == [f"s{i}" for i in range(7)]
    want = [llr(ubm, store.adapted(s, ubm), x, method="full") for s in ids]
    np.testing.assert_allclose(scores, want, rtol=1e-4, atol=1e-5)
    assert int(np.argmax(scores)) == 3


def _identification_scores(store, ubm, x):
    from speakergmm.backend.scoring import score

    ids, scores = [], []
    for models in store.model_sets(ubm, block=4):
        ids += models.ids
        scores += list(score(ubm, models, x))
    return ids, np.array(scores)


def test_kept_biases_score_as_biases_made_when_scoring(tmp_path, monkeypatch):
    """A store keeps each means-only speaker's bias; identification with them gives the
    scores it gives when they are made from the statistics at scoring time."""
    import speakergmm.backend.scoring as scoring

    monkeypatch.setattr(scoring, "_GATHER_BYTES", 0)  # the path of large stores
    ubm = small_ubm()
    store = SpeakerStore(tmp_path / "s.db")
    for i in range(9):
        store.enroll(f"s{i}", SpeakerModel.enroll(ubm, [speaker_frames(i)],
                                                  relevance=4.0 + i), ubm,
                     seconds=1, utterances=1)
    x = speaker_frames(5)
    ids, kept = _identification_scores(store, ubm, x)
    with sqlite3.connect(tmp_path / "s.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM speakers WHERE stat_bias IS NULL"
                            ).fetchone() == (0,)
        conn.execute("UPDATE speakers SET stat_bias=NULL")
    store.close()
    again, made = _identification_scores(SpeakerStore(tmp_path / "s.db"), ubm, x)
    assert again == ids
    np.testing.assert_allclose(made, kept, rtol=0, atol=1e-6)
    assert int(np.argmax(kept)) == 5


def test_a_schema_2_store_gains_its_biases_at_the_next_enrollment(tmp_path):
    """A store written before the biases were kept (schema 2) is read as it is, and the
    next enrollment fills every speaker's bias: the same scores before and after."""
    ubm = small_ubm()
    path = tmp_path / "v2.db"
    store = SpeakerStore(path)
    for i in range(5):
        store.enroll(f"s{i}", SpeakerModel.enroll(ubm, [speaker_frames(i)]), ubm, seconds=1,
                     utterances=1)
    store.close()
    with sqlite3.connect(path) as conn:  # as schema 2 wrote it
        conn.execute("ALTER TABLE speakers DROP COLUMN stat_bias")
        conn.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    x = speaker_frames(2)
    store = SpeakerStore(path)
    before = _identification_scores(store, ubm, x)
    store.enroll("s9", SpeakerModel.enroll(ubm, [speaker_frames(9)]), ubm, seconds=1,
                 utterances=1)
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() \
            == (str(SCHEMA_VERSION),)
        assert conn.execute("SELECT COUNT(*) FROM speakers WHERE stat_bias IS NULL"
                            ).fetchone() == (0,)
        assert conn.execute("SELECT 1 FROM meta WHERE key='biases_pending'").fetchone() is None
    ids, after = _identification_scores(SpeakerStore(path), ubm, x)
    assert ids == before[0] + ["s9"]
    np.testing.assert_array_equal(after[:5], before[1])


def test_a_speaker_takes_at_most_150_kb_at_k512_d60(tmp_path):
    rng = np.random.default_rng(0)
    k, d = 512, 60
    ubm = DiagGMM(np.full(k, 1 / k), rng.standard_normal((k, d)), np.ones((k, d)))
    store = SpeakerStore(tmp_path / "s.db")
    x = rng.standard_normal((300, d)).astype(np.float32)
    store.enroll("first", SpeakerModel.enroll(ubm, [x]), ubm, seconds=3, utterances=1)
    store.close()
    base = (tmp_path / "s.db").stat().st_size
    store = SpeakerStore(tmp_path / "s.db")
    for i in range(20):
        store.enroll(f"s{i:02d}", SpeakerModel.enroll(ubm, [x + i]), ubm, seconds=3,
                     utterances=1)
    store.close()
    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    per_speaker = ((tmp_path / "s.db").stat().st_size - base) / 20
    assert per_speaker <= 150_000, per_speaker


def test_the_cli_says_a_store_was_migrated_in_one_line(tmp_path):
    from click.testing import CliRunner

    from speakergmm.cli import main

    ubm = small_ubm()
    _write_v1_store(tmp_path / "old.db", ubm,
                    {"amy": SpeakerModel.enroll(ubm, [speaker_frames(1)])})
    r = CliRunner().invoke(main, ["speakers", "--store", str(tmp_path / "old.db")])
    assert r.exit_code == 0, r.output
    notes = [line for line in r.output.splitlines() if line.startswith("speakergmm: note:")]
    assert len(notes) == 1 and "converted 1 speaker(s) from store schema 1" in notes[0]
    assert "amy" in r.output and "Warning" not in r.output
