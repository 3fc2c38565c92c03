"""Reading audio: any format soundfile reads, any rate, mono float32 at the rate asked for.

Every failure (missing, unreadable, truncated or empty file, non-finite samples, a Kaldi pipe
command that fails) raises :class:`~speakergmm.errors.AudioError` naming the source and the
problem.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import AudioError
from .signal import sample_problem

__all__ = ["load", "load_pipe", "load_ref", "AudioBlocks", "SignalBlocks", "resample",
           "duration", "SAMPLE_RATES", "BLOCK_SECONDS"]

#: Sampling rates accepted from a file's header, in Hz: below, no speech band is left; above,
#: no audio hardware records. A header claiming 1 Hz (a damaged file) would otherwise be
#: resampled into hundreds of millions of samples.
SAMPLE_RATES = (4000, 768000)


def load(
    path: str | os.PathLike,
    *,
    sr: int | None = None,
    offset: float = 0.0,
    duration: float | None = None,
) -> tuple[np.ndarray, int]:
    """Load an audio file as mono float32, optionally resampled and cut.

    Parameters
    ----------
    path : path-like
        Any file soundfile (libsndfile) reads: WAV, FLAC, OGG/Vorbis, AIFF, ...
    sr : int or None
        Target sampling rate; ``None`` keeps the file's rate.
    offset : float
        Start time in seconds (Kaldi ``segments`` start).
    duration : float or None
        Length in seconds to read from ``offset``; ``None`` reads to the end.

    Returns
    -------
    y : np.ndarray [shape=(n,), dtype=float32]
        The signal, channels averaged to mono, in [-1, 1] for integer formats.
    sr : int
        Its sampling rate (``sr`` if given).

    Raises
    ------
    AudioError
        If the file is missing, unreadable, truncated or empty, the segment lies outside
        it, or a sample is not finite.
    """
    with AudioBlocks(path, sr=sr, offset=offset, duration=duration) as audio:
        return _joined(audio), audio.rate


def load_ref(ref, *, sr: int | None = None) -> tuple[np.ndarray, int]:
    """:func:`load` (or :func:`load_pipe`) of a data directory's audio reference
    (:meth:`speakergmm.data.datadir.DataDir.audio_of`: a file or a pipe, and a segment of
    it)."""
    reader = load_pipe if ref.is_pipe else load
    return reader(ref.path_or_command, sr=sr, offset=ref.start, duration=ref.duration)


def load_pipe(
    command: str,
    *,
    sr: int | None = None,
    offset: float = 0.0,
    duration: float | None = None,
) -> tuple[np.ndarray, int]:
    """Run a Kaldi ``wav.scp`` pipe command (``sox x.sph -t wav - |``) and read its output.

    Kaldi recipes use such commands to decode formats on the fly; the command's standard
    output must be a complete audio file (WAV, FLAC, ...). Parameters and return values
    are those of :func:`load`.
    """
    with AudioBlocks(command, sr=sr, offset=offset, duration=duration, pipe=True) as audio:
        return _joined(audio), audio.rate


#: Seconds of audio decoded, resampled and handed on at once: a long recording is never
#: held whole (a 3-hour file is 0.7 GB of float32 samples at 16 kHz).
BLOCK_SECONDS = 60.0


class AudioBlocks:
    """One recording (a file, or the output of a Kaldi pipe command), decoded and resampled
    in blocks: iterate to get mono float32 arrays at :attr:`rate` that, joined, are what
    :func:`load` returns, bit for bit (soxr's stream resampler equals its one-shot one).

    The header is read and checked on construction (missing or unreadable file, absurd
    sampling rate, segment outside the audio); decoding errors and bad samples raise
    :class:`AudioError` while iterating. Use as a context manager, or iterate to the end,
    to close the file.

    Parameters
    ----------
    source : path-like or str
        A file, or with ``pipe=True`` a command whose standard output is an audio file.
    sr, offset, duration
        As :func:`load`.
    pipe : bool
    block_seconds : float
        Input seconds per block.

    Attributes
    ----------
    native_rate : int
        The recording's sampling rate.
    rate : int
        The rate of the blocks (``sr``, or ``native_rate``).
    """

    def __init__(self, source, *, sr: int | None = None, offset: float = 0.0,
                 duration: float | None = None, pipe: bool = False,
                 block_seconds: float = BLOCK_SECONDS):
        self.name = f"pipe '{source}'" if pipe else str(source)
        self._path = None if pipe else Path(source)
        data = _run_pipe(source) if pipe else None
        if self._path is not None and not self._path.is_file():
            raise AudioError(f"{self._path}: audio file not found" if not self._path.exists()
                             else f"{self._path}: not a regular file")
        try:
            self._fh = sf.SoundFile(io.BytesIO(data) if pipe else str(self._path))
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise self._unreadable(exc) from None
        try:
            self.native_rate = _check_rate(self.name if pipe else self._path,
                                           self._fh.samplerate)
            self._start, self._stop = _frame_range(source if pipe else self._path,
                                                   self._fh.frames, self.native_rate, offset,
                                                   duration)
        except AudioError:
            self._fh.close()
            raise
        self.rate = sr or self.native_rate
        self._block = max(1, int(block_seconds * self.native_rate))

    def _unreadable(self, exc: Exception) -> AudioError:
        if self._path is None:
            return AudioError(f"{self.name}: output is not readable audio ({_reason(exc)})")
        return AudioError(f"{self.name}: unreadable audio ({_reason(exc)})")

    def __enter__(self) -> "AudioBlocks":
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()

    def __iter__(self) -> Iterator[np.ndarray]:
        fh, resampler = self._fh, None
        if self.rate != self.native_rate:
            import soxr  # a dependency of librosa

            resampler = soxr.ResampleStream(self.native_rate, self.rate, 1, dtype="float32",
                                            quality="HQ")
        try:
            if self._start:
                fh.seek(self._start)
            left = self._stop - self._start
            while left > 0:
                y = fh.read(frames=min(self._block, left), dtype="float32", always_2d=True)
                if y.shape[0] == 0:
                    break
                left -= y.shape[0]
                y = y[:, 0] if y.shape[1] == 1 else y.mean(axis=1, dtype=np.float32)
                problem = sample_problem(y)
                if problem:
                    raise AudioError(f"{self.name}: {problem}")
                y = np.ascontiguousarray(y)
                if resampler is not None:
                    y = np.ascontiguousarray(resampler.resample_chunk(y, last=left <= 0),
                                             dtype=np.float32)
                yield y
            if self._path is not None and fh.format == "WAV":
                _check_wav_complete(self._path)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise self._unreadable(exc) from None
        finally:
            fh.close()


def _joined(audio: AudioBlocks) -> np.ndarray:
    blocks = list(audio)
    y = blocks[0] if len(blocks) == 1 else np.concatenate(blocks) if blocks else np.empty(0)
    if y.size == 0:
        raise AudioError(f"{audio.name}: audio is empty (0 samples)")
    return y


def _run_pipe(command: str) -> bytes:
    cmd = command.rstrip()
    if cmd.endswith("|"):
        cmd = cmd[:-1]
    try:
        proc = subprocess.run(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              check=False)
    except OSError as exc:
        raise AudioError(f"pipe '{command}': could not run ({exc})") from None
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise AudioError(f"pipe '{command}': exited with status {proc.returncode}"
                         + (f" ({err[-1]})" if err else ""))
    if not proc.stdout:
        raise AudioError(f"pipe '{command}': produced no output")
    return proc.stdout


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample with soxr's high-quality filter, the engine behind ``librosa.resample``.

    soxr is called directly: ``librosa.resample(res_type="soxr_hq")`` computes the same
    thing but costs about 10 ms of overhead a call, which dominates on short files.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
    orig_sr, target_sr : int

    Returns
    -------
    np.ndarray [shape=(m,), dtype=float32]
    """
    if orig_sr == target_sr:
        return y
    import soxr  # a dependency of librosa

    return np.ascontiguousarray(soxr.resample(y, orig_sr, target_sr, quality="HQ"),
                                dtype=np.float32)


def duration(path: str | os.PathLike) -> float:
    """Duration in seconds from the file header (no decoding)."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"{path}: unreadable audio ({_reason(exc)})") from None
    return info.frames / _check_rate(path, info.samplerate)


def _check_rate(src, rate: int) -> int:
    low, high = SAMPLE_RATES
    if not low <= rate <= high:
        raise AudioError(f"{src}: the header's sampling rate {rate} Hz is outside {low}-{high} "
                         "Hz; the file is damaged, or its header wrong (re-encode it with the "
                         "right rate)")
    return rate


def _frame_range(src, n_frames: int, rate: int, offset: float, duration: float | None):
    if n_frames <= 0:
        raise AudioError(f"{src}: audio is empty (0 samples)")
    if offset < 0 or (duration is not None and duration <= 0):
        raise AudioError(f"{src}: bad segment (offset {offset} s, duration {duration} s)")
    start = int(round(offset * rate))
    stop = n_frames if duration is None else min(n_frames, start + int(round(duration * rate)))
    if start >= n_frames:
        raise AudioError(f"{src}: segment starts at {offset:.3f} s, after the end of the audio "
                         f"({n_frames / rate:.3f} s)")
    return start, stop


def _reason(exc: Exception) -> str:
    msg = str(exc)
    # libsndfile prefixes messages with "Error opening '<path>': "; the path is said already.
    return msg.split(": ", 1)[1] if msg.startswith("Error opening") and ": " in msg else msg


def _check_wav_complete(path: Path) -> None:
    """Raise if a RIFF/WAVE file's data chunk claims more bytes than the file holds.

    libsndfile reads a truncated WAV without complaint, returning fewer samples than the
    header announces; a file cut short by a failed copy would then pass as a shorter one.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return  # RF64, W64 and friends: nothing to check here
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            chunk = fh.read(8)
            if len(chunk) < 8:
                return
            cid, csize = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                available = size - (pos + 8)
                # 0 and 0xFFFFFFFF mark streamed files whose writer never knew the size.
                if csize not in (0, 0xFFFFFFFF) and csize > available:
                    raise AudioError(
                        f"{path}: truncated WAV file (header announces {csize} bytes of "
                        f"audio, the file holds {available})")
                return
            pos += 8 + csize + (csize & 1)


class SignalBlocks(list):
    """A signal already in memory as one block, to use where :class:`AudioBlocks` are
    (iterated, and as a context manager)."""

    def __init__(self, y):
        super().__init__([np.asarray(y, np.float32)])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
