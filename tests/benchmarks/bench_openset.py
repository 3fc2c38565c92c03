"""Open-set identification through the product path: half of the speechocean762 dev
protocol's evaluation speakers enrolled (in a store that calibrated itself), every test
recording of all of them identified with `Recognizer.identify` (what `speakergmm identify`
runs). Errors: an unknown voice named as someone; an enrolled voice called unknown or
given another name.

    python tests/benchmarks/bench_openset.py [--corpus ../shared/corpora/speechocean762]

Prints the errors at the default decision (prior 0.5 that the voice is enrolled) and the
equal error over a threshold on the best speaker's calibrated LLR.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path,
                        default=REPO.parent / "shared" / "corpora" / "speechocean762")
    args = parser.parse_args()

    from speakergmm.corpora.speechocean762 import prepare_speechocean762
    from speakergmm.recognizer import Recognizer

    protocol = prepare_speechocean762(args.corpus)
    enroll, test = protocol.data["enroll"], protocol.data["test"]
    speakers = sorted(protocol.enroll_maps["enroll_map"])
    enrolled = set(speakers[0::2])
    with tempfile.TemporaryDirectory() as work:
        rec = Recognizer(None, Path(work) / "store.db")
        for speaker in sorted(enrolled):
            rec.enroll(speaker, [args.corpus / enroll.wav_scp[u]
                                 for u in protocol.enroll_maps["enroll_map"][speaker]])
        rec.store.calibrate()
        known, best_llr, right, default_ok = [], [], [], []
        for utt in sorted(test.utt2spk):
            truth = test.utt2spk[utt]
            result = rec.identify(args.corpus / test.wav_scp[utt], top=1)
            known.append(truth in enrolled)
            best_llr.append(result.llrs[0])
            right.append(result.ranking[0][0] == truth)
            default_ok.append(result.speaker == (truth if truth in enrolled else None))
    known, best_llr = np.array(known), np.array(best_llr)
    right, default_ok = np.array(right), np.array(default_ok)
    print(f"{known.sum()} tests of {len(enrolled)} enrolled speakers, {(~known).sum()} of "
          f"{len(speakers) - len(enrolled)} unknown ones")
    print(f"default decision: unknown named {100 * np.mean(~default_ok[~known]):.1f}%, "
          f"enrolled rejected or misnamed {100 * np.mean(~default_ok[known]):.1f}% "
          f"(misnamed {100 * np.mean(~right[known]):.1f}% of them as best)")
    thresholds = np.sort(best_llr)
    false_named = np.array([np.mean(best_llr[~known] >= t) for t in thresholds])
    missed = np.array([np.mean(~right[known] | (best_llr[known] < t)) for t in thresholds])
    i = int(np.argmin(np.abs(false_named - missed)))
    print(f"equal error over a threshold on the best LLR: {100 * false_named[i]:.1f}% / "
          f"{100 * missed[i]:.1f}% at LLR {thresholds[i]:.2f}")


if __name__ == "__main__":
    main()
