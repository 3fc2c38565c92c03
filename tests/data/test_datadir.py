"""Tests of speakergmm.data: data directories, validation, trials, enrollment maps."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from speakergmm.cli import main
from speakergmm.data import (
    AudioRef,
    DataDir,
    Problem,
    Trials,
    read_data_dir,
    read_enroll_map,
    read_kaldi_map,
    read_trials,
    validate_data_dir,
    write_data_dir,
    write_enroll_map,
    write_trials,
)
from speakergmm.errors import DataDirError

from conftest import corpus

# A clean directory: two speakers whose ids prefix their utterance ids, relative audio paths.
CLEAN = {
    "wav.scp": "spkA-u1 audio/a1.wav\nspkA-u2 audio/a2.wav\nspkB-u1 audio/b1.wav\n",
    "utt2spk": "spkA-u1 spkA\nspkA-u2 spkA\nspkB-u1 spkB\n",
    "spk2utt": "spkA spkA-u1 spkA-u2\nspkB spkB-u1\n",
    "utt2dur": "spkA-u1 1.5\nspkA-u2 2.0\nspkB-u1 3.25\n",
    "spk2gender": "spkA f\nspkB m\n",
}
# The same utterances cut from two recordings.
SEGMENTED = {
    "wav.scp": "recA audio/a1.wav\nrecB audio/b1.wav\n",
    "segments": "spkA-u1 recA 0.0 1.5\nspkA-u2 recA 1.5 -1\nspkB-u1 recB 0.25 3.5\n",
    "utt2spk": CLEAN["utt2spk"],
    "spk2utt": CLEAN["spk2utt"],
}


def make_dir(root: Path, files: dict[str, str | None], *, audio: bool = True) -> Path:
    """Write ``files`` into ``root/data`` (None: leave the file out) and dummy audio."""
    d = root / "data"
    d.mkdir(exist_ok=True)
    for name, text in files.items():
        if text is not None:
            (d / name).write_text(text, encoding="utf-8")
    if audio:
        (root / "audio").mkdir(exist_ok=True)
        for name in ("a1.wav", "a2.wav", "b1.wav"):
            (root / "audio" / name).write_bytes(b"RIFF")
    return d


def edit(files: dict[str, str], **changes: str | None) -> dict[str, str | None]:
    """A copy of ``files`` with some replaced; keyword ``wav_scp`` means ``wav.scp``."""
    out = dict(files)
    out.update({k.replace("_scp", ".scp"): v for k, v in changes.items()})
    return out


def problems_in(tmp_path: Path, files, **kw) -> list[Problem]:
    d = make_dir(tmp_path, files)
    return validate_data_dir(d, audio_root=tmp_path, **kw)


def assert_problem(problems: list[Problem], file: str, line: int | None, text: str) -> Problem:
    found = [p for p in problems
             if Path(p.file).name == file and p.line == line and text in p.message]
    assert found, f"no problem {file}:{line} containing {text!r} in:\n" + "\n".join(
        map(str, problems))
    return found[0]


# --------------------------------------------------------------------------- clean dirs


@pytest.mark.parametrize("files", [CLEAN, SEGMENTED], ids=["plain", "segments"])
def test_clean_dir_has_no_problems(tmp_path, files):
    assert problems_in(tmp_path, files) == []


def test_unknown_files_are_ignored(tmp_path):
    files = edit(CLEAN, spk2age="spkB 30\nspkA 20\n", text="garbage line without order\n")
    assert problems_in(tmp_path, files) == []


def test_problem_str():
    assert str(Problem("d/utt2spk", 3, "bad")) == "d/utt2spk:3: bad"
    assert str(Problem("d/spk2utt", None, "missing")) == "d/spk2utt: missing"


def test_not_a_directory(tmp_path):
    problems = validate_data_dir(tmp_path / "nope")
    assert len(problems) == 1 and "not a directory" in problems[0].message


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("missing", ["wav.scp", "utt2spk"])
def test_missing_required_file(tmp_path, missing):
    problems = problems_in(tmp_path, edit(CLEAN, **{missing.replace(".", "_"): None}))
    assert len(problems) == 1  # no cascade of "not in wav.scp/utt2spk" for every entry
    assert_problem(problems, missing, None, "missing")


def test_missing_spk2utt_says_how_to_create_it(tmp_path):
    problems = problems_in(tmp_path, edit(CLEAN, spk2utt=None))
    assert len(problems) == 1
    assert_problem(problems, "spk2utt", None, "utt2spk_to_spk2utt.pl")


@pytest.mark.parametrize("name", ["wav.scp", "utt2spk", "spk2utt", "utt2dur", "spk2gender"])
def test_unsorted_file_reports_first_out_of_order_line(tmp_path, name):
    lines = CLEAN[name].splitlines()
    files = edit(CLEAN, **{name.replace(".", "_"): "\n".join(lines[::-1]) + "\n"})
    problems = problems_in(tmp_path, files)
    unsorted = [p for p in problems if "not sorted" in p.message]
    assert len(unsorted) == 1  # once per file, not once per line
    assert_problem(problems, name, 2, "LC_ALL=C sort")


def test_unsorted_line_found_in_irregular_file(tmp_path):
    # A blank line forces the line-by-line parser; line numbers must still be right.
    files = edit(CLEAN, utt2dur="spkA-u1 1.5\n\nspkB-u1 3.25\nspkA-u2 2.0\n")
    assert_problem(problems_in(tmp_path, files), "utt2dur", 4, "not sorted")


def test_duplicate_keys_each_reported_with_both_lines(tmp_path):
    files = edit(CLEAN, utt2spk="spkA-u1 spkA\nspkA-u1 spkA\nspkA-u2 spkA\nspkA-u2 spkA\n"
                                "spkB-u1 spkB\n")
    problems = problems_in(tmp_path, files)
    assert_problem(problems, "utt2spk", 2, "first on line 1")
    assert_problem(problems, "utt2spk", 4, "first on line 3")


@pytest.mark.parametrize("name, text, line, message", [
    ("utt2spk", "spkA-u1 spkA\nspkA-u2 spkA extra\nspkB-u1 spkB\n", 2, "expected 2 fields"),
    ("utt2spk", "spkA-u1 spkA\nspkA-u2\nspkB-u1 spkB\n", 2, "expected 2 fields"),
    ("wav.scp", "spkA-u1 audio/a1.wav\nspkA-u2\nspkB-u1 audio/b1.wav\n", 2, "<recording>"),
    ("spk2utt", "spkA spkA-u1 spkA-u2\nspkB\n", 2, "<speaker> <utterance> ..."),
    ("utt2dur", "spkA-u1 1.5\nspkA-u2 2.0 s\nspkB-u1 3.25\n", 2, "expected 2 fields"),
    ("spk2gender", "spkA\nspkB m\n", 1, "expected 2 fields"),
    ("segments", "spkA-u1 recA 0.0\n", 1, "expected 4 fields"),
])
def test_malformed_line(tmp_path, name, text, line, message):
    base = SEGMENTED if name == "segments" else CLEAN
    problems = problems_in(tmp_path, edit(base, **{name.replace(".", "_"): text}))
    assert_problem(problems, name, line, message)


def test_not_utf8_names_the_line(tmp_path):
    files = edit(CLEAN, spk2gender=None)
    d = make_dir(tmp_path, files)
    (d / "spk2gender").write_bytes(b"spkA f\nspk\xff m\n")
    problems = validate_data_dir(d, audio_root=tmp_path)
    assert len(problems) == 1  # and no cascade of "speaker has no gender"
    assert_problem(problems, "spk2gender", 2, "UTF-8")


@pytest.mark.parametrize("utt, spk, bad", [
    ("spkA/u1", "spkA", "'/'"),   # a slash would make the id a directory
    ("spkA-u1", "spk#A", "'#'"),
    ("spkA-ü1", "spkA", "'ü'"),
])
def test_suspicious_id_characters(tmp_path, utt, spk, bad):
    files = {
        "wav.scp": f"{utt} audio/a1.wav\n",
        "utt2spk": f"{utt} {spk}\n",
        "spk2utt": f"{spk} {utt}\n",
    }
    problems = problems_in(tmp_path, files)
    assert_problem(problems, "utt2spk", 1, bad)
    assert all(bad in p.message for p in problems)


def test_allowed_id_characters_are_accepted(tmp_path):
    ident = "A-z_0.9+x@y:z"
    files = {"wav.scp": f"{ident} audio/a1.wav\n", "utt2spk": f"{ident} {ident}\n",
             "spk2utt": f"{ident} {ident}\n"}
    assert problems_in(tmp_path, files) == []


def test_utterance_without_recording(tmp_path):
    files = edit(CLEAN, wav_scp="spkA-u1 audio/a1.wav\nspkB-u1 audio/b1.wav\n")
    problems = problems_in(tmp_path, files)
    assert_problem(problems, "utt2spk", 2, "'spkA-u2' has no recording in wav.scp")


def test_recording_without_speaker(tmp_path):
    files = edit(CLEAN, wav_scp=CLEAN["wav.scp"] + "spkC-u1 audio/b1.wav\n")
    assert_problem(problems_in(tmp_path, files), "wav.scp", 4, "has no speaker in utt2spk")


def test_spk2utt_list_differs_from_utt2spk(tmp_path):
    files = edit(CLEAN, spk2utt="spkA spkA-u1\nspkB spkB-u1 spkA-u2\n")
    problems = problems_in(tmp_path, files)
    assert_problem(problems, "spk2utt", 1, "missing: spkA-u2")
    assert_problem(problems, "spk2utt", 2, "not in utt2spk for this speaker: spkA-u2")


def test_spk2utt_utterance_listed_twice(tmp_path):
    files = edit(CLEAN, spk2utt="spkA spkA-u1 spkA-u2\nspkB spkB-u1 spkA-u1\n")
    assert_problem(problems_in(tmp_path, files), "spk2utt", 2,
                   "'spkA-u1' listed twice (also on line 1)")


def test_spk2utt_missing_and_extra_speaker(tmp_path):
    files = edit(CLEAN, spk2utt="spkA spkA-u1 spkA-u2\nspkC spkB-u1\n")
    problems = problems_in(tmp_path, files)
    assert_problem(problems, "spk2utt", None, "speaker 'spkB' of utt2spk is missing")
    assert_problem(problems, "spk2utt", 2, "speaker 'spkC' is not in utt2spk")


def test_spk2utt_unsorted_utterances(tmp_path):
    files = edit(CLEAN, spk2utt="spkA spkA-u2 spkA-u1\nspkB spkB-u1\n")
    assert_problem(problems_in(tmp_path, files), "spk2utt", 1, "not sorted")


def test_utt2spk_order_disagrees_with_speaker_order(tmp_path):
    files = {
        "wav.scp": "u1 audio/a1.wav\nu2 audio/a2.wav\n",
        "utt2spk": "u1 spkB\nu2 spkA\n",
        "spk2utt": "spkA u2\nspkB u1\n",
    }
    problems = problems_in(tmp_path, files)
    assert len(problems) == 1
    assert_problem(problems, "utt2spk", 2, "make speaker ids prefixes of utterance ids")


@pytest.mark.parametrize("line, message", [
    ("spkA-u2 recA -0.5 1.0", "is negative"),
    ("spkA-u2 recA 2.0 1.0", "not after the start"),
    ("spkA-u2 recA 2.0 2.0", "not after the start"),
    ("spkA-u2 recA x 2.0", "start time 'x' is not a number"),
    ("spkA-u2 recA 1.0 nan", "must be finite"),
    ("spkA-u2 recZ 1.5 -1", "recording 'recZ' of utterance 'spkA-u2' is not in wav.scp"),
])
def test_bad_segment(tmp_path, line, message):
    text = SEGMENTED["segments"].splitlines()
    text[1] = line
    problems = problems_in(tmp_path, edit(SEGMENTED, segments="\n".join(text) + "\n"))
    assert_problem(problems, "segments", 2, message)


def test_segment_end_minus_one_means_to_the_end(tmp_path):
    files = edit(SEGMENTED, segments="spkA-u1 recA 0 1.5\nspkA-u2 recA 1.5 -1\n"
                                     "spkB-u1 recB 0 -1.0\n")
    assert problems_in(tmp_path, files) == []


def test_segments_cross_checks(tmp_path):
    files = edit(SEGMENTED, wav_scp=SEGMENTED["wav.scp"] + "recC audio/b1.wav\n",
                 segments="spkA-u1 recA 0.0 1.5\nspkB-u1 recB 0.25 3.5\nspkC-u1 recB 4 5\n")
    problems = problems_in(tmp_path, files)
    assert_problem(problems, "utt2spk", 2, "'spkA-u2' has no segment")
    assert_problem(problems, "segments", 3, "'spkC-u1' has no speaker")
    assert_problem(problems, "wav.scp", 3, "'recC' is used by no segment")


@pytest.mark.parametrize("value, message", [
    ("0", "must be a positive number"),
    ("-2.0", "must be a positive number"),
    ("inf", "must be a positive number"),
    ("abc", "duration 'abc' is not a number"),
])
def test_bad_duration(tmp_path, value, message):
    files = edit(CLEAN, utt2dur=f"spkA-u1 1.5\nspkA-u2 {value}\nspkB-u1 3.25\n")
    assert_problem(problems_in(tmp_path, files), "utt2dur", 2, message)


def test_utt2dur_unknown_and_missing_utterances(tmp_path):
    files = edit(CLEAN, utt2dur="spkA-u1 1.5\nspkB-u1 3.25\nspkC-u1 1\n")
    problems = problems_in(tmp_path, files)
    assert_problem(problems, "utt2dur", 3, "'spkC-u1' is not in utt2spk")
    assert_problem(problems, "utt2dur", None, "'spkA-u2' has no duration")


def test_spk2gender_problems(tmp_path):
    files = edit(CLEAN, spk2gender="spkA female\nspkC m\n")
    problems = problems_in(tmp_path, files)
    assert_problem(problems, "spk2gender", 1, "must be 'm' or 'f'")
    assert_problem(problems, "spk2gender", 2, "'spkC' is not in utt2spk")
    assert_problem(problems, "spk2gender", None, "'spkB' has no gender")


def test_every_problem_is_reported_and_sorted(tmp_path):
    files = edit(CLEAN, utt2dur="spkA-u1 0\nspkA-u2 -1\nspkB-u1 x\n",
                 spk2gender="spkA x\nspkB y\n")
    problems = problems_in(tmp_path, files)
    assert [(Path(p.file).name, p.line) for p in problems] == [
        ("spk2gender", 1), ("spk2gender", 2),
        ("utt2dur", None), ("utt2dur", 1), ("utt2dur", 2), ("utt2dur", 3)]


# --------------------------------------------------------------------------- audio


def test_missing_relative_audio_reported_with_resolved_path(tmp_path):
    d = make_dir(tmp_path, CLEAN)
    (tmp_path / "audio" / "a2.wav").unlink()
    problems = validate_data_dir(d, audio_root=tmp_path)
    assert len(problems) == 1
    problem = assert_problem(problems, "wav.scp", 2, "not found")
    assert str(tmp_path / "audio" / "a2.wav") in problem.message
    assert "audio_root" in problem.message
    assert validate_data_dir(d, audio_root=tmp_path, check_audio=False) == []


def test_relative_audio_resolves_against_cwd_by_default(tmp_path, monkeypatch):
    d = make_dir(tmp_path, CLEAN)
    monkeypatch.chdir(tmp_path)
    assert validate_data_dir(d) == []
    monkeypatch.chdir(d)
    assert len(validate_data_dir(d)) == 3


def test_absolute_audio_paths_ignore_audio_root(tmp_path):
    a = tmp_path / "audio"
    files = edit(CLEAN, wav_scp=f"spkA-u1 {a}/a1.wav\nspkA-u2 {a}/gone.wav\n"
                                "spkB-u1 sox gone.flac -t wav - |\n")
    problems = problems_in(tmp_path, files, check_audio=True)
    assert len(problems) == 1  # the pipe is not checked
    problem = assert_problem(problems, "wav.scp", 2, f"'{a}/gone.wav'")
    assert "relative paths" not in problem.message


# --------------------------------------------------------------------------- reading/writing


def full_data() -> DataDir:
    return DataDir(
        wav_scp={"recB": "flac -c -d -s b.flac |", "recA": "audio/a.wav", "Rec0": "/abs/z.wav"},
        utt2spk={"s2-u1": "s2", "s1-u2": "s1", "s1-u1": "s1", "S0-u1": "S0"},
        segments={"s2-u1": ("recB", 0.0, -1.0), "s1-u2": ("recA", 1.25, 2.5),
                  "s1-u1": ("recA", 0.0, 1.25), "S0-u1": ("Rec0", 0.1, 0.30000000000000004)},
        utt2dur={"s2-u1": 4.0, "s1-u2": 1.25, "s1-u1": 1.25, "S0-u1": 0.2},
        spk2gender={"s2": "m", "s1": "f", "S0": "f"},
    )


def test_round_trip(tmp_path):
    data = full_data()
    write_data_dir(tmp_path / "d", data)
    back = read_data_dir(tmp_path / "d")
    assert back.path == tmp_path / "d"
    back.path = None
    assert back == data
    assert back.spk2utt == {"S0": ["S0-u1"], "s1": ["s1-u1", "s1-u2"], "s2": ["s2-u1"]}
    assert validate_data_dir(tmp_path / "d", check_audio=False) == []


def test_written_files_are_sorted_in_c_locale_order(tmp_path):
    write_data_dir(tmp_path, full_data())
    # Upper case sorts before lower case in byte order.
    assert (tmp_path / "utt2spk").read_text() == "S0-u1 S0\ns1-u1 s1\ns1-u2 s1\ns2-u1 s2\n"
    assert (tmp_path / "spk2utt").read_text() == "S0 S0-u1\ns1 s1-u1 s1-u2\ns2 s2-u1\n"
    assert (tmp_path / "wav.scp").read_text().splitlines()[0] == "Rec0 /abs/z.wav"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_write_removes_stale_optional_files(tmp_path):
    write_data_dir(tmp_path, full_data())
    write_data_dir(tmp_path, DataDir(wav_scp={"a": "a.wav"}, utt2spk={"a": "s"}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spk2utt", "utt2spk", "wav.scp"]
    assert read_data_dir(tmp_path).segments is None


def test_write_refuses_ids_with_whitespace(tmp_path):
    with pytest.raises(DataDirError, match="whitespace"):
        write_data_dir(tmp_path, DataDir(wav_scp={"a": "a.wav"}, utt2spk={"a": "spk 1"}))
    assert not (tmp_path / "utt2spk").exists()


def test_data_dir_properties():
    data = full_data()
    assert data.utterances == ["S0-u1", "s1-u1", "s1-u2", "s2-u1"]
    assert data.speakers == ["S0", "s1", "s2"]
    data.utt2spk["s1-u3"] = "s2"
    assert data.spk2utt["s2"] == ["s1-u3", "s2-u1"]  # derived, so never stale


@pytest.mark.parametrize("name, text, where", [
    ("utt2spk", "a s\nb s x\n", "utt2spk:2: expected 2 fields"),
    ("utt2spk", "a s\na s\n", "utt2spk:2: duplicate key 'a' (first on line 1)"),
    ("segments", "a r 0 1\nb r 1 z\n", "segments:2: end time 'z' is not a number"),
    ("utt2dur", "a 1\nb\n", "utt2dur:2: expected 2 fields"),
])
def test_read_errors_name_file_and_line(tmp_path, name, text, where):
    (tmp_path / "wav.scp").write_text("r x.wav\na x.wav\nb x.wav\n")
    (tmp_path / "utt2spk").write_text("a s\nb s\n")
    (tmp_path / name).write_text(text)
    with pytest.raises(DataDirError, match=re.escape(where)):
        read_data_dir(tmp_path)


@pytest.mark.parametrize("missing", ["wav.scp", "utt2spk"])
def test_read_requires_wav_scp_and_utt2spk(tmp_path, missing):
    (tmp_path / ({"wav.scp", "utt2spk"} - {missing}).pop()).write_text("a b\n")
    with pytest.raises(DataDirError, match=missing):
        read_data_dir(tmp_path)


def test_read_kaldi_map_modes(tmp_path):
    f = tmp_path / "m"
    f.write_text("a  sox x.wav -t wav - |  \r\n\nb y.wav\n")  # CRLF, blank line, pipe
    assert read_kaldi_map(f) == {"a": "sox x.wav -t wav - |", "b": "y.wav"}
    f.write_text("s1 u1 u2\ns2 u3\n")
    assert read_kaldi_map(f, multi=True) == {"s1": ["u1", "u2"], "s2": ["u3"]}
    f.write_text("u1 r 0 1\nu2 r 1 2\n")
    assert read_kaldi_map(f, n_values=3) == {"u1": ["r", "0", "1"], "u2": ["r", "1", "2"]}
    assert read_kaldi_map(f, n_values=3, parse=lambda v: float(v[2])) == {"u1": 1.0, "u2": 2.0}


@pytest.mark.parametrize("kw, text", [
    ({}, "r1 a.wav\nr2 sox b.sph -t wav - |\n"),
    ({"n_values": 1}, "u1 s1\nu2 s2\n"),
    ({"n_values": 3}, "u1 r 0 1.5\nu2 r 1.5 -1\n"),
    ({"multi": True}, "s1 u1 u2\ns2 u3\n"),
])
def test_regular_and_irregular_files_parse_alike(tmp_path, kw, text):
    # Regular files take a fast path; a blank line forces the line-by-line one.
    (tmp_path / "fast").write_text(text)
    (tmp_path / "slow").write_text("\n" + text.replace("\n", "\r\n"))
    fast = read_kaldi_map(tmp_path / "fast", **kw)
    assert fast == read_kaldi_map(tmp_path / "slow", **kw) and len(fast) == 2


def test_read_kaldi_map_parse_error_names_line(tmp_path):
    def parse(v):
        if v == "bad":
            raise ValueError("value 'bad' is not allowed")
        return v

    (tmp_path / "m").write_text("a ok\nb bad\n")
    with pytest.raises(DataDirError, match=r"m:2: value 'bad' is not allowed"):
        read_kaldi_map(tmp_path / "m", n_values=1, parse=parse)
    with pytest.raises(DataDirError, match="no such file"):
        read_kaldi_map(tmp_path / "absent")


def test_read_kaldi_map_wrong_field_count_names_line(tmp_path):
    f = tmp_path / "m"
    f.write_text("s1 u1 u2\ns2 u3\n")
    with pytest.raises(DataDirError, match=r"m:2: expected 3 fields"):
        read_kaldi_map(f, n_values=2)
    with pytest.raises(ValueError):
        read_kaldi_map(f, multi=True, n_values=2)


def test_read_speechocean_spk2gender_with_tabs(tmp_path):
    (tmp_path / "g").write_text("0001\tm\n0005\tf\n")
    assert read_kaldi_map(tmp_path / "g", n_values=1) == {"0001": "m", "0005": "f"}


# --------------------------------------------------------------------------- audio_of


def test_audio_of_without_segments(tmp_path):
    data = DataDir(wav_scp={"u1": "audio/u1.wav", "u2": "/abs/u2.wav", "u3": "sox u3.sph - |"},
                   utt2spk={"u1": "s", "u2": "s", "u3": "s"})
    assert data.audio_of("u1") == AudioRef("audio/u1.wav", False)
    assert data.audio_of("u1", tmp_path) == AudioRef(str(tmp_path / "audio/u1.wav"), False)
    assert data.audio_of("u2", tmp_path) == AudioRef("/abs/u2.wav", False)
    assert data.audio_of("u3", tmp_path) == AudioRef("sox u3.sph -", True)
    with pytest.raises(DataDirError, match="wav.scp"):
        data.audio_of("u4")


def test_audio_of_with_segments():
    data = DataDir(wav_scp={"r": "r.wav"}, utt2spk={"u1": "s", "u2": "s"},
                   segments={"u1": ("r", 0.5, 2.0), "u2": ("r", 2.0, -1)})
    assert data.audio_of("u1", "/root") == AudioRef("/root/r.wav", False, 0.5, 1.5)
    assert data.audio_of("u2") == AudioRef("r.wav", False, 2.0, None)
    with pytest.raises(DataDirError, match="segments"):
        data.audio_of("u3")


# --------------------------------------------------------------------------- trials


@pytest.mark.parametrize("text", [
    "spk1 utt1 target\nspk1 utt2 nontarget\nspk2 utt1 nontarget\n",
    "1 spk1 utt1\n0 spk1 utt2\n0 spk2 utt1\n",
    "1 spk1 utt1\n\n0 spk1 utt2\r\n0 spk2 utt1",
], ids=["kaldi", "voxceleb", "voxceleb-sloppy"])
def test_read_trials_formats(tmp_path, text):
    (tmp_path / "trials").write_text(text)
    trials = read_trials(tmp_path / "trials")
    assert len(trials) == 3
    assert trials.enroll.tolist() == ["spk1", "spk1", "spk2"]
    assert trials.test.tolist() == ["utt1", "utt2", "utt1"]
    assert trials.is_target.dtype == bool
    assert trials.is_target.tolist() == [True, False, False]


def test_unlabelled_trials(tmp_path):
    (tmp_path / "trials").write_text("spk1 utt1\nspk2 utt1\n")
    trials = read_trials(tmp_path / "trials")
    assert trials.is_target is None and len(trials) == 2
    write_trials(tmp_path / "out", trials)
    assert (tmp_path / "out").read_text() == "spk1 utt1\nspk2 utt1\n"


def test_trials_round_trip_in_kaldi_format(tmp_path):
    trials = Trials(["m2", "m1", "m1"], ["t1", "t1", "t2"], [True, False, True])
    write_trials(tmp_path / "trials", trials)
    assert (tmp_path / "trials").read_text() == "m2 t1 target\nm1 t1 nontarget\nm1 t2 target\n"
    back = read_trials(tmp_path / "trials")
    for name in ("enroll", "test", "is_target"):
        np.testing.assert_array_equal(getattr(back, name), getattr(trials, name))


@pytest.mark.parametrize("text, message", [
    ("a b target\n1 a c\n", r"trials:2: VoxCeleb line in a Kaldi trial list"),
    ("1 a b\nx c target\n", r"trials:2: Kaldi line in a VoxCeleb trial list"),
    ("a b target\na c yes\n", r"trials:2: label 'yes' must be 'target' or 'nontarget'"),
    ("1 a b\n2 a c\n", r"trials:2: label '2' must be 1 \(target\) or 0"),
    ("a b c d\n", r"trials:1: unknown trial format"),
    ("a b c\n", r"trials:1: unknown trial format"),
    ("a b\na c target\n", r"trials:2: 3 fields, but line 1 set the format to unlabelled"),
    ("a b target\na c\n", r"trials:2: 2 fields, but line 1 set the format to Kaldi"),
    ("a b target\na c target\na b nontarget\n", r"trials:3: trial 'a b' duplicates line 1"),
    ("\n", r"trials: no trials"),
])
def test_bad_trials(tmp_path, text, message):
    (tmp_path / "trials").write_text(text)
    with pytest.raises(DataDirError, match=message):
        read_trials(tmp_path / "trials")


def test_trials_arrays_must_agree():
    with pytest.raises(DataDirError, match="equal length"):
        Trials(["a", "b"], ["c"], None)


# --------------------------------------------------------------------------- enroll maps


def test_enroll_map_round_trip(tmp_path):
    enroll = {"model2": ["u3"], "model1": ["u2", "u1"]}
    write_enroll_map(tmp_path / "enroll", enroll)
    assert (tmp_path / "enroll").read_text() == "model1 u2 u1\nmodel2 u3\n"
    assert read_enroll_map(tmp_path / "enroll") == enroll


def test_enroll_map_errors(tmp_path):
    with pytest.raises(DataDirError, match="no utterances"):
        write_enroll_map(tmp_path / "e", {"m": []})
    (tmp_path / "e").write_text("m1 u1\nm2\n")
    with pytest.raises(DataDirError, match="e:2"):
        read_enroll_map(tmp_path / "e")


# --------------------------------------------------------------------------- real corpus


def test_speechocean762_train_is_clean():
    root = corpus("speechocean762")
    assert validate_data_dir(root / "train", audio_root=root) == []
    data = read_data_dir(root / "train")
    assert len(data.utterances) == len(data.wav_scp) and data.spk2gender


# --------------------------------------------------------------------------- CLI


def test_cli_clean_dir(tmp_path):
    d = make_dir(tmp_path, CLEAN)
    result = CliRunner().invoke(main, ["validate-data-dir", str(d), "--audio-root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "OK" in result.stdout


def test_cli_broken_dir(tmp_path):
    d = make_dir(tmp_path, edit(CLEAN, spk2gender="spkA f\nspkB x\n"))
    result = CliRunner().invoke(main, ["validate-data-dir", str(d), "--no-audio-check"])
    assert result.exit_code == 1
    assert f"{d / 'spk2gender'}:2: gender 'x' of speaker 'spkB' must be 'm' or 'f'" in result.stdout
    assert "1 problem(s)" in result.output
