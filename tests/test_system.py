"""Recognition systems (speakergmm.system): building, files, S-norm as the batch path
computes it, and the product path scoring through a system."""

import json
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from speakergmm.backend.scoring import ModelSet
from speakergmm.batch import Cohort, enroll_speakers, score_trial_list
from speakergmm.cli import main
from speakergmm.data.trials import Trials
from speakergmm.errors import ModelError, SpeakerGMMError
from speakergmm.frontend.features import FeatureConfig, extract_features
from speakergmm.gmm.eigenchannel import EigenChannel
from speakergmm.gmm.ubm import train_ubm
from speakergmm.recognizer import Recognizer
from speakergmm.store import StoreError
from speakergmm.system import BandMismatch, System, build_system, load_system

from conftest import SR, voice, write_audio

pytestmark = pytest.mark.filterwarnings("ignore::speakergmm.recognizer.ShortEnrollment")

COHORT = range(100, 112)      # cohort speakers
CALIBRATION = range(112, 118)  # held-out calibration speakers


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """A UBM, a channel subspace and the background features of synthetic voices."""
    root = tmp_path_factory.mktemp("system")
    cfg = FeatureConfig()
    feats = {f"b{s}-{u}": extract_features(y=voice(s, u), sr=SR, config=cfg)
             for s in (*COHORT, *CALIBRATION) for u in range(6)}
    ubm = train_ubm(list(feats.values()), n_components=16, n_iterations=4,
                    metadata={"feature_config": cfg.to_dict()})
    cohort = {u: u.split("-")[0] for u in feats if int(u[1:4]) in COHORT}
    channel = EigenChannel.fit(ubm, {u: feats[u] for u in cohort}, cohort, n_factors=2,
                               n_iterations=2)
    cal_map = {f"b{s}": [f"b{s}-{u}" for u in range(3)] for s in CALIBRATION}
    tests = [f"b{s}-{u}" for s in CALIBRATION for u in range(3, 6)]
    cal_trials = Trials(np.array([m for m in cal_map for _ in tests]),
                        np.array([t for _ in cal_map for t in tests]),
                        np.array([t.startswith(m + "-") for m in cal_map for t in tests]))
    return root, ubm, channel, feats, cohort, cal_map, cal_trials


def _build(parts, features=None, **kw):
    _, ubm, channel, feats, cohort, cal_map, cal_trials = parts
    options = dict(cohort_utt2spk=cohort, channel=channel, cohort_utterances=40,
                   cohort_enroll_utterances=3, calibration_enroll_map=cal_map,
                   calibration_trials=cal_trials, relevance=8, name="synthetic")
    return build_system(ubm, feats if features is None else features, **{**options, **kw})


def test_system_snorm_equals_the_batch_snorm(parts):
    """The product path's S-norm (Z side per model, T side per test, as verify and
    identify score: each test against every model) equals the trial scorer's on the same
    cohort models and recordings, and System.trial_scores is that scorer."""
    from speakergmm.backend.scoring import score

    _, ubm, _, feats, cohort, cal_map, cal_trials = parts
    system = _build(parts, channel=None, frame_step=1)
    models = enroll_speakers(ubm, feats, cal_map, relevance=8)
    model_set = ModelSet(ubm, np.stack([m.adapted(ubm).means.astype(np.float32)
                                        for m in models]), ids=list(cal_map))
    z = system.model_norm(model_set)
    fast = np.empty(len(cal_trials))
    for utt in set(cal_trials.test.tolist()):
        test = system.prepare(feats[utt])
        column = system.finish(score(ubm, model_set, test), z, system.test_norm(test))
        rows = np.flatnonzero(cal_trials.test == utt)
        fast[rows] = column[[model_set.index(m) for m in cal_trials.enroll[rows]]]
    np.testing.assert_allclose(system.trial_scores(model_set, cal_trials, feats), fast,
                               rtol=0, atol=1e-5)
    frames = {f"c{i}": x for i, x in enumerate(system.cohort_frames)}
    batch_cohort = Cohort(system.cohort_models, frames, list(frames))
    naive = score_trial_list(ubm, cal_trials, model_set, feats, norm="snorm",
                             cohort=batch_cohort)
    np.testing.assert_allclose(fast, naive, rtol=0, atol=1e-9)
    assert len(system.cohort_frames) == 40 and len(system.cohort_models) == len(COHORT)


def test_a_system_that_keeps_its_cohort_pairs_scores_the_same(parts):
    """keep_cohort (the service's systems) trades memory for time, nothing else: the Z
    side of every model, again and again, equals the one made from scratch."""
    _, ubm, _, feats, _, cal_map, _ = parts
    models = enroll_speakers(ubm, feats, cal_map, relevance=8)
    model_set = ModelSet(ubm, np.stack([m.adapted(ubm).means.astype(np.float32)
                                        for m in models]), ids=list(cal_map))
    fresh = _build(parts, channel=None).model_norm(model_set)
    kept = _build(parts, channel=None)
    kept.keep_cohort = True
    for _ in range(3):
        again = kept.model_norm(model_set)
        for a, b in zip(again, fresh):
            np.testing.assert_array_equal(a, b)
    assert all(t._pairs for t in kept._cohort_tests)  # (kept, as asked)
    # for a few calls only (an enrollment's two Z sides), then let go
    fresh_system = _build(parts, channel=None)
    with fresh_system.cohort_kept():
        for _ in range(2):
            for a, b in zip(fresh_system.model_norm(model_set), fresh):
                np.testing.assert_array_equal(a, b)
        assert all(t._pairs for t in fresh_system._cohort_tests)
    assert not fresh_system.keep_cohort
    assert not any(t._pairs for t in fresh_system._cohort_tests)


def test_calibration_separates_and_is_trained_for_the_prior(parts):
    system = _build(parts)
    cal = system.calibration
    assert cal is not None and cal.prior_ == 0.01
    assert system.metadata["calibration_trials"] == {"target": 18, "nontarget": 90,
                                                     "speakers": 6}
    from speakergmm.gmm.eigenchannel import CompensatedFeatures

    _, ubm, _, feats, _, cal_map, trials = parts
    comp = CompensatedFeatures(feats, system.channel)
    models = enroll_speakers(ubm, comp, cal_map, relevance=8)
    llr = cal.transform(system.trial_scores(
        ModelSet(ubm, np.stack([m.adapted(ubm).means for m in models]).astype(np.float32),
                 ids=list(cal_map)), trials, comp))
    assert llr[trials.is_target].mean() > 0 > llr[~trials.is_target].mean()


def test_save_load_round_trip_and_damage(parts, tmp_path):
    system = _build(parts)
    path = tmp_path / "s.npz"
    system.save(path)
    loaded = System.load(path)
    assert loaded.fingerprint() == system.fingerprint()
    assert loaded.calibration.to_json() == system.calibration.to_json()
    assert loaded.relevance == 8 and loaded.c == system.c and loaded.name == "synthetic"
    x = parts[3]["b112-4"]
    test_a, test_b = system.prepare(system.channel.compensate(x)), loaded.prepare(
        loaded.channel.compensate(x))
    assert system.test_norm(test_a) == loaded.test_norm(test_b)
    assert load_system(path).fingerprint() == system.fingerprint()
    # one cohort frame changed: the file no longer matches its fingerprint
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["cohort_frames"] = arrays["cohort_frames"].copy()
    arrays["cohort_frames"][0, 0] += np.float16(1)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ModelError, match="do not match its fingerprint"):
        System.load(tmp_path / "bad.npz")
    with pytest.raises(ModelError, match="no system 'broadband'"):
        load_system("broadband")


def test_build_system_tells_its_stages(parts):
    """Issue 25: build-system ran for minutes without a word; each stage is told (the CLI
    prints them on stderr, -q silences them)."""
    said = []
    _build(parts, log=said.append)
    assert [m.split(":")[0] for m in said] == ["cohort", "calibration"], said
    assert "enrolling" in said[0] and "trials" in said[1]


def test_calibration_speakers_must_be_held_out_of_the_cohort(parts):
    _, ubm, channel, feats, cohort, cal_map, cal_trials = parts
    leaky = {**cohort, **{u: u.split("-")[0] for us in cal_map.values() for u in us}}
    with pytest.raises(SpeakerGMMError, match="in the cohort"):
        _build(parts, cohort_utt2spk=leaky)


def test_bundled_systems_load_and_fit_the_size_budget():
    from speakergmm.system import BUNDLED_SYSTEMS, system_path

    total = 0
    for name in BUNDLED_SYSTEMS:
        system = load_system(name)
        assert system.name == name and system.normalises and system.calibration is not None
        assert system.config.sample_rate == {"wideband": 16000, "telephone": 8000}[name]
        total += system_path(name).stat().st_size
    assert total <= 20e6


@pytest.fixture
def system_file(parts, tmp_path):
    path = tmp_path / "synthetic.npz"
    _build(parts).save(path)
    return path


def test_recognizer_scores_through_the_system(parts, system_file, tmp_path):
    """verify's LLR is the system's calibration of the S-norm of the raw score, with the Z
    side stored at enrollment; identify ranks by it; the store records the system."""
    files = {(s, u): write_audio(tmp_path / f"{s}_{u}.wav", voice(s, u), SR)
             for s in range(3) for u in range(4)}
    rec = Recognizer(system=system_file, store=tmp_path / "s.db")
    for s in range(3):
        rec.enroll(f"spk{s}", [files[(s, u)] for u in range(3)])
    assert rec.store.system()["fingerprint"] == rec.system.fingerprint()
    assert set(rec.store.norms()) == {"spk0", "spk1", "spk2"}
    result = rec.verify("spk1", files[(1, 3)])
    system = rec.system
    test = system.prepare(rec.features(files[(1, 3)]))
    models = next(rec.store.model_sets(rec.ubm, rec._channel_fp, ids=["spk1"]))
    from speakergmm.backend.scoring import score

    assert result.score == pytest.approx(score(rec.ubm, models, test)[0], abs=1e-12)
    z = rec.store.norms()["spk1"]
    expected = system.finish([result.score], ([z[0]], [z[1]]), system.test_norm(test),
                             calibration=system.calibration)[0]
    assert result.llr == pytest.approx(expected, abs=1e-9)
    assert len(models) == 1
    found = rec.scores(files[(1, 3)])
    assert found.llrs[found.ids.index("spk1")] == pytest.approx(result.llr, abs=1e-9)
    assert rec.identify(files[(1, 3)]).ranking[0][0] == "spk1"
    # later commands read the system from the store
    assert Recognizer(store=tmp_path / "s.db").system.fingerprint() == system.fingerprint()
    # another system, or a bare UBM, is refused on this store
    with pytest.raises(StoreError, match="enrolled with system 'synthetic'"):
        Recognizer(system="wideband", store=tmp_path / "s.db").verify("spk1", files[(1, 3)])
    with pytest.raises(SpeakerGMMError, match="not both"):
        Recognizer(parts[1], tmp_path / "s.db", system=system_file)


def test_store_calibrates_itself_once_it_has_enough_trials(system_file, tmp_path):
    """A store learns its own calibration at AUTO_CALIBRATION trials, or before, from
    MIN_CALIBRATION on, at the enrollment that finds its own trials predict themselves
    better (held out by speaker) than the system's calibration does; once it has its own,
    every enrollment learns it again; never otherwise."""
    from speakergmm.store import AUTO_CALIBRATION, MIN_CALIBRATION
    from speakergmm.store.selfcal import own_predicts_better

    rec = Recognizer(system=system_file, store=tmp_path / "s.db")
    seen = []
    for s in range(AUTO_CALIBRATION["speakers"] + 3):
        files = [write_audio(tmp_path / f"{s}_{u}.wav", voice(s, u, seconds=1.0), SR)
                 for u in range(12)]
        before = rec.store.calibration_json()
        rec.enroll(f"spk{s}", files)
        tar, non, n = rec.store.calibration_trials()
        ready = (tar.size >= AUTO_CALIBRATION["target"] and non.size
                 >= AUTO_CALIBRATION["nontarget"] and n >= AUTO_CALIBRATION["speakers"])
        better, own, theirs = own_predicts_better(rec.store.calibration_trial_rows(),
                                                  rec.system.calibration)
        learnt = rec.store.calibration_json() != before
        assert learnt == (ready or better or before is not None), (s, ready, better, own,
                                                                    theirs)
        if n < MIN_CALIBRATION["speakers"]:
            assert not learnt and not better and np.isnan(own)
        seen.append(ready)
    assert seen[0] is False and seen[-1] is True
    assert rec.calibration().to_json() == rec.store.calibration().to_json()


def test_own_calibration_wins_only_where_it_predicts_better():
    """own_predicts_better on trials drawn so that the system's calibration is right, and
    so that it is off by a shift: held out by speaker, the store's own wins only the
    second."""
    from speakergmm.backend.calibration import Calibration
    from speakergmm.store.selfcal import own_predicts_better

    rng = np.random.default_rng(3)
    system = Calibration().fit(rng.normal(2, 1, 400), rng.normal(-2, 1, 4000), prior=0.01)
    speakers = [f"s{i}" for i in range(6)]

    def rows(shift):
        out = []
        for who in speakers:
            out += [(who, who, rng.normal(2, 1) + shift, True) for _ in range(10)]
            out += [(who, other, rng.normal(-2, 1) + shift, False)
                    for other in speakers if other != who for _ in range(6)]
        return tuple(np.array(c, dtype=d) for c, d in zip(
            zip(*out), (object, object, np.float64, bool)))

    assert not own_predicts_better(rows(0.0), system)[0]
    better, own, theirs = own_predicts_better(rows(3.0), system)
    assert better and own < theirs
    few = rows(3.0)
    assert not own_predicts_better(tuple(c[:40] for c in few), system)[0]  # one speaker


def _trial_rows(rng, speakers, shift, per_pair=6):
    out = []
    for who in speakers:
        out += [(who, who, rng.normal(2, 1) + shift, True) for _ in range(10)]
        out += [(who, other, rng.normal(0, 1) + shift, False)
                for other in speakers if other != who for _ in range(per_pair)]
    return tuple(np.array(c, dtype=d) for c, d in zip(zip(*out),
                                                      (object, object, np.float64, bool)))


def test_store_shift_moves_down_only_what_sits_above_the_systems_audio():
    """store_shift: 0 for impostor trials where S-norm puts the system's own (about 0),
    never negative, the excess over IN_DOMAIN_NONTARGET shrunk by the speaker pairs'
    evidence (closer to it with more pairs), and the same whichever way a pair was
    scored; adapted() applies the system's calibration to the shifted score."""
    from speakergmm.backend.calibration import Calibration
    from speakergmm.store.selfcal import IN_DOMAIN_NONTARGET, adapted, store_shift

    rng = np.random.default_rng(5)
    many = [f"s{i}" for i in range(8)]
    assert store_shift(_trial_rows(rng, many, 0.0)).shift == 0.0
    assert store_shift(_trial_rows(rng, many, -3.0)).shift == 0.0
    few, lots = (store_shift(_trial_rows(rng, many[:n], 3.0, per_pair=40)) for n in (2, 8))
    assert few.pairs == 1 and lots.pairs == 28
    for moved in (few, lots):
        assert 0 < moved.shift < moved.mean - IN_DOMAIN_NONTARGET
    assert few.shift < lots.shift and lots.shift == pytest.approx(
        lots.mean - IN_DOMAIN_NONTARGET, abs=0.05)
    speaker, model, score, target = _trial_rows(rng, many[:3], 2.0)
    assert store_shift((model, speaker, score, target)) == store_shift(
        (speaker, model, score, target))
    assert store_shift(tuple(c[target] for c in (speaker, model, score, target))).pairs == 0
    system = Calibration().fit(rng.normal(2, 1, 400), rng.normal(-2, 1, 4000), prior=0.01)
    rows = _trial_rows(rng, many, 3.0)
    s = rng.normal(0, 3, 50)
    np.testing.assert_allclose(adapted(system, rows).transform(s),
                               system.transform(s - store_shift(rows).shift))
    assert adapted(system, _trial_rows(rng, many, 0.0)) is system


def test_a_store_on_other_audio_is_decided_with_the_adapted_calibration(system_file,
                                                                        tmp_path):
    """Until a store learns its own calibration, the recognizer decides with the system's
    adapted to the store's impostor trials, and `speakers list` says by how much."""
    from speakergmm.store.selfcal import adapted, store_shift

    rec = Recognizer(system=system_file, store=tmp_path / "s.db")
    for s in range(3):
        rec.enroll(f"spk{s}", [write_audio(tmp_path / f"{s}_{u}.wav", voice(s, u), SR)
                               for u in range(2)])
    assert rec.store.calibration() is None
    rows = rec.store.calibration_trial_rows()
    assert rec.calibration().to_json() == adapted(rec.system.calibration, rows).to_json()
    shifted = tuple(c if i != 2 else np.where(rows[3], c, c + 5.0)
                    for i, c in enumerate(rows))  # impostors scoring far above
    with rec.store._transaction() as conn:
        conn.execute("UPDATE trials SET score = score + 5.0 WHERE target = 0")
    moved = store_shift(shifted)
    assert moved.shift > 0
    assert rec.calibration().offset_ == pytest.approx(
        rec.system.calibration.offset_ - rec.system.calibration.scale_ * moved.shift)
    r = CliRunner().invoke(main, ["speakers", "--store", str(tmp_path / "s.db")])
    assert f"moved down by {moved.shift:.2f}" in r.output, r.output


def test_cli_system_option_and_build_system(parts, system_file, tmp_path):
    root, ubm, channel, feats, cohort, cal_map, cal_trials = parts
    files = [write_audio(tmp_path / f"a{u}.wav", voice(1, u), SR) for u in range(4)]
    run = lambda *a: CliRunner().invoke(main, [*map(str, a)])  # noqa: E731
    store = ["--store", tmp_path / "s.db"]
    r = run("enroll", "alice", *files[:3], "--system", system_file, *store)
    assert r.exit_code == 0, r.output
    r = run("verify", "alice", files[3], "--json", *store)  # the system from the store
    out = json.loads(r.output)
    assert r.exit_code in (0, 1) and out["llr"] is not None and out["posterior"] is not None
    assert r.exit_code == (0 if out["accepted"] else 1)
    r = run("enroll", "bob", files[0], "--system", system_file, "--ubm", system_file, *store)
    assert r.exit_code == 2 and "not both" in r.output
    r = run("speakers", *store)
    assert "system: synthetic" in r.output and "calibration in force: system synthetic's" \
        in r.output


def test_band_mismatch_names_the_telephone_system(parts, system_file, tmp_path):
    path = write_audio(tmp_path / "narrow.wav", voice(1, 0)[::2], SR // 2)
    with pytest.warns(BandMismatch, match="--system telephone"):
        load_system(system_file).features(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BandMismatch)
        load_system(system_file).features(write_audio(tmp_path / "w.wav", voice(1, 0), SR))


def test_stores_from_before_systems_keep_their_bundled_ubm(tmp_path):
    """A store enrolled with the UBM bundled before systems (no system recorded) is scored
    with that UBM when no --ubm or --system is given; a new store gets the wideband
    system."""
    from speakergmm.pretrained import default_ubm_path

    files = [write_audio(tmp_path / f"{u}.wav", voice(3, u), SR) for u in range(3)]
    old = Recognizer(default_ubm_path(), tmp_path / "old.db")
    old.enroll("carol", files[:2])
    assert old.store.system() is None
    again = Recognizer(store=tmp_path / "old.db")
    assert again.ubm.fingerprint() == old.ubm.fingerprint() and not again.system.normalises
    assert again.verify("carol", files[2]).score == old.verify("carol", files[2]).score
    assert Recognizer(store=tmp_path / "new.db").system.name == "wideband"


def _noisy(s: int, u: int, snr_db: float) -> np.ndarray:
    y = voice(s, u).astype(np.float64)
    noise = np.random.default_rng(7 * s + u).standard_normal(len(y))
    noise *= np.sqrt(np.mean(y ** 2) / np.mean(noise ** 2) / 10 ** (snr_db / 10))
    return (y + noise).astype(np.float32)


@pytest.fixture(scope="module")
def quality_parts(parts):
    """The calibration trials again against noisy copies of their test recordings, the
    copies' features, and every test's measures as the product path takes them."""
    from speakergmm.frontend.quality import SignalMeter

    _, ubm, _, feats, _, cal_map, cal_trials = parts
    cfg = FeatureConfig.from_dict(ubm.metadata["feature_config"])
    tests = sorted(set(cal_trials.test.tolist()))
    audio = {t: voice(int(t[1:4]), int(t.split("-")[1])) for t in tests}
    for t in tests:
        for snr in (0, 10):
            audio[f"{t}-n{snr}"] = _noisy(int(t[1:4]), int(t.split("-")[1]), snr)
    extra = {u: extract_features(y=y, sr=SR, config=cfg) for u, y in audio.items()
             if u not in feats}
    quality = {}
    for u, y in audio.items():
        meter = SignalMeter(SR)
        meter.add(y)
        quality[u] = (meter.snr_db, meter.upper_band_db)
    rows = [(m, t, target) for m, t, target in zip(cal_trials.enroll, cal_trials.test,
                                                    cal_trials.is_target)]
    rows += [(m, f"{t}-n{snr}", target) for m, t, target in rows for snr in (0, 10)]
    trials = Trials(*(np.array(c) for c in zip(*rows)))
    return {**feats, **extra}, trials, quality


def test_a_quality_calibration_is_learnt_kept_and_acts_on_the_test(parts, quality_parts,
                                                                   tmp_path):
    """Issue 22, item 4: build_system learns how the calibrated LLR depends on the test's
    measures; it travels with the system file, acts only on a test with a deficit, and
    calibrate_system learns it anew without touching the fingerprint."""
    from speakergmm.backend.qmf import deficits
    from speakergmm.frontend.quality import Quality
    from speakergmm.system import calibrate_system

    feats, trials, quality = quality_parts
    plain = _build(parts)
    system = _build(parts, feats, quality_trials=trials, quality=quality)
    assert plain.quality_calibration is None and "quality-aware" in system.describe()
    assert system.fingerprint() == plain.fingerprint()
    assert system.calibration.to_json() == plain.calibration.to_json()
    record = system.metadata["quality_trials"]
    assert record["target"] == 3 * 18 and record["nontarget"] == 3 * 90
    assert record["degraded"] >= 2 * 108  # every noisy copy has an SNR deficit
    path = tmp_path / "q.npz"
    system.save(path)
    loaded = System.load(path)
    assert loaded.quality_calibration.to_dict() == system.quality_calibration.to_dict()
    raw, z, t = np.array([0.5, -0.3]), (np.zeros(2), np.ones(2)), (0.0, 1.0)
    long_clean = Quality(seconds=8.0, snr_db=40.0, upper_band_db=-18.0)
    short_noisy = Quality(seconds=1.0, snr_db=3.0, upper_band_db=-18.0)
    base = loaded.finish(raw, z, t, calibration=loaded.calibration)
    np.testing.assert_array_equal(
        loaded.finish(raw, z, t, calibration=loaded.calibration, quality=long_clean), base)
    adjusted = loaded.finish(raw, z, t, calibration=loaded.calibration, quality=short_noisy)
    assert not np.allclose(adjusted, base)
    # the score is adjusted, then calibrated
    np.testing.assert_allclose(adjusted, loaded.calibration.transform(
        loaded.quality_calibration.transform(loaded.finish(raw, z, t), deficits(
            snr_db=3.0, seconds=1.0, upper_band_db=-18.0))), rtol=1e-12)
    # uncalibrated scores are never adjusted
    np.testing.assert_array_equal(loaded.finish(raw, z, t, quality=short_noisy),
                                  loaded.finish(raw, z, t))
    _, _, _, _, _, cal_map, cal_trials = parts
    again = calibrate_system(plain, feats, calibration_enroll_map=cal_map,
                             calibration_trials=cal_trials, quality_trials=trials,
                             quality=quality)
    assert again.fingerprint() == plain.fingerprint()
    assert again.quality_calibration.to_dict() == system.quality_calibration.to_dict()
    with pytest.raises(SpeakerGMMError, match="no quality measures"):
        _build(parts, feats, quality_trials=trials, quality={})


def test_cli_calibrate_system_keeps_the_stores_and_measures_the_audio(parts, system_file,
                                                                      tmp_path):
    """calibrate-system: a calibration and quality calibration learnt anew from data
    directories of audio (measured as the product path measures a test); the system's
    fingerprint is kept, so a store enrolled with it goes on; its own input is refused as
    output."""
    from speakergmm.data import DataDir, write_data_dir

    _, ubm, _, feats, _, cal_map, cal_trials = parts
    wav, utt2spk = {}, {}
    for u in sorted({*cal_trials.test.tolist(), *(x for us in cal_map.values() for x in us)}):
        s, i = int(u[1:4]), int(u.split("-")[1])
        wav[u] = str(write_audio(tmp_path / "audio" / f"{u}.wav", voice(s, i), SR))
        utt2spk[u] = u.split("-")[0]
        if u in cal_trials.test:
            wav[f"{u}-n5"] = str(write_audio(tmp_path / "audio" / f"{u}-n5.wav",
                                             _noisy(s, i, 5), SR))
            utt2spk[f"{u}-n5"] = u.split("-")[0]
    write_data_dir(tmp_path / "data", DataDir(wav_scp=wav, utt2spk=utt2spk))
    (tmp_path / "enroll_map").write_text(
        "".join(f"{m} {' '.join(us)}\n" for m, us in cal_map.items()))
    rows = [f"{m} {t} {'target' if k else 'nontarget'}\n"
            for m, t, k in zip(cal_trials.enroll, cal_trials.test, cal_trials.is_target)]
    (tmp_path / "trials").write_text("".join(rows))
    (tmp_path / "q_trials").write_text("".join(
        rows + [f"{m} {t}-n5 {k}\n" for m, t, k in (r.split() for r in rows)]))
    run = lambda *a: CliRunner().invoke(main, [*map(str, a)])  # noqa: E731
    config = tmp_path / "config.json"
    config.write_text(json.dumps(ubm.metadata["feature_config"]))
    r = run("extract", tmp_path / "data", tmp_path / "feats", "--config", config)
    assert r.exit_code == 0, r.output
    common = ["--cal-enroll-map", tmp_path / "enroll_map", "--cal-trials", tmp_path / "trials"]
    r = run("calibrate-system", system_file, tmp_path / "feats", *common, "--quality-trials",
            tmp_path / "q_trials", "--quality-audio", tmp_path / "data", "-q",
            "-o", tmp_path / "new.npz")
    assert r.exit_code == 0, r.output
    new = System.load(tmp_path / "new.npz")
    assert new.fingerprint() == System.load(system_file).fingerprint()
    assert new.quality_calibration is not None
    assert new.metadata["quality_trials"]["degraded"] >= len(rows)
    r = run("calibrate-system", system_file, tmp_path / "feats", *common,
            "--quality-trials", tmp_path / "q_trials", "-o", tmp_path / "x.npz")
    assert r.exit_code == 2 and "go together" in r.output
    r = run("calibrate-system", system_file, tmp_path / "feats", *common, "-o", system_file)
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_a_store_made_with_a_quality_calibration_learns_its_own_on_adjusted_trials(
        parts, quality_parts, tmp_path):
    """A store's own calibration is learnt on its trials adjusted for each recording's
    quality, as the tests it calibrates are (else a store of short recordings counts
    their shortness twice: FSDD's misses went from 12% to 47%); a store made with the same
    system before it had a quality calibration keeps scoring unadjusted."""
    import sqlite3

    from speakergmm.frontend.quality import Quality, measure

    feats, trials, quality = quality_parts
    system = _build(parts, feats, quality_trials=trials, quality=quality)
    with_q, without = tmp_path / "q.npz", tmp_path / "plain.npz"
    system.save(with_q)
    system.with_calibration(system.calibration, None).save(without)
    audio = {s: [write_audio(tmp_path / f"v{s}-{u}.wav", voice(s, u), SR) for u in range(3)]
             for s in (1, 2, 3)}
    noisy = write_audio(tmp_path / "noisy.wav", _noisy(1, 5, 0), SR)
    recs = {}
    for name, path in (("q", with_q), ("plain", without)):
        recs[name] = Recognizer(system=path, store=tmp_path / f"{name}.db")
        for s, files in audio.items():
            recs[name].enroll(f"s{s}", files)
    assert recs["q"].store.system()["quality"] is True
    assert recs["plain"].store.system()["quality"] is False
    spk_q, model_q, score_q, target_q = recs["q"].store.calibration_trial_rows()
    spk_p, model_p, score_p, target_p = recs["plain"].store.calibration_trial_rows()
    np.testing.assert_array_equal(model_q, model_p)
    assert not np.allclose(score_q, score_p)
    # each trial of the last enrollment, adjusted for its recording's measures
    order = [audio[3][i] for i in range(3)]
    last = np.flatnonzero(np.isin(spk_p, ["s3"]) | np.isin(model_p, ["s3"]))
    assert len(last)
    # (measured as a test is, to 0.1 dB)
    measured = [Quality(system.seconds(len(system.features(f))),
                        *(round(v, 1) for v in measure(f, sr=SR))) for f in order]
    adjusted = [system.adjust(np.array([score_p[i]]), q)[0] for i in last for q in measured]
    assert all(np.isclose(score_q[i], adjusted, rtol=0, atol=1e-9).any() for i in last)
    # the test's score is adjusted too, in the store made with it only
    v_q, v_p = recs["q"].verify("s1", noisy), recs["plain"].verify("s1", noisy)
    assert v_q.llr != v_p.llr
    # a store made before the system had a quality calibration: its record says nothing
    with sqlite3.connect(tmp_path / "plain.db") as conn:
        conn.execute("UPDATE meta SET value=? WHERE key='system'", (json.dumps(
            {"name": system.name, "fingerprint": system.fingerprint(),
             "path": str(with_q.resolve())}),))
    conn.close()
    old = Recognizer(store=tmp_path / "plain.db")  # the system from its record: with_q
    assert old.system.quality_calibration is not None
    assert old.verify("s1", noisy).llr == pytest.approx(v_p.llr, abs=1e-9)
