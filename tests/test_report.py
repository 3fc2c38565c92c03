import json

import numpy as np
from click.testing import CliRunner

from speakergmm.cli import main
from speakergmm.datadir import Trials, write_trials


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
    from speakergmm.scores import identification_accuracy

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
