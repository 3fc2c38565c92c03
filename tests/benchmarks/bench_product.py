"""The product path's targets (issue 11), measured through `Recognizer` (what `speakergmm
enroll` / `verify` / `identify` run) with systems built on the speechocean762 dev
protocol's background speakers only, so that every speaker tested is unseen:

    recipes/systems/run.sh --split dev --corpus-root ../shared/corpora/speechocean762 \\
        --work exp/systems
    python tests/benchmarks/bench_product.py --systems exp/systems/dev

1. speechocean762 dev protocol (62 speakers enrolled on 5 recordings each, 930 target and
   56,730 non-target trials) with the wideband system: EER (target: within 0.3 points of
   the recipe's 1.22%), and the miss and false-alarm rates of verify's default decision
   (prior 0.5: LLR >= 0; target: each <= 2 x EER). Also what S-norm buys, and what adding
   the store's other speakers to the T-side cohort would.
2. The same store, which calibrated itself from its own enrollments (as it does once it has
   enough trials; or `speakers calibrate`): actDCF against minDCF at prior 0.01 (target:
   within 10%).
3. Open set: half the dev evaluation speakers enrolled, the other half unknown, every test
   recording identified (target: equal error <= 10%, neither error above 15% at the default
   decision).
4. FSDD through the telephone system (each speaker enrolled on recordings 0-4 of every
   digit, tested on 40-49): the default decision's miss and false-alarm rates against the
   EER (target: each <= 2 x EER).
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def _rates(llr: np.ndarray, target: np.ndarray, prior: float = 0.01) -> dict:
    from speakergmm.eval.metrics import DCFParams, act_dcf, cllr, min_dcf, rocch_eer

    t, n = llr[target], llr[~target]
    params = DCFParams(1.0, 1.0, prior)
    return {"eer": 100 * rocch_eer(t, n), "miss": 100 * np.mean(t < 0),
            "fa": 100 * np.mean(n >= 0), "mindcf": min_dcf(t, n, params),
            "actdcf": act_dcf(t, n, params), "cllr": cllr(t, n)}


def _row(name: str, r: dict) -> str:
    return (f"| {name} | {r['eer']:.2f}% | {r['miss']:.2f}% / {r['fa']:.2f}% | "
            f"{r['mindcf']:.3f} | {r['actdcf']:.3f} | {r['cllr']:.3f} |")


def _score_tests(rec, tests: dict[str, Path]):
    """Every test recording against every enrolled speaker, as identify scores it; also the
    S-norm ingredients, to measure what each part buys, and each test's quality."""
    from speakergmm.backend.scoring import score

    system = rec.system
    ids = [s.id for s in rec.store.list()]
    z = rec._norms_of(ids, rec.store.norms())
    models = list(rec.store.model_sets(rec.ubm, rec._channel_fp))
    raw, cohort, quality = {}, {}, {}
    for utt, path in tests.items():
        _, test, quality[utt] = rec._test(path, "topc", system.c)
        raw[utt] = np.concatenate([score(rec.ubm, m, test) for m in models])
        cohort[utt] = score(rec.ubm, system.cohort_models, test)
    return ids, z, raw, cohort, quality


def verification(args, system_path: Path, work: Path) -> None:
    from speakergmm.backend.scorenorm import cohort_stats
    from speakergmm.corpora.speechocean762 import prepare_speechocean762
    from speakergmm.recognizer import Recognizer

    corpus = args.corpora / "speechocean762"
    protocol = prepare_speechocean762(corpus)
    enroll, test = protocol.data["enroll"], protocol.data["test"]
    rec = Recognizer(system=system_path, store=work / "so762.db")
    start = time.perf_counter()
    for speaker, utts in protocol.enroll_maps["enroll_map"].items():
        rec.enroll(speaker, [corpus / enroll.wav_scp[u] for u in utts])
    enrolled = time.perf_counter() - start
    trials = protocol.trials["trials"]
    tests = {u: corpus / test.wav_scp[u] for u in sorted(set(trials.test.tolist()))}
    start = time.perf_counter()
    ids, z, raw, cohort, quality = _score_tests(rec, tests)
    scored = time.perf_counter() - start
    print(f"speechocean762 dev protocol, system {system_path}: {len(ids)} speakers enrolled "
          f"in {enrolled:.1f} s, {len(tests)} test recordings scored in {scored:.1f} s")
    col = {m: i for i, m in enumerate(ids)}
    rows = np.array([col[m] for m in trials.enroll])
    target = trials.is_target
    system, cal = rec.system, rec.system.calibration

    def gather(values):
        return np.array([values[t][r] for t, r in zip(trials.test, rows)])

    raw_t = gather(raw)
    snorm = {u: system.finish(raw[u], z, cohort_stats(cohort[u][None, :])) for u in tests}
    if rec._adjusts():  # each test's score adjusted for its quality, as the store does
        print("(the S-norm scores below are adjusted for each test's quality before they "
              "are calibrated)")
        snorm = {u: system.adjust(snorm[u], quality[u]) for u in tests}
    print("| scores | EER | miss / false alarm at the default decision (LLR >= 0) | "
          "minDCF 0.01 | actDCF 0.01 | Cllr |")
    print("|---|---|---|---|---|---|")
    print(_row("raw (top-C + eigenchannel), uncalibrated", _rates(raw_t, target)))
    sn = gather(snorm)
    print(_row("+ S-norm (bundled cohort) + system calibration",
               _rates(cal.transform(sn), target)))
    fit = type(cal)().fit(sn[target], sn[~target], prior=0.01)
    print(_row("+ S-norm (bundled cohort), oracle calibration", _rates(fit.transform(sn),
                                                                      target)))
    # The store's other speakers as an in-domain cohort, on the T side beside the bundled
    # cohort, or as a T-norm after S-norm. Where the test's own speaker is enrolled it sits
    # in that cohort and props the result up (identification, not verification); the
    # impostors a verification decision must hold against may be nobody enrolled, so each
    # is measured both ways. Oracle calibrations: only the discrimination is compared.
    truth = {u: col.get(test.utt2spk[u]) for u in tests}
    for label, in_domain in (("T side also over", "union"), ("then T-norm over", "after")):
        for enrolled in (True, False):
            out = {}
            for u in tests:
                keep = np.ones(len(ids), bool)
                if not enrolled and truth[u] is not None:
                    keep[truth[u]] = False
                vals = np.empty(len(ids))
                for i in range(len(ids)):
                    k = keep.copy()
                    k[i] = False
                    if in_domain == "union":
                        m, s_ = cohort_stats(np.concatenate([cohort[u], raw[u][k]])[None, :])
                        vals[i] = 0.5 * ((raw[u][i] - z[0][i]) / z[1][i]
                                         + (raw[u][i] - m[0]) / s_[0])
                    else:
                        m, s_ = cohort_stats(snorm[u][k][None, :])
                        vals[i] = (snorm[u][i] - m[0]) / s_[0]
                out[u] = vals
            v = gather(out)
            fit = type(cal)().fit(v[target], v[~target], prior=0.01)
            who = "enrolled" if enrolled else "not enrolled"
            print(_row(f"+ S-norm, {label} the store's other speakers; the test's speaker "
                       f"{who} (oracle calibration)", _rates(fit.transform(v), target)))
    ident = np.mean([ids[int(np.argmax(snorm[u]))] == test.utt2spk[u] for u in tests])
    print(f"closed-set identification (S-norm): {100 * ident:.1f}% of {len(tests)}")

    own = rec.store.calibration()  # learnt by the store itself as the speakers enrolled
    assert own is not None
    tar, non, n_spk = rec.store.calibration_trials()
    r = _rates(own.transform(sn), target)
    print(_row(f"+ S-norm + the store's own calibration, in force by default ({tar.size} "
               f"target, {non.size} non-target self-trials of {n_spk} speakers)", r))
    print(f"self-calibration: actDCF / minDCF = {r['actdcf'] / r['mindcf']:.3f}")
    # How much of that is the luck of 62 speakers: the store's trials resampled by speaker
    rows_of = {}
    for i, row in enumerate(rec.store._rows("SELECT speaker FROM trials")):
        rows_of.setdefault(row["speaker"], []).append(i)
    every = np.array([(row["score"], bool(row["target"]))
                      for row in rec.store._rows("SELECT score, target FROM trials")])
    rng = np.random.default_rng(0)
    speakers_ = sorted(rows_of)
    ratios = []
    for _ in range(200):
        pick = np.concatenate([rows_of[s] for s in rng.choice(speakers_, len(speakers_))])
        sc, tg = every[pick, 0], every[pick, 1].astype(bool)
        fit = type(cal)().fit(sc[tg], sc[~tg], prior=0.01)
        b = _rates(fit.transform(sn), target)
        ratios.append(b["actdcf"] / b["mindcf"])
    print(f"  the same from the store's self-trials resampled by speaker (200 draws): median "
          f"{np.median(ratios):.3f}, 5-95% {np.percentile(ratios, 5):.3f}.."
          f"{np.percentile(ratios, 95):.3f}, {100 * np.mean(np.array(ratios) <= 1.10):.0f}% "
          f"of draws within 1.10")
    print(f"normalised scores, mean (std): self-trials target {tar.mean():.2f} ({tar.std():.2f})"
          f", non-target {non.mean():.2f} ({non.std():.2f}); test trials target "
          f"{sn[target].mean():.2f} ({sn[target].std():.2f}), non-target "
          f"{sn[~target].mean():.2f} ({sn[~target].std():.2f})")
    oracle = type(cal)().fit(sn[target], sn[~target], prior=0.01)
    o = _rates(oracle.transform(sn), target)
    print(f"the best a linear calibration does on these trials (fit on them): actDCF "
          f"{o['actdcf']:.3f} ({o['actdcf'] / o['mindcf']:.3f} x minDCF); "
          f"store: {own.scale_:.3f} s + {own.offset_:.3f}; oracle: {oracle.scale_:.3f} s + "
          f"{oracle.offset_:.3f}")


def open_set(args, system_path: Path, work: Path) -> None:
    from speakergmm.corpora.speechocean762 import prepare_speechocean762
    from speakergmm.recognizer import Recognizer

    corpus = args.corpora / "speechocean762"
    protocol = prepare_speechocean762(corpus)
    enroll, test = protocol.data["enroll"], protocol.data["test"]
    speakers = sorted(protocol.enroll_maps["enroll_map"])
    enrolled = set(speakers[0::2])
    rec = Recognizer(system=system_path, store=work / "openset.db")
    for speaker in sorted(enrolled):
        rec.enroll(speaker, [corpus / enroll.wav_scp[u]
                             for u in protocol.enroll_maps["enroll_map"][speaker]])
    known, best_llr, right, default_ok = [], [], [], []
    for utt in sorted(test.utt2spk):
        truth = test.utt2spk[utt]
        result = rec.identify(corpus / test.wav_scp[utt], top=1)
        known.append(truth in enrolled)
        best_llr.append(result.llrs[0])
        right.append(result.ranking[0][0] == truth)
        default_ok.append(result.speaker == (truth if truth in enrolled else None))
    known, best_llr = np.array(known), np.array(best_llr)
    right, default_ok = np.array(right), np.array(default_ok)
    print(f"open set: {known.sum()} tests of {len(enrolled)} enrolled speakers, "
          f"{(~known).sum()} of {len(speakers) - len(enrolled)} unknown ones")
    print(f"default decision (prior 0.5): unknown named {100 * np.mean(~default_ok[~known]):.1f}%"
          f", enrolled rejected or misnamed {100 * np.mean(~default_ok[known]):.1f}% "
          f"(best-ranked wrong: {100 * np.mean(~right[known]):.1f}%)")
    thresholds = np.sort(best_llr)
    false_named = np.array([np.mean(best_llr[~known] >= t) for t in thresholds])
    missed = np.array([np.mean(~right[known] | (best_llr[known] < t)) for t in thresholds])
    i = int(np.argmin(np.abs(false_named - missed)))
    print(f"equal error over a threshold on the best LLR: {100 * false_named[i]:.1f}% / "
          f"{100 * missed[i]:.1f}% at LLR {thresholds[i]:.2f}")


def fsdd(args, system_path: Path, work: Path) -> None:
    from speakergmm.recognizer import Recognizer

    files = sorted((args.corpora / "fsdd" / "recordings").glob("*.wav"))
    by = {}
    for f in files:
        digit, speaker, index = re.fullmatch(r"(\d)_(\w+?)_(\d+)", f.stem).groups()
        by.setdefault(speaker, []).append((int(index), f))
    rec = Recognizer(system=system_path, store=work / "fsdd.db")
    tests = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for speaker, items in sorted(by.items()):
            rec.enroll(speaker, [f for i, f in items if i < 5])
            tests.update({f.stem: (speaker, f) for i, f in items if 40 <= i < 50})
    llr, target = [], []
    for utt, (speaker, path) in tests.items():
        found = rec.scores(path)
        llr.extend(found.llrs)
        target.extend(s == speaker for s in found.ids)
    r = _rates(np.array(llr), np.array(target))
    print(f"FSDD through {system_path.name}: {len(by)} speakers, {len(tests)} tests, "
          f"{len(llr)} trials")
    print("| trials | EER | miss / false alarm at the default decision (LLR >= 0) | "
          "minDCF 0.01 | actDCF 0.01 | Cllr |")
    print("|---|---|---|---|---|---|")
    print(_row("FSDD, telephone system", r))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", type=Path, required=True,
                        help="folder of wideband.npz and telephone.npz built with "
                             "recipes/systems/run.sh --split dev")
    parser.add_argument("--corpora", type=Path, default=REPO.parent / "shared" / "corpora")
    parser.add_argument("--only", choices=("verification", "openset", "fsdd"), default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        if args.only in (None, "verification"):
            verification(args, args.systems / "wideband.npz", work)
        if args.only in (None, "openset"):
            open_set(args, args.systems / "wideband.npz", work)
        if args.only in (None, "fsdd"):
            fsdd(args, args.systems / "telephone.npz", work)


if __name__ == "__main__":
    main()
