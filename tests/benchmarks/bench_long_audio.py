"""Long recordings: peak memory and time of ``speakergmm extract`` on one file of hours.

Run from the repository root (not collected by pytest)::

    python tests/benchmarks/bench_long_audio.py [--hours 3] [--repeat 1]

It writes two recordings of ``--hours`` of synthetic speech (a 60 s voice-like loop): a
16 kHz mono 16-bit WAV, and a 44.1 kHz stereo FLAC that must be mixed down and resampled.
Each is extracted, in a fresh process, by

- ``speakergmm extract`` (the whole command: reading, features, VAD, CMVN, the archive);
- the peer: ``librosa.load(path, sr=16000)`` (librosa's resampler is soxr too) and
  ``librosa.feature.mfcc`` + two ``librosa.feature.delta``, with the same frame settings,
  the whole signal at once (no VAD, no normalisation, nothing written: less work);

and prints the median wall time and the peak resident memory (the process's own
``ru_maxrss``). The issue-14 target: a 3-hour file within 1 GiB.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PEER = r"""
import resource, sys
import librosa
y, sr = librosa.load(sys.argv[1], sr=16000, res_type="soxr_hq")
m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20, n_fft=512, hop_length=160, win_length=400,
                         window="hamming", n_mels=40, fmin=20, fmax=7600)
d1 = librosa.feature.delta(m, order=1)
d2 = librosa.feature.delta(m, order=2)
print(m.shape[1], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

OURS = r"""
import resource, sys
from click.testing import CliRunner
from speakergmm.cli import main
r = CliRunner().invoke(main, ["extract", sys.argv[1], sys.argv[2], "--audio-root", sys.argv[3],
                              "-q"])
assert r.exit_code == 0, r.output
from speakergmm.frontend.archive import read_features
print(read_features(sys.argv[2]).num_frames("long"),
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _write(folder: Path, hours: float) -> dict[str, Path]:
    import numpy as np
    import soundfile as sf
    import soxr

    sys.path.insert(0, str(REPO / "tests"))
    from conftest import voice

    loop = np.concatenate([voice(s, u, 5.0) for s in range(4) for u in range(3)])  # 60 s
    n = int(round(hours * 60))
    files = {"16 kHz mono WAV": folder / "long.wav", "44.1 kHz stereo FLAC": folder / "long.flac"}
    with sf.SoundFile(files["16 kHz mono WAV"], "w", 16000, 1, "PCM_16") as fh:
        for _ in range(n):
            fh.write(loop)
    wide = soxr.resample(loop, 16000, 44100).astype(np.float32)
    with sf.SoundFile(files["44.1 kHz stereo FLAC"], "w", 44100, 2, "PCM_16") as fh:
        for _ in range(n):
            fh.write(np.stack([wide, 0.9 * wide], axis=1))
    return files


def _run(code: str, *args) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                         text=True, cwd=REPO)
    if out.returncode:
        raise SystemExit(out.stderr[-2000:])
    frames, rss_kb = map(int, out.stdout.split()[-2:])
    return time.perf_counter() - t0, frames, rss_kb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = _write(tmp, args.hours)
        print(f"{args.hours:g} h of audio per file; median of {args.repeat} run(s)\n")
        print("| file | tool | frames | wall s | peak RSS MiB |\n|---|---|---|---|---|")
        for label, path in files.items():
            data = tmp / f"data-{path.suffix[1:]}"
            data.mkdir()
            (data / "wav.scp").write_text(f"long {path.name}\n")
            (data / "utt2spk").write_text("long s\n")
            for tool, run in (("speakergmm extract", lambda i: _run(
                    OURS, data, tmp / f"feats-{path.suffix[1:]}-{i}", tmp)),
                    ("librosa (whole signal)", lambda i: _run(PEER, path))):
                runs = [run(i) for i in range(args.repeat)]
                wall = statistics.median(r[0] for r in runs)
                rss = statistics.median(r[2] for r in runs) / 1024
                print(f"| {label} | {tool} | {runs[0][1]} | {wall:.1f} | {rss:.0f} |")


if __name__ == "__main__":
    main()
