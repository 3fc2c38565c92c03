"""Relevance-MAP adaptation of a UBM to a speaker (Reynolds, Quatieri & Dunn 2000, eqs. 11-14).

A speaker is represented by the sufficient statistics (:class:`~speakergmm.gmm.GMMStats`) of
all of their enrollment frames under the UBM. Adaptation is a pure function of those summed
statistics and the UBM, so enrolling more audio later is just adding statistics: a
:class:`SpeakerModel` keeps the statistics (not the adapted parameters) for that reason.

With ``α_k = n_k / (n_k + r)`` and the data moments ``E_k[x] = f_k / n_k``,
``E_k[x²] = s_k / n_k``, one relevance factor ``r`` for every adapted parameter type:

- weights:   ``ŵ_k = γ [α_k n_k / T + (1 - α_k) w_k]``, ``γ`` making them sum to 1;
- means:     ``μ̂_k = α_k E_k[x] + (1 - α_k) μ_k``;
- variances: ``σ̂²_k = α_k E_k[x²] + (1 - α_k)(σ²_k + μ²_k) - μ̂²_k``, then floored.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Union

import numpy as np

from ..constants import ADAPTABLE
from ..errors import FeatureError, ModelError, ParameterError
from .mixture import DiagGMM
from .stats import GMMStats

__all__ = ["map_adapt", "map_parameters", "SpeakerModel", "ADAPTABLE", "parse_adapt"]


# Default variance floor: this fraction of the UBM's smallest variance in each dimension.
# An adapted variance is at least (1 - α)σ²_k, so it can only collapse where a component has
# many frames (α → 1) of nearly constant data (digital silence, duplicated frames); half the
# UBM's tightest component still lets a speaker be sharper than the UBM anywhere.
_FLOOR_FACTOR = 0.5


def parse_adapt(adapt: str | Iterable[str]) -> tuple[str, ...]:
    """Normalise ``adapt`` to a tuple of :data:`ADAPTABLE` names in canonical order.

    Accepts ``"means"``, ``"means,weights"`` or any iterable of names. ModelError names an
    unknown one; an empty selection is refused (it would return the UBM itself).
    """
    names = adapt.split(",") if isinstance(adapt, str) else list(adapt)
    names = {str(name).strip().lower() for name in names} - {""}
    unknown = sorted(names - set(ADAPTABLE))
    if unknown:
        raise ModelError(f"cannot adapt {unknown}: choose from {', '.join(ADAPTABLE)}")
    if not names:
        raise ModelError(f"nothing to adapt: choose one or more of {', '.join(ADAPTABLE)}")
    return tuple(name for name in ADAPTABLE if name in names)


def _check_relevance(relevance) -> float:
    r = float(relevance)
    if not (np.isfinite(r) and r > 0):
        raise ModelError(f"relevance factor must be a positive finite number, got {relevance!r}")
    return r


def map_adapt(ubm: DiagGMM, stats: GMMStats, *, relevance: float = 16.0,
              adapt: str | Iterable[str] = ("means",), variance_floor=None) -> DiagGMM:
    """MAP-adapt ``ubm`` to the frames summarised by ``stats``.

    Parameters
    ----------
    ubm : DiagGMM
        K components in D dimensions.
    stats : GMMStats
        Statistics of the speaker's frames accumulated under ``ubm`` (``ubm.accumulate``),
        shapes (K,), (K, D), (K, D).
    relevance : float
        The relevance factor ``r`` > 0, shared by all adapted parameter types. Small values
        trust the data (``r → 0`` gives the ML estimates where ``n_k > 0``), large values
        the UBM (``r → ∞`` gives the UBM).
    adapt : str or iterable of str
        Any of ``"means"``, ``"weights"``, ``"variances"`` (tuple, list or comma string).
    variance_floor : float or array_like [shape=(D,)], optional
        Lower bound on adapted variances. Default: half the UBM's smallest variance in each
        dimension.

    Returns
    -------
    DiagGMM
        The adapted model, with the UBM's metadata plus an ``"adaptation"`` record. Components
        with ``n_k = 0`` keep the UBM's mean and variance exactly; with weight adaptation
        their weights are the UBM's times the common normalisation factor ``γ``.

    Raises
    ------
    ModelError
        If ``relevance`` or ``adapt`` is invalid, or the statistics' shape is not the UBM's.

    Notes
    -----
    The adapted variance is computed in the equivalent centred form
    ``α S_k + (1 - α) σ²_k - α² δ²_k`` with ``δ_k = E_k[x] - μ_k`` and
    ``S_k = E_k[(x - μ_k)²]``, which is eq. 14 rearranged. When the means are not adapted
    the variance is taken about the UBM mean, ``α S_k + (1 - α) σ²_k``: eq. 14 assumes the
    adapted mean, and subtracting ``μ²_k`` instead would not give a second moment about the
    mean the model actually uses.
    """
    r = _check_relevance(relevance)
    names = parse_adapt(adapt)
    K, D = ubm.n_components, ubm.dim
    if not isinstance(stats, GMMStats):
        raise ModelError(f"expected GMMStats, got {type(stats).__name__}")
    if stats.f.shape != (K, D):
        raise ModelError(
            f"statistics have shape (K, D) = {stats.f.shape} but the UBM is (K, D) = {(K, D)}; "
            "accumulate them under the same UBM"
        )
    new_w, new_mu, new_var = map_parameters(ubm, stats.n, stats.f, stats.s, relevance=r,
                                            adapt=names, variance_floor=variance_floor)
    meta = dict(ubm.metadata)
    meta["adaptation"] = {"method": "relevance-map", "relevance": r, "adapt": list(names),
                          "ubm_fingerprint": ubm.fingerprint(), "frames": stats.frames}
    return DiagGMM(new_w, new_mu, new_var, metadata=meta)


def map_parameters(ubm: DiagGMM, n, f, s=None, *, relevance: float = 16.0,
                   adapt=("means",), variance_floor=None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The relevance-MAP parameters of one speaker or of a stack of M speakers at once:
    what :func:`map_adapt` computes, without building a model (identification adapts
    thousands of speakers per call).

    Parameters
    ----------
    ubm : DiagGMM
    n : array_like [shape=(K,) or (M, K)]
    f : array_like [shape=(K, D) or (M, K, D)]
    s : array_like [shape of ``f``], optional
        Needed only to adapt variances.
    relevance, adapt, variance_floor
        As :func:`map_adapt`.

    Returns
    -------
    weights, means, variances : np.ndarray [shapes (…, K), (…, K, D), (…, K, D)], float64
        The UBM's own arrays (not copies, not stacked) for the parameters not adapted.
    """
    r = _check_relevance(relevance)
    names = parse_adapt(adapt)
    w, mu, var = ubm.weights, ubm.means, ubm.variances
    n = np.asarray(n, dtype=np.float64)
    f = np.asarray(f, dtype=np.float64)
    seen = n > 0
    alpha = n / (n + r)  # 0 exactly where n_k = 0
    a = alpha[..., None]

    # Data moments only where there are data: 0/0 elsewhere is never formed. In place: a
    # stack of thousands of speakers makes every temporary count.
    n_safe = np.where(seen, n, 1.0)[..., None]
    delta = f / n_safe
    delta -= mu
    delta *= seen[..., None]  # E_k[x] - μ_k, and 0 where n_k = 0

    new_w, new_mu, new_var = w, mu, var
    if "means" in names:
        new_mu = a * delta  # μ + α δ = α E[x] + (1 - α) μ; exactly μ where n_k = 0
        new_mu += mu
    if "variances" in names:
        if s is None:
            raise ModelError("adapting variances needs second-order statistics")
        s = np.asarray(s, dtype=np.float64)
        # S_k = E_k[(x - μ_k)²] from the raw float64 sums, centred on the UBM mean.
        centred = np.where(seen[..., None], (s - 2.0 * mu * f) / n_safe + mu * mu, 0.0)
        v = a * centred + (1.0 - a) * var
        if "means" in names:
            v -= (a * a) * delta * delta
        new_var = np.where(seen[..., None], np.maximum(v, _floor(ubm, variance_floor)), var)
    if "weights" in names:
        total = n.sum(axis=-1, keepdims=True)
        raw = alpha * n / np.where(total > 0, total, 1.0) + (1.0 - alpha) * w
        new_w = np.where(total > 0, raw / raw.sum(axis=-1, keepdims=True), w)
    return new_w, new_mu, new_var


# Speakers per block in map_offset_bias: a few, so that the float32 temporaries (Mb × K × D)
# stay in the core's cache between the passes over them.
_BIAS_BLOCK = 8


def map_offset_bias(ubm: DiagGMM, n, f, *, relevance: float) -> np.ndarray:
    """``-½‖A_k‖²`` of means-only relevance-MAP speakers, with ``A_k = (μ'_k - μ_k)/σ_k =
    (f_k - n_k μ_k) / ((n_k + r) σ_k)`` their whitened mean offsets: the part of a speaker
    component's log-likelihood relative to the UBM's that does not depend on the frame (see
    :mod:`speakergmm.backend.scoring`). A store keeps it beside the statistics, so that
    identification over thousands of speakers need not make it again.

    Parameters
    ----------
    ubm : DiagGMM
    n : array_like [shape=(M, K)]
    f : array_like [shape=(M, K, D)]
    relevance : float

    Returns
    -------
    np.ndarray [shape=(M, K), dtype=float32]
        Non-finite where the statistics are (the caller refuses them).
    """
    n, f = np.asarray(n, np.float32), np.asarray(f, np.float32)
    mu = ubm.means.astype(np.float32)
    isig = (1.0 / np.sqrt(ubm.variances)).astype(np.float32)
    with np.errstate(all="ignore"):
        scale = 1.0 / (n + np.float32(relevance))
        bias = np.empty(n.shape, np.float32)
        for m0 in range(0, n.shape[0], _BIAS_BLOCK):
            m1 = min(n.shape[0], m0 + _BIAS_BLOCK)
            a = n[m0:m1, :, None] * mu
            np.subtract(f[m0:m1], a, out=a)
            a *= isig
            np.einsum("mkd,mkd->mk", a, a, out=bias[m0:m1])
        bias *= scale
        bias *= scale
        bias *= -0.5
    return bias


def _floor(ubm: DiagGMM, variance_floor) -> np.ndarray:
    if variance_floor is None:
        return _FLOOR_FACTOR * ubm.variances.min(axis=0)
    floor = np.asarray(variance_floor, dtype=np.float64)
    if floor.shape not in ((), (ubm.dim,)) or not np.all(np.isfinite(floor)) or np.any(floor <= 0):
        raise ModelError(
            f"variance_floor must be a positive finite scalar or a ({ubm.dim},) array, "
            f"got {variance_floor!r}"
        )
    return np.broadcast_to(floor, (ubm.dim,))


@dataclasses.dataclass(frozen=True, eq=False)
class SpeakerModel:
    """A speaker as summed enrollment statistics under a UBM, plus adaptation settings.

    Keeping statistics rather than adapted parameters makes enrollment incremental and
    exact: ``model.add(more)`` adapts to exactly what enrolling everything at once would.

    Attributes
    ----------
    stats : GMMStats
        Summed statistics of all enrollment frames under the UBM, shapes (K,), (K, D), (K, D).
    ubm_fingerprint : str
        ``ubm.fingerprint()`` of the UBM the statistics were accumulated under.
    relevance : float
        Relevance factor used by :meth:`adapted`.
    adapt : tuple of str
        Adapted parameter types (see :func:`map_adapt`).
    utterances : int
        Number of enrollment utterances summed into ``stats``.
    """

    stats: GMMStats
    ubm_fingerprint: str
    relevance: float = 16.0
    adapt: tuple = ("means",)
    utterances: int = 0

    def __post_init__(self):
        if not isinstance(self.stats, GMMStats):
            raise ModelError(f"stats must be GMMStats, got {type(self.stats).__name__}")
        object.__setattr__(self, "relevance", _check_relevance(self.relevance))
        object.__setattr__(self, "adapt", parse_adapt(self.adapt))
        object.__setattr__(self, "utterances", int(self.utterances))

    @classmethod
    def enroll(cls, ubm: DiagGMM, features: Iterable[np.ndarray], *, relevance: float = 16.0,
               adapt: str | Iterable[str] = ("means",)) -> "SpeakerModel":
        """Accumulate the statistics of every enrollment utterance under ``ubm``.

        Parameters
        ----------
        ubm : DiagGMM
        features : iterable of np.ndarray [shape=(N_i, D)] or GMMStats
            One array of frames per utterance (float32 preferred), or its statistics
            under ``ubm`` (from a statistics archive).
        relevance, adapt
            Stored for :meth:`adapted` (see :func:`map_adapt`).

        Raises
        ------
        FeatureError
            If there is no utterance, or one has no frames.
        ModelError
            If the feature dimension is not the UBM's.
        """
        stats, count = GMMStats.zeros(ubm.n_components, ubm.dim), 0
        for i, X in enumerate(features):
            if isinstance(X, GMMStats):  # from a statistics archive: already accumulated
                stats, count = stats + X, count + 1
                continue
            X = np.asarray(X)
            if X.ndim == 2 and X.shape[0] == 0:
                raise FeatureError(f"enrollment utterance {i} has no frames")
            stats = stats + ubm.accumulate(X)
            count += 1
        if count == 0:
            raise FeatureError("no enrollment utterances: cannot enroll a speaker from nothing")
        return cls(stats, ubm.fingerprint(), relevance, adapt, count)

    def add(self, other: Union[GMMStats, "SpeakerModel"]) -> "SpeakerModel":
        """A new model with ``other``'s statistics added (one utterance for a GMMStats).

        The relevance and adapted parameter types of ``self`` are kept.

        Raises
        ------
        ModelError
            If ``other`` is a SpeakerModel of another UBM, or the shapes differ.
        """
        if isinstance(other, SpeakerModel):
            if other.ubm_fingerprint != self.ubm_fingerprint:
                raise ModelError(
                    f"cannot add a speaker model of UBM {other.ubm_fingerprint} to one of UBM "
                    f"{self.ubm_fingerprint}"
                )
            stats, count = other.stats, other.utterances
        elif isinstance(other, GMMStats):
            stats, count = other, 1
        else:
            raise ParameterError(f"can add GMMStats or SpeakerModel, not {type(other).__name__}")
        if stats.f.shape != self.stats.f.shape:
            raise ModelError(
                f"statistics of shape (K, D) = {stats.f.shape} do not match the speaker's "
                f"{self.stats.f.shape}"
            )
        return dataclasses.replace(self, stats=self.stats + stats,
                                   utterances=self.utterances + count)

    def adapted(self, ubm: DiagGMM) -> DiagGMM:
        """The MAP-adapted GMM; ``ubm`` must be the one the statistics came from."""
        fp = ubm.fingerprint()
        if fp != self.ubm_fingerprint:
            raise ModelError(
                f"speaker model was adapted from UBM {self.ubm_fingerprint}, not {fp}"
            )
        return map_adapt(ubm, self.stats, relevance=self.relevance, adapt=self.adapt)

    @property
    def frames(self) -> int:
        """Number of enrollment frames."""
        return self.stats.frames

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (no pickle) for storage; inverse of :meth:`from_arrays`."""
        out = {f"stats_{k}": v for k, v in self.stats.to_arrays().items()}
        out.update(ubm_fingerprint=np.array(self.ubm_fingerprint),
                   relevance=np.array(self.relevance), adapt=np.array(",".join(self.adapt)),
                   utterances=np.array(self.utterances, dtype=np.int64))
        return out

    @classmethod
    def from_arrays(cls, arrays) -> "SpeakerModel":
        """Rebuild a model from :meth:`to_arrays` output (or an ``np.load`` of it)."""
        stats = GMMStats.from_arrays({k[6:]: arrays[k] for k in arrays if k.startswith("stats_")})
        return cls(stats, str(np.asarray(arrays["ubm_fingerprint"])),
                   float(np.asarray(arrays["relevance"])), str(np.asarray(arrays["adapt"])),
                   int(np.asarray(arrays["utterances"])))
