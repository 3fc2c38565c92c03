import numpy as np
import pytest

from speakergmm.corpora.voxceleb1 import prepare_voxceleb1, utt_id
from speakergmm.datadir import read_data_dir, read_enroll_map, read_trials
from speakergmm.errors import SpeakerGMMError

from conftest import write_audio


def fake_voxceleb1(root, with_lists=True):
    y = (0.1 * np.sin(np.arange(1600) / 5)).astype(np.float32)
    for spk in ("id10001", "id10002", "id10270", "id10271"):
        for video in ("abcDEF12345", "xyz_-987654"):
            for n in (1, 2):
                write_audio(root / "wav" / spk / video / f"{n:05d}.wav", y, 16000)
    if with_lists:
        (root / "veri_test.txt").write_text(
            "1 id10270/abcDEF12345/00001.wav id10270/xyz_-987654/00002.wav\n"
            "0 id10270/abcDEF12345/00001.wav id10271/abcDEF12345/00001.wav\n"
            "1 id10271/xyz_-987654/00001.wav id10271/abcDEF12345/00002.wav\n")
        (root / "veri_test2.txt").write_text(
            "1 id10270/abcDEF12345/00001.wav id10270/xyz_-987654/00002.wav\n"
            "0 id10270/abcDEF12345/00001.wav id10271/abcDEF12345/00001.wav\n")
    return root


def test_prepare_voxceleb1(tmp_path):
    root = fake_voxceleb1(tmp_path / "vox1")
    written = prepare_voxceleb1(root, tmp_path / "out")
    ubm = read_data_dir(written["ubm"])
    assert ubm.speakers == ["id10001", "id10002"] and len(ubm.utt2spk) == 8
    assert ubm.wav_scp["id10001-abcDEF12345-00001"] == "wav/id10001/abcDEF12345/00001.wav"
    trials = read_trials(written["trials"])
    assert len(trials) == 3 and list(trials.is_target) == [True, False, True]
    assert trials.enroll[0] == "id10270-abcDEF12345-00001"
    assert len(read_trials(written["trials_cleaned"])) == 2
    emap = read_enroll_map(written["enroll_map"])
    assert emap["id10271-xyz_-987654-00001"] == ["id10271-xyz_-987654-00001"]
    assert set(read_data_dir(written["test"]).utt2spk) == set(trials.test)


def test_errors(tmp_path):
    root = fake_voxceleb1(tmp_path / "v", with_lists=False)
    with pytest.raises(SpeakerGMMError, match="no veri_test.txt or veri_test2.txt"):
        prepare_voxceleb1(root, tmp_path / "o")
    (root / "veri_test.txt").write_text("1 id10270/nope/00001.wav id10270/abcDEF12345/00001.wav\n")
    with pytest.raises(SpeakerGMMError, match="have no audio"):
        prepare_voxceleb1(root, tmp_path / "o")
    assert utt_id("id1/v/00001.wav") == "id1-v-00001"
