"""Atomic file writing: a crash or Ctrl-C never leaves a half-written file behind; no
output written over an input."""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import socket
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any, Iterator, Mapping

import numpy as np

from ._version import __version__
from .errors import ModelError, ParameterError, SpeakerGMMError

# mkstemp creates files readable by their owner only; finished files get the usual mode.
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", *, fsync: bool = False,
                 private: bool = False) -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it over ``path`` only on success.

    The temporary file lives in the same directory (so the rename is atomic on POSIX) and
    starts with ``.`` and ends with ``.tmp`` so that listings of finished files skip it.
    On any exception, including KeyboardInterrupt, the temporary file is removed and
    ``path`` is left as it was. A process killed outright (SIGKILL, power loss) cannot
    remove its own: its name carries the host and process id, and the next write of the
    same file on that host removes those whose process is gone.

    Parameters
    ----------
    path : path-like
        The final file name.
    mode : {"w", "wb"}
        Text or binary.
    fsync : bool
        Flush to disk before the rename (survives power loss, not only process death).
    private : bool
        Readable by its owner only (mode 0600: secrets), from its first byte on.

    Raises
    ------
    OSError
        When the file cannot be created, written or renamed, with ``path`` as its file name
        (not the temporary's).
    """
    path = Path(path)
    _remove_dead_temporaries(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path),
                                   suffix=".tmp")
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o600 if private else 0o666 & ~_UMASK)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(path)) from None
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in _WRITE_ERRORS and exc.filename != str(path):
            # a full disk or a quota while writing: said of the file the user asked for
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        if isinstance(exc, OSError) and exc.errno is None and "requested and" in str(exc):
            # numpy's tofile (np.save) on a full disk: "142992 requested and 16352 written"
            raise OSError(errno.ENOSPC, f"No space left on device (a short write: {exc})",
                          str(path)) from None
        raise


# What writing the temporary file itself can fail with (others come from the caller's code
# inside the block, and keep their own message).
_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO}


_HOST = socket.gethostname().replace(".", "_")


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}.{_HOST}.{os.getpid()}."


def _remove_dead_temporaries(path: Path) -> None:
    """Remove the temporaries of ``path`` left by processes of this host that no longer run
    (another host's, or a live process's, are left alone: they may still be written)."""
    prefix = f".{path.name}.{_HOST}."
    with contextlib.suppress(OSError):
        for stale in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
            pid = stale.name[len(prefix):].split(".", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _same_or_within(a: Path, b: Path) -> bool:
    """``a`` is ``b`` (the same file through any link), or lies inside the folder ``b``."""
    if a.exists() and b.exists() and os.path.samefile(a, b):
        return True
    a, b = a.resolve(), b.resolve()
    return a == b or b in a.parents


def check_outputs(outputs: Mapping[str, os.PathLike | None], inputs: Mapping[str, Any], *,
                  roots: tuple[str, ...] = ()) -> None:
    """SpeakerGMMError when an output would be written over an input: no command changes its
    inputs.

    Refused: an output that is an input (the same path, or the same file through a link);
    a folder output that holds an input (the writer may replace what it holds); an output
    inside an input folder (``train-ubm feats -o feats/utt2spk`` overwrote the archive's
    list), except inside the folders named in ``roots`` (an audio or corpus root, which
    holds the work folder as often as not: only their own files are inputs); and two
    outputs that are one.

    Parameters
    ----------
    outputs, inputs : mapping name -> path
        Names as the user gave them (``-o``, ``DATA_DIR``), for the message. An input may
        be a list or tuple of paths; values that are not path objects (numbers, strings:
        a command's other options) are not inputs.
    roots : tuple of str
        Names of inputs that may hold outputs.
    """
    given = []
    for name, value in inputs.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        given += [(name, Path(v)) for v in values if isinstance(v, os.PathLike)]
    seen: list[tuple[str, Path]] = []
    for name, out in ((n, Path(p)) for n, p in outputs.items() if p is not None):
        for other, path in given:
            if _same_or_within(out, path) and (other not in roots or _same_or_within(path, out)):
                what = "is" if _same_or_within(path, out) else "lies inside"
            elif _same_or_within(path, out):
                what = "holds"
            else:
                continue
            raise SpeakerGMMError(f"the output {name} {out} {what} the input {other} {path}: "
                                  "write it elsewhere (no command changes its inputs)")
        _check_output_kind(name, out)
        for other, path in seen:
            if _same_or_within(out, path) or _same_or_within(path, out):
                raise SpeakerGMMError(f"the outputs {other} {path} and {name} {out} are one "
                                      "path: give each its own")
        seen.append((name, out))


def _check_output_kind(name: str, out: Path) -> None:
    """An output must be a new path, a regular file or a folder of its own: outputs are
    replaced atomically (a new file renamed over the path), so a symbolic link would be
    replaced rather than written through, and a device or FIFO cannot be (/dev/full took
    "wrote 450 scores"). Refused, naming what the path is."""
    import stat

    if out.is_symlink():
        raise SpeakerGMMError(f"the output {name} {out} is a symbolic link (to "
                              f"{os.readlink(out)}); give the path it should be written at "
                              "(outputs are replaced whole, never written through a link)")
    try:
        mode = out.stat().st_mode
    except OSError:
        return  # a new path
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise SpeakerGMMError(f"the output {name} {out} is not a regular file (a device, "
                              "FIFO or socket); give a file path")


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_write(path, "w") as fh:
        fh.write(text)


def write_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], *, format_name: str,
              format_version: int, metadata: Mapping[str, Any]) -> None:
    """Write ``arrays`` and a JSON header (format, versions, ``metadata``) to an ``.npz``
    file atomically; the header is a string array, so no pickle is ever needed to read it.

    Raises
    ------
    ValueError
        If ``metadata`` is not JSON-serialisable.
    """
    header = {"format": format_name, "format_version": format_version,
              "library_version": __version__, "metadata": dict(metadata)}
    try:
        text = json.dumps(header, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"model metadata must be JSON-serialisable: {exc}") from exc
    with atomic_write(path, "wb") as fh:
        np.savez(fh, **arrays, metadata=np.array(text))


#: What a model file may decompress to, in total (a T matrix of K = 2048, D = 60, R = 600 in
#: float32 is 0.3 GB), and how much more than its stored size a large member may: float
#: arrays compress a little, a zip bomb (5 MB holding 2 GB) by hundreds.
NPZ_MAX_BYTES = 4 << 30
NPZ_MAX_RATIO = 50
_NPZ_SMALL = 16 << 20  # members below this are not held to the ratio (zeros, metadata)


def _check_npz_sizes(path: Path, what: str) -> None:
    """ModelError when the archive's members would decompress to more than
    :data:`NPZ_MAX_BYTES`, or a large one to more than :data:`NPZ_MAX_RATIO` times its
    stored size: checked from the zip directory, before anything is decompressed."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise ModelError(f"{path}: not a valid .npz {what} file ({exc})") from None
    total = sum(m.file_size for m in members)
    if total > NPZ_MAX_BYTES:
        raise ModelError(f"{path}: its arrays would take {total / 2**30:.1f} GiB, more than "
                         f"{NPZ_MAX_BYTES / 2**30:.0f} GiB; not a {what} file speakergmm wrote")
    for m in members:
        if m.file_size > _NPZ_SMALL and m.file_size > NPZ_MAX_RATIO * max(1, m.compress_size):
            raise ModelError(f"{path}: member {m.filename} would decompress from "
                             f"{m.compress_size} to {m.file_size} bytes; not a {what} file "
                             "speakergmm wrote (refusing to decompress it)")


def read_npz(path: str | os.PathLike, keys: tuple[str, ...], *, format_name: str,
             format_version: int, what: str = "model") -> tuple[dict[str, np.ndarray], dict]:
    """Read a file written by :func:`write_npz`, never unpickling, checking the format.

    Returns
    -------
    arrays : dict
        The float arrays named by ``keys``.
    header : dict
        ``format``, ``format_version``, ``library_version`` and ``metadata`` (a dict).

    Raises
    ------
    ModelError
        Naming the path and the problem: missing file, not an npz, pickled objects, missing
        arrays, non-numeric arrays, unreadable header, wrong format or version.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such {what} file")
    with open(path, "rb") as fh:
        # np.load takes any non-zip file for a pickle and would say so, which misleads.
        if fh.read(4) not in (b"PK\x03\x04", b"PK\x05\x06"):
            raise ModelError(f"{path}: not a valid .npz {what} file (not a zip archive)")
    _check_npz_sizes(path, what)
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = sorted(({"metadata"} | set(keys)) - set(npz.files))
            arrays = {key: npz[key] for key in (*keys, "metadata") if key in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        if isinstance(exc, ValueError) and "pickle" in str(exc):
            raise ModelError(f"{path}: holds pickled object arrays; refusing to load") from exc
        raise ModelError(f"{path}: not a valid .npz {what} file ({exc})") from exc

    if "metadata" not in arrays:
        raise ModelError(f"{path}: not a speakergmm {what}, missing {missing}")
    meta_arr = arrays.pop("metadata")
    try:
        if meta_arr.shape != () or meta_arr.dtype.kind != "U":
            raise ValueError("not a string")  # (caught below)
        header = json.loads(str(meta_arr))
        if not isinstance(header, dict):
            raise ValueError("not a JSON object")  # (caught below)
    except ValueError as exc:
        raise ModelError(f"{path}: unreadable metadata ({exc})") from exc
    if header.get("format") != format_name:
        raise ModelError(f"{path}: format is {header.get('format')!r}, expected {format_name!r}")
    version = header.get("format_version")
    if version != format_version:
        raise ModelError(
            f"{path}: format version {version!r} is not supported (this speakergmm "
            f"{__version__} reads version {format_version}); use a matching speakergmm")
    if missing:  # checked after the format, which names the wrong kind of file better
        raise ModelError(f"{path}: not a speakergmm {what}, missing {missing}")
    for key in keys:
        if arrays[key].dtype.kind not in "fiu":
            raise ModelError(f"{path}: {key} has dtype {arrays[key].dtype}, expected float")
    if "metadata" not in header:
        raise ModelError(f"{path}: its header has no metadata (every {what} speakergmm writes "
                         "has); the file is damaged")
    if not isinstance(header["metadata"], dict):
        raise ModelError(f"{path}: its metadata is a {type(header['metadata']).__name__}, not "
                         "a JSON object (key: value); the file is damaged")
    return arrays, header


#: The lock file an archive writer holds inside its output folder while it writes.
LOCK_NAME = ".lock"


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold the write lock of the output folder ``folder`` (created if need be) meanwhile.

    A second process writing the same archive at once would corrupt it: each would log its
    own parts in one journal and remove the other's as unreferenced. So the second is
    refused at once with one line. The lock is ``flock`` on ``folder/.lock``: the system
    releases it when its holder ends, even killed outright, so a rerun after a crash is
    never locked out. (NFS honours flock as a POSIX lock on current Linux kernels.)"""
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SpeakerGMMError(f"{folder}: another process is writing this output now; "
                                  "wait for it to end (two writers at once would corrupt "
                                  "it), or write elsewhere") from None
        yield
    finally:
        os.close(fd)
