"""What the service tests share: voices as WAV files, a store with tokens, a client."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from conftest import SR, voice, write_audio

pytest.importorskip("fastapi")  # the optional extra [serve]; the test extra installs it


def voices(root: Path, speakers: int = 3, utterances: int = 3, seconds: float = 4.0
           ) -> dict[tuple[int, int], Path]:
    """WAV files of synthetic speakers: (speaker, utterance) -> path."""
    return {(s, u): write_audio(root / f"s{s}u{u}.wav", voice(s, u, seconds), SR)
            for s in range(speakers) for u in range(utterances)}


def tokens(store: Path) -> dict[str, str]:
    """A write and a read token of ``store``'s service."""
    from speakergmm.serve import TokenStore, tokens_path

    made = TokenStore(tokens_path(store))
    return {scope: made.create(scope, f"test {scope}")[0] for scope in ("write", "read")}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def upload(path: Path, name: str | None = None):
    return ("audio", (name or path.name, path.read_bytes(), "audio/wav"))


@contextlib.contextmanager
def client(store: Path, **config):
    """A TestClient of a service of ``store`` (``config``: ServiceConfig fields)."""
    from fastapi.testclient import TestClient

    from speakergmm.serve import ServiceConfig, create_app

    with TestClient(create_app(ServiceConfig(store, **config))) as c:
        yield c


@contextlib.contextmanager
def server(store: Path, *args: str, workers: int = 1, timeout: float = 120.0):
    """``speakergmm serve`` on a free loopback port, in its own process group, as a user
    runs it; yields (base URL, the process). Stopped (SIGTERM, then SIGKILL) on exit."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(store.parent / f"serve-{port}.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "speakergmm", "serve", "--store", str(store), "--port",
         str(port), "--workers", str(workers), *args], stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                with urllib.request.urlopen(url + "/v1/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise RuntimeError(f"the service did not start: "
                                       f"{(store.parent / log.name).read_text()[-2000:]}")
                time.sleep(0.2)
        yield url, proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def multipart(fields: dict, files: list[tuple[str, Path]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type, for the standard library's client."""
    import uuid

    boundary = uuid.uuid4().hex
    parts = []
    for key, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'
                     f"{value}\r\n".encode())
    for key, path in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"; '
                     f'filename="{path.name}"\r\nContent-Type: audio/wav\r\n\r\n'.encode()
                     + path.read_bytes() + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def call(url: str, method: str = "GET", *, token: str | None = None, fields=None, files=(),
         timeout: float = 120.0) -> tuple[int, dict]:
    """One request with the standard library: (status, JSON answer)."""
    import json
    import urllib.error
    import urllib.request

    body, kind = (None, None) if fields is None and not files else multipart(fields or {},
                                                                             list(files))
    request = urllib.request.Request(url, data=body, method=method)
    if kind:
        request.add_header("Content-Type", kind)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
