"""Data directories (issue 14): every inconsistency that stops extraction is refused
before anything is written (one line naming the file, the line and the fix, exit 2, no
output folder); those extraction does not depend on let it run, and validate-data-dir
reports them all."""

import shutil

import pytest
from click.testing import CliRunner

from speakergmm.cli import main

from conftest import refused

OTHERS = "spk0-u1 spk0-u1 0 0.5\nspk0-u2 spk0-u2 0 0.5\n" + "".join(
    f"spk{s}-u{u} spk{s}-u{u} 0 0.5\n" for s in (1, 2) for u in range(3))

REFUSED = [
    ("utt2spk", "+spk9-u0 spk9\n", "wav.scp", "no recording 'spk9-u0'"),
    ("wav.scp", "", "wav.scp", "no recording 'spk0-u0'"),
    ("wav.scp", "+spk0-u0 audio/spk0-u1.wav\n", "wav.scp:10", "duplicate key 'spk0-u0'"),
    ("utt2spk", "+lonely\n", "utt2spk:10", "expected 2 fields"),
    ("utt2spk", "", "utt2spk", "no utterances"),
    ("utt2spk", b"spk0-u0 spk\xff0\n", "utt2spk:1", "not UTF-8"),
    ("segments", "spk0-u0 spk0-u0 -1 0.5\n" + OTHERS, "segments:1", "is negative"),
    ("segments", "spk0-u0 spk0-u0 0.8 0.2\n" + OTHERS, "segments:1", "is not after the start"),
    ("segments", "spk0-u0 spk0-u0 nan 0.5\n" + OTHERS, "segments:1", "must be finite"),
    ("segments", "spk0-u0 spk0-u0 0 inf\n" + OTHERS, "segments:1", "must be finite"),
    ("segments", "spk0-u0 spk0-u0 zero 0.5\n" + OTHERS, "segments:1", "is not a number"),
    ("segments", "spk0-u0 nowhere 0 0.5\n" + OTHERS, "wav.scp", "no recording 'nowhere'"),
    ("segments", OTHERS, "segments", "no segment for utterance 'spk0-u0'"),
    ("segments", "spk0-u0 spk0-u0 0\n" + OTHERS, "segments:1", "expected 4 fields"),
]


def _edited(work, tmp_path, name, content):
    data = tmp_path / "data"
    shutil.copytree(work / "data", data)
    path = data / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content.startswith("+"):
        path.write_text(path.read_text() + content[1:])
    else:
        path.write_text(content)
    return data


@pytest.mark.parametrize("name, content, where, says", REFUSED)
def test_extract_refuses_what_it_cannot_extract(work, tmp_path, name, content, where, says):
    data = _edited(work, tmp_path, name, content)
    out = tmp_path / "feats"
    refused(["extract", data, out, "--audio-root", work, "-q"], f"{data}/{where}", says,
            roots=[tmp_path, work])
    assert not out.exists()
    result = CliRunner().invoke(main, ["validate-data-dir", str(data), "--audio-root",
                                       str(work)])
    assert result.exit_code == 1 and name in result.output


@pytest.mark.parametrize("name, content, says", [
    ("spk2utt", "spk0 spk0-u0\n", "disagree with utt2spk"),
    ("utt2dur", "spk0-u0 -3\n", "must be a"),
    ("spk2gender", "spk0 x\n", "must be"),
    ("utt2spk", "+", "sorted"),  # reversed below
])
def test_what_extraction_does_not_read_is_reported_but_not_fatal(work, tmp_path, name, content,
                                                                 says):
    data = _edited(work, tmp_path, name, content)
    if content == "+":
        lines = (data / name).read_text().splitlines(True)
        (data / name).write_text("".join(reversed(lines)))
    result = CliRunner().invoke(main, ["validate-data-dir", str(data), "--audio-root",
                                       str(work)])
    assert result.exit_code == 1 and says in result.output, result.output
    result = CliRunner().invoke(main, ["extract", str(data), str(tmp_path / "feats"),
                                       "--audio-root", str(work), "-q"])
    assert result.exit_code == 0, result.output


def test_missing_audio_is_a_failed_utterance_not_a_lost_one(work, tmp_path):
    """A recording that cannot be read fails that utterance alone: the others are
    extracted, the failure is listed with its reason, exit 1 (0 with --skip-bad)."""
    data = _edited(work, tmp_path, "wav.scp", (work / "data" / "wav.scp").read_text()
                   .replace("audio/spk1-u1.wav", "audio/gone.wav"))
    out = tmp_path / "feats"
    result = CliRunner().invoke(main, ["extract", str(data), str(out), "--audio-root",
                                       str(work), "-q"])
    assert result.exit_code == 1
    failed = (out / "failed").read_text()
    assert failed.startswith("spk1-u1 ") and "gone.wav" in failed and "not found" in failed
    assert len((out / "utt2spk").read_text().splitlines()) == 8


def test_extract_into_another_data_directorys_archive_is_refused(work, tmp_path):
    """Issue 25: extracting data directory B into A's archive rewrote its index with B's
    utterances only, silently dropping A's; now refused naming one of them."""
    from conftest import make_data_dir, refused

    other = make_data_dir(tmp_path / "other", n_spk=1, n_utt=2)
    out = tmp_path / "feats"
    import shutil

    shutil.copytree(work / "feats", out)
    theirs = set((other / "utt2spk").read_text().split()[::2])
    first = next(line.split()[0] for line in (out / "feats.index").read_text().splitlines()
                 if line.split()[0] not in theirs)
    refused(["extract", other, out, "--audio-root", tmp_path / "other"], str(out),
            "another data directory's archive", first, roots=[out, tmp_path / "other"])
