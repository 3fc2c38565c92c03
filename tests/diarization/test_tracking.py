"""Tracking enrolled speakers (speakergmm.diarization.tracking) and ``speakergmm track``."""

import json

import numpy as np
import pytest

from conftest import corpora_root


@pytest.fixture(scope="module")
def store_and_conversations(tmp_path_factory):
    """A store of 4 speechocean762 speakers (5 recordings each, bundled wideband system)
    and two conversations of 2-3 speakers drawn from them and 2 strangers, on other
    recordings of theirs."""
    root = corpora_root() / "speechocean762"
    if not root.is_dir():
        pytest.skip("needs speechocean762 from the shared corpora")
    from speakergmm.corpora.conversations import prepare_conversations
    from speakergmm.corpora.speechocean762 import prepare_speechocean762
    from speakergmm.data.datadir import DataDir, write_data_dir
    from speakergmm.recognizer import Recognizer

    test = prepare_speechocean762(root).data["test"]
    speakers = sorted(test.spk2utt)[10:16]
    enrolled = speakers[:4]  # the other 2 are strangers
    work = tmp_path_factory.mktemp("track")
    recognizer = Recognizer(store=work / "s.db", system="wideband")
    for s in enrolled:
        recognizer.enroll(s, [root / test.wav_scp[u] for u in test.spk2utt[s][:5]])
    rest = {u: test.wav_scp[u] for s in speakers for u in test.spk2utt[s][5:]}
    write_data_dir(work / "rest", DataDir(wav_scp=rest, utt2spk={u: test.utt2spk[u]
                                                                 for u in rest}))
    conv = prepare_conversations(work / "rest", work / "conv", count=2, audio_root=root,
                                 speakers=(2, 3), seconds=(30.0, 40.0), seed=4)
    return recognizer, set(enrolled), conv, work


def test_names_the_enrolled_speakers_and_not_the_strangers(store_and_conversations):
    from speakergmm.diarization import Diarizer, track
    from speakergmm.diarization.tracking import UNKNOWN
    from speakergmm.eval.diarization import evaluate_diarization
    from speakergmm.frontend.audio import load

    recognizer, enrolled, conv, _ = store_and_conversations
    diarizer = Diarizer.bundled("wideband")
    hyp = {}
    for c, path in conv.data.wav_scp.items():
        y, sr = load(path)
        result = track(recognizer, diarizer, y, sr)
        assert len(result.turns) == len(result.llrs) == len(result.candidates)
        assert set(result.speakers) == {t.speaker for t in result.turns}
        for t, llr, who in zip(result.turns, result.llrs, result.candidates):
            assert who in enrolled
            assert t.speaker == who or t.speaker.startswith(UNKNOWN)
            assert llr is None or np.isfinite(llr)
        d = result.as_dict()
        assert d["turns"] and all({"llr", "llr_for"} <= set(t) for t in d["turns"])
        json.dumps(d)
        hyp[c] = result.turns
    # strangers are in the reference under their ids, which no hypothesis turn may take
    _, pooled = evaluate_diarization(conv.reference, hyp, collar=0.25, skip_overlap=True,
                                     by_name=True)
    strangers = {t.speaker for turns in conv.reference.values() for t in turns} - enrolled
    assert not strangers & {t.speaker for turns in hyp.values() for t in turns}
    assert pooled.attributed > 0.5, pooled


def test_track_command_equals_the_library(store_and_conversations, tmp_path):
    from click.testing import CliRunner

    from speakergmm.cli import main
    from speakergmm.data.rttm import read_rttm
    from speakergmm.diarization import Diarizer, track
    from speakergmm.frontend.audio import load

    recognizer, _, conv, work = store_and_conversations
    path = sorted(conv.data.wav_scp.values())[0]
    result = CliRunner().invoke(main, ["track", path, "--store", str(work / "s.db"), "-o",
                                       str(tmp_path / "t.rttm"), "--json",
                                       str(tmp_path / "t.json"), "--plot",
                                       str(tmp_path / "t.png")])
    assert result.exit_code == 0, result.output
    y, sr = load(path)
    lib = track(recognizer, Diarizer.bundled("wideband"), y, sr)
    from pathlib import Path

    stem = Path(path).stem
    assert [(t.speaker, round(t.start, 3)) for t in read_rttm(tmp_path / "t.rttm")[stem]] \
        == [(t.speaker, round(t.start, 3)) for t in lib.turns]
    got = json.loads((tmp_path / "t.json").read_text())[stem]
    assert [t["llr"] for t in got["turns"]] == [None if v is None else round(v, 3)
                                                for v in lib.llrs]
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


def test_tracking_without_speakers_is_one_line_before_any_work(tmp_path):
    from click.testing import CliRunner

    from speakergmm.cli import main

    from conftest import voice, write_audio

    audio = write_audio(tmp_path / "a.wav", voice(0, 0), 16000)
    store = tmp_path / "none.db"
    r = CliRunner().invoke(main, ["track", str(audio), "--store", str(store), "-o",
                                  str(tmp_path / "t.rttm")])
    assert r.exit_code == 2 and "no speaker store yet" in r.output, r.output
    assert r.output.count("\n") == 1
    assert not store.exists() and not (tmp_path / "t.rttm").exists()
