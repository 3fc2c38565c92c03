"""Who among the enrolled speakers speaks when: tracking in a long recording (issue 23).

Diarization first (:class:`~speakergmm.diarization.Diarizer`): its speakers are found
without the store, each from all of its speech. Then each diarized speaker's whole speech
is identified against the store, open set, with the store's system and calibration
(:meth:`Recognizer.identify <speakergmm.recognizer.Recognizer.identify>`): an enrolled
speaker's name, or "unknown-<label>" when the voice is more likely nobody enrolled. Two diarized
speakers named the same are one. Each turn then gets the calibrated log-likelihood ratio
of its speaker on the turn's audio alone, which says how sure that stretch is by itself
(a short turn gives a smaller one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..constants import IDENTIFY_PRIOR
from ..data.rttm import Turn

__all__ = ["Tracking", "track", "UNKNOWN"]

#: The name of a voice that is nobody enrolled.
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Tracking:
    """Turns of one recording named by the store.

    Attributes
    ----------
    turns : list of Turn
        Sorted by start; each speaker an enrolled speaker's id, or ``"unknown-<label>"``
        for a voice of nobody enrolled (each its own, by diarization's label).
    llrs : list of float or None
        For each turn, the calibrated LLR on the turn's audio alone of its speaker (of an
        "unknown" turn: of the enrolled speaker closest to it) against the others; None
        where the store has no calibration or the turn has too little speech to score.
    candidates : list of str
        Whom each turn's LLR is for (its speaker, or an "unknown" turn's closest one).
    voices : list of dict
        Each voice diarization found: ``label`` (diarization's), ``speaker`` (the name
        given), ``seconds`` of speech, and from its whole speech the ``llr`` and
        ``posterior`` of the best enrolled speaker (``best``) and ``p_unknown``.
    seconds : float
        The recording's length.
    """

    turns: list[Turn]
    llrs: list[float | None]
    candidates: list[str]
    voices: list[dict]
    seconds: float

    @property
    def speakers(self) -> list[str]:
        """The names in order of first appearance."""
        return list(dict.fromkeys(t.speaker for t in self.turns))

    @property
    def posteriors(self) -> list[float]:
        """For each turn, the posterior of its name on the whole of its voice's speech
        (how :func:`~speakergmm.diarization.plot_timeline` shades it)."""
        by_name = {}
        for v in self.voices:
            p = v["p_unknown"] if v["speaker"].startswith(UNKNOWN) else v["posterior"]
            by_name[v["speaker"]] = max(by_name.get(v["speaker"], 0.0), p or 0.0)
        return [by_name.get(t.speaker, 0.0) for t in self.turns]

    def as_dict(self) -> dict:
        return {"seconds": self.seconds, "speakers": self.speakers, "voices": self.voices,
                "turns": [{"start": t.start, "end": t.end, "speaker": t.speaker,
                           "llr": None if llr is None else round(llr, 3),
                           "llr_for": who}
                          for t, llr, who in zip(self.turns, self.llrs, self.candidates)]}


def track(recognizer, diarizer, y: np.ndarray, sr: int, *, prior: float = IDENTIFY_PRIOR,
          num_speakers: int | None = None, max_speakers: int | None = None) -> Tracking:
    """Name who speaks when in one recording from a store's enrolled speakers.

    Diarization finds the voices and their turns; each voice's whole speech is
    identified against the store, open set at ``prior``: named, or
    ``"unknown-<label>"`` (module docstring). The turns stay diarization's: a
    resegmentation of the frames with the enrolled speakers' models (learnt in other
    sessions) placed the boundaries worse than the diarizer's models of the recording's
    own voices (dev conversations: 75.7% of speech named right against 78.3%).

    Parameters
    ----------
    recognizer : Recognizer
        The store, its system and its calibration.
    diarizer : Diarizer
        Finds the voices (it need not share the store's system).
    y : np.ndarray [shape=(n,)]
        Mono signal.
    sr : int
    prior : float
        The prior probability that a voice is enrolled, shared by the enrolled speakers, as
        :meth:`~speakergmm.recognizer.Recognizer.identify`'s.
    num_speakers, max_speakers : int, optional
        Of the diarization (voices, enrolled or not).

    Returns
    -------
    Tracking
    """
    y = np.asarray(y, np.float32)
    found = diarizer(y, sr, num_speakers=num_speakers, max_speakers=max_speakers)
    turns = found.turns
    voices, names = [], {}
    for label in dict.fromkeys(t.speaker for t in turns):
        mine = [t for t in turns if t.speaker == label]
        answer = recognizer.identify(_excerpt(y, sr, mine), sr=sr, top=1, prior=prior)
        # voices of nobody enrolled stay apart: "unknown-spk1" is not "unknown-spk2"
        names[label] = answer.speaker or f"{UNKNOWN}-{label}"
        voices.append({"label": label, "speaker": names[label],
                       "seconds": round(sum(t.duration for t in mine), 3),
                       "best": answer.ranking[0][0],
                       "llr": answer.llrs and round(answer.llrs[0], 3),
                       "posterior": answer.posteriors and round(answer.posteriors[0], 4),
                       "p_unknown": answer.p_unknown and round(answer.p_unknown, 4)})
    best = {v["label"]: v["best"] for v in voices}
    named = _merged([Turn(t.start, t.end, names[t.speaker]) for t in turns],
                    [best[t.speaker] for t in turns])
    llrs = [_turn_llr(recognizer, y, sr, turn, who) for turn, who in named]
    return Tracking([t for t, _ in named], llrs, [who for _, who in named], voices,
                    found.seconds)


def _turn_llr(recognizer, y, sr, turn: Turn, who: str) -> float | None:
    """The calibrated LLR of ``who`` on the turn's audio alone (None: no calibration, or
    too little speech to score)."""
    from ..errors import AudioError, FeatureError

    try:
        scores = recognizer.scores(_excerpt(y, sr, [turn]), sr=sr)
    except (AudioError, FeatureError):
        return None
    return None if scores.llrs is None else float(scores.llrs[scores.ids.index(who)])


def _excerpt(y: np.ndarray, sr: int, turns) -> np.ndarray:
    """The samples of ``turns``, joined."""
    return np.concatenate([y[int(round(t.start * sr)):int(round(t.end * sr))]
                           for t in turns])


def _merged(turns: list[Turn], closest: list[str]) -> list[tuple[Turn, str]]:
    """Adjacent turns given one name joined (the closest enrolled speaker of the first
    kept for the joined turn)."""
    out: list[tuple[Turn, str]] = []
    for turn, who in zip(turns, closest):
        if out and out[-1][0].speaker == turn.speaker and turn.start <= out[-1][0].end + 1e-9:
            last = out[-1][0]
            out[-1] = (Turn(last.start, max(last.end, turn.end), last.speaker), out[-1][1])
        else:
            out.append((turn, who))
    return out
