import numpy as np
import pytest
from click.testing import CliRunner

from speakergmm.cli import main
from speakergmm.corpora.conversations import prepare_conversations, speech_turns
from speakergmm.data.rttm import read_rttm
from speakergmm.errors import ParameterError, SpeakerGMMError
from speakergmm.frontend.audio import load

from conftest import make_data_dir, speechlike

SHORT = dict(seconds=(6.0, 9.0), speakers=(2, 3))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("src")
    return make_data_dir(root, n_spk=4, n_utt=3), root


def _overlap_seconds(turns):
    """Seconds where two different speakers' turns overlap."""
    total = 0.0
    for i, a in enumerate(turns):
        for b in turns[i + 1:]:
            if a.speaker != b.speaker:
                total += max(0.0, min(a.end, b.end) - max(a.start, b.start))
    return total


def test_conversations_and_their_reference(source, tmp_path):
    data, root = source
    made = prepare_conversations(data, tmp_path / "c", count=4, audio_root=root, seed=3,
                                 overlap=0.0, **SHORT)
    ref = read_rttm(made.paths["rttm"])
    counts = dict(line.split() for line in made.paths["reco2num_spk"].read_text().splitlines())
    assert sorted(ref) == sorted(made.data.wav_scp) == sorted(counts)
    for conv, turns in ref.items():
        y, sr = load(made.data.wav_scp[conv])
        assert 6.0 <= len(y) / sr <= 9.0 + 2.5   # the last turn and a tail may run over
        assert len({t.speaker for t in turns}) == int(counts[conv])
        assert 2 <= int(counts[conv]) <= 3
        assert all(0 <= t.start < t.end <= len(y) / sr for t in turns)
        assert _overlap_seconds(turns) == 0.0
        # the reference is where the audio has speech: the mixture's own energy VAD agrees
        found = speech_turns(y=y, sr=sr)
        t = np.arange(0, len(y) / sr, 0.01)
        inside = lambda spans: np.any([(t >= a) & (t < b) for a, b in spans], axis=0)  # noqa
        agree = np.mean(inside([(x.start, x.end) for x in turns]) == inside(found))
        assert agree > 0.9


def test_seeded_and_overlapping(source, tmp_path):
    data, root = source
    a = prepare_conversations(data, tmp_path / "a", count=2, audio_root=root, overlap=1.0,
                              **SHORT)
    b = prepare_conversations(data, tmp_path / "b", count=2, audio_root=root, overlap=1.0,
                              **SHORT)
    assert a.reference == b.reference
    for conv in a.data.wav_scp:
        assert load(a.data.wav_scp[conv])[0].tobytes() == load(b.data.wav_scp[conv])[0].tobytes()
    assert all(_overlap_seconds(t) > 0 for t in read_rttm(a.paths["rttm"]).values())


def test_command_equals_library(source, tmp_path):
    data, root = source
    result = CliRunner().invoke(main, ["prepare", "conversations", str(data), str(tmp_path / "c"),
                                       "--count", "2", "--seconds", "6", "9", "--speakers", "2",
                                       "3", "--audio-root", str(root), "--seed", "5"])
    assert result.exit_code == 0, result.output
    lib = prepare_conversations(data, tmp_path / "l", count=2, seconds=(6.0, 9.0),
                                speakers=(2, 3), audio_root=root, seed=5)
    assert read_rttm(tmp_path / "c" / "rttm") == read_rttm(lib.paths["rttm"])
    wrong = CliRunner().invoke(main, ["prepare", "fsdd", str(data), str(tmp_path / "f"),
                                      "--count", "2"])
    assert wrong.exit_code == 2 and "--count does not apply to fsdd" in wrong.output


def test_bad_settings(source, tmp_path):
    data, root = source
    with pytest.raises(ParameterError, match="speakers"):
        prepare_conversations(data, tmp_path / "x", speakers=(3, 2), audio_root=root)
    with pytest.raises(SpeakerGMMError, match="fewer than"):
        prepare_conversations(data, tmp_path / "y", speakers=(6, 6), audio_root=root)


def test_speech_turns_bridge_short_pauses():
    sr = 16000
    y = np.concatenate([speechlike(sr, 1.0, seed=1)[sr // 10:], np.zeros(sr // 10, np.float32),
                        speechlike(sr, 1.0, seed=2)[sr // 10:], np.zeros(sr, np.float32),
                        speechlike(sr, 1.0, seed=3)[sr // 10:]])
    spans = speech_turns(y=y, sr=sr)
    assert len(spans) == 2          # the 0.1 s pause bridged, the 1 s pause kept
    assert spans[0][0] < 0.1 and spans[1][0] == pytest.approx(2.8, abs=0.1)
