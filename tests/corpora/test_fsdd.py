import zipfile

import pytest
from click.testing import CliRunner

from speakergmm.cli import main
from speakergmm.corpora import corpus_module
from speakergmm.corpora.fsdd import download_fsdd, prepare_fsdd, verify_fsdd
from speakergmm.data.datadir import read_data_dir
from speakergmm.data.trials import read_enroll_map, read_trials
from speakergmm.data.validate import validate_data_dir
from speakergmm.errors import SpeakerGMMError

from conftest import corpus


def test_prepare_protocol(tmp_path):
    root = corpus("fsdd")
    written = prepare_fsdd(root, tmp_path / "out").paths
    assert set(written) == {"ubm", "enroll", "dev", "test", "enroll_map", "trials", "dev_trials"}
    sizes = {name: len(read_data_dir(written[name]).utt2spk) for name in ("ubm", "enroll", "test")}
    assert sizes == {"ubm": 1800, "enroll": 300, "test": 600}
    for name in ("ubm", "enroll", "test"):
        assert validate_data_dir(written[name], audio_root=root) == []
    ubm = set(read_data_dir(written["ubm"]).utt2spk)
    test = read_data_dir(written["test"]).utt2spk
    assert not ubm & set(test)
    assert "george-7-40" in test and "george-7-39" in ubm
    enroll = read_enroll_map(written["enroll_map"])
    assert len(enroll) == 6 and all(len(v) == 50 for v in enroll.values())
    trials = read_trials(written["trials"])
    assert len(trials) == 3600 and trials.is_target.sum() == 600
    dev = read_trials(written["dev_trials"])
    assert len(dev) == 1800 and dev.is_target.sum() == 300
    assert not set(dev.test) & set(trials.test) and not set(dev.test) & ubm
    for e, t, target in zip(trials.enroll[:50], trials.test[:50], trials.is_target[:50]):
        assert target == (test[t] == e)


def test_verify_reports_missing_and_altered_files(tmp_path):
    (tmp_path / "recordings").mkdir()
    (tmp_path / "recordings" / "0_george_0.wav").write_bytes(b"x")
    with pytest.raises(SpeakerGMMError, match="2999 of 3000 recordings missing"):
        verify_fsdd(tmp_path)
    with pytest.raises(SpeakerGMMError, match="no 'recordings' folder"):
        verify_fsdd(tmp_path / "nowhere")


def test_download_from_an_archive_verifies_checksums(tmp_path):
    root = corpus("fsdd")
    archive = tmp_path / "master.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((root / "recordings").glob("*.wav")):
            zf.write(path, f"free-spoken-digit-dataset-master/recordings/{path.name}")
    target = download_fsdd(tmp_path / "corpus", url=archive.as_uri())
    assert len(list((target / "recordings").glob("*.wav"))) == 3000
    # a damaged archive is refused and leaves nothing behind
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(bad, "w") as dst:
        for i, name in enumerate(src.namelist()):
            dst.writestr(name, b"RIFF" if i == 7 else src.read(name))
    with pytest.raises(SpeakerGMMError, match="checksum mismatch"):
        download_fsdd(tmp_path / "corpus2", url=bad.as_uri())
    assert not (tmp_path / "corpus2" / "recordings").exists()
    assert list((tmp_path / "corpus2").iterdir()) == []


def test_download_failure_is_clear(tmp_path):
    with pytest.raises(SpeakerGMMError, match="could not download FSDD"):
        download_fsdd(tmp_path / "c", url=(tmp_path / "absent.zip").as_uri())


def test_cli_prepare_and_unknown_corpus(tmp_path):
    result = CliRunner().invoke(main, ["prepare", "nocorpus", str(tmp_path), str(tmp_path / "o")])
    assert result.exit_code == 2 and "unknown corpus 'nocorpus'" in result.output
    with pytest.raises(SpeakerGMMError):
        corpus_module("timit2")
    root = corpus("fsdd")
    result = CliRunner().invoke(main, ["prepare", "fsdd", str(root), str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "trials" in result.output


def test_committed_manifests_match_prepare(tmp_path):
    from conftest import REPO

    written = prepare_fsdd(corpus("fsdd"), tmp_path / "out").paths
    assert written
    committed = REPO / "data_manifests" / "fsdd"
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            want = committed / path.relative_to(tmp_path / "out")
            assert path.read_bytes() == want.read_bytes()
