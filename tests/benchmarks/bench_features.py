"""Feature extraction benchmark: ``speakergmm extract`` against a plain librosa loop.

Run from the repository root (not collected by pytest)::

    python tests/benchmarks/bench_features.py [--jobs 2] [--repeat 3] [--corpora DIR]

For each corpus found under ``--corpora`` (default ``$SPEAKERGMM_CORPORA`` or
``../shared/corpora``): speechocean762 ``train`` (2,500 16 kHz FLAC files) and FSDD (3,000
8 kHz WAV files, ``telephone`` preset), it times

- the whole ``speakergmm extract`` command in a fresh process (Python start-up, imports,
  reading, features, writing the archive), median of ``--repeat`` runs;
- the peer: one process running a per-file loop of ``librosa.load`` + ``librosa.feature.mfcc``
  + ``librosa.feature.delta`` (Δ, ΔΔ) with the same frame parameters, no VAD and no
  normalisation, results kept in memory (its start-up and imports included too);

and prints wall time, times real time, files per second and peak memory. Peak memory is the
largest sum over the process tree of proportional set sizes (PSS: pages shared between the
forked workers counted once), sampled every 20 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PEER = r"""
import sys, time
import librosa
import numpy as np
from speakergmm.data.datadir import read_data_dir
from speakergmm.frontend.features import FeatureConfig
data_dir, root, preset = sys.argv[1:4]
cfg = FeatureConfig.preset(preset)
data = read_data_dir(data_dir)
out = {}
for utt in data.utterances:
    y, sr = librosa.load(data.audio_of(utt, root).path_or_command, sr=cfg.sample_rate)
    m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=cfg.n_mfcc, n_fft=cfg.n_fft,
                             hop_length=cfg.hop_length, win_length=cfg.win_length,
                             window=cfg.window, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax)
    out[utt] = np.vstack([m, librosa.feature.delta(m, width=5),
                          librosa.feature.delta(m, width=5, order=2)]).T
"""


def _tree(pid: int) -> list[int]:
    pids, stack = [], [pid]
    while stack:
        p = stack.pop()
        pids.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    stack.extend(int(c) for c in fh.read().split())
        except OSError:
            pass
    return pids


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_measured(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; return (wall seconds, peak PSS of its process tree in MiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    stop = threading.Event()

    def sample():
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, sum(_pss_kib(p) for p in _tree(proc.pid)))
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{err}")
    return wall, peak / 1024


def fsdd_data_dir(root: Path, out: Path) -> Path:
    from speakergmm.data.datadir import DataDir, write_data_dir

    wav, utt2spk = {}, {}
    for path in sorted((root / "recordings").glob("*.wav")):
        digit, spk, idx = path.stem.split("_")
        utt = f"{spk}-{digit}-{int(idx):02d}"
        wav[utt], utt2spk[utt] = f"recordings/{path.name}", spk
    write_data_dir(out, DataDir(wav_scp=wav, utt2spk=utt2spk))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = os.environ.get("SPEAKERGMM_CORPORA", str(REPO.parent / "shared" / "corpora"))
    ap.add_argument("--corpora", type=Path, default=Path(default))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--limit", type=int, default=None,
                    help="only the first N utterances of each corpus (a smoke run)")
    args = ap.parse_args()

    from speakergmm.data.datadir import read_data_dir

    work = Path(tempfile.mkdtemp(prefix="bench-features-"))
    corpora = []
    so = args.corpora / "speechocean762"
    if (so / "train").is_dir():
        corpora.append(("speechocean762 train", so / "train", so, "wideband"))
    fsdd = args.corpora / "fsdd"
    if (fsdd / "recordings").is_dir():
        corpora.append(("fsdd", fsdd_data_dir(fsdd, work / "fsdd-data"), fsdd, "telephone"))
    if not corpora:
        raise SystemExit(f"no corpora under {args.corpora}")
    if args.limit:
        from speakergmm.data import DataDir, write_data_dir

        for i, (name, data_dir, root, preset) in enumerate(corpora):
            data = read_data_dir(data_dir)
            keep = sorted(data.utt2spk)[: args.limit]
            if data.segments:
                raise SystemExit(f"--limit: {data_dir} has segments")
            small = work / f"{name.split()[0]}-first{args.limit}"
            write_data_dir(small, DataDir(wav_scp={u: data.wav_scp[u] for u in keep},
                                          utt2spk={u: data.utt2spk[u] for u in keep}))
            corpora[i] = (name, small, root, preset)

    exe = [sys.executable, "-m", "speakergmm"]
    rows = []
    for name, data_dir, root, preset in corpora:
        n_files = len(read_data_dir(data_dir).utt2spk)
        walls, peaks, hours = [], [], None
        for i in range(args.repeat):
            out = work / f"{name.split()[0]}-{i}"
            wall, peak = run_measured(exe + ["extract", str(data_dir), str(out), "--audio-root",
                                             str(root), "-j", str(args.jobs), "--config", preset,
                                             "-q"])
            walls.append(wall)
            peaks.append(peak)
            import json

            hours = json.loads((out / "summary.json").read_text())["hours"]
        ours = statistics.median(walls)
        rows.append((name, f"speakergmm extract -j {args.jobs}", n_files, hours, ours,
                     max(peaks), walls))
        if not args.skip_peer:
            wall, peak = run_measured([sys.executable, "-c", PEER, str(data_dir), str(root),
                                       preset])
            rows.append((name, "librosa loop (1 process)", n_files, hours, wall, peak, [wall]))

    print(f"\nmachine: {os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{'corpus':22} {'tool':28} {'files':>6} {'audio h':>8} {'wall s':>8} {'x RT':>7} "
          f"{'files/s':>8} {'peak MiB':>9}  runs")
    for name, tool, n, hours, wall, peak, walls in rows:
        print(f"{name:22} {tool:28} {n:6d} {hours:8.3f} {wall:8.2f} {hours * 3600 / wall:7.0f} "
              f"{n / wall:8.0f} {peak:9.0f}  {' '.join(f'{w:.2f}' for w in walls)}")
    by = {}
    for name, tool, *_rest in rows:
        by.setdefault(name, []).append(_rest[2])
    for name, walls in by.items():
        if len(walls) == 2:
            print(f"{name}: speakergmm is {walls[1] / walls[0]:.1f}x faster than the librosa loop")


if __name__ == "__main__":
    main()
