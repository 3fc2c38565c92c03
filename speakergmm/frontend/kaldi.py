"""Kaldi feature tables (ark/scp) as utterance mappings, read through ``kaldi-native-io``
(Apache-2.0, the optional extra ``[kaldi]``; not kaldiio, whose licence forbids
redistribution).

A Kaldi data directory with a ``feats.scp`` (float or double matrices, compressed ones
included, as ``compute-mfcc-feats`` and ``copy-feats --compress`` write them), or a
table specifier ``scp:PATH`` / ``ark:PATH``, reads as a lazy mapping of utterance id to
``(frames, D)`` float32 features: random access through the scp; an ark without its scp
is read whole into memory. Kaldi features record no speakergmm feature config: they are
checked against a model by dimension only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from ..errors import ArchiveError

__all__ = ["KaldiFeatures", "is_kaldi_source", "kaldi_io"]

_EXTRA = "pip install -e '.[kaldi]' (kaldi-native-io)"


def kaldi_io():
    """The ``kaldi_native_io`` module, or ArchiveError saying how to install it."""
    try:
        import kaldi_native_io
    except ImportError:
        raise ArchiveError(f"Kaldi ark/scp input and output need the optional extra: "
                           f"{_EXTRA}") from None
    return kaldi_native_io


def is_kaldi_source(source) -> bool:
    """Whether ``source`` names Kaldi features: an ``scp:``/``ark:`` specifier, or a
    directory with a ``feats.scp`` and no speakergmm ``config.json`` (a Kaldi data
    directory; a speakergmm archive of an earlier version also has a feats.scp, and its
    config.json)."""
    text = os.fspath(source)
    if text.startswith(("scp:", "ark:")):
        return True
    path = Path(text)
    return (path / "feats.scp").is_file() and not (path / "config.json").is_file()


class KaldiFeatures(Mapping):
    """Read-only mapping utterance id -> ``(frames, D)`` float32 features of a Kaldi table.

    Parameters
    ----------
    source : str or path
        A Kaldi data directory (its ``feats.scp``, and its ``utt2spk`` if any), or an
        ``scp:PATH`` or ``ark:PATH`` specifier.

    Attributes
    ----------
    path : Path
        The data directory, scp or ark.
    config : None
        Kaldi features record no speakergmm feature config.
    utt2spk : dict
    """

    config = None

    def __init__(self, source: str | os.PathLike):
        kaldi_io()
        text = os.fspath(source)
        self.utt2spk: dict[str, str] = {}
        self._table: dict[str, np.ndarray] | None = None
        if text.startswith("ark:"):
            self.path, self._scp = Path(text[4:]), None
            self._table = self._read_ark()
            self._keys = list(self._table)
        else:
            if text.startswith("scp:"):
                self._scp = Path(text[4:])
                self.path = self._scp
            else:
                self.path = Path(text)
                self._scp = self.path / "feats.scp"
                if (self.path / "utt2spk").is_file():
                    from ..data.textmap import read_kaldi_map

                    self.utt2spk = read_kaldi_map(self.path / "utt2spk", n_values=1)
            if not self._scp.is_file():
                raise ArchiveError(f"{self._scp}: no such Kaldi scp file")
            from ..data.textmap import read_kaldi_map

            self._keys = list(read_kaldi_map(self._scp))
        if not self._keys:
            raise ArchiveError(f"{self.path}: a Kaldi table of no utterances")
        self._index = set(self._keys)
        self._reader = self._shapes = None
        self.dim = self[self._keys[0]].shape[1]

    def _read_ark(self) -> dict[str, np.ndarray]:
        try:
            reader = kaldi_io().SequentialFloatMatrixReader(f"ark:{self.path}")
            return {key: np.array(value, dtype=np.float32) for key, value in reader}
        except RuntimeError as exc:
            raise ArchiveError(f"{self.path}: not a readable Kaldi ark of matrices "
                               f"({_first_line(exc)})") from None

    def __getstate__(self):  # the native readers do not travel to worker processes
        return {**self.__dict__, "_reader": None, "_shapes": None}

    def num_frames(self, utt: str) -> int:
        """Frames of one utterance, from its matrix header (its rows are not read)."""
        if self._table is not None:
            return self._table[utt].shape[0]
        if utt not in self._index:
            raise KeyError(utt)
        try:
            if self._shapes is None:
                self._shapes = kaldi_io().RandomAccessMatrixShapeReader(f"scp:{self._scp}")
            return int(self._shapes[utt].num_rows)
        except RuntimeError as exc:
            raise ArchiveError(f"{self._scp}: utterance '{utt}' cannot be read "
                               f"({_first_line(exc)})") from None

    def __getitem__(self, utt: str) -> np.ndarray:
        if self._table is not None:
            return self._table[utt]
        if utt not in self._index:
            raise KeyError(utt)
        try:
            if self._reader is None:
                self._reader = kaldi_io().RandomAccessFloatMatrixReader(f"scp:{self._scp}")
            # (a copy: the reader owns the memory of what it returns)
            x = np.array(self._reader[utt], dtype=np.float32)
        except RuntimeError as exc:
            raise ArchiveError(f"{self._scp}: utterance '{utt}' cannot be read "
                               f"({_first_line(exc)})") from None
        if x.ndim != 2 or x.shape[0] == 0:
            raise ArchiveError(f"{self._scp}: utterance '{utt}' holds a matrix of shape "
                               f"{x.shape}, not (frames, D)")
        return x

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, utt) -> bool:
        return utt in self._index

    def __repr__(self) -> str:
        return f"KaldiFeatures({str(self.path)!r}, {len(self)} utterances, dim={self.dim})"


def _first_line(exc: Exception) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(exc).__name__
