import subprocess
import sys

from click.testing import CliRunner

from speakergmm import __version__, read_features
from speakergmm.cli import main

from test_archive import make_data_dir


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_python_dash_m():
    out = subprocess.run([sys.executable, "-m", "speakergmm", "--help"], capture_output=True,
                         text=True, check=True)
    assert "extract" in out.stdout and "validate-data-dir" in out.stdout


def test_extract_ok(tmp_path):
    data = make_data_dir(tmp_path)
    result = CliRunner().invoke(main, ["extract", str(data), str(tmp_path / "feats"),
                                       "--audio-root", str(tmp_path), "-j", "2"])
    assert result.exit_code == 0, result.output
    assert "utterances: 9 (9 extracted, 0 already done, 0 failed)" in result.output
    assert "kept by VAD" in result.output
    assert len(read_features(tmp_path / "feats")) == 9


def test_extract_failures_exit_nonzero_unless_skip_bad(tmp_path):
    data = make_data_dir(tmp_path, bad=("spk1-u2",))
    args = ["extract", str(data), str(tmp_path / "feats"), "--audio-root", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "failed: spk1-u2: spk1-u2: no speech" in result.output
    assert "1 utterance(s) failed" in result.output
    result = CliRunner().invoke(main, args + ["--skip-bad"])
    assert result.exit_code == 0
    assert "8 already done, 1 failed" in result.output


def test_extract_with_preset_and_json_config(tmp_path):
    data = make_data_dir(tmp_path, n_spk=1, sr=8000)
    result = CliRunner().invoke(main, ["extract", str(data), str(tmp_path / "f8"),
                                       "--audio-root", str(tmp_path), "--config", "telephone"])
    assert result.exit_code == 0, result.output
    assert read_features(tmp_path / "f8").config.sample_rate == 8000
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"n_mfcc": 13, "delta_order": 1}')
    result = CliRunner().invoke(main, ["extract", str(data), str(tmp_path / "f13"),
                                       "--audio-root", str(tmp_path), "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert read_features(tmp_path / "f13")["spk0-u0"].shape[1] == 26


def test_errors_are_one_line_exit_2(tmp_path):
    data = make_data_dir(tmp_path, n_spk=1)
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"n_mfcc": 99}')
    result = CliRunner().invoke(main, ["extract", str(data), str(tmp_path / "f"),
                                       "--config", str(cfg)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("speakergmm: error:")
    assert "cfg.json" in lines[0] and "n_mfcc" in lines[0]
    assert "Traceback" not in result.output
    (data / "utt2spk").write_text("broken-line-without-speaker\n")
    result = CliRunner().invoke(main, ["extract", str(data), str(tmp_path / "f")])
    assert result.exit_code == 2 and "utt2spk" in result.output


def test_debug_shows_traceback(tmp_path):
    data = make_data_dir(tmp_path, n_spk=1)
    (data / "utt2spk").write_text("broken\n")
    result = CliRunner().invoke(main, ["--debug", "extract", str(data), str(tmp_path / "f")])
    assert result.exit_code != 0 and result.exception is not None

