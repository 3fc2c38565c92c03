"""A store's own calibration, learnt from its self-calibration trials (each enrollment
scores its new recordings against the speaker's model without them, and against other
speakers' models), and what a user is told about it.

A system's calibration describes its training corpus; the store's own trials describe the
audio it is really used on: on FSDD through the telephone system, false alarms at the
default decision fall from 52% to 6% once the store has learnt its own.
"""

from __future__ import annotations

from ..backend.calibration import MIN_CALIBRATION, Calibration
from ..errors import SpeakerGMMError
from .database import StoreError
from .records import SpeakerRecords

__all__ = ["AUTO_CALIBRATION", "MIN_CALIBRATION", "calibrate", "calibration", "has_trials",
           "remove", "describe_store", "calibration_advice"]

#: Enrollment re-learns the store's calibration by itself once it has this many trials.
AUTO_CALIBRATION = {"target": 50, "nontarget": 200, "speakers": 5}


def has_trials(store: SpeakerRecords, needed: dict, trials=None) -> bool:
    """Whether the store's self-calibration trials reach ``needed`` (as
    :data:`MIN_CALIBRATION`)."""
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


def describe_store(store: SpeakerRecords) -> str:
    """Lines of ``speakergmm speakers list``."""
    rows = store.list()
    if not rows:
        return f"{store.path}: no speakers enrolled"
    lines = [f"{'speaker':24s} {'utts':>5s} {'speech s':>9s}  updated"]
    lines += [f"{s.id:24s} {s.utterances:5d} {s.seconds:9.1f}  {s.updated}" for s in rows]
    cal = calibration(store)
    system = store.system()
    tar, non, speakers = store.calibration_trials()
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
                     f"audio, until the store has {AUTO_CALIBRATION['target']} target and "
                     f"{AUTO_CALIBRATION['nontarget']} non-target trials of "
                     f"{AUTO_CALIBRATION['speakers']} speakers and learns its own")
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
