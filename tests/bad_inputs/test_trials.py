"""Trial lists, enroll maps and score files (issue 14): every malformed or inconsistent one
is refused naming the file (and line), exit 2, nothing written."""

from pathlib import Path

import numpy as np
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


@pytest.mark.parametrize("change, says", [
    ({"scale": 0}, "scale must be positive"), ({"scale": -1.5}, "scale must be positive"),
    ({"scale": "2.0"}, "scale must be a finite number"),
    ("nested", "nested too deeply"), ("huge", "not a calibration"),
])
def test_calibration_files_that_lie_are_refused(tmp_path, change, says):
    """Issue 25: a calibration of scale 0, negative or a string, a deeply nested JSON
    (RecursionError) or a file too large to be one is refused naming the file."""
    import json

    scores = tmp_path / "scores"
    scores.write_text("a x 1.0\na y -1.0\n")
    cal = tmp_path / "cal.json"
    doc = {"format": "speakergmm.calibration", "format_version": 1, "scale": 1.0,
           "offset": 0.0, "prior": 0.01, "n_target": 10, "n_nontarget": 30}
    if change == "nested":
        cal.write_text("[" * 100_000 + "]" * 100_000)
    elif change == "huge":
        cal.write_text(" " * (2 << 20))
    else:
        cal.write_text(json.dumps({**doc, **change}))
    refused(["apply-calibration", cal, scores, "-o", tmp_path / "out"], str(cal), says,
            roots=[tmp_path])


def test_fusion_files_and_fusions_that_rank_the_wrong_way_are_refused(tmp_path):
    import json

    trials = tmp_path / "trials"
    pairs = [(f"m{m}", f"t{t}", m == t) for m in range(10) for t in range(12)]
    trials.write_text("".join(f"{m} {t} {'target' if k else 'nontarget'}\n"
                              for m, t, k in pairs))
    rng = np.random.default_rng(0)
    files = []
    for i in range(2):  # targets scored below non-targets in both systems
        path = tmp_path / f"s{i}"
        path.write_text("".join(f"{m} {t} {(-2.0 if k else 1.0) + rng.normal():.4f}\n"
                                for m, t, k in pairs))
        files.append(path)
    refused(["fuse", *files, "--trials", trials, "-o", tmp_path / "f.json"],
            "score lower than non-target", roots=[tmp_path])
    fusion = tmp_path / "fusion.json"
    base = {"format": "speakergmm.fusion", "format_version": 1, "weights": [1.0, 0.5],
            "offset": 0.0, "prior": 0.01, "systems": ["a", "b"], "n_target": 10,
            "n_nontarget": 30}
    for change, says in (({"weights": ["1.0", "2"]}, "must be numbers"),
                         ({"weights": [-1.0, 0.0]}, "no fusion weight is positive")):
        fusion.write_text(json.dumps({**base, **change}))
        refused(["apply-calibration", fusion, *files, "-o", tmp_path / "out"], says,
                roots=[tmp_path])


def test_text_inputs_that_never_end_or_are_one_huge_line(tmp_path):
    """A scores file that never ends (/dev/zero gave MemoryError) and a one-line trial list
    of megabytes (its error line was 11 MB) are refused in one short line."""
    trials = tmp_path / "trials"
    trials.write_text("a x target\n")
    cal = tmp_path / "cal.json"
    cal.write_text('{"format": "speakergmm.calibration", "format_version": 1, "scale": 1.0, '
                   '"offset": 0.0, "prior": 0.01, "n_target": 10, "n_nontarget": 30}')
    if Path("/dev/zero").exists():
        line = refused(["apply-calibration", cal, "/dev/zero", "-o", tmp_path / "o"],
                       "/dev/zero", "device", roots=[tmp_path])
        assert len(line) < 300
    huge = tmp_path / "huge"
    huge.write_text("a x target " * 1_000_000)
    line = refused(["calibrate", trials, "--trials", huge, "-o", tmp_path / "o"], str(huge),
                   "characters", roots=[tmp_path])
    assert len(line) <= 1100


def test_a_byte_order_mark_is_not_part_of_the_first_id(tmp_path):
    """Files saved with a UTF-8 byte-order mark (Windows editors): the first line is read
    like the others (it was dropped, or its id did not match)."""
    from speakergmm.data.textmap import read_ids, read_kaldi_map
    from speakergmm.data.trials import read_trials

    bom = tmp_path / "utt2spk"
    bom.write_bytes("\ufeffu1 s1\nu2 s2\n".encode())
    assert read_kaldi_map(bom) == {"u1": "s1", "u2": "s2"}
    assert read_ids(bom) == ["u1", "u2"]
    trials = tmp_path / "trials"
    trials.write_bytes("\ufeffs1 u1 target\ns1 u2 nontarget\n".encode())
    assert list(read_trials(trials).enroll) == ["s1", "s1"]


def test_subset_takes_one_id_per_line(work, tmp_path):
    """--subset: 'the utterances that begin the lines of this file' (one id per line was
    refused: it wanted a key and a value)."""
    from click.testing import CliRunner

    from speakergmm.cli import main
    from speakergmm.gmm.statsarchive import read_stats

    subset = tmp_path / "subset"
    first = sorted((work / "feats" / "utt2spk").read_text().split("\n"))[1].split()[0]
    subset.write_text(f"{first}\n")
    r = CliRunner().invoke(main, [str(a) for a in ["stats", work / "feats", "--ubm",
                                                   work / "ubm.npz", "--subset", subset, "-q",
                                                   "-o", tmp_path / "stats"]])
    assert r.exit_code == 0, r.output
    assert list(read_stats(tmp_path / "stats")) == [first]
