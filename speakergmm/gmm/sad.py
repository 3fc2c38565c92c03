"""Speech activity detection that holds in noise: a speech and a non-speech GMM over the
frames' cepstra and energies, and a two-state Viterbi pass that charges each switch.

The energy VAD (:mod:`speakergmm.frontend.vad`) keeps every frame within 30 dB of the
loudest: in babble at 10 dB or car noise at 5 dB that is every frame, the pauses included
(``tests/benchmarks/bench_vad.py``). A detector trained on degraded speech, whose clean
recording says where the speech is, learns what noise looks like instead: the classical
GMM speech activity detector (Kaldi's ``steps/segmentation`` GMM-HMM, LIUM's
segmentation) in its simplest form.

- **Frames**: the detector's own front end (:data:`DETECTOR_FEATURES`: 20 MFCC with Δ and
  ΔΔ, mean- and variance-normalised over the recording), and two level features: each
  frame's energy relative to the recording's loudest frames (99th percentile) and to its
  quietest (5th percentile), in units of 10 dB. Normalisation over the recording makes the
  detector blind to the recording level; the level features give back where a frame sits
  between the recording's noise floor and its speech.
- **Model**: two diagonal GMMs trained by EM (:func:`~speakergmm.gmm.ubm.train_ubm`) on
  the frames of each class; a frame's evidence is the log-likelihood ratio.
- **Decision**: :func:`viterbi_speech`: the most likely sequence of speech and non-speech
  states, each change of state costing ``penalty`` nats, which sets how short a pause or a
  burst can be and still be believed (30 nats: chosen on dev mixtures).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .._io import read_npz, write_npz
from ..errors import ModelError, ParameterError
from ..frontend.config import FeatureConfig
from .mixture import DiagGMM

__all__ = ["SpeechDetector", "DETECTOR_FEATURES", "detector_features", "viterbi_speech",
           "labelled_mixture", "training_examples", "TRAINING_CONDITIONS", "FORMAT_NAME",
           "FORMAT_VERSION"]

FORMAT_NAME = "speakergmm.speechdetector"
FORMAT_VERSION = 1

#: The detector's front end for each band: static MFCCs only (the Δs and the
#: normalisation are :func:`detector_features`'), of the bundled systems' analysis.
DETECTOR_FEATURES = {
    "wideband": FeatureConfig.preset("wideband", n_mfcc=20, delta_order=0, vad="none",
                                     norm="none"),
    "telephone": FeatureConfig.preset("telephone", n_mfcc=20, delta_order=0, vad="none",
                                      norm="none"),
}
_LEVEL_UNIT_DB = 10.0
_RANGE_DB = 80.0
_EPS = 1e-8


def detector_features(*, y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The detector's frames of one recording.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono signal at ``config.sample_rate``.
    config : FeatureConfig
        Static MFCCs only (``delta_order=0``, ``vad="none"``, ``norm="none"``).

    Returns
    -------
    np.ndarray [shape=(1 + n // hop, 3 * n_mfcc + 2), dtype=float32]
        Frames of :meth:`FeatureConfig.n_frames`: MFCC + Δ + ΔΔ normalised to zero mean and
        unit variance over the recording, then the energy (dBFS, at most 80 dB below the
        99th percentile) less its 99th and less its 5th percentile, over 10 dB.
    """
    from ..frontend.features import deltas, mfcc

    static, energy = mfcc(y=y, config=config, return_energy=True)
    x = deltas(static, width=config.delta_width, order=2).astype(np.float64)
    x -= x.mean(axis=0)
    x /= x.std(axis=0) + _EPS
    top = np.percentile(energy, 99)
    # 80 dB below the loudest frames at most, as the MFCCs' log (power_to_db's top_db):
    # digital silence is not -200 dB of information, and the level stays irrelevant
    energy = np.maximum(energy, top - _RANGE_DB)
    floor = np.percentile(energy, 5)
    level = np.stack([energy - top, energy - floor], axis=1) / _LEVEL_UNIT_DB
    return np.ascontiguousarray(np.hstack([x, level]), dtype=np.float32)


def viterbi_speech(llr: np.ndarray, *, penalty: float) -> np.ndarray:
    """The best speech / non-speech sequence for per-frame evidence.

    The speech state scores ``llr[t]`` at frame t, the non-speech state 0, and each change
    of state costs ``penalty``: the path maximising the total, by dynamic programming.
    ``penalty`` 0 gives ``llr > 0`` frame by frame; a burst of speech evidence shorter
    than its cost to enter and leave is not believed.

    Parameters
    ----------
    llr : np.ndarray [shape=(n,)]
        Log-likelihood ratio of speech to non-speech per frame.
    penalty : float
        Cost of a change of state, in the units of ``llr`` (nats), >= 0.

    Returns
    -------
    np.ndarray [shape=(n,), dtype=bool]
    """
    llr = np.asarray(llr, dtype=np.float64)
    if penalty < 0 or not np.isfinite(penalty):
        raise ParameterError(f"penalty must be a finite number >= 0, got {penalty}")
    n = llr.size
    if n == 0:
        return np.zeros(0, bool)
    # Python floats in the loop: a numpy scalar per frame costs 5-10 times more (an hour of
    # audio is 360,000 frames).
    came_from_other = bytearray(2 * n)
    silent, speech = 0.0, float(llr[0])
    for t, e in enumerate(llr[1:].tolist(), 1):
        s_from_speech = speech - penalty
        if s_from_speech > silent:
            came_from_other[2 * t] = 1
            new_silent = s_from_speech
        else:
            new_silent = silent
        s_from_silent = silent - penalty
        if s_from_silent > speech:
            came_from_other[2 * t + 1] = 1
            speech = s_from_silent + e
        else:
            speech = speech + e
        silent = new_silent
    state = int(speech > silent)
    out = np.zeros(n, bool)
    for t in range(n - 1, -1, -1):
        out[t] = state
        if came_from_other[2 * t + state]:
            state = 1 - state
    return out


class SpeechDetector:
    """Speech / non-speech GMMs and their decision (module docstring).

    Parameters
    ----------
    speech, nonspeech : DiagGMM
        Over :func:`detector_features` frames of ``config``.
    config : FeatureConfig
        The detector's front end (:data:`DETECTOR_FEATURES`).
    penalty : float
        Cost of a change of state in :func:`viterbi_speech`, nats.
    bias : float
        Added to each frame's log-likelihood ratio before decoding: > 0 keeps more frames
        (fewer misses, more false alarms).
    metadata : dict, optional
        JSON-serialisable (the training record).
    """

    def __init__(self, speech: DiagGMM, nonspeech: DiagGMM, *, config: FeatureConfig,
                 penalty: float = 30.0, bias: float = 0.0,
                 metadata: Mapping[str, Any] | None = None):
        if speech.dim != nonspeech.dim:
            raise ModelError(f"speech and non-speech models differ in dimension "
                             f"({speech.dim} and {nonspeech.dim})")
        want = 3 * config.n_mfcc + 2
        if speech.dim != want:
            raise ModelError(f"the models are of {speech.dim}-dimensional frames; the "
                             f"detector's front end ({config.n_mfcc} MFCC) makes {want}")
        if not (np.isfinite(penalty) and penalty >= 0 and np.isfinite(bias)):
            raise ParameterError(f"penalty must be finite and >= 0 and bias finite, got "
                                 f"{penalty} and {bias}")
        self.speech, self.nonspeech, self.config = speech, nonspeech, config
        self.penalty, self.bias = float(penalty), float(bias)
        self.metadata: dict[str, Any] = dict(metadata or {})

    def __repr__(self) -> str:
        return (f"SpeechDetector({self.config.sample_rate} Hz, K={self.speech.n_components}, "
                f"penalty={self.penalty:g}, fingerprint={self.fingerprint()})")

    def fingerprint(self) -> str:
        """16 hex digits identifying the detector's decisions."""
        h = hashlib.sha256(f"sad:{self.speech.fingerprint()}:{self.nonspeech.fingerprint()}:"
                           f"{self.penalty!r}:{self.bias!r}:{self.config.to_json()}".encode())
        return h.hexdigest()[:16]

    def describe(self) -> str:
        """A human-readable summary (``speakergmm info``)."""
        record = self.metadata
        lines = [f"speech detector {self.fingerprint()}: {self.config.sample_rate} Hz, "
                 f"{self.config.n_mfcc} MFCC + deltas + 2 level features, "
                 f"{self.speech.n_components} + {self.nonspeech.n_components} Gaussians, "
                 f"switch penalty {self.penalty:g}, bias {self.bias:g}"]
        if "speech_frames" in record:
            lines.append(f"trained on {record['speech_frames']:,} speech and "
                         f"{record['nonspeech_frames']:,} non-speech frames"
                         + (f" of {record['data']}" if record.get("data") else ""))
        return "\n".join(lines)

    # --- decisions ---------------------------------------------------------------------

    def llr(self, x: np.ndarray) -> np.ndarray:
        """Per-frame log-likelihood ratio of speech to non-speech (bias included).

        Parameters
        ----------
        x : np.ndarray [shape=(frames, dim)]
            :func:`detector_features` frames.

        Returns
        -------
        np.ndarray [shape=(frames,), dtype=float64]
        """
        return self.speech.log_likelihood(x) - self.nonspeech.log_likelihood(x) + self.bias

    def detect(self, *, y: np.ndarray, sr: int) -> np.ndarray:
        """Speech frames of a recording.

        Parameters
        ----------
        y : np.ndarray [shape=(n,)]
            Mono signal; resampled to the detector's rate if ``sr`` differs.
        sr : int

        Returns
        -------
        np.ndarray [shape=(1 + n' // hop,), dtype=bool]
            One decision per frame of the detector's front end (10 ms frames centred on
            multiples of the hop, as the features' frames), ``n'`` samples after any
            resampling.
        """
        from ..frontend.audio import resample

        y = np.asarray(y, dtype=np.float32)
        if sr != self.config.sample_rate:
            y = resample(y, orig_sr=sr, target_sr=self.config.sample_rate)
        return viterbi_speech(self.llr(detector_features(y=y, config=self.config)),
                              penalty=self.penalty)

    # --- training ----------------------------------------------------------------------

    @classmethod
    def fit(cls, examples: Iterable[tuple[np.ndarray, np.ndarray]], *, config: FeatureConfig,
            n_components: int = 64, n_iterations: int = 8, seed: int = 0,
            penalty: float = 30.0, metadata: Mapping[str, Any] | None = None,
            progress: Callable[[str], None] | None = None) -> "SpeechDetector":
        """Train the two GMMs on labelled recordings.

        Parameters
        ----------
        examples : iterable of (signal, mask)
            Signals at ``config.sample_rate`` and their speech frames (one per frame of
            ``config``; e.g. :func:`labelled_mixture` copies degraded by
            :mod:`speakergmm.frontend.augment`).
        config : FeatureConfig
        n_components, n_iterations, seed
            Of each GMM (:func:`~speakergmm.gmm.ubm.train_ubm`).
        penalty : float
        metadata : dict, optional
        progress : callable, optional
            Called with a line of text after each stage.

        Raises
        ------
        ParameterError
            If a mask does not match its signal's frames, or a class has too few frames.
        """
        from .ubm import train_ubm

        speech, other = [], []
        for i, (y, mask) in enumerate(examples):
            x = detector_features(y=np.asarray(y, np.float32), config=config)
            mask = np.asarray(mask, bool)
            if mask.shape != (len(x),):
                raise ParameterError(f"example {i}: {mask.shape[0] if mask.ndim else 0} "
                                     f"labels for {len(x)} frames")
            speech.append(x[mask])
            other.append(x[~mask])
        counts = [sum(len(a) for a in c) for c in (speech, other)]
        if min(counts) < 10 * n_components:
            raise ParameterError(f"too few frames to train {n_components} components per "
                                 f"class: {counts[0]} speech, {counts[1]} non-speech")
        if progress:
            progress(f"{counts[0]} speech and {counts[1]} non-speech frames")
        models = [train_ubm(c, n_components=n_components, n_iterations=n_iterations,
                            seed=seed) for c in (speech, other)]
        record = {"speech_frames": counts[0], "nonspeech_frames": counts[1],
                  "n_components": n_components, "n_iterations": n_iterations, "seed": seed,
                  **(metadata or {})}
        return cls(*models, config=config, penalty=penalty, metadata=record)

    # --- files -------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write the detector to ``path`` (``.npz``) atomically."""
        arrays = {f"{name}_{part}": getattr(model, part)
                  for name, model in (("speech", self.speech), ("nonspeech", self.nonspeech))
                  for part in ("weights", "means", "variances")}
        write_npz(path, arrays, format_name=FORMAT_NAME, format_version=FORMAT_VERSION,
                  metadata={"feature_config": self.config.to_dict(), "penalty": self.penalty,
                            "bias": self.bias, "training": self.metadata})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SpeechDetector":
        """Read a detector written by :meth:`save`, checking everything.

        Raises
        ------
        ModelError
            Naming the path and the problem.
        """
        keys = tuple(f"{n}_{p}" for n in ("speech", "nonspeech")
                     for p in ("weights", "means", "variances"))
        arrays, header = read_npz(path, keys, format_name=FORMAT_NAME,
                                  format_version=FORMAT_VERSION, what="speech detector")
        meta = header["metadata"]
        try:
            config = FeatureConfig.from_dict(meta["feature_config"])
            models = [DiagGMM(*(arrays[f"{n}_{p}"] for p in ("weights", "means", "variances")))
                      for n in ("speech", "nonspeech")]
            return cls(*models, config=config, penalty=meta["penalty"], bias=meta["bias"],
                       metadata=meta.get("training"))
        except (KeyError, TypeError) as exc:
            raise ModelError(f"{path}: its metadata lacks {exc}; the file is damaged") from None
        except (ModelError, ParameterError, ValueError) as exc:
            raise ModelError(f"{path}: {exc}") from None


def labelled_mixture(*, recordings: Sequence[np.ndarray], config: FeatureConfig,
                     rng: np.random.Generator, pause: tuple[float, float] = (0.2, 1.5),
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Clean recordings of speech one after another with pauses between them, and which of
    its frames are speech: the reference a degraded copy is scored against.

    Each recording's speech frames are those the energy VAD finds in it (clean, the
    energy VAD's 30 dB below the loudest frames is where the speech is); the pauses, of
    digital silence, are not speech. Add noise to the whole to make a test.

    Parameters
    ----------
    recordings : sequence of np.ndarray
        Clean signals at ``config.sample_rate``.
    config : FeatureConfig
        Its frames (hop and window) are those of the mask.
    rng : np.random.Generator
        Draws each pause, uniform in ``pause`` seconds (one before each recording and one
        after the last).

    Returns
    -------
    signal : np.ndarray [shape=(n,), dtype=float32]
    speech : np.ndarray [shape=(config.n_frames(n),), dtype=bool]
    """
    from ..frontend.vad import energy_vad, frame_energy_db

    sr, hop, win = config.sample_rate, config.hop_length, config.win_length
    parts, spans = [], []
    at = 0
    for y in recordings:
        gap = int(rng.uniform(*pause) * sr)
        y = np.asarray(y, np.float32)
        parts += [np.zeros(gap, np.float32), y]
        spans.append((at + gap, y))
        at += gap + len(y)
    parts.append(np.zeros(int(rng.uniform(*pause) * sr), np.float32))
    signal = np.concatenate(parts)
    speech = np.zeros(config.n_frames(len(signal)), bool)
    for start, y in spans:
        own = energy_vad(energy_db=frame_energy_db(y=y, hop_length=hop, win_length=win))
        # the recording's frame k is centred on sample start + k * hop: the mixture's frame
        # nearest to it
        idx = (start + np.arange(len(own)) * hop + hop // 2) // hop
        ok = idx < len(speech)
        speech[idx[ok]] = own[ok]
    return signal, speech


#: The conditions :func:`training_examples` draws from, in equal shares: what the
#: detector learns noise from. None is a noise :mod:`tests/benchmarks/bench_vad.py` tests
#: on (car noise, babble of other speakers, statistical rooms, GSM).
TRAINING_CONDITIONS = ("clean", "noise", "quiet_noise", "babble", "reverb", "mulaw", "level")


def training_examples(recordings: Sequence[np.ndarray], *, config: FeatureConfig,
                      seed: int = 0, per_mixture: int = 3,
                      conditions: Sequence[str] = TRAINING_CONDITIONS,
                      ) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """Labelled, degraded mixtures of clean speech for :meth:`SpeechDetector.fit`.

    The recordings are shuffled and taken ``per_mixture`` at a time into a
    :func:`labelled_mixture`; each mixture is degraded by one of ``conditions``, in turn:
    ``noise`` coloured noise (white to brown) at 0-20 dB SNR, ``quiet_noise`` the same at
    20-40 dB, ``babble`` 3-7 of the other recordings at 0-20 dB, ``reverb`` an
    image-method room of RT60 0.2-1.0 s (pyroomacoustics; skipped without it), ``mulaw``
    G.711, ``level`` a gain of -30 to 0 dB.

    Parameters
    ----------
    recordings : sequence of np.ndarray
        Clean speech at ``config.sample_rate``, at least ``per_mixture + 3``.
    config : FeatureConfig
    seed : int
    per_mixture : int
    conditions : sequence of str
        Of :data:`TRAINING_CONDITIONS`.

    Yields
    ------
    (signal, speech) : (np.ndarray, np.ndarray)
    """
    from ..frontend import augment as A

    unknown = sorted(set(conditions) - set(TRAINING_CONDITIONS))
    if unknown or not conditions:
        raise ParameterError(f"unknown conditions {unknown}; choose from "
                             f"{', '.join(TRAINING_CONDITIONS)}")
    if len(recordings) < per_mixture + 3:
        raise ParameterError(f"{len(recordings)} recordings: at least {per_mixture + 3} "
                             "are needed (mixtures of them, and others for babble)")
    try:
        import pyroomacoustics  # noqa: F401
    except ImportError:
        conditions = [c for c in conditions if c != "reverb"]
    rng = np.random.default_rng(seed)
    sr = config.sample_rate
    order = rng.permutation(len(recordings))
    for i, at in enumerate(range(0, len(order) - per_mixture + 1, per_mixture)):
        chosen = order[at:at + per_mixture]
        y, speech = labelled_mixture(recordings=[recordings[j] for j in chosen],
                                     config=config, rng=rng)
        kind = conditions[i % len(conditions)]
        if kind in ("noise", "quiet_noise"):
            noise = A.coloured_noise(n=len(y), slope=float(rng.choice([0.0, 1.0, 2.0])),
                                     rng=rng)
            lo = 0.0 if kind == "noise" else 20.0
            y = A.add_noise(y=y, noise=noise, snr_db=rng.uniform(lo, lo + 20.0), rng=rng)
        elif kind == "babble":
            taken = set(chosen.tolist())
            others = [j for j in range(len(recordings)) if j not in taken]
            talkers = rng.choice(others, min(int(rng.integers(3, 8)), len(others)),
                                 replace=False)
            noise = A.babble(talkers=[recordings[j] for j in talkers], n=len(y), rng=rng)
            y = A.add_noise(y=y, noise=noise, snr_db=rng.uniform(0.0, 20.0), rng=rng)
        elif kind == "reverb":
            rir = A.room_impulse_response(sr=sr, rt60=rng.uniform(0.2, 1.0), rng=rng)
            y = A.reverberate(y=y, rir=rir)
        elif kind == "mulaw":
            y = A.telephone(y=y, sr=sr, law="mulaw")
        elif kind == "level":
            y = A.change_level(y=y, gain_db=rng.uniform(-30.0, 0.0))
        yield y, speech


def train_speech_detector(data, *, band: str = "wideband",
                          audio_root: str | os.PathLike | None = None, seed: int = 0,
                          n_components: int = 64, n_iterations: int = 8,
                          progress: Callable[[str], None] | None = None) -> SpeechDetector:
    """A :class:`SpeechDetector` trained on a data directory of clean speech.

    Parameters
    ----------
    data : DataDir or path
        Clean recordings (their energy VAD tells where the speech is), resampled to the
        band's rate; :func:`training_examples` degrades them.
    band : {"wideband", "telephone"}
        The front end (:data:`DETECTOR_FEATURES`).
    audio_root : path, optional
        What relative ``wav.scp`` paths resolve against.
    seed, n_components, n_iterations
    progress : callable, optional

    Returns
    -------
    SpeechDetector
    """
    from ..data.datadir import DataDir, read_data_dir
    from ..frontend.audio import load_ref

    if band not in DETECTOR_FEATURES:
        raise ParameterError(f"band must be one of {', '.join(DETECTOR_FEATURES)}, got "
                             f"{band!r}")
    config = DETECTOR_FEATURES[band]
    data = data if isinstance(data, DataDir) else read_data_dir(data)
    recordings = [load_ref(data.audio_of(u, audio_root), sr=config.sample_rate)[0]
                  for u in data.utterances]
    if progress:
        progress(f"{len(recordings)} recordings read")
    examples = training_examples(recordings, config=config, seed=seed)
    return SpeechDetector.fit(examples, config=config, n_components=n_components,
                              n_iterations=n_iterations, seed=seed, progress=progress,
                              metadata={"band": band, "data": str(data.path),
                                        "recordings": len(recordings)})
