import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from speakergmm.cli import main
from speakergmm.corpora import CORPORA, corpus_module
from speakergmm.corpora.timit import held_out_sentence, prepare_timit, scan_timit
from speakergmm.data.datadir import read_data_dir
from speakergmm.data.trials import read_enroll_map, read_trials
from speakergmm.errors import SpeakerGMMError
from speakergmm.frontend.audio import load

from conftest import write_audio

# Per speaker: SA1, SA2, 3 SI (numbers chosen so that string and numeric order disagree)
# and 5 SX, as in TIMIT.
SENTENCES = ("SA1", "SA2", "SI648", "SI1027", "SI1657", "SX28", "SX118", "SX208", "SX298",
             "SX388")
TRAIN = {"DR1": ("FCJF0", "MDPK0"), "DR2": ("FAEM0",)}
TEST = {"DR1": ("FAKS0", "MDAB0"), "DR5": ("MBPM0",)}


def fake_timit(root, *, lower=False, riff=False, sentences=SENTENCES):
    """TIMIT's layout, <SET>/<DR>/<SPEAKER>/<SENTENCE>.WAV, with NIST SPHERE audio (the
    format of the real files) or, with ``riff``, RIFF WAV under lower-case names."""
    y = (0.1 * np.sin(np.arange(1600) / 5)).astype(np.float32)
    name = str.lower if lower else str.upper
    for part, dialects in (("TRAIN", TRAIN), ("TEST", TEST)):
        for dialect, speakers in dialects.items():
            for spk in speakers:
                folder = root / name(part) / name(dialect) / name(spk)
                for sentence in sentences:
                    if riff:
                        write_audio(folder / f"{name(sentence)}.wav", y, 16000)
                    else:
                        write_audio(folder / f"{name(sentence)}.WAV", y, 16000, format="NIST",
                                    subtype="PCM_16")
                    (folder / f"{name(sentence)}.PHN").write_text("0 1600 h#\n")
    (root / "README.DOC").write_text("TIMIT\n")
    return root


def test_prepare_timit(tmp_path):
    root = fake_timit(tmp_path / "TIMIT")
    written = prepare_timit(root, tmp_path / "out", complete=False).paths
    assert set(written) == {"ubm", "enroll", "test", "enroll_map", "trials"}
    ubm, enroll, test = (read_data_dir(written[k]) for k in ("ubm", "enroll", "test"))
    assert ubm.speakers == ["FAEM0", "FCJF0", "MDPK0"] and len(ubm.utt2spk) == 30
    assert ubm.wav_scp["FCJF0-SA1"] == "TRAIN/DR1/FCJF0/SA1.WAV"
    assert ubm.spk2gender == {"FAEM0": "f", "FCJF0": "f", "MDPK0": "m"}
    assert enroll.speakers == test.speakers == ["FAKS0", "MBPM0", "MDAB0"]
    # the test sentence is the SI with the highest number (1657, although "SI648" sorts last)
    assert sorted(test.utt2spk) == ["FAKS0-SI1657", "MBPM0-SI1657", "MDAB0-SI1657"]
    emap = read_enroll_map(written["enroll_map"])
    assert emap["FAKS0"] == sorted(f"FAKS0-{s}" for s in SENTENCES if s != "SI1657")
    assert all(len(u) == 9 for u in emap.values())
    assert not {u for us in emap.values() for u in us} & set(test.utt2spk)
    assert set(enroll.utt2spk) == {u for us in emap.values() for u in us}
    trials = read_trials(written["trials"])
    assert len(trials) == 3 * 3 and trials.is_target.sum() == 3
    for e, t, target in zip(trials.enroll, trials.test, trials.is_target):
        assert target == (test.utt2spk[t] == e)
    readme = (tmp_path / "out" / "README").read_text()
    assert readme.startswith("speakers: 3 background (TRAIN), 3 evaluation (TEST); "
                             "trials: 3 target, 6 non-target")
    assert "MSR Identity Toolbox" in readme


def test_sphere_audio_is_read_natively(tmp_path):
    root = fake_timit(tmp_path / "TIMIT")
    path = root / "TEST" / "DR1" / "FAKS0" / "SA1.WAV"
    assert path.read_bytes().startswith(b"NIST_1A")
    assert sf.info(str(path)).format == "NIST"
    y, sr = load(path)
    assert sr == 16000 and len(y) == 1600


def test_lower_case_copy_and_riff_conversions(tmp_path):
    root = fake_timit(tmp_path / "timit", lower=True, riff=True)
    written = prepare_timit(root, tmp_path / "out", complete=False).paths
    ubm = read_data_dir(written["ubm"])
    assert ubm.wav_scp["FCJF0-SA1"] == "train/dr1/fcjf0/sa1.wav"
    assert "FAKS0-SI1657" in read_data_dir(written["test"]).utt2spk
    # converted copies beside the SPHERE originals: the originals are used, once each
    upper = fake_timit(tmp_path / "both")
    y = np.zeros(160, np.float32)
    for wav in (upper / "TRAIN").glob("*/*/*.WAV"):
        write_audio(wav.with_name(wav.name + ".wav"), y, 16000)
    data = scan_timit(upper, "TRAIN")
    assert len(data.utt2spk) == 30 and data.wav_scp["FCJF0-SA1"].endswith("/SA1.WAV")


def test_complete_corpus_is_required_by_default(tmp_path):
    root = fake_timit(tmp_path / "TIMIT")
    with pytest.raises(SpeakerGMMError, match=r"462 TRAIN and 168 TEST speakers, found 3 TRAIN, "
                                              r"3 TEST; point at a complete copy, or accept a "
                                              r"subset with 'speakergmm prepare "
                                              r"--allow-incomplete' \(complete=False in "
                                              r"Python\)$"):
        prepare_timit(root, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_wrong_root_is_a_clear_error(tmp_path):
    fake_timit(tmp_path / "LDC93S1" / "TIMIT")
    with pytest.raises(SpeakerGMMError, match=r"no TRAIN/ \(or train/\) folder; point at the "
                                              r"TIMIT root.*did you mean .*TIMIT\?"):
        prepare_timit(tmp_path / "LDC93S1", tmp_path / "out")
    with pytest.raises(SpeakerGMMError, match="no TRAIN/"):
        prepare_timit(tmp_path / "nowhere", tmp_path / "out")
    (tmp_path / "empty" / "TRAIN").mkdir(parents=True)
    with pytest.raises(SpeakerGMMError, match="no dialect-region folders"):
        prepare_timit(tmp_path / "empty", tmp_path / "out")


def test_malformed_speakers(tmp_path):
    root = fake_timit(tmp_path / "a", sentences=SENTENCES[:-1])
    with pytest.raises(SpeakerGMMError, match=r"FAKS0: every TIMIT speaker has 10 sentences"):
        scan_timit(root, "TEST")
    root = fake_timit(tmp_path / "b")
    (root / "TEST" / "DR1" / "NOTES").mkdir()
    with pytest.raises(SpeakerGMMError, match="NOTES: not a TIMIT speaker folder"):
        scan_timit(root, "TEST")
    root = fake_timit(tmp_path / "c")
    (root / "TEST" / "DR1" / "FAKS0").rename(root / "TEST" / "DR5" / "FCJF0")
    with pytest.raises(SpeakerGMMError, match="FCJF0 is in both TRAIN and TEST"):
        prepare_timit(root, tmp_path / "out", complete=False)
    with pytest.raises(SpeakerGMMError, match="no SI sentence"):
        held_out_sentence(["X-SA1", "X-SX3"])


def test_cli_dispatch(tmp_path):
    assert "timit" in CORPORA and corpus_module("timit").prepare_timit is prepare_timit
    root = fake_timit(tmp_path / "TIMIT")
    result = CliRunner().invoke(main, ["prepare", "timit", str(root), str(tmp_path / "o")])
    assert result.exit_code == 2 and "462 TRAIN and 168 TEST" in result.output
    assert "accept a subset with 'speakergmm prepare --allow-incomplete'" in result.output
    result = CliRunner().invoke(main, ["prepare", "timit", str(root), str(tmp_path / "o"),
                                       "--allow-incomplete"])
    assert result.exit_code == 0, result.output
    assert "trials\t" in result.output
    assert (tmp_path / "o" / "README").read_text().startswith("speakers: 3 background")
    result = CliRunner().invoke(main, ["download", "timit", str(tmp_path / "d")])
    assert result.exit_code == 2 and "cannot be downloaded automatically" in result.output
