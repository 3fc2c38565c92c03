"""Does a store's self-calibration transfer? Enroll the speechocean762 dev protocol's
evaluation speakers through the product path (the Recognizer and the bundled UBM), let the
store calibrate itself from its enrollments (`speakergmm speakers calibrate`), and measure
the calibrated test trials: actDCF against minDCF (the issue's target: within 10%), Cllr
against minCllr, and the miss and false-alarm rates of the default decision.

    python tests/benchmarks/bench_selfcal.py [--corpus ../shared/corpora/speechocean762]

The test recordings are scored as `verify` scores them (top-C against the store's models),
once each against every enrolled speaker.
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
    parser.add_argument("--prior", type=float, default=0.01,
                        help="prior of the calibration objective and of the DCF")
    args = parser.parse_args()

    from speakergmm.backend.scoring import prepare_test, score
    from speakergmm.corpora.speechocean762 import prepare_speechocean762
    from speakergmm.eval.metrics import DCFParams, act_dcf, cllr, min_cllr, min_dcf, rocch_eer
    from speakergmm.recognizer import Recognizer

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        protocol = prepare_speechocean762(args.corpus)
        enroll, test = protocol.data["enroll"], protocol.data["test"]
        rec = Recognizer(None, work / "store.db")
        for speaker, utts in protocol.enroll_maps["enroll_map"].items():
            rec.enroll(speaker, [args.corpus / enroll.wav_scp[u] for u in utts])
        tar, non, speakers = rec.store.calibration_trials()
        cal = rec.store.calibrate(prior=args.prior)
        print(f"{speakers} speakers enrolled; self-calibration trials: {tar.size} target, "
              f"{non.size} non-target; llr = {cal.scale_:.3f} * score + {cal.offset_:.3f}")
        trials = protocol.trials["trials"]
        models = list(rec.store.model_sets(rec.ubm))
        column = {}
        for utt in sorted(set(trials.test.tolist())):
            prepared = prepare_test(rec.ubm, rec.features(args.corpus / test.wav_scp[utt]))
            column[utt] = {m: s for ms in models
                           for m, s in zip(ms.ids, score(rec.ubm, ms, prepared))}
        raw = np.array([column[t][e] for e, t in zip(trials.enroll, trials.test)])
        llr = cal.transform(raw)
        t, n = llr[trials.is_target], llr[~trials.is_target]
        params = DCFParams(1.0, 1.0, args.prior)
        threshold = np.log((1 - args.prior) / args.prior)
        print(f"| trials | EER | minDCF | actDCF | actDCF / minDCF | Cllr | minCllr | "
              f"miss / false alarm at the Bayes decision (prior {args.prior:g}) |")
        print("|---|---|---|---|---|---|---|---|")
        mind, actd = min_dcf(t, n, params), act_dcf(t, n, params)
        print(f"| {t.size} target, {n.size} non-target | {100 * rocch_eer(t, n):.2f}% | "
              f"{mind:.3f} | {actd:.3f} | {actd / mind:.2f} | {cllr(t, n):.3f} | "
              f"{min_cllr(t, n):.3f} | {100 * np.mean(t < threshold):.1f}% / "
              f"{100 * np.mean(n >= threshold):.2f}% |")
        print(f"default decision of verify (prior 0.5, LLR >= 0): miss "
              f"{100 * np.mean(t < 0):.1f}%, false alarm {100 * np.mean(n >= 0):.2f}% "
              f"(EER {100 * rocch_eer(t, n):.2f}%)")


if __name__ == "__main__":
    main()
