"""Kaldi feature tables (frontend/kaldi.py) read through kaldi-native-io: files written by
kaldi-native-io itself (float, double and compressed matrices), a Kaldi data directory,
and training on them (issue 21)."""

import builtins

import numpy as np
import pytest

from speakergmm.errors import ArchiveError
from speakergmm.frontend.archive import extract_archive, read_features

from conftest import make_data_dir

kaldi = pytest.importorskip("kaldi_native_io")


def _write_table(path, feats, kind="float"):
    """feats.scp + feats.ark written by kaldi-native-io (Kaldi's own format)."""
    path.mkdir(parents=True, exist_ok=True)
    spec = f"ark,scp:{path}/feats.ark,{path}/feats.scp"
    if kind == "compressed":
        with kaldi.CompressedMatrixWriter(spec) as writer:
            for utt, x in feats.items():
                writer.write(utt, x, kaldi.CompressionMethod.kAutomaticMethod)
        return
    writer_type = kaldi.DoubleMatrixWriter if kind == "double" else kaldi.FloatMatrixWriter
    with writer_type(spec) as writer:
        for utt, x in feats.items():
            writer[utt] = x.astype(np.float64 if kind == "double" else np.float32)


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    data = make_data_dir(root, n_spk=3, n_utt=3)
    extract_archive(data, root / "feats", audio_root=root)
    return root, read_features(root / "feats")


@pytest.mark.parametrize("kind", ["float", "double", "compressed"])
def test_a_kaldi_data_directory_reads_as_written(own, tmp_path, kind):
    from speakergmm.frontend.kaldi import KaldiFeatures, is_kaldi_source

    root, feats = own
    want = dict(feats.items())
    _write_table(tmp_path / "kaldi", want, kind)
    (tmp_path / "kaldi" / "utt2spk").write_text("".join(
        f"{u} {u.split('-')[0]}\n" for u in sorted(want)))
    for source in (tmp_path / "kaldi", f"scp:{tmp_path}/kaldi/feats.scp",
                   f"ark:{tmp_path}/kaldi/feats.ark"):
        assert is_kaldi_source(source)
        got = KaldiFeatures(source)
        assert sorted(got) == sorted(want) and got.dim == feats.config.dim
        for utt, x in want.items():
            y = got[utt]
            assert y.dtype == np.float32 and y.shape == x.shape == (got.num_frames(utt), x.shape[1])
            if kind == "compressed":  # Kaldi's 8/16-bit compression: close, not equal
                assert np.abs(y - x).max() <= 0.01 * (np.abs(x).max() + 1)
            else:
                np.testing.assert_array_equal(y, x)
    assert KaldiFeatures(tmp_path / "kaldi").utt2spk["spk1-u2"] == "spk1"
    assert not is_kaldi_source(root / "feats")  # speakergmm's own archive


def test_a_ubm_trained_from_a_kaldi_feats_scp_equals_the_own_archives(own, tmp_path):
    """The same features through Kaldi's files: the same UBM, bit for bit (the sources
    record only where they came from)."""
    from speakergmm.gmm.ubm import train_ubm
    from speakergmm.sources import open_training_features

    root, feats = own
    _write_table(tmp_path / "kaldi", dict(feats.items()))
    a = train_ubm(open_training_features(root / "feats"), n_components=4, n_iterations=3)
    b = train_ubm(open_training_features(tmp_path / "kaldi"), n_components=4, n_iterations=3)
    for name in ("weights", "means", "variances"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert "feature_config" in a.metadata and "feature_config" not in b.metadata


def test_kaldi_features_are_checked_against_the_model_by_dimension(own, tmp_path, rng):
    from speakergmm.sources import open_features

    from conftest import random_gmm

    _, feats = own
    _write_table(tmp_path / "kaldi", {u: x[:, :13] for u, x in feats.items()})
    ubm = random_gmm(rng, k=4, d=feats.config.dim)
    with pytest.raises(ArchiveError, match="dimension 13, but the UBM takes"):
        open_features(tmp_path / "kaldi", ubm)
    assert len(open_features(tmp_path / "kaldi", random_gmm(rng, k=4, d=13))) == len(feats)


def test_damaged_kaldi_files_and_a_missing_extra_are_one_line(tmp_path, monkeypatch):
    from speakergmm.frontend import kaldi as module
    from speakergmm.frontend.kaldi import KaldiFeatures

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "feats.scp").write_text("u1 /nowhere/feats.ark:3\n")
    with pytest.raises(ArchiveError, match="'u1' cannot be read"):
        KaldiFeatures(tmp_path / "d")
    (tmp_path / "x.ark").write_bytes(b"not an ark")
    with pytest.raises(ArchiveError, match="not a readable Kaldi ark"):
        KaldiFeatures(f"ark:{tmp_path}/x.ark")
    real = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (
        (_ for _ in ()).throw(ImportError(name)) if name == "kaldi_native_io"
        else real(name, *a, **k)))
    with pytest.raises(ArchiveError, match=r"optional extra: pip install -e '.\[kaldi\]'"):
        module.kaldi_io()


def test_the_commands_read_kaldi_features(own, tmp_path):
    """train-ubm, stats and score take a Kaldi data directory or an scp:/ark: specifier."""
    from click.testing import CliRunner

    from speakergmm.cli import main

    root, feats = own
    _write_table(tmp_path / "kaldi", dict(feats.items()))
    (tmp_path / "kaldi" / "utt2spk").write_text("".join(
        f"{u} {u.split('-')[0]}\n" for u in sorted(feats)))
    run = CliRunner().invoke
    result = run(main, ["train-ubm", f"scp:{tmp_path}/kaldi/feats.scp", "-c", "4", "-n", "2",
                        "-o", str(tmp_path / "ubm.npz")])
    assert result.exit_code == 0, result.output
    result = run(main, ["stats", str(tmp_path / "kaldi"), "--ubm", str(tmp_path / "ubm.npz"),
                        "-o", str(tmp_path / "stats")])
    assert result.exit_code == 0, result.output
    (tmp_path / "trials").write_text("spk0 spk0-u2 target\nspk1 spk0-u2 nontarget\n")
    (tmp_path / "enroll_map").write_text("spk0 spk0-u0\nspk1 spk1-u0\n")
    result = run(main, ["score", str(tmp_path / "trials"), "--enroll", str(tmp_path / "kaldi"),
                        "--enroll-map", str(tmp_path / "enroll_map"),
                        "--test", f"ark:{tmp_path}/kaldi/feats.ark",
                        "--ubm", str(tmp_path / "ubm.npz"), "-o", str(tmp_path / "scores")])
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "scores").read_text().splitlines()) == 2
    result = run(main, ["stats", f"scp:{tmp_path}/nowhere.scp", "--ubm",
                        str(tmp_path / "ubm.npz"), "-o", str(tmp_path / "s2")])
    assert result.exit_code == 2 and "no such Kaldi scp file" in result.output


# --- Kaldi output: extract --format kaldi, extract-ivectors --format kaldi -----------------

def test_extract_in_kaldis_format_is_read_by_kaldis_reader_bit_for_bit(own, tmp_path):
    """The ark/scp that extract --format kaldi writes: kaldi-native-io reads the same
    features as the own archive holds (through the scp, and each part ark in sequence);
    speakergmm reads it back with its config; a second run finds everything done."""
    from speakergmm.frontend.kaldi import KaldiFeatures

    root, feats = own
    out = tmp_path / "kfeats"
    summary = extract_archive(root / "data", out, audio_root=root, format="kaldi",
                              batch_size=2, executor=2)
    assert summary.extracted == len(feats) and not (out / "feats.index").exists()
    reader = kaldi.RandomAccessFloatMatrixReader(f"scp:{out}/feats.scp")
    for utt, x in feats.items():
        np.testing.assert_array_equal(reader[utt], x)
    from_parts = {}
    for ark in sorted((out / "feats").glob("part-*.ark")):
        for utt, x in kaldi.SequentialFloatMatrixReader(f"ark:{ark}"):
            from_parts[utt] = np.array(x)
    assert sorted(from_parts) == sorted(feats)
    assert all(line.split()[1].startswith("/")  # absolute, as make_mfcc.sh writes them
               for line in (out / "feats.scp").read_text().splitlines())
    assert (out / "spk2utt").read_text().splitlines()[0] == "spk0 spk0-u0 spk0-u1 spk0-u2"
    back = read_features(out)
    assert isinstance(back, KaldiFeatures) and back.config == feats.config
    assert back.utt2spk == feats.utt2spk
    calls = []
    extract_archive(root / "data", out, audio_root=root, format="kaldi", progress=calls.append)
    assert calls == [len(feats)]
    with pytest.raises(ArchiveError, match="holds features in Kaldi's format"):
        extract_archive(root / "data", out, audio_root=root)
    with pytest.raises(ArchiveError, match="holds features in speakergmm's format"):
        extract_archive(root / "data", root / "feats", audio_root=root, format="kaldi")


def test_a_kaldi_part_without_its_offsets_is_done_again(own, tmp_path):
    """A run killed between a part's ark and its offsets file left the part unfinished:
    the next run redoes its utterances and removes it."""
    root, feats = own
    out = tmp_path / "kfeats"
    extract_archive(root / "data", out, audio_root=root, format="kaldi", batch_size=3)
    victim = sorted((out / "feats").glob("part-*.scp"))[0]
    lost = {line.split()[0] for line in victim.read_text().splitlines()}
    victim.unlink()
    (out / "feats.scp").unlink()
    calls = []
    extract_archive(root / "data", out, audio_root=root, format="kaldi", batch_size=3,
                    progress=calls.append)
    assert calls[0] == len(feats) - len(lost)
    assert not (out / "feats" / victim.name.replace(".scp", ".ark")).exists()
    reader = kaldi.RandomAccessFloatMatrixReader(f"scp:{out}/feats.scp")
    for utt in lost:
        np.testing.assert_array_equal(reader[utt], feats[utt])


@pytest.fixture(scope="module")
def ivectors(own, tmp_path_factory):
    """A small extractor, and its i-vectors in the own format and in Kaldi's."""
    from speakergmm.gmm.ivector import IVectorExtractor, extract_ivectors
    from speakergmm.gmm.ubm import train_ubm
    from speakergmm.sources import open_training_features

    root, feats = own
    ubm = train_ubm(open_training_features(root / "feats"), n_components=4, n_iterations=3)
    extractor = IVectorExtractor.fit(ubm, feats, n_factors=3, n_iterations=2)
    tmp = tmp_path_factory.mktemp("iv")
    mine = extract_ivectors(extractor, feats, tmp / "iv", batch_size=4)
    theirs = extract_ivectors(extractor, feats, tmp / "kiv", batch_size=4, format="kaldi")
    return extractor, mine, theirs


def test_ivectors_in_kaldis_format_are_read_by_kaldis_reader(ivectors):
    from speakergmm.frontend.kaldi import KaldiVectors

    extractor, mine, theirs = ivectors
    assert isinstance(theirs, KaldiVectors) and theirs.dim == mine.dim == 3
    assert theirs.extractor_fingerprint == extractor.fingerprint()
    assert theirs.utt2spk == mine.utt2spk
    reader = kaldi.RandomAccessFloatVectorReader(f"scp:{theirs.path}/ivector.scp")
    for utt in mine:
        np.testing.assert_array_equal(reader[utt], mine[utt])
        np.testing.assert_array_equal(theirs[utt], mine[utt])


def test_kaldis_own_vectors_train_and_score_as_the_own_archive(ivectors, tmp_path):
    """The reverse: vectors a Kaldi tool wrote (no speakergmm header) train the same
    back-end and give the same scores as the own archive of the same vectors."""
    from speakergmm.backend.vectors import VectorBackend
    from speakergmm.batch import score_vector_trials
    from speakergmm.sources import open_vectors

    _, mine, _ = ivectors
    (tmp_path / "k").mkdir()
    with kaldi.FloatVectorWriter(f"ark,scp:{tmp_path}/k/xvector.ark,"
                                 f"{tmp_path}/k/xvector.scp") as writer:
        for utt in mine:
            writer[utt] = mine[utt]
    (tmp_path / "k" / "utt2spk").write_text("".join(
        f"{u} {s}\n" for u, s in sorted(mine.utt2spk.items())))
    theirs = open_vectors(tmp_path / "k")
    assert theirs.extractor_fingerprint is None and len(theirs) == len(mine)
    a = VectorBackend.train(mine, None, n_iterations=3)
    b = VectorBackend.train(theirs, None, n_iterations=3)
    for name in ("mean", "between", "within"):
        np.testing.assert_array_equal(getattr(a.plda, name), getattr(b.plda, name))
    (tmp_path / "trials").write_text("spk0 spk0-u2 target\nspk1 spk0-u2 nontarget\n"
                                     "spk2 spk2-u1 target\n")
    enroll = {"spk0": ["spk0-u0"], "spk1": ["spk1-u0"], "spk2": ["spk2-u0"]}
    _, want = score_vector_trials(tmp_path / "trials", enroll=mine, test=mine, backend=a,
                                  enroll_map=enroll)
    _, got = score_vector_trials(tmp_path / "trials", enroll=tmp_path / "k",
                                 test=f"scp:{tmp_path}/k/xvector.scp", backend=a,
                                 enroll_map=enroll)
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ArchiveError, match="not a readable Kaldi ark of a vector"):
        open_vectors(f"ark:{tmp_path}/k/../trials")


def test_the_commands_write_kaldis_format(own, ivectors, tmp_path):
    from click.testing import CliRunner

    from speakergmm.cli import main

    root, feats = own
    extractor, mine, _ = ivectors
    run = CliRunner().invoke
    result = run(main, ["extract", str(root / "data"), str(tmp_path / "kf"), "--audio-root",
                        str(root), "--format", "kaldi"])
    assert result.exit_code == 0, result.output
    reader = kaldi.RandomAccessFloatMatrixReader(f"scp:{tmp_path}/kf/feats.scp")
    np.testing.assert_array_equal(reader["spk1-u1"], feats["spk1-u1"])
    extractor.ubm.save(tmp_path / "ubm.npz")
    extractor.save(tmp_path / "ivector.npz")
    result = run(main, ["extract-ivectors", str(tmp_path / "kf"), "--ubm",
                        str(tmp_path / "ubm.npz"), "--extractor", str(tmp_path / "ivector.npz"),
                        "--format", "kaldi", "-o", str(tmp_path / "kiv")])
    assert result.exit_code == 0, result.output
    reader = kaldi.RandomAccessFloatVectorReader(f"scp:{tmp_path}/kiv/ivector.scp")
    np.testing.assert_allclose(reader["spk1-u1"], mine["spk1-u1"], rtol=1e-5, atol=1e-6)
    result = run(main, ["train-plda", str(tmp_path / "kiv"), "-n", "2", "-o",
                        str(tmp_path / "plda.npz")])
    assert result.exit_code == 0, result.output
