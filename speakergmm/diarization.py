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
   ``max_speakers``).
5. **Resegmentation** at frame resolution: a MAP model per cluster (relevance
   ``relevance``) from its windows' statistics; each speech frame scored against each
   model; a Viterbi pass over the clusters, each change of
   speaker costing ``penalty`` nats; then ``passes`` more with the models learnt from the
   frames each cluster got, a cluster left with under ``min_speech`` frames dropped.

The result is a list of turns (RTTM) with, for each, the mean posterior of its speaker
over its frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .data.rttm import Turn
from .errors import ParameterError

__all__ = ["Diarizer", "Diarization", "viterbi_labels", "speech_windows", "calibrate_pairs",
           "plot_timeline",
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
    from .frontend.vad import speech_runs

    out = []
    for a, b in speech_runs(speech):
        if b - a < shortest:
            continue
        starts = list(range(a, max(a + 1, b - window + 1), hop))
        out += [(s, min(b, s + window)) for s in starts]
        if out[-1][1] < b:
            out.append((max(a, b - window), b))
    return out


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
        if system.config.vad != "none":
            raise ParameterError("diarization needs a system whose features keep every frame "
                                 f"(vad 'none'); this one's VAD is {system.config.vad!r}")
        if detector.config.frame_shift_ms != system.config.frame_shift_ms:
            raise ParameterError(f"the speech detector's frames ({detector.config.frame_shift_ms}"
                                 f" ms) are not the system's ({system.config.frame_shift_ms} ms)")
        if extractor.ubm.fingerprint() != system.ubm.fingerprint():
            raise ParameterError("the i-vector extractor was trained on another UBM than the "
                                 "system's")
        if not 0 < hop <= window or shortest < 1 or passes < 0 or min_speech < 1:
            raise ParameterError(f"need 0 < hop <= window, shortest >= 1, passes >= 0 and "
                                 f"min_speech >= 1; got hop {hop}, window {window}, shortest "
                                 f"{shortest}, passes {passes}, min_speech {min_speech}")
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

    # --- files ---------------------------------------------------------------------------

    def save(self, path) -> None:
        """Write what diarization adds to the system and the detector (the i-vector
        extractor, float16 as the systems' subspaces, the PLDA back-end, the calibration
        and the settings) to ``path`` (``.npz``) atomically. It names the fingerprints of
        the system's UBM and of the detector it goes with."""
        from ._io import write_npz

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
        from ._io import read_npz
        from .backend.vectors import VectorBackend
        from .errors import ModelError
        from .gmm.ivector import IVectorExtractor

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

    @classmethod
    def bundled(cls, band: str = "wideband") -> "Diarizer":
        """The diarizer of a bundled system: ``speakergmm/models/diarization-<band>.npz``
        with the bundled system and speech detector of that band."""
        from .pretrained import diarization_path, load_speech_detector
        from .system import load_system

        return cls.load(diarization_path(band), load_system(band), load_speech_detector(band))

    def __call__(self, y: np.ndarray, sr: int, *, num_speakers: int | None = None,
                 max_speakers: int | None = None) -> Diarization:
        """Diarize one recording.

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
        from .frontend.audio import resample

        for name, value in (("num_speakers", num_speakers), ("max_speakers", max_speakers)):
            if value is not None and value < 1:
                raise ParameterError(f"{name} must be >= 1, got {value}")
        config = self.system.config
        y = np.asarray(y, np.float32)
        if sr != config.sample_rate:
            y, sr = resample(y, orig_sr=sr, target_sr=config.sample_rate), config.sample_rate
        seconds = len(y) / sr
        windows, stats, x, speech = self.windows(y, sr)
        if not windows:
            return Diarization([], [], seconds)
        labels = self._clusters(stats, num_speakers, max_speakers)
        frames, posterior = self._resegment(x, speech, stats, labels)
        return _turns(frames, posterior, seconds, config.frame_shift_ms / 1000)

    def pair_scores(self, stats) -> np.ndarray:
        """The raw (uncalibrated) PLDA scores of every pair of windows, symmetric,
        ``(windows, windows)``, from the windows' statistics."""
        ivectors = self.extractor.extract(np.array([s.n for s in stats]),
                                          np.array([s.f for s in stats]))
        models = self.backend.models([[v] for v in ivectors])
        scores = models.scores(self.backend.transform(ivectors))
        return (scores + scores.T) / 2

    def windows(self, y: np.ndarray, sr: int) -> tuple[list, list, np.ndarray | None,
                                                     np.ndarray]:
        """``(windows, their statistics, features, speech)`` of a recording at the
        system's rate (no windows: empty lists and None features)."""
        from .frontend.features import extract_features

        config = self.system.config
        speech = self.detector.detect(y=y, sr=sr)
        windows = speech_windows(speech, window=self.window, hop=self.hop,
                                 shortest=self.shortest)
        if not windows or _flat(y, config):  # (whose features would be refused)
            return [], [], None, speech
        x = extract_features(y=y, sr=sr, config=config)
        n = min(len(x), len(speech))
        x, speech = x[:n], speech[:n]
        return windows, [self.system.ubm.accumulate(x[a:b]) for a, b in windows], x, speech

    def _clusters(self, stats, num_speakers, max_speakers) -> np.ndarray:
        from scipy.cluster.hierarchy import fcluster, linkage
        from scipy.spatial.distance import squareform

        if len(stats) == 1:
            return np.zeros(1, int)
        a, b = self.calibration
        scores = a * self.pair_scores(stats) + b
        # average linkage of scores as distances from the best score: a cut at distance
        # top - threshold merges while the average score stays above the threshold
        top = float(scores.max())
        distance = top - scores
        np.fill_diagonal(distance, 0.0)
        tree = linkage(squareform(distance, checks=False), method="average")
        if num_speakers is not None:
            return fcluster(tree, t=num_speakers, criterion="maxclust") - 1
        labels = fcluster(tree, t=top - self.threshold, criterion="distance") - 1
        if max_speakers is not None and labels.max() + 1 > max_speakers:
            labels = fcluster(tree, t=max_speakers, criterion="maxclust") - 1
        return labels

    def _resegment(self, x, speech, stats, labels) -> tuple[np.ndarray, np.ndarray]:
        """Each frame's cluster (-1 for non-speech) and its posterior.

        Passes of: a MAP model per cluster, frames scored, Viterbi; after the first pass
        the models are learnt again from the frames each cluster got, and a cluster left
        with less than ``min_speech`` frames is dropped (its frames go to the others in
        the next pass), as a VB-HMM's speaker priors shrink an unneeded speaker away.
        """
        ubm = self.system.ubm
        k, d = ubm.means.shape
        c = int(labels.max()) + 1
        n = np.zeros((c, k))
        f = np.zeros((c, k, d))
        for s, label in zip(stats, labels):
            n[label] += s.n
            f[label] += s.f
        from .gmm.adapt import map_parameters
        from .gmm.mixture import DiagGMM

        xs = x[speech]
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
        frames = np.full(len(x), -1)
        frames[speech] = path
        posterior = np.zeros(len(x))
        posterior[speech] = post[np.arange(len(xs)), path]
        return frames, posterior


def _flat(y: np.ndarray, config) -> bool:
    """Whether the recording's energy stays flat, as no speech does (steady noise, a tone):
    what feature extraction refuses (:data:`speakergmm.frontend.vad.MIN_RANGE_DB`)."""
    from .frontend.vad import MIN_RANGE_DB, energy_spread, frame_energy_db

    energy = frame_energy_db(y=y, hop_length=config.hop_length, win_length=config.win_length)
    return energy_spread(energy) < MIN_RANGE_DB


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


def calibrate_pairs(diarizer: Diarizer,
                    recordings: Sequence[tuple[np.ndarray, int, Sequence[Turn]]], *,
                    purity: float = 0.8) -> tuple[float, float]:
    """``(a, b)`` calibrating a diarizer's pair scores: logistic regression at even odds
    (:func:`~speakergmm.backend.calibration.train_logistic`) of the PLDA scores of every
    pair of windows within each recording, a pair being of one speaker or of two by the
    reference. Windows under ``purity`` of one reference speaker are left out.

    Parameters
    ----------
    diarizer : Diarizer
    recordings : sequence of (signal, rate, reference turns)
        Dev conversations (at the system's rate).
    """
    from .backend.calibration import train_logistic

    same, different = [], []
    for y, sr, turns in recordings:
        windows, stats, _, _ = diarizer.windows(np.asarray(y, np.float32), sr)
        if len(windows) < 2:
            continue
        scores = diarizer.pair_scores(stats)
        shift = diarizer.system.config.frame_shift_ms / 1000
        who = []
        for a, b in windows:
            t = np.arange(a, b) * shift
            time = {s: 0 for s in {x.speaker for x in turns}}
            for x in turns:
                time[x.speaker] += int(np.sum((t >= x.start) & (t < x.end)))
            best = max(time, key=time.get) if time else None
            who.append(best if best is not None and time[best] >= purity * (b - a) else None)
        for i in range(len(windows)):
            for j in range(i + 1, len(windows)):
                if who[i] is not None and who[j] is not None:
                    (same if who[i] == who[j] else different).append(scores[i, j])
    if not same or not different:
        raise ParameterError("calibration needs pairs of windows of one speaker and of two: "
                             f"got {len(same)} and {len(different)}")
    weights, offset = train_logistic(np.array(same)[:, None], np.array(different)[:, None],
                                     0.5)[:2]
    return float(weights[0]), float(offset)


def plot_timeline(results, path, *, reference=None) -> None:
    """A timeline a person reads at a glance: one lane per speaker of each recording, a
    bar where they speak (shaded by the turn's posterior when known), and the reference's
    lanes beside it when given.

    Parameters
    ----------
    results : mapping recording -> Diarization or list of Turn
    path : path
        PNG to write (atomically).
    reference : mapping recording -> list of Turn, optional
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .eval.report import save_figure

    rows = []  # (label, turns, shades)
    for rec in results:
        found = results[rec]
        turns = found.turns if isinstance(found, Diarization) else list(found)
        shades = found.posteriors if isinstance(found, Diarization) else [1.0] * len(turns)
        for side, side_turns, side_shades in (("", turns, shades),
                                              ("ref ", (reference or {}).get(rec), None)):
            if side_turns is None:
                continue
            for speaker in sorted({t.speaker for t in side_turns}):
                mine = [(t, 1.0 if side_shades is None else side_shades[i])
                        for i, t in enumerate(side_turns) if t.speaker == speaker]
                rows.append((f"{rec}  {side}{speaker}", mine, bool(side)))
    height = max(1.5, 0.3 * len(rows) + 0.9)
    fig, ax = plt.subplots(figsize=(10, min(height, 60)))
    colours = plt.get_cmap("tab10")
    for i, (label, mine, is_ref) in enumerate(rows):
        y = len(rows) - 1 - i
        colour = "0.45" if is_ref else colours(i % 10)
        for turn, shade in mine:
            ax.broken_barh([(turn.start, turn.duration)], (y - 0.35, 0.7), color=colour,
                           alpha=0.35 + 0.65 * float(np.clip(shade, 0, 1)))
    ax.set_yticks(range(len(rows)), [r[0] for r in rows][::-1], fontsize=8)
    ax.set_xlabel("time (s)")
    ax.set_xlim(left=0)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
