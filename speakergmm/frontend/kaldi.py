"""Kaldi tables (ark/scp): features and vectors in and out.

Reading goes through ``kaldi-native-io`` (Apache-2.0, the optional extra ``[kaldi]``; not
kaldiio, whose licence forbids redistribution). A Kaldi data directory with a
``feats.scp`` (float or double matrices, compressed ones included, as
``compute-mfcc-feats`` and ``copy-feats --compress`` write them), or a table specifier
``scp:PATH`` / ``ark:PATH``, reads as a lazy mapping of utterance id to ``(frames, D)``
float32 features (:class:`KaldiFeatures`); a folder with an ``ivector.scp`` or
``xvector.scp`` (Kaldi's ``extract_ivectors.sh``, ``extract_xvectors.sh``), or a
specifier, as a mapping to ``(dim,)`` vectors (:class:`KaldiVectors`). Random access goes
through the scp; an ark without its scp is read whole into memory. Kaldi's own features
record no speakergmm feature config (checked against a model by dimension only); those
speakergmm writes keep theirs in ``config.json`` beside the scp.

Writing needs no extra: the binary float ark format is a few header bytes per entry
(:func:`write_ark_part`). speakergmm writes its Kaldi output as Kaldi's scripts do: ark
parts, and an scp with absolute paths (an scp's relative paths resolve against the
reader's working directory, not the scp's folder).
"""

from __future__ import annotations

import os
import struct
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from .._io import atomic_write, write_text_atomic
from ..errors import ArchiveError

__all__ = ["KaldiFeatures", "KaldiVectors", "is_kaldi_source", "is_kaldi_vectors", "kaldi_io",
           "write_ark_part", "ark_part_present", "stack_vectors", "write_kaldi_index",
           "KALDI_VECTOR_INDEX"]

#: The index of the vectors speakergmm writes in Kaldi's format (Kaldi's name for i-vectors).
KALDI_VECTOR_INDEX = "ivector.scp"
# Kaldi's names for the vector indexes of a folder, in the order they are looked for.
_VECTOR_INDEXES = ("ivector.scp", "xvector.scp")

_EXTRA = "pip install -e '.[kaldi]' (kaldi-native-io)"


def kaldi_io():
    """The ``kaldi_native_io`` module, or ArchiveError saying how to install it."""
    try:
        import kaldi_native_io
    except ImportError:
        raise ArchiveError(f"Kaldi ark/scp input and output need the optional extra: "
                           f"{_EXTRA}") from None
    return kaldi_native_io


class _Unopened:
    is_open = False


def _reader(kind: str, spec: str):
    """kaldi_native_io's ``kind`` reader opened on ``spec`` (RuntimeError if it cannot
    be). Made so that a reader that fails to open is dropped quietly: the package's own
    constructor leaves it without the native object its finaliser closes, which then
    prints an ignored exception."""
    cls = getattr(kaldi_io(), kind)
    reader = cls.__new__(cls)
    reader._impl = _Unopened()
    reader.open(spec)
    return reader


def is_kaldi_source(source) -> bool:
    """Whether ``source`` names Kaldi features: an ``scp:``/``ark:`` specifier, or a
    directory with a ``feats.scp`` (a Kaldi data directory, or ``speakergmm extract
    --format kaldi``) that is not the index of a speakergmm archive of an earlier version
    (``<utt> feats/part-x.npy[0:412]`` lines)."""
    text = os.fspath(source)
    if text.startswith(("scp:", "ark:")):
        return True
    scp = Path(text) / "feats.scp"
    if not scp.is_file():
        return False
    with open(scp, encoding="utf-8", errors="replace") as fh:
        first = fh.readline().rstrip()
    return not (first.endswith("]") and ".npy[" in first)


def is_kaldi_vectors(source) -> bool:
    """Whether ``source`` names Kaldi vectors: an ``scp:``/``ark:`` specifier, or a folder
    with an ``ivector.scp`` or ``xvector.scp``."""
    text = os.fspath(source)
    return text.startswith(("scp:", "ark:")) or any(
        (Path(text) / name).is_file() for name in _VECTOR_INDEXES)


# --- writing -------------------------------------------------------------------------------

def _ark_value(array: np.ndarray) -> bytes:
    """Kaldi's binary form of a float32 matrix ("FM") or vector ("FV")."""
    a = np.ascontiguousarray(array, dtype="<f4")
    if a.ndim == 2:
        head = b"\0BFM \x04" + struct.pack("<i", a.shape[0]) + b"\x04" + \
            struct.pack("<i", a.shape[1])
    elif a.ndim == 1:
        head = b"\0BFV \x04" + struct.pack("<i", a.shape[0])
    else:
        raise ArchiveError(f"a Kaldi table holds matrices or vectors, not shape {a.shape}")
    return head + a.tobytes()


def write_ark_part(parts_dir: Path, items: Sequence[tuple[str, np.ndarray]]) -> str:
    """Write ``(key, array)`` items as one binary Kaldi ark, ``part-<hex>.ark``, with its
    offsets in ``part-<hex>.scp`` (``<key> <offset>`` lines), each file atomically (the
    offsets last: a part counts as written once they exist). Returns the ark's name.

    Keys are utterance ids: one word, as in every Kaldi table."""
    stem = f"part-{uuid.uuid4().hex[:16]}"
    offsets = []
    with atomic_write(parts_dir / f"{stem}.ark", "wb") as fh:
        position = 0
        for key, array in items:
            if not key or any(c.isspace() for c in key):
                raise ArchiveError(f"utterance id {key!r} cannot key a Kaldi table (one "
                                   "word, no spaces)")
            prefix = key.encode("utf-8") + b" "
            offsets.append(f"{key} {position + len(prefix)}\n")
            data = prefix + _ark_value(array)
            fh.write(data)
            position += len(data)
    write_text_atomic(parts_dir / f"{stem}.scp", "".join(offsets))
    return f"{stem}.ark"


def ark_part_present(parts_dir: Path, name: str) -> bool:
    """Whether the part ``name`` of :func:`write_ark_part` is whole on disk."""
    return (parts_dir / name).is_file() and \
        (parts_dir / (name.removesuffix(".ark") + ".scp")).is_file()


def write_kaldi_index(path: Path, parts_dir: Path, parts: Mapping[str, str]) -> None:
    """Write the scp ``path`` of the utterances ``parts`` (utt -> the ark part holding
    it, as :func:`write_ark_part` named it), in that order, with absolute paths."""
    offsets: dict[str, dict[str, str]] = {}
    lines = []
    root = parts_dir.resolve()
    for utt, name in parts.items():
        if name not in offsets:
            from ..data.textmap import read_kaldi_map

            offsets[name] = read_kaldi_map(parts_dir / (name.removesuffix(".ark") + ".scp"),
                                           n_values=1)
        try:
            lines.append(f"{utt} {root / name}:{offsets[name][utt]}\n")
        except KeyError:
            raise ArchiveError(f"{parts_dir / name}: holds no '{utt}'; the archive is "
                               "damaged: write it again into a new directory") from None
    write_text_atomic(path, "".join(lines))


# --- reading -------------------------------------------------------------------------------


class _KaldiTable(Mapping):
    """Read-only, lazy mapping key -> float32 array of a Kaldi table: a folder (its index
    ``_INDEXES``, its ``utt2spk`` if any), or an ``scp:``/``ark:`` specifier."""

    _INDEXES: tuple[str, ...] = ()
    _KIND = ""     # kaldi_native_io's name of the value type: "FloatMatrix", "FloatVector"
    _NDIM = 0
    _HOLDS = ""

    def __init__(self, source: str | os.PathLike):
        kaldi_io()
        text = os.fspath(source)
        self.utt2spk: dict[str, str] = {}
        self._table: dict[str, np.ndarray] | None = None
        self._folder: Path | None = None
        from ..data.textmap import read_kaldi_map

        if text.startswith("ark:"):
            self.path, self._scp = Path(text[4:]), None
            self._table = self._read_ark()
            self._keys = list(self._table)
        else:
            if text.startswith("scp:"):
                self._scp = Path(text[4:])
                self.path = self._scp
            else:
                self.path = self._folder = Path(text)
                self._scp = next((self.path / n for n in self._INDEXES
                                  if (self.path / n).is_file()), self.path / self._INDEXES[0])
                if (self.path / "utt2spk").is_file():
                    self.utt2spk = read_kaldi_map(self.path / "utt2spk", n_values=1)
            if not self._scp.is_file():
                raise ArchiveError(f"{self._scp}: no such Kaldi scp file")
            self._keys = list(read_kaldi_map(self._scp))
        if not self._keys:
            raise ArchiveError(f"{self.path}: a Kaldi table of no utterances")
        self._index = set(self._keys)
        self._reader = None

    def _read_ark(self) -> dict[str, np.ndarray]:
        try:
            reader = _reader(f"Sequential{self._KIND}Reader", f"ark:{self.path}")
            return {key: self._checked(key, np.array(value, dtype=np.float32))
                    for key, value in reader}
        except RuntimeError as exc:
            raise ArchiveError(f"{self.path}: not a readable Kaldi ark of {self._HOLDS} "
                               f"({_first_line(exc)})") from None

    def __getstate__(self):  # the native readers do not travel to worker processes
        return {**self.__dict__, "_reader": None}

    def _checked(self, key: str, x: np.ndarray) -> np.ndarray:
        return x

    def __getitem__(self, utt: str) -> np.ndarray:
        if self._table is not None:
            return self._table[utt]
        if utt not in self._index:
            raise KeyError(utt)
        try:
            if self._reader is None:
                self._reader = _reader(f"RandomAccess{self._KIND}Reader", f"scp:{self._scp}")
            # (a copy: the reader owns the memory of what it returns)
            x = np.array(self._reader[utt], dtype=np.float32)
        except RuntimeError as exc:
            raise ArchiveError(f"{self._scp}: utterance '{utt}' cannot be read as "
                               f"{self._HOLDS} ({_first_line(exc)})") from None
        return self._checked(utt, x)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, utt) -> bool:
        return utt in self._index

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.path)!r}, {len(self)} utterances, "
                f"dim={self.dim})")


class KaldiFeatures(_KaldiTable):
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
    config : FeatureConfig or None
        The feature config of features speakergmm wrote (``config.json`` beside the
        scp); Kaldi's own features record none.
    utt2spk : dict
    dim : int
    """

    _INDEXES = ("feats.scp",)
    _KIND = "FloatMatrix"
    _HOLDS = "a matrix of features"

    def __init__(self, source: str | os.PathLike):
        super().__init__(source)
        self._shapes = None
        self.config = None
        if self._folder is not None and (self._folder / "config.json").is_file():
            from .config import FeatureConfig

            self.config = FeatureConfig.load(self._folder / "config.json")
        self.dim = self[self._keys[0]].shape[1]

    def __getstate__(self):
        return {**super().__getstate__(), "_shapes": None}

    def _checked(self, utt: str, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2 or x.shape[0] == 0:
            raise ArchiveError(f"{self.path}: utterance '{utt}' holds a matrix of shape "
                               f"{x.shape}, not (frames, D)")
        return x

    def num_frames(self, utt: str) -> int:
        """Frames of one utterance, from its matrix header (its rows are not read)."""
        if self._table is not None:
            return self._table[utt].shape[0]
        if utt not in self._index:
            raise KeyError(utt)
        try:
            if self._shapes is None:
                self._shapes = _reader("RandomAccessMatrixShapeReader", f"scp:{self._scp}")
            return int(self._shapes[utt].num_rows)
        except RuntimeError as exc:
            raise ArchiveError(f"{self._scp}: utterance '{utt}' cannot be read "
                               f"({_first_line(exc)})") from None


class KaldiVectors(_KaldiTable):
    """Read-only mapping utterance id -> ``(dim,)`` float32 vector of a Kaldi table:
    i-vectors or x-vectors of Kaldi's recipes, or those ``speakergmm extract-ivectors
    --format kaldi`` wrote. Used where a vector archive is
    (:func:`speakergmm.sources.open_vectors`).

    Parameters
    ----------
    source : str or path
        A folder with an ``ivector.scp`` or ``xvector.scp`` (and an ``utt2spk`` if any),
        or an ``scp:PATH`` / ``ark:PATH`` specifier.

    Attributes
    ----------
    path : Path
    header : dict
        What speakergmm recorded of vectors it wrote (``vectors.json``: extractor and
        UBM fingerprints); empty for Kaldi's own.
    dim : int
    utt2spk : dict
    """

    _INDEXES = _VECTOR_INDEXES
    _KIND = "FloatVector"
    _HOLDS = "a vector"

    def __init__(self, source: str | os.PathLike):
        super().__init__(source)
        self.header: dict = {}
        if self._folder is not None and (self._folder / "vectors.json").is_file():
            import json

            try:
                self.header = json.loads((self._folder / "vectors.json").read_text("utf-8"))
            except (OSError, ValueError) as exc:
                raise ArchiveError(f"{self._folder / 'vectors.json'}: unreadable "
                                   f"({exc})") from None
        self.dim = self[self._keys[0]].shape[0]

    @property
    def extractor_fingerprint(self) -> str | None:
        return self.header.get("extractor_fingerprint")

    def _checked(self, utt: str, x: np.ndarray) -> np.ndarray:
        if x.ndim != 1 or x.shape[0] == 0 or (hasattr(self, "dim") and x.shape[0] != self.dim):
            raise ArchiveError(f"{self.path}: utterance '{utt}' holds a vector of shape "
                               f"{x.shape}, not of the table's dimension")
        if not np.isfinite(x).all():
            raise ArchiveError(f"{self.path}: the vector of '{utt}' is not finite (NaN or "
                               "inf); write the table again")
        return x

    def matrix(self, utts) -> np.ndarray:
        """The vectors of ``utts`` stacked, (len(utts), dim) float32."""
        return stack_vectors(self, utts)


def stack_vectors(table, utts) -> np.ndarray:
    """The vectors ``table[u]`` of ``utts`` stacked, (len(utts), table.dim) float32."""
    utts = list(utts)
    out = np.empty((len(utts), table.dim), np.float32)
    for i, utt in enumerate(utts):
        out[i] = table[utt]
    return out


def _first_line(exc: Exception) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(exc).__name__
