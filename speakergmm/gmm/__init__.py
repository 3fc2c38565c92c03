"""Gaussian mixtures: Baum-Welch statistics, the diagonal GMM, UBM training by EM, MAP
adaptation and the eigenchannel (session variability) subspace."""

from .adapt import SpeakerModel, map_adapt
from .eigenchannel import CompensatedFeatures, EigenChannel
from .mixture import DiagGMM
from .stats import GMMStats
from .ubm import train_ubm

__all__ = ["CompensatedFeatures", "DiagGMM", "EigenChannel", "GMMStats", "SpeakerModel",
           "map_adapt", "train_ubm"]
