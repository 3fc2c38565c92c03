import numpy as np
import pytest

from speakergmm.frontend.vad import energy_vad, frame_energy_db

from conftest import tone_bursts


def _frames(sr, n):
    hop = sr // 100
    return 1 + n // hop, hop, int(0.025 * sr)


@pytest.mark.parametrize("sr", [8000, 16000])
def test_keeps_bursts_drops_gaps(sr):
    y, truth = tone_bursts(sr, n=4)
    n_frames, hop, win = _frames(sr, len(y))
    energy = frame_energy_db(y=y, hop_length=hop, win_length=win)
    speech = energy_vad(energy_db=energy)
    centres = np.minimum(np.arange(n_frames) * hop, len(y) - 1)
    frame_truth = truth[centres]
    # every frame well inside a burst is kept, every frame well inside a gap is dropped
    inside = np.convolve(frame_truth, np.ones(7), "same") == 7
    outside = np.convolve(~frame_truth, np.ones(7), "same") == 7
    assert speech[inside].all()
    assert not speech[outside].any()
    assert np.mean(speech == frame_truth) > 0.95


def test_energy_of_full_scale_sine_is_minus_3_dbfs():
    sr = 16000
    y = np.sin(2 * np.pi * 1000 * np.arange(sr) / sr).astype(np.float32)
    energy = frame_energy_db(y=y, hop_length=160, win_length=400)
    np.testing.assert_allclose(energy[5:-5], -3.01, atol=0.05)
    # edge frames are half outside the signal: 3 dB less
    assert energy[0] == pytest.approx(-6.0, abs=0.2)


def test_digital_silence_is_finite_and_rejected():
    energy = frame_energy_db(y=np.zeros(16000, np.float32), hop_length=160,
                             win_length=400)
    assert np.isfinite(energy).all()
    assert not energy_vad(energy_db=energy).any()


def test_floor_rejects_quiet_noise_even_when_it_is_the_loudest():
    energy = np.full(200, -75.0)
    energy[50:60] = -70.0
    assert not energy_vad(energy_db=energy, floor_db=-60.0).any()
    assert energy_vad(energy_db=energy, floor_db=-80.0).sum() >= 190


def test_smoothing_fills_gaps_and_drops_clicks():
    energy = np.full(100, -80.0)
    energy[20:60] = -20.0
    energy[40] = -80.0          # one-frame dip inside speech
    energy[80] = -20.0          # isolated click
    smooth = energy_vad(energy_db=energy, context=2)
    assert smooth[40] and not smooth[80]
    raw = energy_vad(energy_db=energy, context=0)
    assert not raw[40] and raw[80]


def test_relative_threshold():
    energy = np.concatenate([np.full(50, -10.0), np.full(50, -35.0), np.full(50, -45.0)])
    speech = energy_vad(energy_db=energy, threshold_db=30.0, context=0)
    assert speech[:100].all() and not speech[100:].any()
    assert energy_vad(energy_db=np.zeros(0)).shape == (0,)


def _signals(sr=16000, seconds=3.0):
    rng = np.random.default_rng(0)
    t = np.arange(int(sr * seconds)) / sr
    return {"DC offset": np.full(t.size, 0.3), "1 kHz tone": 0.3 * np.sin(2 * np.pi * 1000 * t),
            "50 Hz hum": 0.1 * np.sin(2 * np.pi * 50 * t),
            "white noise": 0.1 * rng.standard_normal(t.size),
            "tone on a DC offset": 0.3 + 0.3 * np.sin(2 * np.pi * 1000 * t)}


@pytest.mark.parametrize("kind", sorted(_signals()))
def test_stationary_signals_are_not_speech(kind):
    """A constant, a tone, a hum and white noise were "3.0 s of speech" (issue 14)."""
    from speakergmm.errors import FeatureError
    from speakergmm.frontend.features import FeatureConfig, extract_features
    from speakergmm.frontend.vad import MIN_RANGE_DB, energy_spread

    y = _signals()[kind].astype(np.float32)
    energy = frame_energy_db(y=y, hop_length=160, win_length=400)
    assert energy_spread(energy) < MIN_RANGE_DB
    assert not energy_vad(energy_db=energy).any()
    with pytest.raises(FeatureError, match="no speech: its energy stays within"):
        extract_features(y=y, sr=16000, config=FeatureConfig(), name=kind)


def test_a_dc_offset_does_not_count_as_energy():
    """Speech on a DC offset is found as without it: the offset is removed per frame."""
    from conftest import voice

    y = voice(2, 0, 2.0)
    plain = energy_vad(energy_db=frame_energy_db(y=y, hop_length=160, win_length=400))
    shifted = energy_vad(energy_db=frame_energy_db(y=y + 0.25, hop_length=160, win_length=400))
    assert plain.sum() > 50
    assert np.mean(plain == shifted) > 0.97
    # and a constant measures as digital silence, far below any floor
    assert frame_energy_db(y=np.full(4000, 0.5, np.float32), hop_length=160,
                           win_length=400)[3:-3].max() < -150


def test_speech_moves_more_than_the_threshold():
    """Synthetic voices with pauses, and the flattest speech there is (a held vowel with
    no pause, swelling once), keep their frames."""
    from speakergmm.frontend.vad import MIN_RANGE_DB, energy_spread

    from conftest import voice

    for s in range(5):
        y = voice(s, 1, 1.0)
        assert energy_spread(frame_energy_db(y=y, hop_length=160, win_length=400)) > \
            2 * MIN_RANGE_DB
    t = np.arange(4000) / 16000
    vowel = sum(np.sin(2 * np.pi * 130 * h * t) / h for h in range(1, 12))
    vowel *= 0.2 * (1 + 0.6 * np.sin(2 * np.pi * 2 * t))  # a slow swell within 0.25 s
    energy = frame_energy_db(y=vowel.astype(np.float32), hop_length=160, win_length=400)
    assert energy_spread(energy) > MIN_RANGE_DB
    assert energy_vad(energy_db=energy).sum() > 15


def test_speech_runs():
    from speakergmm.frontend.vad import speech_runs

    assert speech_runs(np.array([1, 1, 0, 0, 1, 0, 1, 1, 1], bool)) == [(0, 2), (4, 5), (6, 9)]
    assert speech_runs(np.zeros(4, bool)) == [] and speech_runs(np.zeros(0, bool)) == []
