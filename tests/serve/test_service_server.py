"""``speakergmm serve`` as users run it: uvicorn worker processes over one store, a 1 GB
upload, and a worker killed in the middle of enrollments."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from service_helpers import call, server, tokens, voices


def _status_of(sock: socket.socket) -> int:
    sock.settimeout(30)
    head = b""
    while b"\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return int(head.split(b" ", 2)[1])


def test_a_1_gb_upload_is_refused_before_it_is_read_whole(tmp_path):
    store = tmp_path / "speakers.db"
    keys = tokens(store)
    with server(store, "--max-bytes", str(2**20)) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        head = ("POST /v1/verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n"
                "Content-Type: multipart/form-data; boundary=b\r\n{}\r\n")
        # declared: refused on the headers alone
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(head.format(keys["read"], "Content-Length: 1073741824\r\n").encode())
            assert _status_of(sock) == 413
        # no token: refused on the headers alone, under the limit too
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(head.replace("Authorization: Bearer {}\r\n", "").format(
                "Content-Length: 900000\r\n").encode())
            assert _status_of(sock) == 401
        # not declared (chunked): counted as it arrives, cut off at the limit
        sent = 0
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(head.format(keys["read"], "Transfer-Encoding: chunked\r\n").encode())
            part = (b'--b\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"'
                    b"\r\n\r\n")  # a file that never ends
            sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
            chunk = b"100000\r\n" + b"x" * 2**20 + b"\r\n"  # 1 MiB chunks
            sock.settimeout(0.5)
            try:
                while sent < 2**30:
                    sock.sendall(chunk)
                    sent += 2**20
            except (BrokenPipeError, ConnectionResetError, socket.timeout):
                pass
            assert sent < 64 * 2**20, sent  # nowhere near 1 GB was taken
            assert _status_of(sock) == 413


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(t) for t in text]
    return found


def test_a_worker_killed_mid_enrollment_loses_nothing(tmp_path):
    store = tmp_path / "speakers.db"
    keys = tokens(store)
    audio = voices(tmp_path / "voices", speakers=3, utterances=3)
    with server(store, "--workers", "2") as (url, proc):
        status, _ = call(f"{url}/v1/speakers/first", "POST", token=keys["write"],
                         files=[("audio", audio[0, 0]), ("audio", audio[0, 1])])
        assert status == 201
        answers = {}

        def enroll(i):
            try:
                answers[i] = call(f"{url}/v1/speakers/spk{i}", "POST", token=keys["write"],
                                  files=[("audio", audio[i % 3, 0]), ("audio", audio[i % 3, 2])],
                                  timeout=60)[0]
            except OSError as exc:  # the connection of the killed worker
                answers[i] = type(exc).__name__

        threads = [threading.Thread(target=enroll, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 120
        while len(answers) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        # every worker at once, in the middle of the enrollments they hold
        workers = [p for p in _children(proc.pid)  # (uvicorn's, spawned by multiprocessing)
                   if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]
        assert len(workers) == 2, [Path(f"/proc/{p}/cmdline").read_text() for p in workers]
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        for t in threads:
            t.join()
        acknowledged = {f"spk{i}" for i, a in answers.items() if a == 201}
        failed = {f"spk{i}" for i, a in answers.items() if a != 201}
        # the service goes on (uvicorn starts a new worker), and every enrollment it
        # acknowledged is there, whole
        deadline = time.monotonic() + 60
        while True:
            try:
                status, listed = call(f"{url}/v1/speakers", token=keys["read"], timeout=10)
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.5)
        names = {s["id"] for s in listed["speakers"]}
        assert acknowledged <= names and "first" in names
        for name in names:
            status, answer = call(f"{url}/v1/verify", "POST", token=keys["read"],
                                  fields={"speaker": name}, files=[("audio", audio[0, 2])])
            assert status == 200, answer
        # what failed can be sent again: enrolled then, or found already there
        for name in failed:
            i = int(name[3:])
            status, _ = call(f"{url}/v1/speakers/{name}", "POST", token=keys["write"],
                             files=[("audio", audio[i % 3, 0]), ("audio", audio[i % 3, 2])])
            assert status in (201, 409)
    with sqlite3.connect(store) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert failed and acknowledged, answers  # (the kill did land mid-enrollment)


def test_serve_refuses_to_start_without_a_token_or_open_without_auth(tmp_path):
    from click.testing import CliRunner

    from speakergmm.cli import main

    store = tmp_path / "speakers.db"
    r = CliRunner().invoke(main, ["serve", "--store", str(store)])
    assert r.exit_code == 2 and "no API token" in r.stderr and "token create" in r.stderr
    r = CliRunner().invoke(main, ["serve", "--store", str(store), "--no-auth", "--host",
                                  "0.0.0.0"])
    assert r.exit_code == 2 and "--no-auth only on a loopback" in r.stderr
    assert not store.exists()


def test_token_commands(tmp_path):
    from click.testing import CliRunner

    from speakergmm.cli import main
    from speakergmm.serve import TokenStore, tokens_path

    store = tmp_path / "speakers.db"
    r = CliRunner().invoke(main, ["serve", "--store", str(store), "token", "create", "--scope",
                                  "read", "--label", "kiosk"])
    assert r.exit_code == 0, r.output
    secret = r.stdout.strip()
    token = TokenStore(tokens_path(store)).check(secret)
    assert token is not None and token.scope == "read" and token.label == "kiosk"
    listed = CliRunner().invoke(main, ["serve", "token", "list", "--store", str(store)])
    assert token.id in listed.stdout and secret not in listed.stdout
    r = CliRunner().invoke(main, ["serve", "token", "revoke", token.id, "--store", str(store)])
    assert r.exit_code == 0 and TokenStore(tokens_path(store)).check(secret) is None
    r = CliRunner().invoke(main, ["serve", "token", "revoke", token.id, "--store", str(store)])
    assert r.exit_code == 2 and "no token" in r.stderr


pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
