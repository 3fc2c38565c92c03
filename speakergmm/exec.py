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
two BLAS threads per worker on two cores run several times slower. A Dask backend plugs in
as a third subclass of :class:`Executor` (the same ``start``/``map`` contract).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import signal
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["Executor", "SerialExecutor", "ProcessExecutor", "Session", "get_executor"]

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
            raise ValueError(f"n_workers must be at least 1, got {n_workers}")
        self.n_workers = int(n_workers)
        methods = multiprocessing.get_all_start_methods()
        if start_method is None:
            start_method = "fork" if "fork" in methods else "spawn"
        if start_method not in methods:
            raise ValueError(f"start method {start_method!r} is not available here; choose "
                             f"one of {', '.join(methods)}")
        self.start_method = start_method

    @contextlib.contextmanager
    def start(self, state=None, *, blas_threads=None):
        ctx = multiprocessing.get_context(self.start_method)
        pool = ctx.Pool(self.n_workers, initializer=_worker_init, initargs=(state,))
        try:
            yield _PoolSession(pool, self.n_workers)
            pool.close()
        except BaseException:
            pool.terminate()
            raise
        finally:
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
    elif executor is None or isinstance(executor, bool):
        chosen = SerialExecutor()
    elif isinstance(executor, int):
        if executor < 1:
            raise ValueError(f"jobs must be at least 1, got {executor}")
        chosen = SerialExecutor() if executor == 1 else ProcessExecutor(executor)
    else:
        raise TypeError(f"executor must be an Executor or a number of processes, got "
                        f"{type(executor).__name__}")
    if n_items is not None and n_items < 2 and isinstance(chosen, ProcessExecutor):
        return SerialExecutor()
    return chosen


# --- worker side -----------------------------------------------------------------------------

_worker_state: Any = None


def _worker_init(state) -> None:
    global _worker_state
    _worker_state = state
    # Ctrl-C reaches the whole process group: the parent stops the pool, and workers must
    # not each print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _blas_limit(1).__enter__()  # for the worker's lifetime


def _worker_call(task):
    fn, shared, item = task
    return fn(_worker_state, item) if shared is None else fn(_worker_state, shared, item)


def _blas_limit(threads: int | None):
    if threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads, user_api="blas")

