"""Audio (issue 14): damaged headers are refused before any decoding or resampling."""

import re
import struct

import numpy as np
import pytest
from click.testing import CliRunner

from speakergmm.cli import main
from speakergmm.errors import AudioError
from speakergmm.frontend.audio import SAMPLE_RATES, duration, load

from conftest import refused, voice


def _wav(path, rate, samples=np.zeros(50_000, np.int16)):
    """A PCM WAV whose header claims ``rate`` (written by hand: libraries refuse to)."""
    data = samples.astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " +
                     struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data)) + data)
    return path


@pytest.mark.parametrize("rate", [1, 100, SAMPLE_RATES[0] - 1, SAMPLE_RATES[1] + 1])
def test_absurd_sampling_rates_are_refused_before_decoding(tmp_path, rate):
    path = _wav(tmp_path / "x.wav", rate)
    for read in (lambda: load(path, sr=16000), lambda: duration(path)):
        with pytest.raises(AudioError, match=f"sampling rate {rate} Hz is outside"):
            read()


def test_sane_rates_still_load(tmp_path):
    y, sr = load(_wav(tmp_path / "x.wav", 8000), sr=16000)
    assert sr == 16000 and len(y) == 100_000


def test_the_cli_names_the_file(work, tmp_path):
    path = _wav(tmp_path / "one_hz.wav", 1)
    refused(["enroll", "spk0", path, "--ubm", work / "ubm.npz", "--store",
             tmp_path / "s.db"], str(path), "1 Hz", roots=[tmp_path, work])


@pytest.mark.parametrize("peak, says", [(1e29, "samples reach 1e+29"), (np.inf, "non-finite"),
                                        (np.nan, "non-finite")])
def test_float_files_with_absurd_samples_are_named(work, tmp_path, peak, says):
    """A float WAV holding 1e29 made NaN features and "no speech found" (found by
    tests/fuzz); NaN and inf are named as such."""
    import soundfile as sf

    from conftest import SR, voice

    y = voice(3, 0).astype(np.float64)
    y[1000] = peak
    path = tmp_path / "absurd.wav"
    sf.write(path, y, SR, subtype="DOUBLE")
    with pytest.raises(AudioError, match=re.escape(says)):
        load(path)
    refused(["enroll", "spk0", path, "--ubm", work / "ubm.npz", "--store",
             tmp_path / "s.db"], str(path), says, roots=[tmp_path, work])


def test_float_files_at_a_pcm_scale_are_taken(tmp_path):
    """A float file holding int16 values (±32768) is not corrupt: it is read as it is."""
    import soundfile as sf

    from speakergmm.frontend.features import FeatureConfig, extract_features

    from conftest import SR, voice

    path = tmp_path / "scaled.wav"
    sf.write(path, voice(3, 0) * 32768.0, SR, subtype="FLOAT")
    y, _ = load(path)
    assert np.abs(y).max() > 1000
    assert np.isfinite(extract_features(y=y, sr=SR, config=FeatureConfig())).all()


@pytest.mark.parametrize("kind", ["dc", "tone", "noise"])
def test_non_speech_recordings_are_refused_by_enroll_and_verify(work, tmp_path, kind):
    """3 s of a DC offset, a 1 kHz tone or white noise was enrolled as 3.0 s of speech."""
    import soundfile as sf

    t = np.arange(48_000) / 16_000
    y = {"dc": np.full(t.size, 0.3), "tone": 0.3 * np.sin(2 * np.pi * 1000 * t),
         "noise": 0.1 * np.random.default_rng(0).standard_normal(t.size)}[kind]
    path = tmp_path / f"{kind}.wav"
    sf.write(path, y, 16_000)
    refused(["enroll", "spk0", path, "--ubm", work / "ubm.npz", "--store", tmp_path / "s.db"],
            str(path), "no speech", roots=[tmp_path, work])
    # the bundled system takes every frame (no VAD): it refuses them too
    refused(["enroll", "spk0", path, "--store", tmp_path / "s.db"], str(path), "no speech",
            roots=[tmp_path, work])
    speech = tmp_path / "speech.wav"
    sf.write(speech, voice(4, 0, 6.0), 16_000)
    enrolled = CliRunner().invoke(main, ["enroll", "spk0", str(speech), "--store",
                                         str(tmp_path / "s.db")])
    assert enrolled.exit_code == 0, enrolled.output
    for args in (["verify", "spk0", path], ["identify", path]):
        refused([*args, "--store", tmp_path / "s.db"], str(path), "no speech",
                roots=[tmp_path])


@pytest.mark.parametrize("kind", ["cancelling stereo", "-100 dBFS"])
def test_inaudible_recordings_are_refused_through_the_bundled_system(tmp_path, kind):
    """Issue 25: a stereo file whose channels cancel (L = -R: a regression, it was enrolled
    and then identified with P = 1.000) and speech at -100 dBFS were taken by the bundled
    systems, which use no VAD; now "no speech", naming the level."""
    import soundfile as sf

    y = voice(5, 0, 4.0)
    path = tmp_path / "quiet.wav"
    if kind == "cancelling stereo":
        sf.write(path, np.stack([y, -y], axis=1), 16_000, subtype="PCM_16")
    else:
        sf.write(path, y / np.abs(y).max() * 10 ** (-100 / 20), 16_000, subtype="FLOAT")
    line = refused(["enroll", "spk0", path, "--store", tmp_path / "s.db"], str(path),
                   "no speech", "dBFS", roots=[tmp_path])
    assert "below -70 dBFS" in line
