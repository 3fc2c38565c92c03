"""Downloading corpora: fetch with mirror fallback, hash files, unpack archives safely.

Every corpus download follows the same rule: nothing is written where the user will look
until it is complete and verified. Files are streamed into a staging folder inside the
target (so the final move is one rename on the same file system), and the staging folder is
removed whatever happens, an error or Ctrl-C included; one left behind by a process that
could not clean up (SIGKILL, a power cut) is removed by the next download into the same
target (:func:`staging_dir`).

Only what the server or the network does wrong moves on to the next mirror: an error
writing locally (a full disk, a read-only or forbidden folder) stops the download at once,
naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import http.client
import lzma
import os
import re
import shutil
import socket
import ssl
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath

from .._io import atomic_write
from ..errors import ParameterError, SpeakerGMMError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

__all__ = ["fetch", "file_digest", "openslr_urls", "safe_extract", "staging_dir",
           "unpacked_download", "OPENSLR_HOSTS"]

#: Bytes read from the network (or a file) at a time.
CHUNK = 1 << 20

#: Seconds to wait for a server to answer.
TIMEOUT = 60

#: OpenSLR (https://www.openslr.org/), then its US, EU and CN mirrors; all four serve a
#: resource's files under the same path, ``/resources/<resource>/<file>``.
OPENSLR_HOSTS = ("www.openslr.org", "us.openslr.org", "openslr.elda.org",
                 "openslr.magicdatatech.com")

# What urlopen and a response's read raise when the server or the network fails. A local
# write error (ENOSPC, EACCES, EROFS...) is a plain OSError, none of these.
_NETWORK = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError,
            socket.timeout, ssl.SSLError)

# What a damaged or truncated archive raises while it is read (bz2 raises a plain OSError
# without an errno, also taken for damage: system errors, a full disk..., have one).
_DAMAGED = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile,
            lzma.LZMAError)

# Names read as tar archives whatever their content (anything else: a zip if named .zip,
# else whatever tarfile.is_tarfile says).
_TAR_NAMES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")

# Staging folders: ".download-<random>" holding a lock file its process keeps locked.
_STAGING_PREFIX = ".download-"
_LOCK = ".lock"
# Seconds a staging folder is left alone, whatever its lock: it may be one being made right
# now, its lock not yet taken.
_YOUNG = 60


class _Failed(Exception):
    """Why one URL gave no usable file: the server or the network failed, or what it served
    is not the archive wanted (damaged, a web page, a wrong digest, unsafe, another layout).
    The next mirror may do better."""


def _reason(exc: BaseException) -> str:
    """``exc``'s message on one line (tarfile's can span several), or its type's name."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _url_list(urls: str | Iterable[str]) -> list[str]:
    urls = [urls] if isinstance(urls, str) else list(urls)
    if not urls:
        raise ParameterError("at least one URL is needed")
    return urls


def _not_downloaded(what: str, failures: list[tuple[str, str]],
                    fix: str) -> SpeakerGMMError:
    """The error once every URL failed: ``failures`` are (URL, reason) in the order tried;
    the URLs that failed for the same reason are named together."""
    urls: dict[str, list[str]] = {}
    for url, reason in failures:
        urls.setdefault(reason, []).append(url)
    said = "; ".join(f"{', '.join(u)}: {reason}" for reason, u in urls.items())
    return SpeakerGMMError(f"could not download {what} ({said}); {fix}")


def _write_error(path: str | os.PathLike, exc: OSError) -> SpeakerGMMError:
    """A local write error as one line naming ``path``, the problem and the fix."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free space on that disk, or download to a folder on another one"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "make the folder writable, or download to another one"
    else:
        fix = "check the disk, then try again"
    return SpeakerGMMError(f"cannot write {path}: {exc.strerror or _reason(exc)}; {fix}")


@contextlib.contextmanager
def _local(path: str | os.PathLike) -> Iterator[None]:
    """Turn an OSError of the body, a local file operation, into :func:`_write_error`."""
    try:
        yield
    except OSError as exc:
        raise _write_error(path, exc) from exc


class _Sink:
    """``atomic_write(dest, "wb")`` whose own failures (creating, writing, closing, renaming
    the file) name ``dest``; an exception of the ``with`` body passes unchanged, the
    temporary file removed."""

    def __init__(self, dest: Path):
        self.dest = dest
        self._writer = atomic_write(dest, "wb")

    def __enter__(self) -> _Sink:
        with _local(self.dest):
            self._out = self._writer.__enter__()
        return self

    def write(self, block: bytes) -> None:
        with _local(self.dest):
            self._out.write(block)

    def __exit__(self, *exc_info) -> bool:
        if exc_info[0] is not None:
            return bool(self._writer.__exit__(*exc_info))
        with _local(self.dest):
            self._writer.__exit__(None, None, None)
        return False


def _read(resp, size: int) -> bytes:
    try:
        return resp.read(size)
    except _NETWORK as exc:
        raise _Failed(_reason(exc)) from exc


def _fetch_one(url: str, dest: Path, progress: Callable[[int, int | None], None] | None,
               timeout: float) -> None:
    """Stream ``url`` into ``dest`` atomically. Raises :class:`_Failed` when the server or
    the network fails or the transfer stops short of the announced length,
    :class:`SpeakerGMMError` (:func:`_write_error`) when ``dest`` cannot be written."""
    try:
        resp = urllib.request.urlopen(url, timeout=timeout)
    except _NETWORK as exc:
        raise _Failed(_reason(exc)) from exc
    with resp, _Sink(dest) as out:
        length = getattr(resp, "headers", {}).get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        done = 0
        while block := _read(resp, CHUNK):
            out.write(block)
            done += len(block)
            if progress is not None:
                progress(done, total)
        if total is not None and done != total:
            raise _Failed(f"the transfer stopped after {done} of {total} bytes")


def fetch(urls: str | Iterable[str], dest: str | os.PathLike, *, what: str | None = None,
          fix: str = "download it by hand",
          progress: Callable[[int, int | None], None] | None = None,
          timeout: float = TIMEOUT) -> str:
    """Stream the first of ``urls`` that answers into ``dest``.

    Each URL is tried in turn (the official site, then its mirrors) while the server or the
    network fails. The bytes go to a temporary file beside ``dest`` that is renamed over it
    only once the transfer is complete (as long as the server announced it), so ``dest`` is
    either the whole file or left as it was, also on Ctrl-C.

    Parameters
    ----------
    urls : str or iterable of str
        The URL, or the URLs in order of preference.
    dest : path-like
        The file to write; its folder must exist.
    what : str, optional
        What is downloaded, for the error message (default: ``dest``'s name).
    fix : str
        What the user can do when no URL answers, for the error message.
    progress : callable, optional
        Called as ``progress(bytes_so_far, total_bytes_or_None)`` after every chunk; the
        count starts again from 0 when a mirror is tried after a failure.
    timeout : float
        Seconds to wait for a server to answer.

    Returns
    -------
    str
        The URL that served the file.

    Raises
    ------
    SpeakerGMMError
        No URL answered with a complete file (the message names every URL tried, why it
        failed, and ``fix``), or ``dest`` cannot be written (a full disk, a read-only or
        forbidden folder: raised at once, naming the path; no other URL is tried).
    """
    dest = Path(dest)
    failures = []
    for url in _url_list(urls):
        try:
            _fetch_one(url, dest, progress, timeout)
            return url
        except _Failed as exc:
            failures.append((url, str(exc)))
    raise _not_downloaded(what or dest.name, failures, fix)


def openslr_urls(resource: int, filename: str) -> list[str]:
    """The URLs of file ``filename`` of OpenSLR resource ``resource``: the main site first,
    then its mirrors (:data:`OPENSLR_HOSTS`), the order :func:`fetch` tries them in.

    >>> openslr_urls(12, "dev-clean.tar.gz")[0]
    'https://www.openslr.org/resources/12/dev-clean.tar.gz'
    """
    return [f"https://{host}/resources/{resource}/{filename}" for host in OPENSLR_HOSTS]


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """The hexadecimal digest of the file at ``path``, read in chunks.

    Parameters
    ----------
    path : path-like
    algorithm : str
        A :func:`hashlib.new` name: ``"sha256"``, ``"md5"``...

    Returns
    -------
    str
    """
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _unsafe(name: str, regular: bool) -> str | None:
    """Why archive member ``name`` must not be unpacked, or None; ``regular``: it is a plain
    file or folder (not a symbolic or hard link, device, FIFO...)."""
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        return "an absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "a '..' component"
    if not regular:
        return "a link or special file"
    return None


def _check(name: str, regular: bool) -> None:
    why = _unsafe(name, regular)
    if why:
        raise _Failed(f"archive member {name!r} is {why}; refusing to unpack it")


def _zip_regular(info: zipfile.ZipInfo) -> bool:
    # Unix file type in the high bits of external_attr; 0 where the archiver set none.
    kind = stat.S_IFMT(info.external_attr >> 16)
    return kind in (0, stat.S_IFREG, stat.S_IFDIR)


def _is_zip(archive: Path) -> bool:
    """Read ``archive`` as a zip? By its name (``.zip``; ``.tar``, ``.tar.gz``, ``.tgz``...
    are tars), else a zip unless tarfile recognises it. Not zipfile.is_zipfile first: it
    also says yes to a tar that merely ends with a zip member."""
    name = archive.name.lower()
    if name.endswith(".zip"):
        return True
    if name.endswith(_TAR_NAMES):
        return False
    return not tarfile.is_tarfile(archive)


def _without_privileges(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """``member`` owned by whoever unpacks it and without setuid, setgid or sticky bit, as
    tarfile's ``data`` filter leaves it, for Pythons that have no filter."""
    member.uid = os.geteuid() if hasattr(os, "geteuid") else 0
    member.gid = os.getegid() if hasattr(os, "getegid") else 0
    member.uname = member.gname = ""  # so the uid and gid above are used as they are
    if member.mode is not None:
        member.mode &= ~0o7000
    return member


def _damaged(archive: Path, exc: BaseException) -> str:
    with open(archive, "rb") as fh:
        head = fh.read(512).lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")):
        return "not an archive but a web page (an error, login or captive-portal page?)"
    return f"the archive is damaged or incomplete ({_reason(exc)})"


def _extract(archive: Path, dest: Path) -> None:
    """:func:`safe_extract` raising :class:`_Failed` (the reason alone) for a damaged or
    unsafe archive; a local write error is a :func:`_write_error`."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if _is_zip(archive):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    _check(info.filename, _zip_regular(info))
                    zf.extract(info, dest)
        else:
            data_filter = hasattr(tarfile, "data_filter")
            with tarfile.open(archive, "r:*") as tf:
                for member in tf:
                    _check(member.name, member.isfile() or member.isdir())
                    if data_filter:
                        tf.extract(member, dest, filter="data")
                    else:
                        tf.extract(_without_privileges(member), dest)
    except _DAMAGED as exc:
        raise _Failed(_damaged(archive, exc)) from None
    except OSError as exc:
        if exc.errno is None:
            raise _Failed(_damaged(archive, exc)) from None
        raise _write_error(exc.filename or dest, exc) from exc


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike, *,
                 source: str | None = None) -> Path:
    """Unpack a zip or tar archive (any compression tarfile reads) into ``dest``.

    Members with an absolute path, a ``..`` component, symbolic and hard links and special
    files are refused before anything of theirs is written. Tar members also go through
    tarfile's ``data`` filter where Python has it (3.12, 3.11.4, 3.10.12 and later); where
    it has not, each member's owner is set to whoever unpacks it and its setuid, setgid and
    sticky bits are cleared before it is unpacked. The kind of archive is decided by the
    name (``.zip``; ``.tar``, ``.tar.gz``, ``.tgz``... are tars), else by
    :func:`tarfile.is_tarfile` (anything it does not recognise is read as a zip).

    Parameters
    ----------
    archive : path-like
    dest : path-like
        Created if needed. On an error it may hold part of the archive: unpack into a
        staging folder (:func:`staging_dir`).
    source : str, optional
        Where the archive came from (its URL), for error messages (default: ``archive``).

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    SpeakerGMMError
        A member is unsafe, or the archive is damaged, incomplete or not an archive at all
        (the message names ``source`` and the member), or ``dest`` cannot be written (the
        message names the path).
    """
    archive, dest = Path(archive), Path(dest)
    try:
        _extract(archive, dest)
    except _Failed as exc:
        raise SpeakerGMMError(f"{source or archive}: {exc}") from None
    return dest


def _in_use(folder: Path) -> bool:
    """Whether a live process may still be working in staging folder ``folder``."""
    try:
        if time.time() - folder.stat().st_mtime < _YOUNG:
            return True  # perhaps being made right now, its lock not yet taken
        fd = os.open(folder / _LOCK, os.O_RDWR)
    except FileNotFoundError:
        return False  # no lock file: left by an older version of speakergmm
    except OSError:
        return True
    try:
        if fcntl is None:
            return True  # no way to tell: leave it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True  # its process holds the lock: alive
        return False
    finally:
        os.close(fd)


def _remove_stale(target: Path) -> None:
    for folder in target.glob(f"{_STAGING_PREFIX}*"):
        if folder.is_dir() and not folder.is_symlink() and not _in_use(folder):
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def staging_dir(target: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder inside ``target`` (created if needed), removed on exit whatever
    happens.

    Download and verify there, then move what was verified into ``target`` by renaming it:
    the rename stays on one file system, so it is atomic, and a failure or Ctrl-C before it
    leaves ``target`` as it was.

    The folder is named ``.download-<random>`` and holds a lock file that this process
    keeps locked while it works. A process killed before it could clean up (SIGKILL, a
    power cut) leaves its folder behind, so on entry every ``.download-*`` folder in
    ``target`` is removed first when no live process holds its lock (or it has no lock
    file, as older versions of speakergmm left them) and it is more than a minute old
    (a younger one may be in the making). Folders of other downloads into the same target
    that are still running are left alone; so are those with a lock file where locks
    cannot be checked (Windows).

    Yields
    ------
    Path
    """
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    _remove_stale(target)
    with tempfile.TemporaryDirectory(dir=target, prefix=_STAGING_PREFIX) as tmp:
        fd = os.open(Path(tmp) / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield Path(tmp)
        finally:
            os.close(fd)


def _content_root(unpacked: Path, holding: str, layout: str) -> Path:
    """The folder of an unpacked archive that holds ``holding``: the archive's top level or,
    as archives usually wrap their content in one folder, a folder one level down."""
    for folder in (unpacked, *sorted(p for p in unpacked.iterdir() if p.is_dir())):
        if (folder / holding).is_dir():
            return folder
    entries = ", ".join(sorted(p.name for p in unpacked.iterdir())) or "nothing"
    raise _Failed(f"the archive holds {entries}, not {layout}")


@contextlib.contextmanager
def unpacked_download(urls: str | Iterable[str], target: str | os.PathLike, *, archive: str,
                      holding: str, layout: str, what: str, fix: str,
                      digest: tuple[str, str] | None = None,
                      progress: Callable[[int, int | None], None] | None = None
                      ) -> Iterator[Path]:
    """Download an archive into a staging folder inside ``target``, check its digest and
    unpack it safely, trying each of ``urls`` until one serves a good archive.

    For each URL in turn: :func:`fetch` it into a :func:`staging_dir`, check it against
    ``digest`` (when given; nothing is unpacked from an archive that fails it), unpack it
    (:func:`safe_extract`) and find the folder that holds ``holding``. When the server or
    the network fails, or what it served is not a good archive (a web page instead, a
    truncated or damaged file, a wrong digest, an unsafe member, another layout), what it
    left is deleted and the next URL is tried. Once the archive matches ``digest`` it is
    the published file, so a later failure (unpacking, layout) is raised at once rather
    than downloaded again from every mirror. A local error (a full disk...) is raised at
    once too.

    The archive is deleted once unpacked. The caller verifies the yielded folder and renames
    what it wants to keep into ``target`` inside the ``with`` block; everything else is
    removed on exit.

    Parameters
    ----------
    urls : str or iterable of str
        The archive's URL, or URLs in order of preference (see :func:`fetch`).
    target : path-like
        Where the corpus goes; the staging folder is made inside it.
    archive : str
        File name for the downloaded archive; its ending tells a zip (``.zip``) from a tar
        (``.tar``, ``.tar.gz``, ``.tgz``...).
    holding : str
        A folder the corpus's content root holds (``recordings``, ``train``...).
    layout : str
        The expected layout, for the error when no folder holds ``holding``.
    what, fix, progress
        As for :func:`fetch`.
    digest : (str, str), optional
        ``(algorithm, hexdigest)`` the archive must have, ``algorithm`` a
        :func:`hashlib.new` name (``("md5", "42e2...")``); by default it is not checked.

    Yields
    ------
    Path
        The unpacked folder that holds ``holding``.

    Raises
    ------
    SpeakerGMMError
        No URL served a good archive (the message names every URL and why it failed: no
        answer, the digest found and expected, damaged, unsafe, another layout, and
        ``fix``); the archive with the right digest cannot be unpacked or holds another
        layout (the message names the URL); or the target cannot be written.
    """
    urls = _url_list(urls)
    with staging_dir(target) as tmp:
        path, unpacked = tmp / archive, tmp / "unpacked"
        failures = []
        for url in urls:
            try:
                _fetch_one(url, path, progress, TIMEOUT)
                if digest is not None:
                    algorithm, expected = digest
                    if (found := file_digest(path, algorithm)) != expected.lower():
                        raise _Failed(f"{algorithm.upper()} of {archive} is {found}, expected "
                                      f"{expected}: damaged, or not the published file")
                try:
                    _extract(path, unpacked)
                    root = _content_root(unpacked, holding, layout)
                except _Failed as exc:
                    if digest is None:
                        raise
                    raise SpeakerGMMError(f"{url}: {exc} (its {digest[0].upper()} is the "
                                          f"published one); {fix}") from None
            except _Failed as exc:
                failures.append((url, str(exc)))
                path.unlink(missing_ok=True)
                shutil.rmtree(unpacked, ignore_errors=True)
                continue
            path.unlink()
            yield root
            return
        raise _not_downloaded(what, failures, fix)
