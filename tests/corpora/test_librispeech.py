import hashlib
import io
import tarfile
import urllib.error
import urllib.request

import numpy as np
import pytest

from speakergmm.corpora import librispeech as ls
from speakergmm.corpora._download import OPENSLR_HOSTS
from speakergmm.corpora.librispeech import (
    download_librispeech,
    prepare_librispeech,
    verify_librispeech,
)
from speakergmm.data.datadir import read_data_dir
from speakergmm.data.trials import read_enroll_map, read_trials
from speakergmm.errors import SpeakerGMMError

from conftest import write_audio


def fake_librispeech(root, subsets=("train-clean-100", "test-clean"), speakers=3, utts=8):
    """The real layout: <subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac and the
    chapter's <speaker>-<chapter>.trans.txt."""
    y = (0.1 * np.sin(np.arange(1600) / 5)).astype(np.float32)
    for k, subset in enumerate(subsets):
        for s in range(speakers):
            spk = str(100 * (k + 1) + s)
            for chapter in ("1001", "2002"):
                names = [f"{spk}-{chapter}-{u:04d}" for u in range(utts // 2)]
                for name in names:
                    write_audio(root / subset / spk / chapter / f"{name}.flac", y, 16000)
                (root / subset / spk / chapter / f"{spk}-{chapter}.trans.txt").write_text(
                    "".join(f"{name} SOME WORDS\n" for name in names))
    return root


def test_prepare_librispeech(tmp_path):
    root = fake_librispeech(tmp_path / "LibriSpeech")
    written = prepare_librispeech(root, tmp_path / "out").paths
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
    # the S-norm cohort: each UBM speaker's first 5 utterances (sorted ids)
    cohort = read_data_dir(written["cohort"])
    assert cohort.spk2utt["101"] == ["101-1001-0000", "101-1001-0001", "101-1001-0002",
                                     "101-1001-0003", "101-2002-0000"]
    assert cohort.speakers == ubm.speakers and len(cohort.utt2spk) == 3 * 5
    assert {u: cohort.wav_scp[u] for u in cohort.utt2spk} == {u: ubm.wav_scp[u]
                                                              for u in cohort.utt2spk}
    assert "S-norm cohort (``cohort/``)" in (tmp_path / "out" / "README").read_text()
    # no dev-clean: no calibration, and the README says so
    assert not {"cal", "cal_enroll_map", "cal_trials"} & set(written)
    assert not (tmp_path / "out" / "cal_trials").exists()
    assert (tmp_path / "out" / "README").read_text().startswith("calibration: none (no "
                                                                "dev-clean/ folder")


def test_prepare_librispeech_with_dev_clean(tmp_path):
    root = fake_librispeech(tmp_path / "LibriSpeech",
                            subsets=("train-clean-100", "test-clean", "dev-clean"))
    out = tmp_path / "out"
    written = prepare_librispeech(root, out).paths
    assert (out / "README").read_text().startswith("calibration: dev-clean (3 speakers)\n")
    cal = read_data_dir(written["cal"])
    assert cal.speakers == ["300", "301", "302"] and len(cal.utt2spk) == 24
    assert cal.wav_scp["300-2002-0003"] == "dev-clean/300/2002/300-2002-0003.flac"
    cal_map = read_enroll_map(written["cal_enroll_map"])
    assert cal_map["301"] == ["301-1001-0000", "301-1001-0001", "301-1001-0002",
                              "301-1001-0003", "301-2002-0000"]
    cal_trials = read_trials(written["cal_trials"])
    assert len(cal_trials) == 3 * 9 and cal_trials.is_target.sum() == 9
    assert set(cal_trials.enroll) == set(cal_map)
    assert set(cal_trials.test) == set(cal.utt2spk) - {u for us in cal_map.values() for u in us}
    # disjoint from the UBM and the evaluation
    trials = read_trials(written["trials"])
    assert not set(cal.speakers) & (set(read_data_dir(written["ubm"]).speakers)
                                    | set(trials.enroll))
    # prepared again without dev-clean: the calibration files do not linger
    prepare_librispeech(fake_librispeech(tmp_path / "L2"), out)
    assert not any((out / name).exists() for name in ("cal", "cal_enroll_map", "cal_trials"))
    assert (out / "README").read_text().startswith("calibration: none")


def test_missing_subset(tmp_path):
    root = fake_librispeech(tmp_path / "L", subsets=("train-clean-100",))
    with pytest.raises(SpeakerGMMError, match=r"no test-clean/ folder; point at the "
                                              r"LibriSpeech root \(the folder that holds "
                                              r"train-clean-100/ and test-clean/, and dev-clean/ "
                                              r"for calibration if you have it\), or download "
                                              r"it with 'speakergmm download librispeech DIR'$"):
        prepare_librispeech(root, tmp_path / "out")
    with pytest.raises(SpeakerGMMError, match="no test-clean/ folder"):
        verify_librispeech(root)


def test_verify_checks_what_prepare_uses_by_default(tmp_path):
    """train-clean-100 and test-clean are required, dev-clean (calibration) checked when
    present, as prepare_librispeech treats them."""
    assert verify_librispeech(fake_librispeech(tmp_path / "L2")) == tmp_path / "L2"
    root = fake_librispeech(tmp_path / "L3", subsets=("train-clean-100", "test-clean",
                                                     "dev-clean"))
    assert verify_librispeech(root) == root
    (root / "dev-clean" / "300" / "1001" / "300-1001.trans.txt").unlink()
    with pytest.raises(SpeakerGMMError, match="dev-clean/300/1001: no 300-1001.trans.txt"):
        verify_librispeech(root)
    assert ls.REQUIRED == ("train-clean-100", "test-clean")
    assert set(ls.SUBSETS.values()) == set(ls.MD5)  # the default download, all known


def test_verify_finds_an_incomplete_chapter(tmp_path):
    root = fake_librispeech(tmp_path / "L")
    assert verify_librispeech(root, ["train-clean-100", "test-clean"]) == root
    (root / "test-clean" / "201" / "2002" / "201-2002-0001.flac").unlink()
    with pytest.raises(SpeakerGMMError, match=r"test-clean/201/2002: 1 utterance\(s\) of "
                                              r"201-2002.trans.txt have no FLAC file "
                                              r"\(e.g. 201-2002-0001\)"):
        verify_librispeech(root, ["test-clean"])
    (root / "train-clean-100" / "100" / "1001" / "100-1001.trans.txt").unlink()
    with pytest.raises(SpeakerGMMError, match="no 100-1001.trans.txt"):
        verify_librispeech(root, ["train-clean-100"])


# --------------------------------------------------------------------------- download


def archives(tmp_path, subsets=("train-clean-100", "test-clean", "dev-clean")):
    """subset -> <subset>.tar.gz bytes as OpenSLR packs them: LibriSpeech/<subset>/... and
    LibriSpeech/README.TXT."""
    src = fake_librispeech(tmp_path / "src" / "LibriSpeech", subsets=subsets, speakers=2,
                           utts=6)
    (src / "README.TXT").write_text("LibriSpeech\n")
    payloads = {}
    for subset in subsets:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            tf.add(src / subset, arcname=f"LibriSpeech/{subset}")
            tf.add(src / "README.TXT", arcname="LibriSpeech/README.TXT")
        payloads[subset] = buf.getvalue()
    return payloads


def serve(monkeypatch, payloads, *, down=()):
    """urllib's opener replaced: <mirror>/<subset>.tar.gz serves payloads[subset], except on
    the hosts in ``down``; the MD5 sums expected are those of the payloads."""
    asked = []

    def urlopen(url, timeout=None):
        asked.append(url)
        if any(f"//{host}/" in url for host in down):
            raise urllib.error.URLError("no route to host")
        return io.BytesIO(payloads[url.rsplit("/", 1)[1].removesuffix(".tar.gz")])

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(ls, "MD5", {**ls.MD5, **{s: hashlib.md5(p).hexdigest()
                                                  for s, p in payloads.items()}})
    return asked


def left_over(target):
    return sorted(p.name for p in target.iterdir()) if target.exists() else []


def test_download_checks_md5_unpacks_and_prepares(tmp_path, monkeypatch):
    asked = serve(monkeypatch, archives(tmp_path), down=("www.openslr.org",))
    target = tmp_path / "corpus"
    assert download_librispeech(target) == target
    mirror = "https://us.openslr.org/resources/12"
    assert asked == [url for s in ("train-clean-100", "test-clean", "dev-clean")
                     for url in (f"https://www.openslr.org/resources/12/{s}.tar.gz",
                                 f"{mirror}/{s}.tar.gz")]
    assert left_over(target) == ["README.TXT", "dev-clean", "test-clean", "train-clean-100"]
    assert (target / "dev-clean" / "301" / "2002" / "301-2002-0002.flac").is_file()
    written = prepare_librispeech(target, tmp_path / "out").paths
    assert read_trials(written["cal_trials"]).is_target.sum() == 2  # 2 speakers x 1 test
    # already there: verified, not downloaded again
    asked.clear()
    assert download_librispeech(target) == target and asked == []


def test_md5_mismatch_leaves_nothing(tmp_path, monkeypatch):
    payloads = archives(tmp_path, subsets=("test-clean",))
    serve(monkeypatch, payloads)
    monkeypatch.setitem(ls.MD5, "test-clean", "0" * 32)
    target = tmp_path / "corpus"
    mirrors = ", ".join(f"https://{host}/resources/12/test-clean.tar.gz"
                        for host in OPENSLR_HOSTS)
    with pytest.raises(SpeakerGMMError, match=rf"^could not download LibriSpeech "
                                              rf"test-clean.tar.gz \({mirrors}: MD5 of "
                                              rf"test-clean.tar.gz is [0-9a-f]{{32}}, expected "
                                              rf"0{{32}}: damaged, or not the published "
                                              rf"file\); download it by hand from "
                                              rf"https://www.openslr.org/12/"):
        download_librispeech(target, subsets=["test-clean"])
    assert left_over(target) == []


def test_a_mirror_serving_another_file_is_passed_over(tmp_path, monkeypatch):
    payloads = archives(tmp_path, subsets=("test-clean",))
    asked = serve(monkeypatch, payloads)
    good = payloads["test-clean"]

    def urlopen(url, timeout=None):  # the main site serves a truncated copy
        asked.append(url)
        return io.BytesIO(good[: len(good) // 3] if "//www." in url else good)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    target = tmp_path / "corpus"
    download_librispeech(target, subsets=["test-clean"])
    assert asked == [f"https://{host}/resources/12/test-clean.tar.gz"
                     for host in OPENSLR_HOSTS[:2]]
    assert left_over(target) == ["README.TXT", "test-clean"]


def test_existing_subset_is_verified_not_downloaded(tmp_path, monkeypatch):
    payloads = archives(tmp_path, subsets=("test-clean", "dev-clean"))
    asked = serve(monkeypatch, payloads)
    target = tmp_path / "corpus"
    fake_librispeech(target, subsets=("test-clean",), speakers=1, utts=6)
    download_librispeech(target, subsets=["test-clean", "dev-clean"])
    assert asked == ["https://www.openslr.org/resources/12/dev-clean.tar.gz"]
    assert [p.name for p in (target / "test-clean").iterdir()] == ["100"]  # left as it was
    # a present subset that fails verification stops everything before any download
    (target / "dev-clean" / "200" / "1001" / "200-1001-0000.flac").unlink()
    asked.clear()
    with pytest.raises(SpeakerGMMError, match=r"no FLAC file.*; delete .*dev-clean to download "
                                              r"it again"):
        download_librispeech(target, subsets=["train-clean-100", "dev-clean"])
    assert asked == [] and not (target / "train-clean-100").exists()


def test_download_errors(tmp_path, monkeypatch):
    with pytest.raises(SpeakerGMMError, match="no MD5 sum known for LibriSpeech subset "
                                              "'train-other-500'"):
        download_librispeech(tmp_path / "t", subsets=["train-other-500"])
    payloads = archives(tmp_path, subsets=("test-clean",))
    serve(monkeypatch, payloads, down=OPENSLR_HOSTS)
    with pytest.raises(SpeakerGMMError, match=r"could not download LibriSpeech "
                                              r"test-clean.tar.gz .*no route to host.*"
                                              r"openslr.org/12/"):
        download_librispeech(tmp_path / "t", subsets=["test-clean"])
    assert left_over(tmp_path / "t") == []
    # the MD5 matches but the archive holds another subset
    wrong = archives(tmp_path / "w", subsets=("dev-clean",))["dev-clean"]
    serve(monkeypatch, {"test-clean": wrong})
    with pytest.raises(SpeakerGMMError, match=r"test-clean.tar.gz: the archive holds "
                                              r"LibriSpeech, not a LibriSpeech/test-clean/"):
        download_librispeech(tmp_path / "t", subsets=["test-clean"])
    assert left_over(tmp_path / "t") == []
