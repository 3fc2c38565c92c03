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


def test_temporaries_of_dead_processes_are_removed_by_the_next_write(tmp_path):
    """A run killed at the final write leaves its temporary: the next write of the file on
    this host removes it if its process is gone, and leaves a live process's alone."""
    import subprocess
    import sys

    from speakergmm import _io

    target = tmp_path / "scores"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = tmp_path / f".scores.{_io._HOST}.{dead}.abc.tmp"
    live = tmp_path / f".scores.{_io._HOST}.{os.getppid()}.abc.tmp"  # our parent runs
    other_host = tmp_path / f".scores.elsewhere.{dead}.abc.tmp"
    for p in (stale, live, other_host):
        p.write_text("half")
    write_text_atomic(target, "done")
    assert target.read_text() == "done"
    assert not stale.exists() and live.exists() and other_host.exists()


def test_errors_name_the_file_asked_for_not_the_temporary(tmp_path):
    with pytest.raises(OSError) as info:
        write_text_atomic(tmp_path / "no" / "such" / "dir" / "out.json", "x")
    assert info.value.filename == str(tmp_path / "no" / "such" / "dir" / "out.json")
    assert ".tmp" not in str(info.value)


def test_a_short_write_is_said_to_be_a_full_disk(tmp_path):
    """numpy's np.save on a full disk raises "142992 requested and 16352 written", with no
    file and no reason (issue 25): said as a full disk, of the file asked for."""
    import pytest

    from speakergmm._io import atomic_write

    target = tmp_path / "out.npy"
    with pytest.raises(OSError) as info:
        with atomic_write(target, "wb"):
            raise OSError("142992 requested and 16352 written")
    assert info.value.filename == str(target) and "No space left" in str(info.value)
    assert list(tmp_path.iterdir()) == []
