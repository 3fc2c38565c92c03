"""Simulated conversations with reference RTTMs, from any data directory with speaker labels
(``speakergmm prepare conversations DATA_DIR OUT_DIR``): the dev set for diarization, and
what a user builds from LibriSpeech or their own corpus, as the LibriCSS and EEND
``mini_librispeech`` simulations do (Chen et al. 2020; Fujita et al. 2019).

A conversation of ``n`` speakers (drawn from ``speakers``, inclusive) is a sequence of
turns until it reaches its length (drawn from ``seconds``). Each turn is one recording of
its speaker, cut to its active part, at that speaker's level (±3 dB between speakers); every
speaker takes a turn first, in random order, and then the next speaker is any other of the
conversation. A turn overlaps the previous one with
probability ``overlap`` (by 0.3-2 s, at most half the shorter turn), else follows it after a
pause (exponential, mean 0.6 s, at most 3 s). Last, a noise floor of pink noise at an SNR
drawn from ``snr`` (over the whole conversation).

The reference of a turn is where its clean recording's energy VAD finds speech, with
pauses under 0.3 s bridged (NIST's convention for speaker turns): a speaker is speaking
through the short gaps between words, not during a long pause.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..constants import BRIDGE_SECONDS
from ..errors import ParameterError, SpeakerGMMError

__all__ = ["prepare_conversations", "Conversations", "ConversationSettings",
           "simulate_conversation",
           "speech_turns"]



@dataclass(frozen=True)
class Conversations:
    """What :func:`prepare_conversations` wrote: the data directory of the conversations,
    their reference turns, and the paths (``paths["rttm"]`` ...)."""

    data: object
    reference: dict
    paths: dict


@dataclass(frozen=True)
class ConversationSettings:
    """What :func:`simulate_conversation` draws from (module docstring)."""

    speakers: tuple[int, int] = (2, 5)
    seconds: tuple[float, float] = (40.0, 60.0)
    overlap: float = 0.1
    snr: tuple[float, float] = (30.0, 40.0)
    pause_mean: float = 0.6
    sample_rate: int = 16000

    def __post_init__(self):
        lo, hi = self.speakers
        if not 1 <= lo <= hi:
            raise ParameterError(f"speakers: need 1 <= low <= high, got {lo} {hi}")
        if not 0 < self.seconds[0] <= self.seconds[1]:
            raise ParameterError(f"seconds: need 0 < low <= high, got {self.seconds}")
        if not 0 <= self.overlap <= 1:
            raise ParameterError(f"overlap is a share of turns in [0, 1], got {self.overlap}")
        if self.snr[0] > self.snr[1]:
            raise ParameterError(f"snr: the low SNR first, got {self.snr}")


def speech_turns(*, y: np.ndarray, sr: int, bridge: float = BRIDGE_SECONDS
                 ) -> list[tuple[float, float]]:
    """Where a clean recording holds speech, as ``(start, end)`` seconds: the energy VAD's
    frames (:mod:`speakergmm.frontend.vad`), pauses under ``bridge`` seconds bridged."""
    from ..frontend.vad import energy_vad, frame_energy_db, speech_runs

    hop, win = sr // 100, int(0.025 * sr)
    speech = energy_vad(energy_db=frame_energy_db(y=y, hop_length=hop, win_length=win))
    if not speech.any():
        return []
    # frame t is centred on sample t * hop: a run of frames [a, b) covers
    # [a - 0.5, b - 0.5) hops
    spans = [(max(0.0, (a - 0.5) * hop / sr), min(len(y) / sr, (b - 0.5) * hop / sr))
             for a, b in speech_runs(speech)]
    merged = [spans[0]]
    for start, end in spans[1:]:
        if start - merged[-1][1] < bridge:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def simulate_conversation(recordings: dict[str, list[np.ndarray]], *,
                          settings: ConversationSettings, rng: np.random.Generator,
                          ) -> tuple[np.ndarray, list[tuple[float, float, str]], dict]:
    """One conversation among some of ``recordings``' speakers (module docstring).

    Parameters
    ----------
    recordings : dict
        Speaker -> their clean recordings at ``settings.sample_rate``.
    settings : ConversationSettings
    rng : np.random.Generator

    Returns
    -------
    signal : np.ndarray [shape=(n,), dtype=float32]
    turns : list of (start, end, speaker)
        The reference, sorted by start.
    drawn : dict
        What was drawn (speakers, length, SNR, turns and overlaps), JSON-serialisable.
    """
    from ..frontend.augment import active_part, add_noise, coloured_noise

    sr = settings.sample_rate
    pool = sorted(recordings)
    lo, hi = settings.speakers
    if len(pool) < lo:
        raise ParameterError(f"{len(pool)} speakers, fewer than the {lo} a conversation needs")
    n = int(rng.integers(lo, min(hi, len(pool)) + 1))
    who = [pool[i] for i in sorted(rng.choice(len(pool), n, replace=False))]
    gain = {s: 10 ** (rng.uniform(-3, 3) / 20) for s in who}
    length = float(rng.uniform(*settings.seconds))
    pieces: list[tuple[int, np.ndarray, str]] = []
    reference: list[tuple[float, float, str]] = []
    at, end_prev, prev, overlaps = 0, 0, None, 0
    first = [who[i] for i in rng.permutation(n)]  # everyone speaks once before any twice
    while at / sr < length or first:
        if first:
            speaker = first.pop(0)
        else:
            speaker = str(rng.choice([s for s in who if s != prev] or who))
        takes = recordings[speaker]
        y = takes[int(rng.integers(len(takes)))]
        a, b = active_part(y=y, sr=sr)
        y = y[a:b]
        rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) or 1.0
        y = (y / rms * 0.05 * gain[speaker]).astype(np.float32)
        if pieces and rng.random() < settings.overlap:
            prev_len = end_prev - pieces[-1][0]
            most = min(2.0 * sr, 0.5 * min(prev_len, len(y)))
            shift = int(rng.uniform(min(0.3 * sr, most), most)) if most > 0 else 0
            start = end_prev - shift
            overlaps += shift > 0
        else:
            pause = min(rng.exponential(settings.pause_mean), 3.0) if pieces else \
                rng.uniform(0.2, 1.0)
            start = end_prev + int(pause * sr)
        pieces.append((start, y, speaker))
        reference += [(start / sr + s, start / sr + e, speaker)
                      for s, e in speech_turns(y=y, sr=sr)]
        end_prev = max(end_prev, start + len(y))
        at, prev = end_prev, speaker
    total = end_prev + int(rng.uniform(0.2, 1.0) * sr)
    signal = np.zeros(total, np.float32)
    for start, y, _ in pieces:
        signal[start:start + len(y)] += y
    snr = float(rng.uniform(*settings.snr))
    signal = add_noise(y=signal, noise=coloured_noise(n=total, slope=1.0, rng=rng),
                       snr_db=snr, rng=rng)
    drawn = {"speakers": who, "seconds": round(total / sr, 3), "snr": round(snr, 2),
             "turns": len(pieces), "overlapping_turns": int(overlaps)}
    return signal, sorted(reference), drawn


def prepare_conversations(corpus_root: str | os.PathLike, output_dir: str | os.PathLike, *,
                          count: int = 20, settings: ConversationSettings | None = None,
                          seed: int = 0, audio_root: str | os.PathLike | None = None,
                          progress: Callable[[int], None] | None = None,
                          speakers: tuple[int, int] | None = None,
                          seconds: tuple[float, float] | None = None,
                          overlap: float | None = None,
                          snr: tuple[float, float] | None = None) -> "Conversations":
    """Write ``count`` simulated conversations of a data directory's speakers.

    Parameters
    ----------
    corpus_root : path
        A data directory (``wav.scp``, ``utt2spk``) of clean single-speaker recordings.
    output_dir : path
        Gets ``wav/<conversation>.flac``, a data directory of the conversations
        (``wav.scp`` with absolute paths, ``utt2spk`` mapping each to itself, as Kaldi's
        diarization recipes), ``rttm`` (the reference), ``reco2num_spk`` and
        ``conversations.json`` (the call and what was drawn for each).
    count : int
    settings : ConversationSettings
    seed : int
        The same seed gives the same conversations, sample for sample.
    speakers, seconds, overlap, snr : optional
        Fields of :class:`ConversationSettings` to change (``speakers=(2, 6)``, ...).
    audio_root : path, optional
        What relative ``wav.scp`` paths of ``corpus_root`` resolve against.

    Returns
    -------
    Conversations
        What was written.
    """
    import dataclasses

    import soundfile as sf

    from .._io import atomic_write, write_text_atomic
    from ..data.datadir import DataDir, read_data_dir, spk2utt, write_data_dir
    from ..data.rttm import Turn, write_rttm
    from ..frontend.audio import load_ref

    changes = {k: v for k, v in (("speakers", speakers), ("seconds", seconds),
                                 ("overlap", overlap), ("snr", snr)) if v is not None}
    settings = dataclasses.replace(settings or ConversationSettings(), **changes)
    if count < 1:
        raise ParameterError(f"count must be >= 1, got {count}")
    data = read_data_dir(corpus_root)
    by_speaker = spk2utt(data.utt2spk)
    if len(by_speaker) < settings.speakers[0]:
        raise SpeakerGMMError(f"{corpus_root}: {len(by_speaker)} speakers, fewer than the "
                              f"{settings.speakers[0]} a conversation needs")
    sr = settings.sample_rate
    recordings = {s: [load_ref(data.audio_of(u, audio_root), sr=sr)[0] for u in utts]
                  for s, utts in by_speaker.items()}
    out = Path(output_dir)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    wav, rttm, drawn = {}, {}, {}
    for i in range(count):
        name = f"conv{i:04d}"
        signal, turns, what = simulate_conversation(recordings, settings=settings, rng=rng)
        path = (out / "wav" / f"{name}.flac").resolve()
        with atomic_write(path, "wb") as fh:
            sf.write(fh, signal, sr, format="FLAC", subtype="PCM_16")
        wav[name] = str(path)
        rttm[name] = [Turn(round(s, 3), round(e, 3), spk) for s, e, spk in turns]
        drawn[name] = what
        if progress:
            progress(1)
    write_data_dir(out, DataDir(wav_scp=wav, utt2spk={c: c for c in wav}))
    write_rttm(out / "rttm", rttm)
    write_text_atomic(out / "reco2num_spk", "".join(f"{c} {len(drawn[c]['speakers'])}\n"
                                                     for c in sorted(drawn)))
    call = {"source": str(Path(corpus_root).resolve()), "count": count, "seed": seed,
            "settings": {k: getattr(settings, k) for k in settings.__dataclass_fields__}}
    write_text_atomic(out / "conversations.json",
                      json.dumps({"call": call, "conversations": drawn}, indent=2) + "\n")
    return Conversations(data=read_data_dir(out), reference=rttm, paths={
        "conversations": out, "rttm": out / "rttm", "reco2num_spk": out / "reco2num_spk"})
