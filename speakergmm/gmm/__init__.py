"""Gaussian mixtures: Baum-Welch statistics and their archive, the diagonal GMM, UBM training
by EM, MAP adaptation and the eigenchannel (session variability) subspace."""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "SpeakerModel": "adapt", "map_adapt": "adapt", "CompensatedFeatures": "eigenchannel",
    "EigenChannel": "eigenchannel", "DiagGMM": "mixture", "GMMStats": "stats",
    "StatsArchive": "statsarchive", "extract_stats": "statsarchive",
    "read_stats": "statsarchive", "train_ubm": "ubm",
})
