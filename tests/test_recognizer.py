"""Enroll / verify / identify through the library and the CLI (CliRunner)."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from speakergmm.cli import main
from speakergmm.constants import IDENTIFY_PRIOR
from speakergmm.errors import SpeakerGMMError
from speakergmm.frontend.features import FeatureConfig, extract_features
from speakergmm.gmm.ubm import train_ubm
from speakergmm.recognizer import Recognizer

from conftest import SR, corpus, voice, write_audio

# the synthetic speakers here are enrolled on a few seconds: the short-enrollment note has a
# test of its own
pytestmark = pytest.mark.filterwarnings("ignore::speakergmm.recognizer.ShortEnrollment")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A small UBM trained on synthetic voices, and audio files of three speakers."""
    root = tmp_path_factory.mktemp("rec")
    cfg = FeatureConfig()
    background = [extract_features(y=voice(s, u), sr=SR, config=cfg)
                  for s in range(100, 120) for u in range(3)]
    ubm = train_ubm(background, n_components=32, n_iterations=5,
                    metadata={"feature_config": cfg.to_dict()})
    ubm_path = root / "ubm.npz"
    ubm.save(ubm_path)
    files = {(s, u): write_audio(root / f"spk{s}_{u}.wav", voice(s, u), SR)
             for s in range(3) for u in range(4)}
    return root, ubm_path, files


def test_enroll_verify_identify_api(setup, tmp_path):
    root, ubm_path, files = setup
    rec = Recognizer(ubm_path, tmp_path / "s.db")
    for s in range(3):
        rec.enroll(f"spk{s}", [files[(s, 0)], files[(s, 1)], files[(s, 2)]])
    target = rec.verify("spk1", files[(1, 3)])
    impostor = rec.verify("spk1", files[(2, 3)])
    assert target.score > impostor.score
    for s in range(3):
        result = rec.identify(files[(s, 3)])
        assert result.speaker == f"spk{s}", result
        assert [r[0] for r in result.ranking][0] == f"spk{s}" and len(result.ranking) == 3
    # open set: a threshold above every score answers unknown
    unknown = rec.identify(files[(0, 3)], threshold=1e9)
    assert unknown.speaker is None and unknown.ranking


def test_a_signal_in_memory_scores_as_its_file(setup, channel_file, tmp_path):
    """identify / scores of a signal (tracking's excerpts) equal those of its file, at the
    file's rate or another (resampled as a file is), with channel compensation too."""
    from speakergmm.frontend.audio import load, resample
    from speakergmm.system import BandMismatch

    _, ubm_path, files = setup
    rec = Recognizer(ubm_path, tmp_path / "s.db", channel=channel_file[0])
    for s in range(3):
        rec.enroll(f"spk{s}", [files[(s, 0)], files[(s, 1)]])
    y, sr = load(files[(1, 3)])
    by_file, by_signal = rec.identify(files[(1, 3)]), rec.identify(y, sr=sr)
    assert by_signal.ranking == by_file.ranking and by_signal.audio == "<signal>"
    claim = rec.verify("spk1", y, sr=sr)
    assert claim.score == rec.verify("spk1", files[(1, 3)]).score
    assert claim.audio == "<signal>"
    np.testing.assert_array_equal(rec.features(y, sr=sr), rec.features(files[(1, 3)]))
    up = resample(y, orig_sr=sr, target_sr=2 * sr)
    assert rec.scores(up, sr=2 * sr).ids == rec.scores(files[(1, 3)]).ids
    with pytest.warns(BandMismatch, match="the signal: 8000 Hz audio"):
        rec.scores(resample(y, orig_sr=sr, target_sr=8000), sr=8000)
    with pytest.raises(SpeakerGMMError, match="sampling rate"):
        rec.features(y)


def test_cli_end_to_end(setup, tmp_path):
    root, ubm_path, files = setup
    store = tmp_path / "cli.db"
    run = lambda *args: CliRunner().invoke(main, [*map(str, args)])  # noqa: E731
    common = ["--ubm", ubm_path, "--store", store]
    r = run("enroll", "alice", files[(0, 0)], files[(0, 1)], *common)
    assert r.exit_code == 0, r.output
    assert "enrolled alice: 2 recording(s)" in r.output
    r = run("enroll", "bob", files[(1, 0)], files[(1, 1)], *common)
    assert r.exit_code == 0, r.output
    r = run("enroll", "alice", files[(0, 2)], *common)
    assert r.exit_code == 2 and "already enrolled; use --append" in r.output
    r = run("enroll", "alice", files[(0, 2)], *common, "--append")
    assert r.exit_code == 0 and "3 recording(s)" in r.output

    r = run("verify", "alice", files[(0, 3)], *common, "--json")
    out = json.loads(r.output)
    assert r.exit_code == (0 if out["accepted"] else 1)
    assert set(out) >= {"speaker", "score", "threshold", "accepted", "method", "frames",
                        "seconds"}
    assert out["seconds"] == pytest.approx(out["frames"] * 0.01)
    r_imp = run("verify", "alice", files[(1, 3)], *common, "--json",
                "--threshold", str(out["score"]))
    assert r_imp.exit_code == 1 and json.loads(r_imp.output)["accepted"] is False
    r = run("verify", "alice", files[(0, 3)], *common, "--threshold", "-1e9")
    assert r.exit_code == 0 and r.output.startswith("accept")

    r = run("identify", files[(1, 3)], *common, "--json")
    assert r.exit_code == 0
    ident = json.loads(r.output)
    assert ident["speaker"] == "bob" and ident["ranking"][0]["speaker"] == "bob"
    assert ident["seconds"] == pytest.approx(ident["frames"] * 0.01)
    r = run("identify", files[(2, 3)], *common, "--threshold", "1e9")
    assert r.exit_code == 1 and "unknown" in r.output.splitlines()[0]  # 1: nobody named

    r = run("speakers", "--store", store)
    assert r.exit_code == 0 and "alice" in r.output and "bob" in r.output
    r = run("speakers", "--store", store, "show", "alice", "--json")
    assert json.loads(r.output)["utterances"] == 3
    r = run("speakers", "--store", store, "remove", "bob")
    assert r.exit_code == 0
    r = run("speakers", "--store", store, "list")
    assert "bob" not in r.output


@pytest.mark.parametrize("args,message", [
    (["verify", "nobody", "{a}"], "no speaker 'nobody'"),
    (["enroll", "bad id", "{a}"], "invalid speaker id"),
    (["enroll", "carol", "{missing}"], "audio file not found"),
    (["enroll", "carol", "{silent}"], "no speech found by VAD"),
    (["verify", "alice", "{a}", "--ubm", "{other_ubm}"], "enrolled with UBM"),
    (["verify", "alice", "{a}", "--method", "fast"], "Invalid value"),
])
def test_cli_errors_are_one_line_exit_2(setup, tmp_path, args, message):
    root, ubm_path, files = setup
    store = tmp_path / "e.db"
    silent = write_audio(tmp_path / "silent.wav", np.zeros(SR, np.float32), SR)
    other = tmp_path / "other.npz"
    from speakergmm.gmm.mixture import DiagGMM

    u = DiagGMM.load(ubm_path)
    DiagGMM(u.weights, u.means + 0.01, u.variances, metadata=u.metadata).save(other)
    base = ["--store", str(store)]
    r0 = CliRunner().invoke(main, ["enroll", "alice", str(files[(0, 0)]), "--ubm", str(ubm_path),
                                   *base])
    assert r0.exit_code == 0
    fill = dict(a=files[(0, 3)], missing=tmp_path / "nope.wav", silent=silent, other_ubm=other)
    argv = [a.format(**fill) for a in args]
    if "--ubm" not in argv:
        argv += ["--ubm", str(ubm_path)]
    from speakergmm.store import SpeakerStore

    before = SpeakerStore(store).list()
    r = CliRunner().invoke(main, argv + base)
    assert r.exit_code == 2, r.output
    assert message in r.output
    if "Invalid value" not in message:
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("speakergmm: error:")
    assert SpeakerStore(store).list() == before  # nothing written


def test_empty_store_is_a_clear_error(setup, tmp_path):
    root, ubm_path, files = setup
    r = CliRunner().invoke(main, ["identify", str(files[(0, 0)]), "--ubm", str(ubm_path),
                                  "--store", str(tmp_path / "none.db")])
    assert r.exit_code == 2 and "no speaker store yet" in r.output


def test_ubm_without_feature_config_is_refused(setup, tmp_path):
    from speakergmm.gmm.mixture import DiagGMM

    root, ubm_path, files = setup
    u = DiagGMM.load(ubm_path)
    bare = tmp_path / "bare.npz"
    DiagGMM(u.weights, u.means, u.variances).save(bare)
    with pytest.raises(SpeakerGMMError, match="no feature config"):
        Recognizer(bare, tmp_path / "s.db")


def test_fsdd_with_the_bundled_telephone_system(tmp_path):
    """The six FSDD speakers (8 kHz digits, a corpus the systems never saw) enrolled on 20
    digits each with the bundled telephone system; held-out recordings identified and
    verified through the calibrated default decisions. The wideband system flags the
    same audio as out of band."""
    import warnings

    from speakergmm.recognizer import BandMismatch

    root = corpus("fsdd") / "recordings"
    with pytest.warns(BandMismatch, match="--system telephone"):
        Recognizer(system="wideband", store=tmp_path / "wb.db").enroll(
            "probe", [root / "0_george_0.wav"])
    rec = Recognizer(system="telephone", store=tmp_path / "fsdd.db")
    speakers = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", BandMismatch)  # the right band: no warning
        for spk in speakers:
            rec.enroll(spk, [root / f"{d}_{spk}_{i}.wav" for d in range(10) for i in range(2)])
    assert rec.store.calibration() is not None  # enough self-trials: it calibrated itself
    best, named, accepted, rejected = [], [], [], []
    for spk in speakers:
        for d in range(10):
            path = root / f"{d}_{spk}_45.wav"
            result = rec.identify(path)
            best.append(result.ranking[0][0] == spk)
            named.append(result.speaker == spk)
            accepted.append(rec.verify(spk, path).accepted)
            other = speakers[(speakers.index(spk) + 1) % 6]
            rejected.append(not rec.verify(other, path).accepted)
    # measured: 88% best-ranked, 82% named, 90% accepted, 93% rejected
    assert np.mean(best) > 0.85
    assert np.mean(named) > 0.75
    assert np.mean(accepted) > 0.8 and np.mean(rejected) > 0.85


@pytest.fixture(scope="module")
def channel_file(setup):
    """An eigenchannel subspace trained on the setup's background voices (3 takes each)."""
    from speakergmm.gmm.eigenchannel import EigenChannel
    from speakergmm.gmm.mixture import DiagGMM

    root, ubm_path, _ = setup
    ubm = DiagGMM.load(ubm_path)
    cfg = FeatureConfig.from_dict(ubm.metadata["feature_config"])
    feats = {f"b{s}-{u}": extract_features(y=voice(s, u), sr=SR, config=cfg)
             for s in range(100, 120) for u in range(3)}
    ch = EigenChannel.fit(ubm, feats, {u: u.split("-")[0] for u in feats}, n_factors=4,
                          n_iterations=3)
    path = root / "channel.npz"
    ch.save(path)
    return path, ch


def test_channel_compensation_in_enroll_verify_identify(setup, channel_file, tmp_path):
    from speakergmm.store import StoreError

    root, ubm_path, files = setup
    path, ch = channel_file
    rec = Recognizer(ubm_path, tmp_path / "c.db", channel=path)
    assert rec.channel.fingerprint() == ch.fingerprint()  # what was saved is what is loaded
    for s in range(3):
        rec.enroll(f"spk{s}", [files[(s, 0)], files[(s, 1)], files[(s, 2)]])
    assert rec.store.channel_fingerprint() == ch.fingerprint()
    for s in range(3):
        assert rec.identify(files[(s, 3)]).speaker == f"spk{s}"
    assert rec.verify("spk1", files[(1, 3)]).score > rec.verify("spk1", files[(2, 3)]).score
    # the scores are those of compensated features, not of the raw ones
    plain_store = Recognizer(ubm_path, tmp_path / "p.db")
    plain_store.enroll("spk1", [files[(1, 0)], files[(1, 1)], files[(1, 2)]])
    assert plain_store.store.channel_fingerprint() == "none"
    assert plain_store.verify("spk1", files[(1, 3)]).score != \
        pytest.approx(rec.verify("spk1", files[(1, 3)]).score)
    # a store's speakers are never scored with another compensation, in either direction
    with pytest.raises(StoreError, match="with channel compensation .* but none is given"):
        Recognizer(ubm_path, tmp_path / "c.db").verify("spk1", files[(1, 3)])
    with pytest.raises(StoreError, match="with channel compensation .* but none is given"):
        Recognizer(ubm_path, tmp_path / "c.db").identify(files[(1, 3)])
    with pytest.raises(StoreError, match="without channel compensation, but channel"):
        Recognizer(ubm_path, tmp_path / "p.db", channel=ch).enroll("spk2", [files[(2, 0)]])
    assert len(Recognizer(ubm_path, tmp_path / "p.db").store) == 1  # nothing written


def test_a_store_remembers_its_ubm_and_channel(setup, channel_file, tmp_path):
    """Issue 25: a store enrolled with --ubm and --channel needed both on every later call;
    now verify, identify and enroll read them from the store, and a moved file is named."""
    import shutil

    root, ubm_path, files = setup
    ubm, channel = tmp_path / "ubm.npz", tmp_path / "channel.npz"
    shutil.copy(ubm_path, ubm)
    shutil.copy(channel_file[0], channel)
    run = lambda *args: CliRunner().invoke(main, [*map(str, args)])  # noqa: E731
    store = ["--store", tmp_path / "s.db"]
    r = run("enroll", "alice", files[(0, 0)], files[(0, 1)], "--ubm", ubm, "--channel",
            channel, *store)
    assert r.exit_code == 0, r.output
    r = run("enroll", "bob", files[(1, 0)], files[(1, 1)], *store)  # no --ubm, --channel
    assert r.exit_code == 0, r.output
    with_files = run("verify", "alice", files[(0, 3)], "--json", "--ubm", ubm, "--channel",
                     channel, *store)
    without = run("verify", "alice", files[(0, 3)], "--json", *store)
    assert without.exit_code == with_files.exit_code and without.exit_code in (0, 1)
    assert json.loads(without.output)["score"] == json.loads(with_files.output)["score"]
    r = run("identify", files[(1, 3)], *store)
    assert r.exit_code in (0, 1) and "bob" in r.output, r.output
    channel.rename(tmp_path / "moved.npz")
    r = run("verify", "alice", files[(0, 3)], *store)
    assert r.exit_code == 2 and str(channel) in r.output and "--channel" in r.output


def test_cli_channel_option(setup, channel_file, tmp_path):
    root, ubm_path, files = setup
    path, _ = channel_file
    run = lambda *args: CliRunner().invoke(main, [*map(str, args)])  # noqa: E731
    common = ["--ubm", ubm_path, "--store", tmp_path / "s.db"]
    r = run("enroll", "alice", files[(0, 0)], files[(0, 1)], *common, "--channel", path)
    assert r.exit_code == 0, r.output
    r = run("enroll", "bob", files[(1, 0)], files[(1, 1)], *common, "--channel", path)
    assert r.exit_code == 0, r.output
    r = run("identify", files[(1, 3)], *common, "--channel", path, "--json")
    assert r.exit_code == 0 and json.loads(r.output)["speaker"] == "bob"
    r = run("verify", "alice", files[(0, 3)], *common, "--channel", path, "--json")
    assert r.exit_code in (0, 1) and json.loads(r.output)["speaker"] == "alice"
    r = run("verify", "alice", files[(0, 3)], *common)
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1
    assert "use the same --channel (or none)" in r.output


def test_narrowband_audio_on_a_wideband_system_gets_a_note(setup, tmp_path):
    import warnings

    from speakergmm.frontend.audio import resample
    from speakergmm.recognizer import BandMismatch

    root, ubm_path, files = setup
    narrow = write_audio(tmp_path / "phone.wav",
                         resample(voice(0, 0), orig_sr=SR, target_sr=8000), 8000)
    rec = Recognizer(ubm_path, tmp_path / "s.db")
    with pytest.warns(BandMismatch, match="8000 Hz audio for a system of 16000 Hz"):
        rec.enroll("phone", [narrow])
    with warnings.catch_warnings():
        warnings.simplefilter("error", BandMismatch)  # full-band audio: no band warning
        rec.enroll("wide", [files[(0, 0)]])
    r = CliRunner().invoke(main, ["verify", "wide", str(narrow), "--ubm", str(ubm_path),
                                  "--store", str(tmp_path / "s.db")])
    assert r.exit_code in (0, 1), r.output
    notes = [line for line in r.output.splitlines() if line.startswith("speakergmm: note:")]
    assert len(notes) == 1 and "nothing above 4000 Hz was recorded" in notes[0], r.output


def test_too_little_enrollment_speech_gets_a_note(setup, tmp_path):
    import warnings

    from speakergmm.constants import MIN_ENROLL_SECONDS
    from speakergmm.recognizer import ShortEnrollment

    root, ubm_path, files = setup
    rec = Recognizer(ubm_path, tmp_path / "s.db")
    with pytest.warns(ShortEnrollment, match="s of audio enrolled; below 5 s"):
        info = rec.enroll("short", [files[(0, 0)]])
    assert info.seconds < MIN_ENROLL_SECONDS
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # enough once the rest is appended
        info = rec.enroll("short", [files[(0, 1)], files[(0, 2)], files[(0, 3)]],
                          mode="append")
    assert info.seconds >= MIN_ENROLL_SECONDS
    r = CliRunner().invoke(main, ["enroll", "tiny", str(files[(1, 0)]), "--ubm", str(ubm_path),
                                  "--store", str(tmp_path / "s.db")])
    assert r.exit_code == 0, r.output
    assert sum(line.startswith("speakergmm: note: tiny:") for line in r.output.splitlines()) == 1


def test_a_store_calibrates_itself_from_its_enrollments(setup, tmp_path):
    from speakergmm.eval.metrics import cllr
    from speakergmm.store import StoreError

    root, ubm_path, _ = setup
    files = {(s, u): write_audio(tmp_path / f"v{s}_{u}.wav", voice(s, u), SR)
             for s in range(6) for u in range(4)}
    rec = Recognizer(ubm_path, tmp_path / "s.db")
    for s in range(2):
        rec.enroll(f"spk{s}", [files[(s, u)] for u in range(3)])
    with pytest.raises(StoreError, match="needs at least 10 target and 30 non-target trials "
                                         "from 3 speakers"):
        rec.store.calibrate()
    for s in range(2, 6):
        rec.enroll(f"spk{s}", [files[(s, u)] for u in range(2)])
        rec.enroll(f"spk{s}", [files[(s, 2)]], mode="append")  # appended audio too
    tar, non, speakers = rec.store.calibration_trials()
    # leave-one-out: 3 per speaker; non-targets: every recording against earlier speakers
    assert (tar.size, speakers) == (18, 6) and non.size == 3 * (0 + 1 + 2 + 3 + 4 + 5)
    assert tar.mean() > non.mean()
    before = [rec.verify(f"spk{m}", files[(s, 3)]) for s in range(6) for m in range(6)]
    assert all(v.llr is None for v in before)
    cal = rec.store.calibrate()
    after = [rec.verify(f"spk{m}", files[(s, 3)]) for s in range(6) for m in range(6)]
    is_target = np.array([s == m for s in range(6) for m in range(6)])
    raw = np.array([v.score for v in before])
    llrs = np.array([v.llr for v in after])
    np.testing.assert_allclose(llrs, cal.transform(raw))
    # calibration lowers Cllr on held-out trials (the fourth recordings)
    assert cllr(llrs[is_target], llrs[~is_target]) < cllr(raw[is_target], raw[~is_target])
    # the default decision is the Bayes decision at the prior
    for prior in (0.5, 0.9):
        v = rec.verify("spk1", files[(1, 3)], prior=prior)
        assert v.accepted == (v.llr >= np.log((1 - prior) / prior))
        assert v.posterior == pytest.approx(1 / (1 + np.exp(-v.llr) * (1 - prior) / prior))
    # removing a speaker removes its trials, as recording owner and as model
    rec.store.remove("spk5")
    tar2, non2, speakers2 = rec.store.calibration_trials()
    assert (tar2.size, speakers2) == (15, 5) and non2.size == non.size - 3 * 5


def test_cli_calibrate_verify_and_list(setup, tmp_path):
    root, ubm_path, _ = setup
    files = {(s, u): write_audio(tmp_path / f"v{s}_{u}.wav", voice(s, u), SR)
             for s in range(5) for u in range(4)}
    run = lambda *args: CliRunner().invoke(main, [*map(str, args)])  # noqa: E731
    common = ["--ubm", ubm_path, "--store", tmp_path / "s.db"]
    for s in range(5):
        assert run("enroll", f"spk{s}", *[files[(s, u)] for u in range(3)],
                   *common).exit_code == 0
    r = run("speakers", "--store", tmp_path / "s.db")
    assert "calibration in force: none" in r.output and "15 target" in r.output
    r = run("speakers", "--store", tmp_path / "s.db", "calibrate")
    assert r.exit_code == 0 and "from 15 target and 30 non-target trials" in r.output, r.output
    r = run("verify", "spk0", files[(0, 3)], *common, "--json")
    out = json.loads(r.output)
    assert {"llr", "posterior", "prior", "score", "seconds"} <= set(out)
    assert r.exit_code == (0 if out["llr"] >= 0 else 1) and out["prior"] == 0.5
    r = run("verify", "spk0", files[(0, 3)], *common, "--prior", "0.01")
    assert r.output.startswith(("accept", "reject")) and "at prior 0.01" in r.output
    listing = run("speakers", "--store", tmp_path / "s.db").output
    assert "calibration in force: the store's own, llr =" in listing


def test_a_store_that_could_calibrate_says_so_and_remove_recalibrates(setup, tmp_path):
    """Issue 25: a store with the trials to learn its own calibration, still deciding with
    another, says so on enroll and in 'speakers list'; 'speakers list --store S' is
    'speakers --store S list'; 'speakers remove' learns the calibration again without the
    removed speaker's trials, or drops it when too few are left."""
    from speakergmm.store import MIN_CALIBRATION

    root, ubm_path, _ = setup
    files = {(s, u): write_audio(tmp_path / f"v{s}_{u}.wav", voice(s, u), SR)
             for s in range(6) for u in range(3)}
    store = tmp_path / "s.db"
    run = lambda *args: CliRunner().invoke(main, [*map(str, args)])  # noqa: E731
    common = ["--ubm", ubm_path, "--store", store]
    for s in range(5):  # 5 x 3 recordings: 15 target, 30 non-target trials at the fifth
        r = run("enroll", f"spk{s}", *[files[(s, u)] for u in range(3)], *common)
        assert r.exit_code == 0, r.output
        advice = [line for line in r.output.splitlines() if "speakers calibrate" in line]
        assert len(advice) == (1 if s == 4 else 0), r.output
    assert advice[0].startswith("speakergmm: note:") and f"--store {store}" in advice[0]
    listing = run("speakers", "list", "--store", store)
    assert listing.exit_code == 0, listing.output
    assert listing.output == run("speakers", "--store", store, "list").output
    assert listing.output == run("speakers", "--store", store).output
    assert "15 target and 30 non-target trials of 5 speakers" in listing.output
    assert f"speakers calibrate --store {store}" in listing.output
    both = run("speakers", "--store", tmp_path / "other.db", "list", "--store", store)
    assert both.exit_code == 2 and "two stores given" in both.output
    assert not (tmp_path / "other.db").exists()
    shown = run("speakers", "show", "spk0", "--store", store)
    assert "adapt: means\n" in shown.output and "(" not in shown.output, shown.output
    assert run("speakers", "calibrate", "--store", store).exit_code == 0
    listing = run("speakers", "list", "--store", store).output
    assert "speakers calibrate" not in listing and "the store's own" in listing
    r = run("enroll", "spk5", *[files[(5, u)] for u in range(3)], *common)
    assert r.exit_code == 0 and "speakers calibrate" not in r.output, r.output
    rec = Recognizer(ubm_path, store)
    before = rec.store.calibration()
    r = run("speakers", "remove", "spk0", "--store", store)  # its trials were learnt from
    assert r.exit_code == 0 and "learnt again" in r.output, r.output
    after = rec.store.calibration()
    tar, non, speakers = rec.store.calibration_trials()
    assert (after.n_target_, after.n_nontarget_) == (tar.size, non.size) and speakers == 5
    assert (after.scale_, after.offset_) != (before.scale_, before.offset_)
    assert after.prior_ == before.prior_
    r = run("speakers", "remove", "spk1", "--store", store)  # 4 speakers: too few trials
    assert r.exit_code == 0 and "dropped" in r.output, r.output
    assert not rec.store.has_trials(MIN_CALIBRATION) and rec.store.calibration() is None


def test_narrowband_enrollment_gets_one_band_note(setup, tmp_path):
    """Ten narrowband files enrolled at once: one note for the command (it was one per
    file), saying how many more files it concerns."""
    from speakergmm.frontend.audio import resample

    root, ubm_path, _ = setup
    narrow = [write_audio(tmp_path / f"phone{u}.wav",
                          resample(voice(0, u), orig_sr=SR, target_sr=8000), 8000)
              for u in range(4)]
    r = CliRunner().invoke(main, ["enroll", "phone", *map(str, narrow), "--ubm", str(ubm_path),
                                  "--store", str(tmp_path / "s.db")])
    assert r.exit_code == 0, r.output
    notes = [line for line in r.output.splitlines() if "Hz audio for a system" in line]
    assert len(notes) == 1 and "and 3 more recording(s) like it" in notes[0], r.output


def test_calibrated_identification_says_unknown_for_a_voice_not_enrolled(setup, tmp_path):
    root, ubm_path, _ = setup
    files = {(s, u): write_audio(tmp_path / f"v{s}_{u}.wav", voice(s, u), SR)
             for s in range(8) for u in range(4)}
    rec = Recognizer(ubm_path, tmp_path / "s.db")
    for s in range(6):  # speakers 6 and 7 stay unknown
        rec.enroll(f"spk{s}", [files[(s, u)] for u in range(3)])
    rec.store.calibrate()
    for s in range(6):
        named = rec.identify(files[(s, 3)])
        assert named.speaker == f"spk{s}", named
        assert named.posteriors[0] > named.p_unknown
        assert sum(named.posteriors) + named.p_unknown <= 1 + 1e-9
    for s in (6, 7):
        stranger = rec.identify(files[(s, 3)])
        assert stranger.speaker is None, stranger
        assert stranger.p_unknown > max(stranger.posteriors)
        # an explicit threshold below its best LLR names someone after all
        assert rec.identify(files[(s, 3)], threshold=stranger.llrs[0] - 1).speaker is not None
    r = CliRunner().invoke(main, ["identify", str(files[(7, 3)]), "--ubm", str(ubm_path),
                                  "--store", str(tmp_path / "s.db"), "--json"])
    out = json.loads(r.output)
    assert r.exit_code == 1 and out["speaker"] is None and 0.5 < out["p_unknown"] <= 1
    assert {"speaker", "score", "llr", "posterior"} <= set(out["ranking"][0])
    # the command's default prior is the library's, and the rule is the Bayes decision
    # among the M enrolled and "unknown": named above LLR log(M (1 - P) / P)
    assert out["prior"] == IDENTIFY_PRIOR == rec.identify(files[(7, 3)]).prior
    for prior in (0.05, 0.5, IDENTIFY_PRIOR, 0.99):
        for s in range(8):
            found = rec.identify(files[(s, 3)], prior=prior)
            bar = np.log(6 * (1 - prior) / prior)
            assert (found.speaker is not None) == (found.llrs[0] > bar), (prior, found)


def test_a_new_store_takes_the_telephone_system_for_8_khz_audio(tmp_path):
    """Given no system, a new store whose first enrollment is 8 kHz audio takes the
    telephone system with one note, and keeps it; full-band audio, a system given, or a
    store with speakers already keep theirs."""
    import warnings

    from speakergmm.recognizer import BandMismatch, SystemChosen

    root = corpus("fsdd") / "recordings"
    digits = [root / f"{d}_theo_0.wav" for d in range(3)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Recognizer(store=tmp_path / "new.db").enroll("theo", digits)
    chosen = [w for w in caught if issubclass(w.category, SystemChosen)]
    assert len(chosen) == 1 and "takes the telephone system" in str(chosen[0].message)
    assert not [w for w in caught if issubclass(w.category, BandMismatch)]
    rec = Recognizer(store=tmp_path / "new.db")  # the store remembers it
    assert rec.system.name == "telephone" and rec.store.system()["name"] == "telephone"
    with pytest.warns(BandMismatch):  # asked for: kept, with the band note
        Recognizer(system="wideband", store=tmp_path / "wb.db").enroll("theo", digits)
    assert Recognizer(store=tmp_path / "wb.db").system.name == "wideband"
    wide = corpus("speechocean762") / "WAVE" / "SPEAKER0145" / "001450037.flac"
    with warnings.catch_warnings():
        warnings.simplefilter("error", SystemChosen)
        Recognizer(store=tmp_path / "w.db").enroll("s145", [wide])
    assert Recognizer(store=tmp_path / "w.db").system.name == "wideband"


def test_one_recording_speakers_still_yield_target_trials(setup, tmp_path):
    """A speaker's only recording is split: its first half enrolls, its second half tests,
    so a store of one-recording speakers gathers target trials (it gathered none); a
    recording too short to split gives none, and the scores separate."""
    root, ubm_path, _ = setup
    rec = Recognizer(ubm_path, tmp_path / "one.db")
    for s in range(4):
        long = write_audio(tmp_path / f"long{s}.wav", voice(s, 7, seconds=6.0), SR)
        rec.enroll(f"spk{s}", [long])
    tar, non, speakers = rec.store.calibration_trials()
    assert tar.size == 4 and non.size == 0 + 1 + 2 + 3 and speakers == 4
    assert tar.mean() > non.mean()
    short = write_audio(tmp_path / "short.wav", voice(9, 7, seconds=2.0), SR)
    rec.enroll("short", [short])
    assert rec.store.calibration_trials()[0].size == 4


def test_verify_and_identify_report_the_recording_quality(setup, tmp_path):
    """Seconds of speech and an SNR estimate come with every answer, and a short or noisy
    test recording is flagged: in the result, its JSON and the command's text."""
    from speakergmm.constants import MIN_TEST_SECONDS, MIN_TEST_SNR_DB

    root, ubm_path, files = setup
    store = tmp_path / "s.db"
    rec = Recognizer(ubm_path, store)
    for s in range(3):
        rec.enroll(f"spk{s}", [files[(s, u)] for u in range(3)])
    from scipy.signal import butter, sosfilt

    from speakergmm.frontend.augment import telephone

    rng = np.random.default_rng(0)
    y = voice(1, 7, seconds=8.0)
    # the synthetic voice holds little above 4.5 kHz: a faint hiss (35 dB down) gives it
    # the upper band of real speech
    hiss = sosfilt(butter(4, 5000, btype="highpass", fs=SR, output="sos"),
                   rng.standard_normal(len(y)))
    y = y + hiss * np.sqrt(np.mean(y ** 2) / np.mean(hiss ** 2)) / 10 ** (35 / 20)
    noise = rng.standard_normal(len(y))
    noise *= np.sqrt(np.mean(y ** 2) / np.mean(noise ** 2)) / 10 ** (3 / 20)  # 3 dB
    long = write_audio(tmp_path / "long.wav", y, SR)
    noisy = write_audio(tmp_path / "noisy.wav", 0.5 * (y + noise), SR)
    phone = write_audio(tmp_path / "phone.wav", telephone(y=y, sr=SR), SR)
    clean = rec.verify("spk1", long)
    assert clean.seconds >= MIN_TEST_SECONDS and clean.snr_db > MIN_TEST_SNR_DB
    assert clean.caution is None and "caution" not in str(clean), clean
    loud = rec.verify("spk1", noisy)
    assert loud.snr_db < MIN_TEST_SNR_DB and loud.caution.startswith("too noisy")
    narrow = rec.verify("spk1", phone)  # 16 kHz audio of a phone call
    assert narrow.upper_band_db < clean.upper_band_db and narrow.caution.startswith(
        "too narrowband")
    short = rec.identify(files[(1, 3)])  # 2 s of audio, pauses included
    assert short.seconds < MIN_TEST_SECONDS and short.caution.startswith("too short")
    common = ["--ubm", str(ubm_path), "--store", str(store)]
    r = CliRunner().invoke(main, ["verify", "spk1", str(noisy), *common, "--json"])
    out = json.loads(r.output)
    assert out["snr_db"] == loud.snr_db and out["caution"] == loud.caution
    assert out["upper_band_db"] == loud.upper_band_db
    r = CliRunner().invoke(main, ["identify", str(files[(1, 3)]), *common])
    assert f"caution: {short.caution}" in r.output, r.output
