"""The download helpers every corpus module shares (speakergmm.corpora._download)."""

import hashlib
import io
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile

import pytest

from speakergmm.corpora._download import (fetch, file_digest, openslr_urls, safe_extract,
                                          staging_dir, unpacked_download)
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
                        "https://c/x": Response(b"half", length=8)})
    with pytest.raises(SpeakerGMMError, match=r"could not download the thing \(https://a/x: "
                                              r".*no route to host.*; https://b/x: .*404.*; "
                                              r"https://c/x: .*after 4 of 8 bytes\); do this"):
        fetch(("https://a/x", "https://b/x", "https://c/x"), tmp_path / "x", what="the thing",
              fix="do this")
    assert list(tmp_path.iterdir()) == []  # the truncated transfer left nothing


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
    outside = tmp_path / "evil"
    for name, mode, why in (("../evil", None, "'..' component"),
                            (str(outside), None, "absolute path"),
                            ("top/link", stat.S_IFLNK | 0o777, "link or special file")):
        bad = make_zip(tmp_path / "bad.zip", [("top/ok.txt", b"x", None), (name, b"x", mode)])
        with pytest.raises(SpeakerGMMError, match=f"https://h/bad.zip: archive member "
                                                  f".*is an? {why}; refusing to unpack it"):
            safe_extract(bad, tmp_path / "out2", source="https://h/bad.zip")
        assert not outside.exists() and not (tmp_path / "out2" / "top" / "link").exists()


@pytest.mark.parametrize("name", ["a.zip", "a.tar.gz"])
def test_safe_extract_damaged(tmp_path, name):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(bytes(range(256)) * 400)
    archive = tmp_path / name
    if name.endswith(".zip"):
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.write(src / "f", "f")
    else:
        with tarfile.open(archive, "w:gz") as tf:
            tf.add(src / "f", "f")
    archive.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(SpeakerGMMError, match="damaged or incomplete"):
        safe_extract(archive, tmp_path / "out")


def test_safe_extract_tar_refuses_special_files(tmp_path):
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tf:
        info = tarfile.TarInfo("top/fifo")
        info.type = tarfile.FIFOTYPE
        tf.addfile(info)
    with pytest.raises(SpeakerGMMError, match="'top/fifo' is a link or special file"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "top" / "fifo").exists()


def test_staging_dir_is_removed_whatever_happens(tmp_path):
    for exc in (SpeakerGMMError, KeyboardInterrupt):
        with pytest.raises(exc):
            with staging_dir(tmp_path / "t") as tmp:
                (tmp / "partial").write_bytes(b"x")
                raise exc()
        assert list((tmp_path / "t").iterdir()) == []


def test_unpacked_download_finds_the_content_root(tmp_path, monkeypatch):
    archive = make_zip(tmp_path / "a.zip", [("wrap/data/f", b"f", None), ("README", b"r", None)])
    serve(monkeypatch, {"https://h/a.zip": archive.read_bytes()})
    with unpacked_download("https://h/a.zip", tmp_path / "t", archive="a.zip", holding="data",
                           layout="the layout", what="A", fix="fix") as root:
        assert root.name == "wrap" and (root / "data" / "f").read_bytes() == b"f"
        (root / "data").rename(tmp_path / "t" / "data")
    assert [p.name for p in (tmp_path / "t").iterdir()] == ["data"]
    with pytest.raises(SpeakerGMMError, match=r"https://h/a.zip: the archive holds README, "
                                              r"wrap, not the layout"):
        with unpacked_download("https://h/a.zip", tmp_path / "u", archive="a.zip",
                               holding="nothing", layout="the layout", what="A", fix="fix"):
            pass
    assert list((tmp_path / "u").iterdir()) == []


def test_unpacked_download_checks_the_digest_before_unpacking(tmp_path, monkeypatch):
    archive = make_zip(tmp_path / "a.zip", [("wrap/data/f", b"f", None)])
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    serve(monkeypatch, {"https://h/a.zip": archive.read_bytes()})
    unpacked = []
    monkeypatch.setattr("speakergmm.corpora._download.safe_extract",
                        lambda *a, **k: unpacked.append(a) or safe_extract(*a, **k))
    with pytest.raises(SpeakerGMMError, match=rf"https://h/a.zip: MD5 of a.zip is {md5}, "
                                              rf"expected {'0' * 32}; the download is damaged "
                                              rf"or not the published file; try again, or fix "
                                              rf"it by hand"):
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


def test_openslr_urls():
    assert openslr_urls(12, "dev-clean.tar.gz") == [
        f"https://{host}/resources/12/dev-clean.tar.gz"
        for host in ("www.openslr.org", "us.openslr.org", "openslr.elda.org",
                     "openslr.magicdatatech.com")]
