"""Benchmark the i-vector extractor (:class:`speakergmm.gmm.ivector.IVectorExtractor`)
against bob.learn.em's ``IVectorMachine`` on the same synthetic statistics, and PLDA scoring
of 100,000 enrolled i-vectors against one test.

Run ``python tests/benchmarks/bench_ivector.py --peer-python /path/to/bob/venv/bin/python
[--cases speechocean762-like larger] [--repeat 3] [--iterations 5]``
(bob.learn.em 3.3 needs scikit-learn < 1.6: a venv of its own, as for bench_channel.py; the
peer is skipped when that interpreter cannot import it). Not collected by pytest.

Data: statistics drawn from a known total variability matrix T_true (feature units) of a
random UBM: per utterance, counts from the UBM weights, first order ``n_k (μ_k + T_k w) +
sqrt(n_k) σ_k ε``, ``w ~ N(0, I)``. Both trainers get the same statistics, the UBM's
covariances kept (bob: ``update_sigma=False``) and the same number of EM iterations. Our
time per iteration excludes our initialisation (a randomised SVD; ``fit`` with 0 iterations
timed apart); bob's initialisation is a random draw. Each is the median of ``--repeat``
runs; the recovered subspace is compared with T_true (cosines of the principal angles in
the variance-normalised space; 1 = the same subspace).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import BOB_STATS_PRELUDE, cosines, cpu_busy, peer_can_run  # noqa: E402

SEED = 20261130
#: name -> (utterances H, components K, dimension D, rank R, frames per utterance)
CASES = {"speechocean762-like": (960, 256, 48, 100, 2000),
         "larger": (2000, 512, 60, 200, 4000),
         "tiny": (40, 8, 4, 3, 100)}  # the suite's smoke run (tests/test_benchmarks.py)

_PEER = BOB_STATS_PRELUDE + r"""
times, extract = [], []
for _ in range(int(sys.argv[3])):
    np.random.seed(0)
    machine = bem.IVectorMachine(ubm, dim_t=int(d["R"]), max_iterations=int(d["iterations"]),
                                 update_sigma=False)
    t = time.perf_counter()
    machine.fit(stats)
    times.append(time.perf_counter() - t)
    t = time.perf_counter()
    machine.transform(stats)
    extract.append(time.perf_counter() - t)
np.save(sys.argv[2], np.asarray(machine.T), allow_pickle=False)
print(json.dumps({"seconds": times, "extract": extract}))
"""


def make_stats(H: int, K: int, D: int, R: int, frames: int, seed=SEED):
    """A random UBM, T_true (feature units, (K, D, R)) and H utterances' statistics."""
    from speakergmm.gmm.mixture import DiagGMM

    rng = np.random.default_rng(seed)
    ubm = DiagGMM(rng.dirichlet(np.full(K, 5.0)), 3.0 * rng.standard_normal((K, D)),
                  rng.uniform(0.5, 1.5, (K, D)))
    sd = np.sqrt(ubm.variances)
    T_true = 0.5 * rng.standard_normal((K, D, R)) / np.sqrt(R) * sd[:, :, None]
    N = rng.multinomial(frames, ubm.weights, size=H).astype(np.float64)
    W = rng.standard_normal((H, R))
    F = N[:, :, None] * (ubm.means + np.einsum("kdr,hr->hkd", T_true, W))
    F += np.sqrt(N)[:, :, None] * sd * rng.standard_normal((H, K, D))
    return ubm, T_true, N, F


def run_case(name, H, K, D, R, frames, iterations, repeat, peer_python):
    from speakergmm.gmm.ivector import IVectorExtractor
    from speakergmm.gmm.stats import GMMStats

    ubm, T_true, N, F = make_stats(H, K, D, R, frames)
    sd = np.sqrt(ubm.variances)
    truth = (T_true / sd[:, :, None]).reshape(K * D, R)  # variance-normalised
    stats = {f"u{h:06d}": GMMStats(N[h], F[h], np.zeros((K, D)), 0.0, frames)
             for h in range(H)}
    row = {"case": name, "H": H, "K": K, "D": D, "R": R, "iterations": iterations}
    t_init, t_fit, t_extract = [], [], []
    for _ in range(repeat):
        t = time.perf_counter()
        IVectorExtractor.fit(ubm, stats, n_factors=R, n_iterations=0)
        t_init.append(time.perf_counter() - t)
        t = time.perf_counter()
        ours = IVectorExtractor.fit(ubm, stats, n_factors=R, n_iterations=iterations)
        t_fit.append(time.perf_counter() - t)
        t = time.perf_counter()
        ours.extract(N, F)
        t_extract.append(time.perf_counter() - t)
    per_iter = (statistics.median(t_fit) - statistics.median(t_init)) / iterations
    row.update(ours_iter=per_iter, ours_init=statistics.median(t_init),
               ours_cos=cosines(truth, ours.T.reshape(K * D, R)),
               ours_ups=H / statistics.median(t_extract))
    if peer_python:
        with tempfile.TemporaryDirectory() as tmp:
            data, out = os.path.join(tmp, "data.npz"), os.path.join(tmp, "T.npy")
            np.savez(data, means=ubm.means, variances=ubm.variances, weights=ubm.weights,
                     N=N, F=F, R=R, iterations=iterations)
            proc = subprocess.run([peer_python, "-c", _PEER, data, out, str(repeat)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"peer failed:\n{proc.stderr[-3000:]}")
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            bob_T = np.load(out, allow_pickle=False) / sd[:, :, None]
            row.update(bob_iter=statistics.median(result["seconds"]) / iterations,
                       bob_cos=cosines(truth, bob_T.reshape(K * D, R)),
                       bob_ups=H / statistics.median(result["extract"]))
    return row


def plda_scoring(models: int, dim: int, repeat: int = 21) -> dict:
    """Median time to score ``models`` enrolled vectors against one test (PLDA, by the
    book with 1 to 3 enrollment vectors each) and of the cosine of the same."""
    from speakergmm.backend.plda import PLDA
    from speakergmm.backend.vectors import CosineModels

    rng = np.random.default_rng(SEED)
    a = rng.standard_normal((dim, dim))
    plda = PLDA(np.zeros(dim), a @ a.T / dim + np.eye(dim), np.eye(dim))
    enrolled = plda.models(rng.standard_normal((models, dim)), rng.integers(1, 4, models))
    test = rng.standard_normal((1, dim))
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        enrolled.scores(test)
        times.append(time.perf_counter() - t)
    unit = CosineModels(rng.standard_normal((models, dim)))
    cos = []
    for _ in range(repeat):
        t = time.perf_counter()
        unit.scores(test)
        cos.append(time.perf_counter() - t)
    return {"models": models, "dim": dim, "plda_ms": 1e3 * statistics.median(times),
            "cosine_ms": 1e3 * statistics.median(cos)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--peer-python", default=sys.executable,
                    help="interpreter that can import bob.learn.em [default: this one]")
    ap.add_argument("--cases", nargs="+", choices=sorted(CASES),
                    default=["speechocean762-like", "larger"],
                    help="which shapes to run")
    ap.add_argument("--models", type=int, default=100_000,
                    help="enrolled models of the PLDA scoring table")
    args = ap.parse_args()
    repeat = args.repeat
    peer = args.peer_python if peer_can_run(args.peer_python) else None
    print(f"# CPU busy before start: {100 * cpu_busy():.0f}%; {args.iterations} EM "
          f"iterations; median of {repeat}")
    if peer is None:
        print(f"# bob.learn.em not importable by {args.peer_python}: peer skipped "
              "(give --peer-python)")
    rows = [run_case(name, *CASES[name], args.iterations, repeat, peer) for name in args.cases]
    print()
    print("| case | H × K × D, R | ours s / iteration (init) | bob s / iteration | bob / ours | "
          "subspace cos min / mean: ours | bob | extraction utt/s: ours | bob |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        bob = (f"{r['bob_iter']:.2f}", f"{r['bob_iter'] / r['ours_iter']:.1f}x",
               f"{r['bob_cos'].min():.3f} / {r['bob_cos'].mean():.3f}",
               f"{r['bob_ups']:.0f}") if "bob_iter" in r else ("-",) * 4
        print(f"| {r['case']} | {r['H']} × {r['K']} × {r['D']}, {r['R']} | "
              f"{r['ours_iter']:.2f} ({r['ours_init']:.2f}) | {bob[0]} | {bob[1]} | "
              f"{r['ours_cos'].min():.3f} / {r['ours_cos'].mean():.3f} | {bob[2]} | "
              f"{r['ours_ups']:.0f} | {bob[3]} |")
    print()
    print("| enrolled models | dimension | PLDA, one test (ms) | cosine, one test (ms) |")
    print("|---|---|---|---|")
    for dim in (200, 400):
        s = plda_scoring(args.models, dim)
        print(f"| {s['models']:,} | {dim} | {s['plda_ms']:.1f} | {s['cosine_ms']:.1f} |")


if __name__ == "__main__":
    main()
