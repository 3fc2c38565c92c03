import io
import shutil
import tarfile
import urllib.error
import urllib.request

import numpy as np
import pytest

from speakergmm.corpora import speechocean762 as so
from speakergmm.corpora.speechocean762 import (
    download_speechocean762,
    prepare_speechocean762,
    verify_speechocean762,
)
from speakergmm.data.datadir import read_data_dir
from speakergmm.data.trials import read_enroll_map, read_trials
from speakergmm.errors import SpeakerGMMError

from conftest import corpus, write_audio


def test_dev_protocol_on_the_train_half(tmp_path):
    root = corpus("speechocean762")
    written = prepare_speechocean762(root, tmp_path / "out").paths
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
    # a quarter of the background speakers calibrate; they stay out of the cohort
    cohort = read_data_dir(written["cohort"])
    cal_spk = sorted(set(cal.enroll))
    assert cal_spk == ubm.speakers[3::4] and len(cal_spk) == 15
    assert len(cal) == 15 * 15 * 15 and cal.is_target.sum() == 15 * 15
    assert set(cal.test) <= set(ubm.utt2spk) and not set(cal.enroll) & set(trials.enroll)
    assert {ubm.utt2spk[u] for u in cal.test} == set(cal_spk)
    assert sorted(set(cohort.speakers) | set(cal_spk)) == ubm.speakers
    assert not set(cohort.speakers) & set(cal_spk)
    assert set(cohort.utt2spk) <= set(ubm.utt2spk)
    # the three other splits: over all four, every background speaker calibrates once, and
    # each split's cohort is the rest
    splits = [sorted(set(cal.enroll))]
    for j in range(3):
        fold_cal = read_trials(written[f"folds/{j}/cal_trials"])
        fold_map = read_enroll_map(written[f"folds/{j}/cal_enroll_map"])
        fold_cohort = read_data_dir(written[f"folds/{j}/cohort"])
        speakers = sorted(set(fold_cal.enroll))
        assert speakers == ubm.speakers[j::4] == sorted(fold_map)
        assert sorted(fold_cohort.speakers) == sorted(set(ubm.speakers) - set(speakers))
        assert fold_cal.is_target.sum() == 15 * len(speakers)
        assert {ubm.utt2spk[u] for u in fold_cal.test} == set(speakers)
        splits.append(speakers)
    assert sorted(s for split in splits for s in split) == ubm.speakers


def test_dev_mirror_swaps_background_and_evaluation(tmp_path):
    root = corpus("speechocean762")
    dev = prepare_speechocean762(root)
    mirror = prepare_speechocean762(root, tmp_path / "out", mirror=True).paths
    assert (tmp_path / "out" / "README").read_text().startswith("protocol: dev mirror")
    ubm, test = read_data_dir(mirror["ubm"]), read_data_dir(mirror["test"])
    assert len(ubm.speakers) == 62 and len(test.speakers) == 63
    assert set(ubm.speakers) == set(dev.data["enroll"].speakers)
    assert set(test.speakers) == set(dev.data["ubm"].speakers)
    assert read_trials(mirror["trials"]).is_target.sum() == 945
    with pytest.raises(SpeakerGMMError, match="--mirror swaps"):
        prepare_speechocean762(root, background_only=True, mirror=True)


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
    written = prepare_speechocean762(fake, tmp_path / "out").paths
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
            want = committed / path.relative_to(tmp_path / "out")
            assert path.read_bytes() == want.read_bytes()


# --------------------------------------------------------------------------- download


def fake_corpus(root, speakers=("0001", "0005", "0100", "0102"), utts=6):
    """The published layout, small: train/ and test/ (Kaldi lists, paths relative to the
    corpus root) and WAVE/SPEAKERnnnn/<utt>.WAV; two speakers per half."""
    y = (0.1 * np.sin(np.arange(800) / 5)).astype(np.float32)
    halves = {"train": speakers[:2], "test": speakers[2:]}
    for half, spks in halves.items():
        wav, u2s = [], []
        for spk in spks:
            for i in range(utts):
                utt = f"{spk}{i:05d}"
                write_audio(root / "WAVE" / f"SPEAKER{spk}" / f"{utt}.WAV", y, 16000)
                wav.append(f"{utt}\tWAVE/SPEAKER{spk}/{utt}.WAV")
                u2s.append(f"{utt}\t{spk}")
        (root / half).mkdir(parents=True)
        (root / half / "wav.scp").write_text("\n".join(wav) + "\n")
        (root / half / "utt2spk").write_text("\n".join(u2s) + "\n")
        (root / half / "spk2gender").write_text("".join(f"{s}\tf\n" for s in spks))
    (root / "resource").mkdir()
    (root / "resource" / "scores.json").write_text("{}\n")
    return root


def tarball(tmp_path, corpus, *, extra=()):
    """corpus packed as speechocean762/... into a .tar.gz; ``extra`` members (TarInfo,
    bytes) are appended as they are."""
    path = tmp_path / "archive.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        tf.add(corpus, arcname="speechocean762")
        for info, data in extra:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path.read_bytes()


def serve(monkeypatch, payload, *, down=0):
    """urllib's opener replaced: the first ``down`` URLs fail, the others serve payload."""
    asked = []

    def urlopen(url, timeout=None):
        asked.append(url)
        if len(asked) <= down:
            raise urllib.error.URLError("no route to host")
        return io.BytesIO(payload)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return asked


@pytest.fixture
def small(monkeypatch):
    monkeypatch.setattr(so, "SPEAKERS_PER_HALF", 2)
    monkeypatch.setattr(so, "UTTERANCES_PER_HALF", 12)


def left_over(target):
    """What a failed download left in target (it may create target itself, empty)."""
    return sorted(p.name for p in target.iterdir()) if target.exists() else []


def test_download_unpacks_verifies_and_prepares(tmp_path, monkeypatch, small):
    payload = tarball(tmp_path, fake_corpus(tmp_path / "src"))
    asked = serve(monkeypatch, payload, down=1)  # the main site is down: a mirror serves
    root = download_speechocean762(tmp_path / "corpora")
    assert root == tmp_path / "corpora" / "speechocean762"
    assert asked == list(so.URLS[:2])
    assert left_over(tmp_path / "corpora") == ["speechocean762"]  # no temporary folder left
    assert (root / "WAVE" / "SPEAKER0100" / "010000003.WAV").is_file()
    written = prepare_speechocean762(root, tmp_path / "out").paths
    assert (tmp_path / "out" / "README").read_text().startswith("protocol: official")
    assert read_trials(written["trials"]).is_target.sum() == 2
    # already there: verified, not downloaded again
    asked.clear()
    assert download_speechocean762(tmp_path / "corpora") == root and asked == []


def test_incomplete_corpus_leaves_nothing(tmp_path, monkeypatch, small):
    corpus = fake_corpus(tmp_path / "src")
    (corpus / "WAVE" / "SPEAKER0100" / "010000002.WAV").unlink()
    serve(monkeypatch, tarball(tmp_path, corpus))
    with pytest.raises(SpeakerGMMError, match=r"test/wav.scp: 1 audio file\(s\) missing .*"
                                              r"WAVE/SPEAKER0100/010000002.WAV"):
        download_speechocean762(tmp_path / "t")
    assert left_over(tmp_path / "t") == []
    monkeypatch.setattr(so, "UTTERANCES_PER_HALF", 2500)
    serve(monkeypatch, tarball(tmp_path, fake_corpus(tmp_path / "src2")))
    with pytest.raises(SpeakerGMMError, match="2 speakers and 12 utterances, but each half "
                                              "of speechocean762 has 2 and 2500"):
        download_speechocean762(tmp_path / "t")
    assert left_over(tmp_path / "t") == []


def test_unsafe_members_are_refused(tmp_path, monkeypatch, small):
    corpus = fake_corpus(tmp_path / "src")
    outside = tmp_path / "evil"
    for name, kind in ((f"../{outside.name}", tarfile.REGTYPE), (str(outside), tarfile.REGTYPE),
                       ("speechocean762/link", tarfile.SYMTYPE)):
        info = tarfile.TarInfo(name)
        info.type = kind
        data = b"x"
        if kind == tarfile.SYMTYPE:
            info.linkname, data = str(outside), None
        else:
            info.size = 1
        serve(monkeypatch, tarball(tmp_path, corpus, extra=[(info, data)]))
        with pytest.raises(SpeakerGMMError, match="refusing to unpack it"):
            download_speechocean762(tmp_path / "t")
        assert not outside.exists() and left_over(tmp_path / "t") == []


def test_damaged_archive_and_no_mirror(tmp_path, monkeypatch, small):
    payload = tarball(tmp_path, fake_corpus(tmp_path / "src"))
    serve(monkeypatch, payload[: len(payload) // 2])
    with pytest.raises(SpeakerGMMError, match="damaged or incomplete"):
        download_speechocean762(tmp_path / "t")
    assert left_over(tmp_path / "t") == []
    serve(monkeypatch, b"<html>Service Unavailable</html>")
    with pytest.raises(SpeakerGMMError, match=r"^could not download speechocean762 \(" +
                                              ", ".join(so.URLS) + ": not an archive but a "
                                              r"web page .*\); download it by hand"):
        download_speechocean762(tmp_path / "t")
    serve(monkeypatch, payload, down=len(so.URLS))
    with pytest.raises(SpeakerGMMError, match=r"could not download speechocean762 .*no route "
                                              r"to host.*openslr.org/101"):
        download_speechocean762(tmp_path / "t")
    assert left_over(tmp_path / "t") == []
    (tmp_path / "t" / "speechocean762").mkdir()
    with pytest.raises(SpeakerGMMError, match="exists but holds no train/wav.scp"):
        download_speechocean762(tmp_path / "t")


def test_a_bad_archive_from_one_mirror_tries_the_next(tmp_path, monkeypatch, small):
    """The main site answers with a portal page, the first mirror with a cut-short archive
    (no Content-Length to tell): the second mirror's archive is the one unpacked."""
    payload = tarball(tmp_path, fake_corpus(tmp_path / "src"))
    answers = iter([b"<!DOCTYPE html><title>Log in to the network</title>",
                    payload[: len(payload) // 2], payload])
    asked = []
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout=None: asked.append(url) or io.BytesIO(next(answers)))
    root = download_speechocean762(tmp_path / "t")
    assert asked == list(so.URLS[:3]) and verify_speechocean762(root) == root
    assert left_over(tmp_path / "t") == ["speechocean762"]


def test_verify_the_shared_train_half(tmp_path):
    root = corpus("speechocean762")
    with pytest.raises(SpeakerGMMError, match="no test/wav.scp"):
        verify_speechocean762(root)
    fake = tmp_path / "so"
    fake.mkdir()
    (fake / "WAVE").symlink_to(root / "WAVE")
    shutil.copytree(root / "train", fake / "train")
    shutil.copytree(root / "train", fake / "test")
    assert verify_speechocean762(fake) == fake  # the published sizes: 125 x 20 per half


def test_extraction_without_the_data_filter(tmp_path, monkeypatch, small):
    """Pythons before 3.10.12 / 3.11.4 have no tarfile data filter: the member checks alone
    must still refuse what could land outside, and unpack the rest."""
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    corpus = fake_corpus(tmp_path / "src")
    serve(monkeypatch, tarball(tmp_path, corpus))
    root = download_speechocean762(tmp_path / "t")
    assert verify_speechocean762(root) == root
    info = tarfile.TarInfo("speechocean762/../../escape")
    info.size = 1
    serve(monkeypatch, tarball(tmp_path, corpus, extra=[(info, b"x")]))
    with pytest.raises(SpeakerGMMError, match="'..' component"):
        download_speechocean762(tmp_path / "u")
    assert not (tmp_path / "escape").exists() and left_over(tmp_path / "u") == []
