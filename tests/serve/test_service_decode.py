"""Uploads are decoded in child processes bounded in length, time and memory."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from speakergmm.errors import AudioError
from speakergmm.serve import BoundedDecoder, DecodeLimits


def test_a_recording_decodes_as_the_library_loads_it(tmp_path, rng):
    y = (0.1 * rng.standard_normal((24000, 2))).astype(np.float32)
    sf.write(tmp_path / "a.flac", y, 24000)
    from speakergmm.frontend.audio import load

    with BoundedDecoder() as decoder:
        got, sr = decoder.decode(tmp_path / "a.flac")
        again, _ = decoder.decode(tmp_path / "a.flac")
        assert len(decoder._all) == 1  # the same process, kept
    want, want_sr = load(tmp_path / "a.flac")
    assert sr == want_sr == 24000 and np.array_equal(got, want) and np.array_equal(again, want)


def test_too_long_is_refused_from_the_header_and_bad_audio_named(tmp_path):
    with BoundedDecoder(DecodeLimits(max_seconds=60)) as decoder:
        sf.write(tmp_path / "x.wav", np.zeros(8000 * 70, np.int16), 8000)
        with pytest.raises(AudioError, match=r"^mine.wav: 70.0 s of audio; the service "
                                             r"takes at most 60 s"):
            decoder.decode(tmp_path / "x.wav", name="mine.wav")
        (tmp_path / "bad.wav").write_bytes(b"RIFF....not audio at all")
        with pytest.raises(AudioError, match=r"^client.wav: unreadable audio") as caught:
            decoder.decode(tmp_path / "bad.wav", name="client.wav")
        assert str(tmp_path) not in str(caught.value)  # the server's paths stay its own
        assert len(decoder._all) == 1  # bad input does not cost a process


def test_a_decode_that_hangs_is_killed_and_the_decoder_goes_on(tmp_path):
    fifo = tmp_path / "fifo.wav"
    os.mkfifo(fifo)  # opening it blocks for ever: a decoder stuck on a hostile file
    sf.write(tmp_path / "ok.wav", np.zeros(8000, np.float32), 16000)
    with BoundedDecoder(DecodeLimits(timeout=1.0)) as decoder:
        with pytest.raises(AudioError, match="not decoded within 1 s"):
            decoder.decode(fifo, name="slow.wav")
        stuck = []
        assert decoder._all == stuck  # killed, not kept
        y, sr = decoder.decode(tmp_path / "ok.wav")
        assert sr == 16000 and y.size == 8000


def test_a_decode_over_the_memory_limit_is_an_error_not_a_crash(tmp_path):
    sf.write(tmp_path / "ok.wav", np.zeros(8000, np.float32), 16000)
    # (100 MiB of address space: not even numpy loads in it, so the child dies on start)
    with BoundedDecoder(DecodeLimits(memory_mb=100)) as decoder:
        with pytest.raises(AudioError, match="decoder stopped on it"):
            decoder.decode(tmp_path / "ok.wav", name="ok.wav")
    with BoundedDecoder(DecodeLimits(memory_mb=1024)) as decoder:
        assert decoder.decode(tmp_path / "ok.wav")[1] == 16000


@pytest.mark.parametrize("bad", [dict(max_seconds=0), dict(timeout=-1),
                                 dict(memory_mb=float("nan"))])
def test_bad_limits_are_refused(bad):
    with pytest.raises(ValueError, match="must be a positive number"):
        DecodeLimits(**bad)


def test_a_decoder_lasts_past_its_first_seconds_of_cpu(tmp_path):
    """Each request moves the child's CPU limit on; it once failed to, and the decoder
    died after its first second of CPU time (about 400 requests)."""
    sf.write(tmp_path / "long.wav", np.zeros(16000 * 100, np.int16), 16000)
    tick = os.sysconf("SC_CLK_TCK")
    with BoundedDecoder() as decoder:
        for _ in range(2000):
            decoder.decode(tmp_path / "long.wav")
            pid = decoder._all[0].process.pid
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            if (int(fields[11]) + int(fields[12])) / tick > 2.5:  # utime + stime
                break
        else:
            pytest.fail("the child never used 2.5 s of CPU")
