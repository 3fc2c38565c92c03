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


def test_protocol_is_validated_in_memory_and_written_only_when_asked(tmp_path):
    import numpy as np

    from speakergmm.corpora._protocol import Protocol, all_vs_all
    from speakergmm.data.datadir import DataDir
    from speakergmm.errors import SpeakerGMMError

    data = {"enroll": DataDir(wav_scp={"a-1": "a1.wav", "b-1": "b1.wav"},
                              utt2spk={"a-1": "a", "b-1": "b"}),
            "test": DataDir(wav_scp={"a-2": "a2.wav", "b-2": "b2.wav"},
                            utt2spk={"a-2": "a", "b-2": "b"})}
    maps = {"enroll_map": {"a": ["a-1"], "b": ["b-1"]}}
    trials = {"trials": all_vs_all(["a", "b"], data["test"])}
    protocol = Protocol("toy", tmp_path, data, maps, trials, "a toy")
    assert protocol.paths == {} and not any(tmp_path.iterdir())
    assert list(trials["trials"].is_target) == [True, False, False, True]
    with pytest.raises(SpeakerGMMError, match="1 trial models in no enroll map"):
        Protocol("toy", tmp_path, data, {"enroll_map": {"a": ["a-1"]}}, trials, "")
    with pytest.raises(SpeakerGMMError, match="in no data directory"):
        Protocol("toy", tmp_path, data, {"enroll_map": {"a": ["a-9"], "b": ["b-1"]}}, trials,
                 "")
    bad = dict(trials, extra=type(trials["trials"])(np.array(["a"]), np.array(["zz"])))
    with pytest.raises(SpeakerGMMError, match="1 test utterances in no data directory"):
        Protocol("toy", tmp_path, data, maps, bad, "")
    for name in ("a1", "b1", "a2", "b2"):
        (tmp_path / f"{name}.wav").write_bytes(b"")
    (tmp_path / "out" / "stale").mkdir(parents=True)
    protocol = Protocol("toy", tmp_path, data, maps, trials, "a toy", stale=("stale",))
    paths = protocol.write(tmp_path / "out")
    assert sorted(paths) == ["enroll", "enroll_map", "test", "trials"] == sorted(protocol.paths)
    assert (tmp_path / "out" / "README").read_text() == "a toy\n"
    assert not (tmp_path / "out" / "stale").exists()
