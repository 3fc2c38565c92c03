"""The product path in the field (issue 22): verification and closed-set identification on
test recordings degraded as they arrive from users, with clean 5-recording enrollment and
every default (a store that calibrated itself from its own enrollments), for one or more
systems side by side (before / after); and how many tests the product cautions about (too
short or too noisy for a reliable decision):

    recipes/systems/run.sh --split dev --corpus-root ../shared/corpora/speechocean762 \\
        --work exp/systems
    python tests/benchmarks/bench_conditions.py --systems exp/systems/dev [OTHER ...]

Speakers: the speechocean762 dev protocol's 62 evaluation speakers, unseen by systems built
with ``--split dev`` (930 test recordings, 930 target and 56,730 non-target trials).

Conditions: what a system may have been trained on (``speakergmm augment``: coloured noise,
babble of its training speakers, image-method rooms, G.711, Vorbis, MP3) is kept apart from
what it is tested on here, because a user's noise is never the training noise:

- ``tone``: clean speech in another room: the ``noise`` below at 30 dB SNR, as quiet as a
  room's own background. Each speaker's recordings in speechocean762 come from one session
  and share its room tone, which a system that keeps every frame (no VAD) also matches; a
  user's test is made elsewhere;
- ``babble``: 4 to 6 other evaluation speakers' test recordings at once, 10 dB SNR;
- ``noise``: car / ventilation noise, 5 dB SNR: low-passed rumble with an engine hum
  (harmonics of a drifting 30-60 Hz fundamental), not a power-law spectrum;
- ``room``: RT60 0.6 s from Polack's statistical model (a direct path, then Gaussian noise
  decaying at 60 dB per RT60 from 2.5 ms on), not the image method;
- ``phone``: GSM 06.10 (the full-rate mobile codec, through libsndfile) at 8 kHz, 300-3400 Hz,
  upsampled back to 16 kHz;
- ``2s``, ``1s``: that much of the recording, from the middle of its active part.

Each degraded copy is seeded by its utterance id and condition, so every system scores the
same audio. SNR is over the whole recording (pauses included), as ``speakergmm augment``
sets it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
import zlib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
CONDITIONS = ("clean", "tone", "babble", "noise", "room", "phone", "2s", "1s")
SR = 16000


def _rng(utt: str, condition: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(f"{utt}/{condition}".encode()))


def _excerpt(y: np.ndarray, seconds: float) -> np.ndarray:
    """The middle ``seconds`` of the recording's active part."""
    from speakergmm.frontend.augment import active_part

    a, b = active_part(y=y, sr=SR)
    n = int(seconds * SR)
    mid = (a + b) // 2
    start = int(np.clip(mid - n // 2, 0, max(len(y) - n, 0)))
    return y[start:start + n]


def car_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Low-frequency rumble (white noise through a 2nd-order low-pass at 150-400 Hz) plus an
    engine hum whose fundamental drifts between 30 and 60 Hz, unit power."""
    from scipy.signal import butter, sosfilt

    rumble = sosfilt(butter(2, rng.uniform(150, 400), fs=SR, output="sos"),
                     rng.standard_normal(n))
    t = np.arange(n) / SR
    f0 = rng.uniform(30, 60) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    hum = sum(np.sin(h * phase + rng.uniform(0, 2 * np.pi)) / h for h in range(1, 8))
    x = rumble / np.std(rumble) + 0.5 * hum / np.std(hum)
    return (x / np.std(x)).astype(np.float32)


def polack_rir(rt60: float, rng: np.random.Generator, drr_db: float = 0.0) -> np.ndarray:
    """A statistical room impulse response: a unit direct path, then Gaussian noise under an
    exponential decay of 60 dB per ``rt60`` from 2.5 ms on, scaled to ``drr_db``."""
    n = int(1.2 * rt60 * SR)
    t = np.arange(n) / SR
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)
    tail[: int(0.0025 * SR)] = 0.0
    tail *= np.sqrt(10 ** (-drr_db / 10) / np.sum(tail ** 2))
    tail[0] = 1.0
    return tail


def gsm(y: np.ndarray) -> np.ndarray:
    """GSM 06.10 at 8 kHz (300-3400 Hz) and back to 16 kHz."""
    import io

    import soundfile as sf
    from scipy.signal import butter, sosfilt

    from speakergmm.frontend.audio import resample

    x = resample(y, orig_sr=SR, target_sr=8000)
    x = sosfilt(butter(4, [300, 3400], btype="bandpass", fs=8000, output="sos"), x)
    x = np.clip(x, -1, 1).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x, 8000, format="WAV", subtype="GSM610")
    buf.seek(0)
    out, _ = sf.read(buf, dtype="float32")
    out = resample(out, orig_sr=8000, target_sr=SR)[: len(y)]
    return np.pad(out, (0, len(y) - len(out))).astype(np.float32)


def degrade(condition: str, utt: str, y: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    from speakergmm.frontend.augment import add_noise, babble, reverberate

    rng = _rng(utt, condition)
    if condition == "clean":
        return y
    if condition == "babble":
        picks = rng.choice(len(others), min(int(rng.integers(4, 7)), len(others)),
                           replace=False)
        noise = babble(talkers=[others[i] for i in picks], n=len(y), rng=rng)
        return add_noise(y=y, noise=noise, snr_db=10.0, rng=rng)
    if condition in ("noise", "tone"):
        snr = 5.0 if condition == "noise" else 30.0
        return add_noise(y=y, noise=car_noise(len(y), rng), snr_db=snr, rng=rng)
    if condition == "room":
        return reverberate(y=y, rir=polack_rir(0.6, rng))
    if condition == "phone":
        return gsm(y)
    if condition in ("2s", "1s"):
        return _excerpt(y, float(condition[0]))
    raise ValueError(condition)


def _rates(llr: np.ndarray, target: np.ndarray) -> dict:
    from speakergmm.eval.metrics import rocch_eer

    t, n = llr[target], llr[~target]
    return {"eer": 100 * rocch_eer(t, n), "miss": 100 * np.mean(t < 0),
            "fa": 100 * np.mean(n >= 0)}


def run(system: Path, args, work: Path) -> dict[str, dict]:
    import soundfile as sf

    from speakergmm.corpora.speechocean762 import prepare_speechocean762
    from speakergmm.frontend.audio import load
    from speakergmm.recognizer import Recognizer

    corpus = args.corpora / "speechocean762"
    protocol = prepare_speechocean762(corpus)
    enroll, test = protocol.data["enroll"], protocol.data["test"]
    trials = protocol.trials["trials"]
    keep = sorted(protocol.enroll_maps["enroll_map"])[:args.speakers]
    store = Path(tempfile.mkdtemp(dir=work)) / "store.db"
    rec = Recognizer(system=system, store=store)
    for speaker in keep:
        rec.enroll(speaker, [corpus / enroll.wav_scp[u]
                             for u in protocol.enroll_maps["enroll_map"][speaker]])
    own = rec.store.calibration()
    print(f"\n{system}: {len(rec.store)} speakers enrolled; the store "
          f"{'calibrated itself' if own is not None else 'did not calibrate itself'}")
    chosen = np.isin(trials.enroll, keep) & np.isin(
        [test.utt2spk[u] for u in trials.test], keep)
    trial_enroll, trial_test = trials.enroll[chosen], trials.test[chosen]
    is_target = np.asarray(trials.is_target)[chosen]
    utts = sorted(set(trial_test.tolist()))
    audio = {u: load(corpus / test.wav_scp[u], sr=SR)[0] for u in utts}
    results = {}
    for condition in args.conditions:
        start = time.perf_counter()
        llrs, ident, flagged, measured = {}, [], [], {}
        for u in utts:
            speaker = test.utt2spk[u]
            others = [audio[v] for v in utts if test.utt2spk[v] != speaker][::7]
            path = work / "test.wav"
            sf.write(path, degrade(condition, u, audio[u], others), SR, subtype="FLOAT")
            found = rec.scores(path)
            llrs[u] = dict(zip(found.ids, found.llrs))
            ident.append(found.ids[int(np.argmax(found.llrs))] == speaker)
            flagged.append(found.quality.note is not None)
            measured[u] = (found.quality.seconds, found.quality.snr_db)
        llr = np.array([llrs[t][e] for e, t in zip(trial_enroll, trial_test)])
        r = _rates(llr, is_target)
        r["ident"] = 100 * np.mean(ident)
        r["flagged"] = 100 * np.mean(flagged)
        r["seconds"] = time.perf_counter() - start
        r["trials"] = (llr, is_target, trial_enroll)  # (for --fuse)
        results[condition] = r
        if args.dump is not None:  # the trials' LLRs, for fusion and calibration studies
            args.dump.mkdir(parents=True, exist_ok=True)
            name = str(system.parent.resolve()).strip("/").replace("/", "_")
            np.savez(args.dump / f"{name}-{condition}.npz", llr=llr,
                     target=is_target, enroll=trial_enroll, test=trial_test,
                     seconds=np.array([measured[t][0] for t in trial_test]),
                     snr=np.array([measured[t][1] for t in trial_test], dtype=float))
        print(f"  {condition}: EER {r['eer']:.2f}%, miss / FA {r['miss']:.1f}% / "
              f"{r['fa']:.1f}%, identification {r['ident']:.1f}%, cautioned "
              f"{r['flagged']:.0f}% ({r['seconds']:.0f} s)",
              flush=True)
    return results


def identification(system: Path, args, work: Path) -> None:
    """Open-set identification at several shares of enrolled and unknown speakers: every
    clean test recording of the evaluation speakers scored in a store of all of them (which
    calibrated itself); each of 20 seeded draws keeps the columns of the speakers it
    enrolls, and the rest are strangers. ``identify``'s rule at each prior: name the best
    speaker if its LLR exceeds log(M (1 - prior) / prior), else "unknown"."""
    from speakergmm.corpora.speechocean762 import prepare_speechocean762
    from speakergmm.recognizer import Recognizer

    corpus = args.corpora / "speechocean762"
    protocol = prepare_speechocean762(corpus)
    enroll, test = protocol.data["enroll"], protocol.data["test"]
    emap = protocol.enroll_maps["enroll_map"]
    speakers = sorted(emap)[:args.speakers]
    rec = Recognizer(system=system, store=Path(tempfile.mkdtemp(dir=work)) / "id.db")
    for speaker in speakers:
        rec.enroll(speaker, [corpus / enroll.wav_scp[u] for u in emap[speaker]])
    utts = [u for u in sorted(test.utt2spk) if test.utt2spk[u] in speakers]
    llr = np.array([rec.scores(corpus / test.wav_scp[u]).llrs for u in utts])
    truth = np.array([speakers.index(test.utt2spk[u]) for u in utts])
    n = len(speakers)
    splits = [(n, 0), (n - n // 5, n // 5), (n // 2, n // 2), (n // 4, n // 4)]
    print(f"\nidentify, {system}: enrolled tests missed or misnamed / strangers named, "
          f"mean of 20 draws (all tests of the drawn speakers)")
    print("| prior | " + " | ".join(f"{a} enrolled / {b} unknown" for a, b in splits) + " |")
    print("|---|" + "---|" * len(splits))
    rng = np.random.default_rng(0)
    draws = {split: [rng.permutation(n) for _ in range(20)] for split in splits}
    for prior in args.priors:
        cells = []
        for n_in, n_out in splits:
            errors = []
            for perm in draws[(n_in, n_out)]:
                inside, outside = perm[:n_in], perm[n_in:n_in + n_out]
                rows = np.isin(truth, np.concatenate([inside, outside]))
                sub, who = llr[rows][:, inside], truth[rows]
                best = sub.max(axis=1)
                named = best > np.log(n_in * (1 - prior) / prior)
                known = np.isin(who, inside)
                right = inside[np.argmax(sub, axis=1)] == who
                errors.append((np.mean(~(named & right)[known]),
                               np.mean(named[~known]) if n_out else np.nan))
            e = 100 * np.array(errors)
            cells.append(f"{e[:, 0].mean():.1f}% / " + (f"{e[:, 1].mean():.1f}%" if n_out
                                                        else "-"))
        print(f"| {prior:g} | " + " | ".join(cells) + " |", flush=True)


def small_stores(system: Path, args, work: Path) -> None:
    """Decisions in small stores, before they have AUTO_CALIBRATION trials: misses and
    false alarms at the default decision with the calibration the store holds after its
    enrollments (its own where its trials predicted themselves better, held out by
    speaker, than the system's calibration did), against the system's calibration.
    FSDD (8 kHz digits, 0.4 s tests: a corpus no system saw) through the bundled telephone
    system; the speechocean762 dev speakers through ``system``."""
    import re

    from speakergmm.corpora.speechocean762 import prepare_speechocean762
    from speakergmm.eval.metrics import rocch_eer
    from speakergmm.recognizer import Recognizer
    from speakergmm.store.records import counted_trials
    from speakergmm.store.selfcal import adapted, store_shift

    def measure(label, rec, tests):
        raw, target = [], []
        cal = rec.calibration()
        for speaker, path in tests:
            found = rec.scores(path)
            raw.extend((np.asarray(found.llrs) - cal.offset_) / cal.scale_)
            target.extend(i == speaker for i in found.ids)
        raw, target = np.array(raw), np.array(target)
        rows = rec.store.calibration_trial_rows()
        tar, non, n = counted_trials(rows)
        cells = []
        for c in (rec.system.calibration, adapted(rec.system.calibration, rows), cal):
            llr = c.transform(raw)
            cells.append(f"{100 * np.mean(llr[target] < 0):.1f}% / "
                         f"{100 * np.mean(llr[~target] >= 0):.1f}%")
        own = "its own" if rec.store.calibration() is not None else "the system's, adapted"
        print(f"| {label} | {tar.size} / {non.size} / {n} | "
              f"{100 * rocch_eer(raw[target], raw[~target]):.1f}% | {cells[0]} | "
              f"{cells[1]} (shift {store_shift(rows).shift:.2f}) | {cells[2]} ({own}) |",
              flush=True)

    print("\nsmall stores: misses / false alarms at the default decision")
    print("| store | own trials (target / non-target / speakers) | EER | system's calibration "
          "| the system's, adapted to the store's impostor trials | the store's after "
          "enrolling |")
    print("|---|---|---|---|---|---|")
    root = args.corpora / "fsdd" / "recordings"
    by: dict = {}
    for f in sorted(root.glob("*.wav")):
        d, spk, i = re.fullmatch(r"(\d)_(\w+?)_(\d+)", f.stem).groups()
        by.setdefault(spk, {})[(int(d), int(i))] = f
    names = sorted(by)
    for n, per in ((3, 1), (4, 2), (6, 1)):
        rec = Recognizer(system="telephone", store=Path(tempfile.mkdtemp(dir=work)) / "f.db")
        for spk in names[:n]:
            rec.enroll(spk, [by[spk][(d, i)] for d in range(10) for i in range(per)])
        measure(f"FSDD, {n} speakers x {10 * per} recordings", rec,
                [(spk, by[spk][(d, i)]) for spk in names[:n] for d in range(10)
                 for i in range(40, 45)])
    corpus = args.corpora / "speechocean762"
    protocol = prepare_speechocean762(corpus)
    enroll, test = protocol.data["enroll"], protocol.data["test"]
    emap = protocol.enroll_maps["enroll_map"]
    speakers = sorted(emap)
    for start, n, k in ((0, 3, 3), (10, 4, 5), (20, 6, 2), (30, 4, 3), (40, 8, 2),
                        (0, len(speakers), 1)):
        chosen = speakers[start:start + n]
        rec = Recognizer(system=system, store=Path(tempfile.mkdtemp(dir=work)) / "s.db")
        for spk in chosen:
            rec.enroll(spk, [corpus / enroll.wav_scp[u] for u in emap[spk][:k]])
        measure(f"speechocean762 dev, {n} speakers x {k} recordings", rec,
                [(test.utt2spk[u], corpus / test.wav_scp[u]) for u in sorted(test.utt2spk)
                 if test.utt2spk[u] in chosen])


def fusion(table: dict, conditions) -> None:
    """A linear fusion of two systems' LLRs (``Fusion``, prior 0.5), learnt on the trials
    of half the enrolled speakers in every condition and applied to the other half's, and
    the other way round: its EER per condition beside each system's."""
    from speakergmm.backend.calibration import Fusion
    from speakergmm.eval.metrics import rocch_eer

    first, second = table.values()
    speakers = sorted(set(first[conditions[0]]["trials"][2]))
    half = set(speakers[::2])
    print("\nlinear fusion, learnt on the other half of the speakers: EER")
    print("| test recordings | " + " | ".join(table) + " | fused |\n|---|---|---|---|")
    for condition in conditions:
        (a, target, enroll), (b, _, _) = (first[condition]["trials"],
                                          second[condition]["trials"])
        fused = np.empty(len(a))
        for side in (True, False):
            learn = [np.isin(first[c]["trials"][2], list(half)) != side for c in conditions]
            S = np.concatenate([np.column_stack([first[c]["trials"][0],
                                                 second[c]["trials"][0]])[m]
                                for c, m in zip(conditions, learn)])
            t = np.concatenate([first[c]["trials"][1][m] for c, m in zip(conditions, learn)])
            apply = np.isin(enroll, list(half)) == side
            fused[apply] = Fusion().fit(S[t], S[~t], prior=0.5).transform(
                np.column_stack([a, b])[apply])
        eer = [100 * rocch_eer(x[target], x[~target]) for x in (a, b, fused)]
        print(f"| {condition} | " + " | ".join(f"{e:.2f}%" for e in eer) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", type=Path, nargs="+", required=True,
                        help="folders of wideband.npz built with recipes/systems/run.sh "
                             "--split dev (with or without --augment)")
    parser.add_argument("--corpora", type=Path, default=REPO.parent / "shared" / "corpora")
    parser.add_argument("--conditions", nargs="+", choices=CONDITIONS, default=CONDITIONS)
    parser.add_argument("--speakers", type=int, default=None,
                        help="only the first N evaluation speakers (a quick run)")
    parser.add_argument("--identify", action="store_true",
                        help="also open-set identification at several enrolled / unknown "
                             "shares, clean tests")
    parser.add_argument("--stores", action="store_true",
                        help="also decisions in small stores (FSDD, dev speakers)")
    parser.add_argument("--priors", type=float, nargs="+", default=[0.5, 0.8, 0.85, 0.9, 0.95],
                        help="identify's --prior values to compare")
    parser.add_argument("--dump", type=Path, default=None,
                        help="write each system's and condition's trial LLRs and test "
                             "measures to DIR/<system folder, / as _>-<condition>.npz")
    parser.add_argument("--fuse", action="store_true",
                        help="with two systems: also their linear fusion, learnt on half the "
                             "speakers and tested on the other half")
    args = parser.parse_args()
    if args.fuse and len(args.systems) != 2:
        parser.error("--fuse takes exactly two systems")
    warnings.simplefilter("ignore")  # (the store notes its calibration as it grows)
    table = {}
    with tempfile.TemporaryDirectory() as work:
        for folder in args.systems:
            table[str(folder)] = run(folder / "wideband.npz", args, Path(work))
            if args.identify:
                identification(folder / "wideband.npz", args, Path(work))
            if args.stores:
                small_stores(folder / "wideband.npz", args, Path(work))
    print("\n| test recordings | " + " | ".join(
        f"{name}: EER | miss / FA | identification | cautioned" for name in table) + " |")
    print("|---|" + "---|---|---|---|" * len(table))
    for condition in args.conditions:
        cells = []
        for results in table.values():
            r = results[condition]
            cells.append(f"{r['eer']:.1f}% | {r['miss']:.1f}% / {r['fa']:.1f}% | "
                         f"{r['ident']:.1f}% | {r['flagged']:.0f}%")
        print(f"| {condition} | " + " | ".join(cells) + " |")
    if args.fuse:
        fusion(table, args.conditions)


if __name__ == "__main__":
    main()
