"""Concurrency, proven (issue 14): writers enrolling into one store while readers verify
and identify, scaled to fit CI (the full size: ``python tests/concurrency/hammer_store.py``,
see its docstring)."""

from hammer_store import hammer


def test_concurrent_enrollments_with_readers_lose_nothing(tmp_path):
    report = hammer(tmp_path, writers=4, enrollments=2, readers=2)
    assert report["enroll_failures"] == []
    assert report["speakers"] == report["speakers_expected"] == 2 + 4 * 2
    assert report["speakers_whole"] == report["speakers"]
    assert report["two_recordings_each"]
    assert report["reader_calls"] >= 2 and report["reader_failures"] == []
    # a reader blocked by the write lock waited up to 60 s before issue 14
    assert report["reader_seconds_max"] < 30, report
    assert report["left_files"] == []
