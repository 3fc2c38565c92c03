"""The FSDD recipe end to end on ../shared/corpora/fsdd (skipped when absent)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO, corpus


def test_fsdd_recipe_end_to_end(tmp_path):
    root = corpus("fsdd")
    scripts = Path(sys.executable).parent
    assert shutil.which("speakergmm", path=str(scripts)), "speakergmm is not installed"
    env = dict(os.environ, FSDD_ROOT=str(root), PATH=f"{scripts}{os.pathsep}{os.environ['PATH']}")
    work = tmp_path / "exp"
    out = subprocess.run(["bash", str(REPO / "recipes" / "fsdd" / "run.sh"), "--work", str(work)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "EER" in out.stdout and "report.html" in out.stdout
    report = json.loads((work / "report" / "report.json").read_text())
    systems = report["systems"]
    assert len(systems) == 3
    for figures in systems.values():
        assert (figures["n_target"], figures["n_nontarget"]) == (600, 3000)
        # regression guard, above the 2% target of the issue (4.7% / 3.2% measured)
        assert 0 < figures["eer_rocch"] < 0.10
        assert figures["min_dcf"]["vox"]["value"] < 1.0
    calibrated = systems[str(work / "scores_topc_snorm_cal")]
    assert calibrated["cllr"] < systems[str(work / "scores_topc_snorm")]["cllr"]
    assert calibrated["act_dcf"]["vox"]["value"] < 1.0
    assert (work / "report" / "det.png").stat().st_size > 1000
    # resuming from a later stage redoes only that stage
    again = subprocess.run(["bash", str(REPO / "recipes" / "fsdd" / "run.sh"), "--work",
                            str(work), "--stage", "5"], env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0 and "stage 4" not in again.stdout
