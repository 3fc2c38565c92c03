"""The HTTP API, through an HTTP client: every route, every error status, tokens, limits,
and the same answers as the CLI."""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from service_helpers import bearer, client, tokens, upload, voices

from conftest import SR, tree_state, write_audio


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    return voices(tmp_path_factory.mktemp("voices"))


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory, audio):
    """A store of spk0..spk2, two recordings each, enrolled through the API."""
    store = tmp_path_factory.mktemp("store") / "speakers.db"
    keys = tokens(store)
    with client(store) as c:
        for s in range(3):
            r = c.post(f"/v1/speakers/spk{s}", files=[upload(audio[s, 0]), upload(audio[s, 1])],
                       headers=bearer(keys["write"]))
            assert r.status_code == 201, r.text
    return store, keys


def _routes(c):
    """Every API route of the OpenAPI description, as (method, path)."""
    schema = c.get("/openapi.json").json()
    return [(m.upper(), p.replace("{speaker}", "spk0")) for p, ops in schema["paths"].items()
            for m in ops]


def test_every_api_call_needs_a_valid_token_and_the_right_scope(enrolled):
    store, keys = enrolled
    with client(store) as c:
        routes = _routes(c)
        assert {("POST", "/v1/verify"), ("POST", "/v1/identify"), ("GET", "/v1/speakers"),
                ("POST", "/v1/speakers/spk0"), ("DELETE", "/v1/speakers/spk0"),
                ("GET", "/v1/speakers/spk0"), ("GET", "/v1/store")} <= set(routes)
        before = _kept(store), _rate_counts(store)
        for method, path in routes:
            if path == "/v1/health":
                assert c.request(method, path).status_code == 200
                continue
            for headers in ({}, bearer("sgm_000000000000_" + "a" * 43),
                            {"Authorization": keys["write"]},  # (no "Bearer")
                            {"Authorization": "Basic " + keys["write"]}):
                r = c.request(method, path, headers=headers)
                assert r.status_code == 401, (method, path, r.text)
                assert r.headers["www-authenticate"] == "Bearer"
                assert set(r.json()) == {"error", "status"} and r.json()["status"] == 401
            if method in ("POST", "DELETE") and path.startswith("/v1/speakers/"):
                r = c.request(method, path, headers=bearer(keys["read"]))
                assert r.status_code == 403 and "needs 'write'" in r.json()["error"]
        # nothing refused changed anything (the rate counts compared as rows: SQLite may
        # fold an earlier request's WAL into their file at any moment)
        assert (_kept(store), _rate_counts(store)) == before


def test_enroll_append_replace_list_show_remove(audio, tmp_path):
    store = tmp_path / "speakers.db"
    w = bearer(tokens(store)["write"])
    with client(store) as c:
        assert c.get("/v1/speakers", headers=w).json() == {"speakers": []}
        assert c.get("/v1/store", headers=w).json()["speakers"] == 0
        r = c.post("/v1/speakers/alice", files=[upload(audio[0, 0])], headers=w)
        assert r.status_code == 201 and r.json()["id"] == "alice"
        assert r.json()["utterances"] == 1
        assert [n.split(";")[0] for n in r.json()["notes"]] == [  # (the library's warnings)
            "alice: 4.0 s of audio enrolled"]
        again = c.post("/v1/speakers/alice", files=[upload(audio[0, 1])], headers=w)
        assert again.status_code == 409 and "already enrolled" in again.json()["error"]
        r = c.post("/v1/speakers/alice", files=[upload(audio[0, 1])], data={"mode": "append"},
                   headers=w)
        assert r.status_code == 200 and r.json()["utterances"] == 2
        assert c.get("/v1/speakers/alice", headers=w).json()["utterances"] == 2
        r = c.post("/v1/speakers/alice", files=[upload(audio[0, 2])], data={"mode": "replace"},
                   headers=w)
        assert r.status_code == 200 and r.json()["utterances"] == 1
        bad = c.post("/v1/speakers/alice", files=[upload(audio[0, 2])], data={"mode": "merge"},
                     headers=w)
        assert bad.status_code == 400 and "mode" in bad.json()["error"]
        assert [s["id"] for s in c.get("/v1/speakers", headers=w).json()["speakers"]] == [
            "alice"]
        store_info = c.get("/v1/store", headers=w).json()
        assert store_info["system"]["name"] == "wideband" and store_info["speakers"] == 1
        assert c.delete("/v1/speakers/alice", headers=w).json()["removed"] == "alice"
        for method in ("GET", "DELETE"):
            r = c.request(method, "/v1/speakers/alice", headers=w)
            assert r.status_code == 404 and "no speaker 'alice'" in r.json()["error"]
            assert str(tmp_path) not in r.json()["error"]  # the server's paths stay its own


def test_verify_and_identify_answer_as_the_cli_does(enrolled, audio):
    from click.testing import CliRunner

    from speakergmm.cli import main

    store, keys = enrolled
    test = audio[1, 2]
    with client(store) as c:
        v = c.post("/v1/verify", data={"speaker": "spk1", "prior": "0.2"},
                   files=[upload(test, "mine.wav")], headers=bearer(keys["read"]))
        i = c.post("/v1/identify", data={"top": "2"}, files=[upload(test, "mine.wav")],
                   headers=bearer(keys["read"]))
    assert v.status_code == 200 and i.status_code == 200
    cli_v = CliRunner().invoke(main, ["verify", "spk1", str(test), "--store", str(store),
                                      "--json", "--prior", "0.2"])
    cli_i = CliRunner().invoke(main, ["identify", str(test), "--store", str(store), "--json",
                                      "--top", "2"])
    for http, cli in ((v.json(), json.loads(cli_v.stdout)), (i.json(), json.loads(cli_i.stdout))):
        assert http.pop("audio") == "mine.wav" and http.pop("notes") == []
        cli.pop("audio")
        assert http.keys() == cli.keys()
        for key in http:
            assert http[key] == pytest.approx(cli[key], rel=1e-5, abs=1e-6) if isinstance(
                cli[key], float) else http[key] == cli[key], key
    assert v.json()["accepted"] and i.json()["speaker"] == "spk1"
    assert [e["speaker"] for e in i.json()["ranking"]][0] == "spk1"


def _kept(store):
    """What the store's folder holds but the rate counts (which every request moves on)."""
    return {k: v for k, v in tree_state(store.parent).items() if ".rates.db" not in k}


def _rate_counts(store) -> list:
    """The rate counts' rows (none before the first counted request)."""
    import sqlite3

    path = Path(f"{store}.rates.db")
    if not path.exists():
        return []
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT * FROM buckets ORDER BY key").fetchall()


@pytest.mark.parametrize("speaker", ["-x", "a b", "a\nb", "x" * 65, "a'--", "a;DROP"])
def test_bad_speaker_ids_reach_nothing(enrolled, audio, speaker):
    store, keys = enrolled
    before = _kept(store)
    with client(store) as c:
        from urllib.parse import quote

        path = "/v1/speakers/" + quote(speaker, safe="")
        for r in (c.post(path, files=[upload(audio[0, 0])], headers=bearer(keys["write"])),
                  c.get(path, headers=bearer(keys["read"])),
                  c.post("/v1/verify", data={"speaker": speaker}, files=[upload(audio[0, 0])],
                         headers=bearer(keys["read"]))):
            assert r.status_code == 400 and "invalid speaker id" in r.json()["error"], r.text
            assert "\n" not in r.json()["error"]
    assert _kept(store) == before


def test_bad_audio_and_bad_fields_are_400_with_one_line(enrolled, tmp_path):
    store, keys = enrolled
    silent = write_audio(tmp_path / "silent.wav", np.zeros(2 * SR, np.float32), SR)
    (tmp_path / "junk.wav").write_bytes(b"RIFF\x00\x00not audio")
    read = bearer(keys["read"])
    with client(store) as c:
        junk = c.post("/v1/verify", data={"speaker": "spk0"},
                      files=[upload(tmp_path / "junk.wav")], headers=read)
        assert junk.status_code == 400 and junk.json()["error"].startswith("junk.wav: ")
        quiet = c.post("/v1/identify", files=[upload(silent)], headers=read)
        assert quiet.status_code == 400 and "speech" in quiet.json()["error"]
        for data in ({"speaker": "spk0", "prior": "2"}, {"speaker": "spk0", "prior": "x"},
                     {"speaker": "spk0", "threshold": "nan"}, {}):
            r = c.post("/v1/verify", data=data, files=[upload(silent)], headers=read)
            assert r.status_code == 400 and r.json()["error"].startswith("bad request: "), data
        assert c.post("/v1/verify", data={"speaker": "spk0"}, headers=read).status_code == 400
        unknown = c.post("/v1/verify", data={"speaker": "nobody"},
                         files=[upload(silent)], headers=read)
        assert unknown.status_code == 404
        for method, path, status in (("GET", "/v2/nothing", 404), ("PUT", "/v1/verify", 405),
                                     ("GET", "/static/..%2Fapp.py", 404),
                                     ("GET", "/static/app.py", 404)):
            r = c.request(method, path, headers=read)
            assert r.status_code == status and r.json()["status"] == status, (path, r.text)


def test_uploads_over_the_limit_are_refused_as_they_arrive(enrolled, audio):
    store, keys = enrolled
    body = audio[0, 0].read_bytes()
    with client(store, max_bytes=len(body) // 2) as c:
        r = c.post("/v1/verify", data={"speaker": "spk0"}, files=[upload(audio[0, 0])],
                   headers=bearer(keys["read"]))
        assert r.status_code == 413 and "request too large" in r.json()["error"]
        sent = []

        def chunks():  # no Content-Length: counted as it arrives
            for _ in range(1000):
                sent.append(1)
                yield b"x" * 65536

        r = c.post("/v1/verify", content=chunks(), headers={
            **bearer(keys["read"]), "content-type": "multipart/form-data; boundary=b"})
        assert r.status_code == 413


def test_a_token_over_its_rate_gets_429_with_retry_after(enrolled):
    store, keys = enrolled
    with client(store, rate=1.0, burst=3) as c:
        codes = [c.get("/v1/speakers", headers=bearer(keys["read"])).status_code
                 for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        r = c.get("/v1/speakers", headers=bearer(keys["read"]))
        assert int(r.headers["retry-after"]) >= 1 and "too many requests" in r.json()["error"]
        # another token has its own bucket
        assert c.get("/v1/speakers", headers=bearer(keys["write"])).status_code == 200


def test_the_page_and_its_headers(enrolled):
    store, _ = enrolled
    with client(store) as c:
        page = c.get("/")
        assert page.status_code == 200 and "<title>speakergmm</title>" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        assert "http" not in page.text.split("<body>")[0].replace("http-equiv", "")  # no CDN
        js = c.get("/static/app.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert "access-control-allow-origin" not in c.get(
            "/v1/health", headers={"Origin": "https://elsewhere.example"}).headers
    with client(store, cors=("https://app.example",)) as c:
        r = c.get("/v1/health", headers={"Origin": "https://app.example"})
        assert r.headers["access-control-allow-origin"] == "https://app.example"


def test_concurrent_enrollments_and_verifications_lose_nothing(audio, tmp_path):
    store = tmp_path / "speakers.db"
    keys = tokens(store)
    results = {}
    with client(store) as c:
        first = c.post("/v1/speakers/spk0", files=[upload(audio[0, 0])],
                       headers=bearer(keys["write"]))
        assert first.status_code == 201

        def enroll(i):
            results[f"e{i}"] = c.post(f"/v1/speakers/new{i}",
                                      files=[upload(audio[i % 3, 1 + i % 2])],
                                      headers=bearer(keys["write"])).status_code

        def verify(i):
            results[f"v{i}"] = c.post("/v1/verify", data={"speaker": "spk0"},
                                      files=[upload(audio[0, 2])],
                                      headers=bearer(keys["read"])).status_code

        threads = [threading.Thread(target=f, args=(i,)) for i in range(6)
                   for f in (enroll, verify)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        names = [s["id"] for s in c.get("/v1/speakers", headers=bearer(keys["read"])
                                        ).json()["speakers"]]
    assert set(results.values()) <= {200, 201} and len(results) == 12, results
    assert sorted(names) == sorted(["spk0"] + [f"new{i}" for i in range(6)])


def test_each_library_refusal_has_its_status():
    from speakergmm.errors import AudioError, FeatureError, ParameterError
    from speakergmm.serve.app import _status
    from speakergmm.store import (
        BadSpeakerId,
        SpeakerExists,
        StoreBusy,
        StoreError,
        UnknownSpeaker,
    )

    for error, status in ((UnknownSpeaker, 404), (SpeakerExists, 409), (BadSpeakerId, 400),
                          (StoreBusy, 503), (StoreError, 409), (AudioError, 400),
                          (FeatureError, 400), (ParameterError, 400)):
        assert _status(error("x")) == status, error


def test_a_damaged_token_file_is_a_500_in_one_line_not_a_crash(enrolled, tmp_path):
    import shutil

    from speakergmm.serve import tokens_path

    store, keys = enrolled
    copy = tmp_path / "speakers.db"
    shutil.copy(store, copy)
    tokens_path(copy).write_text("{ damaged")
    with client(copy) as c:
        r = c.get("/v1/speakers", headers=bearer(keys["read"]))
        assert r.status_code == 500 and "token file is unreadable" in r.json()["error"]
        assert str(tmp_path) not in r.json()["error"]
        assert c.get("/v1/health").status_code == 200


def test_workers_share_a_tokens_rate(tmp_path):
    """Two limiters on one file (two worker processes) count one bucket per token."""
    from speakergmm.serve.guard import RateLimiter

    path = tmp_path / "s.db.rates.db"
    first, second = RateLimiter(1.0, 3, path), RateLimiter(1.0, 3, path)
    waits = [limiter.wait("t1") for limiter in (first, second, first, second, first)]
    assert waits[:3] == [0, 0, 0] and waits[3] >= 1 and waits[4] >= 1
    assert second.wait("t2") == 0  # another token, another bucket
    alone = RateLimiter(1.0, 3)  # in memory: this process only
    assert [alone.wait("t1") for _ in range(4)] == [0, 0, 0, 60]
