"""Evaluation: detection metrics (EER, minDCF, actDCF, Cllr), identification accuracy and
reports."""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "act_dcf": "metrics", "cllr": "metrics", "identification_accuracy": "metrics",
    "min_cllr": "metrics", "min_dcf": "metrics", "rocch_eer": "metrics",
    "evaluate": "report", "write_report": "report",
})
