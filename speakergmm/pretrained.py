"""Models shipped with speakergmm.

The recognition systems ``wideband.npz`` and ``telephone.npz`` (:mod:`speakergmm.system`,
:func:`speakergmm.system.load_system`) are what ``enroll`` / ``verify`` / ``identify`` use.
The UBM bundled before them (``ubm-speechocean762-k512.npz``, K=512, D=60, 16 kHz
``wideband`` features, trained on the train half of speechocean762: Zhang et al.,
Interspeech 2021, OpenSLR 101; CC BY 4.0) stays for the stores enrolled with it and as
``speakergmm score``'s default. ``speakergmm/models/README.md`` gives the commands that
reproduce each.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .gmm.mixture import DiagGMM

__all__ = ["DEFAULT_UBM", "default_ubm_path", "load_default_ubm", "speech_detector_path",
           "load_speech_detector", "diarization_path"]

DEFAULT_UBM = "ubm-speechocean762-k512.npz"


def default_ubm_path() -> Path:
    """Path of the bundled default UBM file."""
    return Path(str(resources.files("speakergmm") / "models" / DEFAULT_UBM))


def load_default_ubm() -> DiagGMM:
    """The bundled default UBM (its metadata holds the feature config to use with it)."""
    return DiagGMM.load(default_ubm_path())


def speech_detector_path(band: str) -> Path:
    """Path of the bundled speech detector of a band (``"wideband"`` or ``"telephone"``)."""
    return Path(str(resources.files("speakergmm") / "models" / f"sad-{band}.npz"))


def load_speech_detector(spec="wideband"):
    """A :class:`~speakergmm.gmm.sad.SpeechDetector`: the bundled one of a band
    (``"wideband"`` or ``"telephone"``: trained on every speechocean762 train speaker's
    recordings, degraded; ``speakergmm/models/README.md``) or a file of
    ``speakergmm train-sad``."""
    from .errors import ParameterError
    from .gmm.sad import DETECTOR_FEATURES, SpeechDetector

    if str(spec) in DETECTOR_FEATURES and not Path(spec).exists():
        return SpeechDetector.load(speech_detector_path(str(spec)))
    if not Path(spec).is_file():
        raise ParameterError(f"no speech detector {str(spec)!r}: give a band with a bundled "
                             f"one ({' or '.join(DETECTOR_FEATURES)}) or a file of "
                             "speakergmm train-sad")
    return SpeechDetector.load(spec)


def diarization_path(band: str) -> Path:
    """Path of the bundled diarization model of a band (:meth:`Diarizer.bundled
    <speakergmm.diarization.Diarizer.bundled>`)."""
    from .errors import ParameterError

    if band not in ("wideband", "telephone"):
        raise ParameterError(f"no bundled diarization model for {band!r}; choose wideband "
                             "or telephone")
    return Path(str(resources.files("speakergmm") / "models" / f"diarization-{band}.npz"))
