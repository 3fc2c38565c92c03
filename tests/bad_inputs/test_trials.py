"""Trial lists, enroll maps and score files (issue 14): every malformed or inconsistent one
is refused naming the file (and line), exit 2, nothing written."""

import pytest

from conftest import refused

TRIALS = [
    ("spk0 spk1-u1 target\nspk0 spk1-u1 target\n", "trials:2", "duplicates line 1"),
    ("spk0 spk1-u1 target\n1 spk0 spk1-u1\n", "trials:2", "one format per file"),
    ("spk0 spk1-u1 maybe\n", "trials:1", "unknown trial format"),
    ("spk0\n", "trials:1", "unknown trial format"),
    ("spk0 spk1-u1 target extra\n", "trials:1", "unknown trial format"),
    ("\n\n", "trials", "no trials"),
    ("", "trials", "no trials"),
    (b"spk0 spk1-u\xff1\n", "trials:1", "not UTF-8"),
    ("spk0 nowhere-u9\n", None, "no features for test utterance 'nowhere-u9'"),
    ("nobody spk1-u1\n", None, "trial model 'nobody' is not enrolled"),
]


@pytest.mark.parametrize("content, where, says", TRIALS)
def test_trial_lists(work, tmp_path, content, where, says):
    trials = tmp_path / "trials"
    if isinstance(content, bytes):
        trials.write_bytes(content)
    else:
        trials.write_text(content)
    names = [says] + ([f"{tmp_path}/{where}"] if where else [])
    refused(["score", trials, "--enroll", work / "feats", "--test", work / "feats", "--ubm",
             work / "ubm.npz", "-o", tmp_path / "scores"], *names, roots=[tmp_path, work])


@pytest.mark.parametrize("content, says", [
    ("spk0-u0 spk0-u0 nowhere-u7\n", "no features for enrollment utterance 'nowhere-u7'"),
    ("spk0-u0\n", "expected"),
    ("spk0-u0 spk0-u0\nspk0-u0 spk0-u1\n", "duplicate key 'spk0-u0'"),
    ("someone spk0-u0\n", "trial model 'spk0-u0' is not enrolled"),
])
def test_enroll_maps(work, tmp_path, content, says):
    enroll_map = tmp_path / "enroll_map"
    enroll_map.write_text(content)
    refused(["score", work / "trials", "--enroll", work / "feats", "--enroll-map", enroll_map,
             "--test", work / "feats", "--ubm", work / "ubm.npz", "-o", tmp_path / "scores"],
            says, roots=[tmp_path, work])


@pytest.mark.parametrize("content, says", [
    ("spk0 spk0-u1 x\n", "is not a number"),
    ("spk0 spk0-u1 nan\n", "nan"),
    ("spk0 spk0-u1\n", "expected"),
    ("spk0 spk0-u1 1.0\nspk0 spk0-u1 2.0\n", "scored twice"),
    (b"spk0 spk0-u\xff1 1.0\n", "not UTF-8"),
])
def test_score_files(tmp_path, content, says):
    key = tmp_path / "key"
    key.write_text("spk0 spk0-u1 target\nspk0 spk1-u1 nontarget\n")
    scores = tmp_path / "scores"
    scores.write_bytes(content if isinstance(content, bytes) else content.encode())
    for args in (["evaluate", scores, "--trials", key, "-o", tmp_path / "report"],
                 ["calibrate", scores, "--trials", key, "-o", tmp_path / "cal.json"]):
        refused(args, str(scores), says, roots=[tmp_path])
