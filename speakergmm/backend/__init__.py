"""Back end: log-likelihood-ratio scoring, score normalisation and calibration."""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "Calibration": "calibration", "normalize_scores": "scorenorm", "ModelSet": "scoring",
    "score": "scoring", "score_trials": "scoring",
})
