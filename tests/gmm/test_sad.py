import itertools

import numpy as np
import pytest

from speakergmm.errors import ModelError, ParameterError
from speakergmm.gmm.sad import (
    DETECTOR_FEATURES,
    SpeechDetector,
    detector_features,
    labelled_mixture,
    training_examples,
    viterbi_speech,
)

from conftest import speechlike

CONFIG = DETECTOR_FEATURES["wideband"]


def _brute_force(llr, penalty):
    best, arg = -np.inf, None
    for path in itertools.product((0, 1), repeat=len(llr)):
        p = np.array(path)
        total = float(np.sum(llr[p == 1])) - penalty * int(np.sum(p[1:] != p[:-1]))
        if total > best + 1e-12:
            best, arg = total, p
    return best, arg


@pytest.mark.parametrize("seed", range(20))
def test_viterbi_finds_the_best_path(seed):
    rng = np.random.default_rng(seed)
    llr = rng.normal(0, 3, int(rng.integers(1, 11)))
    penalty = float(rng.uniform(0, 6))
    best, _ = _brute_force(llr, penalty)
    path = viterbi_speech(llr, penalty=penalty)
    total = llr[path].sum() - penalty * np.sum(path[1:] != path[:-1])
    assert total == pytest.approx(best, abs=1e-9)


def test_viterbi_limits():
    llr = np.random.default_rng(0).normal(0, 1, 500)
    np.testing.assert_array_equal(viterbi_speech(llr, penalty=0.0), llr > 0)
    one = viterbi_speech(llr + 0.5, penalty=1e9)
    assert one.all() or not one.any()
    assert viterbi_speech(np.zeros(0), penalty=1.0).shape == (0,)
    with pytest.raises(ParameterError, match="penalty"):
        viterbi_speech(llr, penalty=-1.0)


def test_labelled_mixture_marks_pauses_as_non_speech():
    rng = np.random.default_rng(1)
    recs = [speechlike(16000, seconds=1.0, seed=s) for s in range(3)]
    y, speech = labelled_mixture(recordings=recs, config=CONFIG, rng=rng, pause=(0.5, 0.5))
    assert len(y) == 3 * 16000 + 4 * 8000
    assert speech.shape == (CONFIG.n_frames(len(y)),)
    hop = CONFIG.hop_length
    assert not speech[:8000 // hop - 2].any()          # the first pause
    assert not speech[-(8000 // hop - 2):].any()       # the last
    assert 0.5 < speech.mean() < 0.75                  # 3 s of 4, less the recordings' own


def _examples(seed, n=6):
    recs = [speechlike(16000, seconds=1.5, seed=seed * 100 + i) for i in range(n)]
    return list(training_examples(recs, config=CONFIG, seed=seed, per_mixture=2,
                                  conditions=("clean", "noise", "level")))


def test_training_examples_are_seeded_and_labelled():
    a, b = _examples(3), _examples(3)
    assert len(a) == 3
    for (ya, ma), (yb, mb) in zip(a, b):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(ma, mb)
        assert ma.shape == (CONFIG.n_frames(len(ya)),) and 0 < ma.mean() < 1
    with pytest.raises(ParameterError, match="unknown conditions"):
        next(training_examples([np.zeros(10)] * 6, config=CONFIG, conditions=("music",)))


@pytest.fixture(scope="module")
def detector():
    examples = [e for seed in range(4) for e in _examples(seed)]
    return SpeechDetector.fit(examples, config=CONFIG, n_components=4, n_iterations=4)


def test_detector_finds_speech_in_noise_the_energy_vad_keeps(detector):
    """Held-out mixtures in white noise at 5 dB: the energy VAD keeps every pause; the
    detector, trained on its own mixtures, keeps few of them and most of the speech."""
    from speakergmm.frontend.augment import add_noise, coloured_noise
    from speakergmm.frontend.vad import energy_vad, frame_energy_db

    rng = np.random.default_rng(7)
    recs = [speechlike(16000, seconds=1.5, seed=900 + i) for i in range(2)]
    y, ref = labelled_mixture(recordings=recs, config=CONFIG, rng=rng)
    z = add_noise(y=y, noise=coloured_noise(n=len(y), slope=0.0, rng=rng), snr_db=5.0, rng=rng)
    found = detector.detect(y=z, sr=16000)
    energy = energy_vad(energy_db=frame_energy_db(y=z, hop_length=160, win_length=400))
    assert found.shape == ref.shape
    false_alarm = np.mean(found[~ref])
    assert np.mean(energy[~ref]) > 0.9
    assert false_alarm < 0.3 and np.mean(found[ref]) > 0.7


def test_detect_resamples(detector):
    y = speechlike(8000, seconds=1.0, seed=5)
    assert detector.detect(y=y, sr=8000).shape == (CONFIG.n_frames(16000),)


def test_features_are_level_blind():
    y = speechlike(16000, seconds=1.0, seed=2)
    np.testing.assert_allclose(detector_features(y=0.1 * y, config=CONFIG),
                               detector_features(y=y, config=CONFIG), atol=1e-3)


def test_round_trip_and_damaged_files(detector, tmp_path):
    path = tmp_path / "sad.npz"
    detector.save(path)
    again = SpeechDetector.load(path)
    assert again.fingerprint() == detector.fingerprint()
    y = speechlike(16000, seconds=1.0, seed=11)
    np.testing.assert_array_equal(again.detect(y=y, sr=16000), detector.detect(y=y, sr=16000))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="bad.npz"):
        SpeechDetector.load(tmp_path / "bad.npz")
    detector.speech.save(tmp_path / "gmm.npz")
    with pytest.raises(ModelError, match="format"):
        SpeechDetector.load(tmp_path / "gmm.npz")


def test_fit_refuses_bad_labels():
    (y, mask), *_ = _examples(1)
    with pytest.raises(ParameterError, match="labels for"):
        SpeechDetector.fit([(y, mask[:-3])], config=CONFIG, n_components=2)
    with pytest.raises(ParameterError, match="too few frames"):
        SpeechDetector.fit([(y, mask)], config=CONFIG, n_components=64)


def test_models_must_match_the_front_end(detector):
    with pytest.raises(ModelError, match="dimensional"):
        SpeechDetector(detector.speech, detector.nonspeech,
                       config=DETECTOR_FEATURES["wideband"].__class__(n_mfcc=13))


def test_train_sad_command_equals_the_library(tmp_path):
    """`speakergmm train-sad` writes what train_speech_detector makes; info describes it."""
    from click.testing import CliRunner

    from speakergmm.cli import main
    from speakergmm.gmm.sad import train_speech_detector

    from conftest import make_data_dir

    data = make_data_dir(tmp_path, n_spk=3, n_utt=3)
    out = tmp_path / "sad.npz"
    result = CliRunner().invoke(main, ["train-sad", str(data), "-o", str(out), "-c", "2",
                                       "--audio-root", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    made = SpeechDetector.load(out)
    same = train_speech_detector(data, audio_root=tmp_path, n_components=2)
    assert made.fingerprint() == same.fingerprint()
    info = CliRunner().invoke(main, ["info", str(out)])
    assert info.exit_code == 0 and "speech detector" in info.output


@pytest.mark.parametrize("band, rate", [("wideband", 16000), ("telephone", 8000)])
def test_bundled_detectors_load(band, rate):
    from speakergmm.pretrained import load_speech_detector

    detector = load_speech_detector(band)
    assert detector.config.sample_rate == rate
    assert detector.config == DETECTOR_FEATURES[band]
    with pytest.raises(ParameterError, match="no speech detector"):
        load_speech_detector("fullband")
