"""Fuzzing every parser (issue 14): whatever a file holds, reading it returns a value or
raises the documented error (a :class:`~speakergmm.errors.SpeakerGMMError` naming the
file), never anything else; and through the CLI, a refusal is one line with exit status 2.

The text strategies mix the tokens each format is made of (ids, numbers of every kind,
labels, paths, pipes, separators) with arbitrary Unicode and bytes, so that examples reach
past the first check. CI runs the default profile; a longer run::

    python -m pytest tests/fuzz --hypothesis-profile=long      # 20,000 examples per test
"""

from __future__ import annotations

import json
import sqlite3
import string
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from speakergmm.errors import SpeakerGMMError

pytestmark = pytest.mark.filterwarnings("ignore")
_FILE = settings(suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])

TOKENS = st.sampled_from([
    "spk1", "spk1-utt1", "utt2", "a", "ß", "日本", "-", "--x", "1", "0", "-1", "0.5", "1e3",
    "nan", "inf", "-inf", "1e999", "0x10", "target", "nontarget", "True", "|", "cat x.wav |",
    "x.wav", "/abs/x.flac", "../up.wav", "\\", '"', "'", "#", ";", "\x00", "\x1b[31m", "\ufeff",
    "\u2028", "\u00a0", "\r", "12345678901234567890", ".", "..", "seg", "m", "f",
])
SEPARATORS = st.sampled_from([" ", "  ", "\t", "\n", "\r\n", " \n", "\n\n", "\v", "\f"])
TEXT = st.one_of(
    st.lists(st.one_of(TOKENS, SEPARATORS), max_size=40).map("".join),
    st.text(max_size=200),
    st.text(alphabet=string.printable, max_size=200),
)
CONTENT = st.one_of(TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")),
                    st.binary(max_size=200))


def _write(folder: Path, name: str, content: bytes) -> Path:
    path = folder / name
    path.write_bytes(content)
    return path


def _documented(fn, *args, names=None, **kwargs):
    """Call ``fn``: a value, or a SpeakerGMMError naming ``names`` (the file), which the
    CLI prints as one line (its control characters escaped: ids come from the files)."""
    from speakergmm.cli.app import _one_line

    try:
        return fn(*args, **kwargs)
    except SpeakerGMMError as exc:
        message = str(exc)
        assert message and (names is None or str(names) in message), repr(message)
        line = _one_line(message)
        assert "\n" not in line and "\x1b" not in line and line.isprintable(), repr(line)
        return None


# --- data directories, trial lists, maps, scores ------------------------------------------

DATA_FILES = ("wav.scp", "utt2spk", "segments", "utt2dur", "spk2gender")


@_FILE
@given(files=st.dictionaries(st.sampled_from(DATA_FILES), CONTENT, min_size=1))
def test_data_directories(tmp_path, files):
    from speakergmm.data.datadir import read_data_dir
    from speakergmm.data.validate import validate_data_dir

    with tempfile.TemporaryDirectory(dir=tmp_path) as d:
        for name, content in files.items():
            _write(Path(d), name, content)
        data = _documented(read_data_dir, d, names=d)
        problems = validate_data_dir(d)  # reports, never raises
        assert all(p.message for p in problems)
        if data is not None:
            for utt in data.utterances:
                _documented(data.audio_of, utt, None, names=d)


@_FILE
@given(content=CONTENT)
def test_trial_lists_enroll_maps_kaldi_maps_and_scores(tmp_path, content):
    from speakergmm.data.scores import read_scores
    from speakergmm.data.textmap import read_kaldi_map
    from speakergmm.data.trials import read_enroll_map, read_trials

    with tempfile.TemporaryDirectory(dir=tmp_path) as d:
        path = _write(Path(d), "list", content)
        trials = _documented(read_trials, path, names=path)
        if trials is not None:
            assert len(trials.enroll) == len(trials.test) > 0
        _documented(read_enroll_map, path, names=path)
        for multi, n_values in ((False, 1), (True, None), (False, 2)):
            _documented(read_kaldi_map, path, multi=multi, n_values=n_values, names=path)
        scores = _documented(read_scores, path, names=path)
        if scores is not None:
            assert all(isinstance(v, float) for v in scores.values())


# --- feature configs and model metadata ----------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)
CONFIG_KEYS = ["sample_rate", "n_fft", "n_mels", "n_mfcc", "fmin", "fmax", "window",
               "frame_length_ms", "frame_shift_ms", "preemphasis", "lifter", "delta_order",
               "delta_width", "vad", "vad_threshold_db", "vad_floor_db", "vad_context",
               "norm", "norm_window", "min_speech_frames"]
CONFIG_VALUES = st.one_of(st.integers(-10, 100_000), st.floats(allow_nan=True),
                          st.sampled_from(["hann", "hamming", "kaiser", "energy", "none",
                                           "cmvn", "cmn", "warp", "", "16000"]),
                          st.none(), st.booleans(), JSON)


@_FILE
@given(config=st.one_of(JSON, st.dictionaries(st.sampled_from(CONFIG_KEYS), CONFIG_VALUES,
                                              max_size=6)))
def test_feature_configs(tmp_path, config):
    from speakergmm.frontend.config import FeatureConfig

    got = _documented(FeatureConfig.from_json, json.dumps(config))
    if got is not None:  # accepted: then it round-trips, and makes features or says why
        assert FeatureConfig.from_json(got.to_json()) == got


@_FILE
@given(content=CONTENT)
def test_feature_config_files(tmp_path, content):
    from speakergmm.frontend.config import FeatureConfig

    with tempfile.TemporaryDirectory(dir=tmp_path) as d:
        path = _write(Path(d), "config.json", content)
        _documented(FeatureConfig.load, path, names=path)


ARRAYS = st.sampled_from(["weights", "means", "variances"])


@_FILE
@given(metadata=JSON, drop=st.lists(ARRAYS, max_size=1),
       shapes=st.dictionaries(ARRAYS, st.lists(st.integers(0, 3), max_size=3), max_size=2),
       values=st.sampled_from([0.5, 0.0, -1.0, np.nan, np.inf, 1e300, 1e-300]),
       dtype=st.sampled_from(["<f8", "<f4", "<i4", "|b1", ">f8", "<c16", "<U3"]))
def test_model_files(tmp_path, metadata, drop, shapes, values, dtype):
    from speakergmm.gmm.mixture import DiagGMM

    rng = np.random.default_rng(0)
    arrays = {"weights": np.full(2, 0.5), "means": rng.standard_normal((2, 3)),
              "variances": np.ones((2, 3))}
    for key, shape in shapes.items():
        arrays[key] = np.full(shape, values).astype(dtype)
    for key in drop:
        arrays.pop(key)
    header = {"format": "speakergmm.diaggmm", "format_version": 1,
              "library_version": "0", "metadata": metadata}
    with tempfile.TemporaryDirectory(dir=tmp_path) as d:
        path = Path(d) / "model.npz"
        np.savez(path, **arrays, metadata=np.array(json.dumps(header)))
        model = _documented(DiagGMM.load, path, names=path)
        if model is not None:
            assert np.isfinite(model.means).all() and (model.variances > 0).all()


# --- store rows --------------------------------------------------------------------------

BLOBS = st.one_of(st.binary(max_size=64), st.none(), st.integers(-2**63, 2**63 - 1),
                  st.text(max_size=8),
                  st.floats())


@pytest.fixture(scope="module")
def store_file(tmp_path_factory):
    """A real store of one speaker (the work fixture's UBM), to corrupt row by row."""
    from speakergmm.gmm.adapt import SpeakerModel
    from speakergmm.gmm.mixture import DiagGMM
    from speakergmm.gmm.stats import GMMStats
    from speakergmm.store import SpeakerStore

    rng = np.random.default_rng(0)
    ubm = DiagGMM(np.full(2, 0.5), rng.standard_normal((2, 3)), np.ones((2, 3)))
    stats = ubm.accumulate(rng.standard_normal((50, 3)).astype(np.float32))
    assert isinstance(stats, GMMStats)
    path = tmp_path_factory.mktemp("store") / "store.db"
    store = SpeakerStore(path)
    store.enroll("spk", SpeakerModel(stats=stats, ubm_fingerprint=ubm.fingerprint()), ubm,
                 seconds=1.0, utterances=1)
    store.close()
    return path, ubm


@_FILE
@given(column=st.sampled_from(["relevance", "adapt", "stat_n", "stat_f", "stat_s", "stat_llk",
                               "frames", "utterances", "seconds", "created", "updated"]),
       value=BLOBS)
def test_store_rows(tmp_path, store_file, column, value):
    import shutil

    from speakergmm.store import SpeakerStore

    source, ubm = store_file
    with tempfile.TemporaryDirectory(dir=tmp_path) as d:
        path = Path(d) / "store.db"
        shutil.copy(source, path)
        conn = sqlite3.connect(path)
        try:
            conn.execute(f"UPDATE speakers SET {column} = ?", (value,))
            conn.commit()
        except sqlite3.IntegrityError:  # NOT NULL: SQLite itself keeps such rows out
            assume(False)
        finally:
            conn.close()
        store = SpeakerStore(path)
        try:
            _documented(store.list, names=path)
            _documented(store.model, "spk", names=path)
            _documented(store.parameters, ubm, names=path)
        finally:
            store.close()
