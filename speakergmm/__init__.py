"""speakergmm: speaker recognition with the classical GMM-UBM method.

The package is layered by stage (imports point down only)::

    cli/                                   the ``speakergmm`` command
    recognizer, store, batch, pretrained, corpora/      the application layer
    eval/            backend/              metrics and reports | scoring, norms, calibration
    gmm/                                   statistics, DiagGMM, UBM, MAP, eigenchannel
    frontend/                              audio, framing, VAD, CMVN, features, archive
    data/                                  Kaldi text maps, data dirs, trials, score files
    exec, errors, _io                      executor, exceptions, atomic files

Public names are importable from here; each is loaded on first use (as librosa does), so
``import speakergmm`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__
from .errors import (ArchiveError, AudioError, DataDirError, FeatureError, ModelError,
                     SpeakerGMMError)

# public name -> module that defines it
_LAZY = {
    "ArchiveSet": "frontend.archive", "FeatureArchive": "frontend.archive",
    "extract_archive": "frontend.archive", "read_features": "frontend.archive",
    "FeatureConfig": "frontend.features", "extract_features": "frontend.features",
    "DiagGMM": "gmm.mixture", "GMMStats": "gmm.stats", "train_ubm": "gmm.ubm",
    "SpeakerModel": "gmm.adapt", "EigenChannel": "gmm.eigenchannel",
    "StatsArchive": "gmm.statsarchive", "read_stats": "gmm.statsarchive",
    "extract_stats": "gmm.statsarchive",
    "ModelSet": "backend.scoring", "Calibration": "backend.calibration",
    "Cohort": "batch", "enroll_models": "batch", "score_trial_list": "batch",
    "Recognizer": "recognizer", "SpeakerStore": "store",
    "Executor": "exec", "get_executor": "exec",
    "read_data_dir": "data.datadir", "read_trials": "data.trials",
}
# subpackages and modules reachable as attributes (speakergmm.audio, speakergmm.gmm, ...)
_SUBMODULES = {"data", "frontend", "gmm", "backend", "eval", "corpora", "cli", "batch",
               "recognizer", "store", "pretrained", "exec", "errors", "audio"}

__all__ = ["__version__", "ArchiveError", "AudioError", "DataDirError", "FeatureError",
           "ModelError", "SpeakerGMMError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    elif name == "audio":  # speakergmm.audio.load, as the README shows
        value = importlib.import_module(".frontend.audio", __name__)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_SUBMODULES})


if TYPE_CHECKING:  # for type checkers and IDEs; never executed
    from .frontend.archive import ArchiveSet, FeatureArchive, extract_archive, read_features
    from .frontend.features import FeatureConfig, extract_features
    from .gmm.mixture import DiagGMM
    from .gmm.stats import GMMStats
    from .gmm.ubm import train_ubm
