"""The feature configuration: everything that determines the features, stored with every
archive and model. A leaf of the front end (no signal processing is imported), so that
reading an archive or a model never pays for the FFT stack."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..constants import NORMALISATIONS
from ..errors import FeatureError, printable

__all__ = ["FeatureConfig", "PRESETS", "DENOISERS"]

#: Noise suppression methods of :attr:`FeatureConfig.denoise`.
DENOISERS = ("none", "spectral_subtraction", "wiener")


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that determines the features; stored with every archive and model.

    Defaults are for 16 kHz wideband speech; ``FeatureConfig.preset("telephone")`` gives
    the 8 kHz narrowband variant.

    Parameters
    ----------
    sample_rate : int
        Audio is resampled to this rate (Hz) before analysis.
    frame_length_ms, frame_shift_ms : float
        Analysis window and hop (25 ms / 10 ms).
    n_fft : int
        FFT size (>= the window length in samples).
    window : str
        Window function name for ``scipy.signal.get_window`` (Hamming as in SIDEKIT/HTK).
    preemphasis : float
        Pre-emphasis coefficient; 0 disables it.
    n_mels : int
        Mel bands.
    fmin, fmax : float
        Filterbank edges in Hz; ``fmax`` None means Nyquist.
    n_mfcc : int
        Cepstral coefficients kept, c0 included.
    lifter : float
        Cepstral liftering coefficient (librosa's ``lifter``); 0 disables it.
    delta_order : int
        0: static only; 1: + Δ; 2: + Δ and ΔΔ.
    delta_width : int
        Odd regression window for Δ (5 = ±2 frames, as Kaldi and HTK).
    vad : {"energy", "none"}
        Frame selection (see :mod:`speakergmm.frontend.vad`).
    vad_threshold_db, vad_floor_db : float
        Relative threshold below the loudest frames and absolute floor (dBFS).
    vad_context : int
        Half-width of the VAD majority smoothing, in frames.
    min_speech_frames : int
        An utterance with fewer speech frames than this is rejected as having no speech.
    norm : {"cmvn", "cmn", "sliding_cmn", "sliding_cmvn", "warp", "none"}
        Normalisation applied to the kept frames.
    norm_window : int or None
        Window in frames for the sliding methods (None: 300 for CMN/CMVN, 301 for warping).
    denoise : {"none", "spectral_subtraction", "wiener"}
        Noise suppression on the mel power spectrum before the log (see
        :func:`~speakergmm.frontend.features.subtract_noise` and
        :func:`~speakergmm.frontend.features.wiener_filter`).
    rasta : bool
        RASTA-filter the static cepstra over time (Hermansky and Morgan 1994; see
        :func:`~speakergmm.frontend.features.rasta_filter`).
    """

    sample_rate: int = 16000
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    n_fft: int = 512
    window: str = "hamming"
    preemphasis: float = 0.97
    n_mels: int = 40
    fmin: float = 20.0
    fmax: float | None = 7600.0
    n_mfcc: int = 20
    lifter: float = 0.0
    delta_order: int = 2
    delta_width: int = 5
    vad: str = "energy"
    vad_threshold_db: float = 30.0
    vad_floor_db: float = -60.0
    vad_context: int = 2
    min_speech_frames: int = 10
    norm: str = "cmvn"
    norm_window: int | None = None
    denoise: str = "none"
    rasta: bool = False

    def __post_init__(self) -> None:
        problems = _type_problems(self)
        if problems:  # the checks below compare values: types first
            raise FeatureError("invalid feature config: " + "; ".join(problems))
        if self.sample_rate <= 0:
            problems.append(f"sample_rate must be positive, got {self.sample_rate}")
        if not 0 < self.frame_shift_ms <= self.frame_length_ms:
            problems.append("need 0 < frame_shift_ms <= frame_length_ms, got "
                            f"{self.frame_shift_ms} and {self.frame_length_ms}")
        elif self.sample_rate > 0 and self.hop_length < 1:
            problems.append(f"frame_shift_ms {self.frame_shift_ms} is under one sample at "
                            f"{self.sample_rate} Hz")
        elif self.frame_length_ms > MAX_FRAME_MS:
            problems.append(f"frame_length_ms must be at most {MAX_FRAME_MS:g} ms (a "
                            f"frame of speech is 20-40 ms), got {self.frame_length_ms}")
        elif self.win_length > self.n_fft:
            problems.append(f"n_fft ({self.n_fft}) is smaller than the window "
                            f"({self.win_length} samples); raise n_fft")
        if self.n_fft > MAX_N_FFT:
            problems.append(f"n_fft must be at most {MAX_N_FFT} (the window is at most "
                            f"{MAX_FRAME_MS:g} ms), got {self.n_fft}")
        if not 0 <= self.lifter <= MAX_LIFTER:
            problems.append(f"lifter must be 0 (none) or up to {MAX_LIFTER} (Kaldi uses 22), "
                            f"got {self.lifter}")
        nyquist = self.sample_rate / 2
        top = nyquist if self.fmax is None else self.fmax
        if not 0 <= self.fmin < top <= nyquist:
            problems.append(f"need 0 <= fmin < fmax <= {nyquist:g} Hz (Nyquist), "
                            f"got fmin={self.fmin}, fmax={self.fmax}")
        if not 1 <= self.n_mfcc <= self.n_mels:
            problems.append(f"need 1 <= n_mfcc <= n_mels, got {self.n_mfcc} and {self.n_mels}")
        elif not problems and self.n_fft > 0 and _narrowest_mel_band(
                self.fmin, top, self.n_mels) < self.sample_rate / self.n_fft:
            problems.append(f"{self.n_mels} mel bands over {self.fmin:g}-{top:g} Hz are "
                            f"narrower than the FFT's {self.sample_rate / self.n_fft:g} Hz "
                            "bins at the low end: some would hold no bin (log of 0); use "
                            "fewer n_mels or a larger n_fft")
        if self.delta_order not in (0, 1, 2):
            problems.append(f"delta_order must be 0, 1 or 2, got {self.delta_order}")
        if self.delta_width < 3 or self.delta_width % 2 == 0:
            problems.append(f"delta_width must be odd and >= 3, got {self.delta_width}")
        if self.vad not in ("energy", "none"):
            problems.append(f"vad must be 'energy' or 'none', got {self.vad!r}")
        if self.denoise not in DENOISERS:
            problems.append(f"denoise must be one of {', '.join(DENOISERS)}, got "
                            f"{self.denoise!r}")
        if self.norm not in NORMALISATIONS:
            problems.append(f"norm must be one of {', '.join(NORMALISATIONS)}, got {self.norm!r}")
        if self.norm_window is not None and self.norm_window < 2:
            problems.append(f"norm_window must be >= 2 frames, got {self.norm_window}")
        if not 0 <= self.preemphasis < 1:
            problems.append(f"preemphasis must be in [0, 1), got {self.preemphasis}")
        if self.min_speech_frames < 1:
            problems.append(f"min_speech_frames must be >= 1, got {self.min_speech_frames}")
        try:
            # Only for other windows than the front end computes itself (features.
            # _periodic_window): importing scipy.signal takes 1-2 s, which every verify and
            # identify paid here (10,000 speakers: 3.1 s instead of 1.3)
            if self.window not in ("hamming", "hann", "hanning"):
                import scipy.signal

                scipy.signal.get_window(self.window, 8)
        except ValueError:
            problems.append(f"window {printable(self.window)} is not one scipy.signal."
                            "get_window knows; use e.g. 'hamming' or 'hann'")
        if problems:
            raise FeatureError("invalid feature config: " + "; ".join(problems))

    @property
    def win_length(self) -> int:
        """Window length in samples."""
        return int(round(self.sample_rate * self.frame_length_ms / 1000))

    @property
    def hop_length(self) -> int:
        """Frame shift in samples."""
        return int(round(self.sample_rate * self.frame_shift_ms / 1000))

    @property
    def dim(self) -> int:
        """Feature dimension D of the output frames."""
        return self.n_mfcc * (1 + self.delta_order)

    def n_frames(self, n_samples: int) -> int:
        """Frames (before VAD) for a signal of ``n_samples`` at ``sample_rate``."""
        return 1 + n_samples // self.hop_length

    # --- serialisation -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FeatureConfig":
        if not isinstance(data, dict):
            raise FeatureError(f"a feature config is a JSON object of settings ({{\"n_mfcc\": "
                               f"20, ...}}), got {type(data).__name__} {printable(data)}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FeatureError(f"unknown feature config key(s): {', '.join(unknown)}; "
                               f"known keys: {', '.join(sorted(known))}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "FeatureConfig":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FeatureError(f"feature config is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FeatureConfig":
        """Read a config from a JSON file (missing keys take their defaults)."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise FeatureError(f"{path}: cannot read feature config ({exc.strerror})") from None
        except UnicodeDecodeError as exc:
            raise FeatureError(f"{path}: a feature config is UTF-8 JSON; byte {exc.start} is "
                               "not UTF-8") from None
        try:
            return cls.from_json(text)
        except FeatureError as exc:
            raise FeatureError(f"{path}: {exc}") from None

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "FeatureConfig":
        """A named configuration from :data:`PRESETS`, with optional overrides."""
        if name not in PRESETS:
            raise FeatureError(f"unknown feature preset {name!r}; choose one of "
                               f"{', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    @classmethod
    def resolve(cls, spec: str | os.PathLike | None) -> "FeatureConfig":
        """A config from a preset name, a JSON file path, or ``None`` (the default)."""
        if spec is None:
            return cls()
        if str(spec) in PRESETS:
            return cls.preset(str(spec))
        return cls.load(spec)


#: Bounds no speech front end comes near; beyond them a config is a mistake that would fail
#: every utterance (or give NaN features), so it is refused when made.
MAX_FRAME_MS = 1000.0
MAX_N_FFT = 1 << 16
MAX_LIFTER = 1000.0


def _narrowest_mel_band(fmin: float, fmax: float, n_mels: int) -> float:
    """Width in Hz of the lowest (narrowest) of ``n_mels`` triangular mel filters over
    [fmin, fmax] (HTK mel scale: the filters' edges are equally spaced in mel)."""
    import math

    def mel(f):
        return 2595.0 * math.log10(1.0 + f / 700.0)

    step = (mel(fmax) - mel(fmin)) / (n_mels + 1)
    return 700.0 * (10 ** ((mel(fmin) + 2 * step) / 2595.0) - 1.0) - fmin


#: Named configurations: ``wideband`` (16 kHz, the default) and ``telephone`` (8 kHz,
#: 300-3400 Hz band-limited speech: 24 mel bands up to 3700 Hz as in Kaldi's 8 kHz recipes).
PRESETS: dict[str, dict[str, Any]] = {
    "wideband": {},
    "telephone": dict(sample_rate=8000, n_fft=256, n_mels=24, fmin=20.0, fmax=3700.0),
}


def _type_problems(config: FeatureConfig) -> list[str]:
    """Each field of the wrong type (a string where a number goes, a bool for an int, a
    non-finite number), from the annotations: a config comes from JSON a user wrote."""
    problems = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        kinds = set(str(field.type).replace(" ", "").split("|"))
        if value is None and "None" in kinds:
            continue
        if "str" in kinds:
            ok = isinstance(value, str)
        elif "bool" in kinds:
            ok = isinstance(value, bool)
        elif "float" in kinds:
            ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
                  and math.isfinite(value))
        else:  # int
            ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok:
            want = ("a string" if "str" in kinds else "true or false" if "bool" in kinds
                    else "a finite number" if "float" in kinds else "an integer")
            problems.append(f"{field.name} must be {want}"
                            f"{' or null' if 'None' in kinds else ''}, got "
                            f"{type(value).__name__} {printable(value)}")
    return problems
