"""Benchmark the speaker store: bytes per speaker, and `speakergmm identify` wall time and
peak memory per call against stores of many speakers, beside another checkout of speakergmm
(the peer: an older commit) in the same run.

    python tests/benchmarks/bench_store.py [--peer /tmp/before] [--speakers 1000 10000]
    python tests/benchmarks/bench_store.py --system wideband   # this tree only

Stores are filled with synthetic speakers (statistics of 300 random frames each, summed
under the UBM bundled before systems: K = 512, D = 60, means-only MAP; or, with --system,
under a bundled system's UBM, K = 256, D = 48, with its S-norm record), each version
writing its own format. ``identify`` runs as a fresh process, as a user runs it: wall time
and peak RSS (``/usr/bin/time``; it counts the pages of the store that SQLite reads through
a memory map, which are the kernel's file cache, shared, not the process's own), median of
3. The probe is 3 s of synthetic speech-like audio, or a recording given with ``--probe``
(a real one selects more of the UBM's components per frame, and costs more to score).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import speechlike  # noqa: E402

FILL = r"""
import sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from speakergmm.pretrained import load_default_ubm
try:
    from speakergmm.gmm.adapt import SpeakerModel
    from speakergmm.gmm.stats import GMMStats
except ImportError:  # the layout before the architecture rework
    from speakergmm.map import SpeakerModel
    from speakergmm.gmm import GMMStats
from speakergmm.store import SpeakerStore
ubm = load_default_ubm()
rng = np.random.default_rng(0)
x = rng.standard_normal((300, ubm.dim)).astype(np.float32)
base = ubm.accumulate(x)
system = None
if len(sys.argv) > 4:
    from speakergmm.system import load_system
    system = load_system(sys.argv[4])
    ubm = system.ubm
    base = ubm.accumulate(rng.standard_normal((300, ubm.dim)).astype(np.float32))
extra = {} if system is None else {
    "system": {"name": system.name, "fingerprint": system.fingerprint()}, "norm": (0.0, 1.0),
    "channel": system.channel.fingerprint()}
store = SpeakerStore(sys.argv[2])
t = time.perf_counter()
for i in range(int(sys.argv[3])):
    scale = 1 + 0.01 * (i % 97)  # distinct speakers, same cost
    stats = GMMStats(base.n * scale, base.f * scale, base.s * scale, base.llk, base.frames)
    store.enroll(f"spk{i:05d}", SpeakerModel(stats, ubm.fingerprint(), 16.0, ("means",), 1),
                 ubm, seconds=3.0, utterances=1, **extra)
store.close()
print(f"{time.perf_counter() - t:.1f}")
"""


def fill(tree: Path, path: Path, n: int, system: str | None) -> float:
    out = subprocess.run([sys.executable, "-c", FILL, str(tree), str(path), str(n),
                          *([system] if system else [])],
                         check=True, capture_output=True, text=True).stdout
    return float(out.split()[-1])


def identify(tree: Path, store: Path, audio: Path) -> tuple[float, float]:
    code = (f"import sys; sys.path.insert(0, {str(tree)!r}); from speakergmm.cli import main; "
            f"sys.argv = ['speakergmm', 'identify', {str(audio)!r}, '--store', {str(store)!r}]; "
            "main()")
    # As an installed package runs: from compiled bytecode (a sandbox or CI may set
    # PYTHONDONTWRITEBYTECODE, which recompiles every module at each start: +0.2 s)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    started = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-c", code],
                            capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if result.returncode not in (0, 1):
        raise RuntimeError(result.stderr)
    peak_kb = float(result.stderr.strip().splitlines()[-1])
    return seconds, peak_kb / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer", type=Path, default=None, help="the other source tree")
    parser.add_argument("--speakers", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--system", default=None,
                        help="fill the stores under this bundled system (this tree only)")
    parser.add_argument("--probe", type=Path, default=None,
                        help="the recording to identify (default: 3 s of synthetic speech)")
    args = parser.parse_args()
    trees = {"this": REPO, **({"peer": args.peer.resolve()} if args.peer else {})}
    if args.system and args.peer:
        parser.error("--system measures this tree only (the peer has no systems)")
    import soundfile as sf

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        audio = scratch / "probe.wav"  # (noise is refused as "no speech" since issue 14)
        sf.write(audio, speechlike(16000, 3.0), 16000)
        if args.probe is not None:
            audio = args.probe.resolve()
            print(f"probe: {audio} ({sf.info(str(audio)).duration:.1f} s)")
        print("| version | speakers | store (MB) | per speaker (KB) | fill (s) | identify wall "
              "(s, median) | identify peak RSS (MiB, median) |")
        print("|---|---|---|---|---|---|---|")
        for n in args.speakers:
            for name, tree in trees.items():
                path = scratch / f"{name}-{n}.db"
                seconds = fill(tree, path, n, args.system)
                size = sum(p.stat().st_size for p in scratch.glob(f"{name}-{n}.db*"))
                identify(tree, path, audio)  # a first run compiles the bytecode
                runs = [identify(tree, path, audio) for _ in range(args.runs)]
                wall = statistics.median(r[0] for r in runs)
                peak = statistics.median(r[1] for r in runs)
                print(f"| {name} | {n:,} | {size / 1e6:.0f} | {size / n / 1e3:.0f} | "
                      f"{seconds:.0f} | {wall:.2f} | {peak:.0f} |", flush=True)
                for leftover in scratch.glob(f"{name}-{n}.db*"):
                    os.unlink(leftover)


if __name__ == "__main__":
    main()
