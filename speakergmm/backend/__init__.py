"""Back end: log-likelihood-ratio scoring, score normalisation and calibration."""

from .calibration import Calibration
from .scorenorm import NORM_METHODS, normalize_scores
from .scoring import METHODS, ModelSet, score, score_trials

__all__ = ["Calibration", "METHODS", "ModelSet", "NORM_METHODS", "normalize_scores", "score",
           "score_trials"]
