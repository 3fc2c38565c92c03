import hashlib
import io
import urllib.error
import urllib.request
import warnings

import numpy as np
import pytest

from speakergmm.corpora import voxceleb1
from speakergmm.corpora.voxceleb1 import (download_voxceleb1, prepare_voxceleb1, utt_id,
                                          verify_trial_list)
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
    # the S-norm cohort: each UBM speaker's first utterance (sorted ids)
    cohort = read_data_dir(written["cohort"])
    assert cohort.utt2spk == {"id10001-abcDEF12345-00001": "id10001",
                              "id10002-abcDEF12345-00001": "id10002"}
    assert cohort.wav_scp["id10002-abcDEF12345-00001"] == "wav/id10002/abcDEF12345/00001.wav"
    assert "S-norm cohort (``cohort/``)" in (tmp_path / "out" / "README").read_text()
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


# --------------------------------------------------------------------------- download

LISTS = {
    "veri_test.txt": b"1 id10270/abcDEF12345/00001.wav id10270/xyz_-987654/00002.wav\n"
                     b"0 id10270/abcDEF12345/00001.wav id10271/abcDEF12345/00001.wav\n"
                     b"1 id10271/xyz_-987654/00001.wav id10271/abcDEF12345/00002.wav\n",
    "veri_test2.txt": b"1 id10270/abcDEF12345/00001.wav id10270/xyz_-987654/00002.wav\n"
                      b"0 id10270/abcDEF12345/00001.wav id10271/abcDEF12345/00001.wav\n",
}


def serve(monkeypatch, files, *, down=()):
    """Replace urllib's opener: URLs ending in a name of ``files`` serve its bytes, URLs
    starting with a prefix in ``down`` fail; every URL asked for is recorded."""
    asked = []

    def urlopen(url, timeout=None):
        asked.append(url)
        if url.startswith(tuple(down)):
            raise urllib.error.URLError("connection refused")
        name = url.rsplit("/", 1)[-1]
        if name not in files:
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)
        return io.BytesIO(files[name])

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return asked


@pytest.fixture
def small_lists(monkeypatch):
    """The published counts and checksums replaced by those of the small LISTS."""
    monkeypatch.setattr(voxceleb1, "EXPECTED", {
        name: (data.count(b"\n"), data.count(b"\n1 ") + data.startswith(b"1 "),
               hashlib.md5(data).hexdigest()) for name, data in LISTS.items()})


def test_download_trial_lists(tmp_path, monkeypatch, small_lists):
    asked = serve(monkeypatch, LISTS)
    with pytest.warns(UserWarning, match=r"audio needs registration.*vox1\.html"):
        root = download_voxceleb1(tmp_path / "vox1")
    assert root == tmp_path / "vox1"
    assert {p.name for p in root.iterdir()} == set(LISTS)
    assert all((root / n).read_bytes() == data for n, data in LISTS.items())
    assert asked == [voxceleb1.TRIAL_URLS[n][0] for n in LISTS]
    # with the audio in place: prepare works, and a second download only verifies
    fake_voxceleb1(root, with_lists=False)
    asked.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        download_voxceleb1(root)
    assert asked == []
    written = prepare_voxceleb1(root, tmp_path / "out")
    assert len(read_trials(written["trials"])) == 3


def test_mirror_is_tried_when_the_site_is_down(tmp_path, monkeypatch, small_lists):
    asked = serve(monkeypatch, LISTS, down=("https://www.robots.ox.ac.uk",))
    with pytest.warns(UserWarning):
        download_voxceleb1(tmp_path)
    assert asked[1] == "https://mm.kaist.ac.kr/datasets/voxceleb/meta/veri_test.txt"
    serve(monkeypatch, LISTS, down=("https://",))
    with pytest.raises(SpeakerGMMError, match=r"could not download veri_test.txt .*connection "
                                              "refused.*by hand"):
        download_voxceleb1(tmp_path / "elsewhere")


def nothing_written(folder):
    return not folder.exists() or list(folder.iterdir()) == []


def test_wrong_line_count_writes_nothing(tmp_path, monkeypatch, small_lists):
    short = dict(LISTS, **{"veri_test2.txt": LISTS["veri_test2.txt"].split(b"\n", 1)[1]})
    serve(monkeypatch, short)
    with pytest.raises(SpeakerGMMError, match=r"veri_test2.txt: 1 trials \(0 target\), but "
                                              r"veri_test2.txt has 2 \(1 target\)"):
        download_voxceleb1(tmp_path / "v")
    # veri_test.txt was fine, but nothing is written unless both lists verify
    assert nothing_written(tmp_path / "v")


def test_malformed_line_writes_nothing(tmp_path, monkeypatch, small_lists):
    page = b"<!DOCTYPE html>\n<title>Sign in</title>\n"
    for bad in (page, LISTS["veri_test.txt"].replace(b"id10271/abcDEF12345/00001.wav",
                                                     b"id10271/abcDEF12345/1.wav")):
        serve(monkeypatch, dict(LISTS, **{"veri_test.txt": bad}))
        with pytest.raises(SpeakerGMMError, match=r"veri_test.txt: line [12] is not '1\|0 "
                                                  "idNNNNN/<video>/NNNNN.wav"):
            download_voxceleb1(tmp_path / "v")
        assert nothing_written(tmp_path / "v")


def test_checksum_mismatch_and_existing_files(tmp_path, monkeypatch, small_lists):
    name = "veri_test2.txt"
    altered = LISTS[name].replace(b"00002.wav\n", b"00003.wav\n")
    serve(monkeypatch, dict(LISTS, **{name: altered}))
    with pytest.raises(SpeakerGMMError, match="MD5 .* differs .*checksums=False"):
        download_voxceleb1(tmp_path / "v")
    assert nothing_written(tmp_path / "v")
    with pytest.warns(UserWarning):
        download_voxceleb1(tmp_path / "v", checksums=False)
    assert (tmp_path / "v" / name).read_bytes() == altered
    # a list already present is verified, not trusted
    with pytest.raises(SpeakerGMMError, match=f"{name}: MD5 .*delete it to download it again"):
        download_voxceleb1(tmp_path / "v")


def test_published_counts():
    assert voxceleb1.EXPECTED["veri_test.txt"][:2] == (37720, 18860)
    assert voxceleb1.EXPECTED["veri_test2.txt"][:2] == (37611, 18802)
    with pytest.raises(SpeakerGMMError, match="3 trials"):
        verify_trial_list("veri_test.txt", LISTS["veri_test.txt"])
