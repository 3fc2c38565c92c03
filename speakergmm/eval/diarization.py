"""Diarization error rate and Jaccard error rate, as NIST's md-eval and DIHARD's dscore
define them and ``pyannote.metrics`` computes them (checked against it in the tests).

For one recording, with reference and hypothesis turns (:class:`~speakergmm.data.rttm.Turn`):

1. **Scored region**: the evaluation map (UEM; by default from the earliest to the latest
   turn of either side), less a no-score collar of ``collar`` seconds on each side of every
   reference turn's start and end (md-eval's ``-c``; ``pyannote.metrics`` takes the
   collar's whole width, twice this), less the reference's overlapped speech if
   ``skip_overlap`` (md-eval's ``-1``).
2. **Mapping**: each reference speaker to at most one hypothesis speaker and back, the
   assignment of most time spoken by both within the scored region (Hungarian algorithm).
3. **Errors**, over the stretches where the speakers on both sides do not change, each of
   duration d with ``r`` reference and ``h`` hypothesis speakers of whom ``c`` are mapped
   pairs: missed speech ``d max(r - h, 0)``, false alarm ``d max(h - r, 0)``, speaker
   confusion ``d (min(r, h) - c)``, over the scored speech ``d r``. DER is their sum over
   the scored speech.
4. **JER**: for each reference speaker, 1 minus the intersection over the union of its
   time and its mapped hypothesis speaker's (1 if unmapped); the mean over the reference
   speakers (hypothesis speakers left unmapped cost nothing: JER is not DER).

A speaker's own overlapping turns are merged first. Over several recordings, the errors and
the scored speech add (DER of the pool), and JER is the mean over every reference speaker
of every recording, as both tools pool.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..constants import DIARIZATION_COLLAR
from ..data.rttm import Turn
from ..errors import ParameterError

__all__ = ["DiarizationErrors", "diarization_errors", "evaluate_diarization",
           "diarization_report", "write_diarization_report", "DEFAULT_COLLAR"]

DEFAULT_COLLAR = DIARIZATION_COLLAR


@dataclass(frozen=True)
class DiarizationErrors:
    """Error durations (seconds) of one recording or of several pooled.

    ``scored`` is the scored reference speech, each speaker counted (two speakers at once
    for 1 s count 2 s); ``jer_sum`` over ``jer_speakers`` is the Jaccard error rate.
    """

    scored: float
    missed: float
    false_alarm: float
    confusion: float
    jer_sum: float
    jer_speakers: int
    ref_speakers: int
    hyp_speakers: int
    recordings: int = 1

    @property
    def der(self) -> float:
        """Diarization error rate (missed + false alarm + confusion over scored speech);
        0 with nothing to score and no error, 1 for errors over nothing."""
        errors = self.missed + self.false_alarm + self.confusion
        if self.scored > 0:
            return errors / self.scored
        return 0.0 if errors == 0 else 1.0

    @property
    def jer(self) -> float:
        """Jaccard error rate. With no reference speaker to score it is undefined, and
        taken as 0 when the hypothesis has no speech there either, else 1
        (``pyannote.metrics`` says 1 in both cases)."""
        if self.jer_speakers:
            return self.jer_sum / self.jer_speakers
        return 0.0 if self.false_alarm == 0 else 1.0

    @property
    def attributed(self) -> float:
        """The share of scored reference speech given to its speaker (neither missed nor
        confused): with ``by_name`` mapping, what tracking names right."""
        return 1.0 - (self.missed + self.confusion) / self.scored if self.scored > 0 else 1.0

    def __add__(self, other: "DiarizationErrors") -> "DiarizationErrors":
        return DiarizationErrors(*(getattr(self, f.name) + getattr(other, f.name)
                                   for f in dataclasses.fields(self)))

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "der": self.der, "jer": self.jer,
                "attributed": self.attributed,
                **{f"{k}_rate": (getattr(self, k) / self.scored if self.scored else 0.0)
                   for k in ("missed", "false_alarm", "confusion")}}


def _by_speaker(turns: Sequence[Turn]) -> dict[str, np.ndarray]:
    """Each speaker's turns as merged, sorted ``(n, 2)`` intervals."""
    spans: dict[str, list[tuple[float, float]]] = {}
    for t in turns:
        if t.end > t.start:
            spans.setdefault(t.speaker, []).append((t.start, t.end))
    return {s: _merge(np.array(v, np.float64)) for s, v in sorted(spans.items())}


def _merge(intervals: np.ndarray) -> np.ndarray:
    """The union of ``(n, 2)`` intervals as sorted, disjoint intervals."""
    if len(intervals) == 0:
        return np.zeros((0, 2))
    iv = intervals[np.argsort(intervals[:, 0], kind="stable")]
    reach = np.maximum.accumulate(iv[:, 1])
    starts_new = np.ones(len(iv), bool)
    starts_new[1:] = iv[1:, 0] > reach[:-1]
    out = np.empty((int(starts_new.sum()), 2))
    out[:, 0] = iv[starts_new, 0]
    out[:, 1] = reach[np.r_[np.flatnonzero(starts_new)[1:] - 1, len(iv) - 1]]
    return out


def _inside(intervals: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Whether each time of ``t`` lies in one of the sorted, disjoint ``intervals``."""
    if len(intervals) == 0:
        return np.zeros(t.shape, bool)
    i = np.searchsorted(intervals[:, 0], t, side="right") - 1
    return (i >= 0) & (t < intervals[np.maximum(i, 0), 1])


def diarization_errors(reference: Sequence[Turn], hypothesis: Sequence[Turn], *,
                       collar: float = DEFAULT_COLLAR, skip_overlap: bool = False,
                       uem: Sequence[tuple[float, float]] | None = None,
                       by_name: bool = False) -> DiarizationErrors:
    """DER and JER components of one recording (module docstring).

    Parameters
    ----------
    reference, hypothesis : sequence of Turn
    collar : float
        Seconds not scored on each side of every reference turn's start and end (md-eval's
        convention: ``pyannote.metrics``' ``collar`` is twice this).
    skip_overlap : bool
        Leave out where two or more reference speakers speak at once.
    uem : sequence of (start, end), optional
        The stretches to score; by default from the first to the last turn of either side.
    by_name : bool
        Map each reference speaker to the hypothesis speaker of the same name, not to the
        one that maximises the overlap: the errors of tracking enrolled speakers, where a
        name is a claim (:attr:`DiarizationErrors.attributed`).

    Returns
    -------
    DiarizationErrors
    """
    if not np.isfinite(collar) or collar < 0:
        raise ParameterError(f"collar must be a finite number of seconds >= 0, got {collar}")
    ref, hyp = _by_speaker(reference), _by_speaker(hypothesis)
    every = [iv for side in (ref, hyp) for iv in side.values()]
    if uem is None:
        ends = np.concatenate([iv.ravel() for iv in every]) if every else np.zeros(0)
        region = np.array([[ends.min(), ends.max()]]) if ends.size else np.zeros((0, 2))
    else:
        region = _merge(np.asarray(uem, np.float64).reshape(-1, 2))
    bounds = [region.ravel(), *(iv.ravel() for iv in every)]
    ref_edges = np.concatenate([iv.ravel() for iv in ref.values()]) if ref else np.zeros(0)
    no_score = np.zeros((0, 2))
    if collar > 0 and ref_edges.size:
        no_score = _merge(np.stack([ref_edges - collar, ref_edges + collar], axis=1))
        bounds.append(no_score.ravel())
    times = np.unique(np.concatenate(bounds)) if bounds else np.zeros(0)
    mid, dur = (times[1:] + times[:-1]) / 2, np.diff(times)
    a_ref = np.stack([_inside(iv, mid) for iv in ref.values()], 1) if ref \
        else np.zeros((len(mid), 0), bool)
    a_hyp = np.stack([_inside(iv, mid) for iv in hyp.values()], 1) if hyp \
        else np.zeros((len(mid), 0), bool)
    keep = _inside(region, mid) & ~_inside(no_score, mid)
    if skip_overlap:
        keep &= a_ref.sum(1) < 2
    a_ref, a_hyp, dur = a_ref[keep], a_hyp[keep], dur[keep]

    both = (a_ref * dur[:, None]).T @ a_hyp  # (R, H) seconds spoken by both
    pairs = []
    if by_name:
        hyp_index = {s: i for i, s in enumerate(hyp)}
        pairs = [(r, hyp_index[s]) for r, s in enumerate(ref) if s in hyp_index]
    elif both.size:
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(-both)
        pairs = [(r, h) for r, h in zip(rows, cols) if both[r, h] > 0]
    n_ref, n_hyp = a_ref.sum(1), a_hyp.sum(1)
    correct = np.zeros(len(dur))
    for r, h in pairs:
        correct += a_ref[:, r] & a_hyp[:, h]
    ref_time, hyp_time = dur @ a_ref, dur @ a_hyp
    mapped = dict(pairs)
    jers = []
    for r in range(len(ref)):
        if ref_time[r] <= 0:
            continue  # wholly within collars or overlap: not a speaker of the scored region
        h = mapped.get(r)
        if h is None:
            jers.append(1.0)
        else:
            union = ref_time[r] + hyp_time[h] - both[r, h]
            jers.append((union - both[r, h]) / union)
    return DiarizationErrors(
        scored=float(dur @ n_ref), missed=float(dur @ np.maximum(n_ref - n_hyp, 0)),
        false_alarm=float(dur @ np.maximum(n_hyp - n_ref, 0)),
        confusion=float(dur @ (np.minimum(n_ref, n_hyp) - correct)),
        jer_sum=float(sum(jers)), jer_speakers=len(jers), ref_speakers=len(ref),
        hyp_speakers=len(hyp))


def evaluate_diarization(reference: Mapping[str, Sequence[Turn]],
                         hypothesis: Mapping[str, Sequence[Turn]], *,
                         collar: float = DEFAULT_COLLAR, skip_overlap: bool = False,
                         uem: Mapping[str, Sequence[tuple[float, float]]] | None = None,
                         by_name: bool = False,
                         ) -> tuple[dict[str, DiarizationErrors], DiarizationErrors]:
    """:func:`diarization_errors` of every reference recording, and of all pooled.

    A reference recording the hypothesis lacks is scored against no speech at all (every
    turn missed); hypothesis recordings the reference lacks are not scored (md-eval's
    rule), and a warning names them.

    Returns
    -------
    per_recording : dict
        Recording id -> its errors, sorted by id.
    pooled : DiarizationErrors
    """
    extra = sorted(set(hypothesis) - set(reference))
    if extra:
        warnings.warn(f"the hypothesis holds {len(extra)} recording(s) the reference has not, "
                      f"not scored: {', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}",
                      stacklevel=2)
    if not reference:
        raise ParameterError("the reference holds no recording with a SPEAKER turn")
    per = {rec: diarization_errors(reference[rec], hypothesis.get(rec, ()), collar=collar,
                                   skip_overlap=skip_overlap,
                                   uem=None if uem is None else uem.get(rec),
                                   by_name=by_name)
           for rec in sorted(reference)}
    pooled = sum(per.values(), DiarizationErrors(0.0, 0.0, 0.0, 0.0, 0.0, 0, 0, 0, 0))
    return per, pooled


#: The scoring conditions a report gives side by side: (collar, skip_overlap) where
#: ``None`` stands for the collar asked for.
_CONDITIONS = ((None, True), (None, False), (0.0, True), (0.0, False))


def diarization_report(reference: Mapping[str, Sequence[Turn]],
                       hypothesis: Mapping[str, Sequence[Turn]], *,
                       collar: float = DEFAULT_COLLAR, skip_overlap: bool = False,
                       uem: Mapping[str, Sequence[tuple[float, float]]] | None = None,
                       by_name: bool = False) -> dict:
    """What ``speakergmm evaluate-diarization`` reports: the pooled errors under the asked
    collar and without one, overlap scored and skipped; and each recording's under the
    asked settings (speakers mapped by name with ``by_name``). JSON-serialisable."""
    import time

    from .._version import __version__

    per, pooled = evaluate_diarization(reference, hypothesis, collar=collar,
                                       skip_overlap=skip_overlap, uem=uem, by_name=by_name)
    conditions = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the extra recordings were named once above
        for c, skip in dict.fromkeys((collar if c is None else c, skip)
                                     for c, skip in _CONDITIONS):
            p = pooled if (c, skip) == (collar, skip_overlap) else evaluate_diarization(
                reference, hypothesis, collar=c, skip_overlap=skip, uem=uem,
                by_name=by_name)[1]
            conditions.append({"collar": c, "skip_overlap": skip, **p.as_dict()})
    return {"speakergmm_version": __version__, "date": time.strftime("%Y-%m-%d"),
            "collar": collar, "skip_overlap": skip_overlap, "by_name": by_name,
            "pooled": pooled.as_dict(),
            "conditions": conditions,
            "recordings": {r: e.as_dict() for r, e in per.items()},
            "speaker_count_right": sum(e.ref_speakers == e.hyp_speakers
                                       for e in per.values()) / len(per)}


def scoring_label(collar: float, skip: bool) -> str:
    """How a condition was scored, in words ("collar 0.25 s, overlap scored")."""
    return (f"collar {collar:g} s" if collar else "no collar") + \
        (", overlap not scored" if skip else ", overlap scored")


def write_diarization_report(report: Mapping, out_dir, *,
                             title: str = "speakergmm diarization evaluation") -> dict:
    """Write report.json, report.md, report.html and der.png (each recording's missed
    speech, false alarm and confusion, stacked) into ``out_dir``."""
    import html
    import json
    from pathlib import Path

    from .._io import write_text_atomic
    from .report import figure_html, html_page, save_figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {k: out / v for k, v in (("json", "report.json"), ("md", "report.md"),
                                     ("html", "report.html"), ("plot", "der.png"))}
    write_text_atomic(files["json"], json.dumps(report, indent=2) + "\n")
    pct = lambda x: f"{100 * x:.2f}%"  # noqa: E731
    head = ["scoring", "DER", "missed", "false alarm", "confusion", "JER", "scored speech (s)"]
    rows = [[scoring_label(c["collar"], c["skip_overlap"]), pct(c["der"]), pct(c["missed_rate"]),
             pct(c["false_alarm_rate"]), pct(c["confusion_rate"]), pct(c["jer"]),
             f"{c['scored']:.1f}"] for c in report["conditions"]]
    rec_head = ["recording", "DER", "missed", "false alarm", "confusion", "JER",
                "speakers (reference / found)"]
    recs = [[r, pct(e["der"]), pct(e["missed_rate"]), pct(e["false_alarm_rate"]),
             pct(e["confusion_rate"]), pct(e["jer"]),
             f"{e['ref_speakers']} / {e['hyp_speakers']}"]
            for r, e in report["recordings"].items()]
    asked = scoring_label(report["collar"], report["skip_overlap"])
    caption = (f"Each recording's errors ({asked}), as shares of its scored speech: missed "
               "speech, false alarm and speaker confusion, stacked; the line is the pooled DER.")
    _plot(report, files["plot"], save_figure)
    count = (f"Speaker count right in {100 * report['speaker_count_right']:.0f}% of "
             f"{len(recs)} recordings.")
    note = ("DER = (missed + false alarm + confusion) / scored reference speech, after the "
            "optimal one-to-one mapping of speakers; the collar is a no-score zone on each "
            "side of every reference boundary (md-eval's -c: pyannote.metrics' collar is "
            "twice it); JER is DIHARD's Jaccard error rate.")
    stamp = f"speakergmm {report['speakergmm_version']}, {report['date']}"

    def md_table(h, body):
        return ["| " + " | ".join(h) + " |", "|" + "|".join([":---"] + ["---:"] * (len(h) - 1))
                + "|"] + ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |"
                          for r in body]

    md = [f"# {title}", "", stamp, "", "## Pooled", "", *md_table(head, rows), "", count, "",
          f"## Recordings ({asked})", "", *md_table(rec_head, recs), "",
          f"![errors]({files['plot'].name})", "", f"*{caption}*", "", "## Notes", "", note, ""]
    write_text_atomic(files["md"], "\n".join(md))
    esc = html.escape

    def html_table(h, body):
        return ("<div class='scroll'><table><thead><tr>"
                + "".join(f"<th scope='col'>{esc(c)}</th>" for c in h) + "</tr></thead><tbody>"
                + "".join("<tr><th scope='row'>" + esc(r[0]) + "</th>"
                          + "".join(f"<td>{esc(c)}</td>" for c in r[1:]) + "</tr>"
                          for r in body) + "</tbody></table></div>")

    body = [f"<h1>{esc(title)}</h1>", f"<p>{esc(stamp)}</p>",
            f"<section><h2>Pooled</h2>{html_table(head, rows)}<p>{esc(count)}</p></section>",
            f"<section><h2>Recordings ({esc(asked)})</h2>{html_table(rec_head, recs)}"
            "</section>",
            *figure_html("Errors by recording", files["plot"], caption),
            f"<section><h2>Notes</h2><p class='note'>{esc(note)}</p></section>"]
    write_text_atomic(files["html"], html_page(title, body))
    return files


def _plot(report: Mapping, path, save_figure) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["recordings"])
    values = np.array([[report["recordings"][r][f"{k}_rate"] for k in
                        ("missed", "false_alarm", "confusion")] for r in names]) * 100
    height = max(2.5, 0.28 * len(names) + 1.2)
    fig, ax = plt.subplots(figsize=(7, min(height, 40)))
    left = np.zeros(len(names))
    y = np.arange(len(names))[::-1]
    for j, (label, colour) in enumerate((("missed speech", "#1f77b4"),
                                         ("false alarm", "#ff7f0e"),
                                         ("speaker confusion", "#d62728"))):
        ax.barh(y, values[:, j], left=left, color=colour, label=label, height=0.7)
        left += values[:, j]
    ax.axvline(100 * report["pooled"]["der"], color="k", lw=1, ls="--",
               label=f"pooled DER {100 * report['pooled']['der']:.1f}%")
    ax.set_yticks(y, names if len(names) <= 60 else [""] * len(names), fontsize=7)
    ax.set_xlabel("share of scored speech (%)")
    ax.set_xlim(0, 1.03 * max(float(left.max(initial=0)), 100 * report["pooled"]["der"], 1))
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18 * 4 / height),
              ncol=4, frameon=False)
    fig.tight_layout()
    save_figure(fig, path)
