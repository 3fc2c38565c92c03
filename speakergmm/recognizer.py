"""Enroll, verify and identify speakers from recordings: what the CLI commands call.

A :class:`Recognizer` ties a UBM (the bundled default unless one is given) to a speaker
store and to the feature config stored in the UBM, so audio given by a user goes through
exactly the pipeline the UBM was trained with.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Iterable

import numpy as np

from .backend.calibration import bayes_threshold
from .backend.scoring import llr
from .constants import DEFAULT_THRESHOLD, MIN_ENROLL_SECONDS
from .constants import SCORING_METHODS as METHODS
from .errors import FeatureError, ModelError, SpeakerGMMError, SpeakerGMMWarning
from .frontend.audio import load, resample
from .frontend.config import FeatureConfig
from .frontend.features import extract_features
from .gmm.adapt import SpeakerModel
from .gmm.eigenchannel import EigenChannel
from .gmm.mixture import DiagGMM
from .store import SpeakerInfo, SpeakerStore, check_speaker_id

__all__ = ["Recognizer", "Verification", "Identification", "METHODS", "BandMismatch",
           "ShortEnrollment", "describe_store"]


#: Other speakers each new recording is scored against for self-calibration (non-target
#: trials): spread over the store, so that the trials do not all come from one corner of it.
NONTARGET_MODELS = 20


class ShortEnrollment(SpeakerGMMWarning):
    """A speaker enrolled on less speech than a reliable model needs
    (:data:`~speakergmm.constants.MIN_ENROLL_SECONDS`)."""


class BandMismatch(SpeakerGMMWarning):
    """A recording sampled below the rate of the system's features: its upper band is empty,
    and its scores are not comparable with those of full-band audio."""




@dataclass(frozen=True)
class Verification:
    """The answer to "is this SPEAKER?" for one recording."""

    speaker: str
    audio: str
    score: float        # average per-frame log-likelihood ratio (speaker vs UBM)
    threshold: float
    accepted: bool
    method: str
    frames: int
    seconds: float      # speech scored: frames kept by the front end x frame shift
    llr: float | None = None        # calibrated log-likelihood ratio (natural log), if any
    posterior: float | None = None  # P(speaker | audio) at ``prior``, if calibrated
    prior: float = 0.5              # prior probability of the claim

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        verdict = "accept" if self.accepted else "reject"
        if self.llr is None:
            return (f"{verdict}: {self.audio} vs {self.speaker}: score {self.score:.4f} "
                    f"(threshold {self.threshold:g}, {self.method}, {self.frames} frames; "
                    "uncalibrated: 'speakergmm speakers calibrate')")
        return (f"{verdict}: {self.audio} vs {self.speaker}: LLR {self.llr:.2f}, "
                f"P = {self.posterior:.3f} at prior {self.prior:g} (threshold "
                f"{self.threshold:.2f}; raw score {self.score:.4f}, {self.seconds:.1f} s)")


@dataclass(frozen=True)
class Identification:
    """The answer to "who is speaking?" for one recording; ``speaker`` is None ("unknown")
    when the voice is more likely nobody enrolled (calibrated store), or when no score
    reaches the threshold (open-set identification)."""

    audio: str
    speaker: str | None
    ranking: list[tuple[str, float]]     # (speaker, raw score), best first
    threshold: float | None
    method: str
    frames: int
    seconds: float      # speech scored: frames kept by the front end x frame shift
    llrs: list[float] | None = None      # calibrated LLR of each ranked speaker, if any
    posteriors: list[float] | None = None  # P(ranked speaker | audio), if calibrated
    p_unknown: float | None = None       # P(nobody enrolled | audio), if calibrated
    prior: float = 0.5                   # prior probability that the voice is enrolled

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ranking"] = [{"speaker": s, "score": v} for s, v in self.ranking]
        for i, entry in enumerate(out["ranking"]):
            if self.llrs is not None:
                entry.update(llr=self.llrs[i], posterior=self.posteriors[i])
        del out["llrs"], out["posteriors"]
        return out

    def __str__(self) -> str:
        head = f"{self.audio}: {self.speaker if self.speaker is not None else 'unknown'}"
        if self.p_unknown is not None:
            head += f" (P(unknown) = {self.p_unknown:.3f} at prior {self.prior:g})"
        elif self.threshold is not None:
            head += f" (threshold {self.threshold:g})"
        if self.llrs is None:
            rows = [f"{i + 1:3d}. {s:24s} {v:9.4f}" for i, (s, v) in enumerate(self.ranking)]
        else:
            rows = [f"{i + 1:3d}. {s:24s} LLR {lr:7.2f}  P {p:.3f}  (raw {v:.4f})"
                    for i, ((s, v), lr, p) in enumerate(zip(self.ranking, self.llrs,
                                                            self.posteriors))]
        return "\n".join([head, *rows])


class Recognizer:
    """Speaker enrollment, verification and identification over one UBM and one store.

    Parameters
    ----------
    ubm : DiagGMM, path, or None
        The UBM; None loads the bundled default (see :mod:`speakergmm.pretrained`). Its
        metadata must hold the feature config it was trained with.
    store : SpeakerStore, path, or None
        The speaker store; None is the default store (:func:`default_store_path`).
    relevance : float
        MAP relevance factor for new enrollments.
    adapt : tuple of str
        Adapted parameters for new enrollments ("means", "weights", "variances").
    channel : EigenChannel, path, or None
        Session-variability compensation applied to every recording (trained for this UBM
        with ``speakergmm train-channel``). The store records it: its speakers are scored
        only with the same compensation.
    """

    def __init__(self, ubm: DiagGMM | str | os.PathLike | None = None,
                 store: SpeakerStore | str | os.PathLike | None = None, *,
                 relevance: float = 16.0, adapt: Iterable[str] = ("means",),
                 channel=None):
        if ubm is None:
            from .pretrained import load_default_ubm

            ubm = load_default_ubm()
        elif not isinstance(ubm, DiagGMM):
            ubm = DiagGMM.load(ubm)
        self.ubm = ubm
        try:
            self.config = FeatureConfig.from_dict(ubm.metadata["feature_config"])
        except (KeyError, TypeError):
            raise ModelError("the UBM's metadata holds no feature config, so audio cannot be "
                             "turned into matching features; train it with "
                             "'speakergmm train-ubm'") from None
        if self.config.dim != ubm.dim:
            raise ModelError(f"the UBM has dimension {ubm.dim} but its feature config gives "
                             f"{self.config.dim}")
        self.store = store if isinstance(store, SpeakerStore) else SpeakerStore(store)
        self.relevance = relevance
        self.adapt = tuple(adapt)
        if channel is not None and not isinstance(channel, EigenChannel):
            channel = EigenChannel.load(channel, ubm)
        if channel is not None and channel.ubm.fingerprint() != ubm.fingerprint():
            raise ModelError("the eigenchannel was trained with another UBM; train it again "
                             "with this UBM (speakergmm train-channel)")
        self.channel = channel
        self._channel_fp = channel.fingerprint() if channel is not None else None

    def features(self, path: str | os.PathLike) -> np.ndarray:
        """Features of one recording with the UBM's feature config (channel-compensated
        when the recognizer has a channel)."""
        y, native = load(path)
        rate = self.config.sample_rate
        if native < rate:
            warnings.warn(f"{path}: {native} Hz audio for a system of {rate} Hz features: "
                          f"nothing above {native // 2} Hz was recorded, and upsampling does "
                          f"not bring it back, so its scores mislead; score it with a system "
                          f"for {native} Hz audio", BandMismatch, stacklevel=2)
        x = extract_features(y=resample(y, orig_sr=native, target_sr=rate), sr=rate,
                             config=self.config, name=str(path))
        return x if self.channel is None else self.channel.compensate(x)

    def _seconds(self, frames: int) -> float:
        return round(frames * self.config.frame_shift_ms / 1000, 3)

    def enroll(self, speaker: str, audio: Iterable[str | os.PathLike], *,
               mode: str = "new") -> SpeakerInfo:
        """Enroll ``speaker`` from recordings (``mode``: "new", "append" or "replace").

        Every recording is read and checked before the store is touched, so a bad file
        leaves the store as it was.
        """
        check_speaker_id(speaker)
        self.store.check_ubm(self.ubm, self._channel_fp)
        paths = list(audio)
        if not paths:
            raise FeatureError("no enrollment audio given")
        feats = [self.features(p) for p in paths]
        stats = [self.ubm.accumulate(x) for x in feats]
        model = SpeakerModel.enroll(self.ubm, stats, relevance=self.relevance, adapt=self.adapt)
        seconds = self._seconds(sum(len(f) for f in feats))
        info = self.store.enroll(speaker, model, self.ubm, seconds=seconds,
                                 utterances=len(paths), mode=mode, channel=self._channel_fp,
                                 trials=self._calibration_trials(speaker, feats, stats, mode))
        if info.seconds < MIN_ENROLL_SECONDS:
            warnings.warn(f"{speaker}: {info.seconds:.1f} s of speech enrolled; below "
                          f"{MIN_ENROLL_SECONDS:g} s a model is unreliable (measured with the "
                          "bundled UBM: EER 3.4% at 12 s of speech, 7.8% at 5 s, 22% at 1 s); "
                          "enroll more audio with --append", ShortEnrollment, stacklevel=2)
        return info

    def _calibration_trials(self, speaker: str, feats, stats, mode: str) -> list:
        """Self-calibration trials of new recordings, scored now that their frames are at
        hand (top-C, as :meth:`verify` scores): each against its speaker's model without it
        (the speaker's earlier audio when appending, plus the other new recordings), and
        against up to :data:`NONTARGET_MODELS` other speakers spread over the store."""
        from .backend.scoring import prepare_test, score

        enrolled = [s.id for s in self.store.list()]
        earlier = None
        if mode == "append" and speaker in enrolled:
            earlier = self.store.model(speaker).stats
        tests = [prepare_test(self.ubm, x) for x in feats]
        trials = []
        for i, test in enumerate(tests):
            rest = [st for j, st in enumerate(stats) if j != i]
            if earlier is not None:
                rest.append(earlier)
            if not rest:
                continue  # one recording, nothing earlier: no model without it
            without = SpeakerModel.enroll(self.ubm, rest, relevance=self.relevance,
                                          adapt=self.adapt).adapted(self.ubm)
            trials.append((i, speaker, float(llr(self.ubm, without, test.X)), True))
        others = [s for s in enrolled if s != speaker]
        if others:
            pick = np.unique(np.linspace(0, len(others) - 1,
                                         min(NONTARGET_MODELS, len(others))).astype(int))
            for models in self.store.model_sets(self.ubm, self._channel_fp,
                                                ids=[others[j] for j in pick]):
                for i, test in enumerate(tests):
                    for model_id, value in zip(models.ids, score(self.ubm, models, test)):
                        trials.append((i, model_id, float(value), False))
        return trials

    def verify(self, speaker: str, audio: str | os.PathLike, *, method: str = "topc",
               threshold: float | None = None, prior: float = 0.5,
               c: int = 5) -> Verification:
        """Score one recording against one enrolled speaker and decide.

        With a store calibration (:meth:`SpeakerStore.calibrate`, top-C scoring) the result
        carries the calibrated log-likelihood ratio and the posterior probability of the
        claim at ``prior``, and the decision is the Bayes decision at that prior (accept
        when the LLR reaches ``log((1 - prior) / prior)``), unless ``threshold`` is given
        (then on the LLR). Without one the decision is on the raw score, at ``threshold``
        or :data:`~speakergmm.constants.DEFAULT_THRESHOLD`.
        """
        _check_method(method)
        speaker_model = self.store.adapted(speaker, self.ubm, self._channel_fp)
        x = self.features(audio)
        raw = float(llr(self.ubm, speaker_model, x, method=method, c=c))
        cal = self.store.calibration() if method == "topc" and c == 5 else None
        if cal is None:
            limit = DEFAULT_THRESHOLD if threshold is None else threshold
            return Verification(speaker, str(audio), raw, limit, raw >= limit, method, len(x),
                                self._seconds(len(x)), prior=prior)
        value = float(cal.transform([raw])[0])
        limit = bayes_threshold(prior) if threshold is None else threshold
        posterior = float(1.0 / (1.0 + np.exp(-(value - bayes_threshold(prior)))))
        return Verification(speaker, str(audio), raw, limit, value >= limit, method, len(x),
                            self._seconds(len(x)), llr=value, posterior=posterior,
                            prior=prior)

    def identify(self, audio: str | os.PathLike, *, top: int = 5,
                 threshold: float | None = None, prior: float = 0.5, method: str = "topc",
                 c: int = 5) -> Identification:
        """Rank all enrolled speakers for one recording, open set.

        With a store calibration (top-C scoring) each speaker's calibrated LLR gives its
        posterior among the M enrolled speakers and "unknown": ``prior`` is the prior
        probability that the voice is enrolled at all, shared equally by the M speakers, so
        that the more speakers are enrolled, the more evidence naming one takes. The answer
        is the most probable of the M + 1, unless ``threshold`` is given (then: the best
        speaker if its LLR reaches it). Without a calibration: the best speaker, or
        "unknown" below ``threshold`` on the raw score.
        """
        from .backend.scoring import prepare_test, score

        _check_method(method)
        self.store.check_ubm(self.ubm, self._channel_fp)
        x = self.features(audio)
        test = prepare_test(self.ubm, x, method=method, c=c)  # selection once, all blocks
        ids, parts = [], []
        for models in self.store.model_sets(self.ubm, self._channel_fp):
            ids.extend(models.ids)
            parts.append(score(self.ubm, models, test))
        scores = np.concatenate(parts)
        order = np.argsort(-scores, kind="stable")[: max(1, top)]
        ranking = [(ids[i], float(scores[i])) for i in order]
        cal = self.store.calibration() if method == "topc" and c == 5 else None
        if cal is None:
            best = ranking[0][0] if threshold is None or ranking[0][1] >= threshold else None
            return Identification(str(audio), best, ranking, threshold, method, len(x),
                                  self._seconds(len(x)), prior=prior)
        llrs = cal.transform(scores)
        # log of prior x likelihood ratio for "unknown" (index 0) and each speaker
        joint = np.concatenate([[np.log1p(-prior)], np.log(prior / len(ids)) + llrs])
        posterior = np.exp(joint - np.logaddexp.reduce(joint))
        if threshold is None:
            best = ranking[0][0] if posterior[1 + order[0]] > posterior[0] else None
        else:
            best = ranking[0][0] if llrs[order[0]] >= threshold else None
        return Identification(str(audio), best, ranking, threshold, method, len(x),
                              self._seconds(len(x)), llrs=[float(llrs[i]) for i in order],
                              posteriors=[float(posterior[1 + i]) for i in order],
                              p_unknown=float(posterior[0]), prior=prior)


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise SpeakerGMMError(f"unknown scoring method {method!r}; choose one of "
                              f"{', '.join(METHODS)}")


def describe_store(store: SpeakerStore) -> str:
    """Lines of ``speakergmm speakers list``."""
    rows = store.list()
    if not rows:
        return f"{store.path}: no speakers enrolled"
    lines = [f"{'speaker':24s} {'utts':>5s} {'speech s':>9s}  updated"]
    lines += [f"{s.id:24s} {s.utterances:5d} {s.seconds:9.1f}  {s.updated}" for s in rows]
    cal = store.calibration()
    tar, non, speakers = store.calibration_trials()
    lines.append(f"calibration trials: {tar.size} target, {non.size} non-target, of "
                 f"{speakers} speaker(s)")
    lines.append("calibration: none ('speakergmm speakers calibrate' learns one)" if cal is None
                 else f"calibration: llr = {cal.scale_:.4f} * score + {cal.offset_:.4f}, "
                      f"from {cal.n_target_} target and {cal.n_nontarget_} non-target trials")
    return "\n".join(lines)
