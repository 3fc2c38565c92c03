"""Audio formats (issue 14): every PCM width, float, many channels and the containers
libsndfile reads are taken, giving the features of the same sound; what is not audio is
refused naming the file (one line, exit 2, nothing written)."""

import struct

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from speakergmm.cli import main
from speakergmm.frontend.audio import load
from speakergmm.frontend.features import FeatureConfig, extract_features

from conftest import SR, refused, voice

TAKEN = [("wav", "PCM_U8"), ("wav", "PCM_16"), ("wav", "PCM_24"), ("wav", "PCM_32"),
         ("wav", "FLOAT"), ("wav", "DOUBLE"), ("wav", "ULAW"), ("wav", "ALAW"),
         ("flac", "PCM_16"), ("flac", "PCM_24"), ("aiff", "PCM_16"), ("aiff", "FLOAT"),
         ("au", "PCM_16"), ("caf", "PCM_24"), ("w64", "PCM_16"), ("rf64", "PCM_16"),
         ("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III")]


@pytest.fixture(scope="module")
def sound():
    return voice(7, 0, 2.0)


@pytest.mark.parametrize("ext, subtype", TAKEN)
def test_every_width_and_container_gives_the_same_features(tmp_path, sound, ext, subtype):
    if subtype == "MPEG_LAYER_III" and "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile has no MP3")
    path = tmp_path / f"x.{ext}"
    sf.write(path, sound, SR, subtype=subtype)
    y, sr = load(path)
    assert sr == SR and y.dtype == np.float32 and np.isfinite(y).all()
    cfg = FeatureConfig()
    want = extract_features(y=sound, sr=SR, config=cfg)
    got = extract_features(y=y, sr=SR, config=cfg)
    # the same sound: lossy and 8-bit codings move frames, never the whole utterance
    lossy = subtype in ("PCM_U8", "ULAW", "ALAW", "VORBIS", "MPEG_LAYER_III")
    assert abs(len(got) - len(want)) <= (0.25 if lossy else 0.02) * len(want) + 1
    if not lossy and len(got) == len(want):  # (16-bit rounding moves only the quietest)
        assert np.linalg.norm(got - want) < 0.05 * np.linalg.norm(want)


@pytest.mark.parametrize("channels", [2, 3, 6, 8, 32])
def test_many_channels_are_averaged(tmp_path, sound, channels):
    stereo = np.stack([sound * (1 + 0.01 * c) for c in range(channels)], axis=1)
    path = tmp_path / "multi.wav"
    sf.write(path, stereo, SR, subtype="FLOAT")
    y, _ = load(path)
    np.testing.assert_allclose(y, stereo.mean(axis=1), atol=1e-6)


def _wav_header(data: bytes, *, rate=16000, channels=1, bits=16, claimed=None) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * bits // 8,
                      channels * bits // 8, bits)
    size = len(data) if claimed is None else claimed
    return (b"RIFF" + struct.pack("<I", 36 + size) + b"WAVE" + b"fmt " + struct.pack("<I", 16)
            + fmt + b"data" + struct.pack("<I", size) + data)


PCM = (0.3 * voice(7, 0, 1.0) * 32767).astype("<i2").tobytes()
NOT_AUDIO = {
    "text.wav": (b"hello, this is not audio\n" * 50, "unreadable audio"),
    "image.wav": (b"\x89PNG\r\n\x1a\n" + bytes(200), "unreadable audio"),
    "archive.wav": (b"PK\x03\x04" + bytes(300), "unreadable audio"),
    "video.mp4": (b"\x00\x00\x00\x18ftypmp42" + bytes(400), "unreadable audio"),
    "random.flac": (np.random.default_rng(0).bytes(4000), "unreadable audio"),
    "empty.wav": (b"", "unreadable audio"),
    "header-only.wav": (_wav_header(b""), "empty"),
    "truncated.wav": (_wav_header(PCM[:4000], claimed=len(PCM)), "truncated WAV"),
    "truncated.flac": (None, "unreadable audio"),
    "too-short.wav": (_wav_header(PCM[:1000]), "too short"),
    "silence.wav": (_wav_header(bytes(len(PCM))), "no speech"),
    "zero-channels.wav": (_wav_header(PCM, channels=0), "unreadable audio"),
}


@pytest.mark.parametrize("name", sorted(NOT_AUDIO))
def test_what_is_not_audio_is_refused_naming_the_file(work, tmp_path, name):
    content, says = NOT_AUDIO[name]
    path = tmp_path / name
    if content is None:  # a FLAC cut in the middle of a frame
        sf.write(tmp_path / "whole.flac", voice(7, 0, 1.0), SR)
        content = (tmp_path / "whole.flac").read_bytes()
        content = content[: len(content) // 2]
        (tmp_path / "whole.flac").unlink()
    path.write_bytes(content)
    refused(["enroll", "spk0", path, "--ubm", work / "ubm.npz", "--store", tmp_path / "s.db"],
            str(path), says, roots=[tmp_path, work])


def test_directories_and_missing_files(work, tmp_path):
    refused(["enroll", "spk0", tmp_path, "--ubm", work / "ubm.npz", "--store",
             tmp_path / "s.db"], str(tmp_path), roots=[tmp_path, work])
    refused(["enroll", "spk0", tmp_path / "gone.wav", "--ubm", work / "ubm.npz", "--store",
             tmp_path / "s.db"], "gone.wav", roots=[tmp_path, work])


def test_one_bad_file_among_good_ones_enrolls_nothing(work, tmp_path):
    """enroll with several recordings, one of them broken: refused, the store untouched
    (not enrolled from the others behind the user's back)."""
    good = tmp_path / "good.wav"
    sf.write(good, voice(7, 1, 2.0), SR)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    store = tmp_path / "s.db"
    refused(["enroll", "spk0", good, bad, "--ubm", work / "ubm.npz", "--store", store],
            str(bad), roots=[tmp_path, work])
    assert not store.exists()
    result = CliRunner().invoke(main, ["enroll", "spk0", str(good), "--ubm",
                                       str(work / "ubm.npz"), "--store", str(store)])
    assert result.exit_code == 0, result.output
