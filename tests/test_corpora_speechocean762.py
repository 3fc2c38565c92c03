import shutil

import pytest

from speakergmm.corpora.speechocean762 import prepare_speechocean762
from speakergmm.datadir import read_data_dir, read_enroll_map, read_trials
from speakergmm.errors import SpeakerGMMError

from conftest import corpus


def test_dev_protocol_on_the_train_half(tmp_path):
    root = corpus("speechocean762")
    written = prepare_speechocean762(root, tmp_path / "out")
    assert (tmp_path / "out" / "README").read_text().startswith("protocol: dev")
    ubm = read_data_dir(written["ubm"])
    enroll = read_data_dir(written["enroll"])
    test = read_data_dir(written["test"])
    assert len(ubm.speakers) == 63 and len(enroll.speakers) == 62 == len(test.speakers)
    assert not set(ubm.speakers) & set(test.speakers)
    assert len(enroll.utt2spk) == 310 and len(test.utt2spk) == 930
    emap = read_enroll_map(written["enroll_map"])
    assert all(len(u) == 5 and u == sorted(u) for u in emap.values())
    assert not {u for us in emap.values() for u in us} & set(test.utt2spk)
    trials = read_trials(written["trials"])
    assert len(trials) == 930 * 62 and trials.is_target.sum() == 930
    cal = read_trials(written["cal_trials"])
    assert len(cal) == 63 * 15 * 63 and cal.is_target.sum() == 63 * 15
    assert set(cal.test) <= set(ubm.utt2spk) and not set(cal.enroll) & set(trials.enroll)


def test_official_protocol_when_both_halves_exist(tmp_path):
    """A stand-in corpus root whose test/ half is the train lists of 10 speakers."""
    root = corpus("speechocean762")
    fake = tmp_path / "so"
    fake.mkdir()
    (fake / "WAVE").symlink_to(root / "WAVE")
    shutil.copytree(root / "train", fake / "train")
    data = read_data_dir(root / "train")
    keep = data.speakers[:10]
    (fake / "test").mkdir()
    for name in ("wav.scp", "utt2spk"):
        lines = (root / "train" / name).read_text().splitlines()
        (fake / "test" / name).write_text("\n".join(
            line for line in lines if data.utt2spk[line.split()[0]] in keep) + "\n")
    written = prepare_speechocean762(fake, tmp_path / "out")
    assert (tmp_path / "out" / "README").read_text().startswith("protocol: official")
    assert len(read_data_dir(written["ubm"]).speakers) == 125
    trials = read_trials(written["trials"])
    assert len(trials) == 10 * 15 * 10 and trials.is_target.sum() == 150


def test_not_a_corpus_root(tmp_path):
    with pytest.raises(SpeakerGMMError, match="no train/wav.scp"):
        prepare_speechocean762(tmp_path, tmp_path / "out")


def test_committed_manifests_match_prepare(tmp_path):
    from conftest import REPO

    prepare_speechocean762(corpus("speechocean762"), tmp_path / "out")
    committed = REPO / "data_manifests" / "speechocean762-dev"
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (committed / path.relative_to(tmp_path / "out")).read_bytes()
