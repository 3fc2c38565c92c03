"""speakergmm: speaker recognition with the classical GMM-UBM method.

The package is layered by stage (imports point down only)::

    cli/                                   the ``speakergmm`` command
    recognizer, store, batch, system, pretrained, corpora/   the application layer
    sources                                the one way in: archives, statistics, vectors
    eval/            backend/              metrics and reports | scoring, norms, calibration
    gmm/                                   statistics, DiagGMM, UBM, MAP, eigenchannel
    frontend/                              audio, framing, VAD, CMVN, features, archive
    data/                                  Kaldi text maps, data dirs, trials, score files
    exec, errors, _io                      executor, exceptions, atomic files

Public names (``__all__``) are importable from here; each is loaded on first use (as
librosa does), so ``import speakergmm`` stays cheap.
"""

from __future__ import annotations

import importlib

from ._version import __version__
from .errors import (
    ArchiveError,
    AudioError,
    CalibrationError,
    DataDirError,
    FeatureError,
    ModelError,
    NotFittedError,
    ParameterError,
    SpeakerGMMError,
    SpeakerGMMWarning,
)

# public name -> module that defines it
_LAZY = {
    # features
    "FeatureConfig": "frontend.config", "extract_features": "frontend.features",
    "ArchiveSet": "frontend.archive", "FeatureArchive": "frontend.archive",
    "extract_archive": "frontend.archive", "read_features": "frontend.archive",
    # GMMs, statistics, subspaces
    "DiagGMM": "gmm.mixture", "GMMStats": "gmm.stats", "train_ubm": "gmm.ubm",
    "SpeakerModel": "gmm.adapt", "map_adapt": "gmm.adapt", "EigenChannel": "gmm.eigenchannel",
    "StatsArchive": "gmm.statsarchive", "read_stats": "gmm.statsarchive",
    "extract_stats": "gmm.statsarchive",
    "IVectorExtractor": "gmm.ivector", "VectorArchive": "gmm.ivector",
    "extract_ivectors": "gmm.ivector", "read_vectors": "gmm.ivector",
    # scoring, back-ends, calibration
    "ModelSet": "backend.models", "score": "backend.scoring", "llr": "backend.scoring",
    "VectorBackend": "backend.vectors", "PLDA": "backend.plda",
    "Calibration": "backend.calibration", "Fusion": "backend.calibration",
    "normalize_scores": "backend.scorenorm",
    # metrics
    "rocch_eer": "eval.metrics", "eer_interpolated": "eval.metrics", "min_dcf": "eval.metrics",
    "act_dcf": "eval.metrics", "cllr": "eval.metrics", "min_cllr": "eval.metrics",
    "det_curve": "eval.metrics", "DCFParams": "eval.metrics",
    # trial lists, systems, the product path
    "Cohort": "batch", "enroll_models": "batch", "score_trial_list": "batch",
    "System": "system", "load_system": "system", "build_system": "system",
    "Recognizer": "recognizer", "SpeakerStore": "store",
    # execution, data
    "Executor": "exec", "get_executor": "exec",
    "read_data_dir": "data.datadir", "read_trials": "data.trials",
}
# modules reachable as attributes: the subpackages and application modules, and
# speakergmm.audio (as the README shows: speakergmm.audio.load)
_MODULES = {name: name for name in ("data", "frontend", "gmm", "backend", "eval", "corpora",
                                    "cli", "batch", "recognizer", "store", "pretrained",
                                    "exec", "system")}
_MODULES["audio"] = "frontend.audio"
_MODULES["metrics"] = "eval.metrics"

__all__ = ["__version__", "ArchiveError", "AudioError", "CalibrationError", "DataDirError",
           "FeatureError",
           "ModelError", "NotFittedError", "ParameterError", "SpeakerGMMError",
           "SpeakerGMMWarning", *_LAZY]


def __getattr__(name: str):
    if name in _MODULES:
        value = importlib.import_module(f".{_MODULES[name]}", __name__)
    elif name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_MODULES})

