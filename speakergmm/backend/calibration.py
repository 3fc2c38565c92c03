"""Linear score calibration by prior-weighted logistic regression (BOSARIS style).

A raw or normalised score ranks trials but means nothing on its own: a threshold tuned
on one set misses on the next. Calibration maps a score ``s`` to ``a·s + b``, a
log-likelihood ratio ``log p(s|target) / p(s|non-target)``. Then the Bayes decision for
a target prior P needs no tuning: accept when the LLR exceeds ``-logit(P)``
(:func:`bayes_threshold`); 0 means "as likely target as not".

``a`` and ``b`` minimise the prior-weighted cross-entropy of BOSARIS
``train_linear_calibration`` (Brümmer & de Villiers, "The BOSARIS toolkit", 2011)::

    C(a, b) = P · mean_t log(1 + exp(-(a·s_t + b + logit P)))
            + (1 - P) · mean_n log(1 + exp(a·s_n + b + logit P))

Targets count with total weight P and non-targets with 1 - P whatever their numbers, and
``logit P`` turns the posterior log-odds the regression fits back into an LLR. C is convex
in (a, b), so a 2-D Newton iteration with analytic gradient and Hessian finds the optimum
in a handful of steps. At P = 0.5 and divided by log 2, C is :func:`~speakergmm.eval.metrics.cllr`.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import numpy as np

from .._io import write_text_atomic
from .._version import __version__
from ..data.scores import as_scores
from ..errors import CalibrationError, ModelError, NotFittedError, ParameterError

__all__ = ["Calibration", "Fusion", "train_logistic", "bayes_threshold", "FORMAT_NAME",
           "FORMAT_VERSION", "FUSION_FORMAT", "load_score_map", "MIN_CALIBRATION",
           "check_training_trials"]

#: A calibration (or fusion) needs at least this many target and non-target trials (and,
#: where speakers are known, from this many speakers): fewer leave the fit to chance.
MIN_CALIBRATION = {"target": 10, "nontarget": 30, "speakers": 3}


def _trained_on(source) -> str | None:
    """What a calibration or fusion records of the scores it was fitted on: the absolute
    path of a scores file, or the name given."""
    if source is None:
        return None
    path = Path(source) if isinstance(source, (str, os.PathLike)) else None
    return str(path.resolve()) if path is not None and path.exists() else str(source)


def check_training_trials(n_target: int, n_nontarget: int, source) -> None:
    """Warn (:class:`~speakergmm.errors.SpeakerGMMWarning`, naming ``source``) when there
    are fewer trials than :data:`MIN_CALIBRATION` to train a calibration or fusion on: its
    parameters are then left to chance, and its decisions should not be trusted."""
    from ..errors import SpeakerGMMWarning

    if n_target < MIN_CALIBRATION["target"] or n_nontarget < MIN_CALIBRATION["nontarget"]:
        warnings.warn(
            f"{source}: only {n_target} target and {n_nontarget} non-target trial(s); a "
            f"calibration needs at least {MIN_CALIBRATION['target']} and "
            f"{MIN_CALIBRATION['nontarget']} for its parameters not to be left to chance: "
            "score more development trials before trusting its decisions",
            SpeakerGMMWarning, stacklevel=2)


FORMAT_NAME = "speakergmm.calibration"
FORMAT_VERSION = 1

# Beyond |x| = 50, log1p(exp(-|x|)) < 2e-22 is nothing next to max(x, 0), and clamping
# keeps float64 exp out of the subnormal range, which runs ~50x slower (ARCHITECTURE.md).
_EXP_CLAMP = 50.0


def _softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(x)) without overflow; +inf stays +inf, -inf gives exactly 0."""
    a = np.abs(x)
    tail = np.log1p(np.exp(-np.minimum(a, _EXP_CLAMP)))
    return np.maximum(x, 0.0) + np.where(a > _EXP_CLAMP, 0.0, tail)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), stable for both signs."""
    e = np.exp(-np.minimum(np.abs(x), _EXP_CLAMP))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _check_prior(prior) -> float:
    if isinstance(prior, bool) or not isinstance(prior, (int, float, np.floating)) \
            or not 0.0 < float(prior) < 1.0:
        raise ParameterError(f"prior must be a number strictly between 0 and 1, got {prior!r}")
    return float(prior)


def bayes_threshold(prior: float) -> float:
    """The LLR threshold of the Bayes decision for target prior ``prior``: ``-logit(prior)``
    (equal costs of miss and false alarm)."""
    p = _check_prior(prior)
    return -math.log(p / (1.0 - p))


def train_logistic(target, nontarget, prior: float, *, max_iter: int = 100,
                   tol: float = 1e-10) -> tuple[np.ndarray, float, bool, int]:
    """Weights ``w`` and offset ``b`` of ``llr = S @ w + b`` minimising the prior-weighted
    cross-entropy (module docstring) for k systems' scores: calibration is k = 1, linear
    fusion (BOSARIS ``train_linear_fusion``) k > 1.

    Parameters
    ----------
    target, nontarget : np.ndarray [shape=(N_t, k), (N_n, k)]
        Each row a trial's k scores.
    prior : float
    max_iter : int
    tol : float
        Stop when the Newton decrement ``gᵀH⁻¹g/2`` falls below it.

    Returns
    -------
    weights : np.ndarray [shape=(k,)]
    offset : float
    converged : bool
    iterations : int
    """
    p = _check_prior(prior)
    S = np.concatenate([target, nontarget])
    # Standardise each system's scores so the Newton system is well conditioned whatever
    # their scale (raw LLRs, normalised scores, or scores ×1000); mapped back at the end.
    centre = 0.5 * (target.mean(axis=0) + nontarget.mean(axis=0))
    spread = S.std(axis=0)
    spread[spread == 0] = 1.0
    X = np.column_stack([(S - centre) / spread, np.ones(len(S))])
    y = np.concatenate([np.ones(len(target)), -np.ones(len(nontarget))])  # +1 target
    w = np.concatenate([np.full(len(target), p / len(target)),
                        np.full(len(nontarget), (1 - p) / len(nontarget))])
    logit_p = math.log(p / (1.0 - p))

    def objective(theta):
        return float(w @ _softplus(-y * (X @ theta + logit_p)))

    dim = X.shape[1]
    theta = np.zeros(dim)
    obj = objective(theta)
    converged, it = False, 0
    for it in range(1, max_iter + 1):
        x = X @ theta + logit_p
        sig = _sigmoid(x)
        grad = X.T @ (w * (sig - (y > 0)))  # d softplus(-y x)/dx = σ(x) - [y = +1]
        hess = (X * (w * sig * (1.0 - sig))[:, None]).T @ X
        # A tiny ridge keeps the solve defined when the classes separate perfectly (the
        # Hessian vanishes as the slope grows without bound).
        step = np.linalg.solve(hess + 1e-12 * np.eye(dim), grad)
        decrement = 0.5 * float(grad @ step)
        if decrement < tol:
            converged = True
            break
        # Backtracking line search: Newton's full step can overshoot far from the optimum.
        lr = 1.0
        while lr > 1e-10:
            new = theta - lr * step
            new_obj = objective(new)
            if new_obj <= obj - 1e-4 * lr * 2.0 * decrement:
                break
            lr *= 0.5
        else:
            converged = True  # no descent possible at float precision: at the optimum
            break
        theta, obj = new, new_obj
    if not converged:
        warnings.warn(f"logistic regression did not converge in {max_iter} Newton "
                      "iterations (perfectly separated scores?); the slope may be too large",
                      RuntimeWarning, stacklevel=3)
    weights = theta[:-1] / spread
    return weights, float(theta[-1] - weights @ centre), converged, it


class Calibration:
    """An affine score-to-LLR map ``llr = scale_ · score + offset_``.

    Use ``Calibration().fit(target_scores, nontarget_scores, prior=0.01)`` on a
    development set, then :meth:`transform` on evaluation scores; :meth:`save` /
    :meth:`load` keep it in a small JSON file.

    Attributes
    ----------
    scale_, offset_ : float
        Fitted slope ``a`` and offset ``b``.
    prior_ : float
        The target prior of the training objective.
    n_target_, n_nontarget_ : int
        Training counts.
    converged_ : bool
    n_iter_ : int
        Newton iterations (0 for a calibration read from a file).
    trained_on_ : str or None
        What it was fitted on: the scores file (absolute path) or the name given as
        ``source``; None if neither was given.
    """

    def __init__(self):
        self.scale_: float | None = None
        self.offset_: float | None = None
        self.prior_: float | None = None
        self.n_target_ = self.n_nontarget_ = self.n_iter_ = 0
        self.converged_ = False
        self.trained_on_: str | None = None

    def __repr__(self) -> str:
        if self.scale_ is None:
            return "Calibration(unfitted)"
        return (f"Calibration(scale_={self.scale_:.6g}, offset_={self.offset_:.6g}, "
                f"prior_={self.prior_:g}, n_target_={self.n_target_}, "
                f"n_nontarget_={self.n_nontarget_})")

    def fit(self, target_scores, nontarget_scores, *, prior: float = 0.01,
            max_iter: int = 100, tol: float = 1e-10, source=None) -> "Calibration":
        """Fit (a, b) minimising the prior-weighted cross-entropy (module docstring).

        Parameters
        ----------
        target_scores : array-like [shape=(N_t,)]
        nontarget_scores : array-like [shape=(N_n,)]
        prior : float
            Target prior in (0, 1) the objective is weighted for; the operating point that
            matters most (0.01 for the NIST SRE 2008-style DCF).
        max_iter : int
        tol : float
            Stop when the Newton decrement ``gᵀH⁻¹g/2`` falls below it.
        source : str or path, optional
            Where the scores come from, named in the warning about too few trials
            (:func:`check_training_trials`) and in errors.

        Returns
        -------
        self

        Raises
        ------
        CalibrationError
            The targets score lower than the non-targets (a negative slope).
        """
        p = _check_prior(prior)
        t = as_scores(target_scores, "target_scores", ndim=None, allow_empty=False)
        n = as_scores(nontarget_scores, "nontarget_scores", ndim=None,
                      allow_empty=False)
        (a,), b, converged, it = train_logistic(t.ravel()[:, None], n.ravel()[:, None], p,
                                                max_iter=max_iter, tol=tol)
        given, source = source, "the scores" if source is None else str(source)
        if a <= 0:  # decisions from it would be the wrong way round
            raise CalibrationError(
                f"{source}: target trials score lower than non-target ones (fitted slope "
                f"{float(a):.3g}); the scores or their trial key are wrong (labels swapped, "
                "or another system's scores)")
        check_training_trials(t.size, n.size, source)
        self.scale_, self.offset_ = float(a), float(b)
        self.prior_ = p
        self.n_target_, self.n_nontarget_ = int(t.size), int(n.size)
        self.converged_, self.n_iter_ = converged, it
        self.trained_on_ = _trained_on(given)
        return self

    def transform(self, scores) -> np.ndarray:
        """Calibrated LLRs ``scale_ · scores + offset_`` (float64, the shape of ``scores``)."""
        if self.scale_ is None:
            raise NotFittedError("Calibration is not fitted: call fit() or Calibration.load()")
        s = np.asarray(scores, dtype=np.float64)
        if not np.all(np.isfinite(s)):
            raise ParameterError("scores to calibrate hold non-finite values (NaN or ±inf)")
        return self.scale_ * s + self.offset_

    # -- files ---------------------------------------------------------------------------

    def to_json(self) -> str:
        """The calibration as a JSON document with format name and version."""
        if self.scale_ is None:
            raise NotFittedError("Calibration is not fitted: nothing to write")
        doc = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
               "library_version": __version__, "scale": self.scale_, "offset": self.offset_,
               "prior": self.prior_, "n_target": self.n_target_,
               "n_nontarget": self.n_nontarget_, "converged": self.converged_,
               "trained_on": self.trained_on_}
        return json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Calibration":
        """Read a document written by :meth:`to_json`.

        Raises
        ------
        ModelError
            Not JSON, wrong format or version, missing or invalid fields.
        """
        doc = _json_document(text, "calibration")
        if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
            got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
            raise ModelError(f"format is {got!r}, expected {FORMAT_NAME!r}")
        if doc.get("format_version") != FORMAT_VERSION:
            raise ModelError(
                f"format version {doc.get('format_version')!r} is not supported (this "
                f"speakergmm {__version__} reads version {FORMAT_VERSION})")
        missing = [k for k in ("scale", "offset", "prior", "n_target", "n_nontarget")
                   if k not in doc]
        if missing:
            raise ModelError(f"calibration is missing {', '.join(missing)}")
        obj = cls()
        for key in ("scale", "offset"):
            value = doc[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ModelError(f"{key} must be a finite number, got {value!r}")
        if doc["scale"] <= 0:
            # a zero scale answers the same LLR for every trial, a negative one reverses
            # every decision: neither comes out of calibrate, which refuses inverted scores
            raise ModelError(f"scale must be positive, got {doc['scale']!r}: a calibration "
                             "of slope <= 0 does not rank targets above non-targets; train "
                             "it again with speakergmm calibrate")
        try:
            obj.prior_ = _check_prior(doc["prior"])
        except ValueError as exc:
            raise ModelError(str(exc)) from exc
        for key in ("n_target", "n_nontarget"):
            value = doc[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ModelError(f"{key} must be a positive integer, got {value!r}")
        obj.scale_, obj.offset_ = float(doc["scale"]), float(doc["offset"])
        obj.n_target_, obj.n_nontarget_ = doc["n_target"], doc["n_nontarget"]
        obj.converged_ = bool(doc.get("converged", True))
        obj.trained_on_ = doc.get("trained_on")  # (files before it recorded none)
        return obj

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_json` to ``path`` atomically."""
        write_text_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Calibration":
        """Read a file written by :meth:`save`; :class:`ModelError` names the path."""
        return _load(cls, Path(path), "calibration")


FUSION_FORMAT = "speakergmm.fusion"

#: Calibration and fusion files are a few hundred bytes: anything past this is not one.
MAX_JSON_BYTES = 1 << 20


def _read_small(path: Path, what: str) -> str:
    """The text of a calibration or fusion file, read only if it is small enough to be one
    (a device or a huge file is not read whole)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_JSON_BYTES + 1)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read {what} file ({exc.strerror or exc})") from None
    if len(data) > MAX_JSON_BYTES:
        raise ModelError(f"{path}: over {MAX_JSON_BYTES >> 20} MiB: not a {what} file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelError(f"{path}: not a {what} file (not UTF-8 text at byte {exc.start})"
                         ) from None


def _json_document(text: str, what: str):
    try:
        return json.loads(text)
    except RecursionError:  # nesting deeper than Python's stack: not a calibration either
        raise ModelError(f"not a JSON {what} file (nested too deeply)") from None
    except (TypeError, ValueError) as exc:
        raise ModelError(f"not a JSON {what} file ({exc})") from exc


class Fusion:
    """Linear logistic fusion of several systems' scores into one LLR, ``llr = S @ weights_
    + offset_`` (BOSARIS ``train_linear_fusion``): the calibration of k systems at once,
    trained by the same prior-weighted cross-entropy (:func:`train_logistic`).

    Attributes
    ----------
    weights_ : np.ndarray [shape=(k,)]
    offset_ : float
    prior_ : float
    systems_ : list of str
        Names of the fused systems, in column order (the score files given to ``fuse``).
    n_target_, n_nontarget_ : int
    converged_ : bool
    """

    def __init__(self):
        self.weights_: np.ndarray | None = None
        self.offset_: float | None = None
        self.prior_: float | None = None
        self.systems_: list[str] = []
        self.n_target_ = self.n_nontarget_ = 0
        self.converged_ = False
        self.trained_on_: str | None = None

    def __repr__(self) -> str:
        if self.weights_ is None:
            return "Fusion(unfitted)"
        return (f"Fusion(weights_={np.round(self.weights_, 6).tolist()}, "
                f"offset_={self.offset_:.6g}, prior_={self.prior_:g})")

    def fit(self, target_scores, nontarget_scores, *, prior: float = 0.01,
            systems=None, max_iter: int = 100, tol: float = 1e-10, source=None) -> "Fusion":
        """Fit on development scores: rows are trials, columns systems.

        Parameters
        ----------
        target_scores : array-like [shape=(N_t, k)]
        nontarget_scores : array-like [shape=(N_n, k)]
        prior : float
        systems : sequence of str, optional
            Names of the k systems.
        source : str or path, optional
            As :meth:`Calibration.fit`.

        Raises
        ------
        CalibrationError
            The targets score lower than the non-targets in every system.
        """
        t = as_scores(target_scores, "target_scores", ndim=2, allow_empty=False)
        n = as_scores(nontarget_scores, "nontarget_scores", ndim=2, allow_empty=False)
        if t.shape[1] != n.shape[1]:
            raise ParameterError(f"target scores of {t.shape[1]} systems, non-target of "
                                 f"{n.shape[1]}")
        self.weights_, self.offset_, self.converged_, _ = train_logistic(
            t, n, prior, max_iter=max_iter, tol=tol)
        self.prior_ = _check_prior(prior)
        self.systems_ = [str(s) for s in (systems or [f"system{i}" for i in range(t.shape[1])])]
        if len(self.systems_) != t.shape[1]:
            raise ParameterError(f"{len(self.systems_)} system names for {t.shape[1]} systems")
        given, source = source, "the scores" if source is None else str(source)
        if not (self.weights_ > 0).any():  # as Calibration: decisions the wrong way round
            raise CalibrationError(
                f"{source}: target trials score lower than non-target ones in every system "
                f"(fitted weights {', '.join(f'{w:.3g}' for w in self.weights_)}); the "
                "scores or the trial key are wrong (labels swapped, or another system's "
                "scores)")
        check_training_trials(len(t), len(n), source)
        self.n_target_, self.n_nontarget_ = len(t), len(n)
        self.trained_on_ = _trained_on(given)
        return self

    def transform(self, scores) -> np.ndarray:
        """Fused LLRs of trials' scores (N, k)."""
        if self.weights_ is None:
            raise NotFittedError("Fusion is not fitted: call fit() or Fusion.load()")
        S = as_scores(scores, "scores", ndim=2)
        if S.shape[1] != len(self.weights_):
            raise ParameterError(f"scores of {S.shape[1]} systems; the fusion was trained on "
                             f"{len(self.weights_)} ({', '.join(self.systems_)})")
        return S @ self.weights_ + self.offset_

    def to_json(self) -> str:
        if self.weights_ is None:
            raise NotFittedError("Fusion is not fitted: nothing to write")
        doc = {"format": FUSION_FORMAT, "format_version": FORMAT_VERSION,
               "library_version": __version__, "weights": self.weights_.tolist(),
               "offset": self.offset_, "prior": self.prior_, "systems": self.systems_,
               "n_target": self.n_target_, "n_nontarget": self.n_nontarget_,
               "converged": self.converged_, "trained_on": self.trained_on_}
        return json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Fusion":
        doc = _json_document(text, "fusion")
        if not isinstance(doc, dict) or doc.get("format") != FUSION_FORMAT or \
                doc.get("format_version") != FORMAT_VERSION:
            raise ModelError(f"not a speakergmm fusion of format version {FORMAT_VERSION}")
        obj = cls()
        if "weights" in doc and "offset" in doc and (
                not isinstance(doc["weights"], list)
                or any(isinstance(v, bool) or not isinstance(v, (int, float))
                       for v in [*doc["weights"], doc["offset"]])):
            raise ModelError("fusion weights and offset must be numbers (a list of weights)")
        try:
            obj.weights_ = np.array([float(w) for w in doc["weights"]])
            obj.offset_ = float(doc["offset"])
            obj.prior_ = _check_prior(doc["prior"])
            obj.systems_ = [str(s) for s in doc["systems"]]
            obj.n_target_, obj.n_nontarget_ = int(doc["n_target"]), int(doc["n_nontarget"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"fusion file is missing or has an invalid field ({exc})") from exc
        if not (np.all(np.isfinite(obj.weights_)) and math.isfinite(obj.offset_)) or \
                len(obj.systems_) != len(obj.weights_) or not len(obj.weights_):
            raise ModelError("fusion weights must be finite, one per named system")
        if not np.any(obj.weights_ > 0):
            raise ModelError("no fusion weight is positive: the fused score would not rank "
                             "targets above non-targets; train it again with speakergmm fuse")
        obj.converged_ = bool(doc.get("converged", True))
        obj.trained_on_ = doc.get("trained_on")
        return obj

    def save(self, path: str | os.PathLike) -> None:
        write_text_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Fusion":
        """Read a file written by :meth:`save`; :class:`ModelError` names the path."""
        return _load(cls, Path(path), "fusion")


def load_score_map(path: str | os.PathLike) -> Calibration | Fusion:
    """A calibration or a fusion file, whichever ``path`` holds (``apply-calibration``)."""
    path = Path(path)
    text = _read_small(path, "calibration or fusion")  # read once, whichever it is
    try:
        doc = _json_document(text, "calibration")
    except ModelError as exc:
        raise ModelError(f"{path}: not a calibration or fusion file ({exc})") from None
    kind = doc.get("format") if isinstance(doc, dict) else None
    return _load(Fusion if kind == FUSION_FORMAT else Calibration, path, "", text)


def _load(cls, path: Path, what: str, text: str | None = None):
    """``cls.from_json`` of the file ``path`` (or of its ``text``, already read), with
    :class:`ModelError` naming the path."""
    if text is None:
        if not path.is_file():
            raise ModelError(f"{path}: no such {what} file")
        text = _read_small(path, what)
    try:
        return cls.from_json(text)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from exc
