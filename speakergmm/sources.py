"""The one way in: every command and library call that opens features, statistics or
vectors from disk opens them here.

Each input records what it depends on (a feature archive its feature config, a statistics
archive its UBM, channel compensation and features, a vector archive its extractor), and
each is checked against the model it is used with; nothing falls back to a default (a UBM
that records no feature config cannot have a data directory extracted for it, nor
archives checked against it). What opens:

- :func:`open_features`: a feature archive, a statistics archive, or a Kaldi-style data
  directory extracted on the fly with the UBM's feature config; several paths as their
  union (by utterance id);
- :func:`open_training_features`: archives of one feature config, for training (the same
  utterance id may appear in two of them);
- :func:`open_statistics`, :func:`frames_of`: statistics, and the frames they came from;
- :func:`open_vectors`: i-vectors, checked against the back-end that scores them.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ArchiveError, ModelError, SpeakerGMMError
from .gmm.mixture import DiagGMM, check_feature_config

__all__ = ["open_features", "open_training_features", "open_statistics", "frames_of",
           "open_vectors", "feature_config_of"]


def feature_config_of(model: DiagGMM, *, what: str = "the UBM"):
    """The feature config ``model`` records (:class:`~speakergmm.frontend.config.
    FeatureConfig`); ModelError if it records none: audio cannot be turned into matching
    features, and no default is assumed."""
    from .frontend.config import FeatureConfig

    recorded = model.metadata.get("feature_config")
    if recorded is None:
        raise ModelError(f"{what} records no feature config, so audio cannot be turned into "
                         "matching features; train it on a feature archive (train_ubm "
                         "records its config) or give its metadata the 'feature_config' of "
                         "its features")
    return FeatureConfig.from_dict(recorded)


def open_features(paths, model: DiagGMM, *, channel=None,
                  audio_root: str | os.PathLike | None = None,
                  workdir: str | os.PathLike | None = None, stats_ok: bool = True,
                  channel_fix: str | None = None):
    """What a path names, made ready for ``model`` (a UBM): a feature archive
    (channel-compensated on access when ``channel`` is given), a statistics archive
    (checked to be of ``model`` and ``channel``; ``channel_fix``: the advice when it is of
    another compensation, for a caller without --channel), or a data directory extracted
    with the UBM's feature config into ``workdir``. Several paths: their union by utterance
    id (an utterance in two of them is refused).

    Raises
    ------
    ArchiveError
        Features of another config than the UBM's, a data directory with failed
        utterances, a statistics archive where frames are needed (``stats_ok=False``).
    ModelError
        Statistics of another UBM or channel compensation; a UBM that records no feature
        config.
    """
    from .frontend.archive import ArchiveUnion

    if isinstance(paths, (str, os.PathLike)):
        return _open_one(paths, model, channel=channel, audio_root=audio_root,
                         workdir=workdir, stats_ok=stats_ok, channel_fix=channel_fix)
    members = [open_features(p, model, channel=channel, audio_root=audio_root,
                             workdir=workdir, stats_ok=stats_ok, channel_fix=channel_fix)
               for p in paths]
    if not members:
        raise ArchiveError("no feature archive given")
    return members[0] if len(members) == 1 else ArchiveUnion(members)


def _open_one(path, model: DiagGMM, *, channel, audio_root, workdir, stats_ok,
              channel_fix):
    from .frontend.archive import extract_archive, read_features
    from .frontend.kaldi import KaldiFeatures, is_kaldi_source
    from .gmm.eigenchannel import CompensatedFeatures

    if is_kaldi_source(path):
        features = _kaldi_for(KaldiFeatures(path), model)
        return features if channel is None else CompensatedFeatures(features, channel)
    if (path / "stats.json").is_file():
        if not stats_ok:
            raise ArchiveError(f"{path} is a statistics archive, but frames are needed here "
                               "(test utterances are scored frame by frame); give the "
                               "feature archive")
        return open_statistics(path, model, channel, fix=channel_fix)
    path = Path(path)
    if not (path / "config.json").is_file() and (path / "wav.scp").is_file():
        if workdir is None:
            raise ArchiveError(f"{path} is a data directory; extract it first "
                               "(speakergmm extract)")
        out = Path(workdir) / path.name
        summary = extract_archive(path, out, config=feature_config_of(model),
                                  audio_root=audio_root)
        if summary.failed:
            utt, reason = next(iter(summary.failed.items()))
            raise ArchiveError(f"{path}: {len(summary.failed)} utterance(s) failed, e.g. "
                               f"{utt}: {reason}")
        path = out
    features = read_features(path)
    check_feature_config(model, features)
    return features if channel is None else CompensatedFeatures(features, channel)


def open_training_features(paths):
    """Feature archives of one feature config (or Kaldi feature tables, of one dimension)
    as one mapping to train on (keys ``(archive index, utterance id)``: the same utterance
    id may be in two of them). ArchiveError if their configs differ."""
    from .frontend.archive import ArchiveSet, FeatureArchive
    from .frontend.kaldi import KaldiFeatures, is_kaldi_source

    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    return ArchiveSet([KaldiFeatures(p) if is_kaldi_source(p) else FeatureArchive(p)
                       for p in paths])


def _kaldi_for(features, model: DiagGMM):
    """Kaldi features, checked against ``model`` by what they have: the feature config
    speakergmm wrote beside them, else their dimension."""
    if features.config is not None:
        check_feature_config(model, features)
    if features.dim != model.dim:
        raise ArchiveError(f"{features.path}: Kaldi features of dimension {features.dim}, "
                           f"but the UBM takes {model.dim}; give the features it was trained "
                           "on")
    return features


def open_statistics(path: str | os.PathLike, ubm: DiagGMM, channel=None, *,
                    fix: str | None = None):
    """A statistics archive, checked to be of ``ubm`` and ``channel`` (ModelError naming
    the archive and, with ``fix``, what to do)."""
    from .gmm.statsarchive import read_stats

    return read_stats(path).check(ubm, channel, fix=fix)


def frames_of(stats, ubm: DiagGMM, channel=None):
    """The (compensated) feature archive a statistics archive was computed from."""
    from .frontend.archive import read_features
    from .gmm.eigenchannel import CompensatedFeatures

    source = stats.header.get("features")
    if not source or not (Path(source) / "config.json").is_file():
        raise ArchiveError(f"{stats.path}: the feature archive its statistics came from "
                           f"({source}) is gone; the cohort's utterances are scored from "
                           "their frames: give the feature archive")
    features = read_features(source)
    check_feature_config(ubm, features)
    return features if channel is None else CompensatedFeatures(features, channel)


def open_vectors(source, backend=None, *, name: str = "the back-end"):
    """A vector archive (i-vectors; a path or an open archive; or a Kaldi vector table:
    a folder with ivector.scp or xvector.scp, an ``scp:``/``ark:`` specifier), checked
    against the ``backend`` (:class:`~speakergmm.backend.vectors.VectorBackend`) that will
    score it: SpeakerGMMError naming the archive when its vectors are of another extractor
    (their dimensions mean other things) or of another dimension. A back-end that records
    neither (trained on bare arrays) takes them as they are."""
    from .frontend.kaldi import KaldiVectors, is_kaldi_vectors
    from .gmm.ivector import VectorArchive

    if isinstance(source, (VectorArchive, KaldiVectors)):
        archive = source
    elif is_kaldi_vectors(source):
        archive = KaldiVectors(source)
    else:
        archive = VectorArchive(source)
    if backend is None:
        return archive
    want = backend.metadata.get("extractor_fingerprint")
    got = archive.extractor_fingerprint
    if want and got and want != got:
        raise SpeakerGMMError(
            f"{archive.path}: i-vectors of extractor {got}, but {name} was trained on those "
            f"of extractor {want}; extract them with that extractor, or train the back-end "
            "on these ('speakergmm train-plda')")
    dim = backend.metadata.get("dim")
    if isinstance(dim, int) and dim != archive.dim:
        raise SpeakerGMMError(f"{archive.path}: i-vectors of dimension {archive.dim}, but "
                              f"{name} takes {dim}; use the vectors it was trained on")
    return archive
