"""speakergmm: speaker recognition with the classical GMM-UBM method."""

from ._version import __version__
from .archive import ArchiveSet, FeatureArchive, extract_archive, read_features
from .errors import (
    ArchiveError,
    AudioError,
    DataDirError,
    FeatureError,
    ModelError,
    SpeakerGMMError,
)
from .features import FeatureConfig, extract_features
from .gmm import DiagGMM, GMMStats
from .ubm import train_ubm

__all__ = [
    "ArchiveSet",
    "DiagGMM",
    "GMMStats",
    "train_ubm",
    "FeatureArchive",
    "FeatureConfig",
    "extract_archive",
    "extract_features",
    "read_features",
    "__version__",
    "ArchiveError",
    "AudioError",
    "DataDirError",
    "FeatureError",
    "ModelError",
    "SpeakerGMMError",
]
