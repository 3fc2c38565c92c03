"""Scale-out: one EM iteration over a synthetic on-disk archive with 1 and 2 Dask workers and
with local processes, and the peak memory of the client and of each worker through a whole
UBM + eigenchannel training on a Dask cluster started by hand (``dask scheduler`` and
``dask worker`` processes, as a user starts them).

    python tests/benchmarks/bench_scale.py [--frames 5000000] [--utterances 20000]
        [--k 512] [--rank 100] [--work /tmp/bench_scale]

Targets (issue 12, 2-core machine): 2 Dask workers at least 1.6x faster per EM iteration
than 1; every process at most 1 GiB while training K = 512 and a rank-100 subspace on
20,000 utterances. The archive (D = 60, float32, frames/utterances long each, 40 utterances
per speaker) is written once into --work and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SEED = 20261130
PER_PART = 100  # utterances per part file


def write_archive(out: Path, frames: int, utterances: int, dim: int = 60) -> Path:
    """A feature archive of synthetic speakers (a 64-component mixture shifted per speaker)
    in the layout ``speakergmm extract`` writes."""
    from speakergmm.frontend.config import FeatureConfig

    config = FeatureConfig()
    assert config.dim == dim
    if (out / "feats.index").is_file():
        return out
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "feats").mkdir(parents=True)
    rng = np.random.default_rng(SEED)
    centres = (0.8 * rng.standard_normal((64, dim))).astype(np.float32)
    length = frames // utterances
    index, utt2spk = [], []
    for p0 in range(0, utterances, PER_PART):
        ids = [f"spk{u // 40:04d}-u{u:06d}" for u in range(p0, min(p0 + PER_PART, utterances))]
        x = rng.standard_normal((len(ids) * length, dim), dtype=np.float32) * 0.5
        x += centres[rng.integers(0, 64, len(x))]
        for i, utt in enumerate(ids):
            speaker = np.random.default_rng(hash(utt.split("-")[0]) % 2**32)
            x[i * length:(i + 1) * length] += 0.3 * speaker.standard_normal(dim).astype(
                np.float32)
        name = f"feats/part-{p0 // PER_PART:05d}.npy"
        np.save(tmp / name, x)
        index += [f"{utt} {name}[{i * length}:{(i + 1) * length}]" for i, utt in enumerate(ids)]
        utt2spk += [f"{utt} {utt.split('-')[0]}" for utt in ids]
    (tmp / "feats.index").write_text("\n".join(index) + "\n")
    (tmp / "utt2spk").write_text("\n".join(utt2spk) + "\n")
    (tmp / "config.json").write_text(json.dumps(config.to_dict()))
    tmp.rename(out)
    return out


def em_iteration_seconds(archive: Path, k: int, executor, repeats: int = 2) -> float:
    """Median wall time of one E-step over the archive (what one EM iteration costs beyond
    its M-step) through ``executor``."""
    from speakergmm.exec import get_executor
    from speakergmm.frontend.archive import read_features
    from speakergmm.gmm.mixture import DiagGMM
    from speakergmm.gmm.ubm import _shard_stats, _Source

    feats = read_features(archive)
    source = _Source.of(feats, 1)
    shards, _, dim = source.plan(50_000)
    rng = np.random.default_rng(SEED + 1)
    model = DiagGMM(np.full(k, 1 / k), rng.standard_normal((k, dim)), np.ones((k, dim)))
    times = []
    with get_executor(executor).start((source, None)) as session:
        for _ in range(repeats):
            t = time.perf_counter()
            for _ in session.map(_shard_stats, shards, shared=model):
                pass
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def timing(archive: Path, k: int) -> None:
    import distributed

    from speakergmm.exec import ProcessExecutor

    rows = []
    for workers in (1, 2):
        with distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                      processes=True, dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            rows.append((f"Dask, {workers} worker(s) x 1 thread",
                         em_iteration_seconds(archive, k, client)))
    rows.append(("local processes, -j 2", em_iteration_seconds(archive, k, ProcessExecutor(2))))
    rows.append(("this process (-j 1: chunks on 2 threads)", em_iteration_seconds(archive, k, 1)))
    print("| where | E-step over the archive (s, median of 2) |")
    print("|---|---|")
    for name, secs in rows:
        print(f"| {name} | {secs:.2f} |")
    print(f"Dask speed-up, 2 workers over 1: {rows[0][1] / rows[1][1]:.2f}x (target >= 1.6)")


def _peak_mib(cmd: list[str], env: dict) -> tuple[float, float]:
    started = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], env=env, capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return time.perf_counter() - started, float(out.stderr.strip().splitlines()[-1]) / 1024


def memory(archive: Path, work: Path, k: int, rank: int) -> None:
    import distributed

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    bin_dir = Path(sys.executable).parent
    port = 8786 + os.getpid() % 500
    address = f"tcp://127.0.0.1:{port}"
    scheduler = subprocess.Popen([bin_dir / "dask", "scheduler", "--port", str(port),
                                  "--dashboard-address", ":0"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = [subprocess.Popen([bin_dir / "dask", "worker", address, "--nthreads", "1",
                                 "--memory-limit", "0", "--no-nanny"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for _ in range(2)]
    try:
        with distributed.Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=60)
            cli = [str(bin_dir / "speakergmm")]
            steps = [
                ("train-ubm", [*cli, "train-ubm", str(archive), "-c", str(k), "-n", "2",
                               "--split-iterations", "1", "-o", str(work / "ubm.npz"),
                               "--scheduler", address]),
                ("stats", [*cli, "stats", str(archive), "--ubm", str(work / "ubm.npz"), "-q",
                           "-o", str(work / "stats"), "--scheduler", address]),
                ("train-channel", [*cli, "train-channel", str(work / "stats"), "--ubm",
                                   str(work / "ubm.npz"), "-r", str(rank), "-n", "2",
                                   "-o", str(work / "channel.npz"), "--scheduler", address]),
            ]
            print("| step | wall (s) | client peak RSS (MiB) |")
            print("|---|---|---|")
            for name, cmd in steps:
                shutil.rmtree(work / "stats", ignore_errors=True) if name == "stats" else None
                secs, peak = _peak_mib(cmd, env)
                print(f"| {name} | {secs:.0f} | {peak:.0f} |", flush=True)
            peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
            for address_, kib in sorted(peaks.items()):
                print(f"worker {address_}: peak RSS {kib / 1024:.0f} MiB over all steps")
    finally:
        for proc in (*workers, scheduler):
            proc.send_signal(signal.SIGINT)
        for proc in (*workers, scheduler):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=5_000_000)
    parser.add_argument("--utterances", type=int, default=20_000)
    parser.add_argument("--k", type=int, default=512)
    parser.add_argument("--rank", type=int, default=100)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_scale"))
    parser.add_argument("--only", choices=("timing", "memory"), default=None)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    archive = write_archive(args.work / f"feats-{args.frames}-{args.utterances}", args.frames,
                            args.utterances)
    print(f"archive: {args.frames:,} frames, {args.utterances:,} utterances, D = 60; "
          f"K = {args.k}; {os.cpu_count()} cores")
    if args.only in (None, "timing"):
        timing(archive, args.k)
    if args.only in (None, "memory"):
        memory(archive, args.work, args.k, args.rank)


if __name__ == "__main__":
    main()
