import os
import stat

import pytest

from speakergmm._io import atomic_write, write_text_atomic


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_written_files_get_the_usual_mode_not_mkstemps(tmp_path):
    write_text_atomic(tmp_path / "x", "hello")
    assert (tmp_path / "x").read_text() == "hello"
    assert stat.S_IMODE((tmp_path / "x").stat().st_mode) == 0o666 & ~_umask()


def test_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "model.npz"
    target.write_bytes(b"old")
    for exc in (RuntimeError, KeyboardInterrupt):
        with pytest.raises(exc):
            with atomic_write(target, "wb") as fh:
                fh.write(b"half")
                raise exc
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]
