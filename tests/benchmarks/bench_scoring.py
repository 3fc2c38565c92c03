"""Benchmark LLR scoring (:mod:`speakergmm.backend.scoring`): full vs top-C vs linear.

Run ``python tests/benchmarks/bench_scoring.py`` (``--quick`` skips the 10,000-model set).
Not collected by pytest. Synthetic, seeded: a K=512, D=60 UBM from random parameters;
speakers are means-only MAP adaptations of it (``map_adapt``) from random statistics; the
test utterance is 3 s (300 frames) drawn from the UBM with a speaker-like shift.

Prints one table:

- per trial, one model (``llr``): the whole trial, UBM work included;
- per trial, UBM work shared: one test utterance against a set of 100 models
  (``score`` on a :class:`ModelSet`), time / 100 -- what a trial costs inside
  ``score_trials`` or identification; for full, the faster ``speaker.log_likelihood`` plus
  1/100 of the UBM's. Reynolds' top-C speed-up applies to this speaker side: with one model
  the UBM's own work (``top_components``, a full E-step) dominates every method;
- identification: one test utterance against 1,000 and 10,000 models (``score``), and the
  memory (``ModelSet.nbytes`` and the process RSS it added) of the 10,000-model set.

Targets (2 cores): full/top-C ≥ 10× per trial with the UBM work shared; identification
< 100 ms at 1,000 models and < 1 s at 10,000, excluding process start-up (and the set's
construction, reported separately). Times are medians of repeats, each started when the
CPUs are quiet if they become so within ``--quiet-wait`` s (the machine is shared).
BLAS threads are left at their default unless ``--blas-threads``: when another process
keeps one of the 2 cores busy, OpenBLAS's 2-thread GEMM on the UBM's small (300 × 121 ×
512) E-step was measured ~10× slower (16 ms instead of 1.3-1.9 ms) than with 1 thread.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import cpu_busy  # noqa: E402

from speakergmm.backend.scoring import ModelSet, llr, score
from speakergmm.gmm.adapt import map_adapt
from speakergmm.gmm.mixture import DiagGMM
from speakergmm.gmm.stats import GMMStats

SEED = 20240607
K, D, FRAMES, C = 512, 60, 300, 5


def make_ubm(rng) -> DiagGMM:
    return DiagGMM(rng.dirichlet(np.full(K, 2.0)), rng.standard_normal((K, D)),
                   rng.uniform(0.3, 1.5, (K, D)))


def random_stats(rng, ubm: DiagGMM, frames: int = 3000) -> GMMStats:
    """Statistics of ``frames`` frames of a speaker whose means are the UBM's, shifted."""
    n = rng.dirichlet(ubm.weights * K) * frames
    shift = 0.5 * rng.standard_normal((K, D))
    f = n[:, None] * (ubm.means + shift)
    s = n[:, None] * ((ubm.means + shift) ** 2 + ubm.variances)
    return GMMStats(n, f, s, 0.0, frames)


def model_means(rng, ubm: DiagGMM, m: int) -> np.ndarray:
    """(m, K, D) float32 means of ``m`` means-only MAP speakers (the adapted GMMs are dropped)."""
    out = np.empty((m, K, D), np.float32)
    for i in range(m):
        out[i] = map_adapt(ubm, random_stats(rng, ubm), relevance=16.0).means
    return out


def test_utterance(rng, ubm: DiagGMM) -> np.ndarray:
    comp = rng.choice(K, FRAMES, p=ubm.weights)
    x = ubm.means[comp] + 0.3 + np.sqrt(ubm.variances[comp]) * rng.standard_normal((FRAMES, D))
    return x.astype(np.float32)


def median_time(fn, repeats: int, quiet: float) -> float:
    fn()  # warm-up: caches, page faults of first-use buffers
    times = []
    for _ in range(repeats):
        deadline = time.monotonic() + quiet
        while quiet and time.monotonic() < deadline and cpu_busy() > 0.1:
            pass
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="skip the 10,000-model set")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--quiet-wait", type=float, default=5.0,
                   help="seconds to wait for idle CPUs before each timed run")
    p.add_argument("--blas-threads", type=int, default=None,
                   help="limit BLAS threads (default: the library's own choice)")
    args = p.parse_args(argv)
    if args.blas_threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=args.blas_threads, user_api="blas")
    rng = np.random.default_rng(SEED)
    ubm = make_ubm(rng)
    X = test_utterance(rng, ubm)
    r, q = args.repeats, args.quiet_wait
    rows = []

    # -- per trial ---------------------------------------------------------------------------
    means100 = model_means(rng, ubm, 100)
    set100 = ModelSet(ubm, means100)
    speaker = DiagGMM(ubm.weights, means100[0], ubm.variances)
    single = {m: median_time(lambda m=m: llr(ubm, speaker, X, method=m, c=C), r, q)
              for m in ("full", "topc", "linear")}
    shared = {m: median_time(lambda m=m: score(ubm, set100, X, method=m, c=C), r, q) / 100
              for m in ("full", "topc", "linear")}
    # Full scoring is fastest per model through DiagGMM.log_likelihood (one GEMM with the
    # model's own kernel); the ratio uses that, the ModelSet's full path is listed too.
    shared["full (ModelSet)"] = shared["full"]
    shared["full"] = (median_time(lambda: speaker.log_likelihood(X), r, q)
                      + median_time(lambda: ubm.log_likelihood(X), r, q) / 100)
    single["full (ModelSet)"] = median_time(
        lambda: score(ubm, ModelSet(ubm, means100[:1]), X, method="full"), r, q)
    for m in ("full", "full (ModelSet)", "topc", "linear"):
        rows.append((f"per trial, {m}", f"{single[m] * 1e3:8.2f} ms", f"{shared[m] * 1e3:8.3f} ms"))
    rows.append(("  ratio full / top-C", f"{single['full'] / single['topc']:8.1f} x",
                 f"{shared['full'] / shared['topc']:8.1f} x  (target >= 10)"))

    # -- identification ------------------------------------------------------------------------
    sizes = (1000,) if args.quick else (1000, 10000)
    ident = []
    for M in sizes:
        before = rss_mib()
        means = model_means(rng, ubm, M) if M > 100 else means100
        t0 = time.perf_counter()
        ms = ModelSet(ubm, means)
        build = time.perf_counter() - t0
        del means
        added = rss_mib() - before
        target = 0.1 if M == 1000 else 1.0
        for m in ("topc", "linear"):
            t = median_time(lambda m=m: score(ubm, ms, X, method=m, c=C), max(3, r // 2), q)
            ident.append((f"identify 1 utt vs {M:,} models, {m}", f"{t * 1e3:8.1f} ms",
                          f"target < {target * 1e3:.0f} ms"))
        ident.append((f"  {M:,}-model set", f"{ms.nbytes / 2**20:8.0f} MiB",
                      f"RSS +{added:.0f} MiB after freeing inputs; built in {build:.2f} s"))
        ms = None  # free before the next size

    print(f"K={K}, D={D}, test utterance {FRAMES} frames, C={C}; {args.repeats} repeats, "
          f"medians; BLAS threads {args.blas_threads or 'default'}")
    print(f"{'':42s} {'one model (llr)':>16s}   {'UBM shared (100 models)':>22s}")
    for name, a, b in rows:
        print(f"{name:42s} {a:>16s}   {b}")
    for name, a, b in ident:
        print(f"{name:42s} {a:>16s}   {b}")


if __name__ == "__main__":
    main()
