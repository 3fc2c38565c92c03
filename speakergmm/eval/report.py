"""Evaluation reports: figures of merit for score files against a trial key, written as
JSON (for machines), Markdown, a self-contained HTML page (figures embedded) and PNG plots
(a NIST-style DET curve on probit axes and score histograms), drawn with matplotlib.
"""

from __future__ import annotations

import base64
import html
import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

# probit and its inverse: scipy.stats.norm.ppf/cdf are these, and importing scipy.stats
# alone costs a second
from scipy.special import ndtri

from .._io import atomic_write, write_text_atomic
from .._version import __version__
from ..data.scores import key_scores
from ..data.trials import Trials
from .metrics import (
    DCF_PRESETS,
    act_dcf,
    cllr,
    det_curve,
    eer_interpolated,
    identification_accuracy,
    min_cllr,
    min_dcf,
    rocch_eer,
)

__all__ = ["evaluate_scores", "evaluate", "write_report", "display_names"]


def evaluate_scores(tar: np.ndarray, non: np.ndarray) -> dict[str, Any]:
    """Every figure of merit for one system's target and non-target scores.

    actDCF and Cllr read the scores as log-likelihood ratios: they are meaningful for
    calibrated scores only (``speakergmm calibrate``), as minDCF, EER and minCllr are for any.
    """
    out: dict[str, Any] = {
        "n_target": int(tar.size), "n_nontarget": int(non.size),
        "eer_rocch": rocch_eer(tar, non), "eer_linear": eer_interpolated(tar, non),
        "min_dcf": {}, "act_dcf": {},
        "cllr": cllr(tar, non), "min_cllr": min_cllr(tar, non),
    }
    for name, p in DCF_PRESETS.items():
        params = {"c_miss": p.c_miss, "c_fa": p.c_fa, "p_target": p.p_target}
        out["min_dcf"][name] = {"value": min_dcf(tar, non, p), **params}
        out["act_dcf"][name] = {"value": act_dcf(tar, non, p), **params}
    return out


def evaluate(score_files: Sequence[str | os.PathLike], trials: Trials) -> dict[str, Any]:
    """Figures of every score file against the key ``trials``, plus what produced them."""
    systems = {}
    for path in score_files:
        values = key_scores(path, trials)
        tar, non = values[trials.is_target], values[~trials.is_target]
        figures = evaluate_scores(tar, non)
        figures["identification_accuracy"] = identification_accuracy(values, trials)
        systems[str(path)] = {"scores": (tar, non), "figures": figures}
    return {"speakergmm_version": __version__,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "systems": systems}


# Standard DET ticks (NIST DETware / BOSARIS), in %; the axes never go beyond them.
DET_TICKS_PCT = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 40,
                 60, 80, 90, 95, 98, 99)
# Line style and width per system, in turn: a curve drawn exactly over an earlier one
# (a monotone calibration leaves the DET curve unchanged) leaves the thicker one visible.
_STYLES = (("-", 3.0), ((0, (5, 2)), 1.8), ((0, (1, 1.2)), 1.8), ("-.", 1.4))

DET_CAPTION = ("DET curves on normal-deviate (probit) axes; o marks the EER, □ the minDCF "
               "operating point of the vox preset (Ptarget 0.01). The axis range is chosen from "
               "the data. A monotone calibration (speakergmm calibrate) leaves the DET curve "
               "unchanged: a calibrated system's curve lies exactly on its uncalibrated one, so "
               "each system has its own line style.")
HIST_CAPTION = ("Densities of target and non-target scores, one panel per system; a count "
                "follows each class.")
CALIBRATION_NOTE = ("† actDCF (vox preset, at the Bayes threshold) and Cllr read the scores as "
                    "log-likelihood ratios: they are meaningful only for calibrated scores "
                    "(speakergmm calibrate). For uncalibrated scores compare minDCF and minCllr; "
                    "actDCF − minDCF is the calibration loss.")
NOTES = ("EER (ROCCH) is the primary figure. minDCF is normalised by the default cost. actDCF "
         "and Cllr treat scores as calibrated log-likelihood ratios.")


def display_names(paths: Sequence[str | os.PathLike]) -> dict[str, str]:
    """A short label per path: its base name, or, when base names clash, the shortest path
    suffix that no other path shares (``exp/scores`` and ``other/scores``)."""
    parts = {str(p): Path(p).parts for p in paths}
    names = {}
    for key, own in parts.items():
        for k in range(1, len(own) + 1):
            if all(other[-k:] != own[-k:] for o, other in parts.items() if o != key):
                names[key] = key if k == len(own) else "/".join(own[-k:])
                break
        else:  # every suffix is shared (e.g. "a/b" beside "/x/a/b"): the path as given
            names[key] = key
    return names


def _probit_ticks(lo: float, hi: float) -> tuple[np.ndarray, list[str]]:
    """Standard DET ticks between the probabilities ``lo`` and ``hi``: probit positions and
    labels in %."""
    pct = np.array([t for t in DET_TICKS_PCT if lo * 100 - 1e-12 <= t <= hi * 100 + 1e-12])
    return ndtri(pct / 100), [f"{p:g}" for p in pct]


def _det_limits(values: Sequence[float], margin: float = 0.08) -> tuple[float, float]:
    """Axis limits (probabilities, standard ticks) holding every value in (0, 1), with a
    probit ``margin``, within 0.001 %–99 %, at least one tick apart; 0.1 %–40 % when there
    is no value."""
    v = np.asarray([x for x in values if 0 < x < 1], dtype=np.float64)
    ticks = np.array(DET_TICKS_PCT) / 100
    if v.size == 0:
        return 0.001, 0.4
    lo_z, hi_z = ndtri(v.min()) - margin, ndtri(v.max()) + margin
    lo = int(np.searchsorted(ndtri(ticks), lo_z, side="right")) - 1  # last tick <= lo_z
    hi = int(np.searchsorted(ndtri(ticks), hi_z, side="left"))  # first tick >= hi_z
    lo, hi = max(lo, 0), min(hi, ticks.size - 1)
    if hi <= lo:  # every value beyond the outermost tick: keep an axis one tick wide
        lo, hi = (hi - 1, hi) if hi > 0 else (lo, lo + 1)
    return float(ticks[lo]), float(ticks[hi])


def _spread(z: np.ndarray, gap: float) -> list[int]:
    """Indices of the sorted positions ``z`` to label: from the one nearest the middle
    (probit 0, where standard ticks are widest apart) outwards, each at least ``gap`` from
    the last kept, so that labels do not overlap where the ticks crowd."""
    if z.size == 0:
        return []
    mid = int(np.argmin(np.abs(z)))
    keep = [mid]
    for step in (-1, 1):
        last = z[mid]
        for i in range(mid + step, z.size if step > 0 else -1, step):
            if abs(z[i] - last) >= gap:
                keep.append(i)
                last = z[i]
    return sorted(keep)


def _det_plot(results: dict[str, Any], names: dict[str, str], path: Path) -> dict[str, Any]:
    """Draw the DET curves into ``path``; return the axis limits actually drawn and the
    marked points, as probabilities: ``{"limits": (lo, hi), "points": {system: {"eer":
    (p_fa, p_miss), "min_dcf_vox": (p_fa, p_miss)}}}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    p = DCF_PRESETS["vox"]
    curves, points, extent = {}, {}, []
    for name, system in results["systems"].items():
        tar, non = system["scores"]
        _, p_miss, p_fa = det_curve(tar, non)
        curves[name] = (p_fa, p_miss)
        inside = (p_miss > 0) & (p_miss < 1) & (p_fa > 0) & (p_fa < 1)
        extent += [p_fa[inside], p_miss[inside]]
        eer = system["figures"]["eer_rocch"]
        i = int(np.argmin(p.c_miss * p.p_target * p_miss + p.c_fa * (1 - p.p_target) * p_fa))
        points[name] = {"eer": (eer, eer), "min_dcf_vox": (float(p_fa[i]), float(p_miss[i]))}
        extent.append(np.ravel(list(points[name].values())))
    lo, hi = _det_limits(np.concatenate(extent))
    z_lo, z_hi = ndtri(lo), ndtri(hi)

    def z(prob, clip_to_axes=False):
        prob = np.asarray(prob, dtype=np.float64)
        return (np.clip(ndtri(np.clip(prob, lo, hi)), z_lo, z_hi) if clip_to_axes
                else ndtri(np.clip(prob, 1e-12, 1 - 1e-12)))  # off-axis ends are clipped

    fig, ax = plt.subplots(figsize=(6, 6))
    ax.plot([z_lo, z_hi], [z_lo, z_hi], color="0.6", lw=0.7, ls=(0, (1, 3)), zorder=1)
    for k, name in enumerate(curves):
        ls, lw = _STYLES[k % len(_STYLES)]
        ms = max(9.0 - 1.5 * k, 4.0)  # coinciding markers stay visible too
        eer = results["systems"][name]["figures"]["eer_rocch"]
        line, = ax.plot(z(curves[name][0]), z(curves[name][1]), ls=ls, lw=lw, zorder=2 + k,
                        label=f"{names[name]} (EER {100 * eer:.2f}%)")
        for key, marker in (("eer", "o"), ("min_dcf_vox", "s")):
            x, y = points[name][key]
            ax.plot(z(x, True), z(y, True), marker, ms=ms, color=line.get_color(),
                    mfc="none" if marker == "s" else line.get_color(), mew=1.5,
                    clip_on=False, zorder=10 + k)
    ticks, labels = _probit_ticks(lo, hi)
    box = ax.get_position()
    for axis, size_in, label_in in ((ax.xaxis, box.width * fig.get_figwidth(), 0.42),
                                    (ax.yaxis, box.height * fig.get_figheight(), 0.22)):
        keep = _spread(ticks, label_in * (z_hi - z_lo) / size_in)
        axis.set_ticks(ticks[keep], [labels[i] for i in keep])
        axis.set_ticks(np.delete(ticks, keep), minor=True)  # grid lines, no label
    ax.set_xlim(z_lo, z_hi)
    ax.set_ylim(z_lo, z_hi)
    ax.set_xlabel("False alarm probability (%)")
    ax.set_ylabel("Miss probability (%)")
    ax.set_title("DET curve (o: EER, □: minDCF vox)")
    ax.grid(True, which="both", lw=0.3)
    ax.legend(loc="upper right", fontsize=8, handlelength=3.5)
    save_figure(fig, path)
    return {"limits": (lo, hi), "points": points}


def _histogram(results: dict[str, Any], names: dict[str, str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = results["systems"]
    fig, axes = plt.subplots(len(systems), 1, figsize=(6, 2.6 * len(systems)), squeeze=False)
    for ax, (name, system) in zip(axes[:, 0], systems.items()):
        tar, non = system["scores"]
        bins = np.linspace(min(tar.min(), non.min()), max(tar.max(), non.max()), 60)
        ax.hist(non, bins=bins, density=True, alpha=0.6, label=f"non-target ({non.size})")
        ax.hist(tar, bins=bins, density=True, alpha=0.6, label=f"target ({tar.size})")
        ax.set_title(names[name], fontsize=9)
        ax.legend(fontsize=8)
    axes[-1, 0].set_xlabel("score")
    fig.tight_layout()
    save_figure(fig, path)


def save_figure(fig, path: Path) -> None:
    """Write a matplotlib figure as PNG, atomically, and close it."""
    import matplotlib.pyplot as plt

    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110, bbox_inches="tight", pad_inches=0.1)
    plt.close(fig)


# Column groups of the results table: (label, columns); an empty label spans no group.
_DISCRIMINATION = ["EER (ROCCH)", "EER (linear)", *[f"minDCF {k}" for k in DCF_PRESETS],
                   "minCllr"]
_CALIBRATION = ["actDCF vox †", "Cllr †"]
_GROUPS = [("", ["system", "targets", "non-targets"]),
           ("discrimination: any scores", _DISCRIMINATION),
           ("calibration: calibrated LLRs only †", _CALIBRATION),
           ("", ["closed-set id"])]


def _table(results: dict[str, Any], names: dict[str, str]) -> list[list[str]]:
    """Header row, then one row per system (column 0: its display name)."""
    rows = [[c for _, cols in _GROUPS for c in cols]]
    for name, system in results["systems"].items():
        f = system["figures"]
        rows.append([names[name], str(f["n_target"]), str(f["n_nontarget"]),
                     f"{100 * f['eer_rocch']:.2f}%", f"{100 * f['eer_linear']:.2f}%",
                     *[f"{f['min_dcf'][k]['value']:.3f}" for k in DCF_PRESETS],
                     f"{f['min_cllr']:.3f}",
                     f"{f['act_dcf']['vox']['value']:.3f}", f"{f['cllr']:.3f}",
                     "-" if f["identification_accuracy"] is None
                     else f"{100 * f['identification_accuracy']:.1f}%"])
    return rows


def _html_table(rows: list[list[str]]) -> str:
    esc = lambda c: html.escape(c).replace(" †", "&nbsp;†")  # noqa: E731
    top, second = [], []
    for label, cols in _GROUPS:
        if label:
            top.append(f"<th colspan='{len(cols)}' scope='colgroup'>{esc(label)}</th>")
            second += [f"<th scope='col'>{esc(c)}</th>" for c in cols]
        else:
            top += [f"<th rowspan='2' scope='col'{' class=name' if c == rows[0][0] else ''}>"
                    f"{esc(c)}</th>" for c in cols]
    body = "".join("<tr><th scope='row'>" + esc(r[0]) + "</th>"
                   + "".join(f"<td>{esc(c)}</td>" for c in r[1:]) + "</tr>" for r in rows[1:])
    return (f"<table><thead><tr>{''.join(top)}</tr><tr>{''.join(second)}</tr></thead>"
            f"<tbody>{body}</tbody></table>")


_CSS = ("body{font-family:sans-serif;margin:1em;line-height:1.4}"
        "img{max-width:100%;height:auto;display:block}"
        "figure{margin:1em 0}figcaption{font-size:.9em;color:#333;max-width:40em}"
        ".scroll{overflow-x:auto;max-width:100%}"
        "table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:4px 8px;text-align:right}"
        "td,tbody th{white-space:nowrap}"
        "thead th{text-align:center;background:#f2f2f2}"
        "tbody th,th.name{text-align:left}tbody th{font-weight:normal}"
        ".note{font-size:.9em}")


def write_report(results: dict[str, Any], out_dir: str | os.PathLike, *,
                 title: str = "speakergmm evaluation") -> dict[str, Path]:
    """Write report.json, report.md, report.html, det.png and hist.png into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {k: out / v for k, v in (("json", "report.json"), ("md", "report.md"),
                                     ("html", "report.html"), ("det", "det.png"),
                                     ("hist", "hist.png"))}
    names = display_names(results["systems"])
    det = _det_plot(results, names, files["det"])
    _histogram(results, names, files["hist"])
    machine = {k: v for k, v in results.items() if k != "systems"}
    machine["dcf_presets"] = {k: vars(p) for k, p in DCF_PRESETS.items()}
    machine["notes"] = NOTES
    machine["systems"] = {k: v["figures"] for k, v in results["systems"].items()}
    machine["display_names"] = names
    machine["det_axis_limits"] = list(det["limits"])
    write_text_atomic(files["json"], json.dumps(machine, indent=2) + "\n")

    rows = _table(results, names)
    presets = "minDCF presets: " + "; ".join(
        f"{k} (Cmiss {p.c_miss:g}, Cfa {p.c_fa:g}, Ptarget {p.p_target:g})"
        for k, p in DCF_PRESETS.items()) + "."
    notes = [presets, NOTES]
    stamp = f"speakergmm {results['speakergmm_version']}, {results['date']}"
    figures = [("DET curve", "det", DET_CAPTION), ("Score distributions", "hist", HIST_CAPTION)]

    md_cell = lambda c: c.replace("|", "\\|")  # noqa: E731
    md = [f"# {title}", "", stamp, "", "## Results", "",
          "| " + " | ".join(rows[0]) + " |",
          "|" + "|".join([":---"] + ["---:"] * (len(rows[0]) - 1)) + "|"]
    md += ["| " + " | ".join(md_cell(c) for c in r) + " |" for r in rows[1:]]
    md += ["", CALIBRATION_NOTE, ""]
    for heading, key, caption in figures:
        md += [f"## {heading}", "", f"![{heading}]({files[key].name})", "", f"*{caption}*", ""]
    md += ["## Notes", ""] + [line for n in notes for line in (n, "")]
    write_text_atomic(files["md"], "\n".join(md))

    esc = html.escape
    body = [f"<h1>{esc(title)}</h1>", f"<p>{esc(stamp)}</p>",
            "<section><h2>Results</h2>", f"<div class='scroll'>{_html_table(rows)}</div>",
            f"<p class='note'>{esc(CALIBRATION_NOTE)}</p></section>"]
    for heading, key, caption in figures:
        body += figure_html(heading, files[key], caption)
    body += ["<section><h2>Notes</h2>"] + [f"<p>{esc(n)}</p>" for n in notes] + ["</section>"]
    write_text_atomic(files["html"], html_page(title, body))
    return files


def figure_html(heading: str, png: Path, caption: str) -> list[str]:
    """A report section holding a PNG figure (embedded: the page is one file)."""
    esc = html.escape
    data = base64.b64encode(png.read_bytes()).decode()
    return [f"<section><h2>{esc(heading)}</h2><figure>",
            f"<img alt='{esc(heading)}' src='data:image/png;base64,{data}'>",
            f"<figcaption>{esc(caption)}</figcaption></figure></section>"]


def html_page(title: str, body: Sequence[str]) -> str:
    """A report's self-contained HTML page around ``body`` (HTML fragments)."""
    return ("<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
