"""Augmentation (speakergmm.frontend.augment): each degradation does what it says, measured
on the signal, and a data directory's copies are reproducible from the seed (issue 22)."""

import json

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from speakergmm.errors import ParameterError, SpeakerGMMError
from speakergmm.frontend import augment as aug

from conftest import make_data_dir, speechlike

SR = 16000


@pytest.fixture(scope="module")
def voice():
    return speechlike(SR, seconds=2.0, seed=4).astype(np.float32) * 0.3


def _db(a, b):
    return 10 * np.log10(np.mean(np.square(a, dtype=np.float64))
                         / np.mean(np.square(b, dtype=np.float64)))


@pytest.mark.parametrize("snr", [0.0, 7.5, 20.0])
def test_noise_is_added_at_the_asked_snr(voice, snr):
    rng = np.random.default_rng(0)
    noise = aug.coloured_noise(n=5000, slope=1.0, rng=rng)  # shorter: looped
    out = aug.add_noise(y=voice, noise=noise, snr_db=snr, rng=rng)
    assert out.dtype == np.float32 and out.shape == voice.shape
    assert _db(voice, out - voice) == pytest.approx(snr, abs=0.05)


@pytest.mark.parametrize("slope", [0.0, 1.0, 2.0])
def test_coloured_noise_has_the_asked_spectral_slope(slope):
    x = aug.coloured_noise(n=1 << 16, slope=slope, rng=np.random.default_rng(1))
    power = np.abs(np.fft.rfft(x)) ** 2
    f = np.arange(len(power))
    band = (f > 50) & (f < len(f) // 2)
    fitted = np.polyfit(np.log(f[band]), np.log(power[band]), 1)[0]
    assert fitted == pytest.approx(-slope, abs=0.1)
    assert np.mean(x.astype(np.float64) ** 2) == pytest.approx(1.0, rel=1e-3)


def test_babble_is_equal_parts_of_each_talker():
    rng = np.random.default_rng(2)
    talkers = [np.full(100, 2.0, np.float32), np.full(300, -0.5, np.float32)]
    out = aug.babble(talkers=talkers, n=250, rng=rng)
    np.testing.assert_allclose(out, 1.0 - 1.0, atol=1e-6)  # unit power each, opposite signs
    with pytest.raises(ParameterError):
        aug.babble(talkers=[], n=10, rng=rng)


@pytest.mark.parametrize("rt60", [0.3, 0.6])
def test_a_simulated_room_reverberates_as_asked(voice, rt60):
    pra = pytest.importorskip("pyroomacoustics")
    rir = aug.room_impulse_response(sr=SR, rt60=rt60, rng=np.random.default_rng(3))
    measured = pra.experimental.measure_rt60(rir, fs=SR)
    assert measured == pytest.approx(rt60, rel=0.4)  # Sabine's formula is approximate
    out = aug.reverberate(y=voice, rir=rir)
    assert out.shape == voice.shape and abs(_db(out, voice)) < 0.5  # the level is kept
    assert np.corrcoef(out, voice)[0, 1] < 0.95  # and the signal smeared


def test_a_phone_channel_keeps_300_to_3400_hz(voice):
    for law in ("mulaw", "alaw"):
        out = aug.telephone(y=voice, sr=SR, law=law)
        f = np.fft.rfftfreq(len(out), 1 / SR)
        p_in, p_out = (np.abs(np.fft.rfft(s)) ** 2 for s in (voice, out))

        def kept(band):  # dB of the band's power that passes
            return 10 * np.log10(p_out[band].sum() / p_in[band].sum())

        assert p_out[f > 4000].sum() < 1e-3 * p_out.sum()
        assert kept((f > 400) & (f < 3200)) > -1.5
        assert kept(f < 150) < -15
    with pytest.raises(ParameterError):
        aug.telephone(y=voice, sr=SR, law="gsm")


def test_g711_companding_quantises_to_256_levels_with_a_speech_grade_snr():
    x = np.linspace(-1, 1, 20001)
    for law in ("mulaw", "alaw"):
        y = aug._g711(x, law)
        assert len(np.unique(np.round(y, 9))) <= 256
        assert _db(x, y - x) > 30  # G.711's ~38 dB on a full-scale signal


@pytest.mark.parametrize("codec", ["ogg", "mp3"])
def test_lossy_codecs_change_the_signal_but_keep_it(voice, codec):
    out = aug.compress(y=voice, sr=SR, codec=codec, quality=0.5)
    assert out.shape == voice.shape and not np.array_equal(out, voice)
    # (the codec's delay is not removed: compare the envelopes)
    env = [np.convolve(np.abs(s), np.ones(400) / 400, "same") for s in (voice, out)]
    assert np.corrcoef(*env)[0, 1] > 0.9


def test_level_and_dc():
    y = np.full(10, 0.1, np.float32)
    np.testing.assert_allclose(aug.change_level(y=y, gain_db=20 * np.log10(2), dc=0.05), 0.25,
                               atol=1e-6)
    assert aug.change_level(y=y, gain_db=40).max() == 1.0  # clipped, as a recorder clips


def test_an_excerpt_is_taken_from_the_active_part():
    rng = np.random.default_rng(0)
    y = np.zeros(5 * SR, np.float32)
    # "speech" only in [2, 4) s, every sample a value of its own (so its place is known)
    y[2 * SR:4 * SR] = np.linspace(0.05, 0.5, 2 * SR, dtype=np.float32)
    starts = set()
    for seed in range(20):
        x = aug.excerpt(y=y, sr=SR, seconds=1.5, rng=np.random.default_rng(seed))
        start = int(np.flatnonzero(y == x[0])[0])
        np.testing.assert_array_equal(x, y[start:start + len(x)])
        assert len(x) == int(1.5 * SR) and 2 * SR <= start <= int(2.5 * SR)
        starts.add(start)
    assert len(starts) > 10  # placed at random
    # longer than the active part: the part is inside it; longer than the whole: all of it
    x = aug.excerpt(y=y, sr=SR, seconds=3.0, rng=rng)
    assert len(x) == 3 * SR and np.count_nonzero(x) >= 2 * SR - 10
    assert len(aug.excerpt(y=y, sr=SR, seconds=9.0, rng=rng)) == len(y)


def test_a_data_directory_augmented_twice_with_one_seed_is_the_same(tmp_path):
    data = make_data_dir(tmp_path, n_spk=4, n_utt=2)
    kinds = [k for k in aug.KINDS if k != "reverb"]
    a = aug.augment_data_dir(data, tmp_path / "a", kinds=kinds, seed=5, audio_root=tmp_path)
    b = aug.augment_data_dir(data, tmp_path / "b", kinds=kinds, seed=5, audio_root=tmp_path)
    c = aug.augment_data_dir(data, tmp_path / "c", kinds=["noise"], seed=6,
                             audio_root=tmp_path)
    assert len(a.utt2spk) == 8 * len(kinds) and a.utt2spk["spk2-u1-babble"] == "spk2"
    for utt in a.utt2spk:
        x = sf.read(a.wav_scp[utt])[0]
        np.testing.assert_array_equal(x, sf.read(b.wav_scp[utt])[0])
    assert not np.array_equal(sf.read(a.wav_scp["spk0-u0-noise"])[0],
                              sf.read(c.wav_scp["spk0-u0-noise"])[0])
    record = {line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1])
              for line in (tmp_path / "a" / "utt2aug").read_text().splitlines()}
    assert record["spk1-u0-babble"]["source"] == "spk1-u0"
    assert all(not t.startswith("spk1-") for t in record["spk1-u0-babble"]["talkers"])
    assert 0 <= record["spk3-u1-noise"]["snr"] <= 15
    assert json.loads((tmp_path / "a" / "augment.json").read_text())["seed"] == 5
    with pytest.raises(ParameterError, match="unknown augmentation 'echo'"):
        aug.augment_data_dir(data, tmp_path / "d", kinds=["echo"], audio_root=tmp_path)


def test_babble_needs_other_speakers_and_noise_can_come_from_recordings(tmp_path):
    one = make_data_dir(tmp_path / "one", n_spk=1, n_utt=2)
    with pytest.raises(SpeakerGMMError, match="only 1"):
        aug.augment_data_dir(one, tmp_path / "o", kinds=["babble"], audio_root=tmp_path / "one")
    # a noise data directory whose paths resolve against the same root
    hum = 0.1 * np.sin(2 * np.pi * 50 * np.arange(SR) / SR)
    sf.write(tmp_path / "one" / "audio" / "hum.wav", hum, SR)
    (tmp_path / "noise").mkdir()
    (tmp_path / "noise" / "wav.scp").write_text("hum audio/hum.wav\n")
    (tmp_path / "noise" / "utt2spk").write_text("hum hum\n")
    aug.augment_data_dir(one, tmp_path / "n", kinds=["noise"], audio_root=tmp_path / "one",
                         noise_dir=tmp_path / "noise")
    drawn = json.loads((tmp_path / "n" / "utt2aug").read_text().splitlines()[0].split(" ", 1)[1])
    assert drawn["noise"] == "hum" and "slope" not in drawn


def test_the_augment_command_writes_a_data_directory_extract_reads(tmp_path):
    from speakergmm.cli import main
    from speakergmm.cli.data import AUGMENT_KINDS

    assert AUGMENT_KINDS == aug.KINDS
    data = make_data_dir(tmp_path, n_spk=2, n_utt=2)
    run = CliRunner().invoke
    result = run(main, ["augment", str(data), str(tmp_path / "aug"), "--kind", "mulaw",
                        "--kind", "babble", "--audio-root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "8 utterances (4 x 2 kinds)" in result.output
    result = run(main, ["extract", str(tmp_path / "aug"), str(tmp_path / "feats")])
    assert result.exit_code == 0, result.output
    result = run(main, ["augment", str(data), str(tmp_path / "x"), "--kind", "echo"])
    assert result.exit_code == 2
    # the SNR ranges drawn from are the user's, and recorded
    result = run(main, ["augment", str(data), str(tmp_path / "loud"), "--kind", "babble",
                        "--kind", "noise", "--snr-babble", "5", "6", "--snr-noise", "-3",
                        "-2", "--audio-root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    drawn = [json.loads(line.split(" ", 1)[1])
             for line in (tmp_path / "loud" / "utt2aug").read_text().splitlines()]
    assert all(5 <= d["snr"] <= 6 for d in drawn if d["kind"] == "babble")
    assert all(-3 <= d["snr"] <= -2 for d in drawn if d["kind"] == "noise")
    config = json.loads((tmp_path / "loud" / "augment.json").read_text())["config"]
    assert config["snr_babble"] == [5, 6] and config["snr_noise"] == [-3, -2]
    result = run(main, ["augment", str(data), str(tmp_path / "y"), "--kind", "babble",
                        "--snr-babble", "20", "13"])
    assert result.exit_code == 2 and "--snr-babble 13 20" in result.output


def test_originals_are_listed_beside_their_copies_when_asked(tmp_path):
    from speakergmm.cli import main
    from speakergmm.data.datadir import DataDir, read_data_dir, write_data_dir

    data = read_data_dir(make_data_dir(tmp_path, n_spk=2, n_utt=2))  # paths under tmp_path
    out = aug.augment_data_dir(data, tmp_path / "mc", kinds=["mulaw"], audio_root=tmp_path,
                               include_original=True)
    assert sorted(out.utt2spk) == sorted([*data.utt2spk, *(f"{u}-mulaw" for u in data.utt2spk)])
    for utt in data.utt2spk:
        assert out.wav_scp[utt] == str((tmp_path / data.wav_scp[utt]).resolve())
        assert out.utt2spk[f"{utt}-mulaw"] == data.utt2spk[utt]
    assert len((tmp_path / "mc" / "utt2aug").read_text().splitlines()) == 4  # copies only
    # a source with segments: the originals keep theirs, each copy is a whole file
    rec = next(iter(data.wav_scp))
    seg = DataDir(wav_scp={rec: data.wav_scp[rec]}, utt2spk={"a": "s1", "b": "s2"},
                  segments={"a": (rec, 0.0, 0.5), "b": (rec, 0.5, -1.0)})
    write_data_dir(tmp_path / "seg", seg)
    both = aug.augment_data_dir(read_data_dir(tmp_path / "seg"), tmp_path / "seg-mc",
                                kinds=["level"], audio_root=tmp_path, include_original=True)
    assert both.segments["a"] == (rec, 0.0, 0.5) and both.segments["a-level"] == (
        "a-level", 0.0, -1.0)
    result = CliRunner().invoke(main, ["augment", str(data.path), str(tmp_path / "cli"), "--kind",
                                       "level", "--include-original", "--audio-root",
                                       str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "8 utterances (4 x 1 kinds and the 4 originals)" in result.output
    result = CliRunner().invoke(main, ["extract", str(tmp_path / "cli"), str(tmp_path / "f")])
    assert result.exit_code == 0, result.output
