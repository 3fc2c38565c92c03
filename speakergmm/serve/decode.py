"""Uploaded audio decoded in separate processes bounded in time and memory.

A decoder (libsndfile and the codecs behind it) given a hostile file can loop, allocate
without end or crash. The service decodes each upload in a child process whose address
space is capped (``RLIMIT_AS``) and whose answer is awaited for a bounded time: a child
that overruns is killed and replaced, and the request gets one line saying why, while the
service goes on. The duration is read from the file's header and checked before any
sample is decoded. Nothing crosses the pipe as a pickle: the child answers with a JSON
header and the raw float32 samples.
"""

from __future__ import annotations

import json
import os
import queue
import select
import struct
import threading
from dataclasses import dataclass

import numpy as np

from ..errors import AudioError, ParameterError

__all__ = ["DecodeLimits", "BoundedDecoder"]


@dataclass(frozen=True)
class DecodeLimits:
    """What one upload may cost to decode.

    Attributes
    ----------
    max_seconds : float
        Longest recording accepted, read from the header before decoding.
    timeout : float
        Seconds a decode may take before its process is killed.
    memory_mb : int
        Address-space limit of a decoding process, in MiB.
    """

    max_seconds: float = 120.0
    timeout: float = 20.0
    memory_mb: int = 1024

    def __post_init__(self):
        for name in ("max_seconds", "timeout", "memory_mb"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0):
                raise ParameterError(f"decode limit {name} must be a positive number, "
                                     f"not {value!r}")


def _child() -> None:  # pragma: no cover  (runs in the child process)
    """Decode the files named on stdin until it closes, within the limits given as the
    first argument (JSON), answering on stdout."""
    import resource
    import sys

    limits = json.loads(sys.argv[1])
    stdin, stdout = _Pipe(os.dup(0)), _Pipe(os.dup(1))
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):  # (nothing else may write into the answers)
        os.dup2(devnull, fd)

    cap = int(limits["memory_mb"]) << 20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    cpu = int(limits["timeout"]) + 1
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    from ..frontend.audio import duration, load

    while True:
        try:
            request = json.loads(stdin.recv_bytes(1 << 16))
        except (EOFError, OSError):
            return
        path, name = request["path"], request["name"]
        # CPU time of the whole process, raised with each request: a runaway decode dies
        # even if the parent, which also times it, is gone. (The soft limit only: a hard
        # one lowered could not be raised again without privilege.)
        soft = int(sum(os.times()[:2])) + cpu
        resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY
                                                 else min(soft, hard), hard))
        try:
            seconds = duration(path)
            if seconds > limits["max_seconds"]:
                raise AudioError(f"{name}: {seconds:.1f} s of audio; the service takes at "
                                 f"most {limits['max_seconds']:g} s per recording")
            y, sr = load(path)
        except AudioError as exc:
            stdout.send_bytes(json.dumps({"error": str(exc).replace(path, name)}).encode())
            continue
        except MemoryError:
            stdout.send_bytes(json.dumps({"error": f"{name}: decoding it needs more than "
                                        f"{limits['memory_mb']} MiB"}).encode())
            continue
        stdout.send_bytes(json.dumps({"sr": int(sr), "n": int(y.size)}).encode())
        stdout.send_bytes(np.ascontiguousarray(y, "<f4").tobytes())


class _Pipe:
    """Messages over one end of a pipe: an 8-byte length, then the bytes."""

    def __init__(self, fd: int):
        self.fd = fd

    def send_bytes(self, data: bytes) -> None:
        view = memoryview(struct.pack("<Q", len(data)) + data)
        while view:
            view = view[os.write(self.fd, view):]

    def recv_bytes(self, maxlength: int) -> bytes:
        size = struct.unpack("<Q", self._exactly(8))[0]
        if size > maxlength:
            raise OSError(f"a message of {size} bytes, over {maxlength}")
        return self._exactly(size)

    def _exactly(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = os.read(self.fd, min(n - len(out), 1 << 20))
            if not chunk:
                raise EOFError
            out += chunk
        return bytes(out)

    def poll(self, timeout: float) -> bool:
        """Whether there is something to read within ``timeout`` seconds."""
        return bool(select.select([self.fd], [], [], timeout)[0])

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class _Worker:
    """One decoding child process and its pipes."""

    def __init__(self, limits: DecodeLimits):
        import subprocess
        import sys

        settings = {"max_seconds": limits.max_seconds, "timeout": limits.timeout,
                    "memory_mb": limits.memory_mb}
        # A fresh interpreter (not a fork of a threaded server), started the same way
        # whatever the server's __main__ is.
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from speakergmm.serve.decode import _child; _child()",
             json.dumps(settings)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1",
                                            "OPENBLAS_NUM_THREADS": "1"})
        self.send = _Pipe(os.dup(self.process.stdin.fileno()))
        self.receive = _Pipe(os.dup(self.process.stdout.fileno()))
        self.process.stdin.close()
        self.process.stdout.close()

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(5)
        self.send.close()
        self.receive.close()


class BoundedDecoder:
    """Decode uploads in child processes, each bounded by ``limits``.

    Parameters
    ----------
    limits : DecodeLimits
    workers : int
        Child processes kept ready (started on first use); more decodes at once wait.
    """

    def __init__(self, limits: DecodeLimits = DecodeLimits(), *, workers: int = 1):
        if not (isinstance(workers, int) and workers >= 1):
            raise ParameterError(f"decode workers must be a positive integer, not {workers!r}")
        self.limits = limits
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(workers)
        self._all: list[_Worker] = []
        self._lock = threading.Lock()

    def decode(self, path: str | os.PathLike, *, name: str = "upload") -> tuple[np.ndarray, int]:
        """The recording at ``path`` as (mono float32 signal, sampling rate).

        ``name`` stands for the file in messages (the client's file name, not the
        server's temporary path).

        Raises
        ------
        AudioError
            Unreadable, too long, or over the time or memory limit to decode.
        """
        with self._slots:
            worker = self._take()
            answered = False
            try:
                worker.send.send_bytes(json.dumps({"path": str(path), "name": name}).encode())
                head, data = self._answer(worker, name)
                answered = True
            finally:
                if answered:
                    self._idle.put(worker)
                else:  # (timed out, died, or interrupted half-way: never reused)
                    self._retire(worker)
        if "error" in head:
            raise AudioError(head["error"])
        return np.frombuffer(data, "<f4").copy(), int(head["sr"])

    def _answer(self, worker: _Worker, name: str) -> tuple[dict, bytes | None]:
        """The child's header and samples (None after an error header)."""
        limits = self.limits
        if not worker.receive.poll(limits.timeout):
            raise AudioError(f"{name}: not decoded within {limits.timeout:g} s; send WAV, FLAC "
                             "or OGG audio")
        try:
            head = json.loads(worker.receive.recv_bytes(1 << 16))
            if "error" in head:
                return head, None
            # (no answer between the header and the samples: the child died in between)
            if not worker.receive.poll(limits.timeout):
                raise EOFError
            return head, worker.receive.recv_bytes(4 * int(head["n"]) + 16)
        except (EOFError, OSError):
            raise AudioError(f"{name}: the decoder stopped on it (over {limits.memory_mb} MiB "
                             f"or {limits.timeout:g} s of CPU); send WAV, FLAC or OGG audio"
                             ) from None

    def _take(self) -> _Worker:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            worker = _Worker(self.limits)
            with self._lock:
                self._all.append(worker)
            return worker

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)

    def close(self) -> None:
        """Stop every child process."""
        with self._lock:
            workers, self._all = self._all, []
        for worker in workers:
            worker.kill()

    def __enter__(self) -> "BoundedDecoder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

