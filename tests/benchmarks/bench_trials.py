"""Scoring a VoxCeleb1-H-shaped trial list: wall time and peak memory of the client and of
the worker processes, with the enrollment models adapted per test utterance (the default
beyond --model-memory) and, as the peer, all of them held in memory at once (what scoring
did before, and still does when they fit).

    python tests/benchmarks/bench_trials.py [--models 5000 10000] [--frames 250]
        [--cohort-utts 300] [--jobs 2] [--work /tmp/bench_trials] [--skip-held]

VoxCeleb1-H enrolls one model per utterance (~1.3 x 10^5 of them) for 550k trials, ~4 per
model and per test utterance. This builds that shape on a synthetic archive (D = 60,
``--frames`` frames per utterance, 40 utterances per speaker): M enrollment utterances
(one model each), M test utterances, 4 trials per model (one target), K = 512, S-norm
against 100 cohort speakers (``--cohort-utts`` utterances), as recipes/voxceleb1 scores.
Each run is ``speakergmm score`` in a fresh process; the peak RSS of the client
(RUSAGE_SELF) and of its largest worker (RUSAGE_CHILDREN) are read when it ends. Workers
are forked from the client, so theirs counts the client's pages they share at the fork.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import voxceleb_h_trials  # noqa: E402
from bench_scale import write_archive  # noqa: E402

K = 512
COHORT_SPEAKERS = 100
SEED = 20261130

RUNNER = """
import resource, sys
from speakergmm.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    kib = lambda who: resource.getrusage(who).ru_maxrss
    print("PEAK", kib(resource.RUSAGE_SELF), kib(resource.RUSAGE_CHILDREN), file=sys.stderr)
"""


def setup(work: Path, models: int, frames: int) -> dict:
    """Archive, UBM, enrollment statistics, trials and cohort of one size (made once)."""
    from speakergmm.frontend.archive import read_features
    from speakergmm.frontend.config import FeatureConfig
    from speakergmm.gmm.statsarchive import extract_stats
    from speakergmm.gmm.ubm import train_ubm

    cohort_utts = COHORT_SPEAKERS * 40
    n_utts = 2 * models + cohort_utts
    d = work / f"m{models}-f{frames}"
    d.mkdir(parents=True, exist_ok=True)
    feats_dir = write_archive(d / "feats", n_utts * frames, n_utts)
    feats = read_features(feats_dir)
    utts = sorted(feats)  # spkNNNN-uNNNNNN: 40 consecutive utterances per speaker
    cohort, rest = utts[:cohort_utts], utts[cohort_utts:]
    enroll, test = rest[0::2], rest[1::2]
    ubm_path = work / f"ubm-k{K}.npz"
    if not ubm_path.is_file():
        sample = np.concatenate([feats[u] for u in utts[:: max(1, len(utts) // 800)]])
        ubm = train_ubm(sample, n_components=K, n_iterations=4, executor=2,
                        metadata={"feature_config": FeatureConfig().to_dict()})
        ubm.save(ubm_path)
    from speakergmm.gmm.mixture import DiagGMM

    ubm = DiagGMM.load(ubm_path)
    if not (d / "stats" / "stats.scp").is_file():
        started = time.perf_counter()
        extract_stats(ubm, feats, d / "stats", utterances=enroll, executor=2)
        print(f"enrollment statistics of {len(enroll):,} utterances: "
              f"{time.perf_counter() - started:.0f} s", flush=True)
    rng = np.random.default_rng(SEED)
    lines = voxceleb_h_trials(enroll, test, rng)
    (d / "trials").write_text("\n".join(lines) + "\n")
    (d / "enroll_map").write_text("".join(f"{e} {e}\n" for e in enroll))
    (d / "cohort_utt2spk").write_text("".join(f"{u} {u.split('-')[0]}\n" for u in cohort))
    return dict(dir=d, feats=feats_dir, ubm=ubm_path, trials=len(lines), tests=len(test))


def run(s: dict, cohort_utts: int, jobs: int, model_memory_mib: int | None) -> dict:
    d = s["dir"]
    out = d / "scores"
    args = ["score", str(d / "trials"), "--enroll", str(d / "stats"), "--enroll-map",
            str(d / "enroll_map"), "--test", str(s["feats"]), "--ubm", str(s["ubm"]),
            "--relevance", "8", "--norm", "snorm", "--cohort", str(s["feats"]),
            "--cohort-utt2spk", str(d / "cohort_utt2spk"), "--cohort-utts", str(cohort_utts),
            "-j", str(jobs), "-o", str(out)]
    if model_memory_mib is not None:
        args += ["--model-memory", str(model_memory_mib)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    # Through /usr/bin/time, a small process: a process forked from this one (which holds the
    # archive's UBM training data) would start with this one's peak, even across exec.
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-c", RUNNER, *args],
                          env=env, capture_output=True, text=True)
    secs = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    peak = next(line for line in proc.stderr.splitlines() if line.startswith("PEAK")).split()
    scores = np.array([float(line.split()[2]) for line in out.read_text().splitlines()])
    return dict(secs=secs, client=int(peak[1]) / 1024, worker=int(peak[2]) / 1024,
                scores=scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, nargs="+", default=[5000, 10000])
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--cohort-utts", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_trials"))
    parser.add_argument("--skip-held", action="store_true",
                        help="do not run the peer (all models in memory)")
    args = parser.parse_args()
    print(f"K = {K}, D = 60, {args.frames} frames per utterance, S-norm with "
          f"{args.cohort_utts} cohort utterances of {COHORT_SPEAKERS} speakers, -j {args.jobs}, "
          f"{os.cpu_count()} cores")
    rows = []
    for models in args.models:
        s = setup(args.work, models, args.frames)
        ours = run(s, args.cohort_utts, args.jobs, None)
        held = None if args.skip_held else run(s, args.cohort_utts, args.jobs, 1 << 20)
        rows.append((models, s, ours, held))
        print(json.dumps({"models": models, "trials": s["trials"], "ours_s": ours["secs"],
                          "ours_client": ours["client"], "ours_worker": ours["worker"],
                          **({} if held is None else {
                              "held_s": held["secs"], "held_client": held["client"],
                              "held_worker": held["worker"],
                              "max_abs_diff": float(np.max(np.abs(ours["scores"]
                                                                  - held["scores"])))})}),
              flush=True)
    print()
    print("| models | trials | test utts | mode | wall (s) | trials/s | client peak (MiB) | "
          "largest worker peak (MiB) |")
    print("|---|---|---|---|---|---|---|---|")
    for models, s, ours, held in rows:
        for name, r in (("adapted per test (default)", ours), ("all held (peer)", held)):
            if r is None:
                continue
            print(f"| {models:,} | {s['trials']:,} | {s['tests']:,} | {name} | "
                  f"{r['secs']:.0f} | {s['trials'] / r['secs']:.0f} | {r['client']:.0f} | "
                  f"{r['worker']:.0f} |")


if __name__ == "__main__":
    main()
