"""One executor for every batch job: an ordered map with state broadcast once to the workers.

Feature extraction, UBM statistics, eigenchannel training, statistics archives, enrollment and
trial scoring all run through here; nothing else in the package starts processes. A batch
function takes ``executor=`` (an :class:`Executor`, or a number of local processes) and does

.. code-block:: python

    with executor.start(state) as session:        # state reaches each worker once
        for result in session.map(fn, items):     # fn(state, item), results in item order
            ...

Results come back in the order of ``items`` whatever ran them, and callers reduce them in
that order, so ``-j N`` gives the same result bit for bit as ``-j 1``.

:class:`SerialExecutor` runs in this process; :class:`ProcessExecutor` maps over local
worker processes (``fork`` where the platform has it, else ``spawn``; both work: mapped
functions and states must be picklable, i.e. module-level functions and plain objects).
Workers ignore Ctrl-C (the parent stops them all and raises KeyboardInterrupt once) and run
BLAS on one thread: their matrix products are small, processes give the parallelism, and
two BLAS threads per worker on two cores run several times slower. :class:`DaskExecutor`
runs the same contract on a Dask cluster (``--scheduler tcp://host:8786``, or a
``dask.distributed.Client`` given wherever an executor is taken).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import functools
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .errors import ParameterError, SpeakerGMMError

__all__ = ["Executor", "SerialExecutor", "ProcessExecutor", "DaskExecutor", "Session",
           "get_executor", "SCHEDULER_ENV", "SCHEDULER_TIMEOUT", "local_threads",
           "thread_map"]

#: Environment variable naming a Dask scheduler (``tcp://host:8786``) for the CLI.
SCHEDULER_ENV = "SPEAKERGMM_SCHEDULER"

# Chunks per worker and map call: enough for load balancing, few enough that a shared value
# (pickled once per chunk: pickle memoises it within one chunk) travels rarely.
_CHUNKS_PER_WORKER = 4


class Session:
    """A started executor: ``map`` as often as needed with the same broadcast state."""

    def map(self, fn: Callable, items: Iterable, *, shared: Any = None) -> Iterator:
        """``fn(state, item)`` for each item (``fn(state, shared, item)`` when ``shared`` is
        given: a value for this call only, e.g. the model of one EM iteration), yielded in
        the order of ``items``."""
        raise NotImplementedError


class Executor:
    """Where batch work runs. Subclasses: :class:`SerialExecutor`, :class:`ProcessExecutor`."""

    #: Number of workers (1 for serial).
    n_workers: int = 1

    def start(self, state: Any = None, *, blas_threads: int | None = None
              ) -> contextlib.AbstractContextManager[Session]:
        """Start the workers with ``state``; the context's exit stops them.

        ``blas_threads`` limits BLAS in this process for serial work (process workers
        always use one thread).
        """
        raise NotImplementedError

    def map(self, fn: Callable, items: Iterable, state: Any = None, **kw) -> list:
        """``[fn(state, item) for item in items]``, computed by this executor (in this
        process when there is only one item)."""
        items = list(items)
        executor = get_executor(self, n_items=len(items))
        with executor.start(state, **kw) as session:
            return list(session.map(fn, items))


class _SerialSession(Session):
    def __init__(self, state):
        self.state = state

    def map(self, fn, items, *, shared=None):
        for item in items:
            yield fn(self.state, item) if shared is None else fn(self.state, shared, item)


class SerialExecutor(Executor):
    """Everything in this process, in order."""

    n_workers = 1

    @contextlib.contextmanager
    def start(self, state=None, *, blas_threads=None):
        with _blas_limit(blas_threads):
            yield _SerialSession(state)

    def __repr__(self) -> str:
        return "SerialExecutor()"


class ProcessExecutor(Executor):
    """A pool of local worker processes.

    Parameters
    ----------
    n_workers : int
        Worker processes (``-j``).
    start_method : {"fork", "spawn", "forkserver"}, optional
        Default: ``fork`` where available (workers inherit imports and in-memory data at no
        cost), else ``spawn``.
    """

    def __init__(self, n_workers: int, *, start_method: str | None = None):
        if int(n_workers) < 1:
            raise ParameterError(f"n_workers must be at least 1, got {n_workers}")
        self.n_workers = int(n_workers)
        methods = multiprocessing.get_all_start_methods()
        if start_method is None:
            start_method = "fork" if "fork" in methods else "spawn"
        if start_method not in methods:
            raise ParameterError(f"start method {start_method!r} is not available here; choose "
                             f"one of {', '.join(methods)}")
        self.start_method = start_method

    @contextlib.contextmanager
    def start(self, state=None, *, blas_threads=None):
        ctx = multiprocessing.get_context(self.start_method)
        # A worker dies with the thread that started it (Linux), so only workers started by
        # this process's main thread ask to (a fork server's are not this process's).
        parent = (os.getpid() if threading.current_thread() is threading.main_thread()
                  and self.start_method != "forkserver" else None)
        pool = ctx.Pool(self.n_workers, initializer=_worker_init, initargs=(state, parent))
        down = True
        try:
            yield _PoolSession(pool, self.n_workers)
            pool.close()
        except BaseException:
            down = _terminate(pool)
            raise
        finally:
            if down:
                pool.join()

    def __repr__(self) -> str:
        return f"ProcessExecutor({self.n_workers}, start_method={self.start_method!r})"


class _PoolSession(Session):
    def __init__(self, pool, n_workers: int):
        self.pool, self.n_workers = pool, n_workers

    def map(self, fn, items, *, shared=None):
        items = list(items)
        if not items:
            return iter(())
        chunk = max(1, math.ceil(len(items) / (_CHUNKS_PER_WORKER * self.n_workers)))
        tasks = [(fn, shared, item) for item in items]
        return self.pool.imap(_worker_call, tasks, chunksize=chunk)


class DaskExecutor(Executor):
    """The workers of a Dask cluster (``dask.distributed``).

    The state of :meth:`Executor.start` is scattered to every worker once (broadcast), and
    so is each ``shared`` value of :meth:`Session.map` (the model of one EM iteration):
    tasks carry only their items and return only their results, which come back in item
    order, so that the caller reduces them as it does for local processes and the result
    equals the serial run's. Items are grouped into a few tasks per worker thread, as the
    local pool chunks them. A worker lost mid-task is replaced and its tasks run again
    (Dask's own retry: the functions mapped here are pure); an exception raised by a task
    (a corrupt file) is raised here, as it was raised there.

    Workers share the client's view of the file system: archives, models and audio are
    read by path on the workers.

    Parameters
    ----------
    scheduler : str or distributed.Client
        The scheduler's address (``tcp://host:8786``), or a client already connected.
    timeout : float
        Seconds to wait for the scheduler to answer and for its first worker to join
        (:data:`SCHEDULER_TIMEOUT`); beyond them, a :class:`SpeakerGMMError` saying which.
    """

    def __init__(self, scheduler, *, timeout: float | None = None):
        try:
            import distributed
        except ImportError:
            raise SpeakerGMMError("running on a Dask cluster needs dask.distributed: pip "
                                  "install 'speakergmm[dask]' (or pip install -e '.[dask]' "
                                  "in a clone)") from None
        timeout = SCHEDULER_TIMEOUT if timeout is None else float(timeout)
        if not timeout > 0:
            raise SpeakerGMMError(f"scheduler timeout {timeout} s: give a positive number "
                                  "of seconds")
        self._own = not isinstance(scheduler, distributed.Client)
        if self._own:
            scheduler = _connect(distributed, str(scheduler), timeout)
        self.client = scheduler
        if self._own:
            address = scheduler.scheduler.address
            try:
                scheduler.wait_for_workers(1, timeout=timeout)
            except Exception:  # noqa: BLE001 (distributed raises several kinds)
                scheduler.close()
                raise SpeakerGMMError(
                    f"the Dask scheduler at {address} has no workers after {timeout:g} s; "
                    f"start some with 'dask worker {address}' (each needs speakergmm "
                    "installed), or wait longer with --scheduler-timeout") from None

    @property
    def n_workers(self) -> int:  # worker threads: what tasks run on at once
        workers = self.client.scheduler_info().get("workers", {})
        return max(1, sum(w.get("nthreads", 1) for w in workers.values()))

    @contextlib.contextmanager
    def start(self, state=None, *, blas_threads=None):
        session = _DaskSession(self.client, state, self.n_workers)
        try:
            yield session
        finally:
            session.state.release()

    def close(self) -> None:
        """Disconnect a client this executor opened (one passed in is left open)."""
        if self._own:
            self.client.close()

    def __repr__(self) -> str:
        return f"DaskExecutor({self.client.scheduler.address!r})"


#: Seconds :class:`DaskExecutor` waits for a scheduler to answer and for a worker to join.
SCHEDULER_TIMEOUT = 30.0


def _connect(distributed, address: str, timeout: float):
    """A client of the scheduler at ``address``, within ``timeout`` seconds whatever is
    there: nothing (connection refused), a server that never answers, another protocol
    (HTTP), an address distributed cannot use (``ucx://`` without UCX). The connection is
    made on a daemon thread, so that no handshake waits past the deadline."""
    import threading

    fix = ("start one with 'dask scheduler' and workers with 'dask worker ADDRESS', or "
           "give its address as tcp://host:8786")
    outcome = {}

    def connect():
        try:
            outcome["client"] = distributed.Client(address, set_as_default=False,
                                                   timeout=f"{timeout}s")
        except Exception as exc:  # noqa: BLE001 (any failure to connect is one answer)
            outcome["error"] = exc

    thread = threading.Thread(target=connect, daemon=True, name="speakergmm-dask-connect")
    thread.start()
    thread.join(timeout + 5)  # distributed's own timeout first, when it keeps it
    if "client" in outcome:
        return outcome["client"]
    if "error" in outcome:
        error = outcome["error"]
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        if isinstance(error, (MemoryError, OverflowError)) or "allocate" in reason:
            # (another protocol's bytes read as a Dask frame length: "Unable to allocate
            # 3.07 EiB")
            reason = "the server there does not speak Dask's protocol"
        elif "abstract class" in reason:  # ucx:// without its transport installed
            reason = (f"{address.split('://')[0]}:// is not available here: its transport is "
                      "not installed")
        raise SpeakerGMMError(f"cannot reach the Dask scheduler at {address} ({reason}); "
                              f"{fix}") from None
    raise SpeakerGMMError(f"the Dask scheduler at {address} did not answer within "
                          f"{timeout:g} s (is it a Dask scheduler?); {fix}")


def _worker_import_error(exc: ImportError) -> SpeakerGMMError:
    """A worker that cannot import speakergmm (or one of its dependencies) to run a task,
    as one line saying what to install where."""
    from ._version import __version__

    return SpeakerGMMError(
        f"a Dask worker cannot import {exc.name or 'a module'} to run speakergmm's tasks: "
        f"install speakergmm {__version__} in the environment of every worker (pip install "
        "-e '.[dask]' from the same clone), then restart them")


class _DaskSession(Session):
    def __init__(self, client, state, n_workers: int):
        self.client, self.n_workers = client, n_workers
        self._value = state
        self.state = _scatter(client, state)  # (a future: broadcast again if it is lost)

    def map(self, fn, items, *, shared=None):
        items = list(items)
        if not items:
            return iter(())
        size = max(1, math.ceil(len(items) / (_CHUNKS_PER_WORKER * self.n_workers)))
        chunks = [items[i:i + size] for i in range(0, len(items), size)]
        # the shared value broadcast again if it goes with a worker (_in_order)
        held = {"shared": None if shared is None else _scatter(self.client, shared)}

        def submit(chunk):
            return self.client.submit(_dask_chunk, chunk, fn=fn, state=self.state,
                                      shared=held["shared"], has_shared=shared is not None,
                                      pure=False)

        def rescatter():
            # Whatever the futures' status says yet (the scheduler tells the client of a
            # loss a moment later): the shared value anew, under a new key, and the
            # session's state if it went too.
            if shared is not None:
                held["shared"].release()
                held["shared"] = _scatter(self.client, shared)
            if self.state.status != "finished":
                self.state.release()
                self.state = _scatter(self.client, self._value)

        # submitted now, not at the first result asked for
        return self._in_order(chunks, [submit(c) for c in chunks], submit, rescatter, held)

    @staticmethod
    def _in_order(chunks, futures, submit, rescatter, held):
        from concurrent.futures import CancelledError

        try:
            for i, chunk in enumerate(chunks):
                for attempt in range(_RESUBMITS + 1):
                    try:
                        results = futures[i].result()
                        break
                    except ImportError as exc:
                        raise _worker_import_error(exc) from None
                    except CancelledError:
                        # the scheduler forgot it: a worker died holding what it needed;
                        # a moment for the scheduler to drop that worker, then again
                        time.sleep(0.2 * (attempt + 1))
                        rescatter()
                        futures[i] = submit(chunk)
                else:
                    raise SpeakerGMMError(f"a Dask task was lost {_RESUBMITS + 1} times "
                                          "(workers dying or leaving the cluster); check the "
                                          "workers' logs")
                futures[i].release()  # the client holds one chunk's results at a time
                yield from results
        finally:
            for future in futures:
                future.cancel()
            if held["shared"] is not None:
                held["shared"].release()


#: Times a chunk whose task the scheduler lost (``FutureCancelledError``: a worker died
#: holding what it needed) is submitted again before the run fails.
_RESUBMITS = 3


#: Seconds one broadcast may take before it is tried again (a worker that died unnoticed
#: can hold it forever).
SCATTER_TIMEOUT = 30.0


def _scatter(client, value, attempts: int = 5):
    """``value`` on every worker (one future): a copy on each, so that losing a worker
    loses no data. A worker that dies during the broadcast fails it, or stalls it until
    :data:`SCATTER_TIMEOUT`; the scheduler then drops that worker and the next attempt goes
    to the others."""
    import time

    for attempt in range(attempts):
        try:
            [future] = client.scatter([value], broadcast=True, hash=False,
                                      timeout=SCATTER_TIMEOUT)
            return future
        except OSError:  # distributed's CommClosedError, and TimeoutError
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * 2 ** attempt)


def get_executor(executor: Executor | int | None = None, *,
                 n_items: int | None = None) -> Executor:
    """An :class:`Executor` from what a batch function was given: an executor as it is, a
    number of local processes (``jobs``; 1 or None: serial).

    With ``n_items`` (the work items of the job) below two, local processes give way to
    this process: a pool for a single task only adds its start-up, and the task would lose
    the BLAS threads this process has.
    """
    if isinstance(executor, Executor):
        chosen = executor
    elif type(executor).__name__ == "Client" and hasattr(executor, "scatter"):
        chosen = DaskExecutor(executor)  # a dask.distributed.Client
    elif executor is None or isinstance(executor, bool):
        chosen = SerialExecutor()
    elif isinstance(executor, int):
        if executor < 1:
            raise ParameterError(f"a number of processes must be at least 1, got {executor}")
        chosen = SerialExecutor() if executor == 1 else ProcessExecutor(executor)
    else:
        raise ParameterError(f"executor must be a number of processes, an Executor or a "
                             f"dask.distributed.Client, got {type(executor).__name__}")
    if n_items is not None and n_items < 2 and isinstance(chosen, ProcessExecutor):
        return SerialExecutor()
    return chosen


# --- worker side -----------------------------------------------------------------------------

_worker_state: Any = None


#: Seconds :func:`_terminate` gives ``Pool.terminate`` before it gives the pool up.
TERMINATE_WAIT = 10.0


def _terminate(pool) -> bool:
    """Stop a pool after an error or Ctrl-C: ``pool.terminate()``, unless it hangs.

    It can hang for good: a worker stopped while it writes a result to the pool's result
    queue dies holding that queue's lock, and the pool's task handler, which terminate()
    waits for, then waits on the lock forever (seen in CI, once in hundreds of runs). The
    caller's error matters more than a clean pool: after :data:`TERMINATE_WAIT` seconds
    the workers are killed and the pool is left to its (daemon) threads. Returns whether
    the pool stopped (and may be joined).
    """
    stopping = threading.Thread(target=pool.terminate, name="speakergmm-terminate",
                                daemon=True)
    stopping.start()
    stopping.join(TERMINATE_WAIT)
    if not stopping.is_alive():
        return True
    for process in getattr(pool, "_pool", ()):  # (the pool keeps its workers there)
        if process.exitcode is None:
            process.kill()
    return False


def _worker_init(state, parent: int | None = None) -> None:
    global _worker_state, _in_worker
    if parent is not None:
        _die_with(parent)
    _worker_state = state
    _in_worker = True
    # Ctrl-C reaches the whole process group: the parent stops the pool, and workers must
    # not each print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # the parent's SIGTERM handler (the CLI's) raises: a worker the pool stops just ends
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _blas_limit(1).__enter__()  # for the worker's lifetime


def _die_with(parent: int) -> None:
    """End this worker when ``parent`` dies, even by SIGKILL (the OOM killer, ``kill -9``):
    an orphan would go on writing part files into an archive that the next run is
    resuming, and then wait forever for a pool that is gone."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # died before prctl took effect
        os._exit(1)


_PR_SET_PDEATHSIG = 1


def _worker_call(task):
    fn, shared, item = task
    return fn(_worker_state, item) if shared is None else fn(_worker_state, shared, item)


def _dask_chunk(items, *, fn, state, shared, has_shared):
    """A Dask task: ``fn`` over a chunk of items, on a worker set up as a pool worker is."""
    global _in_worker
    if not _in_worker:
        _in_worker = True
        _blas_limit(1).__enter__()  # for the worker's lifetime, as in _worker_init
    if has_shared:
        return [fn(state, shared, item) for item in items]
    return [fn(state, item) for item in items]


_in_worker = False


# --- threads within one process ------------------------------------------------------------

def local_threads() -> int:
    """Threads one computation may use in this process: 1 in a worker (processes or Dask
    tasks give the parallelism there), else the cores this process may run on."""
    if _in_worker:
        return 1
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_threads: concurrent.futures.ThreadPoolExecutor | None = None
_controller = None


def thread_map(fn: Callable, items: Iterable) -> list:
    """``[fn(item) for item in items]`` over this process's threads (:func:`local_threads`),
    in item order, with BLAS on one thread each: numpy's GEMMs and ufuncs let the GIL go,
    so chunks of one E-step run on every core. BLAS is on one thread also where this runs
    sequentially, so that a chunk's arithmetic is the same here, in a pool worker and on a
    Dask worker: the same statistics, bit for bit, wherever they are computed."""
    items = list(items)
    nested = getattr(_thread_state, "busy", False)  # a pool thread must not wait on the pool
    n = 1 if nested else min(local_threads(), len(items))
    with one_blas_thread():
        if n < 2:
            return [fn(item) for item in items]
        return list(_pool(n).map(functools.partial(_in_thread, fn), items))


def _pool(n: int) -> concurrent.futures.ThreadPoolExecutor:
    global _threads
    if _threads is None or _threads._max_workers < n:
        _threads = concurrent.futures.ThreadPoolExecutor(n, "speakergmm")
    return _threads


_thread_state = threading.local()


def _in_thread(fn, item):
    _thread_state.busy = True
    return fn(item)


def one_blas_thread():
    """A context in which numpy's BLAS runs on one thread: for many small GEMMs (a thread
    pool's chunks, identification's per-component products), where more threads only
    spin (twice the CPU for the same wall time, measured)."""
    global _controller
    if _in_worker:  # limited for the worker's lifetime already
        return contextlib.nullcontext()
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()  # finding the BLAS libraries once
    return _controller.limit(limits=1, user_api="blas")


def _blas_limit(threads: int | None):
    if threads is None:
        return contextlib.nullcontext()
    # numpy's BLAS must be loaded to be limited: a spawned worker may not have imported
    # numpy yet, and its BLAS would then start later on every core, with other rounding
    # (its features differed from the parent's in the last bits).
    import numpy  # noqa: F401
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads, user_api="blas")

