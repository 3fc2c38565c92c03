"""Who spoke when: speaker diarization of a recording with the classical back-end (issue 23).

The pipeline of Kaldi's CALLHOME i-vector recipe, on the statistics this toolkit has:

1. **Speech**: a :class:`~speakergmm.gmm.sad.SpeechDetector` marks the speech frames.
2. **Windows**: within each stretch of speech, windows of ``window`` frames every ``hop``
   (1.5 s every 0.75 s; a stretch's last window ends with it).
3. **Representation**: each window's Baum-Welch statistics under the system's UBM give an
   i-vector (:class:`~speakergmm.gmm.ivector.IVectorExtractor`), scored against every other
   window by PLDA (:class:`~speakergmm.backend.vectors.VectorBackend`).
4. **Clustering**: agglomerative, average linkage of the PLDA scores, merging while the
   best pair scores above ``threshold`` (or down to ``num_speakers`` clusters, or at most
   ``max_speakers``); on summaries of the pair scores, in two stages for a recording of
   several chunks (:mod:`.clustering`).
5. **Resegmentation** at frame resolution: a MAP model per cluster (relevance
   ``relevance``) from its windows' statistics; each speech frame scored against each
   model; a Viterbi pass over the clusters, each change of
   speaker costing ``penalty`` nats; then ``passes`` more with the models learnt from the
   frames each cluster got, a cluster left with under ``min_speech`` frames dropped.

The result is a list of turns (RTTM) with, for each, the mean posterior of its speaker
over its frames. Steps 1-3 and the first stage of 4 run on chunks of
:attr:`Diarizer.CHUNK_SECONDS` (:meth:`Diarizer.diarize_file` reads a file in blocks), so
that a recording of hours is never held whole: only its windows' i-vectors and its speech
frames' features are kept.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import numpy as np

from ..constants import BRIDGE_SECONDS
from ..data.rttm import Turn
from ..errors import ParameterError

__all__ = ["Diarizer", "Diarization", "viterbi_labels", "speech_windows", "speech_features",
           "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "speakergmm.diarization"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Diarization:
    """Turns of one recording, each with the mean posterior of its speaker.

    Attributes
    ----------
    turns : list of Turn
        Sorted by start; speakers ``spk0``, ``spk1``, ... in order of first appearance.
    posteriors : list of float
        For each turn, the mean over its frames of its speaker's posterior among the
        clusters (frame likelihoods under equal priors).
    seconds : float
        The recording's length.
    """

    turns: list[Turn]
    posteriors: list[float]
    seconds: float
    speakers: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"seconds": self.seconds, "speakers": self.speakers,
                "turns": [{"start": t.start, "end": t.end, "speaker": t.speaker,
                           "posterior": round(p, 4)}
                          for t, p in zip(self.turns, self.posteriors)]}


def speech_windows(speech: np.ndarray, *, window: int, hop: int, shortest: int
                   ) -> list[tuple[int, int]]:
    """``[start, end)`` frame ranges of the windows over the stretches of speech: every
    ``hop`` frames from each stretch's start, ``window`` long, the last one ending with the
    stretch; stretches shorter than ``shortest`` frames give none."""
    from ..frontend.vad import speech_runs

    out = []
    for a, b in speech_runs(speech):
        if b - a < shortest:
            continue
        starts = list(range(a, max(a + 1, b - window + 1), hop))
        out += [(s, min(b, s + window)) for s in starts]
        if out[-1][1] < b:
            out.append((max(a, b - window), b))
    return out


def speech_features(system, detector, y: np.ndarray, sr: int, *, window: int, hop: int,
                    shortest: int) -> tuple[list[tuple[int, int]], np.ndarray | None,
                                            np.ndarray]:
    """``(windows, features, speech)`` of a recording at the system's rate: the
    detector's speech frames, the windows over them (:func:`speech_windows`) and the
    system's features of every frame (no windows: an empty list and None features)."""
    from ..frontend.features import extract_features

    config = system.config
    speech = detector.detect(y=y, sr=sr)
    windows = speech_windows(speech, window=window, hop=hop, shortest=shortest)
    if not windows or _flat(y, config):  # (whose features would be refused)
        return [], None, speech
    x = extract_features(y=y, sr=sr, config=config)
    n = min(len(x), len(speech))
    return [(a, min(b, n)) for a, b in windows if a < n], x[:n], speech[:n]


def viterbi_labels(loglik: np.ndarray, *, penalty: float) -> np.ndarray:
    """The best sequence of states for per-frame log-likelihoods ``(frames, states)``, each
    change of state costing ``penalty``.

    Returns
    -------
    np.ndarray [shape=(frames,), dtype=int]
    """
    ll = np.asarray(loglik, np.float64)
    if ll.ndim != 2 or ll.shape[1] < 1:
        raise ParameterError(f"log-likelihoods of shape {ll.shape}: expected (frames, states)")
    if not np.isfinite(penalty) or penalty < 0:
        raise ParameterError(f"penalty must be a finite number >= 0, got {penalty}")
    n, c = ll.shape
    if n == 0:
        return np.zeros(0, int)
    back = np.empty((n, c), np.int32)
    states = np.arange(c, dtype=np.int32)
    v = ll[0].copy()
    for t in range(1, n):
        best = int(np.argmax(v))
        jump = v[best] - penalty
        take = jump > v
        back[t] = np.where(take, best, states)
        v = np.where(take, jump, v) + ll[t]
    out = np.empty(n, int)
    s = int(np.argmax(v))
    for t in range(n - 1, -1, -1):
        out[t] = s
        s = back[t, s]
    return out


class Diarizer:
    """Diarization with a recognition system's UBM (module docstring).

    Parameters
    ----------
    system : System
        Its UBM and feature config (which must keep every frame: ``vad`` "none").
    detector : SpeechDetector
        Of the same frame shift as the system's features.
    extractor : IVectorExtractor
        Trained on the system's UBM.
    backend : VectorBackend
        PLDA on the extractor's i-vectors of windows.
    calibration : (float, float)
        ``(a, b)``: a pair of windows' PLDA score ``s`` as a calibrated log-likelihood
        ratio ``a s + b`` that the two are of one speaker (learnt on dev conversations'
        window pairs: :func:`calibrate_pairs`).
    threshold : float
        Clusters merge while the average calibrated LLR of their pairs of windows exceeds
        it: 0, the Bayes decision at even odds.
    window, hop, shortest : int
        Frames (10 ms): 150, 75, and the shortest stretch of speech that gets a window, 30.
    relevance : float
        MAP relevance of the resegmentation's speaker models.
    penalty : float
        Cost of a change of speaker in the resegmentation, nats.
    passes, min_speech : int
        Resegmentation passes after the first, and the frames a speaker must keep through
        each to stay (150: 1.5 s; chosen on dev conversations).
    """

    def __init__(self, system, detector, extractor, backend, *,
                 calibration: tuple[float, float] = (1.0, 0.0), threshold: float = 0.0,
                 window: int = 150, hop: int = 75, shortest: int = 30,
                 relevance: float = 16.0, penalty: float = 20.0,
                 passes: int = 2, min_speech: int = 150):
        self.check(system, detector, window=window, hop=hop, shortest=shortest,
                   passes=passes, min_speech=min_speech)
        if extractor.ubm.fingerprint() != system.ubm.fingerprint():
            raise ParameterError("the i-vector extractor was trained on another UBM than the "
                                 "system's")
        self.system, self.detector = system, detector
        self.extractor, self.backend = extractor, backend
        a, b = (float(v) for v in calibration)
        if not (np.isfinite(a) and np.isfinite(b) and a > 0 and np.isfinite(threshold)):
            raise ParameterError(f"calibration (a, b) needs a finite a > 0 and b, and a "
                                 f"finite threshold; got {calibration}, {threshold}")
        self.calibration = (a, b)
        self.threshold, self.window, self.hop, self.shortest = threshold, window, hop, shortest
        self.relevance, self.penalty = relevance, penalty
        self.passes, self.min_speech = passes, min_speech

    @staticmethod
    def check(system, detector, *, window: int = 150, hop: int = 75, shortest: int = 30,
              passes: int = 2, min_speech: int = 150, **_) -> None:
        """ParameterError if a diarizer of ``system`` and ``detector`` with these settings
        cannot be made (before training one: :func:`~.training.train_diarizer`)."""
        if system.config.vad != "none":
            raise ParameterError("diarization needs a system whose features keep every frame "
                                 f"(vad 'none'); this one's VAD is {system.config.vad!r}")
        if detector.config.frame_shift_ms != system.config.frame_shift_ms:
            raise ParameterError(f"the speech detector's frames ({detector.config.frame_shift_ms}"
                                 f" ms) are not the system's ({system.config.frame_shift_ms} ms)")
        if not 0 < hop <= window or shortest < 1 or passes < 0 or min_speech < 1:
            raise ParameterError(f"need 0 < hop <= window, shortest >= 1, passes >= 0 and "
                                 f"min_speech >= 1; got hop {hop}, window {window}, shortest "
                                 f"{shortest}, passes {passes}, min_speech {min_speech}")

    # --- files ---------------------------------------------------------------------------

    def save(self, path) -> None:
        """Write what diarization adds to the system and the detector (the i-vector
        extractor, float16 as the systems' subspaces, the PLDA back-end, the calibration
        and the settings) to ``path`` (``.npz``) atomically. It names the fingerprints of
        the system's UBM and of the detector it goes with."""
        from .._io import write_npz

        meta, arrays = self.backend.state()
        arrays["T"] = self.extractor.T.astype(np.float16)
        write_npz(path, arrays, format_name=FORMAT_NAME, format_version=FORMAT_VERSION,
                  metadata={"backend": meta, "ubm_fingerprint": self.system.ubm.fingerprint(),
                            "detector_fingerprint": self.detector.fingerprint(),
                            "calibration": list(self.calibration), **self.settings()})

    #: The settings a diarization file records (:meth:`settings`).
    SETTINGS = ("threshold", "window", "hop", "shortest", "relevance", "penalty", "passes",
                "min_speech")

    def settings(self) -> dict:
        """The settings beside the models, as keyword arguments of the constructor."""
        return {k: getattr(self, k) for k in self.SETTINGS}

    @classmethod
    def load(cls, path, system, detector) -> "Diarizer":
        """Read a file of :meth:`save` for ``system`` and ``detector``.

        Raises
        ------
        ModelError
            Naming the file: not one, damaged, or made for another UBM or detector.
        """
        from .._io import read_npz
        from ..backend.vectors import VectorBackend
        from ..errors import ModelError
        from ..gmm.ivector import IVectorExtractor

        _, header = read_npz(path, (), format_name=FORMAT_NAME, format_version=FORMAT_VERSION,
                             what="diarization model")
        meta = header["metadata"]
        try:
            keys = VectorBackend.state_keys(meta["backend"])
            arrays, _ = read_npz(path, (*keys, "T"), format_name=FORMAT_NAME,
                                 format_version=FORMAT_VERSION, what="diarization model")
            if meta["ubm_fingerprint"] != system.ubm.fingerprint():
                raise ModelError(f"made for the UBM {meta['ubm_fingerprint']}, not this "
                                 f"system's {system.ubm.fingerprint()}")
            if meta["detector_fingerprint"] != detector.fingerprint():
                raise ModelError(f"made with the speech detector {meta['detector_fingerprint']}"
                                 f", not {detector.fingerprint()}")
            extractor = IVectorExtractor(system.ubm, arrays["T"].astype(np.float32),
                                         metadata={"ubm_fingerprint": meta["ubm_fingerprint"]})
            backend = VectorBackend.from_state(meta["backend"], arrays)
            settings = {k: meta[k] for k in cls.SETTINGS}
            return cls(system, detector, extractor, backend,
                       calibration=tuple(meta["calibration"]), **settings)
        except (KeyError, TypeError) as exc:
            raise ModelError(f"{path}: its metadata lacks {exc}; the file is damaged") from None
        except (ModelError, ParameterError, ValueError) as exc:
            raise ModelError(f"{path}: {exc}") from None

    @staticmethod
    def describe_file(path) -> str:
        """A human-readable summary of a file of :meth:`save` (``speakergmm info``), read
        without the system and detector it goes with."""
        from .._io import read_npz

        arrays, header = read_npz(path, ("T",), format_name=FORMAT_NAME,
                                  format_version=FORMAT_VERSION, what="diarization model")
        meta = header["metadata"]
        k, d, r = arrays["T"].shape
        a, b = meta.get("calibration", (1.0, 0.0))
        return "\n".join([
            f"diarization model: i-vector extractor R={r} on a UBM of K={k}, D={d} "
            f"({meta.get('ubm_fingerprint')}), speech detector {meta.get('detector_fingerprint')}",
            f"window pairs calibrated as LLR = {a:.4g} s + {b:.4g}; clustering stops at "
            f"{meta.get('threshold')}",
            "settings: " + ", ".join(f"{k_}={meta[k_]}" for k_ in Diarizer.SETTINGS
                                     if k_ != "threshold" and k_ in meta)])

    @classmethod
    def bundled(cls, band: str = "wideband") -> "Diarizer":
        """The diarizer of a bundled system: ``speakergmm/models/diarization-<band>.npz``
        with the bundled system and speech detector of that band."""
        from ..pretrained import diarization_path, load_speech_detector
        from ..system import load_system

        return cls.load(diarization_path(band), load_system(band), load_speech_detector(band))

    def __call__(self, y: np.ndarray, sr: int, *, num_speakers: int | None = None,
                 max_speakers: int | None = None) -> Diarization:
        """Diarize one recording in memory.

        Parameters
        ----------
        y : np.ndarray [shape=(n,)]
            Mono signal.
        sr : int
        num_speakers : int, optional
            Exactly this many speakers (when known).
        max_speakers : int, optional
            At most this many.
        """
        from ..frontend.audio import resample

        rate = self.system.config.sample_rate
        y = np.asarray(y, np.float32)
        if sr != rate:
            y = resample(y, orig_sr=sr, target_sr=rate)
        return self._diarize(_chunks([y], self.chunk_samples), num_speakers, max_speakers)

    def diarize_file(self, path, *, num_speakers: int | None = None,
                     max_speakers: int | None = None) -> Diarization:
        """Diarize an audio file read in blocks, as :meth:`__call__` would its signal:
        memory grows with the windows and speech frames (about 60 MB an hour), not with
        the audio."""
        from ..frontend.audio import AudioBlocks

        with AudioBlocks(path, sr=self.system.config.sample_rate) as blocks:
            return self._diarize(_chunks(blocks, self.chunk_samples), num_speakers,
                                 max_speakers)

    #: Seconds of audio taken at a time: speech detection, features and the first stage
    #: of clustering work on chunks of it (a last chunk up to twice as long).
    CHUNK_SECONDS = 600.0
    #: A speaker's pauses shorter than this, in seconds, stay within the turn.
    bridge = BRIDGE_SECONDS
    #: The calibrated LLR above which windows of one chunk merge before the chunks are
    #: clustered together (recordings of more than one chunk): posterior 0.99.
    SURE = 4.6

    @property
    def chunk_samples(self) -> int:
        hop = self.system.config.hop_length
        return int(self.CHUNK_SECONDS * self.system.config.sample_rate) // hop * hop

    def _diarize(self, chunks, num_speakers, max_speakers) -> Diarization:
        for name, value in (("num_speakers", num_speakers), ("max_speakers", max_speakers)):
            if value is not None and value < 1:
                raise ParameterError(f"{name} must be >= 1, got {value}")
        from .clustering import cluster_windows

        config = self.system.config
        speech, xs, windows, vectors, chunk_of, samples = [], [], [], [], [], 0
        frames = 0
        for k, (y, last) in enumerate(chunks):
            samples += len(y)
            if not len(y):
                continue
            found, x, sp = speech_features(self.system, self.detector, y, config.sample_rate,
                                           window=self.window, hop=self.hop,
                                           shortest=self.shortest)
            # a chunk's frames, but for the last, stop where the next chunk starts (no
            # features, as for a flat chunk: no speech)
            n = len(sp) if last else len(y) // config.hop_length
            sp = sp[:n] if x is not None else np.zeros(min(n, len(sp)), bool)
            found = [(a, min(b, len(sp))) for a, b in found if a < len(sp)]
            if found:
                stats = [self.system.ubm.accumulate(x[a:b]) for a, b in found]
                vectors.append(self.extractor.extract(np.array([s.n for s in stats]),
                                                      np.array([s.f for s in stats])))
                windows += [(frames + a, frames + b) for a, b in found]
                chunk_of += [k] * len(found)
            if x is not None:
                xs.append(x[:len(sp)][sp])
            speech.append(sp)
            frames += len(sp)
        seconds = samples / config.sample_rate
        if not windows:
            return Diarization([], [], seconds)
        speech = np.concatenate(speech)
        xs = np.concatenate(xs)
        plda = self.backend.plda
        u = plda.diagonal(self.backend.transform(np.concatenate(vectors)))
        a, b = self.calibration
        labels = cluster_windows(u, np.array(chunk_of), plda.pair_form(), scale=a, offset=b,
                                 threshold=self.threshold, sure=self.SURE,
                                 num_speakers=num_speakers, max_speakers=max_speakers)
        # each cluster's windows' statistics (frames of two windows count twice), from the
        # speech frames (a window lies within a run of speech): the windows' own were not
        # kept, K x D floats each
        at = np.cumsum(speech) - 1
        n, f = [], []
        for label in range(int(labels.max()) + 1):
            rows = np.concatenate([np.arange(at[w0], at[w0] + (w1 - w0))
                                   for (w0, w1), lab in zip(windows, labels) if lab == label])
            got = self.system.ubm.accumulate(xs[rows])
            n.append(got.n)
            f.append(got.f)
        path, post = self._resegment(xs, np.array(n), np.array(f))
        labelled = np.full(len(speech), -1)
        labelled[speech] = path
        posterior = np.zeros(len(speech))
        posterior[speech] = post
        shift = config.frame_shift_ms / 1000
        return _turns(*_bridged(labelled, posterior, round(self.bridge / shift)), seconds,
                      shift)

    def pair_scores(self, stats) -> np.ndarray:
        """The raw (uncalibrated) PLDA scores of every pair of windows, symmetric,
        ``(windows, windows)``, from the windows' statistics."""
        from .clustering import Groups, pair_matrix

        ivectors = self.extractor.extract(np.array([s.n for s in stats]),
                                          np.array([s.f for s in stats]))
        plda = self.backend.plda
        alpha, beta, c = plda.pair_form()
        u = plda.diagonal(self.backend.transform(ivectors))
        return pair_matrix(Groups.of(u, alpha), beta, c)

    def windows(self, y: np.ndarray, sr: int) -> tuple[list, list, np.ndarray | None,
                                                     np.ndarray]:
        """``(windows, their statistics, features, speech)`` of a recording at the
        system's rate (:func:`speech_features`)."""
        windows, x, speech = speech_features(self.system, self.detector, y, sr,
                                             window=self.window, hop=self.hop,
                                             shortest=self.shortest)
        return windows, [self.system.ubm.accumulate(x[a:b]) for a, b in windows], x, speech

    def _resegment(self, xs, n, f) -> tuple[np.ndarray, np.ndarray]:
        """Each speech frame's cluster and its posterior, from the clusters' statistics
        ``n`` (c, K) and ``f`` (c, K, D).

        Passes of: a MAP model per cluster, frames scored, Viterbi; after the first pass
        the models are learnt again from the frames each cluster got, and a cluster left
        with less than ``min_speech`` frames is dropped (its frames go to the others in
        the next pass), as a VB-HMM's speaker priors shrink an unneeded speaker away.
        """
        from ..gmm.adapt import map_parameters
        from ..gmm.mixture import DiagGMM

        ubm = self.system.ubm
        k, d = ubm.means.shape
        for step in range(1 + self.passes):
            _, means, _ = map_parameters(ubm, n, f, relevance=self.relevance)
            # each speaker's whole GMM: the mixture's one-GEMM kernel scores every
            # component faster than gathering the UBM's top-C per frame would
            loglik = np.stack([DiagGMM(ubm.weights, m, ubm.variances).log_likelihood(xs)
                               for m in means], axis=1)
            path = viterbi_labels(loglik, penalty=self.penalty) if len(n) > 1 else \
                np.zeros(len(xs), int)
            if step == self.passes:
                break
            counts = np.bincount(path, minlength=len(n))
            keep = np.flatnonzero(counts >= self.min_speech)
            if keep.size == 0:
                keep = np.array([int(np.argmax(counts))])
            n, f = np.zeros((keep.size, k)), np.zeros((keep.size, k, d))
            for i, j in enumerate(keep):
                got = ubm.accumulate(xs[path == j])
                n[i], f[i] = got.n, got.f
        post = np.exp(loglik - loglik.max(axis=1, keepdims=True))
        post /= post.sum(axis=1, keepdims=True)
        return path, post[np.arange(len(xs)), path]


#: The constructor's default of each setting.
Diarizer.DEFAULTS = {k: inspect.signature(Diarizer).parameters[k].default
                     for k in Diarizer.SETTINGS}


def _flat(y: np.ndarray, config) -> bool:
    """Whether the recording's energy stays flat, as no speech does (steady noise, a tone):
    what feature extraction refuses (:data:`speakergmm.frontend.vad.MIN_RANGE_DB`)."""
    from ..frontend.vad import MIN_RANGE_DB, energy_spread, frame_energy_db

    energy = frame_energy_db(y=y, hop_length=config.hop_length, win_length=config.win_length)
    return energy_spread(energy) < MIN_RANGE_DB


def _bridged(frames: np.ndarray, posterior: np.ndarray, shortest: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame labels with each pause of fewer than ``shortest`` frames between two runs
    of one speaker given to that speaker (its posterior: the frame before the pause's)."""
    frames, posterior = frames.copy(), posterior.copy()
    edges = np.flatnonzero(np.diff(np.r_[-2, frames, -2]))
    for a, b in zip(edges[:-1].tolist(), edges[1:].tolist()):
        if frames[a] < 0 and 0 < a and b < len(frames) and b - a < shortest \
                and frames[a - 1] == frames[b]:
            frames[a:b] = frames[a - 1]
            posterior[a:b] = posterior[a - 1]
    return frames, posterior


def _turns(frames: np.ndarray, posterior: np.ndarray, seconds: float, shift: float
           ) -> Diarization:
    """Turns from per-frame labels: runs of one label, frame t covering [t - 0.5, t + 0.5)
    shifts; speakers renamed in order of first appearance."""
    names: dict[int, str] = {}
    turns, means = [], []
    edges = np.flatnonzero(np.diff(np.r_[-2, frames, -2]))
    for a, b in zip(edges[:-1].tolist(), edges[1:].tolist()):
        label = int(frames[a])
        if label < 0:
            continue
        name = names.setdefault(label, f"spk{len(names)}")
        start, end = max(0.0, (a - 0.5) * shift), min(seconds, (b - 0.5) * shift)
        turns.append(Turn(round(start, 3), round(end, 3), name))
        means.append(float(posterior[a:b].mean()))
    return Diarization(turns, means, seconds, list(names.values()))


def _chunks(blocks, size: int):
    """``(chunk, is_last)`` of ``size`` samples from blocks of any length; the last chunk
    takes what is left (up to twice ``size``), so that no chunk is too short to frame."""
    buffer, held = [], 0
    for block in blocks:
        buffer.append(np.asarray(block, np.float32))
        held += len(block)
        if held >= 2 * size:
            joined = np.concatenate(buffer)
            while len(joined) >= 2 * size:
                yield joined[:size], False
                joined = joined[size:]
            buffer, held = [joined], len(joined)
    yield (np.concatenate(buffer) if buffer else np.zeros(0, np.float32)), True
