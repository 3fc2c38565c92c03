"""Quality measures (speakergmm.frontend.quality): the WADA SNR estimate reads back the SNR
of the signals its model describes, holds for a signal given in blocks, and never gives NaN
from silence; a short or noisy recording gets a note (issue 22)."""

import numpy as np
import pytest

from speakergmm.constants import MIN_TEST_SECONDS, MIN_TEST_SNR_DB
from speakergmm.frontend import quality as q

from conftest import speechlike, voice


def _gamma_speech(n, seed=0):
    rng = np.random.default_rng(seed)
    s = rng.gamma(0.4, 1.0, n) * rng.choice([-1.0, 1.0], n)
    return s / np.sqrt(np.mean(s ** 2)), rng


def test_the_table_is_what_the_model_gives():
    # a fresh simulation (another seed, a tenth of the samples) within its own noise
    assert np.all(np.diff(q._WADA_G) > 0)
    np.testing.assert_allclose(q._wada_table(n=400_000, seed=7), q._WADA_G, atol=0.01)


@pytest.mark.parametrize("snr", [0.0, 10.0, 20.0, 30.0])
def test_wada_reads_back_the_snr_of_gamma_speech_in_gaussian_noise(snr):
    s, rng = _gamma_speech(200_000, seed=int(snr))
    y = 0.1 * (s * 10 ** (snr / 20) + rng.standard_normal(len(s))) / 10 ** (snr / 20)
    assert abs(q.wada_snr(y=y) - snr) < 1.5


def test_blocks_scale_and_silence():
    s, rng = _gamma_speech(50_000)
    y = (s + 0.3 * rng.standard_normal(len(s))).astype(np.float32) * 0.2
    meter = q.SignalMeter()
    assert list(meter.watch([y[:1000], y[1000:7777], y[7777:]]))[1].shape == (6777,)
    assert meter.snr_db == pytest.approx(q.wada_snr(y=y), abs=1e-6)
    assert q.wada_snr(y=10 * y) == pytest.approx(q.wada_snr(y=y), abs=1e-6)
    assert np.isfinite(q.wada_snr(y=np.zeros(16000)))  # digital silence: no NaN
    assert np.isnan(q.SignalMeter().snr_db)  # nothing seen yet


def test_a_voice_is_clean_until_noise_is_added():
    y = voice(3, 0, seconds=3.0)
    noise = np.random.default_rng(0).standard_normal(len(y))
    noise *= np.sqrt(np.mean(y ** 2) / np.mean(noise ** 2)) / 10 ** (5 / 20)  # 5 dB
    assert q.wada_snr(y=y) > MIN_TEST_SNR_DB > q.wada_snr(y=y + noise)


def test_the_note_says_what_is_wrong():
    fine = q.Quality(seconds=MIN_TEST_SECONDS + 1, snr_db=MIN_TEST_SNR_DB + 10)
    assert fine.note is None
    short = q.Quality(seconds=1.2, snr_db=40.0).note
    assert short.startswith("too short for") and "1.2 s of speech" in short
    noisy = q.Quality(seconds=9.0, snr_db=4.4).note
    assert noisy.startswith("too noisy for") and "estimated SNR of 4 dB" in noisy
    both = q.Quality(seconds=0.5, snr_db=0.0).note
    assert both.startswith("too short and too noisy for") and "; an estimated SNR" in both


def test_the_upper_band_tells_a_phone_channel_from_full_band_speech():
    from speakergmm.constants import MIN_UPPER_BAND_DB
    from speakergmm.frontend.augment import telephone

    # (the synthetic voices of the tests hold little above 4.5 kHz: noise-excited speech)
    y = speechlike(16000, seconds=3.0, seed=2)
    full, phone = q.SignalMeter(16000), q.SignalMeter(16000)
    full.add(y)
    for block in np.array_split(telephone(y=y, sr=16000), 7):  # state carried over blocks
        phone.add(block)
    assert full.upper_band_db > MIN_UPPER_BAND_DB > phone.upper_band_db
    whole = q.SignalMeter(16000)
    whole.add(telephone(y=y, sr=16000))
    assert whole.upper_band_db == pytest.approx(phone.upper_band_db, abs=1e-6)
    # an 8 kHz signal has no band above 4.5 kHz to measure; silence gives NaN, not an error
    assert q.SignalMeter(8000).upper_band_db is None and q.SignalMeter().upper_band_db is None
    silent = q.SignalMeter(16000)
    silent.add(np.zeros(1600))
    assert np.isnan(silent.upper_band_db)
    note = q.Quality(seconds=5.0, snr_db=40.0, upper_band_db=-60.0).note
    assert note.startswith("too narrowband for") and "--system telephone" in note
    assert q.Quality(seconds=5.0, snr_db=40.0, upper_band_db=-20.0).note is None
