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
from ..errors import ParameterError

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


def track(recognizer, diarizer, audio, sr: int | None = None, *,
          prior: float = IDENTIFY_PRIOR, num_speakers: int | None = None,
          max_speakers: int | None = None) -> Tracking:
    """Name who speaks when in one recording from a store's enrolled speakers.

    Diarization finds the voices and their turns; each voice's speech (its longest turns,
    up to :data:`VOICE_SECONDS`) is identified against the store, open set at ``prior``:
    named, or ``"unknown-<label>"`` (module docstring). The turns stay diarization's: a
    resegmentation of the frames with the enrolled speakers' models (learnt in other
    sessions) placed the boundaries worse than the diarizer's models of the recording's
    own voices (dev conversations: 75.7% of speech named right against 78.3%).

    Parameters
    ----------
    recognizer : Recognizer
        The store, its system and its calibration.
    diarizer : Diarizer
        Finds the voices (it need not share the store's system).
    audio : path or np.ndarray [shape=(n,)]
        An audio file (read in blocks, and again turn by turn: a long recording is never
        held whole), or a mono signal at ``sr``.
    sr : int, optional
        The signal's rate.
    prior : float
        The prior probability that a voice is enrolled, shared by the enrolled speakers, as
        :meth:`~speakergmm.recognizer.Recognizer.identify`'s.
    num_speakers, max_speakers : int, optional
        Of the diarization (voices, enrolled or not).

    Returns
    -------
    Tracking
    """
    recognizer.store.check_enrolled()  # before the diarization, not after it
    if isinstance(audio, np.ndarray):
        if sr is None:
            raise ParameterError("a signal needs its sampling rate (sr)")
        y = np.asarray(audio, np.float32)
        found = diarizer(y, sr, num_speakers=num_speakers, max_speakers=max_speakers)

        def excerpt(turns):
            return np.concatenate([y[int(round(t.start * sr)):int(round(t.end * sr))]
                                   for t in turns]), sr
    else:
        found = diarizer.diarize_file(audio, num_speakers=num_speakers,
                                      max_speakers=max_speakers)

        def excerpt(turns):
            from ..frontend.audio import load

            parts = [load(audio, offset=t.start, duration=t.duration) for t in turns]
            return np.concatenate([p[0] for p in parts]), parts[0][1]

    turns = found.turns
    voices, names = [], {}
    for label in dict.fromkeys(t.speaker for t in turns):
        mine = _longest([t for t in turns if t.speaker == label], VOICE_SECONDS)
        signal, rate = excerpt(mine)
        answer = recognizer.identify(signal, sr=rate, top=1, prior=prior)
        # voices of nobody enrolled stay apart: "unknown-spk1" is not "unknown-spk2"
        names[label] = answer.speaker or f"{UNKNOWN}-{label}"
        voices.append({"label": label, "speaker": names[label],
                       "seconds": round(sum(t.duration for t in turns
                                            if t.speaker == label), 3),
                       "best": answer.ranking[0][0],
                       "llr": answer.llrs and round(answer.llrs[0], 3),
                       "posterior": answer.posteriors and round(answer.posteriors[0], 4),
                       "p_unknown": answer.p_unknown and round(answer.p_unknown, 4)})
    best = {v["label"]: v["best"] for v in voices}
    named = _merged([Turn(t.start, t.end, names[t.speaker]) for t in turns],
                    [best[t.speaker] for t in turns])
    llrs = [_turn_llr(recognizer, excerpt([turn]), who) for turn, who in named]
    return Tracking([t for t, _ in named], llrs, [who for _, who in named], voices,
                    found.seconds)


#: At most this much of a voice's speech (its longest turns) is identified: more adds
#: little evidence, and a voice of hours is not read whole.
VOICE_SECONDS = 120.0


def _longest(turns: list[Turn], seconds: float) -> list[Turn]:
    """The longest turns whose total reaches ``seconds`` (all if they do not), in time
    order."""
    chosen, total = [], 0.0
    for t in sorted(turns, key=lambda t: -t.duration):
        if total >= seconds:
            break
        chosen.append(t)
        total += t.duration
    return sorted(chosen, key=lambda t: t.start)


def _turn_llr(recognizer, signal, who: str) -> float | None:
    """The calibrated LLR of ``who`` on a turn's ``(signal, rate)`` alone (None: no
    calibration, or too little speech to score)."""
    from ..errors import AudioError, FeatureError

    try:
        return recognizer.verify(who, signal[0], sr=signal[1]).llr
    except (AudioError, FeatureError):
        return None


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
