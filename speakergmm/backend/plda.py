"""Probabilistic linear discriminant analysis: the two-covariance model.

Every vector of speaker i is ``x_ij = μ + y_i + ε_ij`` with the speaker variable
``y_i ~ N(0, B)`` and the residual ``ε_ij ~ N(0, W)``, both full covariances (Brümmer and de
Villiers, 2010; the model Kaldi's ``ivector-compute-plda`` trains). It is chosen over the
simplified PLDA (SIDEKIT's default, a rank-limited speaker subspace plus a full residual)
because on length-normalised, LDA-reduced i-vectors of a few hundred dimensions the speaker
subspace is full rank anyway, the EM is exact with no rank to choose, and the model
diagonalises: one transform makes W = I and B = diag(ψ), after which every score is a sum
over independent dimensions (:class:`PLDAModels`: 100,000 models against a test in two
matrix-vector products).

Several enrollment vectors are scored *by the book*: the LLR is ``log p(t | e_1..e_n) -
log p(t)``, the speaker variable's posterior given all n of them; for this model their mean
and n are sufficient statistics, so it is exact, not an average of scores (Kaldi does the
same).

Training is EM over speakers (Brümmer's, Kaldi's ``PldaEstimator``): given W and B, each
speaker's posterior ``y_i | x_i· ~ N(ŷ_i, C_i)`` with ``C_i = (B⁻¹ + n_i W⁻¹)⁻¹``,
``ŷ_i = C_i W⁻¹ Σ_j (x_ij - μ)``; then ``B = mean_i(C_i + ŷ_i ŷ_iᵀ)`` and ``W =
(1/N) Σ_ij [(x_ij - μ - ŷ_i)(…)ᵀ + C_i]``. The log-likelihood never decreases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from ..errors import ModelError

__all__ = ["PLDA", "PLDAModels"]

_LOG_2PI = float(np.log(2.0 * np.pi))


class PLDA:
    """A two-covariance PLDA model.

    Parameters
    ----------
    mean : array_like [shape=(dim,)]
    between : array_like [shape=(dim, dim)]
        B, the covariance of the speaker variable.
    within : array_like [shape=(dim, dim)]
        W, the covariance of a vector about its speaker.

    See Also
    --------
    PLDA.fit : train one.
    """

    def __init__(self, mean, between, within):
        self.mean = np.asarray(mean, np.float64)
        self.between = np.asarray(between, np.float64)
        self.within = np.asarray(within, np.float64)
        dim = self.mean.shape[0] if self.mean.ndim == 1 else -1
        for name, m in (("between", self.between), ("within", self.within)):
            if m.shape != (dim, dim) or not np.all(np.isfinite(m)):
                raise ModelError(f"PLDA {name} covariance of shape {m.shape} does not fit a "
                                 f"mean of shape {self.mean.shape}, or is not finite")
        # Simultaneous diagonalisation: A W Aᵀ = I, A B Aᵀ = diag(ψ).
        try:
            psi, vectors = scipy.linalg.eigh(self.between, self.within)
        except np.linalg.LinAlgError as exc:
            raise ModelError(f"PLDA covariances are not positive definite ({exc})") from None
        self.transform_ = vectors.T  # rows: A
        self.psi = np.maximum(psi, 0.0)

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    # -- training --------------------------------------------------------------------------

    @classmethod
    def fit(cls, X, labels, *, n_iterations: int = 10, tol: float = 1e-5,
            progress=None) -> "PLDA":
        """EM training on labelled vectors.

        Parameters
        ----------
        X : array_like [shape=(n, dim)]
            Training vectors (after the transforms they will be scored with).
        labels : array_like [shape=(n,)]
            Their speakers; speakers with one vector inform B only.
        n_iterations : int
            At most this many EM iterations.
        tol : float
            Stop once an iteration raises the average log-likelihood per vector by less
            than this (EM has converged: further iterations change the model by rounding
            only); 0 runs every iteration. ``training["converged"]`` says whether it did.
        progress : callable(iteration, log_likelihood), optional
            Called after each iteration with the average log-likelihood per vector of the
            training data under the model before that iteration's update.

        Raises
        ------
        ModelError
            Fewer than two speakers, or no speaker with two vectors (W is then unidentified).
        """
        X = np.asarray(X, np.float64)
        labels = np.asarray(labels)
        if X.ndim != 2 or labels.shape != (len(X),) or not np.all(np.isfinite(X)):
            raise ModelError(f"PLDA needs finite (n, dim) vectors with one label each, got "
                             f"shapes {X.shape} and {labels.shape}")
        classes, index, counts = np.unique(labels, return_inverse=True, return_counts=True)
        if len(classes) < 2 or counts.max() < 2:
            raise ModelError(f"PLDA needs two or more speakers, some with several vectors: "
                             f"got {len(classes)} speakers, at most {counts.max()} vectors "
                             "each")
        mean = X.mean(axis=0)
        dev = X - mean
        sums = np.zeros((len(classes), X.shape[1]))
        np.add.at(sums, index, dev)
        # Start from the class scatter matrices (what LDA computes).
        centres = sums / counts[:, None]
        within = (dev - centres[index]).T @ (dev - centres[index]) / len(X)
        between = (centres * counts[:, None]).T @ centres / len(X)
        scale = np.trace(within) / len(within)
        within += np.eye(len(within)) * 1e-6 * scale
        between += np.eye(len(between)) * 1e-6 * scale
        record = []
        converged = False
        for it in range(1, n_iterations + 1):
            between, within, llk = _em_step(dev, sums, counts, index, between, within)
            record.append(llk)
            if progress is not None:
                progress(it, llk)
            if len(record) > 1 and abs(record[-1] - record[-2]) < tol:
                converged = True
                break
        model = cls(mean, between, within)
        model.training = {"vectors": len(X), "speakers": len(classes),
                          "iterations": len(record), "converged": converged,
                          "log_likelihood": record}
        return model

    def log_likelihood(self, X, labels) -> float:
        """Average log-likelihood per vector of labelled vectors under the model (each
        speaker's vectors jointly Gaussian, sharing y)."""
        X = np.asarray(X, np.float64)
        classes, index, counts = np.unique(labels, return_inverse=True, return_counts=True)
        dev = X - self.mean
        sums = np.zeros((len(classes), X.shape[1]))
        np.add.at(sums, index, dev)
        return _speaker_terms(dev, sums, counts, self.between, self.within)[2] / len(X)

    # -- scoring ---------------------------------------------------------------------------

    def models(self, enroll_means, counts) -> "PLDAModels":
        """Enrollment models from each model's mean vector and number of vectors."""
        enroll_means = np.atleast_2d(np.asarray(enroll_means, np.float64))
        counts = np.broadcast_to(np.asarray(counts, np.float64), (len(enroll_means),))
        if enroll_means.shape[1] != self.dim or np.any(counts < 1):
            raise ModelError(f"enrollment means of shape {enroll_means.shape} and counts "
                             f"{counts[:3]}... do not fit a PLDA of dimension {self.dim} "
                             "(counts >= 1)")
        u = (enroll_means - self.mean) @ self.transform_.T  # (m, dim) in the diagonal space
        psi = self.psi[None, :]
        n = counts[:, None]
        gain = n * psi / (n * psi + 1.0)              # E[y | e] = gain * ē
        var = 1.0 + psi / (n * psi + 1.0)             # Var[t | e]
        quad = 0.5 / (1.0 + psi) - 0.5 / var          # coefficient of t²
        lin = gain * u / var                           # coefficient of t
        const = np.sum(-0.5 * np.log(var) + 0.5 * np.log1p(psi) - 0.5 * (gain * u) ** 2 / var,
                       axis=1)
        return PLDAModels(self, quad, lin, const)

    def diagonal(self, X) -> np.ndarray:
        """Vectors ``(n, dim)`` in the diagonal space the scores are computed in."""
        X = np.atleast_2d(np.asarray(X, np.float64))
        if X.shape[1] != self.dim:
            raise ModelError(f"vectors of dimension {X.shape[1]}, PLDA of {self.dim}")
        return (X - self.mean) @ self.transform_.T

    def pair_form(self) -> tuple[np.ndarray, np.ndarray, float]:
        """``(alpha, beta, c)``: the symmetric LLR of two single vectors, the mean of
        either enrolled and the other tested, as a form of their diagonal-space images
        ``u``, ``v`` (:meth:`diagonal`): ``alpha·(u² + v²) + beta·(u∘v) + c``.

        Sums of it over pairs of two groups need only each group's size, ``Σu`` and
        ``Σ alpha·u²``: average-linkage clustering of many vectors without their matrix of
        pairs (:mod:`speakergmm.diarization.clustering`).
        """
        psi = self.psi
        gain = psi / (psi + 1.0)            # models' terms for one enrollment vector
        var = 1.0 + psi / (psi + 1.0)
        quad = 0.5 / (1.0 + psi) - 0.5 / var
        alpha = 0.5 * (quad - 0.5 * gain ** 2 / var)
        return alpha, gain / var, float(np.sum(-0.5 * np.log(var) + 0.5 * np.log1p(psi)))

    def llr(self, enroll, test) -> float:
        """By-the-book LLR of one test vector against the enrollment vectors ``enroll``
        (n, dim) of one speaker."""
        enroll = np.atleast_2d(np.asarray(enroll, np.float64))
        return float(self.models(enroll.mean(axis=0), len(enroll)).scores(
            np.atleast_2d(test))[0, 0])

    def __repr__(self) -> str:
        return f"PLDA(dim={self.dim})"


@dataclass(frozen=True)
class PLDAModels:
    """Enrolled models in PLDA's diagonal space: for a test vector t (whitened to u),
    ``LLR_m = quad_m · u² + lin_m · u + const_m``.

    Attributes
    ----------
    plda : PLDA
    quad, lin : np.ndarray [shape=(m, dim)]
    const : np.ndarray [shape=(m,)]
    """

    plda: PLDA
    quad: np.ndarray
    lin: np.ndarray
    const: np.ndarray

    def __len__(self) -> int:
        return len(self.const)

    def __getitem__(self, rows) -> "PLDAModels":
        """The models at ``rows`` (a slice or indices)."""
        return PLDAModels(self.plda, self.quad[rows], self.lin[rows], self.const[rows])

    def _diagonal(self, test) -> np.ndarray:
        return self.plda.diagonal(test)

    def scores(self, test) -> np.ndarray:
        """LLRs of every model against every test vector, (m, t)."""
        u = self._diagonal(test)
        return self.quad @ (u * u).T + self.lin @ u.T + self.const[:, None]

    def pair_scores(self, rows, test) -> np.ndarray:
        """LLRs of trial pairs: model ``rows[i]`` against test vector ``test[i]``."""
        u = self._diagonal(test)
        return (np.einsum("nd,nd->n", self.quad[rows], u * u)
                + np.einsum("nd,nd->n", self.lin[rows], u) + self.const[rows])


def _speaker_terms(dev, sums, counts, between, within):
    """Each speaker's posterior of y and the data's total log-likelihood.

    For speaker i with n_i vectors: precision ``P_i = B⁻¹ + n_i W⁻¹``, mean
    ``ŷ_i = P_i⁻¹ W⁻¹ s_i``, and ``log p(x_i·) = -½[n_i D log 2π + n_i log|W| + log|B| +
    log|P_i| + Σ_j d_ijᵀ W⁻¹ d_ij - ŷ_iᵀ P_i ŷ_i]``.
    """
    D = dev.shape[1]
    w_inv = np.linalg.inv(within)
    b_inv = np.linalg.inv(between)
    logdet_w = np.linalg.slogdet(within)[1]
    logdet_b = np.linalg.slogdet(between)[1]
    y = np.empty_like(sums)
    covs = np.empty((len(sums), D, D))
    total = -0.5 * (len(dev) * (D * _LOG_2PI + logdet_w)
                    + np.einsum("nd,de,ne->", dev, w_inv, dev))
    # Speakers with the same number of vectors share P: one inverse per distinct count.
    for n in np.unique(counts):
        rows = np.flatnonzero(counts == n)
        precision = b_inv + n * w_inv
        cov = np.linalg.inv(precision)
        cov = 0.5 * (cov + cov.T)
        y[rows] = sums[rows] @ w_inv @ cov
        covs[rows] = cov
        total -= 0.5 * len(rows) * (logdet_b + np.linalg.slogdet(precision)[1])
        total += 0.5 * np.einsum("nd,de,ne->", y[rows], precision, y[rows])
    return y, covs, float(total)


def _em_step(dev, sums, counts, index, between, within):
    y, covs, total = _speaker_terms(dev, sums, counts, between, within)
    second = covs + y[:, :, None] * y[:, None, :]
    new_between = second.mean(axis=0)
    resid = dev - y[index]
    new_within = (resid.T @ resid + np.einsum("s,sde->de", counts, covs)) / len(dev)
    sym = lambda m: 0.5 * (m + m.T)  # noqa: E731
    return sym(new_between), sym(new_within), total / len(dev)
