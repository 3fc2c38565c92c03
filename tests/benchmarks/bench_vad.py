"""Speech activity detection in noise, scored as frame error against known speech
boundaries (issue 22, item 3): the energy VAD, a speech detector (:mod:`speakergmm.gmm.sad`,
the bundled one or ``--detector FILE``) and WebRTC's VAD (the peer, if ``webrtcvad`` is
installed: ``pip install webrtcvad-wheels``; modes 1 and 3), on the same mixtures:

    python tests/benchmarks/bench_vad.py --detector exp/sad-dev.npz

Mixtures: 3 clean recordings of one of the speechocean762 dev protocol's 62 evaluation
speakers, with 0.2-1.5 s pauses of silence before, between and after them
(:func:`speakergmm.gmm.sad.labelled_mixture`); the reference is each clean recording's
energy VAD, the pauses non-speech. Then the test conditions of ``bench_conditions.py``
(none of which a detector is trained on): babble of 4-6 other evaluation speakers at 10
and 5 dB, car noise at 5 and 0 dB, a statistical room of RT60 0.6 s, GSM; SNR over the
whole mixture. A detector to compare with the others must not have been trained on the
evaluation speakers (``train_speech_detector`` on the dev protocol's ``ubm`` data).

Printed per condition: missed speech and false alarm, each as a share of the reference's
speech and non-speech frames, and the detectors' speed (times real time, one core).
"""

from __future__ import annotations

import argparse
import time
import zlib
from pathlib import Path

import numpy as np
from bench_conditions import SR, car_noise, gsm, polack_rir

REPO = Path(__file__).resolve().parents[2]
CONDITIONS = ("clean", "babble10", "babble5", "car5", "car0", "room", "phone")


def degrade(condition: str, y: np.ndarray, rng, others: list[np.ndarray]) -> np.ndarray:
    from speakergmm.frontend.augment import add_noise, babble, reverberate

    if condition == "clean":
        return y
    if condition.startswith("babble"):
        picks = rng.choice(len(others), min(int(rng.integers(4, 7)), len(others)),
                           replace=False)
        noise = babble(talkers=[others[i] for i in picks], n=len(y), rng=rng)
        return add_noise(y=y, noise=noise, snr_db=float(condition[6:]), rng=rng)
    if condition.startswith("car"):
        return add_noise(y=y, noise=car_noise(len(y), rng), snr_db=float(condition[3:]),
                         rng=rng)
    if condition == "room":
        return np.asarray(reverberate(y=y, rir=polack_rir(0.6, rng)), np.float32)
    if condition == "phone":
        return gsm(y)
    raise ValueError(condition)


def webrtc(y: np.ndarray, mode: int, n_frames: int) -> np.ndarray:
    """WebRTC's decisions on consecutive 10 ms frames; frame i (samples 160 i to 160 i +
    160) stands for the feature frame centred on sample 160 i + 80, i.e. frame i."""
    import webrtcvad

    vad = webrtcvad.Vad(mode)
    pcm = (np.clip(y, -1, 1) * 32767).astype("<i2")
    out = np.zeros(n_frames, bool)
    hop = SR // 100
    for i in range(min(len(pcm) // hop, n_frames)):
        out[i] = vad.is_speech(pcm[i * hop:(i + 1) * hop].tobytes(), SR)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detector", type=Path, default=None,
                        help="a speech detector .npz [default: the bundled wideband one]")
    parser.add_argument("--corpora", type=Path, default=REPO.parent / "shared" / "corpora")
    parser.add_argument("--speakers", type=int, default=62)
    parser.add_argument("--conditions", nargs="+", choices=CONDITIONS, default=CONDITIONS)
    args = parser.parse_args()

    from speakergmm.corpora.speechocean762 import prepare_speechocean762
    from speakergmm.frontend.audio import load
    from speakergmm.frontend.vad import energy_vad, frame_energy_db
    from speakergmm.gmm.sad import SpeechDetector, labelled_mixture
    from speakergmm.pretrained import load_speech_detector

    detector = (SpeechDetector.load(args.detector) if args.detector
                else load_speech_detector("wideband"))
    config = detector.config
    try:
        import webrtcvad  # noqa: F401
        peers = (1, 3)
    except ImportError:
        peers = ()
        print("(webrtcvad is not installed: pip install webrtcvad-wheels for the peer)")
    corpus = args.corpora / "speechocean762"
    test = prepare_speechocean762(corpus).data["test"]
    by_speaker: dict[str, list[str]] = {}
    for u in sorted(test.wav_scp):
        by_speaker.setdefault(test.utt2spk[u], []).append(u)
    speakers = sorted(by_speaker)[:args.speakers]
    audio = {u: load(corpus / test.wav_scp[u], sr=SR)[0]
             for s in speakers for u in by_speaker[s][:3]}
    print(f"{detector}\n{len(speakers)} mixtures of 3 recordings per condition\n")
    names = ["energy", "detector", *(f"webrtc{m}" for m in peers)]
    print("| condition | " + " | ".join(f"{n}: miss / FA" for n in names) + " |")
    print("|---" * (len(names) + 1) + "|")
    seconds = {n: 0.0 for n in names}
    audio_seconds = 0.0
    for condition in args.conditions:
        rng = np.random.default_rng(zlib.crc32(condition.encode()))
        errors = {n: np.zeros(4) for n in names}
        for s in speakers:
            own = [audio[u] for u in by_speaker[s][:3]]
            others = [audio[u] for t in speakers if t != s for u in by_speaker[t][:1]]
            y, ref = labelled_mixture(recordings=own, config=config, rng=rng)
            z = degrade(condition, y, rng, others)
            audio_seconds += len(z) / SR
            found = {}
            start = time.perf_counter()
            found["energy"] = energy_vad(energy_db=frame_energy_db(
                y=z, hop_length=config.hop_length, win_length=config.win_length))
            seconds["energy"] += time.perf_counter() - start
            start = time.perf_counter()
            found["detector"] = detector.detect(y=z, sr=SR)
            seconds["detector"] += time.perf_counter() - start
            for m in peers:
                start = time.perf_counter()
                found[f"webrtc{m}"] = webrtc(z, m, len(ref))
                seconds[f"webrtc{m}"] += time.perf_counter() - start
            for n, mask in found.items():
                mask = mask[:len(ref)]
                errors[n] += [np.sum(ref & ~mask), np.sum(~ref & mask), ref.sum(), (~ref).sum()]
        cells = [f"{100 * e[0] / e[2]:.1f}% / {100 * e[1] / e[3]:.1f}%" for e in errors.values()]
        print(f"| {condition} | " + " | ".join(cells) + " |", flush=True)
    print("\nspeed (times real time): " + ", ".join(
        f"{n} {audio_seconds / max(t, 1e-9):,.0f}x" for n, t in seconds.items()))


if __name__ == "__main__":
    main()
