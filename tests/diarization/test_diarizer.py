import itertools

import numpy as np
import pytest

from speakergmm.diarization import Diarizer, speech_windows, viterbi_labels
from speakergmm.errors import ParameterError

from conftest import corpora_root


def _best(ll, penalty):
    best = -np.inf
    for path in itertools.product(range(ll.shape[1]), repeat=len(ll)):
        p = np.array(path)
        total = ll[np.arange(len(ll)), p].sum() - penalty * np.sum(p[1:] != p[:-1])
        best = max(best, total)
    return best


@pytest.mark.parametrize("seed", range(15))
def test_viterbi_labels_finds_the_best_path(seed):
    rng = np.random.default_rng(seed)
    ll = rng.normal(0, 2, (int(rng.integers(1, 7)), int(rng.integers(1, 4))))
    penalty = float(rng.uniform(0, 4))
    path = viterbi_labels(ll, penalty=penalty)
    total = ll[np.arange(len(ll)), path].sum() - penalty * np.sum(path[1:] != path[:-1])
    assert total == pytest.approx(_best(ll, penalty), abs=1e-9)


def test_viterbi_labels_limits():
    ll = np.random.default_rng(0).normal(size=(200, 3))
    np.testing.assert_array_equal(viterbi_labels(ll, penalty=0.0), ll.argmax(1))
    assert len(set(viterbi_labels(ll, penalty=1e9).tolist())) == 1
    with pytest.raises(ParameterError, match="penalty"):
        viterbi_labels(ll, penalty=-1)


def test_speech_windows_cover_each_stretch():
    speech = np.zeros(1000, bool)
    speech[100:400] = True      # 300 frames: windows at 100, 175, 250 and one ending at 400
    speech[500:520] = True      # too short
    speech[600:700] = True      # shorter than a window: one window
    assert speech_windows(speech, window=150, hop=75, shortest=30) == [
        (100, 250), (175, 325), (250, 400), (600, 700)]


def test_a_speakers_short_pauses_stay_in_the_turn():
    from speakergmm.diarization.diarizer import _bridged

    labels = np.array([-1, 0, 0, -1, -1, 0, 1, -1, 1, -1, -1, -1, 1, -1, -1, 0, -1])
    post = np.arange(len(labels), dtype=float)
    got, p = _bridged(labels, post, 3)
    # bridged: 0 _ _ 0 (2 frames) and 1 _ 1 (1); kept: a pause of 3, a pause between
    # speakers, and the edges
    assert got.tolist() == [-1, 0, 0, 0, 0, 0, 1, 1, 1, -1, -1, -1, 1, -1, -1, 0, -1]
    assert p[3:5].tolist() == [2.0, 2.0] and p[7] == 6.0 and p[9] == 9.0
    assert labels[3] == -1  # (the input is left as it was)


@pytest.fixture(scope="module")
def diarizer_and_conversations(tmp_path_factory):
    """train_diarizer on 10 recordings of each of the dev protocol's 63 background
    speakers of speechocean762 with the bundled system and detector, calibrated on two
    conversations of 4 of its evaluation speakers; conversations of 6 others."""
    root = corpora_root() / "speechocean762"
    if not root.is_dir():
        pytest.skip("needs speechocean762 from the shared corpora")
    from speakergmm.corpora.conversations import prepare_conversations
    from speakergmm.corpora.speechocean762 import prepare_speechocean762
    from speakergmm.data.datadir import DataDir, write_data_dir
    from speakergmm.diarization import train_diarizer
    from speakergmm.pretrained import load_speech_detector
    from speakergmm.system import load_system

    protocol = prepare_speechocean762(root)
    ubm_data, test = protocol.data["ubm"], protocol.data["test"]
    src = tmp_path_factory.mktemp("conv")

    def subset(name, speakers, per_speaker=None):
        keep = {u: test.wav_scp[u] if u in test.wav_scp else ubm_data.wav_scp[u]
                for s in speakers
                for u in (test.spk2utt.get(s) or ubm_data.spk2utt[s])[:per_speaker]}
        spk = {**test.utt2spk, **ubm_data.utt2spk}
        write_data_dir(src / name, DataDir(wav_scp=keep, utt2spk={u: spk[u] for u in keep}))
        return src / name

    train = subset("train", sorted(ubm_data.spk2utt), 10)
    others = sorted(test.spk2utt)
    cal = prepare_conversations(subset("cal", others[6:10]), src / "calconv", count=2,
                                audio_root=root, speakers=(2, 3), seconds=(30.0, 40.0),
                                seed=3)
    conv = prepare_conversations(subset("test", others[:6]), src / "conv", count=3,
                                 audio_root=root, speakers=(2, 3), seconds=(30.0, 40.0),
                                 seed=2)
    diarizer = train_diarizer(load_system("wideband"), load_speech_detector("wideband"),
                              train, audio_root=root, conversations=[cal.paths["conversations"]])
    assert diarizer.calibration[0] > 0 and diarizer.extractor.T.shape[2] == 100
    return diarizer, conv


def test_diarizes_simulated_conversations_better_than_chance(diarizer_and_conversations):
    """Three conversations of 2-3 unseen speakers: with the speaker count given, most of
    the speech goes to the right speaker (one speaker for all would confuse 40-60%)."""
    from speakergmm.eval.diarization import evaluate_diarization
    from speakergmm.frontend.audio import load

    diarizer, conv = diarizer_and_conversations
    hyp = {}
    for c, path in conv.data.wav_scp.items():
        y, sr = load(path)
        n = len({t.speaker for t in conv.reference[c]})
        result = diarizer(y, sr, num_speakers=n)
        assert len(result.speakers) <= n and len(result.turns) == len(result.posteriors)
        assert all(0 <= p <= 1 for p in result.posteriors)
        hyp[c] = result.turns
    _, pooled = evaluate_diarization(conv.reference, hyp, collar=0.25, skip_overlap=True)
    assert pooled.der < 0.25, pooled


def test_speaker_limits(diarizer_and_conversations):
    from speakergmm.frontend.audio import load

    diarizer, conv = diarizer_and_conversations
    y, sr = load(next(iter(conv.data.wav_scp.values())))
    assert len(diarizer(y, sr, max_speakers=1).speakers) == 1
    assert len(diarizer(y, sr, num_speakers=1).speakers) == 1
    with pytest.raises(ParameterError, match="num_speakers"):
        diarizer(y, sr, num_speakers=0)
    silent = diarizer(np.zeros(16000, np.float32) + 1e-4 * np.random.default_rng(0)
                      .standard_normal(16000).astype(np.float32), 16000)
    assert silent.turns == [] and silent.seconds == 1.0


def test_round_trip_and_files_for_another_model(diarizer_and_conversations, tmp_path):
    from speakergmm.errors import ModelError
    from speakergmm.frontend.audio import load
    from speakergmm.pretrained import load_speech_detector
    from speakergmm.system import load_system

    diarizer, conv = diarizer_and_conversations
    diarizer.save(tmp_path / "d.npz")
    again = Diarizer.load(tmp_path / "d.npz", diarizer.system, diarizer.detector)
    y, sr = load(next(iter(conv.data.wav_scp.values())))
    # the extractor is stored in float16: the same turns, or all but a frame's worth
    a, b = diarizer(y, sr), again(y, sr)
    assert a.speakers == b.speakers and len(a.turns) == len(b.turns)
    assert all(abs(x.start - z.start) <= 0.02 and abs(x.end - z.end) <= 0.02
               for x, z in zip(a.turns, b.turns))
    with pytest.raises(ModelError, match="speech detector"):
        Diarizer.load(tmp_path / "d.npz", diarizer.system, load_speech_detector("telephone"))
    with pytest.raises(ModelError, match="UBM"):
        Diarizer.load(tmp_path / "d.npz", load_system("telephone"), diarizer.detector)
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ModelError, match="bad.npz"):
        Diarizer.load(tmp_path / "bad.npz", diarizer.system, diarizer.detector)


def test_diarize_command_equals_the_bundled_library(diarizer_and_conversations, tmp_path):
    import json

    from click.testing import CliRunner

    from speakergmm.cli import main
    from speakergmm.data.rttm import read_rttm
    from speakergmm.frontend.audio import load

    _, conv = diarizer_and_conversations
    path = next(iter(conv.data.wav_scp.values()))
    result = CliRunner().invoke(main, ["diarize", path, "-o", str(tmp_path / "h.rttm"),
                                       "--json", str(tmp_path / "h.json"),
                                       "--plot", str(tmp_path / "h.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
    y, sr = load(path)
    lib = Diarizer.bundled("wideband")(y, sr)
    from pathlib import Path

    stem = Path(path).stem
    def rounded(turns):  # RTTM holds onset and duration to the millisecond
        return [(round(t.start, 3), round(t.end, 3), t.speaker) for t in turns]

    assert rounded(read_rttm(tmp_path / "h.rttm")[stem]) == rounded(lib.turns)
    assert json.loads((tmp_path / "h.json").read_text())[stem]["speakers"] == lib.speakers


@pytest.mark.parametrize("band", ["wideband", "telephone"])
def test_bundled_diarizers_load(band):
    diarizer = Diarizer.bundled(band)
    assert diarizer.system.name == band and diarizer.calibration[0] > 0


def test_chunks_cover_the_signal_in_whole_chunks():
    from speakergmm.diarization.diarizer import _chunks

    y = np.arange(1050, dtype=np.float32)
    blocks = [y[i:i + 37] for i in range(0, len(y), 37)]
    got = list(_chunks(blocks, 100))
    assert [len(c) for c, _ in got] == [100] * 9 + [150]
    assert [last for _, last in got] == [False] * 9 + [True]
    np.testing.assert_array_equal(np.concatenate([c for c, _ in got]), y)
    assert [len(c) for c, _ in _chunks([y[:150]], 100)] == [150]
    assert [(len(c), last) for c, last in _chunks([], 100)] == [(0, True)]


def test_a_file_read_in_blocks_and_in_chunks(diarizer_and_conversations):
    """diarize_file equals the call on the signal; in chunks of 12 s (a long recording's
    two-stage clustering, here 3 chunks a conversation) the DER grows by little."""
    from speakergmm.eval.diarization import evaluate_diarization
    from speakergmm.frontend.audio import load

    diarizer, conv = diarizer_and_conversations
    short = Diarizer(diarizer.system, diarizer.detector, diarizer.extractor,
                     diarizer.backend, calibration=diarizer.calibration)
    short.CHUNK_SECONDS = 12.0
    whole, chunked = {}, {}
    for rec, path in sorted(conv.data.wav_scp.items()):
        y, sr = load(path)
        n = len({t.speaker for t in conv.reference[rec]})
        found = diarizer(y, sr, num_speakers=n)
        assert diarizer.diarize_file(path, num_speakers=n) == found
        whole[rec] = found.turns
        got = short.diarize_file(path, num_speakers=n)
        assert got.seconds == found.seconds
        assert all(0 <= t.start < t.end <= got.seconds for t in got.turns)
        chunked[rec] = got.turns
    one = evaluate_diarization(conv.reference, whole, collar=0.25, skip_overlap=True)[1]
    two = evaluate_diarization(conv.reference, chunked, collar=0.25, skip_overlap=True)[1]
    assert two.der <= one.der + 0.1, (one, two)


def test_info_describes_a_diarization_model():
    from click.testing import CliRunner

    from speakergmm.cli import main
    from speakergmm.pretrained import diarization_path

    r = CliRunner().invoke(main, ["info", str(diarization_path("telephone"))])
    assert r.exit_code == 0, r.output
    assert "diarization model: i-vector extractor R=100" in r.output
    calibration = Diarizer.bundled("telephone").calibration
    assert f"LLR = {calibration[0]:.4g} s + {calibration[1]:.4g}" in r.output

