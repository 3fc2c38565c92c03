"""Quality-aware calibration: how far an LLR can be trusted depends on the test recording.

A calibration (:class:`~speakergmm.backend.calibration.Calibration`) learnt on clean,
long recordings says too little for a short or noisy test: there the target scores fall
towards the non-target ones, the calibrated LLR of a true speaker goes negative, and the
default decision misses (half of the true speakers in 10 dB babble). The quality measure
functions of Brümmer and Mandasari et al. (BOSARIS; "Quality measure functions for
calibration of speaker recognition systems in various duration conditions", 2013) make
the calibration depend on measures of the recording. Here the measures are those the
product path reports for every test (:class:`~speakergmm.frontend.quality.Quality`),
turned into *deficits* that are 0 for a clean, long, full-band recording
(:func:`deficits`), and the system's (normalised) score ``s`` is adjusted before the
calibration in force maps it to an LLR::

    s' = s · exp(d · a) + d · b,        llr = calibration(s')

so a recording with no deficit keeps its score exactly, and a worse one gets a score of
smaller spread (``a`` < 0) moved towards where its target and non-target trials cross
(``b``). The adjustment is the system's (what noise does to its scores), the calibration
the store's or the system's: a store that calibrated itself on its own clean enrollments
keeps the adjustment (BOSARIS's form, ``a·s + b + w·q``, is this with the calibration's
slope folded in; here it is learnt once and kept apart). ``a`` and ``b`` minimise the
prior-weighted cross-entropy of the calibration (module
:mod:`~speakergmm.backend.calibration`) on trials whose test recordings were degraded in
ways kept apart from those a system is evaluated on; on the speechocean762 dev protocol
this form kept the EER of short tests better than adjusting the LLR itself (1 s: 10.5%
against 12.2%, unadjusted 9.4%).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ModelError, NotFittedError, ParameterError

__all__ = ["QualityCalibration", "deficits", "MEASURES", "REFERENCE"]

#: The measures, in the order of the columns of :func:`deficits`.
MEASURES = ("snr_db", "seconds", "upper_band_db")
#: Where each deficit starts: an SNR estimate below 25 dB, less than 4 s of speech, less
#: than -30 dB of the energy above 4.5 kHz (full-band speech has about -18 dB, a phone
#: channel below -44 dB). Set on the speechocean762 dev speakers' clean tests, of which
#: most have no deficit.
REFERENCE = {"snr_db": 25.0, "seconds": 4.0, "upper_band_db": -30.0}
_SCALE = {"snr_db": 10.0, "upper_band_db": 10.0}  # dB per unit of deficit


def deficits(*, snr_db, seconds, upper_band_db=None) -> np.ndarray:
    """How far recordings fall short of a clean, long, full-band one.

    Parameters
    ----------
    snr_db : array-like [shape=(n,)]
        WADA SNR estimates (NaN, from silence, counts as the worst).
    seconds : array-like [shape=(n,)]
        Seconds of speech scored.
    upper_band_db : array-like [shape=(n,)] or None
        Energy above 4.5 kHz against the whole; None or NaN where it is not measured
        (audio below 16 kHz): no deficit.

    Returns
    -------
    np.ndarray [shape=(n, 3)]
        Non-negative: SNR below 25 dB in 10 dB units (at most 4.5), octaves of speech
        below 4 s (at most 5.3, for 0.1 s), band below -30 dB in 10 dB units (at most 7).
    """
    snr = np.nan_to_num(np.atleast_1d(np.asarray(snr_db, np.float64)), nan=-20.0)
    sec = np.atleast_1d(np.asarray(seconds, np.float64))
    # (None, for a band not measured, reads as NaN)
    band = np.atleast_1d(np.asarray(np.nan if upper_band_db is None else upper_band_db,
                                    np.float64))
    band = np.nan_to_num(band, nan=REFERENCE["upper_band_db"])
    snr, sec, band = np.broadcast_arrays(snr, sec, band)
    return np.column_stack([
        np.clip(REFERENCE["snr_db"] - snr, 0, 45) / _SCALE["snr_db"],
        np.maximum(0.0, np.log2(REFERENCE["seconds"] / np.maximum(sec, 0.1))),
        np.clip(REFERENCE["upper_band_db"] - band, 0, 70) / _SCALE["upper_band_db"]])


class QualityCalibration:
    """A score adjusted for the test recording's quality before it is calibrated (module
    docstring).

    Use ``QualityCalibration().fit(scores, is_target, deficits(...), calibration=cal)``
    on trials with degraded test recordings, then :meth:`transform` before
    ``cal.transform``.

    Attributes
    ----------
    scale_weights_, offset_weights_ : np.ndarray [shape=(3,)]
        ``a`` and ``b``, one weight per measure of :data:`MEASURES`.
    prior_ : float
        The target prior of the training objective.
    n_target_, n_nontarget_ : int
        Training counts.
    """

    def __init__(self):
        self.scale_weights_: np.ndarray | None = None
        self.offset_weights_: np.ndarray | None = None
        self.prior_: float | None = None
        self.n_target_ = self.n_nontarget_ = 0

    def __repr__(self) -> str:
        if self.scale_weights_ is None:
            return "QualityCalibration(unfitted)"
        return (f"QualityCalibration(scale_weights_={np.round(self.scale_weights_, 4)}, "
                f"offset_weights_={np.round(self.offset_weights_, 4)}, prior_={self.prior_})")

    def fit(self, scores, is_target, deficit, *, calibration, prior: float = 0.5,
            ridge: float = 1e-3) -> "QualityCalibration":
        """Learn ``a`` and ``b``.

        Parameters
        ----------
        scores : array-like [shape=(n,)]
            The system's scores of the trials (before calibration).
        is_target : array-like of bool [shape=(n,)]
        deficit : array-like [shape=(n, 3)]
            :func:`deficits` of each trial's test recording.
        calibration : Calibration
            What maps the scores to LLRs (fitted on the clean trials), kept fixed.
        prior : float
            The prior the objective weighs targets with; 0.5, the default decision of
            ``verify``, is where the adjustment matters.
        ridge : float
            An L2 penalty on the weights, so that a measure the trials do not vary leaves
            its weights at 0 rather than undefined.

        Returns
        -------
        self
        """
        from scipy.optimize import minimize

        from .calibration import _check_prior, _sigmoid, _softplus

        p = _check_prior(prior)
        if calibration.scale_ is None:
            raise ParameterError("the calibration is not fitted")
        A, B = calibration.scale_, calibration.offset_
        llr = np.asarray(scores, np.float64)
        target = np.asarray(is_target, bool)
        D = np.asarray(deficit, np.float64)
        if llr.ndim != 1 or target.shape != llr.shape or D.shape != (len(llr), len(MEASURES)):
            raise ParameterError(f"scores, is_target and deficit must have shapes (n,), (n,) "
                                 f"and (n, {len(MEASURES)}); got {llr.shape}, "
                                 f"{target.shape} and {D.shape}")
        if not (np.all(np.isfinite(llr)) and np.all(np.isfinite(D))):
            raise ParameterError("scores and deficit must be finite")
        if not target.any() or target.all():
            raise ParameterError("a quality calibration needs target and non-target trials")
        w = np.where(target, p / target.sum(), (1 - p) / (~target).sum())
        y = np.where(target, 1.0, -1.0)
        logit_p = math.log(p / (1 - p))
        k = D.shape[1]

        def objective(theta):
            scale = np.exp(np.minimum(D @ theta[:k], 50.0))
            x = A * (llr * scale + D @ theta[k:]) + B + logit_p
            g = A * w * (_sigmoid(x) - (y > 0))  # d softplus(-y x) / d(adjusted score)
            grad = np.concatenate([D.T @ (g * llr * scale), D.T @ g]) + 2 * ridge * theta
            return float(w @ _softplus(-y * x)) + ridge * float(theta @ theta), grad

        found = minimize(objective, np.zeros(2 * k), jac=True, method="L-BFGS-B")
        self.scale_weights_ = found.x[:k].copy()
        self.offset_weights_ = found.x[k:].copy()
        self.prior_ = p
        self.n_target_, self.n_nontarget_ = int(target.sum()), int((~target).sum())
        return self

    def transform(self, scores, deficit) -> np.ndarray:
        """Scores adjusted for their tests' deficits (the shape of ``scores``; ``deficit``
        of shape (n, 3), or (1, 3) for one test recording scored against n models), to be
        calibrated next."""
        if self.scale_weights_ is None:
            raise NotFittedError("QualityCalibration is not fitted: call fit() or from_dict()")
        D = np.atleast_2d(np.asarray(deficit, np.float64))
        scale = np.exp(np.minimum(D @ self.scale_weights_, 50.0))
        return np.asarray(scores, np.float64) * scale + D @ self.offset_weights_

    def to_dict(self) -> dict:
        if self.scale_weights_ is None:
            raise NotFittedError("QualityCalibration is not fitted: nothing to write")
        return {"measures": list(MEASURES), "reference": dict(REFERENCE),
                "scale_weights": [float(v) for v in self.scale_weights_],
                "offset_weights": [float(v) for v in self.offset_weights_],
                "prior": self.prior_, "n_target": self.n_target_,
                "n_nontarget": self.n_nontarget_}

    @classmethod
    def from_dict(cls, doc) -> "QualityCalibration":
        """Read what :meth:`to_dict` wrote.

        Raises
        ------
        ModelError
            Other measures or references than this version's, weights missing or not
            finite.
        """
        if not isinstance(doc, dict) or doc.get("measures") != list(MEASURES) \
                or doc.get("reference") != REFERENCE:
            raise ModelError(f"the quality calibration is of other measures than "
                             f"{', '.join(MEASURES)} (from another speakergmm version?)")
        obj = cls()
        try:
            a = np.array(doc["scale_weights"], np.float64)
            b = np.array(doc["offset_weights"], np.float64)
            obj.prior_ = float(doc["prior"])
            obj.n_target_, obj.n_nontarget_ = int(doc["n_target"]), int(doc["n_nontarget"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"the quality calibration is incomplete or invalid: {exc}") \
                from None
        if a.shape != (len(MEASURES),) or b.shape != a.shape \
                or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
            raise ModelError("the quality calibration's weights must be "
                             f"{len(MEASURES)} finite numbers each")
        obj.scale_weights_, obj.offset_weights_ = a, b
        return obj
