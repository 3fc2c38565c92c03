"""How much a recording can be trusted: seconds of speech and a blind estimate of its
signal-to-noise ratio, measured while its features are made, so that a decision on a short
or noisy test can say so (issue 22).

The SNR estimate is WADA (Kim and Stern, "Robust signal-to-noise ratio estimation based on
waveform amplitude distribution analysis", Interspeech 2008): clean speech's amplitude
follows a Gamma distribution of shape 0.4, noise a Gaussian, and the statistic
``G = log E|x| - E log|x|`` of their sum falls monotonically from the speech's value to the
Gaussian's as the SNR falls, so it reads off the SNR from a table. It needs no speech/noise
segmentation and is scale-invariant; it is blind to reverberation and band-limiting, and it
reads babble (speech-like noise) as cleaner than it is. Band-limiting has its own measure:
the energy above 4.5 kHz against the whole, which a phone channel removes.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ..constants import MIN_TEST_SECONDS, MIN_TEST_SNR_DB, MIN_UPPER_BAND_DB
from ..errors import SpeakerGMMWarning

__all__ = ["measure", "measure_data_dir", "SignalMeter", "wada_snr", "Quality", "UPPER_BAND_HZ",
           "BandMismatch", "one_band_note"]

#: SNRs (dB) of the WADA table, and ``G`` at each (``_wada_table()`` with 12 million samples
#: in all: three seeds of 4 million); below -20 dB and above 100 dB the estimate is clipped.
_WADA_SNR_DB = np.arange(-20.0, 101.0)
_WADA_G = np.array([
    0.40922, 0.40925, 0.40935, 0.40940, 0.40943, 0.40961, 0.40974, 0.40997, 0.41050,
    0.41114, 0.41204, 0.41326, 0.41485, 0.41699, 0.41997, 0.42379, 0.42849, 0.43464,
    0.44199, 0.45100, 0.46175, 0.47429, 0.48875, 0.50507, 0.52331, 0.54351, 0.56551,
    0.58905, 0.61387, 0.64003, 0.66728, 0.69552, 0.72438, 0.75350, 0.78293, 0.81246,
    0.84164, 0.87075, 0.89952, 0.92797, 0.95568, 0.98278, 1.00934, 1.03514, 1.06032,
    1.08457, 1.10798, 1.13068, 1.15259, 1.17373, 1.19400, 1.21347, 1.23214, 1.25017,
    1.26754, 1.28418, 1.30009, 1.31526, 1.32988, 1.34386, 1.35716, 1.36998, 1.38223,
    1.39393, 1.40521, 1.41593, 1.42617, 1.43600, 1.44538, 1.45429, 1.46288, 1.47106,
    1.47887, 1.48628, 1.49340, 1.50015, 1.50667, 1.51287, 1.51882, 1.52451, 1.52988,
    1.53507, 1.54002, 1.54475, 1.54924, 1.55352, 1.55765, 1.56157, 1.56537, 1.56896,
    1.57240, 1.57569, 1.57879, 1.58177, 1.58462, 1.58731, 1.58990, 1.59241, 1.59477,
    1.59705, 1.59921, 1.60130, 1.60332, 1.60519, 1.60700, 1.60870, 1.61035, 1.61189,
    1.61337, 1.61480, 1.61614, 1.61745, 1.61871, 1.61990, 1.62104, 1.62209, 1.62311,
    1.62411, 1.62505, 1.62596, 1.62683
])
#: The edge of the telephone band that full-band speech passes and a phone channel does not.
UPPER_BAND_HZ = 4500.0
# Amplitudes below this (full scale 1) count as this: digital silence would otherwise give
# log 0. (Kim and Stern's code floors at 1e-10 after scaling the peak to 1.)
_FLOOR = 1e-10


def _wada_table(n: int = 4_000_000, seed: int = 0) -> np.ndarray:
    """``G`` at each of :data:`_WADA_SNR_DB` by simulation: Gamma(0.4) amplitudes with random
    signs (unit power) plus unit Gaussian noise scaled to each SNR."""
    rng = np.random.default_rng(seed)
    s = rng.gamma(0.4, 1.0, n) * rng.choice([-1.0, 1.0], n)
    s /= np.sqrt(np.mean(s ** 2))
    g = rng.standard_normal(n)
    out = np.empty(len(_WADA_SNR_DB))
    for i, snr in enumerate(_WADA_SNR_DB):
        a = np.abs(s * 10 ** (snr / 20) + g)
        out[i] = np.log(a.mean()) - np.mean(np.log(a))
    return out


def _highpass(sr: int, taps: int = 127) -> np.ndarray:
    """A linear-phase FIR high-pass at :data:`UPPER_BAND_HZ` (windowed sinc, Hamming: about
    50 dB down in the stop band), made with numpy: scipy.signal would cost every ``verify``
    0.5 s of imports."""
    n = np.arange(taps) - (taps - 1) / 2
    cut = UPPER_BAND_HZ / sr
    low = 2 * cut * np.sinc(2 * cut * n) * np.hamming(taps)
    high = -low / low.sum()
    high[(taps - 1) // 2] += 1.0
    return high


class SignalMeter:
    """Accumulates what WADA needs (Σ|x|, Σ log|x|, the count) over a signal given block by
    block, and, for a signal sampled at ``sr`` of 16 kHz or more, its energy above
    :data:`UPPER_BAND_HZ` against its whole energy: :meth:`watch` passes the blocks through
    unchanged."""

    def __init__(self, sr: int | None = None):
        self.n, self._abs, self._log = 0, 0.0, 0.0
        self._taps = self._tail = None
        self._upper = self._total = 0.0
        if sr is not None and sr >= 2 * UPPER_BAND_HZ + 2000:
            self._taps = _highpass(sr)
            self._tail = np.zeros(len(self._taps) - 1)

    def add(self, block: np.ndarray) -> None:
        x = np.asarray(block, np.float64)
        a = np.maximum(np.abs(x), _FLOOR)
        self.n += a.size
        self._abs += float(a.sum())
        self._log += float(np.log(a).sum())
        if self._taps is not None:
            # the filter runs on across blocks: the previous block's last samples go first
            joined = np.concatenate([self._tail, x])
            high = np.convolve(joined, self._taps, mode="valid")
            self._tail = joined[len(joined) - len(self._tail):]
            self._upper += float(np.dot(high, high))
            self._total += float(np.dot(x, x))

    def watch(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for block in blocks:
            self.add(block)
            yield block

    @property
    def snr_db(self) -> float:
        """The WADA SNR estimate in dB, in [-20, 100]; NaN before any sample."""
        if self.n == 0:
            return float("nan")
        g = np.log(self._abs / self.n) - self._log / self.n
        return float(np.interp(g, _WADA_G, _WADA_SNR_DB))

    @property
    def upper_band_db(self) -> float | None:
        """Energy above :data:`UPPER_BAND_HZ` against the whole (dB): around -18 dB for
        full-band speech, below -44 dB for speech that went through a phone band; None for
        a signal sampled below 16 kHz (or not given its rate), NaN for silence."""
        if self._taps is None:
            return None
        if self._total <= 0.0:
            return float("nan")
        return float(10.0 * np.log10(max(self._upper / self._total, 1e-30)))


def wada_snr(*, y: np.ndarray) -> float:
    """Blind SNR estimate (dB, in [-20, 100]) of the signal ``y`` (WADA).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Audio, full scale 1.

    Returns
    -------
    float
        NaN for an empty signal.
    """
    meter = SignalMeter()
    meter.add(y)
    return meter.snr_db


def measure(source, *, sr: int, offset: float = 0.0, duration: float | None = None,
            pipe: bool = False) -> tuple[float, float | None]:
    """A recording's SNR estimate and upper band (:class:`SignalMeter`) at the rate ``sr``
    a system reads it at, as the product path measures a test.

    Returns
    -------
    snr_db : float
    upper_band_db : float or None
    """
    from .audio import AudioBlocks

    meter = SignalMeter(sr)
    with AudioBlocks(source, sr=sr, offset=offset, duration=duration, pipe=pipe) as audio:
        for block in audio:
            meter.add(block)
    return meter.snr_db, meter.upper_band_db


def measure_data_dir(data, *, sr: int, utts=None, audio_root=None
                     ) -> dict[str, tuple[float, float | None]]:
    """:func:`measure` of each utterance of a data directory (or of those of ``utts`` it
    holds)."""
    from ..data.datadir import DataDir, read_data_dir

    data = data if isinstance(data, DataDir) else read_data_dir(data)
    wanted = data.utt2spk if utts is None else [u for u in utts if u in data.utt2spk]
    found = {}
    for utt in wanted:
        ref = data.audio_of(utt, audio_root)
        found[utt] = measure(ref.path_or_command, sr=sr, offset=ref.start,
                             duration=ref.duration, pipe=ref.is_pipe)
    return found


@dataclass(frozen=True)
class Quality:
    """A test recording's quality measures, and what they mean for a decision."""

    seconds: float      # speech scored (frames kept by the front end x frame shift)
    snr_db: float       # WADA estimate over the whole recording
    upper_band_db: float | None = None  # energy above UPPER_BAND_HZ against the whole

    @property
    def note(self) -> str | None:
        """Why a decision on this recording is unreliable, or None."""
        problems = []
        if self.seconds < MIN_TEST_SECONDS:
            problems.append(("too short", f"{self.seconds:.1f} s of speech "
                                          f"({MIN_TEST_SECONDS:g} s or more advised)"))
        if self.snr_db < MIN_TEST_SNR_DB:
            problems.append(("too noisy", f"an estimated SNR of {self.snr_db:.0f} dB "
                                          f"({MIN_TEST_SNR_DB:g} dB or more advised)"))
        if self.upper_band_db is not None and self.upper_band_db < MIN_UPPER_BAND_DB:
            problems.append(("too narrowband", f"nothing above {UPPER_BAND_HZ / 1000:g} kHz "
                             f"({self.upper_band_db:.0f} dB of the energy): a phone channel, "
                             "which a wideband system scores badly (--system telephone is "
                             "made for it)"))
        if not problems:
            return None
        what = " and ".join(p[0] for p in problems)
        return f"{what} for a reliable decision: {'; '.join(p[1] for p in problems)}"


class BandMismatch(SpeakerGMMWarning):
    """A recording sampled below the rate of the system's features: its upper band is empty,
    and its scores are not comparable with those of full-band audio."""


def one_band_note(read):
    """``read()``, with the :class:`BandMismatch` notes of its recordings as one note (the
    first, and how many more recordings it concerns) rather than one per file; other
    warnings pass as they are."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = read()
    band = [w for w in caught if issubclass(w.category, BandMismatch)]
    for w in caught:
        if not issubclass(w.category, BandMismatch):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if band:
        more = f" (and {len(band) - 1} more recording(s) like it)" if len(band) > 1 else ""
        warnings.warn(f"{band[0].message}{more}", BandMismatch, stacklevel=3)
    return result
