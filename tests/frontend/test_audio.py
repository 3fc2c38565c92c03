import numpy as np
import pytest

from speakergmm.errors import AudioError
from speakergmm.frontend.audio import duration, load, load_pipe, resample

from conftest import write_audio


def _tone(sr, seconds=1.0, freq=440.0, amp=0.5):
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("fmt,subtype", [("wav", "PCM_16"), ("flac", "PCM_16"), ("ogg", "VORBIS"),
                                         ("wav", "FLOAT")])
def test_formats_read_as_mono_float32(tmp_path, fmt, subtype):
    y = _tone(16000)
    path = write_audio(tmp_path / f"a.{fmt}", y, 16000, subtype=subtype)
    out, sr = load(path)
    assert sr == 16000 and out.dtype == np.float32 and out.ndim == 1
    assert abs(len(out) - len(y)) <= 1024  # Vorbis may pad
    if fmt != "ogg":
        np.testing.assert_allclose(out, y, atol=1e-4)


def test_resample_8k_to_16k_keeps_frequency(tmp_path):
    path = write_audio(tmp_path / "a.wav", _tone(8000, freq=1000.0), 8000)
    y, sr = load(path, sr=16000)
    assert sr == 16000 and len(y) == 16000
    spectrum = np.abs(np.fft.rfft(y))
    assert np.argmax(spectrum) * sr / len(y) == pytest.approx(1000.0, abs=2.0)
    # no energy above the original Nyquist frequency
    assert spectrum[4100:].max() < 1e-2 * spectrum.max()


def test_stereo_is_averaged(tmp_path):
    left, right = _tone(16000, amp=0.5), _tone(16000, freq=300.0, amp=0.2)
    path = write_audio(tmp_path / "s.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    y, _ = load(path)
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-6)


def test_offset_and_duration(tmp_path):
    y = np.arange(16000, dtype=np.float32) / 16000
    path = write_audio(tmp_path / "r.wav", y, 16000, subtype="FLOAT")
    seg, _ = load(path, offset=0.25, duration=0.5)
    np.testing.assert_array_equal(seg, y[4000:12000])
    with pytest.raises(AudioError, match="after the end"):
        load(path, offset=2.0)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match=r"nothere\.wav: audio file not found"):
        load(tmp_path / "nothere.wav")


def test_empty_and_garbage_files(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.flac"
    garbage.write_bytes(np.random.default_rng(0).bytes(5000))
    for path in (empty, garbage):
        with pytest.raises(AudioError, match="unreadable audio") as err:
            load(path)
        assert str(path) in str(err.value)


def test_zero_sample_file(tmp_path):
    path = write_audio(tmp_path / "zero.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="empty"):
        load(path)


def test_truncated_wav_and_flac(tmp_path):
    y = _tone(16000)
    for ext in ("wav", "flac"):
        path = write_audio(tmp_path / f"t.{ext}", y, 16000)
        data = path.read_bytes()
        cut = tmp_path / f"cut.{ext}"
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(AudioError, match="truncated|unreadable") as err:
            load(cut)
        assert str(cut) in str(err.value)


def test_non_finite_samples(tmp_path):
    y = _tone(16000)
    y[100] = np.nan
    path = write_audio(tmp_path / "nan.wav", y, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="non-finite"):
        load(path)


def test_pipe(tmp_path):
    path = write_audio(tmp_path / "p.wav", _tone(8000), 8000)
    y, sr = load_pipe(f"cat {path} |", sr=16000)
    assert sr == 16000 and len(y) == 16000
    with pytest.raises(AudioError, match="exited with status"):
        load_pipe("exit 3 |")
    with pytest.raises(AudioError, match="not readable audio"):
        load_pipe("echo hello |")


def test_resample_identity_and_duration(tmp_path):
    y = _tone(16000)
    assert resample(y, orig_sr=16000, target_sr=16000) is y
    path = write_audio(tmp_path / "d.flac", y, 16000)
    assert duration(path) == pytest.approx(1.0)


@pytest.mark.parametrize("native, target, channels", [(16000, None, 1), (8000, 16000, 2),
                                                      (44100, 16000, 2), (16000, 8000, 1)])
@pytest.mark.parametrize("block_seconds", [0.013, 0.5, 7.0])
def test_blocks_join_to_what_load_returns(tmp_path, native, target, channels, block_seconds):
    """A recording read in blocks (decoded, mixed down and resampled a block at a time)
    is what load returns, bit for bit, segments included."""
    from speakergmm.frontend.audio import AudioBlocks

    rng = np.random.default_rng(native)
    y = (0.3 * rng.standard_normal((3 * native, channels))).astype(np.float32)
    path = write_audio(tmp_path / "x.flac", y, native, subtype="PCM_24")
    for offset, length in ((0.0, None), (0.37, 1.5), (2.9, None)):
        whole, rate = load(path, sr=target, offset=offset, duration=length)
        with AudioBlocks(path, sr=target, offset=offset, duration=length,
                         block_seconds=block_seconds) as audio:
            assert (audio.native_rate, audio.rate) == (native, rate)
            blocks = list(audio)
        assert len(blocks) >= min(3, int((3 - offset) / block_seconds))
        np.testing.assert_array_equal(np.concatenate(blocks), whole)


def test_blocks_report_bad_samples_with_the_file(tmp_path):
    from speakergmm.frontend.audio import AudioBlocks

    y = np.zeros(16000, np.float32)
    y[12000] = np.nan
    path = write_audio(tmp_path / "nan.wav", y, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav: 1 non-finite"):
        list(AudioBlocks(path, block_seconds=0.25))
