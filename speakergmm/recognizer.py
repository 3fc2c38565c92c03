"""Enroll, verify and identify speakers from recordings: what the CLI commands call.

A :class:`Recognizer` ties a recognition system (:mod:`speakergmm.system`: the bundled
``wideband`` or ``telephone`` one, a file of one's own, or a bare UBM) to a speaker store,
so audio given by a user goes through exactly the pipeline the system was built with, and
scores come out S-normalised and calibrated as log-likelihood ratios.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .backend.calibration import bayes_threshold
from .backend.models import stack_models
from .backend.scoring import TestUtterance, prepare_test, score
from .constants import DEFAULT_THRESHOLD, IDENTIFY_PRIOR, MIN_ENROLL_SECONDS
from .constants import SCORING_METHODS as METHODS
from .errors import FeatureError, SpeakerGMMError, SpeakerGMMWarning
from .exec import one_blas_thread
from .frontend.quality import BandMismatch, Quality, SignalMeter, one_band_note
from .gmm.adapt import SpeakerModel
from .gmm.eigenchannel import EigenChannel
from .gmm.mixture import DiagGMM
from .store import (
    SpeakerInfo,
    SpeakerStore,
    StoreError,
    calibration_advice,
    check_speaker_id,
)
from .store.selfcal import adapted
from .store.selfcal import relearn as relearn_calibration
from .system import (
    BUNDLED_SYSTEMS,
    DEFAULT_SYSTEM,
    System,
    load_system,
    system_record,
)

__all__ = ["Recognizer", "Verification", "Identification", "StoreScores", "METHODS",
           "BandMismatch", "SystemChosen", "ShortEnrollment", "UncalibratedStore"]


#: Other speakers each new recording is scored against for self-calibration (non-target
#: trials): spread over the store, so that the trials do not all come from one corner of it.
NONTARGET_MODELS = 20


class UncalibratedStore(SpeakerGMMWarning):
    """A store that has the trials to learn its own calibration but still decides with
    the system's (:func:`calibration_advice`)."""


# A recording split into an enrollment half and a test half for a self-calibration target
# trial when it is a speaker's only one: each half at least this many frames (1.5 s).
_SPLIT_FRAMES = 150


class SystemChosen(SpeakerGMMWarning):
    """A new store took another bundled system than the default, for the band of its
    first enrollment's audio."""


class ShortEnrollment(SpeakerGMMWarning):
    """A speaker enrolled on less speech than a reliable model needs
    (:data:`~speakergmm.constants.MIN_ENROLL_SECONDS`)."""


@dataclass(frozen=True)
class StoreScores:
    """One recording against every enrolled speaker (:meth:`Recognizer.scores`)."""

    ids: list[str]                # enrolled speakers, sorted
    raw: np.ndarray               # [shape=(M,)] average per-frame LLRs
    llrs: np.ndarray | None       # [shape=(M,)] calibrated LLRs, if a calibration is in force
    frames: int
    seconds: float
    quality: Quality | None = None  # the recording's seconds of speech and SNR estimate


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
    snr_db: float | None = None     # blind SNR estimate of the recording (WADA)
    upper_band_db: float | None = None  # its energy above 4.5 kHz against the whole
    caution: str | None = None      # why the decision is unreliable (short, noisy, phone)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        verdict = "accept" if self.accepted else "reject"
        if self.llr is None:
            why = ("uncalibrated: 'speakergmm speakers calibrate'" if self.method == "topc"
                   else f"--method {self.method} is never calibrated: only the system's "
                        "top-C is")
            return (f"{verdict}: {self.audio} vs {self.speaker}: score {self.score:.4f} "
                    f"(threshold {self.threshold + 0.0:g}, {self.method}, {self.frames} "
                    f"frames; {why})" + _caution(self.caution))
        # (+ 0.0: the Bayes threshold at prior 0.5 is -0.0, shown as "-0.00")
        return (f"{verdict}: {self.audio} vs {self.speaker}: LLR {self.llr:.2f}, "
                f"P = {self.posterior:.3f} at prior {self.prior:g} (threshold "
                f"{self.threshold + 0.0:.2f}; raw score {self.score:.4f}, {self.seconds:.1f} s)"
                + _caution(self.caution))


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
    prior: float = IDENTIFY_PRIOR        # prior probability that the voice is enrolled
    snr_db: float | None = None          # blind SNR estimate of the recording (WADA)
    upper_band_db: float | None = None   # its energy above 4.5 kHz against the whole
    caution: str | None = None           # why the answer is unreliable (short, noisy, phone)

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
        return "\n".join([head + _caution(self.caution), *rows])


def _measures(quality: Quality) -> dict[str, Any]:
    """A result's quality fields."""
    return {"snr_db": quality.snr_db, "upper_band_db": quality.upper_band_db,
            "caution": quality.note}


def _caution(note: str | None) -> str:
    return "" if note is None else f"\n  caution: {note}"


class Recognizer:
    """Speaker enrollment, verification and identification over one system and one store.

    Parameters
    ----------
    ubm : DiagGMM, path, or None
        A bare UBM to score with (no cohort, no calibration but the store's own), for
        stores enrolled with ``--ubm``. Its metadata must hold the feature config it was
        trained with. Give ``system`` instead for the complete product path.
    store : SpeakerStore, path, or None
        The speaker store; None is the default store (:func:`default_store_path`).
    relevance : float, optional
        MAP relevance for new enrollments; default: the system's (16 for a bare UBM).
    adapt : tuple of str
        Adapted parameters for new enrollments ("means", "weights", "variances").
    channel : EigenChannel, path, or None
        With ``ubm``: session-variability compensation applied to every recording.
    system : System, name, path, or None
        The recognition system (:mod:`speakergmm.system`): ``"wideband"`` or
        ``"telephone"`` (bundled), or a file from ``speakergmm build-system``. Without
        ``system`` and ``ubm``: the system the store records, else, for a store of
        speakers enrolled before systems existed, the UBM bundled then; a new store gets
        the default system (``wideband``). The store records the system it belongs to.
    """

    def __init__(self, ubm: DiagGMM | str | os.PathLike | None = None,
                 store: SpeakerStore | str | os.PathLike | None = None, *,
                 relevance: float | None = None, adapt: Iterable[str] = ("means",),
                 channel=None, system: System | str | os.PathLike | None = None):
        self.store = store if isinstance(store, SpeakerStore) else SpeakerStore(store)
        self._record = None  # what the store records of a system file
        self._by_default = False  # the default system, for a new store given none
        self._relevance = relevance
        self._files = None  # what it records of a bare UBM's files
        if system is not None and (ubm is not None or channel is not None):
            raise SpeakerGMMError("give a system, or a UBM (and a channel), not both")
        if system is None and ubm is None:
            bound = self.store.system()
            if bound is not None:
                system = bound.get("path") or bound.get("name")
                if not system:
                    raise StoreError(f"{self.store.path}: unreadable system record {bound}")
            elif (files := self.store.files()) is not None:  # enrolled with --ubm: the same
                ubm, channel = files["ubm"], files.get("channel")
                for path in (ubm, channel):
                    if path is not None and not Path(path).is_file():
                        raise StoreError(f"{self.store.path}: its speakers were enrolled with "
                                         f"{path}, which is gone; give --ubm (and --channel) "
                                         "of the files they were enrolled with")
            elif len(self.store):
                from .pretrained import load_default_ubm

                ubm = load_default_ubm()  # speakers enrolled before systems existed
            else:
                system = DEFAULT_SYSTEM
                # chosen for the user: the first enrollment may still pick the band's own
                self._by_default = True
        if system is not None:
            self.system = load_system(system)
            self._record = system_record(self.system)
            if not isinstance(system, System) and str(system) not in BUNDLED_SYSTEMS:
                self._record["path"] = str(Path(system).resolve())
        else:
            if not isinstance(ubm, DiagGMM):
                self._files = {"ubm": str(Path(ubm).resolve()), "channel": None if (
                    channel is None or isinstance(channel, EigenChannel)) else str(
                    Path(channel).resolve())}
                ubm = DiagGMM.load(ubm)
            if channel is not None and not isinstance(channel, EigenChannel):
                channel = EigenChannel.load(channel, ubm)
            self.system = System(ubm, channel=channel)
        self.relevance = self.system.relevance if relevance is None else relevance
        self.adapt = tuple(adapt)
        self._channel_fp = (self.system.channel.fingerprint()
                            if self.system.channel is not None else None)

    ubm = property(lambda self: self.system.ubm)
    config = property(lambda self: self.system.config)
    channel = property(lambda self: self.system.channel)

    def features(self, path, *, meter=None, sr: int | None = None) -> np.ndarray:
        """Features of one recording (a file, or a signal at ``sr``) with the system's
        feature config (channel-compensated when the system has a channel); ``meter`` as
        :meth:`System.features`."""
        return self.system.features(path, meter=meter, sr=sr)

    def _measured(self, audio, sr=None) -> tuple[np.ndarray, Quality]:
        """A recording's features and its quality measures, taken on the way."""
        meter = SignalMeter(self.config.sample_rate)
        x = self.features(audio, meter=meter, sr=sr)
        band = meter.upper_band_db
        return x, Quality(self.system.seconds(len(x)), round(meter.snr_db, 1),
                          None if band is None else round(band, 1))

    def _test(self, audio, method: str, c: int, sr=None
              ) -> tuple[np.ndarray, TestUtterance, Quality]:
        """A test recording's features, made ready for ``method``, and its quality."""
        x, quality = self._measured(audio, sr)
        return x, prepare_test(self.ubm, x, method=method, c=c), quality

    def _adjusts(self) -> bool:
        """Whether scores are adjusted for the test's quality: with a system that has a
        quality calibration, in a store made with it (a store made before keeps scoring
        as it did: its own calibration was learnt on unadjusted trials)."""
        if self.system.quality_calibration is None:
            return False
        bound = self.store.system()
        return bool((self._record if bound is None else bound).get("quality"))

    def _check_store(self) -> None:
        self.store.check_system(self._record)  # first: naming the system says more
        self.store.check_ubm(self.ubm, self._channel_fp)

    def speaker_model(self, speaker: str) -> DiagGMM:
        """An enrolled speaker's MAP model, in the space of :meth:`features`."""
        self._check_store()
        return self.store.adapted(speaker, self.ubm, self._channel_fp)

    def calibration(self):
        """The calibration in force: the store's own (``speakers calibrate``), else the
        system's, adapted to the store's impostor trials when the system S-normalises
        (:func:`~speakergmm.store.selfcal.adapted`); None if neither."""
        own = self.store.calibration()
        if own is not None or self.system.calibration is None or not self.system.normalises:
            return own or self.system.calibration
        return adapted(self.system.calibration, self.store.calibration_trial_rows())

    def enroll(self, speaker: str, audio: Iterable, *, mode: str = "new", progress=None,
               sr: int | Iterable[int] | None = None) -> SpeakerInfo:
        """Enroll ``speaker`` from recordings (``mode``: "new", "append" or "replace"):
        files, or mono signals sampled at ``sr`` (one rate for all, or one per signal).

        Every recording is read and checked before the store is touched, so a bad file
        leaves the store as it was. ``progress(step, total)``, if given, is called as
        each recording is read.
        """
        check_speaker_id(speaker)
        paths = list(audio)
        if not paths:
            raise FeatureError("no enrollment audio given")
        rates = list(sr) if isinstance(sr, (list, tuple)) else [sr] * len(paths)
        if self._by_default and not len(self.store):
            self._system_for_band(paths, rates)
        self._check_store()
        qualities = []

        def read(path, rate):
            x, quality = self._measured(path, rate)
            qualities.append(quality)
            if progress is not None:
                progress(1, len(paths))
            return x

        feats = one_band_note(lambda: [read(p, r) for p, r in zip(paths, rates)])
        stats = [self.ubm.accumulate(x) for x in feats]
        model = SpeakerModel.enroll(self.ubm, stats, relevance=self.relevance, adapt=self.adapt)
        seconds = self.system.seconds(sum(len(f) for f in feats))
        earlier = None
        if mode == "append" and speaker in {s.id for s in self.store.list()}:
            earlier = self.store.model(speaker)
        whole = model if earlier is None else earlier.add(model)
        with self.system.cohort_kept():  # (two Z sides in a row: the cohort whitened once)
            norm = self.system.model_norm(stack_models(self.ubm, [whole]))
            trials = self._calibration_trials(speaker, feats, stats,
                                              None if earlier is None else earlier.stats,
                                              qualities if self._adjusts() else None)
        current = self.store.calibration()
        prior = 0.01 if current is None else current.prior_
        problems = []

        def relearn(rows):
            kept, problem = relearn_calibration(rows, system=self.system.calibration,
                                                prior=prior, source=self.store.path,
                                                own=current is not None)
            problems.append(problem)
            return kept

        info = self.store.enroll(
            speaker, model, self.ubm, seconds=seconds, utterances=len(paths), mode=mode,
            channel=self._channel_fp, system=self._record,
            norm=None if norm is None else (float(norm[0][0]), float(norm[1][0])),
            files=self._files, trials=trials, relearn=relearn)
        if problems and problems[0] is not None:  # the enrollment itself is kept
            warnings.warn(problems[0], UncalibratedStore, stacklevel=2)
        elif self.system.calibration is None:  # (with one, a store learns its own when
            # its trials predict themselves better than the system's calibration does)
            advice = calibration_advice(self.store)
            if advice is not None:
                warnings.warn(advice, UncalibratedStore, stacklevel=2)
        if info.seconds < MIN_ENROLL_SECONDS:
            warnings.warn(f"{speaker}: {info.seconds:.1f} s of audio enrolled; below "
                          f"{MIN_ENROLL_SECONDS:g} s a model is unreliable (measured with the "
                          "wideband system: EER 2.9% at 12 s, 7.4% at 5 s, 22% at 1 s); "
                          "enroll more audio with --append", ShortEnrollment, stacklevel=2)
        return info

    def _system_for_band(self, paths, given) -> None:
        """A new store given no system whose first enrollment is all telephone-band audio
        (8 kHz or less) takes the telephone system, and says so in one line: the default
        (wideband) would score it with an empty upper band, and accept impostors."""
        from .frontend.audio import AudioBlocks

        rates = []
        for path, rate in zip(paths, given):
            if isinstance(path, np.ndarray):
                if rate is None:
                    return  # (the features say a signal needs its rate)
                rates.append(rate)
                continue
            try:
                with AudioBlocks(path) as audio:
                    rates.append(audio.native_rate)
            except SpeakerGMMError:
                return  # reading it again below says what is wrong with it
        if max(rates) >= self.system.config.sample_rate:
            return  # (the telephone system is not even loaded)
        telephone = load_system("telephone")
        if max(rates) > telephone.config.sample_rate:
            return
        warnings.warn(f"{self.store.path}: a new store whose first enrollment is "
                      f"{max(rates)} Hz audio takes the telephone system (8 kHz features); "
                      "give --system wideband to keep the default", SystemChosen,
                      stacklevel=3)
        self.system = telephone
        self._record = system_record(telephone)
        self.relevance = telephone.relevance if self._relevance is None else self._relevance
        self._channel_fp = (telephone.channel.fingerprint()
                            if telephone.channel is not None else None)
        self._by_default = False

    def _calibration_trials(self, speaker: str, feats, stats, earlier,
                            qualities=None) -> list:
        """Self-calibration trials of new recordings, scored now that their frames are at
        hand, as :meth:`verify` scores (top-C, S-norm when the system has a cohort, the
        score adjusted for each recording's ``qualities`` when given, so that the store's
        own calibration is learnt on what it will calibrate): each against its speaker's
        model without it (the speaker's earlier audio when appending, plus the other new
        recordings), and against up to :data:`NONTARGET_MODELS` other speakers spread over
        the store."""
        system = self.system

        def adjusted(values, i, seconds=None):
            if qualities is None:
                return values
            q = qualities[i]
            return system.adjust(values, q if seconds is None else replace(q, seconds=seconds))

        tests = [system.prepare(x) for x in feats]
        t_norms = [system.test_norm(t) for t in tests]
        without = []
        total = sum(st.frames for st in stats) + (0 if earlier is None else earlier.frames)
        for i in range(len(tests)):
            rest = [st for j, st in enumerate(stats) if j != i]
            rest += [] if earlier is None else [earlier]
            if rest:  # one recording, nothing earlier: no model without it
                # Relevance scaled by the share of the speaker's frames left, so that the
                # model adapts as far as the speaker's whole model does (α = n/(n + r)):
                # else target self-trials come out weaker than the trials they calibrate.
                r = self.relevance * (total - stats[i].frames) / total
                without.append((i, SpeakerModel.enroll(self.ubm, rest, relevance=r,
                                                       adapt=self.adapt)))
        trials = []
        if not without and len(feats[0]) >= 2 * _SPLIT_FRAMES:
            # One recording, nothing earlier: its first half enrolls, its second half tests
            # (relevance halved with the frames, as above), so that a store of one-recording
            # speakers still gathers target trials.
            half = len(feats[0]) // 2
            first = self.ubm.accumulate(feats[0][:half])
            models = stack_models(self.ubm, [SpeakerModel.enroll(
                self.ubm, [first], relevance=self.relevance * half / len(feats[0]),
                adapt=self.adapt)])
            second = system.prepare(feats[0][half:])
            value = adjusted(system.finish(score(self.ubm, models, second),
                                           system.model_norm(models), system.test_norm(second)),
                             0, system.seconds(len(feats[0]) - half))
            trials.append((0, speaker, float(value[0]), True))
        if without:
            models = stack_models(self.ubm, [m for _, m in without])
            z = system.model_norm(models)
            for row, (i, _) in enumerate(without):
                raw = score(self.ubm, models, tests[i])[row:row + 1]
                zi = None if z is None else (z[0][row:row + 1], z[1][row:row + 1])
                trials.append((i, speaker,
                               float(adjusted(system.finish(raw, zi, t_norms[i]), i)[0]), True))
        others = [s.id for s in self.store.list() if s.id != speaker]
        if others:
            pick = np.unique(np.linspace(0, len(others) - 1,
                                         min(NONTARGET_MODELS, len(others))).astype(int))
            norms = self.store.norms()
            for models in self.store.model_sets(self.ubm, self._channel_fp,
                                                ids=[others[j] for j in pick]):
                z = self._norms_of(models.ids, norms)
                for i, test in enumerate(tests):
                    values = adjusted(system.finish(score(self.ubm, models, test), z,
                                                    t_norms[i]), i)
                    trials.extend((i, m, float(v), False) for m, v in zip(models.ids, values))
        return trials

    def _norms_of(self, ids, norms) -> tuple[np.ndarray, np.ndarray] | None:
        if not self.system.normalises:
            return None
        missing = [i for i in ids if i not in norms]
        if missing:
            raise StoreError(f"{self.store.path}: speaker '{missing[0]}' has no normalisation "
                             "statistics; enroll it again with --replace")
        return (np.array([norms[i][0] for i in ids]), np.array([norms[i][1] for i in ids]))

    def _scored(self, method: str, c: int | None) -> tuple[int, bool]:
        """The top-C to score with, and whether the scores are the system's (normalised
        and calibrated) ones: top-C with the system's C."""
        _check_method(method)
        c = self.system.c if c is None else c
        return c, method == "topc" and c == self.system.c

    def verify(self, speaker: str, audio, *, method: str = "topc",
               threshold: float | None = None, prior: float = 0.5, c: int | None = None,
               sr: int | None = None) -> Verification:
        """Score one recording (a file, or a signal at ``sr``) against one enrolled speaker
        and decide.

        With a calibration in force (:meth:`calibration`; top-C scoring with the system's
        C) the result carries the calibrated log-likelihood ratio and the posterior
        probability of the claim at ``prior``, and the decision is the Bayes decision at
        that prior (accept when the LLR reaches ``log((1 - prior) / prior)``), unless
        ``threshold`` is given (then on the LLR). Without one the decision is on the raw
        score, at ``threshold`` or :data:`~speakergmm.constants.DEFAULT_THRESHOLD`.
        """
        c, own = self._scored(method, c)
        self._check_store()
        self.store.info(speaker)  # names a speaker not enrolled
        models = next(self.store.model_sets(self.ubm, self._channel_fp, ids=[speaker]))
        x, test, quality = self._test(audio, method, c, sr)
        audio = "<signal>" if isinstance(audio, np.ndarray) else audio
        raw = float(score(self.ubm, models, test)[0])
        cal = self.calibration() if own else None
        measures = _measures(quality)
        if cal is None:
            limit = DEFAULT_THRESHOLD if threshold is None else threshold
            return Verification(speaker, str(audio), raw, limit, raw >= limit, method, len(x),
                                quality.seconds, prior=prior, **measures)
        value = float(self.system.finish([raw], self._norms_of([speaker], self.store.norms()),
                                         self.system.test_norm(test), calibration=cal,
                                         quality=quality if self._adjusts() else None)[0])
        limit = bayes_threshold(prior) if threshold is None else threshold
        posterior = float(1.0 / (1.0 + np.exp(-(value - bayes_threshold(prior)))))
        return Verification(speaker, str(audio), raw, limit, value >= limit, method, len(x),
                            quality.seconds, llr=value, posterior=posterior, prior=prior,
                            **measures)

    def scores(self, audio, *, method: str = "topc", c: int | None = None,
               sr: int | None = None) -> StoreScores:
        """One recording (a file, or a signal at ``sr``) scored against every enrolled
        speaker (read from the store in blocks): raw scores, and calibrated LLRs when a
        calibration is in force (top-C with the system's C; S-normalised first when the
        system has a cohort)."""
        c, own = self._scored(method, c)
        self._check_store()
        x, test, quality = self._test(audio, method, c, sr)  # selection once, all blocks
        ids, parts = [], []
        with one_blas_thread():
            for models in self.store.model_sets(self.ubm, self._channel_fp):
                ids.extend(models.ids)
                parts.append(score(self.ubm, models, test))
        raw = np.concatenate(parts)
        cal = self.calibration() if own else None
        llrs = None
        if cal is not None:
            llrs = self.system.finish(raw, self._norms_of(ids, self.store.norms()),
                                      self.system.test_norm(test), calibration=cal,
                                      quality=quality if self._adjusts() else None)
        return StoreScores(ids, raw, llrs, len(x), quality.seconds, quality)

    def identify(self, audio, *, top: int = 5, threshold: float | None = None,
                 prior: float = IDENTIFY_PRIOR, method: str = "topc", c: int | None = None,
                 sr: int | None = None) -> Identification:
        """Rank all enrolled speakers for one recording (a file, or a signal at ``sr``),
        open set.

        With a calibration in force (top-C scoring with the system's C) each speaker's
        calibrated LLR gives its posterior among the M enrolled speakers and "unknown":
        ``prior`` is the prior probability that the voice is enrolled at all, shared
        equally by the M speakers, so that the more speakers are enrolled, the more
        evidence naming one takes: a speaker is named when its LLR exceeds
        log(M (1 - prior) / prior). The default, 0.85
        (:data:`~speakergmm.constants.IDENTIFY_PRIOR`), names the right speaker for about
        91% of tests when every voice is enrolled and names about 10-12% of strangers
        (measured on unseen speakers); 0.5 would leave 17% of enrolled voices "unknown".
        The answer is the most probable of the M + 1, unless
        ``threshold`` is given (then: the best speaker if its LLR reaches it). Without a
        calibration: the best speaker, or "unknown" below ``threshold`` on the raw score.
        """
        found = self.scores(audio, method=method, c=c, sr=sr)
        audio = "<signal>" if isinstance(audio, np.ndarray) else audio
        ids, scores, llrs = found.ids, found.raw, found.llrs
        measures = _measures(found.quality)
        order = np.argsort(-(scores if llrs is None else llrs), kind="stable")[: max(1, top)]
        ranking = [(ids[i], float(scores[i])) for i in order]
        frames, seconds = found.frames, found.seconds
        if llrs is None:
            best = ranking[0][0] if threshold is None or ranking[0][1] >= threshold else None
            return Identification(str(audio), best, ranking, threshold, method, frames,
                                  seconds, prior=prior, **measures)
        # log of prior x likelihood ratio for "unknown" (index 0) and each speaker
        joint = np.concatenate([[np.log1p(-prior)], np.log(prior / len(ids)) + llrs])
        posterior = np.exp(joint - np.logaddexp.reduce(joint))
        if threshold is None:
            best = ranking[0][0] if posterior[1 + order[0]] > posterior[0] else None
        else:
            best = ranking[0][0] if llrs[order[0]] >= threshold else None
        return Identification(str(audio), best, ranking, threshold, method, frames, seconds,
                              llrs=[float(llrs[i]) for i in order],
                              posteriors=[float(posterior[1 + i]) for i in order],
                              p_unknown=float(posterior[0]), prior=prior, **measures)


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise SpeakerGMMError(f"unknown scoring method {method!r}; choose one of "
                              f"{', '.join(METHODS)}")
