import hashlib
import io
import urllib.error
import urllib.request
import warnings

import numpy as np
import pytest

from speakergmm.corpora import voxceleb1
from speakergmm.corpora.voxceleb1 import (
    calibration_trials,
    download_voxceleb1,
    prepare_voxceleb1,
    utt_id,
    verify_trial_list,
)
from speakergmm.data.datadir import DataDir, read_data_dir
from speakergmm.data.trials import read_enroll_map, read_trials
from speakergmm.errors import SpeakerGMMError

from conftest import write_audio

DEV_SPEAKERS = [f"id{10001 + i}" for i in range(8)]


def fake_voxceleb1(root, with_lists=True):
    """8 development speakers (id10001-id10008) and 2 test speakers, 2 videos x 2
    utterances each."""
    y = (0.1 * np.sin(np.arange(1600) / 5)).astype(np.float32)
    for spk in (*DEV_SPEAKERS, "id10270", "id10271"):
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
    written = prepare_voxceleb1(root, tmp_path / "out").paths
    ubm = read_data_dir(written["ubm"])
    assert ubm.speakers == DEV_SPEAKERS and len(ubm.utt2spk) == 32
    assert ubm.wav_scp["id10001-abcDEF12345-00001"] == "wav/id10001/abcDEF12345/00001.wav"
    # the S-norm cohort: the first utterance (sorted ids) of each development speaker but
    # the calibration speakers (every 4th, sorted: id10004, id10008)
    cohort = read_data_dir(written["cohort"])
    assert cohort.utt2spk == {f"{s}-abcDEF12345-00001": s for s in DEV_SPEAKERS
                              if s not in ("id10004", "id10008")}
    assert cohort.wav_scp["id10002-abcDEF12345-00001"] == "wav/id10002/abcDEF12345/00001.wav"
    # calibration: per speaker, the first video's 2 utterances enroll (one model each), the
    # second video's 2 test; each model against its own speaker's and the other speaker's
    cal_map = read_enroll_map(written["cal_enroll_map"])
    assert cal_map == {f"{s}-abcDEF12345-0000{n}": [f"{s}-abcDEF12345-0000{n}"]
                       for s in ("id10004", "id10008") for n in (1, 2)}
    cal = read_trials(written["cal_trials"])
    assert list(zip(cal.enroll[:4], cal.test[:4], cal.is_target[:4])) == [
        ("id10004-abcDEF12345-00001", "id10004-xyz_-987654-00001", True),
        ("id10004-abcDEF12345-00001", "id10004-xyz_-987654-00002", True),
        ("id10004-abcDEF12345-00001", "id10008-xyz_-987654-00001", False),
        ("id10004-abcDEF12345-00001", "id10008-xyz_-987654-00002", False)]
    assert (len(cal), int(cal.is_target.sum())) == (16, 8)
    assert set(cal.test) <= set(ubm.utt2spk) and set(cal_map) <= set(ubm.utt2spk)
    readme = (tmp_path / "out" / "README").read_text()
    assert readme.startswith("calibration: 2 of 8 development speakers, 4 models, 8 target and "
                             "8 non-target trials; lists: trials, trials_cleaned\n\n")
    assert "S-norm cohort (``cohort/``" in readme
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
    # one calibration speaker (id10004) is not enough for non-target calibration trials
    (root / "veri_test.txt").write_text("0 id10270/abcDEF12345/00001.wav "
                                        "id10271/xyz_-987654/00002.wav\n")
    for spk in DEV_SPEAKERS[4:]:
        for wav in sorted((root / "wav" / spk).rglob("*.wav")):
            wav.unlink()
    with pytest.raises(SpeakerGMMError, match=r"4 development speaker\(s\) .*needs at least 8"):
        prepare_voxceleb1(root, tmp_path / "o")


def _dev_set(videos_per_speaker, utterances_per_video=2):
    """A data directory of speakers id10001... with the given numbers of videos."""
    wav, utt2spk = {}, {}
    for i, n_videos in enumerate(videos_per_speaker):
        spk = f"id{10001 + i}"
        for v in range(n_videos):
            for n in range(1, utterances_per_video + 1):
                utt = f"{spk}-vid{v:02d}-{n:05d}"
                wav[utt], utt2spk[utt] = f"wav/{spk}/vid{v:02d}/{n:05d}.wav", spk
    return DataDir(wav_scp=wav, utt2spk=utt2spk)


def test_calibration_trials_counts_and_rule():
    """The documented counts for the full corpus (1,211 development speakers, 302 of them
    for calibration) and the documented rule: single-utterance models, target trials
    across videos, non-target trials against the next 4 calibration speakers."""
    data = _dev_set([8 + i % 11 for i in range(1211)])
    speakers = data.speakers[voxceleb1.CAL_EVERY - 1::voxceleb1.CAL_EVERY]
    assert len(speakers) == 302
    enroll_map, trials = calibration_trials(data, speakers)
    n_target = int(trials.is_target.sum())
    assert (len(enroll_map), n_target, len(trials) - n_target) == (1208, 4832, 19328)
    assert all(utts == [model] for model, utts in enroll_map.items())
    video = {u: data.wav_scp[u].split("/")[2] for u in data.utt2spk}
    for model, test, target in zip(trials.enroll, trials.test, trials.is_target):
        assert target == (data.utt2spk[model] == data.utt2spk[test])
        assert video[model] != video[test] or not target
    # the first utterance of videos 1, 3, 5, 7 enroll, of videos 2, 4, 6, 8 test
    first = speakers[0]
    assert [m for m in enroll_map if m.startswith(first)] == [
        f"{first}-vid{v:02d}-00001" for v in (0, 2, 4, 6)]
    assert sorted({t for t in trials.test if t.startswith(first)}) == [
        f"{first}-vid{v:02d}-00001" for v in (1, 3, 5, 7)]
    # the last speaker's impostors wrap around to the first ones
    last = trials.test[trials.enroll == f"{speakers[-1]}-vid00-00001"]
    assert [data.utt2spk[t] for t in last[::4]] == [speakers[-1], *speakers[:4]]


def test_calibration_trials_with_few_videos_or_speakers():
    # 3 videos: enrollment from videos 1 and 3 in turn, test from video 2; one video: the
    # utterances alternate; 2 speakers: each model has one impostor speaker
    data = _dev_set([3, 1], utterances_per_video=5)
    enroll_map, trials = calibration_trials(data, ["id10001", "id10002"])
    assert list(enroll_map) == ["id10001-vid00-00001", "id10001-vid02-00001",
                                "id10001-vid00-00002", "id10001-vid02-00002",
                                "id10002-vid00-00001", "id10002-vid00-00003",
                                "id10002-vid00-00005"]
    own = trials.test[trials.enroll == "id10002-vid00-00001"]
    assert list(own) == ["id10002-vid00-00002", "id10002-vid00-00004",
                         *(f"id10001-vid01-{n:05d}" for n in range(1, 5))]


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
    written = prepare_voxceleb1(root, tmp_path / "out").paths
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


@pytest.mark.parametrize("name, n_trials, n_target", [("veri_test.txt", 37_720, 18_860),
                                                      ("veri_test2.txt", 37_611, 18_802)])
def test_a_list_of_the_documented_size_passes_the_count_check(name, n_trials, n_target):
    """Lists of the sizes the docs give (module docstring, recipe README) are counted right
    by the verifier: accepted on format and counts, then held to the MD5 sum; one trial
    more or a label flipped is refused."""
    line = "{} id10270/x6uYqmx31kE/{:05d}.wav id10271/1gtz-CUIygI/00001.wav\n"
    data = "".join(line.format(int(i < n_target), i % 99_999 + 1) for i in range(n_trials))
    verify_trial_list(name, data.encode(), checksums=False)
    with pytest.raises(SpeakerGMMError, match=f"{name}: MD5 "):
        verify_trial_list(name, data.encode())
    with pytest.raises(SpeakerGMMError, match=f"{n_trials + 1} trials"):
        verify_trial_list(name, (data + line.format(0, 1)).encode(), checksums=False)
    with pytest.raises(SpeakerGMMError, match=f"{n_target - 1} target"):
        verify_trial_list(name, ("0" + data[1:]).encode(), checksums=False)
