"""Front end: audio loading, framing, voice activity detection, feature normalisation, MFCC
features and the on-disk feature archive."""

from .archive import ArchiveSet, ExtractSummary, FeatureArchive, extract_archive, read_features
from .features import PRESETS, FeatureConfig, extract_features

__all__ = ["ArchiveSet", "ExtractSummary", "FeatureArchive", "FeatureConfig", "PRESETS",
           "extract_archive", "extract_features", "read_features"]
