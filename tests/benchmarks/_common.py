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


def speechlike(sr: int = 16000, seconds: float = 3.0, seed: int = 1) -> np.ndarray:
    """A synthetic voice that the front end takes for speech: harmonics of a wavering pitch
    under formant-like resonances, a syllable-rate envelope with pauses (white noise is
    refused as "no speech" since the VAD's flat-energy rule)."""
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    f0 = 120 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = np.zeros(n)
    for h in range(1, 25):
        if h * 120 > sr / 2 - 500:
            break
        gain = sum(np.exp(-0.5 * ((h * 120 - f) / 150) ** 2) for f in (600, 1500, 2500))
        y += (gain + 0.05) / h ** 0.5 * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
    env = np.repeat(rng.uniform(0.2, 1.0, n // 1600 + 1), 1600)[:n]
    env *= 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    env[: n // 12] = 0.02
    y = 0.3 * env * y / np.abs(y).max() + 0.003 * rng.standard_normal(n)
    return y.astype(np.float32)


def voxceleb_h_trials(enroll: list[str], test: list[str], rng) -> list[str]:
    """Trial lines of VoxCeleb1-H's shape: each enrollment utterance (``spk-...`` ids) a
    model against one test utterance of its speaker and up to three of others."""
    by_speaker: dict[str, list[str]] = {}
    for t in test:
        by_speaker.setdefault(t.split("-")[0], []).append(t)
    lines = []
    for e in enroll:
        own = by_speaker[e.split("-")[0]]
        lines.append(f"{e} {own[rng.integers(len(own))]} target")
        for i in set(rng.integers(len(test), size=3).tolist()):  # O(1), not a permutation
            if test[i].split("-")[0] != e.split("-")[0]:
                lines.append(f"{e} {test[i]} nontarget")
    return lines
