"""Output paths: no command writes over its inputs (issue 14, "nothing lost"). Each case is
refused before anything is written: exit status 2, one line naming the output, the input
and the fix, and every file left as it was."""

import os

import numpy as np
import pytest
from click.testing import CliRunner

from speakergmm._io import check_outputs
from speakergmm.cli import main
from speakergmm.errors import SpeakerGMMError

from conftest import make_data_dir, refused


@pytest.fixture
def feats(work):
    return work, work / "data", work / "feats"


def test_extract_into_its_own_data_directory(feats):
    root, data, _ = feats
    line = refused(["extract", data, data, "--audio-root", root], "FEATS_DIR", "DATA_DIR",
                   "write it elsewhere", roots=[root])
    assert "is the input" in line


def test_extract_into_a_folder_holding_the_data_directory(feats):
    root, data, _ = feats
    refused(["extract", data, data.parent, "--audio-root", root / "audio"], "holds the input",
            roots=[root])


def test_extract_into_the_data_directory(feats):
    root, data, _ = feats
    refused(["extract", data, data / "feats", "--audio-root", root], "lies inside the input",
            "DATA_DIR", roots=[root])


def test_outputs_may_lie_inside_the_audio_root(tmp_path):
    data = make_data_dir(tmp_path, n_spk=1, n_utt=1)
    result = CliRunner().invoke(main, ["extract", str(data), str(tmp_path / "feats"),
                                       "--audio-root", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output


def test_extract_through_a_link_to_the_data_directory(feats, tmp_path):
    root, data, _ = feats
    os.symlink(data, tmp_path / "link")
    refused(["extract", data, tmp_path / "link", "--audio-root", root], "is the input",
            roots=[root])


def test_prepare_into_the_corpus_root(tmp_path):
    (tmp_path / "train").mkdir()
    refused(["prepare", "speechocean762", tmp_path, tmp_path], "OUT_DIR", "CORPUS_ROOT",
            roots=[tmp_path])


@pytest.mark.parametrize("command, says", [
    (["train-ubm", "{feats}", "-c", "2", "-o", "{feats}/utt2spk"], "lies inside the input"),
    (["stats", "{feats}", "--ubm", "{root}/ubm.npz", "-o", "{feats}"], "is the input"),
    (["stats", "{feats}", "--ubm", "{root}/ubm.npz", "-o", "{root}"], "holds the input"),
    # the replay of issue 25: a model input (--ubm) as the output
    (["train-ivector", "{feats}", "--ubm", "{root}/ubm.npz", "-r", "2", "-o",
      "{root}/ubm.npz"], "is the input --ubm"),
    (["train-channel", "{feats}", "--ubm", "{root}/ubm.npz", "-r", "2", "-o",
      "{root}/ubm.npz"], "is the input --ubm"),
])
def test_model_and_statistics_outputs_over_their_inputs(feats, command, says):
    root, _, archive = feats
    args = [a.format(feats=archive, root=root) for a in command]
    refused(args, "--output", says, roots=[root])


def _score_files(tmp_path):
    # enough trials to calibrate on (MIN_CALIBRATION): 12 target, 36 non-target
    rng = np.random.default_rng(0)
    pairs = [(f"spk{m}", f"spk{t}-u{u}") for m in range(4) for t in range(4) for u in range(3)]
    trials = tmp_path / "trials"
    trials.write_text("".join(f"{m} {t} {'target' if m == t.split('-')[0] else 'nontarget'}\n"
                              for m, t in pairs))
    a, b = tmp_path / "a", tmp_path / "b"
    for path in (a, b):
        path.write_text("".join(
            f"{m} {t} {(2.0 if m == t.split('-')[0] else -1.0) + rng.normal():.4f}\n"
            for m, t in pairs))
    cal = tmp_path / "cal.json"
    result = CliRunner().invoke(main, ["calibrate", str(a), "--trials", str(trials), "-o",
                                       str(cal)])
    assert result.exit_code == 0, result.output
    return trials, a, b, cal


def test_score_file_outputs_over_their_inputs(tmp_path):
    trials, a, b, cal = _score_files(tmp_path)
    refused(["calibrate", a, "--trials", trials, "-o", a], "--output", "SCORES",
            roots=[tmp_path])
    refused(["calibrate", a, "--trials", trials, "-o", trials], "--trials", roots=[tmp_path])
    refused(["fuse", a, b, "--trials", trials, "-o", b], "is the input", roots=[tmp_path])
    refused(["apply-calibration", cal, a, "-o", a], "is the input", roots=[tmp_path])
    refused(["apply-calibration", cal, a, "-o", cal], "CALIBRATION", roots=[tmp_path])
    refused(["evaluate", a, "--trials", trials, "-o", tmp_path], "holds the input",
            roots=[tmp_path])


def test_a_hard_link_is_the_same_file(tmp_path):
    trials, a, _, cal = _score_files(tmp_path)
    os.link(a, tmp_path / "hard")
    refused(["apply-calibration", cal, a, "-o", tmp_path / "hard"], "is the input",
            roots=[tmp_path])


def test_score_with_both_outputs_on_one_path(feats, tmp_path):
    root, _, archive = feats
    trials = tmp_path / "trials"
    trials.write_text("spk0 spk0-u1\n")
    refused(["score", trials, "--enroll", archive, "--test", archive, "--ubm",
             root / "ubm.npz", "-o", tmp_path / "s", "--raw-output", tmp_path / "s"],
            "the outputs", "give each its own", roots=[root, tmp_path])
    refused(["score", trials, "--enroll", archive, "--test", archive, "--ubm",
             root / "ubm.npz", "-o", trials], "is the input TRIALS", roots=[root, tmp_path])


def test_check_outputs_rules(tmp_path):
    (tmp_path / "data").mkdir()
    check_outputs({"-o": tmp_path / "data" / "feats"}, {"ROOT": tmp_path / "data"},
                  roots=("ROOT",))
    check_outputs({"-o": None}, {"DATA": tmp_path / "data", "N": 3, "MANY": ()})
    with pytest.raises(SpeakerGMMError, match="lies inside the input DATA"):
        check_outputs({"-o": tmp_path / "data" / "feats"}, {"DATA": tmp_path / "data"})
    with pytest.raises(SpeakerGMMError, match="holds the input"):
        check_outputs({"-o": tmp_path}, {"MANY": [tmp_path / "x", tmp_path / "data"]})


@pytest.mark.parametrize("command", [
    ["train-ubm", "{feats}", "-c", "2", "-n", "1", "-o", "{out}/ubm.npz"],
    ["train-channel", "{feats}", "--ubm", "{root}/ubm.npz", "-r", "2", "-n", "1", "-o",
     "{out}/channel.npz"],
    ["score", "{root}/trials", "--enroll", "{feats}", "--test", "{feats}", "--ubm",
     "{root}/ubm.npz", "-o", "{out}/scores"],
])
def test_an_output_in_a_missing_folder_names_the_output(feats, tmp_path, command):
    """A file output whose folder does not exist is refused before any work, naming the -o
    path (train-channel failed after training; train-ubm's first checkpoint named its
    hidden file). Folder outputs (extract, stats) are created with their parents."""
    root, _, archive = feats
    out = tmp_path / "no" / "such" / "folder"
    args = [a.format(feats=archive, root=root, out=out) for a in command]
    line = refused(args, str(out), roots=[root, tmp_path])
    assert ".resume" not in line and ".tmp" not in line


@pytest.mark.parametrize("command", ["extract", "stats", "extract-ivectors"])
def test_a_second_writer_of_one_output_folder_is_refused(command, work, tmp_path):
    """Two processes writing one archive at once left it corrupt or incomplete, both exiting
    0 (issue 25): the second is refused with one line while the first holds the lock, and
    runs once it is gone."""
    from speakergmm._io import output_lock

    out = tmp_path / "out"
    args = {"extract": ["extract", work / "data", out, "--audio-root", work, "-q"],
            "stats": ["stats", work / "feats", "--ubm", work / "ubm.npz", "-q", "-o", out],
            }.get(command)
    if args is None:  # extract-ivectors: an extractor of the work folder's UBM first
        ivector = tmp_path / "ivector.npz"
        made = CliRunner().invoke(main, [str(a) for a in [
            "train-ivector", work / "feats", "--ubm", work / "ubm.npz", "-r", 2, "-n", 1,
            "-o", ivector]])
        assert made.exit_code == 0, made.output
        args = ["extract-ivectors", work / "feats", "--ubm", work / "ubm.npz", "--extractor",
                ivector, "-q", "-o", out]
    with output_lock(out):
        refused(args, str(out), "another process is writing", roots=[work, out])
    done = CliRunner().invoke(main, [str(a) for a in args])
    assert done.exit_code == 0, done.output


def test_an_output_that_is_a_link_or_a_device_is_refused(feats, tmp_path):
    """One policy (issue 25): outputs are replaced whole, so an -o that is a symbolic link
    (to an unrelated file, or a folder output linked to another archive) or not a regular
    file (a device: /dev/full took "wrote 450 scores") is refused, naming what it is."""
    root, data, archive = feats
    trials, a, b, cal = _score_files(tmp_path)
    unrelated = tmp_path / "unrelated.txt"
    unrelated.write_text("keep me\n")
    os.symlink(unrelated, tmp_path / "link")
    refused(["apply-calibration", cal, a, "-o", tmp_path / "link"], "symbolic link",
            str(unrelated), roots=[tmp_path])
    os.symlink(archive, tmp_path / "feats-link")
    refused(["extract", data, tmp_path / "feats-link", "--audio-root", root], "symbolic link",
            roots=[root, tmp_path])
    if os.path.exists("/dev/full"):
        refused(["apply-calibration", cal, a, "-o", "/dev/full"], "not a regular file",
                roots=[tmp_path])
