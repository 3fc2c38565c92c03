import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from speakergmm.data.datadir import DataDir, write_data_dir
from speakergmm.errors import ArchiveError
from speakergmm.frontend.archive import extract_archive, read_features
from speakergmm.frontend.features import FeatureConfig

from conftest import corpus, make_data_dir


def test_extract_and_read(tmp_path):
    data = make_data_dir(tmp_path)
    summary = extract_archive(data, tmp_path / "feats", audio_root=tmp_path)
    assert (summary.utterances, summary.extracted, summary.skipped, summary.failed) == (9, 9, 0, {})
    assert summary.hours == pytest.approx(9 / 3600, rel=1e-3)
    assert 0.5 < summary.vad_kept < 1.0
    feats = read_features(tmp_path / "feats")
    assert isinstance(feats, Mapping) and len(feats) == 9
    assert sorted(feats) == [f"spk{s}-u{u}" for s in range(3) for u in range(3)]
    x = feats["spk1-u2"]
    assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == 60
    assert feats.num_frames("spk1-u2") == x.shape[0]
    assert feats.config == FeatureConfig()
    assert summary.frames == sum(feats.num_frames(u) for u in feats)
    on_disk = json.loads((tmp_path / "feats" / "summary.json").read_text())
    assert on_disk["utterances"] == 9 and on_disk["failed"] == {}
    with pytest.raises(KeyError):
        feats["nobody"]


def test_read_features_is_lazy(tmp_path, monkeypatch):
    data = make_data_dir(tmp_path, n_spk=2)
    extract_archive(data, tmp_path / "feats", audio_root=tmp_path, batch_size=3)
    loaded = []
    real_load = np.load
    monkeypatch.setattr(np, "load", lambda *a, **k: loaded.append((a[0], k)) or real_load(*a, **k))
    feats = read_features(tmp_path / "feats")
    assert len(feats) == 6 and loaded == []
    x = feats["spk0-u1"]
    assert len(loaded) == 1 and loaded[0][1]["mmap_mode"] == "r"  # mapped, not read whole
    assert isinstance(x, np.ndarray) and not isinstance(x, np.memmap)
    assert len(list((tmp_path / "feats" / "feats").glob("part-*.npy"))) == 2


def test_utterances_are_stacked_in_part_files(tmp_path):
    data = make_data_dir(tmp_path, n_spk=2)
    extract_archive(data, tmp_path / "feats", audio_root=tmp_path, batch_size=4)
    index = (tmp_path / "feats" / "feats.index").read_text().splitlines()
    assert len(index) == 6 and index[0].startswith("spk0-u0 feats/part-")
    feats = read_features(tmp_path / "feats")
    counts = dict(line.split() for line in
                  (tmp_path / "feats" / "utt2num_frames").read_text().splitlines())
    for utt in feats:
        assert feats[utt].shape[0] == int(counts[utt]) == feats.num_frames(utt)


def test_parallel_equals_serial(tmp_path):
    data = make_data_dir(tmp_path)
    extract_archive(data, tmp_path / "f1", audio_root=tmp_path, executor=1)
    extract_archive(data, tmp_path / "f2", audio_root=tmp_path, executor=2)
    a, b = read_features(tmp_path / "f1"), read_features(tmp_path / "f2")
    assert list(a) == list(b)
    for utt in a:
        np.testing.assert_array_equal(a[utt], b[utt])


def test_failures_are_listed_not_dropped(tmp_path):
    data = make_data_dir(tmp_path, bad=("spk0-u0", "spk2-u1"))
    summary = extract_archive(data, tmp_path / "feats", audio_root=tmp_path, executor=2)
    assert set(summary.failed) == {"spk0-u0", "spk2-u1"}
    assert "unreadable audio" in summary.failed["spk0-u0"]
    assert "no speech" in summary.failed["spk2-u1"]
    listed = (tmp_path / "feats" / "failed").read_text().splitlines()
    assert [line.split()[0] for line in listed] == ["spk0-u0", "spk2-u1"]
    assert "spk2-u1" in listed[1] and "no speech" in listed[1]
    assert "failed: spk0-u0" in str(summary)
    feats = read_features(tmp_path / "feats")
    assert len(feats) == 7 and "spk0-u0" not in feats


def test_resume_after_interruption(tmp_path):
    data = make_data_dir(tmp_path)
    out = tmp_path / "feats"
    calls = []

    def interrupt_after_two_batches(n):
        calls.append(n)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_archive(data, out, audio_root=tmp_path, batch_size=2,
                        progress=interrupt_after_two_batches)
    # no index yet: reading the archive says it is incomplete
    with pytest.raises(ArchiveError, match="incomplete feature archive"):
        read_features(out)
    # a temporary file left by a killed worker: never read, removed on resume
    (out / "feats" / ".part-abc.npy.x1.tmp").write_bytes(b"partial")
    # a part file written by a run killed before it logged it: not used, removed at the end
    (out / "feats" / "part-unlogged.npy").write_bytes(b"whatever")
    parts_before = {p.name: p.stat().st_mtime_ns for p in (out / "feats").glob("part-*.npy")
                    if p.name != "part-unlogged.npy"}
    assert len(parts_before) == 2
    summary = extract_archive(data, out, audio_root=tmp_path)
    assert (summary.skipped, summary.extracted) == (4, 5)
    assert not list((out / "feats").glob(".*.tmp"))
    assert not (out / "feats" / "part-unlogged.npy").exists()
    for name, mtime in parts_before.items():
        assert (out / "feats" / name).stat().st_mtime_ns == mtime  # not redone
    feats = read_features(out)
    assert len(feats) == 9
    assert summary.hours == pytest.approx(9 / 3600, rel=1e-3)
    fresh = tmp_path / "fresh"
    extract_archive(data, fresh, audio_root=tmp_path)
    for utt, x in read_features(fresh).items():
        np.testing.assert_array_equal(feats[utt], x)
    again = extract_archive(data, out, audio_root=tmp_path)
    assert (again.skipped, again.extracted) == (9, 0)


def test_features_without_journal_entry_are_redone(tmp_path):
    """A run killed between writing a part file and logging its utterances."""
    data = make_data_dir(tmp_path, n_spk=1)
    out = tmp_path / "feats"
    extract_archive(data, out, audio_root=tmp_path)
    lines = (out / ".journal").read_text().splitlines()
    (out / ".journal").write_text("\n".join(lines[:2]) + "\n" + lines[2][:5])  # cut last line
    summary = extract_archive(data, out, audio_root=tmp_path)
    assert (summary.skipped, summary.extracted) == (2, 1)
    assert len(read_features(out)) == 3


def test_config_mismatch_is_refused(tmp_path):
    data = make_data_dir(tmp_path, n_spk=1)
    extract_archive(data, tmp_path / "feats", audio_root=tmp_path)
    with pytest.raises(ArchiveError, match="another feature config.*n_mfcc: 20 -> 13"):
        extract_archive(data, tmp_path / "feats", audio_root=tmp_path,
                        config=FeatureConfig(n_mfcc=13))


def test_not_an_archive(tmp_path):
    with pytest.raises(ArchiveError, match="not a feature archive"):
        read_features(tmp_path)


def test_corrupt_feature_file(tmp_path):
    data = make_data_dir(tmp_path, n_spk=1)
    extract_archive(data, tmp_path / "feats", audio_root=tmp_path)
    part = next((tmp_path / "feats" / "feats").glob("part-*.npy"))
    part.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ArchiveError, match="cannot read features"):
        read_features(tmp_path / "feats")["spk0-u0"]


def test_relative_paths_resolve_against_cwd_by_default(tmp_path, monkeypatch):
    data = make_data_dir(tmp_path, n_spk=1)
    monkeypatch.chdir(tmp_path)
    summary = extract_archive(data, tmp_path / "feats")
    assert summary.failed == {}


# --- the shared corpora (skipped when ../shared is absent) ------------------------------

def _fsdd_data_dir(root: Path, out: Path) -> Path:
    wav, utt2spk = {}, {}
    for path in sorted((root / "recordings").glob("*.wav")):
        digit, spk, idx = path.stem.split("_")
        utt = f"{spk}-{digit}-{int(idx):02d}"
        wav[utt], utt2spk[utt] = str(path), spk
    write_data_dir(out, DataDir(wav_scp=wav, utt2spk=utt2spk))
    return out


def test_extract_fsdd(tmp_path):
    root = corpus("fsdd")
    data = _fsdd_data_dir(root, tmp_path / "data")
    summary = extract_archive(data, tmp_path / "feats", config=FeatureConfig.preset("telephone"),
                              executor=2)
    assert summary.utterances == 3000 and summary.failed == {}
    assert 0.3 < summary.hours < 0.6
    assert 0.6 < summary.vad_kept < 0.98
    feats = read_features(tmp_path / "feats")
    assert len(feats) == 3000
    x = feats["george-0-00"]
    assert x.shape[1] == 60 and np.isfinite(x).all()


def test_extract_speechocean762_train(speechocean_train_feats):
    summary, path = speechocean_train_feats
    assert summary.utterances == 2500 and summary.failed == {}
    assert 2.5 < summary.hours < 3.2
    assert 0.5 < summary.vad_kept < 0.9
    feats = read_features(path)
    assert len(feats) == 2500
    x = feats["000010011"]
    assert x.shape[1] == 60 and np.isfinite(x).all()
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-4)


def test_an_archive_indexed_by_feats_scp_is_read_with_a_note_and_updated(tmp_path):
    """Issue 21: the own index was named feats.scp, Kaldi's index, which blocked reading
    Kaldi data directories; archives of earlier versions are still read, with a note, and
    extracting into one again gives it the new index."""
    from speakergmm.errors import SpeakerGMMWarning

    data = make_data_dir(tmp_path, n_spk=2)
    extract_archive(data, tmp_path / "feats", audio_root=tmp_path)
    want = {u: x for u, x in read_features(tmp_path / "feats").items()}
    (tmp_path / "feats" / "feats.index").rename(tmp_path / "feats" / "feats.scp")
    with pytest.warns(SpeakerGMMWarning, match="feats.scp .*rename that file feats.index"):
        old = read_features(tmp_path / "feats")
    assert sorted(old) == sorted(want)
    for utt, x in want.items():
        np.testing.assert_array_equal(old[utt], x)
    extract_archive(data, tmp_path / "feats", audio_root=tmp_path)
    assert (tmp_path / "feats" / "feats.index").is_file()
    assert not (tmp_path / "feats" / "feats.scp").exists()
