"""The protocol pieces several corpus modules share (speakergmm.corpora._protocol)."""

import pytest

from speakergmm.corpora._protocol import enroll_test_split, first_utterances
from speakergmm.data.datadir import DataDir
from speakergmm.errors import SpeakerGMMError


def data(spec):
    """speaker -> number of utterances; ids <speaker>-<n>, given in reverse order."""
    utts = {f"{spk}-{n}": spk for spk, count in spec.items() for n in reversed(range(count))}
    return DataDir(wav_scp={u: f"{u}.wav" for u in utts}, utt2spk=utts,
                   spk2gender={spk: "f" for spk in spec})


def test_first_utterances():
    d = data({"b": 4, "a": 3, "c": 1})
    first = first_utterances(d, 2)
    assert first.spk2utt == {"a": ["a-0", "a-1"], "b": ["b-0", "b-1"], "c": ["c-0"]}
    assert first.wav_scp["b-1"] == "b-1.wav" and first.spk2gender == {s: "f" for s in "abc"}
    only = first_utterances(d, 1, ["b"])
    assert only.utt2spk == {"b-0": "b"} and only.spk2gender == {"b": "f"}


def test_enroll_test_split():
    d = data({"b": 4, "a": 3})
    enroll, test, enroll_map = enroll_test_split(d, 2)
    assert enroll_map == {"a": ["a-0", "a-1"], "b": ["b-0", "b-1"]}
    assert enroll.spk2utt == enroll_map
    assert test.spk2utt == {"a": ["a-2"], "b": ["b-2", "b-3"]}
    assert list(enroll_test_split(d, 2, ["b", "a"])[2]) == ["b", "a"]  # the order given
    with pytest.raises(SpeakerGMMError, match="speaker a has 3 utterances; the protocol needs "
                                              "more than 3"):
        enroll_test_split(d, 3)
