"""Scoring a VoxCeleb1-H-sized trial list with the i-vector back-end: wall time and peak
memory of ``speakergmm score --backend plda`` (the one trial scorer, models and tests made
block by block) against the same scorer given one block for the whole list (every model,
every test vector and the (tests x cohort) matrix at once: how the vector back-end scored
before issue 21).

    python tests/benchmarks/bench_vector_trials.py [--models 137000] [--dim 400]
        [--cohort-utts 500] [--work /tmp/bench_vector_trials] [--skip-peer]

VoxCeleb1-H enrolls one model per utterance (~1.37 x 10^5) for 550k trials, ~4 per model
and per test utterance. This builds that shape from synthetic i-vectors (``--dim``, 40
utterances per speaker, a speaker part and a session part) in a vector archive as
``extract-ivectors`` writes it: M enrollment and M test vectors, 4 trials per model (one
target), a back-end (LDA 200, length norm, PLDA) trained on 1,000 other speakers, S-norm
against 200 cohort speakers. Each run is ``speakergmm score`` in a fresh process under
``/usr/bin/time -v`` (maximum resident set size), as the issue asks.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import voxceleb_h_trials  # noqa: E402

SEED = 20261207
PER_SPEAKER = 40
TRAIN_SPEAKERS = 1000
COHORT_SPEAKERS = 200

RUNNER = """
import sys
from speakergmm.cli import main
if sys.argv[1] == "one-block":
    import speakergmm.backend.trials as trials
    trials._VECTOR_BLOCK = 1 << 40
main(sys.argv[2:])
"""


def write_vectors(out: Path, utts: list[str], dim: int, rng) -> None:
    """A vector archive of synthetic i-vectors (speaker part + session part), in the
    layout extract_ivectors writes (parts of 4,096 rows)."""
    from speakergmm.gmm.ivector import FORMAT_VERSION, VECTORS_FORMAT

    (out / "vectors").mkdir(parents=True, exist_ok=True)
    speakers = sorted({u.split("-")[0] for u in utts})
    centre = {s: rng.standard_normal(dim).astype(np.float32) for s in speakers}
    index = []
    for p0 in range(0, len(utts), 4096):
        ids = utts[p0:p0 + 4096]
        w = np.stack([centre[u.split("-")[0]] for u in ids])
        w += 0.8 * rng.standard_normal(w.shape, dtype=np.float32)
        name = f"part-{p0 // 4096:05d}"
        np.save(out / "vectors" / f"{name}.w.npy", w, allow_pickle=False)
        index += [f"{u} vectors/{name}[{i}:{i + 1}]\n" for i, u in enumerate(ids)]
    (out / "vectors.scp").write_text("".join(index))
    (out / "utt2spk").write_text("".join(f"{u} {u.split('-')[0]}\n" for u in utts))
    (out / "vectors.json").write_text(json.dumps({
        "format": VECTORS_FORMAT, "format_version": FORMAT_VERSION, "kind": "ivector",
        "dim": dim, "extractor_fingerprint": "synthetic", "ubm_fingerprint": "synthetic",
        "source": None}))


def setup(work: Path, models: int, dim: int) -> dict:
    """Vectors, back-end, trials and cohort of one size (made once)."""
    from speakergmm.backend.vectors import VectorBackend
    from speakergmm.gmm.ivector import read_vectors

    d = work / f"m{models}-r{dim}"
    if (d / "trials").is_file():
        return json.loads((d / "setup.json").read_text())
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    n_eval = -(-2 * models // PER_SPEAKER)
    utts = [f"spk{s:06d}-u{u:02d}" for s in range(n_eval + TRAIN_SPEAKERS + COHORT_SPEAKERS)
            for u in range(PER_SPEAKER)]
    write_vectors(d / "vectors", utts, dim, rng)
    train = utts[-(TRAIN_SPEAKERS + COHORT_SPEAKERS) * PER_SPEAKER:
                 -COHORT_SPEAKERS * PER_SPEAKER]
    cohort = utts[-COHORT_SPEAKERS * PER_SPEAKER:]
    evaluation = utts[:2 * models]
    enroll, test = evaluation[0::2], evaluation[1::2]
    vectors = read_vectors(d / "vectors")
    backend = VectorBackend.train(vectors, {u: u.split("-")[0] for u in train}, lda=200,
                                  n_iterations=5)
    backend.save(d / "backend.npz")
    lines = voxceleb_h_trials(enroll, test, rng)
    (d / "trials").write_text("\n".join(lines) + "\n")
    (d / "enroll_map").write_text("".join(f"{e} {e}\n" for e in enroll))
    (d / "cohort_utt2spk").write_text("".join(f"{u} {u.split('-')[0]}\n" for u in cohort))
    s = dict(dir=str(d), trials=len(lines), tests=len(test), models=len(enroll))
    (d / "setup.json").write_text(json.dumps(s))
    return s


def run(s: dict, mode: str, cohort_utts: int) -> dict:
    d = Path(s["dir"])
    out = d / f"scores-{mode}"
    args = ["score", str(d / "trials"), "--backend", "plda", "--plda", str(d / "backend.npz"),
            "--enroll", str(d / "vectors"), "--enroll-map", str(d / "enroll_map"),
            "--test", str(d / "vectors"), "--norm", "snorm", "--cohort", str(d / "vectors"),
            "--cohort-utt2spk", str(d / "cohort_utt2spk"), "--cohort-utts", str(cohort_utts),
            "-o", str(out), "--quiet"]
    started = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-c", RUNNER, mode, *args],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True)
    secs = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    scores = np.array([float(line.split()[2]) for line in out.read_text().splitlines()])
    return dict(secs=secs, peak=kib / 1024, scores=scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=137000)
    parser.add_argument("--dim", type=int, default=400)
    parser.add_argument("--cohort-utts", type=int, default=500)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_vector_trials"))
    parser.add_argument("--skip-peer", action="store_true")
    args = parser.parse_args()
    s = setup(args.work, args.models, args.dim)
    print(f"{s['models']:,} models, {s['trials']:,} trials, {s['tests']:,} test vectors of "
          f"dimension {args.dim}; LDA 200 + PLDA, S-norm against {COHORT_SPEAKERS} speakers "
          f"({args.cohort_utts} utterances); {os.cpu_count()} cores", flush=True)
    modes = ["blocks"] + ([] if args.skip_peer else ["one-block"])
    results = {m: [run(s, m, args.cohort_utts) for _ in range(args.runs)] for m in modes}
    print("\n| scorer | wall (s, median) | trials / s | peak RSS (MiB, max) |")
    print("|---|---|---|---|")
    names = {"blocks": "blocks of 8,192 (default)",
             "one-block": "one block for the whole list (peer: as before)"}
    for m, rs in results.items():
        secs = float(np.median([r["secs"] for r in rs]))
        print(f"| {names[m]} | {secs:.1f} | {s['trials'] / secs:,.0f} | "
              f"{max(r['peak'] for r in rs):,.0f} |")
    if len(results) == 2:
        diff = np.max(np.abs(results["blocks"][0]["scores"] - results["one-block"][0]["scores"]))
        print(f"\nlargest score difference between the two: {diff:.2e}")


if __name__ == "__main__":
    main()
