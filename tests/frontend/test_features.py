import dataclasses

import librosa
import numpy as np
import pytest

from speakergmm.errors import FeatureError
from speakergmm.frontend.features import FeatureConfig, deltas, extract_features, mfcc, preemphasis

from conftest import speechlike, tone_bursts

RAW = dict(vad="none", norm="none", delta_order=0)


@pytest.mark.parametrize("preset", ["wideband", "telephone"])
def test_mfcc_equals_direct_librosa(preset):
    cfg = FeatureConfig.preset(preset, **RAW)
    y = speechlike(cfg.sample_rate, seconds=2.0, seed=3)
    ours = extract_features(y=y, sr=cfg.sample_rate, config=cfg)
    zi = [-cfg.preemphasis * (2 * y[0] - y[1])]
    ref = librosa.feature.mfcc(
        y=librosa.effects.preemphasis(y, coef=cfg.preemphasis, zi=zi), sr=cfg.sample_rate,
        n_mfcc=cfg.n_mfcc, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
        win_length=cfg.win_length, window=cfg.window, n_mels=cfg.n_mels, fmin=cfg.fmin,
        fmax=cfg.fmax).T
    assert ours.shape == ref.shape == (1 + len(y) // cfg.hop_length, cfg.n_mfcc)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-3)


def test_mfcc_blocks_do_not_change_result():
    cfg = FeatureConfig(**RAW)
    y = speechlike(16000, seconds=1.5, seed=1)
    # float32 GEMMs of other sizes round differently: equal to float32 precision
    np.testing.assert_allclose(mfcc(y=y, config=cfg, block=7), mfcc(y=y, config=cfg),
                               rtol=1e-5, atol=1e-4)


def test_preemphasis_matches_librosa_with_extrapolated_state():
    y = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    zi = [-0.97 * (2 * y[0] - y[1])]
    np.testing.assert_allclose(preemphasis(y=y, coef=0.97),
                               librosa.effects.preemphasis(y, coef=0.97, zi=zi), atol=1e-6)


def test_deltas_on_a_ramp():
    t = np.arange(20, dtype=np.float64)
    x = np.stack([2.0 * t + 1, -0.5 * t, np.full_like(t, 3.0)], axis=1)
    out = deltas(x, width=5, order=2)
    assert out.shape == (20, 9)
    np.testing.assert_array_equal(out[:, :3], x)
    slope = np.array([2.0, -0.5, 0.0])
    np.testing.assert_allclose(out[2:-2, 3:6], np.tile(slope, (16, 1)), atol=1e-12)
    # edges repeat the first/last frame: (1*(x1-x0) + 2*(x2-x0)) / 10 = 0.5 * slope
    np.testing.assert_allclose(out[0, 3:6], 0.5 * slope, atol=1e-12)
    np.testing.assert_allclose(out[4:-4, 6:9], 0.0, atol=1e-12)
    assert deltas(x, order=0) is x
    assert deltas(x, width=9, order=1).shape == (20, 6)


def test_full_pipeline_shapes_and_normalisation():
    cfg = FeatureConfig()
    y = speechlike(16000, seconds=3.0)
    feats, vad = extract_features(y=y, sr=16000, config=cfg, return_vad=True)
    assert feats.dtype == np.float32 and feats.flags.c_contiguous
    assert feats.shape == (vad.sum(), 60) and vad.size == 1 + len(y) // 160
    assert 0 < vad.sum() < vad.size  # the leading pause is dropped
    np.testing.assert_allclose(feats.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(feats.std(axis=0), 1.0, atol=1e-3)


def test_resamples_when_rates_differ():
    cfg = FeatureConfig(**RAW)
    y8 = speechlike(8000, seconds=1.0)
    feats = extract_features(y=y8, sr=8000, config=cfg)
    assert feats.shape == (1 + 16000 // 160, 20)


def test_digital_silence_is_a_clear_error_not_nan():
    cfg = FeatureConfig()
    with pytest.raises(FeatureError, match=r"utt7: no speech found by VAD \(0 of 101 frames"):
        extract_features(y=np.zeros(16000, np.float32), sr=16000, config=cfg, name="utt7")
    # without VAD too: no frame is selected away, but a recording with no speech at all is
    # refused (the bundled systems, which take every frame, enrolled silence and tones)
    with pytest.raises(FeatureError, match=r"utt7: no speech: its energy stays within 0.0 dB"):
        extract_features(y=np.zeros(16000, np.float32), sr=16000,
                         config=dataclasses.replace(cfg, vad="none"), name="utt7")
    # and the transform itself stays finite on it
    assert np.isfinite(mfcc(y=np.zeros(16000, np.float32), config=cfg)).all()


def test_too_short_is_an_error():
    with pytest.raises(FeatureError, match="too short"):
        extract_features(y=np.ones(500, np.float32), sr=16000, config=FeatureConfig(), name="x")


def test_vad_keeps_bursts_in_the_pipeline():
    y, truth = tone_bursts(16000)
    cfg = FeatureConfig(norm="none")
    feats, vad = extract_features(y=y, sr=16000, config=cfg, return_vad=True)
    frame_truth = truth[np.minimum(np.arange(vad.size) * 160, len(truth) - 1)]
    assert np.mean(vad == frame_truth) > 0.95
    assert feats.shape[0] == vad.sum()


def test_config_json_round_trip(tmp_path):
    cfg = FeatureConfig.preset("telephone", norm="warp", norm_window=201, lifter=22.0)
    assert FeatureConfig.from_json(cfg.to_json()) == cfg
    path = tmp_path / "cfg.json"
    path.write_text(cfg.to_json())
    assert FeatureConfig.load(path) == cfg
    assert FeatureConfig.resolve(path) == cfg
    assert FeatureConfig.resolve("telephone").sample_rate == 8000
    assert FeatureConfig.resolve(None) == FeatureConfig()
    assert hash(cfg) == hash(FeatureConfig.from_dict(cfg.to_dict()))


def test_config_defaults():
    cfg = FeatureConfig()
    assert (cfg.sample_rate, cfg.win_length, cfg.hop_length, cfg.n_fft, cfg.n_mels,
            cfg.n_mfcc, cfg.preemphasis, cfg.dim) == (16000, 400, 160, 512, 40, 20, 0.97, 60)


@pytest.mark.parametrize("bad,match", [
    (dict(n_fft=256), "n_fft"),
    (dict(fmax=9000.0), "Nyquist"),
    (dict(n_mfcc=50), "n_mfcc"),
    (dict(delta_order=3), "delta_order"),
    (dict(delta_width=4), "delta_width"),
    (dict(norm="zscore"), "norm must be"),
    (dict(vad="neural"), "vad must be"),
    (dict(frame_shift_ms=0), "frame_shift_ms"),
])
def test_invalid_config(bad, match):
    with pytest.raises(FeatureError, match=match):
        FeatureConfig(**bad)


def test_config_file_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"n_mfcc": 13, "colour": "red"}')
    with pytest.raises(FeatureError, match="bad.json: unknown feature config key.*colour"):
        FeatureConfig.load(bad)
    bad.write_text("{not json")
    with pytest.raises(FeatureError, match="not valid JSON"):
        FeatureConfig.load(bad)
    with pytest.raises(FeatureError, match="unknown feature preset"):
        FeatureConfig.preset("studio")


def test_liftered_mfcc_equals_librosa():
    cfg = FeatureConfig(**RAW, lifter=22.0)
    y = speechlike(16000, seconds=1.0, seed=4)
    ours = extract_features(y=y, sr=16000, config=cfg)
    zi = [-cfg.preemphasis * (2 * y[0] - y[1])]
    ref = librosa.feature.mfcc(
        y=librosa.effects.preemphasis(y, coef=cfg.preemphasis, zi=zi), sr=16000, n_mfcc=20,
        n_fft=512, hop_length=160, win_length=400, window="hamming", n_mels=40, fmin=20,
        fmax=7600, lifter=22.0).T
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("window", ["hamming", "hann", "blackman"])
def test_analysis_window_and_cached_filterbank(tmp_path, monkeypatch, window):
    import scipy.signal

    from speakergmm.frontend import features

    monkeypatch.setenv("SPEAKERGMM_CACHE", str(tmp_path))
    features._analysis.cache_clear()
    cfg = FeatureConfig(window=window, n_mels=30)
    win, mel = features._analysis(cfg)
    ref = librosa.util.pad_center(scipy.signal.get_window(window, 400, fftbins=True), size=512)
    np.testing.assert_allclose(win, ref, atol=1e-6)
    np.testing.assert_allclose(mel.T, librosa.filters.mel(sr=16000, n_fft=512, n_mels=30,
                                                          fmin=20, fmax=7600), rtol=1e-6)
    cached = list(tmp_path.glob("mel-*.npy"))
    assert len(cached) == 1
    # a damaged cache file is recomputed, not trusted
    cached[0].write_bytes(b"garbage")
    features._analysis.cache_clear()
    np.testing.assert_allclose(features._analysis(cfg)[1], mel)
    assert np.load(cached[0]).shape == (30, 257)
    features._analysis.cache_clear()


def test_features_from_blocks_equal_the_whole_signal_bit_for_bit():
    """More than one group of 8192 frames (90 s), cut anyhow: the same features, VAD and
    sample count as extract_features on the whole signal."""
    from speakergmm.frontend.features import features_from_blocks

    from conftest import voice

    y = np.concatenate([voice(s, u, 4.5) for s in range(4) for u in range(5)])
    cfg = FeatureConfig()
    want, vad = extract_features(y=y, sr=cfg.sample_rate, config=cfg, return_vad=True)
    assert len(vad) > 8192
    for cuts in ([1, 2, 3], [159, 160, 161], [96_000], [len(y)], [4096, 1, 700_001]):
        edges = np.cumsum(np.resize(cuts, len(y)))
        edges = edges[edges < len(y)][:3000]  # the first pieces tiny, then the rest whole
        got, got_vad, samples = features_from_blocks(np.split(y, edges), config=cfg)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got_vad, vad)
        assert samples == len(y)


@pytest.mark.parametrize("rows", [1, 5, 100, 70_003])
def test_deltas_in_chunks_equal_deltas_at_once(rows, monkeypatch):
    from speakergmm.frontend import features

    x = np.random.default_rng(rows).standard_normal((rows, 20)).astype(np.float32)
    whole = features.deltas(x)
    monkeypatch.setattr(features, "_DELTA_CHUNK", 7)
    np.testing.assert_array_equal(features.deltas(x), whole)
    np.testing.assert_array_equal(features.deltas(x, order=1), whole[:, :40])


def test_normalising_in_place_equals_a_copy():
    from speakergmm.frontend.cmvn import normalize

    x = np.random.default_rng(0).standard_normal((500, 60)).astype(np.float32) * 3 + 1
    for method in ("cmvn", "cmn"):
        copy = normalize(x, method=method)
        y = x.copy()
        assert normalize(y, method=method, overwrite=True) is y
        np.testing.assert_array_equal(y, copy)


def test_blocks_with_bad_samples_are_named():
    """features_from_blocks checks every block (NaN gave NaN features through it)."""
    from speakergmm.frontend.features import features_from_blocks

    good = np.full(8000, 0.1, np.float32)
    for bad in (np.nan, np.inf, 1e30):
        block = good.copy()
        block[10] = bad
        with pytest.raises(FeatureError, match="utt3: .*(non-finite|samples reach)"):
            features_from_blocks([good, block], config=FeatureConfig(), name="utt3")


def test_rasta_filter_equals_the_rastamat_recursion():
    """rastamat / SIDEKIT: the first 4 frames prime the numerator and give 0, then
    lfilter([.2, .1, 0, -.1, -.2], [1, -.94]) from that state."""
    from scipy.signal import lfilter

    from speakergmm.frontend.features import rasta_filter

    x = np.random.default_rng(0).standard_normal((700, 3)) + np.array([5.0, -2.0, 0.0])
    ref = np.zeros_like(x)
    num = [0.2, 0.1, 0.0, -0.1, -0.2]
    for j in range(3):
        _, state = lfilter(num, 1, x[:4, j], zi=np.zeros(4))
        ref[4:, j] = lfilter(num, [1, -0.94], x[4:, j], zi=state)[0]
    np.testing.assert_allclose(rasta_filter(x), ref, atol=1e-12)
    assert not rasta_filter(x[:4]).any()


def test_rasta_removes_a_constant_channel():
    from speakergmm.frontend.features import rasta_filter

    x = np.random.default_rng(1).standard_normal((400, 2))
    np.testing.assert_allclose(rasta_filter(x + 7.0), rasta_filter(x), atol=1e-9)


def test_spectral_subtraction_removes_stationary_noise():
    """Speech in the middle of a recording, white noise throughout: subtraction takes the
    noise's power out of the pauses (down to the floor) and leaves the speech's."""
    from speakergmm.frontend.features import subtract_noise

    rng = np.random.default_rng(2)
    noise = np.full(8, 1.0, np.float32)
    power = np.tile(noise, (200, 1)) * rng.uniform(0.8, 1.2, (200, 8)).astype(np.float32)
    power[80:120] += 100.0
    groups = [power[:70].copy(), power[70:].copy()]
    subtract_noise(mel_power=groups)
    out = np.concatenate(groups)
    assert np.all(out[:60] <= 0.011)            # pauses at the floor, 1% of the noise
    # twice the noise estimate taken off: the quietest tenth of frames, a little under 1
    removed = power[80:120] - out[80:120]
    assert np.all((removed > 1.6) & (removed < 2.0))
    assert np.all(out >= 0.008)


def test_wiener_filter_keeps_speech_and_removes_stationary_noise():
    """Speech in the middle of a recording, white noise throughout: the Wiener filter takes
    the pauses down to about the gain floor's share of the noise, keeps most of the
    speech's power, and gives the same whether the frames come in one group or several
    (the recursion runs on across groups)."""
    from speakergmm.frontend.features import wiener_filter

    rng = np.random.default_rng(3)
    power = rng.uniform(0.8, 1.2, (200, 8)).astype(np.float32)
    power[80:120] += 100.0
    one, split = [power.copy()], [power[:70].copy(), power[70:150].copy(), power[150:].copy()]
    wiener_filter(mel_power=one)
    wiener_filter(mel_power=split)
    np.testing.assert_allclose(np.concatenate(split), one[0], rtol=1e-6)
    out = one[0]
    assert np.all(out[:60] < 0.01) and np.all(out >= 0)
    kept = out[82:120] / power[82:120]  # (after its first frames: the recursion follows)
    assert np.all((kept > 0.9) & (kept <= 1.0))


@pytest.mark.parametrize("options", [dict(rasta=True), dict(denoise="spectral_subtraction"),
                                     dict(denoise="wiener")])
def test_front_end_options_give_finite_features_and_change_them(options):
    y = speechlike(16000, seconds=2.0, seed=4)
    plain = extract_features(y=y, sr=16000, config=FeatureConfig())
    other = extract_features(y=y, sr=16000, config=FeatureConfig(**options))
    assert other.shape == plain.shape and np.isfinite(other).all()
    assert not np.allclose(other, plain)


def test_front_end_options_are_checked():
    with pytest.raises(FeatureError, match="denoise must be one of"):
        FeatureConfig(denoise="kalman")
    with pytest.raises(FeatureError, match="rasta must be true or false"):
        FeatureConfig.from_dict({"rasta": 1})
    assert FeatureConfig.from_json(FeatureConfig(rasta=True).to_json()).rasta is True


def test_mfcc_energies_are_the_vads_from_the_same_pass():
    from speakergmm.frontend.vad import frame_energy_db

    cfg = FeatureConfig(**RAW)
    y = speechlike(16000, seconds=1.3, seed=8)
    cep, energy = mfcc(y=y, config=cfg, return_energy=True)
    np.testing.assert_array_equal(cep, mfcc(y=y, config=cfg))
    np.testing.assert_array_equal(energy, frame_energy_db(y=y, hop_length=cfg.hop_length,
                                                          win_length=cfg.win_length))
