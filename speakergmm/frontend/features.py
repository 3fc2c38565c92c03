"""MFCC features for speaker recognition: configuration and extraction.

The pipeline for one utterance (``extract_features``)::

    waveform ─▶ pre-emphasis ─▶ |STFT|² ─▶ mel filterbank ─▶ log ─▶ DCT  (MFCC, librosa)
             ─▶ Δ, ΔΔ (HTK regression) ─▶ energy VAD (frame selection) ─▶ normalisation

The mel filterbank is librosa's (``librosa.filters.mel``, cached on disk); the framing,
dB conversion and DCT are those of ``librosa.stft(center=True)``, ``librosa.power_to_db``
and ``librosa.feature.mfcc``, written out in numpy/scipy because librosa's per-call checks
and its import (~2 s) cost more than the transform of a short file. The result equals
``librosa.feature.mfcc(y=preemphasis(y), ...)`` for the same parameters (tested).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from .._io import atomic_write
from ..errors import FeatureError
from .cmvn import normalize
from .config import PRESETS, FeatureConfig
from .signal import frame_signal, sample_problem
from .vad import energy_vad, frame_energy_db

__all__ = ["FeatureConfig", "extract_features", "mfcc", "deltas", "preemphasis",
           "PRESETS"]


# --- signal processing ------------------------------------------------------------------

def preemphasis(*, y: np.ndarray, coef: float = 0.97) -> np.ndarray:
    """First-order pre-emphasis ``y[n] - coef * y[n-1]``.

    The sample before the first is extrapolated linearly as ``2 y[0] - y[1]``, so the first
    output is ``y[0] - coef * (2 y[0] - y[1])``: the same as
    ``librosa.effects.preemphasis(y, coef=coef, zi=-coef * (2 * y[0] - y[1]))``. (librosa's
    default ``zi`` omits the ``-coef`` factor, which only changes sample 0.) Plain numpy,
    because ``lfilter`` costs ~1 ms a call, more than the rest of a short file's features.
    """
    if coef == 0:
        return y
    out = np.empty_like(y)
    prev = 2 * y[0] - y[1] if len(y) > 1 else y[0]
    out[0] = y[0] - coef * prev
    np.subtract(y[1:], coef * y[:-1], out=out[1:])
    return out


def _cache_dir() -> Path:
    env = os.environ.get("SPEAKERGMM_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "speakergmm"


def _periodic_window(name: str, n: int) -> np.ndarray | None:
    """``scipy.signal.get_window(name, n, fftbins=True)`` for the usual windows, without
    importing scipy.signal (over a second of start-up); None for other names."""
    k = 2 * np.pi * np.arange(n) / n
    if name == "hamming":
        return 0.54 - 0.46 * np.cos(k)
    if name in ("hann", "hanning"):
        return 0.5 - 0.5 * np.cos(k)
    return None


@functools.lru_cache(maxsize=16)
def _dct_matrix(n: int, keep: int) -> np.ndarray:
    """The first ``keep`` basis vectors of the orthonormal type-II DCT of length ``n``, as
    an (n, keep) float32 matrix: ``x @ M`` is ``scipy.fft.dct(x, type=2, norm="ortho")``
    truncated to ``keep`` coefficients."""
    k = np.arange(keep)[None, :]
    t = np.arange(n)[:, None]
    m = np.cos(np.pi * k * (2 * t + 1) / (2 * n)) * np.sqrt(2.0 / n)
    m[:, 0] /= np.sqrt(2.0)
    return m.astype(np.float32)


@functools.lru_cache(maxsize=16)
def _analysis(config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Window (zero-padded to n_fft, centred, as librosa.stft does) and librosa's mel
    filterbank, transposed to (n_bins, n_mels).

    Importing librosa's filter module costs ~2 s (scipy.signal, numba), which every
    ``speakergmm verify`` would pay; the filterbank is therefore computed by librosa once
    and kept in the user cache (``$SPEAKERGMM_CACHE``, default ``~/.cache/speakergmm``),
    keyed by its parameters and the librosa version.
    """
    from importlib.metadata import version

    window = _periodic_window(config.window, config.win_length)
    if window is None:
        import librosa

        window = librosa.filters.get_window(config.window, config.win_length, fftbins=True)
    padded = np.zeros(config.n_fft, np.float32)
    left = (config.n_fft - config.win_length) // 2
    padded[left:left + config.win_length] = window
    key = (f"mel-{version('librosa')}-{config.sample_rate}-{config.n_fft}-{config.n_mels}-"
           f"{config.fmin:g}-{config.fmax if config.fmax is not None else 'nyq'}.npy")
    path = _cache_dir() / key
    try:
        mel = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        import librosa

        mel = librosa.filters.mel(sr=config.sample_rate, n_fft=config.n_fft,
                                  n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path, "wb") as fh:
                np.save(fh, mel, allow_pickle=False)
        except OSError:
            pass  # a read-only home: compute it each time, still correct
    if mel.shape != (config.n_mels, 1 + config.n_fft // 2):
        raise FeatureError(f"{path}: cached filterbank has shape {mel.shape}; delete it")
    return padded, np.ascontiguousarray(mel.T, dtype=np.float32)


def mfcc(*, y: np.ndarray, config: FeatureConfig, block: int = 8192) -> np.ndarray:
    """Static MFCCs of a signal already at ``config.sample_rate``.

    Parameters
    ----------
    y : np.ndarray [shape=(n,), dtype=float32]
    config : FeatureConfig
    block : int
        Frames transformed at once; bounds memory on long recordings.

    Returns
    -------
    np.ndarray [shape=(1 + n // hop_length, n_mfcc), dtype=float32]
    """
    window, mel_basis = _analysis(config)
    n_fft, hop = config.n_fft, config.hop_length
    y = preemphasis(y=np.asarray(y, dtype=np.float32), coef=config.preemphasis)
    frames = frame_signal(y, frame_length=n_fft, hop_length=hop, left=n_fft // 2)
    n_frames = frames.shape[0]
    mel = np.empty((n_frames, config.n_mels), dtype=np.float32)
    for b0 in range(0, n_frames, block):
        spec = np.fft.rfft(frames[b0:b0 + block] * window, axis=1)
        power = np.square(spec.real)
        power += np.square(spec.imag)
        np.matmul(power, mel_basis, out=mel[b0:b0 + block])
    # librosa.power_to_db(mel) (amin 1e-10, ref 1, top_db 80), written out in float32 in
    # place because librosa's version costs more than the FFT; finite on digital silence.
    np.maximum(mel, 1e-10, out=mel)
    np.log10(mel, out=mel)
    mel *= 10.0
    np.maximum(mel, mel.max() - 80.0, out=mel)
    # librosa.feature.mfcc(S=mel.T, n_mfcc, lifter), written out: a type-II orthonormal DCT
    # and librosa's sinusoidal lifter (importing librosa.feature costs more than a file).
    # As a product with the DCT matrix: scipy.fft's import alone (~0.2 s) costs more than
    # a recording's transform, and every verify / identify pays it.
    cep = mel @ _dct_matrix(config.n_mels, config.n_mfcc)
    if config.lifter > 0:
        n = np.arange(1, 1 + config.n_mfcc, dtype=cep.dtype)
        cep *= 1 + (config.lifter / 2) * np.sin(np.pi * n / config.lifter)
    return np.ascontiguousarray(cep, dtype=np.float32)


def deltas(x: np.ndarray, *, width: int = 5, order: int = 2) -> np.ndarray:
    """Append HTK/Kaldi regression deltas: ``Δc_t = Σ_n n (c_{t+n} − c_{t−n}) / (2 Σ_n n²)``
    for n = 1..width//2, edge frames repeated; ΔΔ is Δ applied to Δ.

    Parameters
    ----------
    x : np.ndarray [shape=(frames, d)]
    width : int
        Odd window length.
    order : int
        0, 1 or 2.

    Returns
    -------
    np.ndarray [shape=(frames, d * (order + 1))]
    """
    half = width // 2
    denom = 2.0 * sum(n * n for n in range(1, half + 1))
    if not order:
        return x
    t, d = x.shape
    out = np.empty((t, d * (order + 1)), dtype=x.dtype)
    out[:, :d] = x
    padded = np.empty((t + 2 * half, d), dtype=x.dtype)
    for k in range(1, order + 1):
        padded[half:half + t] = out[:, (k - 1) * d:k * d]
        padded[:half] = padded[half]            # repeat the edge frames
        padded[half + t:] = padded[half + t - 1]
        delta = out[:, k * d:(k + 1) * d]
        delta[:] = padded[half + 1:half + 1 + t] - padded[half - 1:half - 1 + t]
        for n in range(2, half + 1):
            delta += n * (padded[half + n:half + n + t] - padded[half - n:half - n + t])
        delta /= denom
    return out


def extract_features(
    *,
    y: np.ndarray,
    sr: int,
    config: FeatureConfig,
    name: str | None = None,
    return_vad: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Speaker-recognition features of one utterance.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono signal; resampled here if ``sr`` differs from ``config.sample_rate``.
    sr : int
        Its sampling rate.
    config : FeatureConfig
    name : str, optional
        Utterance id or path, used in error messages.
    return_vad : bool
        Also return the VAD mask over all frames.

    Returns
    -------
    features : np.ndarray [shape=(speech_frames, config.dim), dtype=float32]
        Finite, C-contiguous.
    vad : np.ndarray [shape=(frames,), dtype=bool]
        Only with ``return_vad``.

    Raises
    ------
    FeatureError
        If the utterance is too short or VAD finds fewer than ``min_speech_frames``
        speech frames (digital silence, a near-silent recording).
    """
    from .audio import resample

    label = name or "utterance"
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise FeatureError(f"{label}: expected a mono signal of shape (n,), got {y.shape}")
    problem = sample_problem(y)
    if problem:
        raise FeatureError(f"{label}: {problem}")
    if sr != config.sample_rate:
        y = resample(y, orig_sr=sr, target_sr=config.sample_rate)
    n_frames = config.n_frames(len(y))
    if n_frames < config.min_speech_frames:
        raise FeatureError(f"{label}: too short ({len(y) / config.sample_rate:.3f} s, "
                           f"{n_frames} frames; at least {config.min_speech_frames} needed)")
    static = mfcc(y=y, config=config)
    feats = deltas(static, width=config.delta_width, order=config.delta_order)
    if config.vad == "energy":
        energy = frame_energy_db(y=y, hop_length=config.hop_length, win_length=config.win_length)
        speech = energy_vad(energy_db=energy, threshold_db=config.vad_threshold_db,
                            floor_db=config.vad_floor_db, context=config.vad_context)
        kept = int(speech.sum())
        if kept < config.min_speech_frames:
            raise FeatureError(
                f"{label}: no speech found by VAD ({kept} of {n_frames} frames kept; loudest "
                f"frame {energy.max():.1f} dBFS, floor {config.vad_floor_db:g} dBFS) - "
                "check the recording, or lower vad_floor_db in the feature config")
        feats = feats[speech]
    else:
        speech = np.ones(n_frames, dtype=bool)
    feats = normalize(feats, method=config.norm, window=config.norm_window)
    feats = np.ascontiguousarray(feats, dtype=np.float32)
    return (feats, speech) if return_vad else feats
