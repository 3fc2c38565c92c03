"""Benchmark one EM iteration of :class:`speakergmm.gmm.DiagGMM` against scikit-learn.

Run ``python tests/benchmarks/bench_em.py`` (``--quick`` for a smaller run). Not collected by
pytest. Prints one table:

- ours: one EM iteration (``accumulate`` over all chunks + ``m_step``), median of repeats;
- scikit-learn ``GaussianMixture(covariance_type="diag")`` per iteration from the same initial
  parameters, ``(fit(max_iter=5) - fit(max_iter=1)) / 4`` with ``tol=0``;
- the arithmetic floor measured in the same run, the way the E-step runs: per chunk (in
  cache), the two float32 GEMMs and ``np.exp`` over the chunk's log-joint block, the chunks
  over this process's threads with BLAS on one thread each (the full-size N×K ``exp`` an
  earlier version timed is memory-bound, ~6x slower per value than in cache);
- peak memory (VmHWM) of each in its own subprocess, minus a baseline subprocess that imports
  the same modules and generates the same data, and ours again at 10× the frames.

Targets (N=200k, D=60, K=512, 2 cores): ≥12× faster than scikit-learn, within 1.3× of the
floor, ≤400 MiB peak, and <10% more peak at N=2M. scikit-learn's BLAS threads are left at
their default; OPENBLAS_CORETYPE, if set, is left alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import cpu_busy  # noqa: E402

SEED = 20240521


def make_data(n: int, dim: int, seed: int = SEED) -> np.ndarray:
    """Seeded float32 frames from a 64-component mixture, about zero mean and unit variance.

    Generated in blocks straight into float32 so that no float64 copy inflates peak memory.
    """
    rng = np.random.default_rng(seed)
    true_k = 64
    centres = (0.8 * rng.standard_normal((true_k, dim))).astype(np.float32)
    spreads = rng.uniform(0.3, 0.7, (true_k, dim)).astype(np.float32)
    X = np.empty((n, dim), np.float32)
    block = 100_000
    for start in range(0, n, block):
        x = X[start:start + block]
        comp = rng.integers(0, true_k, x.shape[0])
        rng.standard_normal(out=x, dtype=np.float32)
        x *= spreads[comp]
        x += centres[comp]
    return X


def initial_params(X: np.ndarray, k: int, seed: int = SEED):
    """A usual UBM start: means at random frames, global variance, uniform weights."""
    rng = np.random.default_rng(seed + 1)
    means = X[rng.choice(X.shape[0], k, replace=False)].astype(np.float64)
    var = X[: min(len(X), 100_000)].var(axis=0, dtype=np.float64)
    return np.full(k, 1.0 / k), means, np.tile(var, (k, 1))


def em_iteration(model, X, chunk_size=None):
    """One EM iteration: statistics over all chunks, then the M-step."""
    stats = model.accumulate(X, chunk_size=chunk_size)
    return model.m_step(stats), stats


def sklearn_fit(X, w, mu, var, max_iter):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    gm = GaussianMixture(
        n_components=len(w), covariance_type="diag", max_iter=max_iter, tol=0.0,
        reg_covar=1e-6, weights_init=w, means_init=mu, precisions_init=1.0 / var,
        init_params="random_from_data", random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X)
    return gm


def wait_quiet(max_wait: float) -> None:
    """On a shared machine, wait (at most ``max_wait`` s) until other work leaves the CPUs."""
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline:
        try:
            if cpu_busy() < 0.1:
                return
        except OSError:
            return


def timed(fn, repeats, quiet=0.0):
    """Wall times of ``repeats`` calls, each started on idle CPUs when ``quiet`` > 0."""
    times = []
    for _ in range(repeats):
        if quiet:
            wait_quiet(quiet)
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def floor_times(n, dim, k, chunk, repeats, quiet=0.0):
    """Times of the arithmetic floor of one E-step, run as the E-step runs: per chunk of
    ``chunk`` frames (in cache), the two float32 GEMMs ``(chunk×(2D+1))·((2D+1)×K)`` and
    ``(K×chunk)·(chunk×(2D+1))`` and ``np.exp`` over chunk×K, the chunks spread over this
    process's threads with BLAS on one thread each (``speakergmm.exec.thread_map``)."""
    import threading

    from speakergmm.exec import thread_map

    rng = np.random.default_rng(SEED + 2)
    A = rng.standard_normal((n, 2 * dim + 1), dtype=np.float32)
    B = rng.standard_normal((2 * dim + 1, k), dtype=np.float32)
    local = threading.local()

    def one(start):
        if not hasattr(local, "L"):
            local.L = np.empty((chunk, k), np.float32)
        a = A[start:start + chunk]
        L = local.L[:a.shape[0]]
        np.matmul(a, B, out=L)
        L *= -1e-3  # log-posterior-like arguments
        np.exp(L, out=L)
        return L.T @ a

    starts = range(0, n, chunk)
    return timed(lambda: thread_map(one, starts), repeats, quiet)


# -- memory, each in its own process --------------------------------------------------------

def _proc_status_mib(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise OSError(f"no {field} in /proc/self/status")


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5); False if not permitted."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _mem_worker(what: str, n: int, dim: int, k: int) -> None:
    """Import, generate the data and the model; then (after resetting the peak) run one step.

    Prints the process's peak RSS and its RSS just before the step. Data generation has its
    own transient peak, so the step's peak is read after resetting VmHWM where the kernel
    allows it; otherwise the caller subtracts the baseline process's peak.
    """
    import gc

    import sklearn.mixture  # noqa: F401  pyflakes: ignore (every worker imports the same modules)

    from speakergmm.gmm.mixture import DiagGMM

    X = make_data(n, dim)
    w, mu, var = initial_params(X, k)
    model = DiagGMM(w, mu, var)
    gc.collect()
    reset = _reset_peak()
    before = _proc_status_mib("VmRSS")
    if what == "ours":
        em_iteration(model, X)
    elif what == "sklearn":
        sklearn_fit(X, w, mu, var, max_iter=1)
    print(json.dumps({"peak": _proc_status_mib("VmHWM"), "before": before, "reset": reset}))


def peak_mib(what: str, n: int, dim: int, k: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--mem-worker", what, "--n", str(n), "--dim", str(dim),
         "--k", str(k)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def net_peak(what: str, n: int, dim: int, k: int, base: dict) -> tuple[float, float]:
    """(MiB the step adds above the data-holding state, absolute peak MiB of the process)."""
    r = peak_mib(what, n, dim, k)
    ref = r["before"] if r["reset"] else base["peak"]
    return r["peak"] - ref, r["peak"]


# -- main -------------------------------------------------------------------------------------

def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="N=20k (and 200k for the scaling row)")
    p.add_argument("--n", type=int, default=None, help="frames (default 200,000)")
    p.add_argument("--dim", type=int, default=60)
    p.add_argument("--k", type=int, default=512)
    p.add_argument("--repeats", type=int, default=5, help="timed runs of ours and the floor")
    p.add_argument("--sklearn-repeats", type=int, default=1, help="pairs of sklearn fits")
    p.add_argument("--chunk-sizes", default="512,1024,2048,4096,8192",
                   help="comma-separated chunk sizes for the sweep ('' to skip)")
    p.add_argument("--quiet-wait", type=float, default=60.0,
                   help="before each timed run wait up to this many seconds for idle CPUs "
                        "(the machine may be shared); 0 to time immediately")
    p.add_argument("--no-sklearn", action="store_true")
    p.add_argument("--mem-worker", choices=["baseline", "ours", "sklearn"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    n = args.n or (20_000 if args.quick else 200_000)
    if args.mem_worker:
        _mem_worker(args.mem_worker, n, args.dim, args.k)
        return

    from speakergmm.exec import local_threads
    from speakergmm.gmm.mixture import DiagGMM, default_chunk_size

    try:
        from threadpoolctl import threadpool_info

        blas = ", ".join(sorted({f"{i['internal_api']} {i['num_threads']} threads"
                                 for i in threadpool_info() if i["user_api"] == "blas"}))
    except ImportError:
        blas = "unknown"
    print(f"N={n:,} D={args.dim} K={args.k}  numpy {np.__version__}  BLAS: {blas}  "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}  "
          f"chunk={default_chunk_size(args.k)}  load average {os.getloadavg()[0]:.2f}")
    q = args.quiet_wait
    med = statistics.median

    X = make_data(n, args.dim)
    w, mu, var = initial_params(X, args.k)
    model = DiagGMM(w, mu, var)
    em_iteration(model, X[:10_000])  # warm up BLAS threads and caches

    if args.chunk_sizes:
        sweep = []
        for cs in [int(c) for c in args.chunk_sizes.split(",")]:
            t = timed(lambda: model.accumulate(X, chunk_size=cs), args.repeats, q)
            sweep.append(f"{cs}: {med(t):.3f}")
        print("E-step s by chunk size (median): " + ", ".join(sweep))

    ours_all = timed(lambda: em_iteration(model, X), args.repeats, q)
    ours = med(ours_all)
    fl = floor_times(n, args.dim, args.k, default_chunk_size(args.k), args.repeats, q)
    floor, floor_min = med(fl), min(fl)

    sk = sk_all = None
    if not args.no_sklearn:
        sk_all = []
        for _ in range(args.sklearn_repeats):
            t1 = timed(lambda: sklearn_fit(X, w, mu, var, max_iter=1), 1, q)[0]
            t5 = timed(lambda: sklearn_fit(X, w, mu, var, max_iter=5), 1, q)[0]
            sk_all.append((t5 - t1) / 4)
        sk = med(sk_all)

    data_mib = n * args.dim * 4 / 2**20
    base = peak_mib("baseline", n, args.dim, args.k)
    ours_mem, ours_abs = net_peak("ours", n, args.dim, args.k, base)
    sk_mem, sk_abs = (None, None) if args.no_sklearn else net_peak(
        "sklearn", n, args.dim, args.k, base)
    big = 10 * n
    big_base = peak_mib("baseline", big, args.dim, args.k)
    big_mem, big_abs = net_peak("ours", big, args.dim, args.k, big_base)

    def row(name, secs, mem, absolute, note=""):
        cells = [f"{secs:9.3f}" if secs is not None else f"{'-':>9}"]
        cells += [f"{v:9.0f}" if v is not None else f"{'-':>9}" for v in (mem, absolute)]
        print(f"{name:<26}{''.join(cells)}  {note}")

    print()
    print(f"{'':<26}{'s/iter':>9}{'+MiB':>9}{'peak MiB':>9}")
    row(f"speakergmm N={n // 1000}k", ours, ours_mem, ours_abs,
        "runs " + " ".join(f"{t:.3f}" for t in ours_all))
    row("scikit-learn diag", sk, sk_mem, sk_abs,
        "(fit max_iter=5 - fit max_iter=1)/4" + (
            "; runs " + " ".join(f"{t:.3f}" for t in sk_all) if sk_all else ""))
    row("floor, per chunk in cache", floor, None, None,
        f"GEMM1 + exp + GEMM2 per chunk over {local_threads()} threads (min {floor_min:.3f})")
    row(f"speakergmm N={big // 1000}k", None, big_mem, big_abs)
    print("s/iter: median. +MiB: peak RSS one iteration adds to the process holding data and "
          "model.\npeak MiB: whole process (interpreter, numpy/scipy/sklearn, data "
          f"{data_mib:.0f} MiB at {n // 1000}k, {10 * data_mib:.0f} MiB at {big // 1000}k).")
    print()
    if sk is not None:
        print(f"sklearn / ours   = {sk / ours:5.1f}x  (target >= 12)")
    print(f"ours / floor     = {ours / floor:5.2f}x  (target <= 1.3; min/min "
          f"{min(ours_all) / floor_min:.2f}x)")
    print(f"peak ours        = {ours_abs:5.0f} MiB whole process, +{ours_mem:.0f} MiB for the "
          "iteration (target <= 400)")
    rest, big_rest = ours_abs - data_mib, big_abs - 10 * data_mib
    print(f"peak without data at {big // 1000}k / {n // 1000}k = {big_rest:.0f} / {rest:.0f} MiB = "
          f"{big_rest / rest:.2f}  (target < 1.10)")


if __name__ == "__main__":
    main()
