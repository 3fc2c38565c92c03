"""Diarization: accuracy on simulated conversations, and speed and memory against the
length of the recording (issue 23, item 6), with a neural peer measured in the same run.

Run from the repository root (not collected by pytest)::

    python tests/benchmarks/bench_diarization.py --conversations exp/conv \\
        [--model diar.npz --system sys.npz --detector sad.npz] \\
        [--peer-python /path/to/venv/bin/python] [--minutes 1 10 60 180]

- ``--conversations``: a folder of ``speakergmm prepare conversations`` (``wav/``, ``rttm``);
  without ``--model``, the bundled wideband models diarize them (which have seen every
  speechocean762 train speaker: give dev models for a fair figure).
- The peer, in its own environment (``pip install resemblyzer spectralcluster
  webrtcvad-wheels`` and a CPU torch): Resemblyzer's bundled GE2E d-vector on 1.6 s windows
  four times a second, clustered by Google's ``spectralcluster`` with its ICASSP 2018
  configuration (2-7 speakers), speech from WebRTC's VAD (mode 3), each speech frame given
  the speaker of the nearest window: the neural pipeline a user assembles from pip.

Printed: DER (collar 0.25 s, overlap not scored; no collar, overlap scored), JER and the
share of conversations whose speaker count was found, for both; then, for recordings made
of the first conversation repeated to each ``--minutes``, each tool's wall time, times real
time and peak resident memory (``ru_maxrss``, a fresh process per run). The peer runs
under an address-space limit (``--peer-memory-gb``) and is not run on longer recordings
once it fails. The issue's targets: at least 100 times real time, 3 hours under 1 GiB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]

OURS = r"""
import json, resource, sys, time
from speakergmm.diarization import Diarizer
from speakergmm.gmm.sad import SpeechDetector
from speakergmm.system import load_system
args = json.loads(sys.argv[1])
if args["model"]:
    d = Diarizer.load(args["model"], load_system(args["system"]),
                      SpeechDetector.load(args["detector"]))
else:
    d = Diarizer.bundled("wideband")
out = {}
t0 = time.perf_counter()
for path in args["files"]:
    r = d.diarize_file(path)
    out[path] = [[t.start, t.end, t.speaker] for t in r.turns]
wall = time.perf_counter() - t0
print(json.dumps({"turns": out, "wall": wall,
                  "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

PEER = r"""
import json, resource, sys, time
args = json.loads(sys.argv[1])
if args["memory_gb"]:
    limit = int(args["memory_gb"] * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import numpy as np, librosa, webrtcvad
from resemblyzer import VoiceEncoder, normalize_volume
from spectralcluster import configs
encoder = VoiceEncoder("cpu")
vad = webrtcvad.Vad(3)
out = {}
t0 = time.perf_counter()
for path in args["files"]:
    y, sr = librosa.load(path, sr=16000)
    y = normalize_volume(y, -30, increase_only=True)
    _, partials, splits = encoder.embed_utterance(y, return_partials=True, rate=4)
    labels = configs.icassp2018_clusterer.predict(partials)
    centres = np.array([(s.start + s.stop) / 2 / sr for s in splits])
    pcm = (np.clip(y, -1, 1) * 32767).astype(np.int16).tobytes()
    hop = 480  # 30 ms
    turns = []
    for i in range(len(y) // hop):
        if not vad.is_speech(pcm[2 * hop * i:2 * hop * (i + 1)], sr):
            continue
        t = (i + 0.5) * hop / sr
        who = f"spk{labels[int(np.argmin(np.abs(centres - t)))]}"
        start, end = i * hop / sr, (i + 1) * hop / sr
        if turns and turns[-1][2] == who and abs(turns[-1][1] - start) < 1e-9:
            turns[-1][1] = end
        else:
            turns.append([start, end, who])
    out[path] = turns
wall = time.perf_counter() - t0
print(json.dumps({"turns": out, "wall": wall,
                  "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _run(python: str, code: str, args: dict) -> dict | str:
    """The script's JSON answer, or why it failed (its last line of error)."""
    out = subprocess.run([python, "-c", code, json.dumps(args)], capture_output=True,
                         text=True, cwd=REPO)
    if out.returncode:
        tail = (out.stderr.strip().splitlines() or ["exit status %d" % out.returncode])[-1]
        return tail[:120]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _scores(reference: dict, found: dict) -> dict:
    from speakergmm.data.rttm import Turn
    from speakergmm.eval.diarization import evaluate_diarization

    hyp = {Path(p).stem: [Turn(a, b, s) for a, b, s in turns] for p, turns in found.items()}
    per, skip = evaluate_diarization(reference, hyp, collar=0.25, skip_overlap=True)
    _, scored = evaluate_diarization(reference, hyp, collar=0.0, skip_overlap=False)
    return {"der": skip.der, "der_overlap": scored.der, "jer": skip.jer,
            "count": float(np.mean([e.ref_speakers == e.hyp_speakers for e in per.values()]))}


def _long_recordings(source: Path, minutes: list[float], folder: Path) -> list[Path]:
    """One conversation again and again to each length (16 kHz FLAC): a meeting of a few
    speakers, each of whom comes back."""
    import soundfile as sf

    from speakergmm.frontend.audio import load

    loop = load(source, sr=16000)[0]
    out = []
    for m in minutes:
        path = folder / f"long-{m:g}min.flac"
        need = int(m * 60 * 16000)
        with sf.SoundFile(path, "w", 16000, 1, "PCM_16", format="FLAC") as fh:
            while need > 0:
                fh.write(loop[:need])
                need -= min(need, len(loop))
        out.append(path)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=Path, default=None,
                        help="a folder of 'speakergmm prepare conversations' [default: "
                             "--count of them made of the speechocean762 dev protocol's "
                             "evaluation speakers under --corpora, seed 1]")
    parser.add_argument("--corpora", type=Path, default=REPO.parent / "shared" / "corpora")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--model", default=None)
    parser.add_argument("--system", default="wideband")
    parser.add_argument("--detector", default=None)
    parser.add_argument("--peer-python", default=None)
    parser.add_argument("--peer-memory-gb", type=float, default=8.0)
    parser.add_argument("--minutes", type=float, nargs="*", default=[1, 10, 60, 180])
    parser.add_argument("--limit", type=int, default=None,
                        help="only the first N conversations")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.conversations is None:
            args.conversations = _conversations(args.corpora, args.count, Path(tmp))
        _bench(args)


def _conversations(corpora: Path, count: int, folder: Path) -> Path:
    from speakergmm.corpora.conversations import prepare_conversations
    from speakergmm.corpora.speechocean762 import prepare_speechocean762
    from speakergmm.data.datadir import write_data_dir

    root = corpora / "speechocean762"
    write_data_dir(folder / "test", prepare_speechocean762(root).data["test"])
    prepare_conversations(folder / "test", folder / "conv", count=count, audio_root=root,
                          seed=1)
    return folder / "conv"


def _bench(args) -> None:
    from speakergmm.data.rttm import read_rttm

    reference = read_rttm(args.conversations / "rttm")
    files = sorted(args.conversations.glob("wav/*.flac"))[:args.limit]
    reference = {f.stem: reference.get(f.stem, []) for f in files}
    seconds = sum(max((t.end for t in turns), default=0.0) for turns in reference.values())
    ours = {"model": args.model, "system": args.system, "detector": args.detector}
    tools = [("speakergmm diarize", sys.executable, OURS, ours)]
    if args.peer_python:
        tools.append(("Resemblyzer + spectralcluster", args.peer_python, PEER,
                      {"memory_gb": args.peer_memory_gb}))
    print(f"{len(files)} conversations, about {seconds / 60:.1f} min of speech\n")
    print("| tool | DER (collar 0.25, overlap not scored) | DER (no collar, overlap) | JER "
          "| speaker count right | times real time |\n|---|---|---|---|---|---|")
    audio = sum(_duration(f) for f in files)
    for name, python, code, extra in tools:
        got = _run(python, code, {**extra, "files": [str(f) for f in files]})
        if isinstance(got, str):
            print(f"| {name} | failed: {got} | | | | |")
            continue
        s = _scores(reference, got["turns"])
        print(f"| {name} | {100 * s['der']:.1f}% | {100 * s['der_overlap']:.1f}% | "
              f"{100 * s['jer']:.1f}% | {100 * s['count']:.0f}% | "
              f"{audio / got['wall']:.0f} |")
    with tempfile.TemporaryDirectory() as tmp:
        long = _long_recordings(files[0], args.minutes, Path(tmp))
        print("\n| length | tool | wall s | times real time | peak RSS MiB |\n"
              "|---|---|---|---|---|")
        failed = set()
        for m, path in zip(args.minutes, long):
            for name, python, code, extra in tools:
                if name in failed:
                    print(f"| {m:g} min | {name} | not run (failed on a shorter one) | | |")
                    continue
                t0 = time.perf_counter()
                got = _run(python, code, {**extra, "files": [str(path)]})
                if isinstance(got, str):
                    failed.add(name)
                    print(f"| {m:g} min | {name} | failed after "
                          f"{time.perf_counter() - t0:.0f} s: {got} | | |")
                    continue
                print(f"| {m:g} min | {name} | {got['wall']:.1f} | "
                      f"{m * 60 / got['wall']:.0f} | {got['rss_kb'] / 1024:.0f} |")


def _duration(path: Path) -> float:
    import soundfile as sf

    return sf.info(str(path)).duration


if __name__ == "__main__":
    main()
