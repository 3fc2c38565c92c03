"""Training what a :class:`~speakergmm.diarization.Diarizer` adds to a system: the
i-vector extractor and PLDA of windows, and the calibration of window pairs."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from ..data.rttm import Turn
from ..errors import ParameterError
from .diarizer import Diarizer, speech_features

__all__ = ["train_diarizer", "calibrate_pairs", "conversation_recordings"]

# i-vectors extracted (and statistics held) per block of windows
_BLOCK = 512


def train_diarizer(system, detector, data, *, audio_root: str | os.PathLike | None = None,
                   n_factors: int = 100, n_iterations: int = 6, lda: int | None = 50,
                   plda_iterations: int = 10, seed: int = 0, settings: dict | None = None,
                   conversations: Sequence = (), executor=None,
                   progress: Callable[[str], None] | None = None) -> Diarizer:
    """A :class:`Diarizer` for ``system`` and ``detector`` trained on recordings of one
    speaker each: the windows the diarizer cuts from their speech (``window`` frames every
    ``hop``), an i-vector extractor on the system's UBM trained on those windows, and a
    PLDA back-end (LDA to ``lda``, length normalisation, PLDA) on their i-vectors
    labelled by speaker; then the calibration of window pairs (:func:`calibrate_pairs`)
    on ``conversations`` (without them it stays ``(1, 0)``: raw PLDA scores, which the
    threshold 0 does not suit).

    Parameters
    ----------
    system : System
        Whose features keep every frame (``vad`` "none").
    detector : SpeechDetector
    data : DataDir or path
        A data directory of single-speaker recordings (``utt2spk`` gives the speakers),
        read at the system's rate.
    audio_root : path, optional
        What relative ``wav.scp`` paths resolve against.
    n_factors, n_iterations, seed
        Of :meth:`IVectorExtractor.fit <speakergmm.gmm.ivector.IVectorExtractor.fit>`
        (the bundled models: 100 factors, 6 iterations).
    lda, plda_iterations
        Of :meth:`VectorBackend.train <speakergmm.backend.vectors.VectorBackend.train>`.
    settings : dict, optional
        The diarizer's other settings (:attr:`Diarizer.SETTINGS`); ``window``, ``hop``
        and ``shortest`` also cut the training windows.
    conversations : sequence of path or DataDir
        Data directories of recordings of several speakers with their reference turns
        in a file ``rttm`` beside them (:func:`speakergmm.corpora.prepare_conversations`
        writes such), of other speakers than ``data``'s.
    executor : int, Executor or dask.distributed.Client, optional
        Where the recordings are read and the extractor's statistics computed.
    progress : callable(str), optional

    Returns
    -------
    Diarizer

    Raises
    ------
    ParameterError
        Too few windows or speakers for the models asked for.
    """
    from ..backend.vectors import VectorBackend
    from ..data.datadir import DataDir, read_data_dir
    from ..exec import get_executor
    from ..gmm.ivector import IVectorExtractor

    settings = dict(settings or {})
    unknown = set(settings) - set(Diarizer.SETTINGS)
    if unknown:
        raise ParameterError(f"unknown diarizer setting(s) {sorted(unknown)}: the settings are "
                             f"{', '.join(Diarizer.SETTINGS)}")
    Diarizer.check(system, detector, **{**Diarizer.DEFAULTS, **settings})
    cut = {k: settings.get(k, Diarizer.DEFAULTS[k]) for k in ("window", "hop", "shortest")}
    data = data if isinstance(data, DataDir) else read_data_dir(data)
    items = [(u, data.audio_of(u, audio_root)) for u in data.utterances]
    found = get_executor(executor).map(_recording_windows, items, (system, detector, cut))
    features, labels = {}, []
    for (utt, _), (windows, x) in zip(items, found):
        for i, (a, b) in enumerate(windows):
            features[f"{utt}/{i:04d}"] = x[a:b]
            labels.append(data.utt2spk[utt])
    del found
    if progress:
        progress(f"{len(features)} windows of {len(set(labels))} speakers from {len(items)} "
                 "recordings")
    speakers = len(set(labels))
    if speakers < 2:
        raise ParameterError(f"{data.path}: diarization models need windows of at least two "
                             f"speakers; got {speakers}")
    if lda and lda > min(speakers - 1, n_factors):
        # (said now, not after the extractor's training)
        raise ParameterError(f"{data.path}: LDA to {lda} dimensions needs more speakers and "
                             f"factors: {speakers} speakers and {n_factors} factors allow at "
                             f"most {min(speakers - 1, n_factors)} (--lda)")
    keys = list(features)
    extractor = IVectorExtractor.fit(
        system.ubm, features, utterances=keys, n_factors=n_factors, n_iterations=n_iterations,
        seed=seed, executor=executor,
        progress=progress and (lambda i, obj: progress(f"i-vector iteration {i}: {obj:.3f}")))
    ivectors = []
    for lo in range(0, len(keys), _BLOCK):
        stats = [system.ubm.accumulate(features[k]) for k in keys[lo:lo + _BLOCK]]
        ivectors.append(extractor.extract(np.array([s.n for s in stats]),
                                          np.array([s.f for s in stats])))
    backend = VectorBackend.train(
        np.concatenate(ivectors), np.array(labels), lda=lda, n_iterations=plda_iterations,
        progress=progress and (lambda i, llk: progress(f"PLDA iteration {i}: {llk:.3f}")))
    diarizer = Diarizer(system, detector, extractor, backend, **settings)
    if conversations:
        recordings = list(conversation_recordings(conversations,
                                                  sr=system.config.sample_rate,
                                                  audio_root=audio_root))
        settings["calibration"] = calibrate_pairs(diarizer, recordings)
        if progress:
            progress(f"calibration on {len(recordings)} conversations: LLR = "
                     f"{settings['calibration'][0]:.4g} s + {settings['calibration'][1]:.4g}")
        diarizer = Diarizer(system, detector, extractor, backend, **settings)
    return diarizer


def conversation_recordings(directories: Sequence, *, sr: int,
                            audio_root: str | os.PathLike | None = None):
    """``(signal, rate, reference turns)`` of each recording of data directories that hold
    their reference in a file ``rttm`` (a recording the RTTM does not name has no speech).

    Raises
    ------
    DataDirError
        A directory without its ``rttm``.
    """
    from pathlib import Path

    from ..data.datadir import DataDir, read_data_dir
    from ..data.rttm import read_rttm
    from ..errors import DataDirError
    from ..frontend.audio import load_ref

    for where in directories:
        data = where if isinstance(where, DataDir) else read_data_dir(where)
        path = Path(data.path) / "rttm"
        if not path.is_file():
            raise DataDirError(f"{data.path}: no rttm file (the reference turns of its "
                               "recordings); speakergmm prepare conversations writes one")
        reference = read_rttm(path)
        for rec in data.wav_scp:
            y, rate = load_ref(data.audio_of(rec, audio_root), sr=sr)
            yield y, rate, reference.get(rec, [])


def _recording_windows(state, item) -> tuple[list, np.ndarray | None]:
    """The windows and features of one training recording."""
    from ..frontend.audio import load_ref

    system, detector, cut = state
    y, sr = load_ref(item[1], sr=system.config.sample_rate)
    windows, x, _ = speech_features(system, detector, y, sr, **cut)
    return windows, x



def calibrate_pairs(diarizer: Diarizer,
                    recordings: Sequence[tuple[np.ndarray, int, Sequence[Turn]]], *,
                    purity: float = 0.8) -> tuple[float, float]:
    """``(a, b)`` calibrating a diarizer's pair scores: logistic regression at even odds
    (:func:`~speakergmm.backend.calibration.train_logistic`) of the PLDA scores of every
    pair of windows within each recording, a pair being of one speaker or of two by the
    reference. Windows under ``purity`` of one reference speaker are left out.

    Parameters
    ----------
    diarizer : Diarizer
    recordings : sequence of (signal, rate, reference turns)
        Dev conversations (at the system's rate).
    """
    from ..backend.calibration import train_logistic

    same, different = [], []
    for y, sr, turns in recordings:
        windows, stats, _, _ = diarizer.windows(np.asarray(y, np.float32), sr)
        if len(windows) < 2:
            continue
        scores = diarizer.pair_scores(stats)
        shift = diarizer.system.config.frame_shift_ms / 1000
        who = []
        for a, b in windows:
            t = np.arange(a, b) * shift
            time = {s: 0 for s in {x.speaker for x in turns}}
            for x in turns:
                time[x.speaker] += int(np.sum((t >= x.start) & (t < x.end)))
            best = max(time, key=time.get) if time else None
            who.append(best if best is not None and time[best] >= purity * (b - a) else None)
        for i in range(len(windows)):
            for j in range(i + 1, len(windows)):
                if who[i] is not None and who[j] is not None:
                    (same if who[i] == who[j] else different).append(scores[i, j])
    if not same or not different:
        raise ParameterError("calibration needs pairs of windows of one speaker and of two: "
                             f"got {len(same)} and {len(different)}")
    weights, offset = train_logistic(np.array(same)[:, None], np.array(different)[:, None],
                                     0.5)[:2]
    return float(weights[0]), float(offset)
