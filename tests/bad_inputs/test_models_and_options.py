"""Model files, feature configs and options (issue 14): each bad one is refused with one
line naming the file or option, the value and the fix, exit status 2, nothing written."""

import json
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from speakergmm import _io
from speakergmm.cli import main
from speakergmm.errors import ModelError
from speakergmm.frontend.config import FeatureConfig

from conftest import refused


def _resave(src, dst, metadata=None, **arrays):
    """A copy of the UBM ``src`` with its metadata or arrays replaced."""
    with np.load(src, allow_pickle=False) as npz:
        contents = {k: npz[k] for k in npz.files}
    header = json.loads(str(contents["metadata"]))
    if metadata is not None:
        header["metadata"] = metadata
    contents["metadata"] = np.array(json.dumps(header))
    contents.update(arrays)
    np.savez(dst, **contents)
    return dst


def _ubm_meta(work):
    with np.load(work / "ubm.npz", allow_pickle=False) as npz:
        return json.loads(str(npz["metadata"]))["metadata"]


@pytest.mark.parametrize("edit, says", [
    (lambda m: ["a", "list"], "metadata is a list"),
    (lambda m: {**m, "feature_config": "window"}, "JSON object of settings"),
    (lambda m: {**m, "feature_config": {**m["feature_config"], "window": "povey"}},
     "window 'povey'"),
    (lambda m: {**m, "feature_config": {**m["feature_config"], "n_mfcc": "20"}},
     "n_mfcc must be an integer"),
    (lambda m: {**m, "feature_config": {**m["feature_config"], "vad_threshold_db": None}},
     "vad_threshold_db must be a finite number"),
])
def test_ubm_metadata(work, tmp_path, edit, says):
    bad = _resave(work / "ubm.npz", tmp_path / "bad.npz", metadata=edit(_ubm_meta(work)))
    for args in (["info", bad],
                 ["stats", work / "feats", "--ubm", bad, "-o", tmp_path / "stats"],
                 ["score", work / "trials", "--enroll", work / "feats", "--test", work / "feats",
                  "--ubm", bad, "-o", tmp_path / "scores"]):
        refused(args, str(bad), says, roots=[tmp_path, work])


def test_extreme_but_finite_parameters_blame_the_model(work, tmp_path):
    with np.load(work / "ubm.npz") as npz:
        variances = npz["variances"].copy()
    variances[1, 2] = 1e-300
    bad = _resave(work / "ubm.npz", tmp_path / "bad.npz", variances=variances)
    line = refused(["stats", work / "feats", "--ubm", bad, "-o", tmp_path / "stats"],
                   str(bad), "too extreme", roots=[tmp_path, work])
    assert "features" not in line.split("unnormalised")[0]


def test_a_zip_bomb_is_not_decompressed(work, tmp_path):
    bad = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bad, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("means.npy", "w", force_zip64=True) as fh:
            block = bytes(16 << 20)
            for _ in range(20):  # 320 MB of zeros, stored in a few hundred KB
                fh.write(block)
    refused(["info", bad], str(bad), "would decompress", roots=[tmp_path])


def test_the_total_size_is_checked_from_the_directory(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    np.savez(path, a=np.zeros(1000))
    monkeypatch.setattr(_io, "NPZ_MAX_BYTES", 4000)
    with pytest.raises(ModelError, match="would take"):
        _io.read_npz(path, ("a",), format_name="x", format_version=1)


@pytest.mark.parametrize("config, says", [
    ({"n_mfcc": "13"}, "n_mfcc must be an integer"),
    ({"window": "povey"}, "window 'povey'"),
    ({"vad_threshold_db": float("nan")}, "vad_threshold_db must be a finite number"),
    ({"norm_window": True}, "norm_window must be an integer or null"),
    (["n_mfcc", 13], "JSON object of settings"),
    ("{", "not valid JSON"),
    (b'{"n_mfcc": 13\xff}', "byte 13 is not UTF-8"),  # found by tests/fuzz
    # issue 25: NaN features with exit 0, or every utterance failing with exit 1
    ({"n_mels": 100_000}, "mel bands over 20-7600 Hz are narrower"),
    ({"lifter": -5}, "lifter must be 0"), ({"lifter": 1e308}, "lifter must be 0"),
    ({"n_fft": 2 ** 26}, "n_fft must be at most 65536"),
    ({"frame_shift_ms": 0.01}, "under one sample"),
])
def test_extract_config(work, tmp_path, config, says):
    path = tmp_path / "config.json"
    if isinstance(config, bytes):
        path.write_bytes(config)
    else:
        path.write_text(config if isinstance(config, str) else json.dumps(config))
    refused(["extract", work / "data", tmp_path / "feats", "--config", path, "--audio-root",
             work], says, roots=[tmp_path, work])


def test_feature_config_types_in_the_api():
    with pytest.raises(Exception, match="sample_rate must be an integer"):
        FeatureConfig(sample_rate=16000.0)
    assert FeatureConfig(fmax=None).fmax is None and FeatureConfig(lifter=22).lifter == 22


@pytest.mark.parametrize("option", [["--threshold", "nan"], ["--threshold", "inf"],
                                    ["--prior", "nan"]])
def test_non_finite_numbers_on_the_command_line(work, tmp_path, option):
    refused(["verify", "spk0", work / "audio" / "spk0-u0.wav", "--store", tmp_path / "s.db",
             *option], option[0], "not a finite number", roots=[tmp_path, work])


def test_top_c_above_the_number_of_components(work, tmp_path):
    refused(["score", work / "trials", "--enroll", work / "feats", "--test", work / "feats",
             "--ubm", work / "ubm.npz", "--top-c", "5", "-o", tmp_path / "scores"], "--top-c",
            "1..4, got 5", roots=[tmp_path, work])


def test_the_product_path_with_fewer_components_than_the_default_top_c(work, tmp_path):
    """A UBM of 4 components and the product path's top-5: scored in full (top-C with
    C >= K is the full LLR), not a traceback."""
    audio, store = work / "audio", tmp_path / "s.db"
    for args in (["enroll", "spk0", audio / "spk0-u0.wav"],
                 ["enroll", "spk1", audio / "spk1-u0.wav"],
                 ["verify", "spk0", audio / "spk0-u1.wav"]):
        r = CliRunner().invoke(main, [str(a) for a in args] + ["--ubm", str(work / "ubm.npz"),
                                                               "--store", str(store)])
        assert r.exit_code in (0, 1), r.output  # verify: 1 = rejected
        assert "topc" in r.output or args[0] == "enroll"


def test_a_scores_file_that_is_not_utf8(work, tmp_path):
    scores = tmp_path / "scores"
    scores.write_bytes(b"spk0-u0 spk1-u1 1.0\nspk0-u0 spk0-u1 \xff\xfe2.0\n")
    trials = tmp_path / "trials"
    trials.write_text("spk0-u0 spk1-u1 nontarget\nspk0-u0 spk0-u1 target\n")
    refused(["calibrate", scores, "--trials", trials, "-o", tmp_path / "cal.json"],
            f"{scores}:2", "UTF-8", roots=[tmp_path, work])


def test_an_empty_data_directory(tmp_path):
    (tmp_path / "d").mkdir()
    for name in ("wav.scp", "utt2spk"):
        (tmp_path / "d" / name).write_text("")
    refused(["extract", tmp_path / "d", tmp_path / "feats"], "utt2spk", "no utterances",
            roots=[tmp_path])


def test_an_archive_of_another_feature_config(work, tmp_path):
    """(The replay reported exit status 1 here; it is 2, with the archive named.)"""
    config = tmp_path / "c.json"
    config.write_text('{"n_mfcc": 13}')
    r = CliRunner().invoke(main, ["extract", str(work / "data"), str(tmp_path / "feats13"),
                                  "--audio-root", str(work), "--config", str(config), "-q"])
    assert r.exit_code == 0, r.output
    for jobs in ("1", "2"):
        refused(["score", work / "trials", "--enroll", work / "feats", "--test",
                 tmp_path / "feats13", "--ubm", work / "ubm.npz", "--top-c", "2", "-j", jobs,
                 "-o", tmp_path / "scores"], str(tmp_path / "feats13"),
                "another feature config", roots=[tmp_path, work])


@pytest.fixture(scope="module")
def vectors(work, tmp_path_factory):
    """Two i-vector extractors of one UBM (other seeds), each one's vectors of the work
    archive, and a back-end trained on the first's."""
    root = tmp_path_factory.mktemp("vectors")
    for name, seed in (("a", 0), ("b", 1)):
        for args in (["train-ivector", work / "feats", "--ubm", work / "ubm.npz", "-r", "3",
                      "-n", "2", "--seed", seed, "-o", root / f"{name}.npz"],
                     ["extract-ivectors", work / "feats", "--ubm", work / "ubm.npz",
                      "--extractor", root / f"{name}.npz", "-o", root / f"iv-{name}", "-q"]):
            result = CliRunner().invoke(main, [str(a) for a in args])
            assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["train-plda", str(root / "iv-a"), "--lda", "2",
                                       "-o", str(root / "plda.npz")])
    assert result.exit_code == 0, result.output
    return root


@pytest.mark.parametrize("role", ["--enroll", "--test", "--cohort"])
@pytest.mark.parametrize("backend", ["plda", "cosine"])
def test_vectors_of_another_extractor_are_refused(work, vectors, tmp_path, role, backend):
    """i-vectors of another extractor (same dimension: their axes mean other things) were
    scored through a back-end trained on the first's, exit 0."""
    given = {"--enroll": vectors / "iv-a", "--test": vectors / "iv-a"}
    if role == "--cohort":
        given["--cohort"] = vectors / "iv-b"
    else:
        given[role] = vectors / "iv-b"
    args = ["score", work / "trials", "--backend", backend, "--plda", vectors / "plda.npz",
            "-o", tmp_path / "scores"]
    for option, path in given.items():
        args += [option, path]
    if role == "--cohort":
        args += ["--norm", "snorm"]
    refused(args, str(vectors / "iv-b"), "plda.npz was trained on those of extractor",
            "train-plda", roots=[tmp_path, vectors, work])


def test_top_c_with_another_method_is_refused(work, tmp_path):
    refused(["score", work / "trials", "--enroll", work / "feats", "--test", work / "feats",
             "--ubm", work / "ubm.npz", "--method", "full", "--top-c", "3", "-o",
             tmp_path / "scores"], "--top-c applies to --method topc", roots=[tmp_path, work])


def _labelled(tmp_path, n_target, n_nontarget, swapped=False):
    rng = np.random.default_rng(0)
    trials, scores = tmp_path / "key", tmp_path / "scores"
    rows = [(f"m{i}", f"t{i}", True) for i in range(n_target)] + \
        [(f"m{i}", f"x{i}", False) for i in range(n_nontarget)]
    trials.write_text("".join(f"{m} {t} {'target' if y else 'nontarget'}\n" for m, t, y in rows))
    scores.write_text("".join(f"{m} {t} {(2.0 if y != swapped else -2.0) + rng.normal():.3f}\n"
                              for m, t, y in rows))
    return trials, scores


@pytest.mark.parametrize("n_target, n_nontarget", [(2, 2), (9, 100), (100, 29)])
def test_calibrating_on_too_few_trials_says_so(tmp_path, n_target, n_nontarget):
    """A calibration or fusion of fewer than 10 target or 30 non-target trials is written
    (the user's development set is what it is) with a note that its decisions are not to be
    trusted; 2 trials gave a calibration of slope -13 in silence."""
    trials, scores = _labelled(tmp_path, n_target, n_nontarget)
    for args in (["calibrate", scores, "--trials", trials, "-o", tmp_path / "cal.json"],
                 ["fuse", scores, scores, "--trials", trials, "-o", tmp_path / "fus.json"]):
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        notes = [line for line in result.stderr.splitlines() if "note:" in line]
        assert len(notes) == 1 and f"only {n_target} target and {n_nontarget} non-target" \
            in notes[0] and "before trusting" in notes[0], result.stderr


def test_calibrating_scores_that_rank_the_wrong_way_is_refused(tmp_path):
    trials, scores = _labelled(tmp_path, 20, 60, swapped=True)
    refused(["calibrate", scores, "--trials", trials, "-o", tmp_path / "cal.json"],
            str(scores), "target trials score lower than non-target", roots=[tmp_path])
    trials, scores = _labelled(tmp_path, 20, 60)
    result = CliRunner().invoke(main, ["calibrate", str(scores), "--trials", str(trials), "-o",
                                       str(tmp_path / "cal.json")])
    assert result.exit_code == 0, result.output


def test_too_many_components_for_the_frames(work, tmp_path):
    refused(["train-ubm", work / "feats", "-c", "100000", "-o", tmp_path / "ubm.npz"],
            "components (fewer than 10 per component): use at most", roots=[tmp_path, work])
