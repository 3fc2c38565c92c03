import pytest

from speakergmm.data.rttm import Turn, read_rttm, write_rttm
from speakergmm.errors import DataDirError


def test_round_trip_sorted_and_other_lines_skipped(tmp_path):
    path = tmp_path / "a.rttm"
    path.write_text(";; a comment\n"
                    "SPKR-INFO rec1 1 <NA> <NA> <NA> unknown alice <NA>\n"
                    "SPEAKER rec1 1 3.50 1.25 <NA> <NA> bob <NA> <NA>\n"
                    "SPEAKER rec1 1 0.00 2.00 <NA> <NA> alice <NA> <NA>\n"
                    "\n"
                    "SPEAKER rec0 1 1 1 <NA> <NA> carol\n")
    turns = read_rttm(path)
    assert turns == {"rec1": [Turn(0.0, 2.0, "alice"), Turn(3.5, 4.75, "bob")],
                     "rec0": [Turn(1.0, 2.0, "carol")]}
    write_rttm(tmp_path / "b.rttm", turns)
    assert read_rttm(tmp_path / "b.rttm") == turns
    assert (tmp_path / "b.rttm").read_text().splitlines()[0] == \
        "SPEAKER rec0 1 1.000 1.000 <NA> <NA> carol <NA> <NA>"


@pytest.mark.parametrize("line, message", [
    ("SPEAKER rec 1 0.0 1.0", "at least 8 fields"),
    ("SPEAKER rec 1 zero 1.0 <NA> <NA> a", "numbers of seconds"),
    ("SPEAKER rec 1 0.0 -1 <NA> <NA> a", "not negative"),
    ("SPEAKER rec 1 nan 1 <NA> <NA> a", "finite"),
])
def test_bad_lines_are_named(tmp_path, line, message):
    path = tmp_path / "bad.rttm"
    path.write_text("SPEAKER rec 1 0 1 <NA> <NA> a <NA> <NA>\n" + line + "\n")
    with pytest.raises(DataDirError, match=f"bad.rttm:2: .*{message}"):
        read_rttm(path)


def test_ids_with_whitespace_are_refused(tmp_path):
    with pytest.raises(DataDirError, match="whitespace"):
        write_rttm(tmp_path / "x.rttm", {"rec": [Turn(0, 1, "two words")]})
    assert not (tmp_path / "x.rttm").exists()
