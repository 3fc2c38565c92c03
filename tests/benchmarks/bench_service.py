"""Load on `speakergmm serve`: concurrent clients enrolling, verifying and identifying over
HTTP for a bounded time, against a store of many speakers, with the CLI (a fresh process per
call, what a user has without the service) measured in the same run as the peer.

    python tests/benchmarks/bench_service.py --speakers 1000 --clients 10 --mix verify identify
    python tests/benchmarks/bench_service.py --speakers 1000 --clients 50 --seconds 60

The service runs on loopback only (a free port), with ``--workers`` processes; the store is
filled with synthetic speakers first (bench_store's fill, under the bundled wideband
system). Each client loops until ``--seconds`` are over or ``--requests`` are made: an
operation drawn from ``--mix``, one recording of ``--probe`` (a file; default: 4 s of
synthetic speech). Enrollments create new speakers; at the end every acknowledged one must be
in the store (lost enrollments are counted). Prints p50 and p95 latency per operation,
errors, and the CLI's median wall time for the same verify and identify.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO / "tests" / "serve"))
sys.path.insert(0, str(REPO / "tests"))
from _common import speechlike  # noqa: E402
from bench_store import fill  # noqa: E402
from service_helpers import call, server, tokens  # noqa: E402


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _cli(args: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "speakergmm", *args], capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speakers", type=int, default=1000, help="store size")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the load run")
    parser.add_argument("--requests", type=int, default=100_000,
                        help="stop after this many requests in all, whatever the time")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mix", nargs="+", default=["enroll", "verify", "identify"],
                        choices=["enroll", "verify", "identify"])
    parser.add_argument("--probe", type=Path, help="the recording sent [synthetic speech]")
    parser.add_argument("--cli-runs", type=int, default=3)
    parser.add_argument("--work", type=Path, help="folder for the store [a temporary one]")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-service-"))
    work.mkdir(parents=True, exist_ok=True)
    store = work / "speakers.db"
    probe = args.probe
    if probe is None:
        import soundfile as sf

        probe = work / "probe.wav"
        sf.write(probe, speechlike(16000, 4.0, seed=3), 16000)
    t = time.perf_counter()
    if not store.exists():
        fill(REPO, store, args.speakers, "wideband")
    print(f"store: {args.speakers} speakers, filled in {time.perf_counter() - t:.0f} s")
    keys = tokens(store)
    latencies: dict[str, list[float]] = {op: [] for op in args.mix}
    errors: dict[str, list[str]] = {op: [] for op in args.mix}
    enrolled: list[str] = []
    budget = threading.Semaphore(args.requests)
    lock = threading.Lock()

    def client(k: int, url: str, stop: float) -> None:
        rng = random.Random(k)
        n = 0
        while time.monotonic() < stop and budget.acquire(blocking=False):
            op = rng.choice(args.mix)
            n += 1
            if op == "enroll":
                name = f"load{k}x{n}"
                request = dict(url=f"{url}/v1/speakers/{name}", method="POST",
                               token=keys["write"], files=[("audio", probe)])
            elif op == "verify":
                request = dict(url=f"{url}/v1/verify", method="POST", token=keys["read"],
                               fields={"speaker": f"spk{rng.randrange(args.speakers):05d}"},
                               files=[("audio", probe)])
            else:
                request = dict(url=f"{url}/v1/identify", method="POST", token=keys["read"],
                               files=[("audio", probe)])
            t = time.perf_counter()
            try:
                status, answer = call(**request, timeout=120)
            except OSError as exc:
                status, answer = 0, {"error": f"{type(exc).__name__}: {exc}"}
            spent = time.perf_counter() - t
            with lock:
                latencies[op].append(spent)
                if status not in (200, 201):
                    errors[op].append(f"{status} {answer.get('error')}")
                elif op == "enroll":
                    enrolled.append(name)

    with server(store, "--workers", str(args.workers), "--rate", "1e9", "--burst",
                "1000000000") as (url, _):
        call(f"{url}/v1/identify", "POST", token=keys["read"], files=[("audio", probe)])
        call(f"{url}/v1/verify", "POST", token=keys["read"], files=[("audio", probe)],
             fields={"speaker": "spk00000"})  # (each worker loads the system on first use)
        stop = time.monotonic() + args.seconds
        start = time.perf_counter()
        threads = [threading.Thread(target=client, args=(k, url, stop))
                   for k in range(args.clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = time.perf_counter() - start
        status, listed = call(f"{url}/v1/speakers", token=keys["read"])
    present = {s["id"] for s in listed["speakers"]}
    lost = [name for name in enrolled if name not in present]
    cli = {"verify": _cli(["verify", "spk00000", str(probe), "--store", str(store)],
                          args.cli_runs),
           "identify": _cli(["identify", str(probe), "--store", str(store)], args.cli_runs)}

    print(f"{args.clients} concurrent clients for {elapsed:.1f} s, {args.workers} worker(s), "
          f"loopback; probe {probe.name}")
    print(f"{'operation':10s} {'requests':>8s} {'errors':>6s} {'p50 s':>7s} {'p95 s':>7s} "
          f"{'CLI s':>7s} {'p50/CLI':>8s}")
    for op in args.mix:
        values = latencies[op]
        peer = cli.get(op)
        ratio = f"{_percentile(values, 0.5) / peer:8.2f}" if peer else f"{'-':>8s}"
        print(f"{op:10s} {len(values):8d} {len(errors[op]):6d} {_percentile(values, 0.5):7.3f} "
              f"{_percentile(values, 0.95):7.3f} {peer if peer else float('nan'):7.3f} {ratio}")
    total = sum(len(v) for v in latencies.values())
    print(f"throughput {total / elapsed:.1f} requests/s; enrollments acknowledged "
          f"{len(enrolled)}, lost {len(lost)}")
    for op in args.mix:
        for message in sorted(set(errors[op]))[:3]:
            print(f"  {op} error: {message}")
    if lost or any(errors.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
