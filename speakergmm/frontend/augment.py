"""Data augmentation, Kaldi style: degraded copies of a data directory's recordings for
multi-condition training (Snyder et al. 2018's recipe: additive noise, babble, reverberation;
and the channels a user's audio comes through: telephone codecs, lossy compression, level).

The signal functions are keyword-only and pure (a seeded ``rng`` is passed in);
:func:`augment_data_dir` applies them to every utterance of a data directory and writes an
augmented data directory (``speakergmm augment``): each copy a FLAC file, its utterance id
the source's with Kaldi's suffix (``-noise``, ``-babble``, ``-reverb``, ``-mulaw``, ...), the
same speaker, and in ``utt2aug`` what was done to it with every drawn value, so that a copy
is made again bit for bit from the same seed.

Kinds (:data:`KINDS`):

``noise``
    stationary noise at an SNR drawn from ``snr_noise`` (dB): the recordings of a noise data
    directory (``noise_dir``; MUSAN's ``noise`` part in Kaldi's recipe), or, without one,
    synthetic coloured noise (white, pink or brown, spectral slope drawn).
``babble``
    3 to 7 other speakers of the same data directory talking at once, at ``snr_babble``.
``reverb``
    a simulated shoebox room (image method, ``pyroomacoustics``: the optional extra
    ``[rooms]``), RT60 drawn from ``rt60``, source and microphone placed at random.
``mulaw``, ``alaw``
    G.711 telephone speech: band-limited to 300-3400 Hz, resampled to 8 kHz, companded to
    8 bits and back.
``ogg``, ``mp3``
    lossy compression at a low bit rate, through libsndfile (soundfile).
``level``
    a gain drawn from ``gain_db`` and a DC offset.
``excerpt``
    a short test: an excerpt of ``excerpt_seconds`` from the recording's active part (what
    a quality-aware calibration learns the effect of a test's length from).

Copies keep the source's sampling rate (a telephone copy of 16 kHz audio is 16 kHz audio
with nothing above 4 kHz, as a phone call recorded at 16 kHz is).
"""

from __future__ import annotations

import io
import json
import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import atomic_write, output_lock, write_text_atomic
from ..data.datadir import DataDir, read_data_dir, spk2utt
from ..errors import AudioError, ParameterError, SpeakerGMMError

__all__ = ["KINDS", "add_noise", "coloured_noise", "babble", "reverberate",
           "room_impulse_response", "telephone", "compress", "change_level", "active_part",
           "excerpt", "AugmentConfig", "augment_data_dir"]

KINDS = ("noise", "babble", "reverb", "mulaw", "alaw", "ogg", "mp3", "level", "excerpt")

_EXTRA_ROOMS = "pip install -e '.[rooms]' (pyroomacoustics)"


def _power(y: np.ndarray) -> float:
    return float(np.mean(np.square(y, dtype=np.float64)))


def _fit(noise: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of ``noise`` from a random start, looped when it is shorter."""
    if len(noise) == 0:
        raise AudioError("an empty noise recording")
    start = int(rng.integers(len(noise)))
    reps = -(-(start + n) // len(noise))
    return np.tile(noise, reps)[start:start + n]


def add_noise(*, y: np.ndarray, noise: np.ndarray, snr_db: float,
              rng: np.random.Generator) -> np.ndarray:
    """``y`` plus ``noise`` (a random stretch of it, looped if short) scaled so that the
    ratio of their powers is ``snr_db``; the sum is scaled down only if it would clip.

    Returns
    -------
    np.ndarray [shape=y.shape, dtype=float32]
    """
    n = _fit(np.asarray(noise, np.float32), len(y), rng)
    p_y, p_n = _power(y), _power(n)
    if p_n == 0.0 or p_y == 0.0:
        return np.asarray(y, np.float32).copy()
    out = y + n * np.sqrt(p_y / (p_n * 10.0 ** (snr_db / 10.0)))
    return _unclipped(out)


def _unclipped(y: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    return np.asarray(y / peak * 0.99 if peak > 0.99 else y, np.float32)


def coloured_noise(*, n: int, slope: float, rng: np.random.Generator) -> np.ndarray:
    """Stationary Gaussian noise whose power falls as ``f ** -slope`` (0 white, 1 pink,
    2 brown: the low-frequency rumble of cars and ventilation), unit power.

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float32]
    """
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spectrum / f ** (slope / 2.0), n)
    return np.asarray(x / np.sqrt(max(_power(x), 1e-20)), np.float32)


def babble(*, talkers: Sequence[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """The sum of ``talkers`` (each a random stretch of ``n`` samples, at equal power):
    several people talking at once.

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float32]
    """
    if not talkers:
        raise ParameterError("babble needs at least one other talker")
    out = np.zeros(n, np.float64)
    for x in talkers:
        part = _fit(np.asarray(x, np.float32), n, rng)
        out += part / np.sqrt(max(_power(part), 1e-20))
    return np.asarray(out, np.float32)


def reverberate(*, y: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``y`` convolved with a room impulse response, aligned on the direct path (its
    peak) and brought back to ``y``'s power, as Kaldi's ``wav-reverberate`` does.

    Returns
    -------
    np.ndarray [shape=y.shape, dtype=float32]
    """
    from scipy.signal import fftconvolve

    rir = np.asarray(rir, np.float64)
    delay = int(np.argmax(np.abs(rir)))
    wet = fftconvolve(np.asarray(y, np.float64), rir)[delay:delay + len(y)]
    p_y, p_w = _power(y), _power(wet)
    if p_w > 0.0:
        wet *= np.sqrt(p_y / p_w)
    return _unclipped(wet)


def room_impulse_response(*, sr: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """The impulse response of a shoebox room with reverberation time ``rt60`` seconds
    (image method, pyroomacoustics; Sabine's formula gives the wall absorption): a room
    3-10 m by 3-8 m by 2.5-4 m, source and microphone at random places at least 1 m apart.

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float32]
    """
    try:
        import pyroomacoustics as pra
    except ImportError:
        raise SpeakerGMMError(f"simulated rooms need the optional extra: {_EXTRA_ROOMS}") \
            from None
    dims = np.array([rng.uniform(3, 10), rng.uniform(3, 8), rng.uniform(2.5, 4)])
    absorption, max_order = pra.inverse_sabine(rt60, dims)
    room = pra.ShoeBox(dims, fs=sr, materials=pra.Material(absorption),
                       max_order=min(max_order, 30))
    margin = 0.5
    while True:
        src = rng.uniform(margin, dims - margin)
        mic = rng.uniform(margin, dims - margin)
        if np.linalg.norm(src - mic) >= 1.0:
            break
    room.add_source(src)
    room.add_microphone(mic)
    room.compute_rir()
    return np.asarray(room.rir[0][0], np.float32)


def _g711(x: np.ndarray, law: str) -> np.ndarray:
    """8-bit G.711 companding and expansion (continuous µ-law / A-law, 256 levels)."""
    x = np.clip(x, -1.0, 1.0)
    if law == "mulaw":
        mu = 255.0
        c = _levels(np.log1p(mu * np.abs(x)) / np.log1p(mu))
        return _sign(x) * np.expm1(c * np.log1p(mu)) / mu
    a = 87.6
    ax = np.abs(x)
    small = ax < 1.0 / a
    c = _levels(np.where(small, a * ax, 1.0 + np.log(np.maximum(a * ax, 1.0)))
                / (1.0 + np.log(a)))
    ac = c * (1.0 + np.log(a))
    return _sign(x) * np.where(ac < 1.0, ac / a, np.exp(ac - 1.0) / a)


def _sign(x: np.ndarray) -> np.ndarray:
    return np.where(x < 0, -1.0, 1.0)  # (no third level for 0: G.711 has none)


def _levels(c: np.ndarray) -> np.ndarray:
    """A companded magnitude in [0, 1] on 7 bits (128 levels, the middle of each step):
    with the sign, G.711's 8 bits."""
    return (np.minimum(np.floor(c * 128.0), 127.0) + 0.5) / 128.0


def telephone(*, y: np.ndarray, sr: int, law: str = "mulaw") -> np.ndarray:
    """``y`` as through a G.711 telephone channel: 300-3400 Hz, 8 kHz, 8-bit ``law``
    ("mulaw" or "alaw") companding, then back at ``sr``.

    Returns
    -------
    np.ndarray [shape=y.shape, dtype=float32]
    """
    from scipy.signal import butter, sosfilt

    from .audio import resample

    if law not in ("mulaw", "alaw"):
        raise ParameterError(f"law must be 'mulaw' or 'alaw', not {law!r}")
    x = resample(np.asarray(y, np.float32), orig_sr=sr, target_sr=8000)
    x = sosfilt(butter(4, [300, 3400], btype="bandpass", fs=8000, output="sos"), x)
    x = _g711(x, law)
    out = resample(np.asarray(x, np.float32), orig_sr=8000, target_sr=sr)
    return _same_length(out, len(y))


def _same_length(x: np.ndarray, n: int) -> np.ndarray:
    x = np.asarray(x[:n], np.float32)
    return np.pad(x, (0, n - len(x))) if len(x) < n else x


def compress(*, y: np.ndarray, sr: int, codec: str = "ogg",
             quality: float = 0.1) -> np.ndarray:
    """``y`` encoded by a lossy codec and decoded again, in memory: "ogg" (Vorbis) or
    "mp3", at ``quality`` (libsndfile's compression level, 0 best to 1 smallest).

    Returns
    -------
    np.ndarray [shape=y.shape, dtype=float32]
    """
    import soundfile as sf

    formats = {"ogg": ("OGG", "VORBIS"), "mp3": ("MP3", "MPEG_LAYER_III")}
    if codec not in formats:
        raise ParameterError(f"codec must be one of {', '.join(formats)}, not {codec!r}")
    fmt, subtype = formats[codec]
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", samplerate=sr, channels=1, format=fmt, subtype=subtype,
                      compression_level=quality) as fh:
        fh.write(np.asarray(y, np.float32))
    buf.seek(0)
    out, _ = sf.read(buf, dtype="float32")
    return _same_length(out, len(y))


def active_part(*, y: np.ndarray, sr: int) -> tuple[int, int]:
    """First sample and end (exclusive) of a recording's active part: from the first to the
    last 10 ms frame within 35 dB of its loudest; the whole of a recording shorter than a
    frame."""
    hop = max(sr // 100, 1)
    frames = np.asarray(y)[: len(y) // hop * hop].astype(np.float64).reshape(-1, hop)
    if len(frames) == 0:
        return 0, len(y)
    db = 10.0 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
    on = np.flatnonzero(db > db.max() - 35.0)
    return int(on[0]) * hop, int(on[-1] + 1) * hop


def excerpt(*, y: np.ndarray, sr: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """``seconds`` of ``y`` from within its :func:`active_part`, placed at random; all of
    it when it is shorter.

    Returns
    -------
    np.ndarray [shape=(min(len(y), seconds * sr),), dtype=float32]
    """
    y = np.asarray(y, np.float32)
    n = min(int(round(seconds * sr)), len(y))
    a, b = active_part(y=y, sr=sr)
    lo, hi = (a, b - n) if b - a >= n else (max(0, b - n), min(a, len(y) - n))
    start = int(rng.integers(lo, max(hi, lo) + 1))
    return y[start:start + n]


def change_level(*, y: np.ndarray, gain_db: float, dc: float = 0.0) -> np.ndarray:
    """``y`` scaled by ``gain_db`` with ``dc`` added (clipped at full scale, as a
    recorder with its gain set too high clips).

    Returns
    -------
    np.ndarray [shape=y.shape, dtype=float32]
    """
    return np.asarray(np.clip(y * 10.0 ** (gain_db / 20.0) + dc, -1.0, 1.0), np.float32)


# --- a data directory -----------------------------------------------------------------------

@dataclass(frozen=True)
class AugmentConfig:
    """What :func:`augment_data_dir` draws from (ranges are uniform, inclusive)."""

    snr_noise: tuple[float, float] = (0.0, 15.0)
    snr_babble: tuple[float, float] = (13.0, 20.0)
    rt60: tuple[float, float] = (0.2, 0.9)
    gain_db: tuple[float, float] = (-20.0, 6.0)
    codec_quality: tuple[float, float] = (0.0, 0.6)
    babble_talkers: tuple[int, int] = (3, 7)
    excerpt_seconds: tuple[float, float] = (0.8, 3.5)


def _rng(seed: int, utt: str, kind: str) -> np.random.Generator:
    """A generator of its own for each copy: the same copy whatever else is made."""
    return np.random.default_rng([seed, zlib.crc32(f"{utt}\0{kind}".encode())])


def augment_data_dir(data: DataDir | str | os.PathLike, out: str | os.PathLike, *,
                     kinds: Sequence[str], noise_dir: str | os.PathLike | None = None,
                     config: AugmentConfig = AugmentConfig(), seed: int = 0,
                     audio_root: str | os.PathLike | None = None,
                     include_original: bool = False,
                     progress: Callable[[int], None] | None = None) -> DataDir:
    """Write a degraded copy of every utterance of ``data`` for each of ``kinds`` into the
    data directory ``out``.

    Parameters
    ----------
    data : DataDir or path
    out : path
        The augmented data directory: ``wav/<utt>-<kind>.flac``, ``wav.scp`` (absolute
        paths), ``utt2spk``, ``spk2utt``, ``utt2aug`` (``<utt> <json>``: the source, the
        kind and every drawn value) and ``augment.json`` (the call).
    kinds : sequence of str
        Of :data:`KINDS`.
    noise_dir : path, optional
        A data directory of noise recordings for ``noise`` (default: coloured noise).
    config : AugmentConfig
    seed : int
        The same seed makes the same copies, bit for bit.
    audio_root : path, optional
        Directory relative ``wav.scp`` paths resolve against.
    include_original : bool
        Also list the source utterances, unchanged (their audio where it is, paths made
        absolute; Kaldi's ``--include-original-data``): the clean and degraded data in one
        directory, one feature archive, for multi-condition training.
    progress : callable, optional
        Called with the number of copies just written.

    Returns
    -------
    DataDir
        The augmented data directory.
    """
    from .audio import load_ref

    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ParameterError(f"unknown augmentation {unknown[0]!r}; choose from "
                             f"{', '.join(KINDS)}" if unknown else "no augmentation asked")
    data = data if isinstance(data, DataDir) else read_data_dir(data)
    out = Path(out)
    utts = data.utterances

    def read(d: DataDir, utt: str, root) -> tuple[np.ndarray, int]:
        return load_ref(d.audio_of(utt, root))

    noises = None
    if "noise" in kinds and noise_dir is not None:
        nd = read_data_dir(noise_dir)
        noises = {u: read(nd, u, audio_root) for u in nd.utterances}
    speakers = sorted(set(data.utt2spk.values()))
    if "babble" in kinds and len(speakers) < 2:
        raise SpeakerGMMError(f"{data.path}: babble is made of other speakers, and it has "
                              f"only {len(speakers)}")
    by_speaker = spk2utt(data.utt2spk)
    wav, utt2spk, utt2aug = {}, {}, {}
    with output_lock(out):
        (out / "wav").mkdir(parents=True, exist_ok=True)
        for utt in utts:
            y, sr = read(data, utt, audio_root)
            for kind in kinds:
                rng = _rng(seed, utt, kind)
                z, drawn = _one(kind, y, sr, rng, config, noises, speakers, by_speaker,
                                data.utt2spk[utt],
                                lambda u: read(data, u, audio_root))
                new = f"{utt}-{kind}"
                path = (out / "wav" / f"{new}.flac").resolve()
                _write_flac(path, z, sr)
                wav[new], utt2spk[new] = str(path), data.utt2spk[utt]
                utt2aug[new] = json.dumps({"source": utt, "kind": kind, **drawn},
                                          sort_keys=True)
                if progress:
                    progress(1)
        segments = None
        if include_original:
            wav, utt2spk, segments = _with_original(data, audio_root, wav, utt2spk)
        result = DataDir(wav_scp=wav, utt2spk=utt2spk, segments=segments)
        from ..data.datadir import write_data_dir

        write_data_dir(out, result)
        write_text_atomic(out / "utt2aug", "".join(f"{u} {utt2aug[u]}\n"
                                                   for u in sorted(utt2aug)))
        write_text_atomic(out / "augment.json", json.dumps({
            "source": str(data.path) if data.path is not None else None, "kinds": list(kinds),
            "seed": seed, "noise_dir": None if noise_dir is None else str(noise_dir),
            "include_original": include_original,
            "config": {k: list(v) for k, v in vars(config).items()}}, indent=2) + "\n")
    return read_data_dir(out)


def _with_original(data: DataDir, audio_root, wav: dict, utt2spk: dict):
    """The copies' ``wav.scp`` and ``utt2spk`` with the source's utterances added, and the
    segments of both when the source has segments (each copy is a whole file)."""
    originals = {}
    for rec, entry in data.wav_scp.items():
        if not entry.endswith("|"):
            if audio_root is not None and not os.path.isabs(entry):
                entry = os.path.join(os.fspath(audio_root), entry)
            entry = os.path.abspath(entry)
        originals[rec] = entry
    clash = sorted(set(originals) & set(wav))
    if clash:
        raise SpeakerGMMError(f"{data.path}: the recording id {clash[0]!r} is also the id of "
                              "a degraded copy; rename it")
    segments = None
    if data.segments is not None:
        segments = {**{u: data.segments[u] for u in data.utt2spk},
                    **{u: (u, 0.0, -1.0) for u in wav}}
    return {**originals, **wav}, {**data.utt2spk, **utt2spk}, segments


def _write_flac(path: Path, y: np.ndarray, sr: int) -> None:
    import soundfile as sf

    with atomic_write(path, "wb") as fh:
        sf.write(fh, y, sr, format="FLAC", subtype="PCM_16")


def _one(kind, y, sr, rng, config, noises, speakers, by_speaker, speaker, read):
    """One degraded copy of ``y`` and the values drawn for it."""
    from .audio import resample

    def uniform(lo_hi) -> float:
        return round(float(rng.uniform(*lo_hi)), 3)

    if kind == "noise":
        snr = uniform(config.snr_noise)
        if noises:
            name = sorted(noises)[int(rng.integers(len(noises)))]
            noise, nsr = noises[name]
            noise = resample(noise, orig_sr=nsr, target_sr=sr)
            return add_noise(y=y, noise=noise, snr_db=snr, rng=rng), {"snr": snr,
                                                                      "noise": name}
        slope = uniform((0.0, 2.0))
        noise = coloured_noise(n=len(y), slope=slope, rng=rng)
        return add_noise(y=y, noise=noise, snr_db=snr, rng=rng), {"snr": snr,
                                                                  "slope": slope}
    if kind == "babble":
        snr = uniform(config.snr_babble)
        others = [s for s in speakers if s != speaker]
        count = min(int(rng.integers(config.babble_talkers[0], config.babble_talkers[1] + 1)),
                    len(others))
        chosen = rng.choice(len(others), size=count, replace=False)
        talkers, names = [], []
        for i in sorted(chosen):
            utts = by_speaker[others[i]]
            u = utts[int(rng.integers(len(utts)))]
            x, xsr = read(u)
            talkers.append(resample(x, orig_sr=xsr, target_sr=sr))
            names.append(u)
        noise = babble(talkers=talkers, n=len(y), rng=rng)
        return add_noise(y=y, noise=noise, snr_db=snr, rng=rng), {"snr": snr,
                                                                  "talkers": names}
    if kind == "reverb":
        rt60 = uniform(config.rt60)
        return reverberate(y=y, rir=room_impulse_response(sr=sr, rt60=rt60, rng=rng)), \
            {"rt60": rt60}
    if kind in ("mulaw", "alaw"):
        return telephone(y=y, sr=sr, law=kind), {}
    if kind in ("ogg", "mp3"):
        quality = uniform(config.codec_quality)
        return compress(y=y, sr=sr, codec=kind, quality=quality), {"quality": quality}
    if kind == "excerpt":
        seconds = uniform(config.excerpt_seconds)
        return excerpt(y=y, sr=sr, seconds=seconds, rng=rng), {"seconds": seconds}
    gain = uniform(config.gain_db)
    dc = round(float(rng.uniform(-0.02, 0.02)), 4)
    return change_level(y=y, gain_db=gain, dc=dc), {"gain_db": gain, "dc": dc}
