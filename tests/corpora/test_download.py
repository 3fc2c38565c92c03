"""The download helpers every corpus module shares (speakergmm.corpora._download)."""

import contextlib
import errno
import hashlib
import io
import os
import stat
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile

import pytest

from speakergmm.corpora import _download
from speakergmm.corpora._download import (
    fetch,
    file_digest,
    openslr_urls,
    safe_extract,
    staging_dir,
    unpacked_download,
)
from speakergmm.errors import SpeakerGMMError


class Response(io.BytesIO):
    """A response that announces ``length`` bytes, as an HTTP server's Content-Length."""

    def __init__(self, data, length=None):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data) if length is None else length)}


def serve(monkeypatch, answers):
    """urllib's opener replaced: ``answers`` maps URL -> bytes, Response or exception."""
    asked = []

    def urlopen(url, timeout=None):
        asked.append(url)
        answer = answers[url]
        if isinstance(answer, BaseException):
            raise answer
        return answer if isinstance(answer, Response) else io.BytesIO(answer)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return asked


def files_under(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_fetch_falls_back_to_mirrors_and_reports_progress(tmp_path, monkeypatch):
    data = bytes(range(256)) * 9000  # more than one chunk
    asked = serve(monkeypatch, {"https://a/x": urllib.error.URLError("refused"),
                                "https://b/x": Response(data)})
    seen = []
    url = fetch(["https://a/x", "https://b/x"], tmp_path / "x",
                progress=lambda done, total: seen.append((done, total)))
    assert url == "https://b/x" and asked == ["https://a/x", "https://b/x"]
    assert (tmp_path / "x").read_bytes() == data
    assert seen[-1] == (len(data), len(data)) and len(seen) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["x"]


def test_fetch_names_every_url_and_the_fix(tmp_path, monkeypatch):
    serve(monkeypatch, {"https://a/x": urllib.error.URLError("no route to host"),
                        "https://b/x": urllib.error.HTTPError("https://b/x", 404, "Not Found",
                                                              {}, None),
                        "https://c/x": Response(b"half", length=8),
                        "https://d/x": ConnectionResetError(errno.ECONNRESET, "reset"),
                        "https://e/x": TimeoutError("timed out")})
    with pytest.raises(SpeakerGMMError, match=r"could not download the thing \(https://a/x: "
                                              r".*no route to host.*; https://b/x: .*404.*; "
                                              r"https://c/x: .*after 4 of 8 bytes; "
                                              r"https://d/x: .*reset; https://e/x: timed out\); "
                                              r"do this"):
        fetch(("https://a/x", "https://b/x", "https://c/x", "https://d/x", "https://e/x"),
              tmp_path / "x", what="the thing", fix="do this")
    assert list(tmp_path.iterdir()) == []  # the truncated transfer left nothing


def test_fetch_names_the_urls_that_failed_alike_together(tmp_path, monkeypatch):
    serve(monkeypatch, {u: urllib.error.URLError("no route to host")
                        for u in ("https://a/x", "https://b/x")})
    with pytest.raises(SpeakerGMMError, match=r"could not download x \(https://a/x, "
                                              r"https://b/x: <urlopen error no route to "
                                              r"host>\); download it by hand$"):
        fetch(("https://a/x", "https://b/x"), tmp_path / "x")


class FullDisk:
    """A file whose writes fail as on a full disk."""

    def __init__(self, fh):
        self.fh = fh

    def write(self, block):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def full_on_write(real):
    @contextlib.contextmanager
    def atomic_write(path, mode):
        with real(path, mode) as fh:
            yield FullDisk(fh)
    return atomic_write


def full_on_close(real):
    @contextlib.contextmanager
    def atomic_write(path, mode):
        with real(path, mode) as fh:
            yield fh
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a final flush may
    return atomic_write


def forbidden(real):
    @contextlib.contextmanager
    def atomic_write(path, mode):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        yield
    return atomic_write


@pytest.mark.parametrize("writer, problem", [
    (full_on_write, "No space left on device; free space on that disk"),
    (full_on_close, "No space left on device; free space on that disk"),
    (forbidden, "Permission denied; make the folder writable")])
def test_a_local_write_error_stops_at_once(tmp_path, monkeypatch, writer, problem):
    """Not the mirrors' fault: no other URL is tried, and the message names the path and
    the disk's problem rather than blaming each URL."""
    asked = serve(monkeypatch, {"https://a/x": Response(b"payload"),
                                "https://b/x": Response(b"payload")})
    monkeypatch.setattr(_download, "atomic_write", writer(_download.atomic_write))
    with pytest.raises(SpeakerGMMError) as err:
        fetch(["https://a/x", "https://b/x"], tmp_path / "x")
    assert asked == ["https://a/x"]
    assert str(err.value) == f"cannot write {tmp_path / 'x'}: {problem}, or download to " \
                             + ("a folder on another one" if "space" in problem
                                else "another one")
    assert list(tmp_path.iterdir()) == []


def test_fetch_keeps_the_old_file_on_ctrl_c(tmp_path, monkeypatch):
    (tmp_path / "x").write_bytes(b"old")

    class Interrupted(io.BytesIO):
        def read(self, n=-1):
            raise KeyboardInterrupt

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: Interrupted())
    with pytest.raises(KeyboardInterrupt):
        fetch("https://a/x", tmp_path / "x")
    assert [p.name for p in tmp_path.iterdir()] == ["x"]
    assert (tmp_path / "x").read_bytes() == b"old"


def test_fetch_from_a_file_url(tmp_path):
    (tmp_path / "src").write_bytes(b"payload")
    assert fetch((tmp_path / "src").as_uri(), tmp_path / "dst") == (tmp_path / "src").as_uri()
    assert (tmp_path / "dst").read_bytes() == b"payload"


def test_file_digest(tmp_path):
    data = b"speakergmm" * 200_000
    (tmp_path / "f").write_bytes(data)
    assert file_digest(tmp_path / "f", "sha256") == hashlib.sha256(data).hexdigest()
    assert file_digest(tmp_path / "f", "md5") == hashlib.md5(data).hexdigest()


# --------------------------------------------------------------------------- unpacking


def make_zip(path, members):
    """members: (name, data, unix mode or None)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            if mode is not None:
                info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


def test_safe_extract_zip(tmp_path):
    archive = make_zip(tmp_path / "a.zip", [("top/dir/f.txt", b"f", None),
                                            ("top/g.txt", b"g", stat.S_IFREG | 0o644)])
    assert safe_extract(archive, tmp_path / "out") == tmp_path / "out"
    assert (tmp_path / "out" / "top" / "dir" / "f.txt").read_bytes() == b"f"


@pytest.mark.parametrize("name, mode, why", [
    ("../evil", None, "a '..' component"),
    ("top/../../evil", None, "a '..' component"),
    ("/abs/evil", None, "an absolute path"),
    ("C:/evil", None, "an absolute path"),
    ("top/link", stat.S_IFLNK | 0o777, "a link or special file")])
def test_safe_extract_zip_refuses_unsafe_members(tmp_path, name, mode, why):
    """zipfile would write these inside the destination anyway ('../evil' as 'evil', a
    symbolic link as a file holding its target): what is checked here is that the member is
    refused and nothing of it written at all, the members before it unpacked."""
    bad = make_zip(tmp_path / "bad.zip", [("top/ok.txt", b"x", None),
                                          (name, b"/etc/passwd", mode),
                                          ("top/after.txt", b"x", None)])
    with pytest.raises(SpeakerGMMError, match=f"^https://h/bad.zip: archive member "
                                              f"{name!r} is {why}; refusing to unpack it$"):
        safe_extract(bad, tmp_path / "out", source="https://h/bad.zip")
    assert files_under(tmp_path / "out") == ["top", "top/ok.txt"]
    assert files_under(tmp_path) == ["bad.zip", "out", "out/top", "out/top/ok.txt"]


def add_member(tf, name, kind=tarfile.REGTYPE, data=b"x", **attrs):
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in attrs.items():
        setattr(info, key, value)
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    else:
        tf.addfile(info)


@pytest.fixture(params=["data filter", "no data filter"])
def filtering(request, monkeypatch):
    """Both tar paths: through tarfile's data filter, and as on Pythons that have none."""
    if request.param == "no data filter":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    return request.param


@pytest.mark.parametrize("member, why", [
    (dict(name="top/../../evil"), "a '..' component"),
    (dict(name="ABSOLUTE"), "an absolute path"),
    (dict(name="top/sym", kind=tarfile.SYMTYPE, linkname="OUTSIDE"), "a link or special file"),
    (dict(name="top/sym", kind=tarfile.SYMTYPE, linkname="../../victim"),
     "a link or special file"),
    (dict(name="top/hard", kind=tarfile.LNKTYPE, linkname="OUTSIDE"), "a link or special file"),
    (dict(name="top/hard", kind=tarfile.LNKTYPE, linkname="top/ok.txt"),
     "a link or special file"),
    (dict(name="top/fifo", kind=tarfile.FIFOTYPE), "a link or special file")])
def test_safe_extract_tar_refuses_unsafe_members(tmp_path, filtering, member, why):
    box = tmp_path / "box"  # the archive's members aim outside box/out, at box/victim
    box.mkdir()
    (box / "victim").write_bytes(b"precious")
    member = {k: str(box / "victim") if v == "OUTSIDE" else v for k, v in member.items()}
    if member["name"] == "ABSOLUTE":
        member["name"] = str(box / "evil")
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        add_member(tf, "top/ok.txt")
        add_member(tf, **member)
        add_member(tf, "top/after.txt")
    with pytest.raises(SpeakerGMMError, match=f"archive member {member['name']!r} is {why}; "
                                              "refusing to unpack it"):
        safe_extract(archive, box / "out")
    assert files_under(box) == ["out", "out/top", "out/top/ok.txt", "victim"]
    assert (box / "victim").read_bytes() == b"precious"


def test_safe_extract_tar_drops_owner_and_privilege_bits(tmp_path, filtering):
    """Set-user-id, set-group-id and sticky bits are cleared, and files are owned by whoever
    unpacks them (were they unpacked by root, the archive's owners would apply)."""
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tf:
        add_member(tf, "top", tarfile.DIRTYPE, mode=0o1777, uid=4242, gid=4242)
        add_member(tf, "top/tool", data=b"#!/bin/sh\n", mode=0o6755, uid=4242, gid=4242,
                   uname="someone", gname="somegroup")
    safe_extract(archive, tmp_path / "out")
    for path in (tmp_path / "out" / "top", tmp_path / "out" / "top" / "tool"):
        st = path.stat()
        assert st.st_mode & 0o7000 == 0
        assert (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid())
    assert (tmp_path / "out" / "top" / "tool").stat().st_mode & 0o777 == 0o755


def tar_ending_in_a_zip(path, inner):
    """An uncompressed tar whose last member is a zip: zipfile.is_zipfile says yes to it."""
    with tarfile.open(path, "w") as tf:
        tf.add(inner, "top/inner.zip")
    return path


@pytest.mark.parametrize("name", ["a.tar", "a.TGZ", "a.tar.gz", "no-suffix"])
def test_the_archive_type_comes_from_the_name_or_tarfile(tmp_path, name):
    inner = make_zip(tmp_path / "inner.zip", [("zipped.txt", b"z", None)])
    plain = tar_ending_in_a_zip(tmp_path / "plain.tar", inner)
    assert zipfile.is_zipfile(plain)  # the trap the name avoids
    archive = tmp_path / name
    if name.lower().endswith(("gz", "tgz")):
        with tarfile.open(archive, "w:gz") as tf:
            tf.add(inner, "top/inner.zip")
    else:
        archive.write_bytes(plain.read_bytes())
    safe_extract(archive, tmp_path / "out")
    assert files_under(tmp_path / "out") == ["top", "top/inner.zip"]


def test_a_zip_named_as_a_tar_is_damaged(tmp_path):
    make_zip(tmp_path / "a.tar.gz", [("f", b"f", None)])
    with pytest.raises(SpeakerGMMError, match="a.tar.gz: the archive is damaged or incomplete"):
        safe_extract(tmp_path / "a.tar.gz", tmp_path / "out")


@pytest.mark.parametrize("name", ["a.zip", "a.tar.gz", "a.tar.bz2", "a.tar.xz"])
def test_safe_extract_damaged(tmp_path, name):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(os.urandom(5000) * 40)
    archive = tmp_path / name
    if name.endswith(".zip"):
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.write(src / "f", "f")
    else:
        with tarfile.open(archive, f"w:{name.rsplit('.', 1)[1]}") as tf:
            tf.add(src / "f", "f")
    whole = archive.read_bytes()
    for cut in (200, len(whole) // 2):
        archive.write_bytes(whole[:cut])
        with pytest.raises(SpeakerGMMError, match="damaged or incomplete") as err:
            safe_extract(archive, tmp_path / "out")
        assert "\n" not in str(err.value)
    archive.write_bytes(b"\n<!DOCTYPE html><title>Sign in to the Wi-Fi</title>")
    with pytest.raises(SpeakerGMMError, match=f"{name}: not an archive but a web page"):
        safe_extract(archive, tmp_path / "out")


def test_safe_extract_local_write_error_names_the_path(tmp_path, monkeypatch):
    archive = make_zip(tmp_path / "a.zip", [("top/f", b"f", None)])

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("shutil.copyfileobj", full)
    with pytest.raises(SpeakerGMMError, match=rf"^cannot write {tmp_path / 'out'}: No space "
                                              r"left on device; free space on that disk"):
        safe_extract(archive, tmp_path / "out")


# --------------------------------------------------------------------------- staging


def test_staging_dir_is_removed_whatever_happens(tmp_path):
    for exc in (SpeakerGMMError, KeyboardInterrupt):
        with pytest.raises(exc):
            with staging_dir(tmp_path / "t") as tmp:
                (tmp / "partial").write_bytes(b"x")
                raise exc()
        assert list((tmp_path / "t").iterdir()) == []


def age(folder, seconds=120):
    then = time.time() - seconds
    os.utime(folder, (then, then))


def test_staging_dir_removes_what_killed_downloads_left(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    target = tmp_path / "t"
    left = {}
    for name, lock in (("old", None), ("dead", "unlocked"), ("live", "locked"),
                       ("young", None)):
        folder = target / f".download-{name}"
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "partial.tar.gz").write_bytes(b"x")
        if lock:
            fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT)
            if lock == "locked":  # as the process that made it, still running, holds it
                fcntl.flock(fd, fcntl.LOCK_EX)
                left[name] = fd
            else:
                os.close(fd)
        if name != "young":
            age(folder)
    (target / "keep.txt").write_bytes(b"the corpus")
    (target / ".download-file").write_bytes(b"not a folder")
    try:
        with staging_dir(target) as tmp:
            assert sorted(p.name for p in target.iterdir()) == sorted(
                [".download-file", ".download-live", ".download-young", "keep.txt", tmp.name])
    finally:
        for fd in left.values():
            os.close(fd)
    # the live download ended (its lock released), the young folder grew old
    age(target / ".download-young")
    with staging_dir(target):
        pass
    assert sorted(p.name for p in target.iterdir()) == [".download-file", "keep.txt"]


def test_a_killed_download_is_cleaned_up_by_the_next(tmp_path):
    target = tmp_path / "t"
    script = ("import sys, time\n"
              "from speakergmm.corpora._download import staging_dir\n"
              "with staging_dir(sys.argv[1]) as tmp:\n"
              "    (tmp / 'partial').write_bytes(b'x')\n"
              "    print(tmp.name, flush=True)\n"
              "    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(target)],
                            stdout=subprocess.PIPE, text=True)
    try:
        name = proc.stdout.readline().strip()
        assert name.startswith(".download-")
        age(target / name)
        with staging_dir(target):  # still running: left alone
            assert (target / name / "partial").is_file()
    finally:
        proc.kill()  # SIGKILL: no cleanup of its own
        proc.wait()
        proc.stdout.close()
    assert (target / name / "partial").is_file()
    with staging_dir(target) as tmp:
        assert [p.name for p in target.iterdir()] == [tmp.name]
    assert list(target.iterdir()) == []


# --------------------------------------------------------------------------- unpacked_download


def test_unpacked_download_finds_the_content_root(tmp_path, monkeypatch):
    archive = make_zip(tmp_path / "a.zip", [("wrap/data/f", b"f", None), ("README", b"r", None)])
    serve(monkeypatch, {"https://h/a.zip": archive.read_bytes()})
    with unpacked_download("https://h/a.zip", tmp_path / "t", archive="a.zip", holding="data",
                           layout="the layout", what="A", fix="fix") as root:
        assert root.name == "wrap" and (root / "data" / "f").read_bytes() == b"f"
        (root / "data").rename(tmp_path / "t" / "data")
    assert [p.name for p in (tmp_path / "t").iterdir()] == ["data"]
    with pytest.raises(SpeakerGMMError, match=r"^could not download A \(https://h/a.zip: the "
                                              r"archive holds README, wrap, not the layout\); "
                                              r"fix$"):
        with unpacked_download("https://h/a.zip", tmp_path / "u", archive="a.zip",
                               holding="nothing", layout="the layout", what="A", fix="fix"):
            pass
    assert list((tmp_path / "u").iterdir()) == []


def test_unpacked_download_checks_the_digest_before_unpacking(tmp_path, monkeypatch):
    archive = make_zip(tmp_path / "a.zip", [("wrap/data/f", b"f", None)])
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    serve(monkeypatch, {"https://h/a.zip": archive.read_bytes()})
    unpacked = []
    real = _download._extract
    monkeypatch.setattr(_download, "_extract", lambda *a: unpacked.append(a) or real(*a))
    with pytest.raises(SpeakerGMMError, match=rf"^could not download A \(https://h/a.zip: MD5 "
                                              rf"of a.zip is {md5}, expected {'0' * 32}: "
                                              rf"damaged, or not the published file\); fix it "
                                              rf"by hand$"):
        with unpacked_download("https://h/a.zip", tmp_path / "t", archive="a.zip",
                               holding="data", layout="the layout", what="A",
                               fix="fix it by hand", digest=("md5", "0" * 32)):
            pytest.fail("the body must not run")
    assert unpacked == [] and list((tmp_path / "t").iterdir()) == []
    # the right digest (in either case) unpacks
    for expected in (md5, md5.upper()):
        with unpacked_download("https://h/a.zip", tmp_path / "u", archive="a.zip",
                               holding="data", layout="the layout", what="A", fix="fix",
                               digest=("md5", expected)) as root:
            assert (root / "data" / "f").read_bytes() == b"f"
    assert len(unpacked) == 2


def good_tarball(tmp_path):
    src = tmp_path / "src" / "wrap" / "data"
    src.mkdir(parents=True)
    (src / "f").write_bytes(b"f" * 5000)
    path = tmp_path / "good.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        tf.add(src.parent, "wrap")
    return path.read_bytes()


def test_unpacked_download_moves_on_from_a_bad_archive(tmp_path, monkeypatch):
    """A mirror that answers with something other than the archive (a captive portal's
    page, a file cut short without a Content-Length, another file) is passed over like one
    that does not answer."""
    good = good_tarball(tmp_path)
    asked = serve(monkeypatch, {
        "https://a/x.tar.gz": b"<html><body>Please sign in</body></html>",
        "https://b/x.tar.gz": good[: len(good) // 2],  # cut short, no length announced
        "https://c/x.tar.gz": urllib.error.URLError("no route to host"),
        "https://d/x.tar.gz": good})
    seen = []
    with unpacked_download(list(asked_urls := ["https://a/x.tar.gz", "https://b/x.tar.gz",
                                               "https://c/x.tar.gz", "https://d/x.tar.gz"]),
                           tmp_path / "t", archive="x.tar.gz", holding="data",
                           layout="the layout", what="X", fix="fix",
                           progress=lambda done, total: seen.append(done)) as root:
        assert (root / "data" / "f").read_bytes() == b"f" * 5000
        assert files_under(root.parent) == ["wrap", "wrap/data", "wrap/data/f"]
    assert asked == asked_urls and seen[-1] == len(good)
    assert list((tmp_path / "t").iterdir()) == []
    # with a digest: the first mirror serves another file
    other = make_zip(tmp_path / "o.zip", [("wrap/data/f", b"g", None)]).read_bytes()
    asked = serve(monkeypatch, {"https://a/x.tar.gz": other, "https://b/x.tar.gz": good})
    with unpacked_download(["https://a/x.tar.gz", "https://b/x.tar.gz"], tmp_path / "t",
                           archive="x.tar.gz", holding="data", layout="the layout", what="X",
                           fix="fix", digest=("sha256", hashlib.sha256(good).hexdigest())
                           ) as root:
        assert (root / "data" / "f").read_bytes() == b"f" * 5000
    assert asked == ["https://a/x.tar.gz", "https://b/x.tar.gz"]


def test_unpacked_download_names_each_url_and_its_reason(tmp_path, monkeypatch):
    good = good_tarball(tmp_path)
    serve(monkeypatch, {"https://a/x.tar.gz": b"<!doctype html><p>Maintenance</p>",
                        "https://b/x.tar.gz": good[:100],
                        "https://c/x.tar.gz": urllib.error.URLError("no route to host"),
                        "https://d/x.tar.gz": good})
    with pytest.raises(SpeakerGMMError) as err:
        with unpacked_download([f"https://{h}/x.tar.gz" for h in "abcd"], tmp_path / "t",
                               archive="x.tar.gz", holding="data", layout="the layout",
                               what="X", fix="download it by hand",
                               digest=("md5", "0" * 32)):
            pytest.fail("the body must not run")
    message = str(err.value)
    assert message.startswith("could not download X (https://a/x.tar.gz: MD5 of x.tar.gz is ")
    for url, reason in (("a", "expected 0000"), ("c", "no route to host"),
                        ("d", "expected 0000")):
        assert f"https://{url}/x.tar.gz" in message and reason in message
    assert message.endswith("); download it by hand")
    assert list((tmp_path / "t").iterdir()) == []
    serve(monkeypatch, {"https://a/x.tar.gz": b"<!doctype html><p>Maintenance</p>",
                        "https://b/x.tar.gz": good[:100]})
    with pytest.raises(SpeakerGMMError, match=r"https://a/x.tar.gz: not an archive but a web "
                                              r"page .*; https://b/x.tar.gz: the archive is "
                                              r"damaged or incomplete"):
        with unpacked_download(["https://a/x.tar.gz", "https://b/x.tar.gz"], tmp_path / "t",
                               archive="x.tar.gz", holding="data", layout="the layout",
                               what="X", fix="fix"):
            pass


def test_the_published_archive_is_not_downloaded_again(tmp_path, monkeypatch):
    """Once the digest matches, the archive is the published one: if it does not unpack
    into the layout expected, no mirror would do better."""
    good = good_tarball(tmp_path)
    asked = serve(monkeypatch, {"https://a/x.tar.gz": good, "https://b/x.tar.gz": good})
    with pytest.raises(SpeakerGMMError, match=r"^https://a/x.tar.gz: the archive holds wrap, "
                                              r"not the layout \(its MD5 is the published "
                                              r"one\); fix$"):
        with unpacked_download(["https://a/x.tar.gz", "https://b/x.tar.gz"], tmp_path / "t",
                               archive="x.tar.gz", holding="elsewhere", layout="the layout",
                               what="X", fix="fix", digest=("md5", hashlib.md5(good).hexdigest())):
            pass
    assert asked == ["https://a/x.tar.gz"] and list((tmp_path / "t").iterdir()) == []


def test_unpacked_download_stops_at_a_local_error(tmp_path, monkeypatch):
    archive = make_zip(tmp_path / "a.zip", [("wrap/data/f", b"f", None)]).read_bytes()
    asked = serve(monkeypatch, {"https://a/a.zip": archive, "https://b/a.zip": archive})

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("shutil.copyfileobj", full)  # what zipfile writes members with
    with pytest.raises(SpeakerGMMError, match=r"^cannot write .*unpacked: No space left on "
                                              r"device; free space on that disk"):
        with unpacked_download(["https://a/a.zip", "https://b/a.zip"], tmp_path / "t",
                               archive="a.zip", holding="data", layout="the layout",
                               what="A", fix="fix"):
            pass
    assert asked == ["https://a/a.zip"] and list((tmp_path / "t").iterdir()) == []


def test_openslr_urls():
    assert openslr_urls(12, "dev-clean.tar.gz") == [
        f"https://{host}/resources/12/dev-clean.tar.gz"
        for host in ("www.openslr.org", "us.openslr.org", "openslr.elda.org",
                     "openslr.magicdatatech.com")]
