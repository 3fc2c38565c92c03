import numpy as np
import pytest

from speakergmm.corpora.librispeech import prepare_librispeech
from speakergmm.datadir import read_data_dir, read_enroll_map, read_trials
from speakergmm.errors import SpeakerGMMError

from conftest import write_audio


def fake_librispeech(root, subsets=("train-clean-100", "test-clean"), speakers=3, utts=8):
    """The real layout: <subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac."""
    y = (0.1 * np.sin(np.arange(1600) / 5)).astype(np.float32)
    for k, subset in enumerate(subsets):
        for s in range(speakers):
            spk = str(100 * (k + 1) + s)
            for c, chapter in enumerate(("1001", "2002")):
                for u in range(utts // 2):
                    name = f"{spk}-{chapter}-{u:04d}"
                    write_audio(root / subset / spk / chapter / f"{name}.flac", y, 16000)
                (root / subset / spk / chapter / f"{spk}-{chapter}.trans.txt").write_text("x\n")
    return root


def test_prepare_librispeech(tmp_path):
    root = fake_librispeech(tmp_path / "LibriSpeech")
    written = prepare_librispeech(root, tmp_path / "out")
    ubm, enroll, test = (read_data_dir(written[k]) for k in ("ubm", "enroll", "test"))
    assert ubm.speakers == ["100", "101", "102"] and len(ubm.utt2spk) == 24
    assert enroll.speakers == test.speakers == ["200", "201", "202"]
    emap = read_enroll_map(written["enroll_map"])
    assert emap["200"] == ["200-1001-0000", "200-1001-0001", "200-1001-0002", "200-1001-0003",
                           "200-2002-0000"]
    assert len(test.utt2spk) == 3 * 3
    trials = read_trials(written["trials"])
    assert len(trials) == 3 * 9 and trials.is_target.sum() == 9
    assert ubm.wav_scp["100-1001-0000"] == "train-clean-100/100/1001/100-1001-0000.flac"


def test_missing_subset(tmp_path):
    root = fake_librispeech(tmp_path / "L", subsets=("train-clean-100",))
    with pytest.raises(SpeakerGMMError, match="no test-clean/ folder"):
        prepare_librispeech(root, tmp_path / "out")
