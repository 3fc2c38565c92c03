"""Downloading corpora: fetch with mirror fallback, hash files, unpack archives safely.

Every corpus download follows the same rule: nothing is written where the user will look
until it is complete and verified. Files are streamed into a staging folder inside the
target (so the final move is one rename on the same file system), and the staging folder is
removed whatever happens, an error or Ctrl-C included.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import os
import re
import stat
import tarfile
import tempfile
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath

from .._io import atomic_write
from ..errors import SpeakerGMMError

__all__ = ["fetch", "file_digest", "openslr_urls", "safe_extract", "staging_dir",
           "unpacked_download", "OPENSLR_HOSTS"]

#: Bytes read from the network (or a file) at a time.
CHUNK = 1 << 20

#: OpenSLR (https://www.openslr.org/), then its US, EU and CN mirrors; all four serve a
#: resource's files under the same path, ``/resources/<resource>/<file>``.
OPENSLR_HOSTS = ("www.openslr.org", "us.openslr.org", "openslr.elda.org",
                 "openslr.magicdatatech.com")

# What a damaged or truncated archive raises while it is read.
_DAMAGED = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile)


def fetch(urls: str | Iterable[str], dest: str | os.PathLike, *, what: str | None = None,
          fix: str = "download it by hand",
          progress: Callable[[int, int | None], None] | None = None,
          timeout: float = 60) -> str:
    """Stream the first of ``urls`` that answers into ``dest``.

    Each URL is tried in turn (the official site, then its mirrors). The bytes go to a
    temporary file beside ``dest`` that is renamed over it only once the transfer is
    complete (as long as the server announced it), so ``dest`` is either the whole file or
    left as it was, also on Ctrl-C.

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
        Called as ``progress(bytes_so_far, total_bytes_or_None)`` after every chunk.
    timeout : float
        Seconds to wait for a server to answer.

    Returns
    -------
    str
        The URL that served the file.

    Raises
    ------
    SpeakerGMMError
        No URL answered with a complete file; the message names every URL tried, why it
        failed, and ``fix``.
    """
    dest = Path(dest)
    errors = []
    for url in (urls,) if isinstance(urls, str) else urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, \
                    atomic_write(dest, "wb") as out:
                length = getattr(resp, "headers", {}).get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                done = 0
                while block := resp.read(CHUNK):
                    out.write(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, total)
                if total is not None and done != total:
                    raise OSError(f"the transfer stopped after {done} of {total} bytes")
            return url
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"{url}: {str(exc) or type(exc).__name__}")
    if not errors:
        raise ValueError("fetch needs at least one URL")
    raise SpeakerGMMError(f"could not download {what or dest.name} ({'; '.join(errors)}); {fix}")


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
    file or folder (not a link, device, FIFO...)."""
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        return "an absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "a '..' component"
    if not regular:
        return "a link or special file"
    return None


def _zip_regular(info: zipfile.ZipInfo) -> bool:
    # Unix file type in the high bits of external_attr; 0 where the archiver set none.
    kind = stat.S_IFMT(info.external_attr >> 16)
    return kind in (0, stat.S_IFREG, stat.S_IFDIR)


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike, *,
                 source: str | None = None) -> Path:
    """Unpack a zip or tar archive (any compression tarfile reads) into ``dest``.

    Members with an absolute path, a ``..`` component, links and special files are refused
    before anything of theirs is written; tar members also go through tarfile's ``data``
    filter where Python has it (3.12, 3.11.4, 3.10.12 and later). A zip is recognised by its
    content or a ``.zip`` name, anything else is read as a tar.

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
        A member is unsafe, or the archive is damaged or incomplete; the message names
        ``source`` and the member.
    """
    archive, dest = Path(archive), Path(dest)
    where = source or str(archive)
    dest.mkdir(parents=True, exist_ok=True)

    def check(name: str, regular: bool) -> None:
        why = _unsafe(name, regular)
        if why:
            raise SpeakerGMMError(f"{where}: archive member {name!r} is {why}; refusing to "
                                  "unpack it")

    try:
        if zipfile.is_zipfile(archive) or archive.suffix.lower() == ".zip":
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    check(info.filename, _zip_regular(info))
                    zf.extract(info, dest)
        else:
            data_filter = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            with tarfile.open(archive, "r:*") as tf:
                for member in tf:
                    check(member.name, member.isfile() or member.isdir())
                    tf.extract(member, dest, **data_filter)
    except _DAMAGED as exc:
        raise SpeakerGMMError(f"{where}: the archive is damaged or incomplete ({exc}); try "
                              "again") from None
    return dest


@contextlib.contextmanager
def staging_dir(target: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder inside ``target`` (created if needed), removed on exit whatever
    happens.

    Download and verify there, then move what was verified into ``target`` by renaming it:
    the rename stays on one file system, so it is atomic, and a failure or Ctrl-C before it
    leaves ``target`` as it was.

    Yields
    ------
    Path
    """
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target, prefix=".download-") as tmp:
        yield Path(tmp)


def _content_root(unpacked: Path, holding: str, *, source: str, layout: str) -> Path:
    """The folder of an unpacked archive that holds ``holding``: the archive's top level or,
    as archives usually wrap their content in one folder, a folder one level down."""
    for folder in (unpacked, *sorted(p for p in unpacked.iterdir() if p.is_dir())):
        if (folder / holding).is_dir():
            return folder
    entries = ", ".join(sorted(p.name for p in unpacked.iterdir())) or "nothing"
    raise SpeakerGMMError(f"{source}: the archive holds {entries}, not {layout}")


@contextlib.contextmanager
def unpacked_download(urls: str | Iterable[str], target: str | os.PathLike, *, archive: str,
                      holding: str, layout: str, what: str, fix: str,
                      digest: tuple[str, str] | None = None,
                      progress: Callable[[int, int | None], None] | None = None
                      ) -> Iterator[Path]:
    """Download an archive into a staging folder inside ``target``, check its digest and
    unpack it safely.

    Combines :func:`staging_dir`, :func:`fetch`, :func:`file_digest` (when ``digest`` is
    given; nothing is unpacked from an archive that fails it) and :func:`safe_extract`; the
    archive is deleted once unpacked. The caller verifies the yielded folder and renames
    what it wants to keep into ``target`` inside the ``with`` block; everything else is
    removed on exit.

    Parameters
    ----------
    urls : str or iterable of str
        The archive's URL, or URLs in order of preference (see :func:`fetch`).
    target : path-like
        Where the corpus goes; the staging folder is made inside it.
    archive : str
        File name for the downloaded archive (``.zip`` for a zip archive).
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
        No URL answered, the archive's digest differs from ``digest`` (the message names the
        URL, both digests and ``fix``), the archive is damaged or unsafe, or it does not
        hold ``holding``.
    """
    with staging_dir(target) as tmp:
        path = tmp / archive
        url = fetch(urls, path, what=what, fix=fix, progress=progress)
        if digest is not None:
            algorithm, expected = digest
            if (found := file_digest(path, algorithm)) != expected.lower():
                raise SpeakerGMMError(
                    f"{url}: {algorithm.upper()} of {archive} is {found}, expected {expected}; "
                    f"the download is damaged or not the published file; try again, or {fix}")
        unpacked = safe_extract(path, tmp / "unpacked", source=url)
        path.unlink()
        yield _content_root(unpacked, holding, source=url, layout=layout)

