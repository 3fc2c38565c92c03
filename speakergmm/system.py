"""A complete recognition system: what ``enroll`` / ``verify`` / ``identify`` score with.

A system is a UBM (with the feature config it was trained on), an eigenchannel subspace,
an S-norm cohort and a calibration, in one ``.npz`` file with a JSON header:

- the **cohort** is a set of cohort-speaker models (MAP means, relevance and enrollment
  length like the speakers it normalises) and a set of cohort recordings (their
  channel-compensated frames, every ``frame_step``-th one, float16). A speaker enrolled
  with the system is scored against the recordings once, at enrollment (the Z side; two
  floats kept in the store); a test recording against the models, once per call (the T
  side). The score is then the symmetric normalisation of Cumani et al. (2011),
  ``½[(s - μ_z)/σ_z + (s - μ_t)/σ_t]``, the recipe's best back-end.
- the **calibration** maps that score to a natural-log likelihood ratio; it is trained on
  trials among calibration speakers held out of the cohort and of the subspace (scored by
  this module, exactly as the product path scores), so that it describes new speakers.
- the **quality calibration** (:mod:`~speakergmm.backend.qmf`) adjusts the score of a
  test recording that is short, noisy or narrowband before it is calibrated, learnt on the
  same trials with degraded copies of their test recordings; it goes with whichever
  calibration is in force (the system's, or a store's own).

:func:`build_system` assembles one from a UBM, a subspace and a feature archive of
background speakers (``speakergmm build-system``); the bundled ones are ``wideband``
(16 kHz) and ``telephone`` (8 kHz), see ``speakergmm/models/README.md``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ._io import read_npz, write_npz
from .backend.calibration import Calibration
from .backend.enrollment import Cohort
from .backend.qmf import QualityCalibration, deficits
from .backend.scorenorm import finish_scores
from .backend.scoring import ModelSet, TestUtterance, prepare_test
from .backend.trials import (
    model_cohort_stats,
    score_trial_list,
    test_cohort_stats,
)
from .constants import DEFAULT_C
from .errors import ModelError, ParameterError, SpeakerGMMError
from .frontend.config import FeatureConfig
from .frontend.quality import BandMismatch
from .gmm.eigenchannel import EigenChannel
from .gmm.mixture import DiagGMM

__all__ = ["System", "BandMismatch", "BUNDLED_SYSTEMS", "DEFAULT_SYSTEM", "load_system",
           "build_system", "calibrate_system", "system_path"]

FORMAT_NAME = "speakergmm-system"
FORMAT_VERSION = 1
#: Systems shipped in ``speakergmm/models``: one per audio band.
BUNDLED_SYSTEMS = ("wideband", "telephone")
DEFAULT_SYSTEM = "wideband"


class System:
    """A UBM with everything the product path scores with.

    Parameters
    ----------
    ubm : DiagGMM
        Its metadata must hold the feature config it was trained with.
    channel : EigenChannel, optional
        Session compensation applied to every recording.
    cohort_means : array_like [shape=(M, K, D)], optional
        MAP means of the S-norm cohort models.
    cohort_frames : sequence of arrays [shape=(frames, D)], optional
        The cohort recordings (channel-compensated). Needed with ``cohort_means``.
    calibration : Calibration, optional
        Maps the (normalised) score to a log-likelihood ratio.
    quality_calibration : QualityCalibration, optional
        Adjusts the score of a test for its quality measures before it is calibrated
        (:meth:`finish`).
    relevance : float
        MAP relevance (means) of the speakers enrolled with it.
    c : int
        Top-C scoring: components per frame.
    name : str
    metadata : dict, optional
        JSON-serialisable: the training record.
    """

    def __init__(self, ubm: DiagGMM, *, channel: EigenChannel | None = None,
                 cohort_means=None, cohort_frames: Sequence[np.ndarray] = (),
                 calibration: Calibration | None = None,
                 quality_calibration: QualityCalibration | None = None,
                 relevance: float = 16.0, c: int = DEFAULT_C, name: str = "custom",
                 metadata: Mapping[str, Any] | None = None):
        try:
            self.config = FeatureConfig.from_dict(ubm.metadata["feature_config"])
        except (KeyError, TypeError):
            raise ModelError("the UBM's metadata holds no feature config, so audio cannot be "
                             "turned into matching features; train it with "
                             "'speakergmm train-ubm'") from None
        if self.config.dim != ubm.dim:
            raise ModelError(f"the UBM has dimension {ubm.dim} but its feature config gives "
                             f"{self.config.dim}")
        if channel is not None and channel.ubm.fingerprint() != ubm.fingerprint():
            raise ModelError("the eigenchannel was trained with another UBM; train it again "
                             "with this UBM (speakergmm train-channel)")
        if (cohort_means is None) != (len(cohort_frames) == 0):
            raise ModelError("an S-norm cohort needs both its models and its recordings")
        if int(c) < 1:
            raise ModelError(f"top-C must be at least 1, got {c}")
        # top-C with C >= K is the full LLR: a UBM of fewer components than the default C
        # (a toy or test UBM) is scored in full rather than refused
        c = min(int(c), ubm.n_components)
        # The cohort is held at the precision it is saved in (float16: the same EER as
        # float32 on the speechocean762 dev protocol, half the size), so that a system
        # scores the same before and after it is written (build_system rounds the channel).
        self.ubm, self.channel, self.calibration = ubm, channel, calibration
        self.quality_calibration = quality_calibration
        self.relevance, self.c, self.name = float(relevance), int(c), name
        self.metadata = dict(metadata or {})
        self.cohort_models = None
        self._cohort_offsets = None
        self._frames16 = [np.asarray(x, np.float16) for x in cohort_frames]
        if cohort_means is not None:
            self._cohort_offsets = np.asarray(cohort_means, np.float64) - ubm.means
            # + 0: a tiny negative offset rounds to -0, which reloads as +0
            self._cohort_offsets = self._cohort_offsets.astype(np.float16) + np.float16(0)
            self.cohort_models = ModelSet(
                ubm, (ubm.means + self._cohort_offsets.astype(np.float64)).astype(np.float32))
        self._cohort_tests: list[TestUtterance] | None = None
        #: Keep the cohort recordings' whitened top-C pairs between enrollments (about
        #: 50 MB for the bundled systems): a long-lived process (the service) enrolls
        #: several times faster; a one-shot command need not hold them.
        self.keep_cohort = False
        self._fingerprint = self._compute_fingerprint()

    # --- identity --------------------------------------------------------------------------

    def _compute_fingerprint(self) -> str:
        h = hashlib.sha256(f"system:{self.ubm.fingerprint()}:{self.relevance!r}:{self.c}:"
                           .encode())
        h.update((self.channel.fingerprint() if self.channel else "none").encode())
        if self._cohort_offsets is not None:
            h.update(np.ascontiguousarray(self._cohort_offsets, "<f2").tobytes())
            for x in self._frames16:
                h.update(np.ascontiguousarray(x, "<f2").tobytes())
        return h.hexdigest()[:16]

    @functools.cached_property
    def cohort_frames(self) -> list[np.ndarray]:
        """The S-norm cohort's recordings (frames, D) as float32 (made on first use: only
        enrollment and trial lists score them; ``identify`` and ``verify`` do not)."""
        return [x.astype(np.float32) for x in self._frames16]

    def fingerprint(self) -> str:
        """16 hex digits identifying what a speaker enrolled with the system depends on (UBM,
        channel, cohort, relevance, top-C; not the calibration, which may be replaced)."""
        return self._fingerprint

    @property
    def normalises(self) -> bool:
        """Whether scores are S-normalised against a cohort."""
        return self.cohort_models is not None

    def describe(self) -> str:
        parts = [f"UBM K={self.ubm.n_components} D={self.ubm.dim} "
                 f"({self.config.sample_rate} Hz)"]
        if self.channel is not None:
            parts.append(f"eigenchannel R={self.channel.U.shape[2]}")
        if self.normalises:
            parts.append(f"S-norm cohort of {len(self.cohort_models)} models, "
                         f"{len(self._frames16)} recordings")
        parts.append("uncalibrated" if self.calibration is None else
                     "calibrated" if self.quality_calibration is None else
                     "calibrated (quality-aware)")
        return f"system '{self.name}' ({self.fingerprint()}): " + ", ".join(parts)

    # --- audio to scores -------------------------------------------------------------------

    def features(self, path, *, meter=None, sr: int | None = None) -> np.ndarray:
        """Features of one recording with the system's feature config, channel-compensated.

        ``path`` is a file, or a mono signal (``np.ndarray``) sampled at ``sr``. Warns
        :class:`BandMismatch` for audio sampled below the system's rate. A
        :class:`~speakergmm.frontend.quality.SignalMeter` given as ``meter`` sees the
        signal on the way (for its SNR and band measures).
        """
        from .frontend.audio import AudioBlocks, SignalBlocks, resample
        from .frontend.features import features_from_blocks

        rate = self.config.sample_rate
        if isinstance(path, np.ndarray):
            if sr is None:
                raise ParameterError("a signal's features need its sampling rate (sr)")
            audio, native, name = SignalBlocks(resample(np.asarray(path, np.float32), orig_sr=sr,
                                                   target_sr=rate) if sr != rate else path), \
                sr, "the signal"
        else:
            audio = AudioBlocks(path, sr=rate)
            native, name = audio.native_rate, str(path)
        if native < rate:
            warnings.warn(f"{name}: {native} Hz audio for a system of {rate} Hz features: "
                          f"nothing above {native // 2} Hz was recorded, and upsampling does "
                          f"not bring it back, so its scores mislead; score it with a system "
                          f"for {native} Hz audio (--system telephone for 8 kHz)",
                          BandMismatch, stacklevel=3)
        with audio:
            x, _, _ = features_from_blocks(audio if meter is None else meter.watch(audio),
                                           config=self.config, name=name)
        return x if self.channel is None else self.channel.compensate(x)

    def seconds(self, frames: int) -> float:
        """Seconds of speech in ``frames`` frames."""
        return round(frames * self.config.frame_shift_ms / 1000, 3)

    def prepare(self, x) -> TestUtterance:
        """A test recording's frames made ready for top-C scoring."""
        return prepare_test(self.ubm, x, c=self.c)

    def test_norm(self, test: TestUtterance) -> tuple[float, float] | None:
        """Mean and deviation of the test recording's scores against the cohort models (the
        T side of S-norm); None without a cohort."""
        if not self.normalises:
            return None
        return test_cohort_stats(self.ubm, self.cohort_models, test)

    def model_norm(self, models: ModelSet) -> tuple[np.ndarray, np.ndarray] | None:
        """Mean and deviation of each model's scores against the cohort recordings (the Z
        side of S-norm, computed once per model); None without a cohort."""
        if not self.normalises:
            return None
        if self._cohort_tests is None:
            self._cohort_tests = [self.prepare(x) for x in self.cohort_frames]
        return model_cohort_stats(self.ubm, models, self._cohort_tests, keep=self.keep_cohort)

    @contextlib.contextmanager
    def cohort_kept(self):
        """:attr:`keep_cohort` for the calls inside (several Z sides in a row), released
        after unless the system keeps them anyway."""
        before, self.keep_cohort = self.keep_cohort, True
        try:
            yield self
        finally:
            self.keep_cohort = before
            if not before:
                for test in self._cohort_tests or ():
                    test.release()

    def finish(self, raw, model_norm, test_norm, calibration=None, quality=None) -> np.ndarray:
        """The system's score of raw scores (of models against one test): S-normalised
        given each model's Z-side (mean, std) arrays and the test's T-side (mean, std)
        when the system has a cohort, then calibrated by ``calibration`` if given
        (:func:`~speakergmm.backend.scorenorm.finish_scores`, the tail of every scorer).
        Given the test's :class:`~speakergmm.frontend.quality.Quality` as ``quality``, a
        calibrated score is first adjusted for it by the system's quality calibration, if
        it has one.
        """
        raw = np.asarray(raw, np.float64)
        adjust = calibration is not None and quality is not None \
            and self.quality_calibration is not None
        if not self.normalises:
            out = finish_scores(raw, calibration=None if adjust else calibration)
        else:
            (zm, zs), (tm, ts) = model_norm, test_norm
            out = finish_scores(
                raw, norm="snorm", calibration=None if adjust else calibration,
                enroll_stats=(np.broadcast_to(zm, raw.shape), np.broadcast_to(zs, raw.shape)),
                test_stats=(np.full(raw.shape, tm), np.full(raw.shape, ts)))
        return calibration.transform(self.adjust(out, quality)) if adjust else out

    def adjust(self, scores, quality) -> np.ndarray:
        """(Normalised, uncalibrated) scores of one test adjusted for its
        :class:`~speakergmm.frontend.quality.Quality` by the quality calibration; as they
        are without one."""
        if self.quality_calibration is None or quality is None:
            return np.asarray(scores, np.float64)
        return self.quality_calibration.transform(scores, deficits(
            snr_db=quality.snr_db, seconds=quality.seconds,
            upper_band_db=quality.upper_band_db))

    def cohort(self) -> Cohort | None:
        """The S-norm cohort as the trial scorer takes it (None without one)."""
        if not self.normalises:
            return None
        return Cohort(self.cohort_models, {str(i): x for i, x in enumerate(self.cohort_frames)},
                      [str(i) for i in range(len(self.cohort_frames))])

    def trial_scores(self, models: ModelSet, trials, features: Mapping[str, np.ndarray],
                     executor=None) -> np.ndarray:
        """S-normalised scores of a trial list whose models are ``models`` and whose test
        recordings' compensated frames ``features`` holds, scored by the one trial scorer
        (:func:`~speakergmm.backend.trials.score_trial_list`) as the product path scores:
        top-C with the system's C, S-norm against the system's cohort."""
        return score_trial_list(self.ubm, trials, models, features, method="topc", c=self.c,
                                norm="snorm" if self.normalises else "none",
                                cohort=self.cohort(), executor=executor)

    # --- files -------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write to ``path`` atomically: one ``.npz`` (UBM float32; subspace, cohort model
        offsets and cohort frames float16) with a JSON header."""
        arrays = {"weights": self.ubm.weights, "means": self.ubm.means,
                  "variances": self.ubm.variances}
        if self.channel is not None:
            arrays["channel"] = self.channel.U.astype(np.float16)
        if self.normalises:
            arrays["cohort_offsets"] = self._cohort_offsets
            arrays["cohort_frames"] = np.concatenate(self._frames16)
            arrays["cohort_lengths"] = np.array([len(x) for x in self._frames16], np.int64)
        header = {"name": self.name, "relevance": self.relevance, "c": self.c,
                  "ubm_metadata": self.ubm.metadata,
                  "channel_metadata": None if self.channel is None else self.channel.metadata,
                  "calibration": None if self.calibration is None
                  else json.loads(self.calibration.to_json()),
                  "quality_calibration": None if self.quality_calibration is None
                  else self.quality_calibration.to_dict(),
                  "fingerprint": self.fingerprint(), "training": self.metadata}
        write_npz(path, arrays, format_name=FORMAT_NAME, format_version=FORMAT_VERSION,
                  metadata=header)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "System":
        """Read a file written by :meth:`save`, checking everything.

        Raises
        ------
        ModelError
            Naming the path and the problem.
        """
        path = Path(path)
        arrays, header = read_npz(path, ("weights", "means", "variances"),
                                  format_name=FORMAT_NAME, format_version=FORMAT_VERSION,
                                  what="system")
        meta = header["metadata"]
        try:
            with np.load(path, allow_pickle=False) as npz:
                extra = {k: npz[k] for k in ("channel", "cohort_offsets", "cohort_frames",
                                             "cohort_lengths") if k in npz.files}
            for key, value in extra.items():  # (NaN cohort frames were blamed on the audio)
                if value.dtype.kind not in ("iu" if key == "cohort_lengths" else "f"):
                    raise ModelError(f"{path}: {key} holds {value.dtype} values; the file is "
                                     "damaged")
                if value.dtype.kind == "f" and not np.isfinite(value).all():
                    raise ModelError(f"{path}: {key} holds non-finite values (NaN or inf); "
                                     "the file is damaged")
            ubm = DiagGMM(arrays["weights"], arrays["means"], arrays["variances"],
                          metadata=meta.get("ubm_metadata") or {})
            channel = None
            if "channel" in extra:
                channel = EigenChannel(ubm, extra["channel"].astype(np.float64),
                                       metadata=meta.get("channel_metadata") or {})
            means, frames = None, []
            if "cohort_offsets" in extra:
                # offsets from the UBM, so float16 rounds the small MAP shift, not the mean
                means = ubm.means + extra["cohort_offsets"].astype(np.float64)
                cuts = np.cumsum(extra["cohort_lengths"])[:-1]
                frames = np.split(extra["cohort_frames"].astype(np.float16, copy=False), cuts)
            calibration = None
            if meta.get("calibration") is not None:
                calibration = Calibration.from_json(json.dumps(meta["calibration"]))
            quality = None
            if meta.get("quality_calibration") is not None:
                quality = QualityCalibration.from_dict(meta["quality_calibration"])
            system = cls(ubm, channel=channel, cohort_means=means, cohort_frames=frames,
                         calibration=calibration, quality_calibration=quality,
                         relevance=meta["relevance"], c=meta["c"],
                         name=meta.get("name", path.stem), metadata=meta.get("training"))
        except (KeyError, TypeError, ValueError, SpeakerGMMError) as exc:
            raise ModelError(f"{path}: not a valid speakergmm system ({exc})") from None
        c = meta.get("c")
        if isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= ubm.n_components:
            raise ModelError(f"{path}: top-C {c!r} is not a number of the UBM's "
                             f"{ubm.n_components} components; the file is damaged")
        if system.cohort_models is not None and len(system.cohort_models) < 2:
            raise ModelError(f"{path}: an S-norm cohort of {len(system.cohort_models)} model: "
                             "its scores have no spread to normalise by (build-system needs "
                             "2 speakers or more); the file is damaged")
        for part in ("channel_metadata",):
            recorded = (meta.get(part) or {}).get("feature_config")
            if recorded is not None and recorded != meta["ubm_metadata"].get("feature_config"):
                raise ModelError(f"{path}: its eigenchannel records another feature config "
                                 "than its UBM; the file is damaged or assembled from "
                                 "parts of two systems")
        if meta.get("fingerprint") not in (None, system.fingerprint()):
            raise ModelError(f"{path}: its contents do not match its fingerprint "
                             f"{meta.get('fingerprint')}; the file is damaged")
        return system

    def with_calibration(self, calibration: Calibration | None,
                         quality_calibration: QualityCalibration | None = None) -> "System":
        """The same system with another calibration and quality calibration (the
        fingerprint is unchanged)."""
        new = object.__new__(System)
        new.__dict__.update(self.__dict__)
        new.calibration, new.quality_calibration = calibration, quality_calibration
        return new


def _half(x) -> np.ndarray:
    """``x`` rounded to float16 (as float64 for a subspace, to be cast by the caller)."""
    return np.asarray(x, np.float32).astype(np.float16).astype(np.float64)


def system_path(name: str) -> Path:
    """Path of a bundled system (``wideband`` or ``telephone``)."""
    return Path(str(resources.files("speakergmm") / "models" / f"{name}.npz"))


def load_system(spec: "System | str | os.PathLike | None" = None) -> System:
    """A system from a bundled name, a path, or None (the default, ``wideband``).

    Raises
    ------
    ModelError
        An unknown name (listing the bundled ones) or an unreadable file.
    """
    if isinstance(spec, System):
        return spec
    spec = DEFAULT_SYSTEM if spec is None else spec
    if str(spec) in BUNDLED_SYSTEMS:
        return System.load(system_path(str(spec)))
    path = Path(spec)
    if not path.suffix and not path.exists():
        raise ModelError(f"no system {str(spec)!r}: give one of {', '.join(BUNDLED_SYSTEMS)} "
                         "or the path of a system file (speakergmm build-system)")
    return System.load(path)


def build_system(ubm: DiagGMM, features: Mapping[str, np.ndarray], *,
                 cohort_utt2spk: Mapping[str, str], channel: EigenChannel | None = None,
                 cohort_utterances: int = 240, cohort_enroll_utterances: int | None = 5,
                 frame_step: int = 2, calibration_enroll_map=None, calibration_trials=None,
                 prior: float = 0.01, quality_trials=None,
                 quality: Mapping[str, tuple[float, float | None]] | None = None,
                 relevance: float = 16.0, c: int = DEFAULT_C,
                 name: str = "custom", metadata: Mapping[str, Any] | None = None,
                 executor=None, log: Callable[[str], None] | None = None) -> System:
    """Assemble a system from a UBM, a subspace and background speakers' features.

    Parameters
    ----------
    ubm : DiagGMM
    features : mapping utt -> (frames, D) array
        A feature archive (uncompensated) holding the cohort's utterances and the
        calibration speakers'.
    cohort_utt2spk : mapping utt -> speaker
        The S-norm cohort: one model per speaker, enrolled on ``cohort_enroll_utterances``
        of its utterances spread over them (as the speakers it normalises are enrolled);
        ``cohort_utterances`` of its utterances, spread over the cohort, as the recordings,
        keeping every ``frame_step``-th frame (a mean over frames loses little from it, and
        the file half its size).
    channel : EigenChannel, optional
        Learnt on the cohort speakers only: learnt on the calibration speakers too, it
        removes exactly their session variability and spoils the calibration.
    calibration_enroll_map : mapping model id -> utterance ids, optional
    calibration_trials : Trials, optional
        Trials among calibration speakers held out of the cohort and of the subspace,
        scored as the product path scores them (MAP, top-C, S-norm), to train the
        calibration at ``prior``. Without them the system is uncalibrated.
    quality_trials : Trials, optional
        The calibration trials again, with degraded copies of their test recordings
        (``speakergmm augment``, in ``features`` too) as further tests: the quality
        calibration (:class:`~speakergmm.backend.qmf.QualityCalibration`) is learnt on
        them, at prior 0.5. Needs ``quality``.
    quality : mapping utt -> (snr_db, upper_band_db)
        Each of their test recordings' measures (:func:`~speakergmm.frontend.quality.
        measure_data_dir`); the seconds of speech are the features'.
    relevance, c : MAP relevance (means) and top-C of the product path.
    name, metadata : the system's name and training record.
    executor : int, Executor or dask.distributed.Client, optional
        Where the enrollments run (:func:`speakergmm.exec.get_executor`).
    log : callable(str), optional
        Told of each stage as it starts (the CLI prints them: a build takes minutes).
    """
    log = log or (lambda message: None)
    from .backend.enrollment import enroll_speakers, spread
    from .data.datadir import spk2utt as _spk2utt
    from .gmm.eigenchannel import CompensatedFeatures

    if frame_step < 1:
        raise ParameterError(f"frame_step must be >= 1, got {frame_step}")
    if channel is not None:  # scored, from here on, as it will be saved
        channel = EigenChannel(ubm, _half(channel.U), metadata=channel.metadata)
    feats = features if channel is None else CompensatedFeatures(features, channel)
    cohort = _spk2utt(cohort_utt2spk, keep=features)
    if len(cohort) < 2:
        raise SpeakerGMMError(f"an S-norm cohort needs at least 2 speakers with features, "
                              f"got {len(cohort)}")
    recordings = spread([u for us in cohort.values() for u in us], cohort_utterances)
    enroll = {s: spread(us, cohort_enroll_utterances) if cohort_enroll_utterances else us
              for s, us in cohort.items()}
    log(f"cohort: enrolling {len(enroll)} speakers, preparing {len(recordings)} recordings")
    speakers = enroll_speakers(ubm, feats, enroll, relevance=relevance, executor=executor)
    record = {**dict(metadata or {}), "cohort_speakers": len(cohort),
              "cohort_recordings": len(recordings), "cohort_enroll_utterances":
              cohort_enroll_utterances, "cohort_frame_step": frame_step}
    system = System(ubm, channel=channel,
                    cohort_means=np.stack([m.adapted(ubm).means for m in speakers]),
                    cohort_frames=[feats[u][::frame_step] for u in recordings],
                    relevance=relevance, c=c, name=name, metadata=record)
    if calibration_trials is None:
        return system
    overlap = sorted({u for us in (calibration_enroll_map or {}).values() for u in us}
                     & set(cohort_utt2spk))
    if overlap:
        raise SpeakerGMMError(f"calibration utterance '{overlap[0]}' is in the cohort: "
                              "calibration speakers must be held out of it")
    return calibrate_system(system, features, calibration_enroll_map=calibration_enroll_map,
                            calibration_trials=calibration_trials, prior=prior,
                            quality_trials=quality_trials, quality=quality,
                            executor=executor, log=log)


def calibrate_system(system: System, features: Mapping[str, np.ndarray], *,
                     calibration_enroll_map, calibration_trials, prior: float = 0.01,
                     quality_trials=None,
                     quality: Mapping[str, tuple[float, float | None]] | None = None,
                     executor=None, log: Callable[[str], None] | None = None) -> System:
    """``system`` with a calibration (and a quality calibration) learnt anew on held-out
    speakers' trials scored as the product path scores them; its UBM, subspace and cohort,
    and so its fingerprint and the stores enrolled with it, are kept.

    Parameters are those of :func:`build_system`: ``features`` (uncompensated) holds the
    calibration speakers' enrollment and test recordings, the degraded copies of
    ``quality_trials`` included.
    """
    from .backend.enrollment import enroll_speakers
    from .backend.models import stack_models
    from .gmm.eigenchannel import CompensatedFeatures

    log = log or (lambda message: None)
    if calibration_enroll_map is None:
        raise SpeakerGMMError("calibration trials need their enroll map")
    if quality_trials is not None and quality is None:
        raise SpeakerGMMError("quality trials need their test recordings' measures")
    feats = features if system.channel is None else CompensatedFeatures(features,
                                                                         system.channel)
    log(f"calibration: enrolling {len(calibration_enroll_map)} models, scoring "
        f"{len(calibration_trials)} trials")
    ids = list(calibration_enroll_map)
    models = enroll_speakers(system.ubm, feats, calibration_enroll_map,
                             relevance=system.relevance, executor=executor)
    model_set = stack_models(system.ubm, models, ids)
    scores = system.trial_scores(model_set, calibration_trials, feats)
    target = calibration_trials.is_target
    cal = Calibration().fit(scores[target], scores[~target], prior=prior)
    record = {"target": int(target.sum()), "nontarget": int((~target).sum()),
              "speakers": len(ids)}
    system = system.with_calibration(cal)
    system.metadata = {**system.metadata, "calibration_trials": record}
    if quality_trials is None:
        system.metadata.pop("quality_trials", None)
        return system
    log(f"quality calibration: scoring {len(quality_trials)} trials")
    tests = [str(u) for u in quality_trials.test]
    missing = sorted(set(tests) - set(quality))
    if missing:
        raise SpeakerGMMError(f"quality trial test recording '{missing[0]}' has no quality "
                              f"measures ({len(missing)} have none): measure the data "
                              "directories that hold them")
    seconds = {u: system.seconds(len(features[u])) for u in set(tests)}
    D = deficits(snr_db=[quality[u][0] for u in tests], seconds=[seconds[u] for u in tests],
                 upper_band_db=[quality[u][1] for u in tests])
    q_scores = system.trial_scores(model_set, quality_trials, feats)
    target = np.asarray(quality_trials.is_target, bool)
    qmf = QualityCalibration().fit(q_scores, target, D, calibration=cal, prior=0.5)
    system = system.with_calibration(cal, qmf)
    system.metadata["quality_trials"] = {"target": int(target.sum()),
                                         "nontarget": int((~target).sum()),
                                         "degraded": int(np.count_nonzero(D.any(axis=1)))}
    return system


def system_record(system: System) -> dict:
    """What a new store records of its system: its name and fingerprint, whether its
    scores are adjusted for the test's quality (the recognizer's ``_adjusts``), and
    whether they are S-normalised (its calibration is then adapted to the store)."""
    return {"name": system.name, "fingerprint": system.fingerprint(),
            "quality": system.quality_calibration is not None,
            "normalises": system.normalises}

