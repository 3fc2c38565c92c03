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

from ._io import atomic_write, write_text_atomic
from ._version import __version__
from .calibration import cllr
from .datadir import Trials
from .metrics import (DCF_PRESETS, act_dcf, det_curve, eer_interpolated, min_cllr, min_dcf,
                      rocch_eer)
from .scores import identification_accuracy, key_scores

__all__ = ["evaluate_scores", "evaluate", "write_report"]


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


def _probit_ticks():
    from scipy.stats import norm

    pct = np.array([0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 40])
    return norm.ppf(pct / 100), [f"{p:g}" for p in pct]


def _det_plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    eps = 1e-4
    fig, ax = plt.subplots(figsize=(6, 6))
    for name, system in results["systems"].items():
        tar, non = system["scores"]
        _, p_miss, p_fa = det_curve(tar, non)
        x, y = norm.ppf(np.clip(p_fa, eps, 1 - eps)), norm.ppf(np.clip(p_miss, eps, 1 - eps))
        fig_eer = system["figures"]["eer_rocch"]
        line, = ax.plot(x, y, label=f"{Path(name).name} (EER {100 * fig_eer:.2f}%)")
        e = norm.ppf(np.clip(fig_eer, eps, 1 - eps))
        ax.plot([e], [e], "o", color=line.get_color())
        p = DCF_PRESETS["vox"]
        cost = p.c_miss * p.p_target * p_miss + p.c_fa * (1 - p.p_target) * p_fa
        i = int(np.argmin(cost))
        ax.plot([x[i]], [y[i]], "s", color=line.get_color(), mfc="none")
    ticks, labels = _probit_ticks()
    ax.set_xticks(ticks, labels)
    ax.set_yticks(ticks, labels)
    ax.set_xlim(ticks[0], ticks[-1])
    ax.set_ylim(ticks[0], ticks[-1])
    ax.plot([ticks[0], ticks[-1]], [ticks[0], ticks[-1]], ":", color="grey", lw=0.8)
    ax.set_xlabel("False alarm probability (%)")
    ax.set_ylabel("Miss probability (%)")
    ax.set_title("DET curve (o: EER, □: minDCF vox)")
    ax.grid(True, lw=0.3)
    ax.legend(loc="upper right", fontsize=8)
    _save(fig, path)


def _histogram(results: dict[str, Any], path: Path) -> None:
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
        ax.set_title(Path(name).name, fontsize=9)
        ax.legend(fontsize=8)
    axes[-1, 0].set_xlabel("score")
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)


def _table(results: dict[str, Any]) -> list[list[str]]:
    rows = [["system", "targets", "non-targets", "EER (ROCCH)", "EER (linear)",
             *[f"minDCF {k}" for k in DCF_PRESETS], "Cllr", "minCllr", "closed-set id"]]
    for name, system in results["systems"].items():
        f = system["figures"]
        rows.append([Path(name).name, str(f["n_target"]), str(f["n_nontarget"]),
                     f"{100 * f['eer_rocch']:.2f}%", f"{100 * f['eer_linear']:.2f}%",
                     *[f"{f['min_dcf'][k]['value']:.3f}" for k in DCF_PRESETS],
                     f"{f['cllr']:.3f}", f"{f['min_cllr']:.3f}",
                     "-" if f["identification_accuracy"] is None
                     else f"{100 * f['identification_accuracy']:.1f}%"])
    return rows


def write_report(results: dict[str, Any], out_dir: str | os.PathLike, *,
                 title: str = "speakergmm evaluation") -> dict[str, Path]:
    """Write report.json, report.md, report.html, det.png and hist.png into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {k: out / v for k, v in (("json", "report.json"), ("md", "report.md"),
                                     ("html", "report.html"), ("det", "det.png"),
                                     ("hist", "hist.png"))}
    _det_plot(results, files["det"])
    _histogram(results, files["hist"])
    machine = {k: v for k, v in results.items() if k != "systems"}
    machine["dcf_presets"] = {k: vars(p) for k, p in DCF_PRESETS.items()}
    machine["notes"] = ("EER (ROCCH) is the primary figure. minDCF is normalised by the default "
                        "cost. actDCF and Cllr treat scores as calibrated log-likelihood ratios.")
    machine["systems"] = {k: v["figures"] for k, v in results["systems"].items()}
    write_text_atomic(files["json"], json.dumps(machine, indent=2) + "\n")
    rows = _table(results)
    md = [f"# {title}", "", f"speakergmm {results['speakergmm_version']}, {results['date']}", "",
          "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    md += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    md += ["", "minDCF presets: " + "; ".join(
        f"{k} (Cmiss {p.c_miss:g}, Cfa {p.c_fa:g}, Ptarget {p.p_target:g})"
        for k, p in DCF_PRESETS.items()) + ".", machine["notes"], "",
        "![DET curve](det.png)", "", "![Score histograms](hist.png)", ""]
    write_text_atomic(files["md"], "\n".join(md))
    img = {k: base64.b64encode(files[k].read_bytes()).decode() for k in ("det", "hist")}
    cells = lambda r, tag: "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in r)  # noqa: E731
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            "</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:"
            "collapse}td,th{border:1px solid #999;padding:4px 8px;text-align:right}</style>"
            f"</head><body><h1>{html.escape(title)}</h1><p>speakergmm "
            f"{html.escape(results['speakergmm_version'])}, {html.escape(results['date'])}</p>"
            f"<table><tr>{cells(rows[0], 'th')}</tr>"
            + "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows[1:]) + "</table>"
            f"<p>{html.escape(md[-6])}</p><p>{html.escape(machine['notes'])}</p>"
            f"<img alt='DET curve' src='data:image/png;base64,{img['det']}'>"
            f"<img alt='Score histograms' src='data:image/png;base64,{img['hist']}'>"
            "</body></html>\n")
    write_text_atomic(files["html"], page)
    return files
