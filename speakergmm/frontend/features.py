"""MFCC features for speaker recognition: configuration and extraction.

The pipeline for one utterance (``extract_features``)::

    waveform ─▶ pre-emphasis ─▶ |STFT|² ─▶ mel filterbank ─▶ log ─▶ DCT  (MFCC, librosa)
             ─▶ Δ, ΔΔ (HTK regression) ─▶ energy VAD (frame selection) ─▶ normalisation

and, where the config asks, spectral subtraction or Wiener filtering on the mel power before
the log (``denoise``) and RASTA filtering of the cepstra before the Δs (``rasta``).

The mel filterbank is librosa's (``librosa.filters.mel``, cached on disk); the framing,
dB conversion and DCT are those of ``librosa.stft(center=True)``, ``librosa.power_to_db``
and ``librosa.feature.mfcc``, written out in numpy/scipy because librosa's per-call checks
and its import (~2 s) cost more than the transform of a short file. The result equals
``librosa.feature.mfcc(y=preemphasis(y), ...)`` for the same parameters (tested).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .._io import atomic_write
from ..errors import FeatureError
from .cmvn import normalize
from .config import PRESETS, FeatureConfig
from .signal import GROUP, frame_view, sample_problem
from .vad import MIN_LEVEL_DBFS, MIN_RANGE_DB, energy_spread, energy_vad, frames_energy_db

__all__ = ["FeatureConfig", "extract_features", "features_from_blocks", "mfcc", "deltas",
           "preemphasis", "subtract_noise", "wiener_filter", "rasta_filter", "PRESETS"]


# --- signal processing ------------------------------------------------------------------

def preemphasis(*, y: np.ndarray, coef: float = 0.97, prev: float | None = None) -> np.ndarray:
    """First-order pre-emphasis ``y[n] - coef * y[n-1]``.

    The sample before the first is ``prev`` (the end of the previous block of a signal),
    or, at the start of a signal, extrapolated linearly as ``2 y[0] - y[1]``, so the first
    output is ``y[0] - coef * (2 y[0] - y[1])``: the same as
    ``librosa.effects.preemphasis(y, coef=coef, zi=-coef * (2 * y[0] - y[1]))``. (librosa's
    default ``zi`` omits the ``-coef`` factor, which only changes sample 0.) Plain numpy,
    because ``lfilter`` costs ~1 ms a call, more than the rest of a short file's features.
    """
    if coef == 0:
        return y
    out = np.empty_like(y)
    if prev is None:
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
    import librosa  # (its lazy loader imports nothing else here: 1 ms, where
    # importlib.metadata's version() took 30-40 ms of every verify)

    window = _periodic_window(config.window, config.win_length)
    if window is None:
        window = librosa.filters.get_window(config.window, config.win_length, fftbins=True)
    padded = np.zeros(config.n_fft, np.float32)
    left = (config.n_fft - config.win_length) // 2
    padded[left:left + config.win_length] = window
    key = (f"mel-{librosa.__version__}-{config.sample_rate}-{config.n_fft}-{config.n_mels}-"
           f"{config.fmin:g}-{config.fmax if config.fmax is not None else 'nyq'}.npy")
    path = _cache_dir() / key
    try:
        mel = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
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


def mfcc(*, y: np.ndarray, config: FeatureConfig, block: int = GROUP,
         return_energy: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Static MFCCs of a signal already at ``config.sample_rate``.

    Parameters
    ----------
    y : np.ndarray [shape=(n,), dtype=float32]
    config : FeatureConfig
    block : int
        Frames transformed at once; bounds memory on long recordings.
    return_energy : bool
        Also return each frame's energy (:func:`~.vad.frame_energy_db`'s), from the
        same pass over the signal.

    Returns
    -------
    np.ndarray [shape=(1 + n // hop_length, n_mfcc), dtype=float32]
    energy : np.ndarray [shape=(1 + n // hop_length,), dtype=float64]
        Only with ``return_energy``.
    """
    frames = _FramePass(config, block=block, energy=return_energy)
    frames.push(np.asarray(y, dtype=np.float32))
    mel, energy, _ = frames.finish()
    cep = _cepstra(mel, config)
    return (cep, energy) if return_energy else cep


class _FramePass:
    """The per-frame half of feature extraction (mel power spectrum and VAD energy of every
    frame), fed a signal block by block, so that a long recording is never held whole.

    Frames are those of :func:`~.signal.frame_signal` over the whole signal (librosa's
    ``center=True``), transformed in groups of ``block`` frames counted from the first:
    the same groups, and so the same float32 results bit for bit, however the signal is
    cut into blocks. Memory: two groups of samples and the per-frame results.
    """

    def __init__(self, config: FeatureConfig, *, block: int = GROUP, energy: bool = True):
        self.config, self.block, self.energy = config, block, energy
        self.window, self.mel_basis = _analysis(config)
        self.n_fft, self.hop = config.n_fft, config.hop_length
        self.left = self.n_fft // 2   # zeros before the signal (centred frames)
        # the signal so far, zero-padded in front, pre-emphasised and raw, from sample p0
        self.pre = np.zeros(self.left, np.float32)
        self.raw = np.zeros(self.left, np.float32)
        self.p0 = 0
        self.n = 0           # samples pushed
        self.done = 0        # frames transformed
        self.last = None     # the last raw sample (pre-emphasis state)
        self.held = np.zeros(0, np.float32)  # a first sample waiting for its successor
        self.mel: list[np.ndarray] = []
        self.energies: list[np.ndarray] = []

    def push(self, y: np.ndarray) -> None:
        """Add the next samples (float32, mono, at the config's rate)."""
        y = np.asarray(y, dtype=np.float32)
        if self.last is None:  # the first sample's predecessor is extrapolated from y[1]
            y = np.concatenate([self.held, y]) if self.held.size else y
            if y.size < 2:
                self.held = y
                return
        self._append(y)
        self._transform(final=False)

    def finish(self) -> tuple[list[np.ndarray], np.ndarray | None, int]:
        """``(mel power groups [(frames_i, n_mels) float32], energies (frames,) dBFS or
        None, samples)`` once the whole signal is pushed."""
        if self.last is None and self.held.size:
            self._append(self.held)
        tail = np.zeros(self.n_fft, np.float32)  # zeros after the signal
        self.pre = np.concatenate([self.pre, tail])
        self.raw = np.concatenate([self.raw, tail])
        self._transform(final=True)
        energy = np.concatenate(self.energies) if self.energy and self.energies else None
        mel, self.mel = self.mel, []
        return mel, energy, self.n

    def _append(self, y: np.ndarray) -> None:
        pre = preemphasis(y=y, coef=self.config.preemphasis, prev=self.last)
        self.last = y[-1]
        self.pre = np.concatenate([self.pre, pre])
        self.raw = np.concatenate([self.raw, y])
        self.n += y.size

    def _transform(self, *, final: bool) -> None:
        total = 1 + self.n // self.hop  # frames of the whole signal, once it is all in
        while True:
            stop = min(self.done + self.block, total) if final else self.done + self.block
            if stop <= self.done:
                break
            # the last sample the group reaches, in padded coordinates
            if not final and (stop - 1) * self.hop + self.n_fft > self.p0 + self.pre.size:
                break
            self._group(self.done, stop)
            self.done = stop
        keep = self.done * self.hop - self.p0  # samples no later frame needs are dropped
        if keep > 0 and not final:
            self.pre, self.raw, self.p0 = self.pre[keep:], self.raw[keep:], self.p0 + keep

    def _group(self, start: int, stop: int) -> None:
        at = start * self.hop - self.p0
        span = (stop - start - 1) * self.hop + self.n_fft
        frames = frame_view(self.pre[at:at + span], frame_length=self.n_fft,
                            hop_length=self.hop)
        spec = np.fft.rfft(frames * self.window, axis=1)
        power = np.square(spec.real)
        power += np.square(spec.imag)
        self.mel.append(power @ self.mel_basis)
        if self.energy:
            win = self.config.win_length
            off = at + self.left - win // 2
            raw = frame_view(self.raw[off:off + (stop - start - 1) * self.hop + win],
                             frame_length=win, hop_length=self.hop)
            self.energies.append(frames_energy_db(raw))


#: Spectral subtraction: the noise estimate is the mean mel power of the quietest
#: ``_NOISE_SHARE`` of frames; ``_OVERSUBTRACT`` times it is subtracted, and no band falls
#: below ``_SPECTRAL_FLOOR`` times it (Berouti, Schwartz and Makhoul 1979).
_NOISE_SHARE = 0.1
_OVERSUBTRACT = 2.0
_SPECTRAL_FLOOR = 0.01
#: Wiener filtering: the decision-directed smoothing of the a priori SNR and its floor
#: (-15 dB), Ephraim and Malah (1984)'s values.
_WIENER_ALPHA = 0.98
_WIENER_MIN_SNR = 10 ** (-15 / 10)


def _noise_power(mel_power: list[np.ndarray], share: float) -> np.ndarray | None:
    """The stationary noise's power in each band: the mean over the ``share`` of frames of
    least total power (the pauses of speech); None for no frame."""
    total = np.concatenate([g.sum(axis=1, dtype=np.float64) for g in mel_power])
    if total.size == 0:
        return None
    quiet = total <= np.quantile(total, share)
    noise = np.zeros(mel_power[0].shape[1], np.float64)
    row = 0
    for g in mel_power:
        noise += g[quiet[row:row + len(g)]].sum(axis=0, dtype=np.float64)
        row += len(g)
    return noise / max(int(quiet.sum()), 1)


def subtract_noise(*, mel_power: list[np.ndarray], share: float = _NOISE_SHARE,
                   oversubtract: float = _OVERSUBTRACT,
                   floor: float = _SPECTRAL_FLOOR) -> None:
    """Spectral subtraction on the mel power spectrum, in place.

    The noise is taken as stationary over the recording: its power in each band is the
    mean over the ``share`` of frames of least total power (the pauses of speech). Each
    band keeps ``max(P - oversubtract * N, floor * N)``: over-subtraction removes the
    noise's peaks as well as its mean, and the floor keeps the log finite and the musical
    noise low (Berouti, Schwartz and Makhoul 1979).

    Parameters
    ----------
    mel_power : list of np.ndarray [shape=(frames_i, n_mels), dtype=float32]
        Consecutive groups of frames of one recording, modified in place.
    share, oversubtract, floor : float
    """
    noise = _noise_power(mel_power, share)
    if noise is None:
        return
    noise = noise.astype(np.float32)
    for g in mel_power:
        np.maximum(g - np.float32(oversubtract) * noise, np.float32(floor) * noise, out=g)


def wiener_filter(*, mel_power: list[np.ndarray], share: float = _NOISE_SHARE,
                  alpha: float = _WIENER_ALPHA, min_snr: float = _WIENER_MIN_SNR) -> None:
    """Wiener filtering of the mel power spectrum, in place, with the decision-directed
    a priori SNR of Ephraim and Malah (1984).

    The noise power ``N`` of each band is that of :func:`subtract_noise`. Frame by frame,
    the a priori SNR is ``ξ_t = α G²_{t-1} P_{t-1} / N + (1 - α) max(P_t / N - 1, 0)``,
    floored at ``min_snr``, and the band keeps ``G_t² P_t`` with the gain
    ``G_t = ξ_t / (1 + ξ_t)``: smoother over time than subtraction, so with less musical
    noise.

    ``mel_power`` is as for :func:`subtract_noise` (modified in place); ``share`` is its
    noise share, ``alpha`` the smoothing and ``min_snr`` the floor of ``ξ``.
    """
    noise = _noise_power(mel_power, share)
    if noise is None:
        return
    noise = np.maximum(noise, 1e-20)
    previous = np.zeros_like(noise)  # G² P of the frame before, over N
    for g in mel_power:
        post = g.astype(np.float64) / noise  # a posteriori SNR of each frame and band
        for t in range(len(g)):  # (the recursion runs over frames: one row at a time)
            xi = np.maximum(alpha * previous + (1 - alpha) * np.maximum(post[t] - 1, 0),
                            min_snr)
            gain = xi / (1 + xi)
            previous = gain * gain * post[t]
            post[t] = previous
        g[:] = (post * noise).astype(np.float32)


#: RASTA band-pass (Hermansky and Morgan 1994, as rastamat's ``rastafilt`` and SIDEKIT):
#: a 5-tap regression numerator and a pole at 0.94.
_RASTA_NUMERATOR = np.array([0.2, 0.1, 0.0, -0.1, -0.2])
_RASTA_POLE = 0.94
_RASTA_BLOCK = 128  # frames of the recursion solved at once


def rasta_filter(x: np.ndarray) -> np.ndarray:
    """RASTA-filter feature trajectories over time (each column on its own).

    ``y[t] = 0.94 y[t-1] + 0.2 x[t] + 0.1 x[t-1] - 0.1 x[t-3] - 0.2 x[t-4]``; the first
    four frames give 0 and only prime the numerator, as in rastamat and SIDEKIT. It removes
    what changes slower than speech (a channel's constant colouring, like mean
    normalisation) and what changes faster than syllables (about 1-12 Hz are kept). The
    same on log mel energies or on the cepstra made from them: the DCT is linear.

    Parameters
    ----------
    x : np.ndarray [shape=(frames, d)]

    Returns
    -------
    np.ndarray [shape=(frames, d), dtype=x.dtype]
    """
    x = np.asarray(x)
    t = len(x)
    out = np.zeros(x.shape, x.dtype)
    if t <= 4:
        return out
    xf = x.astype(np.float64)
    fir = sum(c * xf[4 - k:t - k] for k, c in enumerate(_RASTA_NUMERATOR) if c)
    # The one-pole recursion a block at a time, exactly: within a block of n frames
    # y = L @ fir + p^(k+1) y_prev, with L[k, j] = p^(k-j) for j <= k.
    p, n = _RASTA_POLE, _RASTA_BLOCK
    k = np.arange(n)
    powers = p ** np.maximum(k[:, None] - k[None, :], 0) * (k[:, None] >= k[None, :])
    carry = p ** (k + 1.0)
    prev = np.zeros(x.shape[1])
    y = np.empty_like(fir)
    for a in range(0, len(fir), n):
        b = min(a + n, len(fir))
        m = b - a
        y[a:b] = powers[:m, :m] @ fir[a:b] + carry[:m, None] * prev
        prev = y[b - 1]
    out[4:] = y
    return out


def _cepstra(mel: list[np.ndarray], config: FeatureConfig) -> np.ndarray:
    """Static MFCCs ``(frames, n_mfcc)`` from the mel power of every frame, given as the
    frame pass's groups (each consumed in place and released as it is used: the mel
    power of a long recording is never held twice)."""
    if config.denoise == "spectral_subtraction" and mel:
        subtract_noise(mel_power=mel)
    elif config.denoise == "wiener" and mel:
        wiener_filter(mel_power=mel)
    # librosa.power_to_db(mel) (amin 1e-10, ref 1, top_db 80), written out in float32 in
    # place because librosa's version costs more than the FFT; finite on digital silence.
    top = -np.inf
    for group in mel:
        np.maximum(group, 1e-10, out=group)
        np.log10(group, out=group)
        group *= 10.0
        if group.size:
            top = max(top, float(group.max()))
    cep = np.empty((sum(len(g) for g in mel), config.n_mfcc), np.float32)
    dct = _dct_matrix(config.n_mels, config.n_mfcc)
    row = 0
    while mel:
        group = mel.pop(0)
        np.maximum(group, np.float32(top - 80.0), out=group)
        # librosa.feature.mfcc(S=mel.T, n_mfcc, lifter), written out: a type-II
        # orthonormal DCT and librosa's sinusoidal lifter (importing librosa.feature costs
        # more than a file). As a product with the DCT matrix: scipy.fft's import alone
        # (~0.2 s) costs more than a recording's transform, and every verify pays it.
        cep[row:row + len(group)] = group @ dct
        row += len(group)
    if config.rasta:
        cep = rasta_filter(cep)
    if config.lifter > 0:
        n = np.arange(1, 1 + config.n_mfcc, dtype=cep.dtype)
        cep *= 1 + (config.lifter / 2) * np.sin(np.pi * n / config.lifter)
    return cep


_DELTA_CHUNK = 1 << 16  # frames


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
    if not order:
        return x
    t, d = x.shape
    reach = order * (width // 2)  # frames of context a chunk of output needs on each side
    if t > _DELTA_CHUNK + 2 * reach:
        # a chunk at a time, each from its rows and their context: the same values, row by
        # row, without the whole-recording temporaries (hours of audio)
        out = np.empty((t, d * (order + 1)), dtype=x.dtype)
        for a in range(0, t, _DELTA_CHUNK):
            b = min(a + _DELTA_CHUNK, t)
            lo, hi = max(0, a - reach), min(t, b + reach)
            out[a:b] = deltas(x[lo:hi], width=width, order=order)[a - lo:b - lo]
        return out
    half = width // 2
    denom = 2.0 * sum(n * n for n in range(1, half + 1))
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
        If a sample is not finite or absurdly large, the utterance is too short, its energy
        does not move as speech does (a constant, a tone, steady noise), or VAD finds fewer
        than ``min_speech_frames`` speech frames (digital silence, a near-silent recording).
    """
    from .audio import resample

    label = name or "utterance"
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise FeatureError(f"{label}: expected a mono signal of shape (n,), got {y.shape}")
    if sr != config.sample_rate:
        y = resample(y, orig_sr=sr, target_sr=config.sample_rate)
    feats, speech, _ = features_from_blocks([y], config=config, name=name)
    return (feats, speech) if return_vad else feats


def features_from_blocks(
    blocks: Iterable[np.ndarray],
    *,
    config: FeatureConfig,
    name: str | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`extract_features` of a signal given block by block (e.g. by
    :class:`~speakergmm.frontend.audio.AudioBlocks`), never held whole: the same features,
    bit for bit, in memory bounded by the features of the recording (a 3-hour file within
    1 GiB).

    Parameters
    ----------
    blocks : iterable of np.ndarray [shape=(n_i,), dtype=float32]
        Consecutive pieces of one mono signal at ``config.sample_rate``.
    config : FeatureConfig
    name : str, optional

    Returns
    -------
    features : np.ndarray [shape=(speech_frames, config.dim), dtype=float32]
    vad : np.ndarray [shape=(frames,), dtype=bool]
    samples : int
        Samples of the signal.
    """
    label = name or "utterance"
    frames = _FramePass(config)
    for block in blocks:
        block = np.asarray(block, dtype=np.float32)
        problem = sample_problem(block)
        if problem:
            raise FeatureError(f"{label}: {problem}")
        frames.push(block)
    mel, energy, samples = frames.finish()
    n_frames = sum(len(group) for group in mel)
    if n_frames < config.min_speech_frames:
        raise FeatureError(f"{label}: too short ({samples / config.sample_rate:.3f} s, "
                           f"{n_frames} frames; at least {config.min_speech_frames} needed)")
    # Not speech at all, whatever the frame selection (vad "none" too: the bundled systems
    # enrolled 3 s of a 1 kHz tone as 3 s of speech): a flat energy contour.
    spread = energy_spread(energy)
    if spread < MIN_RANGE_DB and (config.vad != "energy" or energy.max() > config.vad_floor_db):
        raise FeatureError(
            f"{label}: no speech: its energy stays within {spread:.1f} dB (speech moves by "
            f"{MIN_RANGE_DB:g} dB and more), as a constant level, a tone, a hum or steady "
            "noise does - check the recording")
    if config.vad != "energy":  # (the VAD has its own floor, vad_floor_db)
        loudest = float(np.percentile(energy, 99))
        if loudest < MIN_LEVEL_DBFS:
            raise FeatureError(
                f"{label}: no speech: its loudest frames reach {loudest:.0f} dBFS, below "
                f"{MIN_LEVEL_DBFS:g} dBFS where speech is recorded (silence, a dead input, "
                "or stereo channels that cancel when mixed down) - check the recording")
    static = _cepstra(mel, config)
    feats = deltas(static, width=config.delta_width, order=config.delta_order)
    del static
    if config.vad == "energy":
        speech = energy_vad(energy_db=energy, threshold_db=config.vad_threshold_db,
                            floor_db=config.vad_floor_db, context=config.vad_context)
        kept = int(speech.sum())
        if kept < config.min_speech_frames:
            raise FeatureError(
                f"{label}: no speech found by VAD ({kept} of {n_frames} frames kept; loudest "
                f"frame {energy.max():.1f} dBFS, floor {config.vad_floor_db:g} dBFS) - "
                "check the recording, or lower vad_floor_db in the feature config")
        feats = _keep_rows(feats, speech)
    else:
        speech = np.ones(n_frames, dtype=bool)
    feats = normalize(feats, method=config.norm, window=config.norm_window, overwrite=True)
    return np.ascontiguousarray(feats, dtype=np.float32), speech, samples


def _keep_rows(x: np.ndarray, keep: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """``x[keep]`` computed in place, a chunk of rows at a time (a copy of a long
    recording's features would double their memory); returns a view of ``x``."""
    if len(x) <= chunk:
        return x[keep]
    w = 0
    for a in range(0, len(x), chunk):
        rows = x[a:a + chunk][keep[a:a + chunk]]  # read before writing at w <= a
        x[w:w + len(rows)] = rows
        w += len(rows)
    return x[:w]
