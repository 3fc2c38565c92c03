"""What stands between the network and the recognizer, as ASGI middleware that answers
before the application reads a byte of the body: the request-size limit, read as the body
arrives (:class:`BodyLimit`); tokens, scopes and per-token rate limits (:class:`Gate`); and
the headers every answer carries."""

from __future__ import annotations

import json
import logging
import math
import threading
import time

from ..errors import SpeakerGMMError

__all__ = ["BodyLimit", "Gate", "RateLimiter", "SECURITY_HEADERS", "error_body", "refuse"]

#: On every answer: the page runs only its own scripts and styles, is never framed, and
#: nothing is guessed from content.
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; media-src 'self' blob:; "
                                 b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


def error_body(status: int, message: str) -> bytes:
    """The JSON every error answer holds: ``{"error": one line, "status": code}``."""
    return json.dumps({"error": message, "status": status}).encode()


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` is refused with 413, before it is
    read whole. A declared ``Content-Length`` over the limit is refused before one byte of
    the body is read; a body sent without one (chunked) is counted as it arrives and cut
    off at the limit. Also adds :data:`SECURITY_HEADERS` to every answer."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        headers = dict(scope.get("headers", []))
        declared = headers.get(b"content-length")
        # (a request without a body has all of it from the start)
        bodyless = declared in (None, b"0") and b"transfer-encoding" not in headers
        state = {"received": 0, "over": False, "started": False, "whole": bodyless}

        async def secured(message):
            if message["type"] == "http.response.start":
                extra = SECURITY_HEADERS
                if not state["whole"]:
                    # an answer before the whole body (an error, a refusal): the server
                    # would read the rest to keep the connection; closing it reads none
                    extra = extra + [(b"connection", b"close")]
                message = {**message, "headers": [
                    h for h in message.get("headers", []) if h[0].lower() != b"connection"]
                    + extra}
            await send(message)

        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size < 0:
                return await refuse(secured, 400, "bad Content-Length header")
            if size > self.max_bytes:
                return await refuse(secured, 413, self._message(size))

        async def counted():
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                state["whole"] = not message.get("more_body", False)
                if state["received"] > self.max_bytes:
                    state["over"] = True
                    # (the app sees the body end here; its answer is replaced below)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message):
            if state["over"]:
                if not state["started"]:
                    state["started"] = True
                    await refuse(secured, 413, self._message(None))
                return
            state["started"] = True
            await secured(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not state["over"]:
                raise
        if state["over"] and not state["started"]:
            await refuse(secured, 413, self._message(None))

    def _message(self, size: int | None) -> str:
        said = f"{size} bytes" if size is not None else f"over {self.max_bytes} bytes"
        return (f"request too large ({said}); the service takes at most {self.max_bytes} "
                "bytes per request (serve --max-bytes)")


async def refuse(send, status: int, message: str, headers: dict | None = None) -> None:
    """Answer ``status`` with the error JSON, without reading the request."""
    body = error_body(status, message)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]
                + [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]})
    await send({"type": "http.response.body", "body": body})


class Gate:
    """ASGI middleware: a request that needs a token (``scope_of(method, path)`` is
    "read" or "write"; None: public) is refused before its body is read when the token is
    missing or unknown (401), of too small a scope (403), or over its rate (429).

    Parameters
    ----------
    app
        The application behind it.
    tokens : TokenStore
    limiter : RateLimiter
    scope_of : callable
        ``(method, path) -> "read" | "write" | None``.
    """

    def __init__(self, app, *, tokens, limiter: "RateLimiter", scope_of):
        self.app, self.tokens, self.limiter, self.scope_of = app, tokens, limiter, scope_of

    async def __call__(self, scope, receive, send):
        need = self.scope_of(scope["method"], scope["path"]) if scope["type"] == "http" \
            else None
        if need is None:
            return await self.app(scope, receive, send)
        header = dict(scope.get("headers", [])).get(b"authorization", b"").decode("latin-1")
        kind, _, presented = header.partition(" ")
        try:
            token = self.tokens.check(presented.strip()) if kind.lower() == "bearer" else None
        except SpeakerGMMError:  # (a damaged token file: said in the log, not to clients)
            logging.getLogger("speakergmm.serve").exception("cannot check a token")
            return await refuse(send, 500, "the service cannot check tokens: its token file "
                                "is unreadable; its administrator must create the tokens again")
        if token is None:
            return await refuse(send, 401, "a valid API token is needed: 'Authorization: "
                                "Bearer TOKEN' (speakergmm serve token create)",
                                {"WWW-Authenticate": "Bearer"})
        if not token.allows(need):
            return await refuse(send, 403, f"token {token.id} has scope '{token.scope}'; "
                                f"this needs '{need}'")
        wait = self.limiter.wait(token.id)
        if wait:
            return await refuse(send, 429, f"too many requests for token {token.id}; retry "
                                f"in {wait:g} s", {"Retry-After": str(int(wait))})
        return await self.app(scope, receive, send)


class RateLimiter:
    """A token bucket per API token: ``per_minute`` requests a minute on average, up to
    ``burst`` at once.

    ``path``: an SQLite file holding the buckets, which every worker process of a service
    shares, so that a token gets its rate whatever the number of workers (one short write
    transaction per request); None keeps them in this process's memory.
    """

    def __init__(self, per_minute: float, burst: int, path=None):
        self.rate = per_minute / 60.0
        self.burst = burst
        self.path = path
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._local = threading.local()

    def _step(self, level: float, then: float, now: float) -> tuple[float, float]:
        """The bucket's new level and the wait (0: the request goes, and is counted)."""
        level = min(float(self.burst), level + max(0.0, now - then) * self.rate)
        if level >= 1.0:
            return level - 1.0, 0.0
        return level, float(math.ceil((1.0 - level) / self.rate))

    def wait(self, key: str) -> float:
        """0 if a request of ``key`` may go now (and it is counted), else the seconds to
        wait before the next one may."""
        if self.path is not None:
            return self._shared(key)
        now = time.monotonic()
        with self._lock:
            level, then = self._buckets.get(key, (float(self.burst), now))
            level, wait = self._step(level, then, now)
            self._buckets[key] = (level, now)
            return wait

    def _shared(self, key: str) -> float:
        import sqlite3

        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE IF NOT EXISTS buckets (key TEXT PRIMARY KEY, "
                         "level REAL NOT NULL, at REAL NOT NULL)")
            self._local.conn = conn
        now = time.time()  # (a clock every process shares)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT level, at FROM buckets WHERE key=?",
                                   (key,)).fetchone()
                level, wait = self._step(*(row or (float(self.burst), now)), now)
                conn.execute("INSERT OR REPLACE INTO buckets VALUES (?, ?, ?)",
                             (key, level, now))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError:
            # (the file held by another worker for seconds: a rate limit is no lock; the
            # request goes, and the log says so)
            logging.getLogger("speakergmm.serve").warning("rate limits not counted: %s busy",
                                                          self.path)
            return 0.0
        return wait
