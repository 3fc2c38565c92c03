"""Evaluation: detection metrics (EER, minDCF, actDCF, Cllr), identification accuracy and
reports."""

from .metrics import act_dcf, cllr, identification_accuracy, min_cllr, min_dcf, rocch_eer
from .report import evaluate, write_report

__all__ = ["act_dcf", "cllr", "evaluate", "identification_accuracy", "min_cllr", "min_dcf",
           "rocch_eer", "write_report"]
