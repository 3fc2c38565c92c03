"""Helpers shared by the benchmark scripts (not collected by pytest)."""

from __future__ import annotations

import subprocess
import time

import numpy as np

#: The start of a bob.learn.em peer script: the UBM and each utterance's GMMStats from the
#: .npz given as its first argument (means, variances, weights, N, F), as ``ubm`` and ``stats``.
BOB_STATS_PRELUDE = r"""
import json, sys, time
import numpy as np
import bob.learn.em as bem
d = np.load(sys.argv[1], allow_pickle=False)
K, D = d["means"].shape
ubm = bem.GMMMachine(n_gaussians=K)
ubm.means, ubm.variances, ubm.weights = d["means"], d["variances"], d["weights"]
stats = []
for n, f in zip(d["N"], d["F"]):
    s = bem.GMMStats(K, D)
    s.init_fields(t=int(round(n.sum())), n=n.astype(float), sum_px=f.astype(float),
                  sum_pxx=np.zeros((K, D)))
    stats.append(s)
"""


def peer_can_run(python: str) -> bool:
    """True if ``python`` can import bob.learn.em (the peer of several benchmarks)."""
    probe = subprocess.run([python, "-c", "import bob.learn.em"], capture_output=True)
    return probe.returncode == 0


def cosines(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Cosines of the principal angles between the column spans of A and B."""
    qa, qb = np.linalg.qr(A)[0], np.linalg.qr(B)[0]
    return np.linalg.svd(qa.T @ qb, compute_uv=False)


def cpu_busy(interval: float = 0.3) -> float:
    """Fraction of all CPUs busy (any process) over ``interval`` seconds, from /proc/stat."""
    def read():
        with open("/proc/stat") as fh:
            v = [int(x) for x in fh.readline().split()[1:]]
        return v[3] + v[4], sum(v)

    idle0, total0 = read()
    time.sleep(interval)
    idle1, total1 = read()
    return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)
