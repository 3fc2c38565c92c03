"""Fitted transforms of utterance vectors (i-vectors) and cosine scoring.

The transforms that sit between an i-vector extractor and its scorer in every toolkit of the
family (Kaldi's ``ivector-mean``/``ivector-compute-lda``/``ivector-normalize-length``,
SIDEKIT's ``whiten``/``lda``/``wccn``/``norm``, bob's LDA and WCCN), each a small class with
``fit`` and ``transform`` in scikit-learn's manner and its fitted state as named arrays, and a
:class:`VectorPipeline` that chains them:

- :class:`Whitening`: centre on the training mean and decorrelate to unit covariance;
- :class:`LDA`: linear discriminant analysis, the directions that maximise between-speaker
  over within-speaker variance, scaled to unit within-speaker variance;
- :class:`WCCN`: within-class covariance normalisation (Hatch et al., 2006): the inverse
  within-speaker covariance's Cholesky factor, so that within-speaker variance is I;
- :class:`LengthNorm`: each vector divided by its norm (Garcia-Romero and Espy-Wilson, 2011),
  which makes i-vectors far more Gaussian, as PLDA assumes.

Class statistics weight each speaker by its number of vectors (Fisher's scatter matrices, as
Kaldi and bob compute them). Everything is float64; a vector is a row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import scipy.linalg

from ..constants import VECTOR_BACKENDS
from ..errors import ModelError, ParameterError

__all__ = ["Whitening", "LDA", "WCCN", "LengthNorm", "VectorPipeline", "VectorBackend",
           "CosineModels", "class_scatter", "cosine_scores", "STEPS", "BACKENDS", "BACKEND_FORMAT"]

# Floor of eigenvalues (relative to the largest) below which a direction is dropped rather
# than divided by: a rank-deficient covariance (fewer vectors than dimensions) stays finite.
_EIG_FLOOR = 1e-10


def _as_rows(X, name: str = "vectors") -> np.ndarray:
    X = np.asarray(X, np.float64)
    if X.ndim != 2 or len(X) == 0 or not np.all(np.isfinite(X)):
        raise ModelError(f"{name} must be a non-empty finite (n, dim) array, got shape "
                         f"{X.shape}")
    return X


def class_scatter(X, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Overall mean, within-class and between-class covariance of labelled vectors.

    Parameters
    ----------
    X : array_like [shape=(n, dim)]
    labels : array_like [shape=(n,)]

    Returns
    -------
    mean : np.ndarray [shape=(dim,)]
    within : np.ndarray [shape=(dim, dim)]
        ``(1/n) Σ_s Σ_{i∈s} (x_i - μ_s)(x_i - μ_s)ᵀ``
    between : np.ndarray [shape=(dim, dim)]
        ``(1/n) Σ_s n_s (μ_s - μ)(μ_s - μ)ᵀ``
    """
    X = _as_rows(X)
    labels = np.asarray(labels)
    if labels.shape != (len(X),):
        raise ModelError(f"{len(X)} vectors but labels of shape {labels.shape}")
    classes, index, counts = np.unique(labels, return_inverse=True, return_counts=True)
    mean = X.mean(axis=0)
    sums = np.zeros((len(classes), X.shape[1]))
    np.add.at(sums, index, X)
    centres = sums / counts[:, None]
    dev = X - centres[index]
    within = dev.T @ dev / len(X)
    off = centres - mean
    between = (off * counts[:, None]).T @ off / len(X)
    return mean, within, between


class _Step:
    """A fitted transform: its state is ``arrays`` (name -> array) and ``params``."""

    kind = ""
    _ARRAYS: tuple[str, ...] = ()

    def fit(self, X, labels=None) -> "_Step":
        raise NotImplementedError

    def transform(self, X) -> np.ndarray:
        raise NotImplementedError

    def fit_transform(self, X, labels=None) -> np.ndarray:
        return self.fit(X, labels).transform(X)

    @property
    def params(self) -> dict:
        return {}

    def arrays(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {name: getattr(self, name) for name in self._ARRAYS}

    @classmethod
    def from_state(cls, params: Mapping, arrays: Mapping[str, np.ndarray]) -> "_Step":
        step = cls(**params)
        for name in cls._ARRAYS:
            setattr(step, name, np.asarray(arrays[name], np.float64))
        return step

    def _check_fitted(self) -> None:
        if any(getattr(self, name, None) is None for name in self._ARRAYS):
            raise ModelError(f"{type(self).__name__} is not fitted: call fit first")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


class Whitening(_Step):
    """Centre on the training mean and rotate/scale to unit covariance (PCA whitening).

    Attributes (fitted)
    -------------------
    mean_ : np.ndarray [shape=(dim,)]
    projection_ : np.ndarray [shape=(dim, k)]
        ``x -> (x - mean_) @ projection_``; k drops directions of (near) zero variance.
    """

    kind = "whitening"
    _ARRAYS = ("mean_", "projection_")

    def __init__(self):
        self.mean_ = self.projection_ = None

    def fit(self, X, labels=None) -> "Whitening":
        X = _as_rows(X)
        self.mean_ = X.mean(axis=0)
        dev = X - self.mean_
        values, vectors = np.linalg.eigh(dev.T @ dev / len(X))
        keep = values > _EIG_FLOOR * max(values.max(), 0.0)
        self.projection_ = vectors[:, keep] / np.sqrt(values[keep])
        return self

    def transform(self, X) -> np.ndarray:
        self._check_fitted()
        return (_as_rows(X) - self.mean_) @ self.projection_


class LDA(_Step):
    """Linear discriminant analysis to ``n_components`` dimensions.

    Solves ``S_b v = λ S_w v`` (the generalised symmetric eigenproblem) and keeps the
    ``n_components`` largest; the projection is scaled so that the projected within-class
    covariance is I and the between-class covariance diag(λ). Vectors are centred on the
    training mean first.

    Parameters
    ----------
    n_components : int
        At most the number of classes - 1 carry between-class information.

    Attributes (fitted)
    -------------------
    mean_ : np.ndarray [shape=(dim,)]
    projection_ : np.ndarray [shape=(dim, n_components)]
    eigenvalues_ : np.ndarray [shape=(n_components,)]
    """

    kind = "lda"
    _ARRAYS = ("mean_", "projection_", "eigenvalues_")

    def __init__(self, n_components: int):
        if int(n_components) < 1:
            raise ModelError(f"LDA needs n_components >= 1, got {n_components}")
        self.n_components = int(n_components)
        self.mean_ = self.projection_ = self.eigenvalues_ = None

    @property
    def params(self) -> dict:
        return {"n_components": self.n_components}

    def fit(self, X, labels=None) -> "LDA":
        if labels is None:
            raise ModelError("LDA needs the class (speaker) of each training vector")
        X = _as_rows(X)
        mean, within, between = class_scatter(X, labels)
        n_classes = len(np.unique(labels))
        if self.n_components > min(X.shape[1], n_classes - 1):
            raise ModelError(f"LDA to {self.n_components} dimensions needs at least "
                             f"{self.n_components + 1} classes and dimensions; got "
                             f"{n_classes} classes of {X.shape[1]}-dimensional vectors")
        # A within-class covariance that is singular (fewer vectors than dimensions) gets a
        # tiny ridge: eigh needs it positive definite.
        within = within + np.eye(len(within)) * _EIG_FLOOR * np.trace(within) / len(within)
        values, vectors = scipy.linalg.eigh(between, within)
        order = np.argsort(values)[::-1][:self.n_components]
        self.mean_, self.projection_ = mean, vectors[:, order]
        self.eigenvalues_ = values[order]
        return self

    def transform(self, X) -> np.ndarray:
        self._check_fitted()
        return (_as_rows(X) - self.mean_) @ self.projection_


class WCCN(_Step):
    """Within-class covariance normalisation: ``x -> x @ B`` with ``B Bᵀ = S_w⁻¹``
    (Cholesky), so that the within-class covariance becomes I.

    Attributes (fitted)
    -------------------
    projection_ : np.ndarray [shape=(dim, dim)]
    """

    kind = "wccn"
    _ARRAYS = ("projection_",)

    def __init__(self):
        self.projection_ = None

    def fit(self, X, labels=None) -> "WCCN":
        if labels is None:
            raise ModelError("WCCN needs the class (speaker) of each training vector")
        _, within, _ = class_scatter(X, labels)
        within = within + np.eye(len(within)) * _EIG_FLOOR * np.trace(within) / len(within)
        self.projection_ = np.linalg.cholesky(np.linalg.inv(within))
        return self

    def transform(self, X) -> np.ndarray:
        self._check_fitted()
        return _as_rows(X) @ self.projection_


class LengthNorm(_Step):
    """Each vector divided by its Euclidean norm (no fitted state)."""

    kind = "length_norm"

    def fit(self, X, labels=None) -> "LengthNorm":
        return self

    def transform(self, X) -> np.ndarray:
        X = _as_rows(X)
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        return X / np.maximum(norms, 1e-12)


#: Transform kinds by name (a pipeline's file lists them by these names).
STEPS = {cls.kind: cls for cls in (Whitening, LDA, WCCN, LengthNorm)}


class VectorPipeline:
    """Transforms applied in order; each is fitted on the output of those before it.

    Parameters
    ----------
    steps : sequence of transforms
        E.g. ``[LDA(200), LengthNorm()]`` (Kaldi's VoxCeleb i-vector recipe) or
        ``[Whitening(), LengthNorm()]`` (SIDEKIT's before PLDA).
    """

    def __init__(self, steps: Sequence[_Step] = ()):
        self.steps = list(steps)

    def fit(self, X, labels=None) -> "VectorPipeline":
        X = _as_rows(X)
        for step in self.steps:
            X = step.fit_transform(X, labels)
        return self

    def transform(self, X) -> np.ndarray:
        X = _as_rows(X)
        for step in self.steps:
            X = step.transform(X)
        return X

    def fit_transform(self, X, labels=None) -> np.ndarray:
        return self.fit(X, labels).transform(X)

    def state(self) -> tuple[list[dict], dict[str, np.ndarray]]:
        """``(description, arrays)``: JSON-able step kinds and parameters, and every fitted
        array under ``step<i>.<name>``; :meth:`from_state` rebuilds the pipeline."""
        description, arrays = [], {}
        for i, step in enumerate(self.steps):
            description.append({"kind": step.kind, "params": step.params})
            arrays.update({f"step{i}.{k}": v for k, v in step.arrays().items()})
        return description, arrays

    @classmethod
    def from_state(cls, description: Sequence[Mapping],
                   arrays: Mapping[str, np.ndarray]) -> "VectorPipeline":
        steps = []
        for i, entry in enumerate(description):
            try:
                kind = STEPS[entry["kind"]]
                own = {k.split(".", 1)[1]: v for k, v in arrays.items()
                       if k.startswith(f"step{i}.")}
                steps.append(kind.from_state(entry.get("params") or {}, own))
            except (KeyError, TypeError) as exc:
                raise ModelError(f"transform {i} ({entry!r}) cannot be rebuilt: missing "
                                 f"{exc}") from None
        return cls(steps)

    def __repr__(self) -> str:
        return f"VectorPipeline({self.steps!r})"


def cosine_scores(enroll, test) -> np.ndarray:
    """Cosine similarity of every enrollment vector with every test vector.

    Parameters
    ----------
    enroll : array_like [shape=(m, dim)]
        One vector per model (for several enrollment vectors, their mean: Kaldi's and
        SIDEKIT's practice).
    test : array_like [shape=(t, dim)]

    Returns
    -------
    np.ndarray [shape=(m, t)]
    """
    a = LengthNorm().transform(enroll)
    b = LengthNorm().transform(test)
    if a.shape[1] != b.shape[1]:
        raise ModelError(f"enrollment vectors of dimension {a.shape[1]}, test vectors of "
                         f"{b.shape[1]}")
    return a @ b.T


# --- a trained back-end: transforms and scorer, one file ------------------------------------

#: Format name of a back-end file (``speakergmm train-plda``).
BACKEND_FORMAT = "speakergmm.vector_backend"
BACKENDS = VECTOR_BACKENDS


class VectorBackend:
    """Transforms and a PLDA model trained together on labelled vectors: what
    ``speakergmm train-plda`` writes and ``speakergmm score --backend plda|cosine`` reads
    (cosine scoring uses the transforms only).

    Parameters
    ----------
    pipeline : VectorPipeline
    plda : PLDA
    metadata : dict, optional
        JSON-serialisable: the training record, the extractor the vectors came from.
    """

    def __init__(self, pipeline: VectorPipeline, plda, *, metadata: Mapping | None = None):
        self.pipeline, self.plda = pipeline, plda
        self.metadata = dict(metadata or {})

    @classmethod
    def train(cls, X, labels=None, *, whiten: bool = False, lda: int | None = None,
              wccn: bool = False, length_norm: bool = True, n_iterations: int = 10,
              metadata: Mapping | None = None, progress=None) -> "VectorBackend":
        """Fit the transforms in the order whitening, LDA, WCCN, length normalisation
        (each optional), then PLDA on their output.

        The default, LDA to ``lda`` dimensions then length normalisation, is Kaldi's
        VoxCeleb i-vector recipe (LDA 200); ``whiten=True`` without LDA is SIDEKIT's.

        Parameters
        ----------
        X : array_like [shape=(N, dim)] or VectorArchive
            Training vectors, or an archive of them
            (:func:`~speakergmm.gmm.ivector.read_vectors`): then the back-end records
            what it was trained on (``"extractor_fingerprint"``, ``"dim"``, ``"vectors"``),
            which scoring checks every archive against.
        labels : array_like [shape=(N,)], or mapping utterance -> speaker
            The speaker of each vector; for an archive, a mapping (default: the archive's
            ``utt2spk``), whose utterances in the archive are used, sorted.
        """
        from .plda import PLDA

        metadata = dict(metadata or {})
        if hasattr(X, "extractor_fingerprint"):  # a vector archive
            archive = X
            labels = archive.utt2spk if labels is None else labels
            utts = sorted(u for u in labels if u in archive)
            if not utts:
                raise ParameterError(f"{archive.path}: none of its vectors has a label")
            X, labels = archive.matrix(utts), np.array([labels[u] for u in utts])
            metadata.update(kind="vector_backend", vectors=str(archive.path), dim=archive.dim,
                            extractor_fingerprint=archive.extractor_fingerprint)
        elif labels is None:
            raise ParameterError("labels are needed: the speaker of each vector")

        steps = ([Whitening()] if whiten else []) + ([LDA(lda)] if lda else []) + (
            [WCCN()] if wccn else []) + ([LengthNorm()] if length_norm else [])
        pipeline = VectorPipeline(steps)
        Y = pipeline.fit_transform(X, labels)
        plda = PLDA.fit(Y, labels, n_iterations=n_iterations, progress=progress)
        meta = {**dict(metadata or {}), "training": plda.training}
        return cls(pipeline, plda, metadata=meta)

    def transform(self, X) -> np.ndarray:
        return self.pipeline.transform(X)

    def models(self, groups: Sequence, *, backend: str = "plda"):
        """Models from each model's enrollment vectors (as extracted: transformed here).

        They score vectors already transformed by :meth:`transform` (each test vector is
        transformed once, however many trials it is in): ``models.scores(T)`` gives the
        (models, tests) matrix, ``models.pair_scores(rows, T)`` the scores of model
        ``rows[i]`` against ``T[i]``, ``models[rows]`` a subset."""
        if backend not in BACKENDS:
            raise ModelError(f"unknown vector back-end {backend!r}: choose {BACKENDS}")
        counts = np.array([len(g) for g in groups])
        if counts.size == 0 or counts.min() < 1:
            raise ModelError("every model needs at least one enrollment vector")
        # one transform of every vector, then each model's mean: not a call per model
        X = self.transform(np.concatenate([np.atleast_2d(g) for g in groups]))
        means = np.add.reduceat(X, np.r_[0, np.cumsum(counts)[:-1]], axis=0) / counts[:, None]
        if backend == "plda":
            return self.plda.models(means, counts)
        return CosineModels(means)

    def __repr__(self) -> str:
        return f"VectorBackend({self.pipeline!r}, {self.plda!r})"

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """``(metadata, arrays)`` that :meth:`from_state` makes the back-end again from
        (what :meth:`save` writes; other files embed it)."""
        description, arrays = self.pipeline.state()
        arrays.update({"plda.mean": self.plda.mean, "plda.between": self.plda.between,
                       "plda.within": self.plda.within})
        return {**self.metadata, "pipeline": description}, arrays

    @staticmethod
    def state_keys(meta: Mapping) -> tuple[str, ...]:
        """The array names :meth:`from_state` needs for ``meta``; ModelError if ``meta``
        describes no pipeline."""
        description = meta.get("pipeline")
        if not isinstance(description, list) or not all(isinstance(e, dict)
                                                        for e in description):
            raise ModelError("a vector back-end without its transforms")
        return (*(f"step{i}.{name}" for i, entry in enumerate(description)
                  for name in STEPS.get(entry.get("kind"), _Step)._ARRAYS),
                "plda.mean", "plda.between", "plda.within")

    @classmethod
    def from_state(cls, meta: Mapping, arrays: Mapping[str, np.ndarray]) -> "VectorBackend":
        from .plda import PLDA

        pipeline = VectorPipeline.from_state(meta["pipeline"], arrays)
        plda = PLDA(arrays["plda.mean"], arrays["plda.between"], arrays["plda.within"])
        return cls(pipeline, plda, metadata=meta)

    def save(self, path) -> None:
        """Write to ``path`` (``.npz`` arrays and a JSON header) atomically."""
        from .._io import write_npz

        meta, arrays = self.state()
        write_npz(path, arrays, format_name=BACKEND_FORMAT, format_version=1, metadata=meta)

    @classmethod
    def load(cls, path) -> "VectorBackend":
        """Read a file written by :meth:`save`; ModelError if it is not one."""
        from .._io import read_npz

        _, header = read_npz(path, (), format_name=BACKEND_FORMAT, format_version=1,
                             what="vector back-end")
        meta = header["metadata"]
        try:
            keys = cls.state_keys(meta)
        except ModelError as exc:
            raise ModelError(f"{path}: {exc}") from None
        arrays, _ = read_npz(path, keys, format_name=BACKEND_FORMAT, format_version=1,
                             what="vector back-end")
        try:
            return cls.from_state(meta, arrays)
        except ModelError as exc:
            raise ModelError(f"{path}: {exc}") from None


class CosineModels:
    """Enrolled models for cosine scoring: each model's mean enrollment vector, length-
    normalised once (:meth:`VectorBackend.models` makes them).

    Parameters
    ----------
    vectors : array_like [shape=(m, dim)]
    """

    def __init__(self, vectors):
        self.unit = LengthNorm().transform(vectors)

    def __len__(self) -> int:
        return len(self.unit)

    def __getitem__(self, rows) -> "CosineModels":
        return CosineModels(self.unit[rows])

    def scores(self, test) -> np.ndarray:
        """Cosines of every model with every test vector, (m, t)."""
        test = LengthNorm().transform(test)
        if test.shape[1] != self.unit.shape[1]:
            raise ModelError(f"test vectors of dimension {test.shape[1]}, models of "
                             f"{self.unit.shape[1]}")
        return self.unit @ test.T

    def pair_scores(self, rows, test) -> np.ndarray:
        return np.einsum("nd,nd->n", self.unit[rows], LengthNorm().transform(test))
