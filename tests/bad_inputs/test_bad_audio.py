"""Audio (issue 14): damaged headers are refused before any decoding or resampling."""

import struct

import numpy as np
import pytest

from speakergmm.errors import AudioError
from speakergmm.frontend.audio import SAMPLE_RATES, duration, load

from conftest import refused


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
