"""A store's own calibration, learnt from its self-calibration trials (each enrollment
scores its new recordings against the speaker's model without them, and against other
speakers' models), and what a user is told about it.

A system's calibration describes its training corpus; the store's own trials describe the
audio it is really used on: on FSDD through the telephone system, false alarms at the
default decision fall from 52% to 6% once the store has learnt its own.

Before it has, the store's impostor trials already say where its impostors score
(:func:`adapted`): S-norm puts the system's own corpus's near 0 (higher for speakers
enrolled on little audio), and a store whose non-target trials sit above that, on audio
the system never saw, has its scores moved down by as much as the evidence of its speaker
pairs allows (never up: only a calibration learnt with target trials makes a store more
accepting than its system).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import numpy as np

from ..backend.calibration import MIN_CALIBRATION, Calibration
from ..errors import SpeakerGMMError, SpeakerGMMWarning
from .database import StoreError
from .records import SpeakerRecords, counted_trials

__all__ = ["AUTO_CALIBRATION", "MIN_CALIBRATION", "IN_DOMAIN_NONTARGET",
           "SHIFT_PRIOR_SD", "PAIR_SD", "StoreShift",
           "store_shift", "adapted", "calibrate", "calibration", "has_trials",
           "own_predicts_better", "relearn", "remove", "describe_store", "store_summary",
           "calibration_advice"]

#: Enrollment re-learns the store's calibration by itself once it has this many trials.
AUTO_CALIBRATION = {"target": 50, "nontarget": 200, "speakers": 5}
#: Where a store's impostor trials (normalised, quality-adjusted scores) may sit on the
#: system's own corpus: S-norm puts them near 0 for speakers enrolled on 20 s, higher for
#: less (0.7 for speakers enrolled on one 3.5 s recording, the most measured on small
#: stores of the speechocean762 dev speakers through their dev system); only what lies
#: above is taken for a shift.
IN_DOMAIN_NONTARGET = 0.7
#: How far, a priori, a store's impostor scores sit above that: FSDD's 8 kHz digits
#: through the telephone system sit at about 2.
SHIFT_PRIOR_SD = 2.0
#: How much the mean impostor score of one pair of speakers varies within a corpus (1.3
#: on the speechocean762 dev speakers through their dev system).
PAIR_SD = 1.3


@dataclass(frozen=True)
class StoreShift:
    """Where a store's own impostor trials sit against its system's corpus."""

    shift: float   # subtracted from every score before the system's calibration (>= 0)
    mean: float    # the store's non-target trials' mean, each speaker pair weighed alike
    pairs: int     # the speaker pairs they come from


def store_shift(rows) -> StoreShift:
    """The shift of a store's scores (:class:`StoreShift`) from its trials ``rows``
    (speaker, model, score, target arrays:
    :meth:`~.records.SpeakerRecords.calibration_trial_rows`): the posterior mean of the
    store-to-corpus shift, a priori normal about 0 with deviation :data:`SHIFT_PRIOR_SD`,
    given the excess over :data:`IN_DOMAIN_NONTARGET` of the mean over speaker pairs of
    its non-target scores, each pair's mean off by :data:`PAIR_SD`; 0 where it would be
    negative."""
    speaker, model, score, target = rows
    pairs: dict = {}
    for s, m, v in zip(speaker[~target], model[~target], score[~target]):
        pairs.setdefault((s, m) if s < m else (m, s), []).append(v)
    if not pairs:
        return StoreShift(0.0, float("nan"), 0)
    mean = float(np.mean([np.mean(v) for v in pairs.values()]))
    weight = SHIFT_PRIOR_SD ** 2 / (SHIFT_PRIOR_SD ** 2 + PAIR_SD ** 2 / len(pairs))
    return StoreShift(max(0.0, weight * (mean - IN_DOMAIN_NONTARGET)), mean, len(pairs))


def adapted(calibration: Calibration, rows) -> Calibration:
    """A system's (S-normalised) ``calibration`` for a store whose trials are ``rows``:
    applied to every score less the store's :func:`store_shift`."""
    shift = store_shift(rows).shift
    if shift == 0.0:
        return calibration
    out = copy.copy(calibration)
    out.offset_ = calibration.offset_ - calibration.scale_ * shift
    return out


def has_trials(store: SpeakerRecords | None, needed: dict, trials=None) -> bool:
    """Whether the store's self-calibration trials (or ``trials``: target scores,
    non-target scores, speakers) reach ``needed`` (as :data:`MIN_CALIBRATION`)."""
    tar, non, speakers = store.calibration_trials() if trials is None else trials
    have = {"target": tar.size, "nontarget": non.size, "speakers": speakers}
    return all(have[k] >= v for k, v in needed.items())


def calibration(store: SpeakerRecords) -> Calibration | None:
    """The store's calibration (:func:`calibrate`), or None."""
    kept = store.calibration_json()
    if kept is None:
        return None
    try:
        return Calibration.from_json(kept)
    except SpeakerGMMError as exc:
        raise StoreError(f"{store.path}: stored calibration unreadable ({exc}); run "
                         "'speakergmm speakers calibrate' again") from None


def calibrate(store: SpeakerRecords, *, prior: float = 0.01) -> Calibration:
    """Learn the store's calibration from its self-calibration trials and keep it.

    Raises
    ------
    StoreError
        Fewer trials or speakers than :data:`MIN_CALIBRATION`, naming how many more are
        needed.
    """
    tar, non, speakers = store.calibration_trials()
    if not has_trials(store, MIN_CALIBRATION, (tar, non, speakers)):
        raise StoreError(
            f"{store.path}: {tar.size} target and {non.size} non-target calibration trials "
            f"from {speakers} speaker(s); self-calibration needs at least "
            f"{MIN_CALIBRATION['target']} target and {MIN_CALIBRATION['nontarget']} "
            f"non-target trials from {MIN_CALIBRATION['speakers']} speakers: enroll more "
            "speakers, each with two recordings or more (their trials are scored as they "
            "enroll)")
    cal = Calibration().fit(tar, non, prior=prior, source=store.path)
    store.keep_calibration(cal.to_json())
    return cal


def own_predicts_better(rows, system: Calibration, *,
                        prior: float = 0.01) -> tuple[bool, float, float]:
    """Whether a calibration learnt from a store's own trials ``rows`` (speaker, model,
    score, target arrays: :meth:`~.records.SpeakerRecords.calibration_trial_rows`) would
    predict them better than the system's ``system`` does: each speaker's recordings'
    trials are scored by a calibration learnt without that speaker (as recording or
    model), and the Cllr of those held-out LLRs is compared with the system calibration's
    on the same trials.

    This is how a store with fewer trials than :data:`AUTO_CALIBRATION` decides whether its
    evidence allows its own calibration: on FSDD through the telephone system, 30 target
    and 30 non-target trials of 3 speakers already did (Cllr 0.94 with the system's, 0.63
    held out with its own), while small stores of the speechocean762 speakers the system
    was built for mostly kept the system's.

    Returns
    -------
    better : bool
        False too when it cannot be judged: fewer trials than :data:`MIN_CALIBRATION`, a
        speaker whose trials leave no target or non-target trial to learn from, or a
        calibration that came out inverted.
    own_cllr, system_cllr : float
        NaN where not computed.
    """
    from ..eval.metrics import cllr

    speaker, model, score, target = rows
    nothing = (False, float("nan"), float("nan"))
    if not has_trials(None, MIN_CALIBRATION, counted_trials(rows)):
        return nothing
    held = np.empty(len(score))
    for who in sorted(set(speaker)):
        out = speaker == who
        learn = ~out & (model != who)
        if not (target[learn].any() and (~target[learn]).any()):
            return nothing
        try:
            with warnings.catch_warnings():  # (a fold may hold fewer than MIN_CALIBRATION)
                warnings.simplefilter("ignore", SpeakerGMMWarning)
                cal = Calibration().fit(score[learn & target], score[learn & ~target],
                                        prior=prior)
        except SpeakerGMMError:
            return nothing
        held[out] = cal.transform(score[out])
    own = cllr(held[target], held[~target])
    fixed = system.transform(score)
    theirs = cllr(fixed[target], fixed[~target])
    return bool(own < theirs), float(own), float(theirs)


def relearn(rows, *, system: Calibration | None, prior: float, source,
            own: bool = False) -> tuple[str | None, str | None]:
    """What an enrollment keeps as the store's calibration, given every trial ``rows``
    (as :func:`own_predicts_better`) once its own are stored: one learnt from them when
    the store has its own already (``own``), or :data:`AUTO_CALIBRATION` trials, or fewer
    that predict themselves better than the system's calibration ``system`` does (as it
    is, not :func:`adapted`: on FSDD the adapted one out-predicted a store's own that
    made the better decisions); else None (the system's stays in force).

    Returns
    -------
    calibration : str or None
        JSON.
    problem : str or None
        Why a calibration that should have been learnt was not (the enrollment is kept).
    """
    trials = counted_trials(rows)
    if not (own or has_trials(None, AUTO_CALIBRATION, trials) or (
            system is not None and own_predicts_better(rows, system, prior=prior)[0])):
        return None, None
    try:
        return Calibration().fit(trials[0], trials[1], prior=prior,
                                 source=source).to_json(), None
    except SpeakerGMMError as exc:
        return None, f"the store's calibration was not learnt again: {exc}"


def remove(store: SpeakerRecords, speaker_id: str) -> Calibration | None:
    """Delete a speaker (StoreError if unknown) with its self-calibration trials.

    A calibration the store had learnt was learnt partly from the speaker's trials: it is
    learnt again, in the same transaction, from the trials left when they reach
    :data:`MIN_CALIBRATION`, else dropped (the system's calibration is in force again).
    Returns the store's calibration after the removal, or None.
    """
    def relearn(trials, kept: str) -> str | None:
        if not has_trials(store, MIN_CALIBRATION, trials):
            return None
        return Calibration().fit(trials[0], trials[1],
                                 prior=Calibration.from_json(kept).prior_).to_json()

    kept = store.delete(speaker_id, relearn=relearn)
    return None if kept is None else Calibration.from_json(kept)


def store_summary(store: SpeakerRecords) -> dict:
    """What ``speakers list`` says of a store but its rows, as JSON-ready values: its
    speakers' count, system, calibration trials and the calibration in force (``source``:
    "store", its own; "system", the system's; None, none: raw scores)."""
    cal = calibration(store)
    system = store.system()
    rows = store.calibration_trial_rows()
    tar, non, speakers = counted_trials(rows)
    source = "store" if cal is not None else "system" if system is not None else None
    return {"speakers": len(store), "system": system,
            "trials": {"target": int(tar.size), "nontarget": int(non.size),
                       "speakers": int(speakers)},
            "calibration": {"source": source, "shift": None if system is None
                            else _shift_of(rows, system).shift} if cal is None else {
                "source": source, "scale": cal.scale_, "offset": cal.offset_,
                "prior": cal.prior_, "target": cal.n_target_, "nontarget": cal.n_nontarget_},
            "advice": calibration_advice(store, (tar, non, speakers))}


def _shift_of(rows, system: dict) -> StoreShift:
    """The shift a store's scores get, given its trials ``rows``, under the calibration of
    its ``system`` (its record; none for a system that does not S-normalise: stores made
    before systems said so all did)."""
    if not system.get("normalises", True):
        return StoreShift(0.0, float("nan"), 0)
    return store_shift(rows)


def describe_store(store: SpeakerRecords) -> str:
    """Lines of ``speakergmm speakers list``."""
    rows = store.list()
    if not rows:
        return f"{store.path}: no speakers enrolled"
    lines = [f"{'speaker':24s} {'utts':>5s} {'speech s':>9s}  updated"]
    lines += [f"{s.id:24s} {s.utterances:5d} {s.seconds:9.1f}  {s.updated}" for s in rows]
    cal = calibration(store)
    system = store.system()
    trials = store.calibration_trial_rows()
    tar, non, speakers = counted_trials(trials)
    lines.append("system: " + ("a bare UBM (--ubm)" if system is None else
                               f"{system.get('name')} ({system.get('fingerprint')})"))
    lines.append(f"calibration trials: {tar.size} target, {non.size} non-target, of "
                 f"{speakers} speaker(s)")
    if cal is not None:
        lines.append(f"calibration in force: the store's own, llr = {cal.scale_:.4f} * score "
                     f"+ {cal.offset_:.4f}, from {cal.n_target_} target and "
                     f"{cal.n_nontarget_} non-target trials (prior {cal.prior_:g})")
    elif system is not None:
        lines.append(f"calibration in force: system {system.get('name')}'s, learnt on other "
                     "audio, until an enrollment finds that the store's own trials predict "
                     "themselves better (held out by speaker), or the store has "
                     f"{AUTO_CALIBRATION['target']} target and {AUTO_CALIBRATION['nontarget']} "
                     f"non-target trials of {AUTO_CALIBRATION['speakers']} speakers, and it "
                     "learns its own")
        moved = _shift_of(trials, system)
        if moved.shift > 0:
            lines.append(f"the store's impostor trials score above the system's audio (mean "
                         f"{moved.mean:.2f} over {moved.pairs} speaker pair(s)): its scores are "
                         f"moved down by {moved.shift:.2f} before that calibration")
    else:
        lines.append("calibration in force: none (decisions on the raw score)")
    advice = calibration_advice(store, (tar, non, speakers))
    if advice is not None:
        lines.append(advice)
    elif cal is None:
        lines.append(f"'speakergmm speakers calibrate' learns the store's own from "
                     f"{MIN_CALIBRATION['target']} target and {MIN_CALIBRATION['nontarget']} "
                     f"non-target trials of {MIN_CALIBRATION['speakers']} speakers: enroll "
                     "more speakers, each with two recordings or more")
    return "\n".join(lines)


def calibration_advice(store: SpeakerRecords, trials=None) -> str | None:
    """What to do when a store could learn its own calibration (it has
    :data:`~speakergmm.store.MIN_CALIBRATION` trials) but has not (below
    :data:`~speakergmm.store.AUTO_CALIBRATION`, where it learns one by itself): None when
    it has one or cannot yet."""
    if calibration(store) is not None or not has_trials(store, MIN_CALIBRATION, trials):
        return None
    tar, non, speakers = store.calibration_trials() if trials is None else trials
    now = ("its system's calibration, learnt on other audio, which may accept impostors "
           "with confidence on yours" if store.system() is not None else "the raw score")
    return (f"{store.path} decides with {now}; it has {tar.size} target "
            f"and {non.size} non-target trials of {speakers} speakers of its own: run "
            f"'speakergmm speakers calibrate --store {store.path}' to learn the store's "
            f"calibration from them now (it learns one by itself at "
            f"{AUTO_CALIBRATION['target']} target, {AUTO_CALIBRATION['nontarget']} "
            f"non-target trials of {AUTO_CALIBRATION['speakers']} speakers)")
