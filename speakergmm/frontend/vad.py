"""Energy-based voice activity detection.

The rule, chosen for speaker recognition on read and conversational speech:

1. Frame energy is the mean square of the raw signal (before pre-emphasis) over the
   analysis window centred on each frame, less the frame's mean (a DC offset is not
   sound; Kaldi's ``remove-dc-offset``), in dB relative to digital full scale (dBFS: a
   full-scale sine is -3 dBFS).
2. A recording whose energy does not move is not speech: speech rises and falls with
   its syllables, while stationary noise, a hum, a test tone or a constant level stay
   flat. When the middle 90% of the energy contour (over 3 frames, edge frames left
   out) spans less than ``MIN_RANGE_DB``, no frame is speech. Measured
   (``energy_spread``): a constant, a tone, a hum 0 dB; white noise 0.6-0.9 dB; the
   flattest of FSDD's 3,000 trimmed digits (a held vowel of 0.2 s) 3.0 dB, 1% of them
   below 6.3 dB; speechocean762's flattest 19.7 dB. Pink noise (1.9-2.4 dB), brown
   noise (6.5-8 dB) and a tone between silences pass for speech: the limit of a rule on
   energy, which the margin below the flattest speech leaves in place. Feature extraction
   applies this test with the VAD off too (``vad: "none"``): a recording that is not
   speech at all is refused, whatever the frame selection.
3. A frame is speech when its energy is within ``threshold_db`` of the utterance's loudest
   frames (the 99th percentile, so that one click does not set the reference) **and** above
   the absolute floor ``floor_db``. The relative part adapts to the recording level; the
   floor rejects digital silence and near-silent recordings, whose "loudest frames" are
   only noise.
4. The decision is smoothed by a majority vote over ``2 * context + 1`` frames (as Kaldi's
   ``compute-vad --vad-frames-context``), which fills short gaps inside words and drops
   isolated clicks.

A threshold relative to the loudest frames keeps nearly everything of a trimmed recording
(a digit spoken into a quiet room) where a two-class model would split speech into loud
and quiet halves; its limit is noise within ``threshold_db`` of the speech, which it keeps.
"""

from __future__ import annotations

import numpy as np

from .signal import GROUP, frame_signal

__all__ = ["frame_energy_db", "energy_vad", "energy_spread", "speech_runs", "MIN_RANGE_DB",
           "MIN_LEVEL_DBFS"]

_TINY = 1e-20  # -200 dBFS: what digital silence measures, finite and far below any floor
#: Least spread (dB) of the energy contour of speech; flatter recordings are not speech.
MIN_RANGE_DB = 2.0
#: Least level (dBFS) the loudest frames of speech reach (the 99th percentile of the frame
#: energies) where no VAD floor applies: quieter is silence, a dead input or stereo
#: channels that cancel (1 LSB of 16-bit PCM is -96 dBFS). The quietest of FSDD's 3,000
#: recordings reaches -48 dBFS, of speechocean762's 2,500 -34 dBFS.
MIN_LEVEL_DBFS = -70.0


def frame_energy_db(*, y: np.ndarray, hop_length: int, win_length: int) -> np.ndarray:
    """Mean-square energy of each frame in dBFS.

    Frames are centred at ``t * hop_length`` (librosa's ``center=True`` convention, so that
    energies line up with the MFCC frames, as many of them) and span ``win_length`` samples;
    samples outside the signal count as zeros.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        The signal, full scale = 1.
    hop_length, win_length : int
        Frame shift and length in samples.

    Returns
    -------
    np.ndarray [shape=(1 + n // hop_length,), dtype=float64]
    """
    frames = frame_signal(np.asarray(y, dtype=np.float32), frame_length=win_length,
                          hop_length=hop_length, left=win_length // 2)
    return np.concatenate([frames_energy_db(frames[b:b + GROUP])
                           for b in range(0, len(frames), GROUP)])


def frames_energy_db(frames: np.ndarray) -> np.ndarray:
    """:func:`frame_energy_db` of frames already cut, ``(n, win_length)``: the mean square
    about each frame's mean, in float64 (a large offset would cancel float32's digits)."""
    x = frames.astype(np.float64)
    x -= x.mean(axis=1, keepdims=True)
    mean_square = np.einsum("ij,ij->i", x, x) / frames.shape[1]
    return 10.0 * np.log10(np.maximum(mean_square, _TINY))


def energy_spread(energy_db: np.ndarray, *, edge: int = 2) -> float:
    """How far the energy contour moves, in dB: the 5th to 95th percentile of its 3-frame
    moving average, without ``edge`` frames at each end (their windows reach past the
    signal). Below :data:`MIN_RANGE_DB` a recording is not speech (module docstring)."""
    e = np.asarray(energy_db, dtype=np.float64)
    if e.size > 2 * edge + 3:
        e = e[edge:e.size - edge]
    if e.size >= 3:
        e = np.convolve(e, np.ones(3) / 3, mode="valid")
    if e.size == 0:
        return 0.0
    low, high = np.percentile(e, [5, 95])
    return float(high - low)


def energy_vad(
    *,
    energy_db: np.ndarray,
    threshold_db: float = 30.0,
    floor_db: float = -60.0,
    context: int = 2,
) -> np.ndarray:
    """Speech / non-speech decision per frame from frame energies.

    Parameters
    ----------
    energy_db : np.ndarray [shape=(n_frames,)]
        Frame energies in dBFS, e.g. from :func:`frame_energy_db`.
    threshold_db : float
        Keep frames at most this far below the 99th percentile of the energies.
    floor_db : float
        Never keep frames below this absolute level (dBFS).
    context : int
        Half-width of the majority-vote smoothing window; 0 disables smoothing.

    Returns
    -------
    np.ndarray [shape=(n_frames,), dtype=bool]
        True for speech frames; none when the energy does not move
        (:func:`energy_spread` below :data:`MIN_RANGE_DB`).
    """
    energy_db = np.asarray(energy_db, dtype=np.float64)
    if energy_db.size == 0 or energy_spread(energy_db) < MIN_RANGE_DB:
        return np.zeros(energy_db.size, dtype=bool)
    k = int(0.99 * (energy_db.size - 1))  # nearest-rank 99th percentile, in O(n)
    reference = np.partition(energy_db, k)[k]
    speech = energy_db > max(reference - threshold_db, floor_db)
    if context > 0 and speech.size > 1:
        width = 2 * context + 1
        votes = np.convolve(speech.astype(np.int32), np.ones(width, dtype=np.int32), mode="same")
        # At the edges the window is cut short: compare with the frames it really covers.
        covered = np.convolve(np.ones(speech.size, dtype=np.int32),
                              np.ones(width, dtype=np.int32), mode="same")
        speech = 2 * votes > covered
    return speech


def speech_runs(speech: np.ndarray) -> list[tuple[int, int]]:
    """The runs of speech frames of a decision, as ``[start, end)`` frame indices."""
    edges = np.flatnonzero(np.diff(np.r_[0, np.asarray(speech, np.int8), 0]))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))
