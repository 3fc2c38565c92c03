"""Benchmark eigenchannel training (:class:`speakergmm.gmm.eigenchannel.EigenChannel`) against bob's
ISV trainer (``bob.learn.em.ISVMachine``, the same session-variability model: U within
classes, relevance-MAP class offsets).

Run ``python tests/benchmarks/bench_channel.py`` (``--quick`` for a smaller run). Not
collected by pytest. bob.learn.em pins old numpy and scikit-learn, so it usually lives in a
venv of its own: ``--peer-python /path/to/that/venv/bin/python`` runs the peer there; the
default is this interpreter, and the peer is skipped when it cannot import bob.

Data: synthetic recordings with a known channel subspace U_true (rank R) of a random UBM,
the shapes of the two recipes here (fsdd: 1,800 recordings, K = 64, R = 3; speechocean762:
960 recordings, K = 256, R = 60; D = 48). Both trainers get the same UBM and relevance and
10 EM iterations; bob gets the Baum-Welch statistics already computed, ours computes them
from the frames inside ``fit`` (its time includes them). Each is timed as the median of
``--repeat`` runs, and the recovered subspace is compared with U_true (cosines of the
principal angles, in feature units; 1 = the same subspace).
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

SEED = 20261125
ITERATIONS = 10
RELEVANCE = 8.0

_PEER = BOB_STATS_PRELUDE + r"""
y = d["labels"].tolist()
times = []
for _ in range(int(sys.argv[3])):
    isv = bem.ISVMachine(r_U=int(d["R"]), em_iterations=int(d["iterations"]),
                         relevance_factor=float(d["relevance"]), ubm=ubm, random_state=0)
    t = time.perf_counter()
    isv.fit(stats, y)
    times.append(time.perf_counter() - t)
np.save(sys.argv[2], np.asarray(isv.U), allow_pickle=False)
print(json.dumps({"seconds": times}))
"""


def make_world(n_classes: int, sessions: int, frames: int, K: int, D: int, R: int, seed=SEED):
    """A random UBM and ``n_classes × sessions`` recordings whose means move by a class
    offset and by ``U_true x`` (x ~ N(0, I)); returns (ubm, U_true in feature units, frames
    per utterance, utt2class)."""
    from speakergmm.gmm.mixture import DiagGMM

    rng = np.random.default_rng(seed)
    ubm = DiagGMM(rng.dirichlet(np.full(K, 5.0)), 3.0 * rng.standard_normal((K, D)),
                  rng.uniform(0.5, 1.5, (K, D)))
    sd = np.sqrt(ubm.variances)
    U_true = 0.5 * rng.standard_normal((K, D, R)) / np.sqrt(R) * sd[:, :, None]
    feats, classes = {}, {}
    for c in range(n_classes):
        offset = 0.3 * rng.standard_normal((K, D)) * sd
        for h in range(sessions):
            means = ubm.means + offset + U_true @ rng.standard_normal(R)
            comp = rng.choice(K, frames, p=ubm.weights)
            x = means[comp] + sd[comp] * rng.standard_normal((frames, D))
            utt = f"c{c:04d}-{h:02d}"
            feats[utt], classes[utt] = x.astype(np.float32), f"c{c:04d}"
    return ubm, U_true, feats, classes


def run_case(name, n_classes, sessions, frames, K, D, R, repeat, peer_python):
    from speakergmm.gmm.eigenchannel import EigenChannel

    ubm, U_true, feats, classes = make_world(n_classes, sessions, frames, K, D, R)
    truth = U_true.reshape(K * D, R)
    row = {"case": name, "H": len(feats), "K": K, "D": D, "R": R}

    stats = [ubm.accumulate(feats[u]) for u in sorted(classes)]  # bob's input
    t_fit = []
    for _ in range(repeat):
        t = time.perf_counter()
        ours = EigenChannel.fit(ubm, feats, classes, n_factors=R, n_iterations=ITERATIONS,
                                relevance=RELEVANCE)
        t_fit.append(time.perf_counter() - t)
    mine = (ours.U * np.sqrt(ubm.variances)[:, :, None]).reshape(K * D, R)
    t_comp = []
    total = sum(len(x) for x in feats.values())
    for _ in range(repeat):
        t = time.perf_counter()
        for x in feats.values():
            ours.compensate(x)
        t_comp.append(time.perf_counter() - t)
    row.update(ours_fit=statistics.median(t_fit),
               ours_cos=cosines(truth, mine), comp_fps=total / statistics.median(t_comp))

    if peer_python:
        with tempfile.TemporaryDirectory() as tmp:
            data, out = os.path.join(tmp, "data.npz"), os.path.join(tmp, "U.npy")
            utts = sorted(classes)
            labels = np.unique([classes[u] for u in utts], return_inverse=True)[1]
            np.savez(data, means=ubm.means, variances=ubm.variances, weights=ubm.weights,
                     N=np.stack([s.n for s in stats]), F=np.stack([s.f for s in stats]),
                     labels=labels, R=R, iterations=ITERATIONS, relevance=RELEVANCE)
            proc = subprocess.run([peer_python, "-c", _PEER, data, out, str(repeat)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"peer failed:\n{proc.stderr[-3000:]}")
            seconds = json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]
            row.update(bob_fit=statistics.median(seconds),
                       bob_cos=cosines(truth, np.load(out, allow_pickle=False)))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller recordings, one repeat")
    ap.add_argument("--tiny", action="store_true",
                    help="one tiny case (the suite's smoke run, tests/test_benchmarks.py)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--peer-python", default=sys.executable,
                    help="interpreter that can import bob.learn.em [default: this one]")
    args = ap.parse_args()
    repeat = 1 if args.quick else args.repeat
    frames = 100 if args.quick else 300
    peer = args.peer_python if peer_can_run(args.peer_python) else None
    print(f"# CPU busy before start: {100 * cpu_busy():.0f}%; BLAS threads: default; "
          f"{ITERATIONS} EM iterations, relevance {RELEVANCE:g}; median of {repeat}")
    if peer is None:
        print(f"# bob.learn.em not importable by {args.peer_python}: peer skipped "
              "(give --peer-python)")
    if args.tiny:
        rows = [run_case("tiny", 6, 4, 50, 8, 6, 2, 1, peer)]
    else:
        rows = [run_case("fsdd-like", 60, 30, frames, 64, 48, 3, repeat, peer),
                run_case("speechocean762-like", 48, 20, frames, 256, 48, 60, repeat, peer)]
    print()
    print("| case | H × K × D, R | ours fit (statistics included) | bob ISV fit (statistics "
          "given) | bob / ours | subspace cos min / mean: ours | bob | ours compensate |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        bob = (f"{r['bob_fit']:.2f} s", f"{r['bob_fit'] / r['ours_fit']:.1f}x",
               f"{r['bob_cos'].min():.3f} / {r['bob_cos'].mean():.3f}") if "bob_fit" in r \
            else ("-", "-", "-")
        print(f"| {r['case']} | {r['H']} × {r['K']} × {r['D']}, {r['R']} | "
              f"{r['ours_fit']:.2f} s | {bob[0]} | {bob[1]} | "
              f"{r['ours_cos'].min():.3f} / {r['ours_cos'].mean():.3f} | {bob[2]} | "
              f"{r['comp_fps'] / 1e3:.0f}k frames/s |")


if __name__ == "__main__":
    main()
