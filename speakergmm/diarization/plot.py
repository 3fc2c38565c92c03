"""Timelines of who spoke when, for a person to read at a glance."""

from __future__ import annotations

import numpy as np


def plot_timeline(results, path, *, reference=None) -> None:
    """A timeline a person reads at a glance: one lane per speaker of each recording, a
    bar where they speak (shaded by the turn's posterior when known), and the reference's
    lanes beside it when given.

    Parameters
    ----------
    results : mapping recording -> Diarization, Tracking or list of Turn
    path : path
        PNG to write (atomically).
    reference : mapping recording -> list of Turn, optional
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..eval.report import save_figure

    rows = []  # (label, turns, shades)
    for rec in results:
        found = results[rec]
        # a Diarization or Tracking (turns shaded by their posteriors), or plain turns
        turns = list(found.turns) if hasattr(found, "turns") else list(found)
        shades = found.posteriors if hasattr(found, "posteriors") else [1.0] * len(turns)
        for side, side_turns, side_shades in (("", turns, shades),
                                              ("ref ", (reference or {}).get(rec), None)):
            if side_turns is None:
                continue
            for speaker in sorted({t.speaker for t in side_turns}):
                mine = [(t, 1.0 if side_shades is None else side_shades[i])
                        for i, t in enumerate(side_turns) if t.speaker == speaker]
                rows.append((f"{rec}  {side}{speaker}", mine, bool(side)))
    height = max(1.5, 0.3 * len(rows) + 0.9)
    fig, ax = plt.subplots(figsize=(10, min(height, 60)))
    colours = plt.get_cmap("tab10")
    for i, (label, mine, is_ref) in enumerate(rows):
        y = len(rows) - 1 - i
        colour = "0.45" if is_ref else colours(i % 10)
        for turn, shade in mine:
            ax.broken_barh([(turn.start, turn.duration)], (y - 0.35, 0.7), color=colour,
                           alpha=0.35 + 0.65 * float(np.clip(shade, 0, 1)))
    ax.set_yticks(range(len(rows)), [r[0] for r in rows][::-1], fontsize=8)
    ax.set_xlabel("time (s)")
    ax.set_xlim(left=0)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
