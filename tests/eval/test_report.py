import json

import numpy as np
from click.testing import CliRunner

from speakergmm.cli import main
from speakergmm.data.trials import Trials, write_trials


def _files(tmp_path, rng):
    enroll = np.array([f"m{i % 5}" for i in range(200)])
    test = np.array([f"t{i}" for i in range(200)])
    target = rng.random(200) < 0.2
    write_trials(tmp_path / "trials", Trials(enroll, test, target))
    for name, sep in (("good", 3.0), ("weak", 1.0)):
        s = rng.standard_normal(200) + sep * target
        (tmp_path / name).write_text("".join(f"{e} {t} {v:.6f}\n"
                                             for e, t, v in zip(enroll, test, s)))
    return target


def test_evaluate_writes_a_report(tmp_path, rng):
    _files(tmp_path, rng)
    out = tmp_path / "report"
    r = CliRunner().invoke(main, ["evaluate", str(tmp_path / "good"), str(tmp_path / "weak"),
                                  "--trials", str(tmp_path / "trials"), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "EER" in r.output and "report.html" in r.output
    for name in ("report.json", "report.md", "report.html", "det.png", "hist.png"):
        assert (out / name).stat().st_size > 200, name
    data = json.loads((out / "report.json").read_text())
    good, weak = (data["systems"][str(tmp_path / n)] for n in ("good", "weak"))
    assert good["eer_rocch"] < weak["eer_rocch"] < 0.5
    assert good["eer_rocch"] <= good["eer_linear"] + 1e-12
    assert set(good["min_dcf"]) == {"sre08", "sre10", "vox", "vox05"}
    assert good["min_dcf"]["sre08"]["c_miss"] == 10.0
    assert good["n_target"] + good["n_nontarget"] == 200
    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page and "<table>" in page  # self-contained
    assert (out / "det.png").read_bytes()[:4] == b"\x89PNG"


def test_key_problems_are_clear(tmp_path, rng):
    _files(tmp_path, rng)
    lines = (tmp_path / "good").read_text().splitlines()
    (tmp_path / "missing").write_text("\n".join(lines[:-1]) + "\n")
    r = CliRunner().invoke(main, ["evaluate", str(tmp_path / "missing"), "--trials",
                                  str(tmp_path / "trials"), "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "1 trial(s) of the key are not scored" in r.output
    (tmp_path / "twice").write_text("\n".join(lines + lines[:1]) + "\n")
    r = CliRunner().invoke(main, ["evaluate", str(tmp_path / "twice"), "--trials",
                                  str(tmp_path / "trials"), "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "scored twice" in r.output
    one_class = Trials(np.array(["m"]), np.array(["t"]), np.array([True]))
    write_trials(tmp_path / "t1", one_class)
    (tmp_path / "s1").write_text("m t 1.0\n")
    r = CliRunner().invoke(main, ["evaluate", str(tmp_path / "s1"), "--trials",
                                  str(tmp_path / "t1"), "-o", str(tmp_path / "o")])
    assert r.exit_code != 0 and "non-target" in r.output


def test_identification_accuracy_from_a_key():
    from speakergmm.eval.metrics import identification_accuracy

    # two tests, three models each; t1's best is its target, t2's best is not
    enroll = np.array(["a", "b", "c", "a", "b", "c"])
    test = np.array(["t1"] * 3 + ["t2"] * 3)
    target = np.array([True, False, False, False, True, False])
    values = np.array([0.9, 0.1, 0.2, 0.5, 0.4, 0.3])
    assert identification_accuracy(values, Trials(enroll, test, target)) == 0.5
    # a test with two targets: not an identification key
    target2 = target.copy()
    target2[2] = True
    assert identification_accuracy(values, Trials(enroll, test, target2)) is None


def _evaluated(tmp_path, rng):
    _files(tmp_path, rng)
    out = tmp_path / "report"
    r = CliRunner().invoke(main, ["evaluate", str(tmp_path / "good"), str(tmp_path / "weak"),
                                  "--trials", str(tmp_path / "trials"), "-o", str(out)])
    assert r.exit_code == 0, r.output
    return out


def test_report_page_is_self_contained_responsive_and_says_everything_once(tmp_path, rng):
    import re

    from speakergmm.eval.report import NOTES

    out = _evaluated(tmp_path, rng)
    page, md = (out / "report.html").read_text(), (out / "report.md").read_text()
    data = json.loads((out / "report.json").read_text())
    # self-contained: every src/href is inline data, no URL anywhere, no external CSS/JS
    links = re.findall(r"""(?:src|href)\s*=\s*['"]?([^'" >]*)""", page, re.I)
    assert len(links) == 2 and all(u.startswith("data:image/png;base64,") for u in links)
    assert "://" not in page and "url(" not in page and "<link" not in page
    assert "<script" not in page and "@import" not in page
    # small screens
    assert "<html lang='en'>" in page
    assert "<meta name='viewport' content='width=device-width, initial-scale=1'>" in page
    assert "img{max-width:100%;height:auto;display:block}" in page
    assert "<div class='scroll'><table>" in page and "overflow-x:auto" in page
    # notes and presets once each, in both the page and the markdown
    presets = "minDCF presets: sre08 (Cmiss 10, Cfa 1, Ptarget 0.01); sre10 (Cmiss 1,"
    for text in (page, md):
        assert text.count(NOTES) == 1 and text.count(presets) == 1
    assert data["notes"] == NOTES
    # structure: sections, one figure per row with captions
    for heading in ("Results", "DET curve", "Score distributions", "Notes"):
        assert f"<h2>{heading}</h2>" in page and f"\n## {heading}\n" in md
    assert page.count("<figure>") == page.count("<figcaption>") == 2
    assert "monotone calibration" in page and "leaves the DET curve unchanged" in page
    # actDCF column, flagged as meaningful for calibrated scores only
    header = next(line for line in md.splitlines() if line.startswith("| system"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert "actDCF vox †" in cols and "Cllr †" in cols
    assert md.splitlines()[md.splitlines().index(header) + 1].startswith("|:---|---:|")
    assert "meaningful only for calibrated scores" in md and "only for calibrated" in page
    good = data["systems"][str(tmp_path / "good")]
    row = next(line for line in md.splitlines() if line.startswith("| good "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[cols.index("actDCF vox †")] == f"{good['act_dcf']['vox']['value']:.3f}"
    assert "actDCF vox&nbsp;†" in page and "<th scope='row'>good</th>" in page
    # json: the old fields stay, new ones are added
    assert {"speakergmm_version", "date", "dcf_presets", "notes", "systems"} <= set(data)
    assert data["display_names"] == {str(tmp_path / "good"): "good",
                                     str(tmp_path / "weak"): "weak"}
    lo, hi = data["det_axis_limits"]
    assert 1e-5 <= lo < hi <= 0.99


def test_display_names_use_the_shortest_distinguishing_suffix(tmp_path, rng):
    from speakergmm.eval.report import display_names

    assert display_names(["/x/exp/scores_topc", "/x/other/scores_topc", "/x/exp/cal"]) == {
        "/x/exp/scores_topc": "exp/scores_topc", "/x/other/scores_topc": "other/scores_topc",
        "/x/exp/cal": "cal"}
    assert display_names(["a/b/exp/s", "c/b/exp/s", "s"]) == {
        "a/b/exp/s": "a/b/exp/s", "c/b/exp/s": "c/b/exp/s", "s": "s"}
    assert display_names(["a/s", "/x/a/s"]) == {"a/s": "a/s", "/x/a/s": "x/a/s"}
    assert display_names(["one"]) == {"one": "one"}
    # in the report: two score files with the same base name
    _files(tmp_path, rng)
    for d in ("exp", "other"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "scores").write_bytes((tmp_path / ("good" if d == "exp" else "weak"))
                                              .read_bytes())
    out = tmp_path / "report"
    r = CliRunner().invoke(main, ["evaluate", str(tmp_path / "exp" / "scores"),
                                  str(tmp_path / "other" / "scores"),
                                  "--trials", str(tmp_path / "trials"), "-o", str(out)])
    assert r.exit_code == 0, r.output
    md = (out / "report.md").read_text()
    assert "| exp/scores |" in md and "| other/scores |" in md
    page = (out / "report.html").read_text()
    assert "<th scope='row'>exp/scores</th>" in page
    assert "<th scope='row'>other/scores</th>" in page


def test_det_axes_hold_every_marked_point(tmp_path, rng):
    from speakergmm.eval.metrics import det_curve
    from speakergmm.eval.report import _det_limits, _det_plot, evaluate_scores

    # 600 targets, 3000 non-targets, Ptarget 0.01: the minDCF point lies at a tiny false
    # alarm rate and a large miss rate, far outside the old fixed 0.1 %-40 % axes
    systems = {}
    for name, sep in (("exp/sharp", 3.5), ("exp/blunt", 2.0)):
        tar, non = 1.6 * rng.standard_normal(600) + sep, rng.standard_normal(3000)
        systems[name] = {"scores": (tar, non), "figures": evaluate_scores(tar, non)}
    drawn = _det_plot({"systems": systems}, {n: n for n in systems}, tmp_path / "det.png")
    assert (tmp_path / "det.png").read_bytes()[:4] == b"\x89PNG"
    lo, hi = drawn["limits"]
    assert 1e-5 <= lo < hi <= 0.99
    p_fa, p_miss = drawn["points"]["exp/sharp"]["min_dcf_vox"]
    assert 0 < p_fa < 0.001 and p_miss > 0.2
    for name, points in drawn["points"].items():
        for x, y in points.values():  # (a rate of exactly 0 or 1 is drawn on the edge)
            assert all(lo <= v <= hi for v in (x, y) if 0 < v < 1), (name, x, y, lo, hi)
        # the visible curve's whole extent too
        _, pm, pf = det_curve(*systems[name]["scores"])
        inside = (pm > 0) & (pf > 0)
        assert lo <= pf[inside].min() and pm[inside].max() <= hi
    # limits are standard ticks, bounded, and widen to hold whatever they are given
    assert _det_limits([]) == (0.001, 0.4)
    assert _det_limits([0.03, 0.3]) == (0.02, 0.4)
    assert _det_limits([1e-9, 0.5, 1 - 1e-9]) == (0.00001, 0.99)
    assert _det_limits([0.0, 1.0, 0.05]) == (0.02, 0.1)
    # values all beyond the outermost tick still give an axis one tick wide
    assert _det_limits([1e-9]) == (0.00001, 0.00002)
    assert _det_limits([0.995]) == (0.98, 0.99)
