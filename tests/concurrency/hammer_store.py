"""Hammer one speaker store with concurrent enrollments while readers verify and identify.

W writer processes each enroll N new speakers (``speakergmm enroll``, two recordings each)
into one store, while R reader processes run ``verify`` and ``identify`` against it in a
loop until the writers are done. Every command runs through the CLI (click's runner, in
the worker process: the code path of the command line without a new interpreter per call).

Checked at the end:

- every enrollment succeeded, and the store holds exactly the W x N new speakers (plus
  the two enrolled before the readers start), each with its two recordings and statistics
  that load (blobs whole, shapes right);
- every reader call succeeded (verify: exit 0 or 1, identify: exit 0 or 1), and none
  waited on a writer: the slowest reader call is reported, and ``--max-reader-seconds``
  bounds it (a reader that waited on the write lock took up to 60 s before);
- no -wal or -shm file is left once everything has closed.

Full size, as issue 14 asks (about 10 minutes on 2 cores)::

    python tests/concurrency/hammer_store.py --writers 4 --enrollments 100 --readers 2

The test suite runs it scaled down (``tests/concurrency/test_hammer_store.py``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _audio(folder: Path, speaker: int, utt: int) -> Path:
    """A synthetic voice recording (tests/conftest.py's ``voice``), written once."""
    sys.path.insert(0, str(TESTS))
    from conftest import SR, voice, write_audio

    path = folder / f"v{speaker:04d}-{utt}.wav"
    if not path.exists():
        write_audio(path, voice(speaker, utt, 1.5), SR)
    return path


def _cli(args: list[str]) -> tuple[int, float, str]:
    from click.testing import CliRunner

    from speakergmm.cli import main

    t0 = time.perf_counter()
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, time.perf_counter() - t0, result.output.strip()[-300:]


def _writer(store: str, folder: str, writer: int, n: int, first: int, out) -> None:
    results = []
    for j in range(n):
        spk = first + writer * n + j
        files = [_audio(Path(folder), spk, u) for u in (0, 1)]
        code, seconds, text = _cli(["enroll", f"w{writer}-{j:03d}", *files, "--store", store])
        results.append({"speaker": f"w{writer}-{j:03d}", "code": code, "seconds": seconds,
                        "text": text if code else ""})
    out.put(("writer", results))


def _reader(store: str, folder: str, reader: int, stop, out) -> None:
    results = []
    probe = _audio(Path(folder), reader % 2, 2)  # a recording of a speaker enrolled first
    i = 0
    while not stop.is_set():
        if i % 2 == 0:
            args = ["verify", "seed-0", probe, "--store", store]
        else:
            args = ["identify", probe, "--store", store]
        code, seconds, text = _cli(args)
        results.append({"command": args[0], "code": code, "seconds": seconds,
                        "text": text if code not in (0, 1) else ""})
        i += 1
    out.put(("reader", results))


def hammer(work: Path, *, writers: int, enrollments: int, readers: int) -> dict:
    """Run the hammer in ``work``; returns what was measured (see the module docstring)."""
    store = work / "speakers.db"
    audio = work / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    for s in (0, 1):  # two speakers before the readers start
        code, _, text = _cli(["enroll", f"seed-{s}", _audio(audio, s, 0), _audio(audio, s, 1),
                              "--store", store])
        assert code == 0, text
    for spk in range(2, 2 + writers * enrollments):  # the audio, before the clock starts
        for u in (0, 1):
            _audio(audio, spk, u)
    _audio(audio, 0, 2), _audio(audio, 1, 2)

    ctx = multiprocessing.get_context("spawn")
    out, stop = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_reader, args=(str(store), str(audio), r, stop, out))
             for r in range(readers)]
    procs += [ctx.Process(target=_writer, args=(str(store), str(audio), w, enrollments, 2, out))
              for w in range(writers)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    got = {"writer": [], "reader": []}
    for _ in range(writers):
        kind, results = out.get()
        got[kind] += results
    stop.set()
    for _ in range(readers):
        kind, results = out.get()
        got[kind] += results
    for p in procs:
        p.join()
    wall = time.perf_counter() - t0

    from speakergmm.store import SpeakerStore

    speakers = SpeakerStore(store)
    try:
        listed = {info.id: info for info in speakers.list()}
        whole = sum(1 for spk in listed if speakers.model(spk).stats.n.sum() > 0)
    finally:
        speakers.close()
    reads = got["reader"]
    return {
        "wall_seconds": round(wall, 1),
        "enrollments": len(got["writer"]),
        "enroll_failures": [r for r in got["writer"] if r["code"] != 0],
        "speakers": len(listed),
        "speakers_expected": 2 + writers * enrollments,
        "speakers_whole": whole,
        "two_recordings_each": all(info.utterances == 2 for info in listed.values()),
        "reader_calls": len(reads),
        "reader_failures": [r for r in reads if r["code"] not in (0, 1)],
        "reader_seconds_median": round(statistics.median(r["seconds"] for r in reads), 3)
        if reads else None,
        "reader_seconds_max": round(max(r["seconds"] for r in reads), 3) if reads else None,
        "enroll_seconds_median": round(statistics.median(
            r["seconds"] for r in got["writer"]), 3),
        "left_files": sorted(p.name for p in work.glob("speakers.db-*")),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--enrollments", type=int, default=100, help="per writer")
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--max-reader-seconds", type=float, default=20.0)
    parser.add_argument("--work", type=Path, help="folder to work in [default: a temporary]")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = hammer(args.work or Path(tmp), writers=args.writers,
                        enrollments=args.enrollments, readers=args.readers)
    print(json.dumps(report, indent=2))
    ok = (not report["enroll_failures"] and not report["reader_failures"]
          and report["speakers"] == report["speakers_expected"] == report["speakers_whole"]
          and report["two_recordings_each"] and not report["left_files"]
          and report["reader_seconds_max"] is not None
          and report["reader_seconds_max"] <= args.max_reader_seconds)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
