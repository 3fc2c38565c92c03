"""Front end: audio loading, framing, voice activity detection, feature normalisation, MFCC
features and the on-disk feature archive."""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "ArchiveSet": "archive", "ArchiveUnion": "archive", "ExtractSummary": "archive",
    "FeatureArchive": "archive", "extract_archive": "archive", "read_features": "archive",
    "PRESETS": "config", "FeatureConfig": "config", "extract_features": "features",
})
