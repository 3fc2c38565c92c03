"""Trial-list scoring from archives: library (speakergmm.batch) and CLI (score, calibrate)."""

import numpy as np
import pytest
from click.testing import CliRunner

from speakergmm.backend.calibration import Calibration
from speakergmm.batch import Cohort, EnrollmentStatistics, enroll_models, score_trial_list
from speakergmm.cli import main
from speakergmm.data.datadir import DataDir, write_data_dir
from speakergmm.data.scores import labelled_scores, read_scores
from speakergmm.data.trials import Trials, write_enroll_map, write_trials
from speakergmm.errors import SpeakerGMMError
from speakergmm.frontend.archive import extract_archive, read_features
from speakergmm.frontend.features import FeatureConfig
from speakergmm.gmm.mixture import DiagGMM
from speakergmm.gmm.statsarchive import extract_stats
from speakergmm.gmm.ubm import train_ubm

from conftest import SR, voice, write_audio


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Archives for 4 enrolled speakers (2 enroll + 3 test utterances each), 6 cohort
    speakers, a UBM, a trial list and an enroll map."""
    root = tmp_path_factory.mktemp("pipe")

    def data(name, speakers, utts):
        wav, u2s = {}, {}
        for s in speakers:
            for u in utts:
                utt = f"s{s:03d}-{u}"
                write_audio(root / "audio" / f"{utt}.wav", voice(s, u, seconds=1.5), SR)
                wav[utt], u2s[utt] = f"audio/{utt}.wav", f"s{s:03d}"
        write_data_dir(root / "data" / name, DataDir(wav_scp=wav, utt2spk=u2s))
        extract_archive(root / "data" / name, root / "feats" / name, audio_root=root)
        return read_features(root / "feats" / name)

    enroll = data("enroll", range(4), range(2))
    test = data("test", range(4), range(2, 5))
    cohort = data("cohort", range(50, 56), range(2))
    background = [x for x in cohort.values()] + [x for x in enroll.values()]
    ubm = train_ubm(background, n_components=16, n_iterations=4,
                    metadata={"feature_config": FeatureConfig().to_dict()})
    ubm.save(root / "ubm.npz")
    pairs = [(f"s{m:03d}", utt) for m in range(4) for utt in sorted(test)]
    trials = Trials(np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]),
                    np.array([p[1].startswith(p[0]) for p in pairs]))
    write_trials(root / "trials", trials)
    write_enroll_map(root / "enroll_map", {f"s{m:03d}": [f"s{m:03d}-0", f"s{m:03d}-1"]
                                           for m in range(4)})
    return root, ubm, enroll, test, cohort, trials


def stats_models(ubm, features, enroll_map, out, **kw):
    """What ``speakergmm score`` enrolls: each model's statistics summed once and stored in
    float32 (a statistics archive), then adapted."""
    archive = extract_stats(ubm, features, out, groups=enroll_map,
                            second_order="variances" in kw.get("adapt", ()))
    return EnrollmentStatistics(ubm, archive, {m: [m] for m in enroll_map}, **kw)


def test_scores_separate_targets(world):
    root, ubm, enroll, test, cohort, trials = world
    spk2utt = {f"s{m:03d}": [f"s{m:03d}-0", f"s{m:03d}-1"] for m in range(4)}
    models = enroll_models(ubm, enroll, spk2utt)
    raw = score_trial_list(ubm, trials, models, test)
    assert raw.shape == (len(trials),)
    assert raw[trials.is_target].mean() > raw[~trials.is_target].mean()
    parallel = score_trial_list(ubm, trials, models, test, executor=2)
    np.testing.assert_allclose(parallel, raw, rtol=1e-6)
    coh = Cohort.from_archive(ubm, cohort, cohort.utt2spk)
    assert len(coh.models) == 6 and len(coh.utterances) == 12
    for norm in ("znorm", "tnorm", "ztnorm", "snorm"):
        s = score_trial_list(ubm, trials, models, test, norm=norm, cohort=coh)
        assert np.isfinite(s).all()
        assert s[trials.is_target].mean() > s[~trials.is_target].mean(), norm
    asn = score_trial_list(ubm, trials, models, test, norm="asnorm", cohort=coh, top_n=12)
    snorm = score_trial_list(ubm, trials, models, test, norm="snorm", cohort=coh)
    np.testing.assert_allclose(asn, snorm, rtol=1e-9)  # top-N over the whole cohort = S-norm


def test_pipeline_errors(world):
    root, ubm, enroll, test, cohort, trials = world
    with pytest.raises(SpeakerGMMError, match="no features for enrollment utterance 'nope'"):
        enroll_models(ubm, enroll, {"s000": ["nope"]})
    models = enroll_models(ubm, enroll, {"s000": ["s000-0"]})
    with pytest.raises(SpeakerGMMError, match="trial model 's001' is not enrolled"):
        score_trial_list(ubm, trials, models, test)
    with pytest.raises(SpeakerGMMError, match="needs an impostor cohort"):
        score_trial_list(ubm, Trials(trials.enroll[:1], trials.test[:1], trials.is_target[:1]),
                         models, test, norm="znorm")


def test_cli_score_and_calibrate(world, tmp_path):
    root, ubm, enroll, test, cohort, trials = world
    out = tmp_path / "scores"
    base = ["score", str(root / "trials"), "--enroll", str(root / "feats" / "enroll"),
            "--test", str(root / "feats" / "test"), "--ubm", str(root / "ubm.npz")]
    r = CliRunner().invoke(main, base + ["-o", str(out)])
    assert r.exit_code == 0, r.output
    scores = read_scores(out)
    assert len(scores) == len(trials)
    # the enroll map gives the same models as utt2spk here
    r = CliRunner().invoke(main, base + ["--enroll-map", str(root / "enroll_map"), "-o",
                                         str(tmp_path / "s2")])
    assert r.exit_code == 0, r.output
    assert read_scores(tmp_path / "s2") == pytest.approx(scores)
    # a data directory instead of an archive is extracted on the fly
    r = CliRunner().invoke(main, ["score", str(root / "trials"), "--enroll",
                                  str(root / "data" / "enroll"), "--audio-root", str(root),
                                  "--test", str(root / "feats" / "test"), "--ubm",
                                  str(root / "ubm.npz"), "-o", str(tmp_path / "s3")])
    assert r.exit_code == 0, r.output
    assert read_scores(tmp_path / "s3") == pytest.approx(scores, rel=1e-5)
    r = CliRunner().invoke(main, base + ["-o", str(tmp_path / "sn"), "--norm", "snorm",
                                         "--cohort", str(root / "feats" / "cohort")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, base + ["-o", str(tmp_path / "x"), "--norm", "znorm"])
    assert r.exit_code == 2 and "needs an impostor cohort" in r.output
    cal = tmp_path / "cal.json"
    r = CliRunner().invoke(main, ["calibrate", str(out), "--trials", str(root / "trials"),
                                  "--prior", "0.25", "-o", str(cal)])
    assert r.exit_code == 0, r.output and "Cllr" in r.output
    r = CliRunner().invoke(main, base + ["-o", str(tmp_path / "cal_scores"), "--calibration",
                                         str(cal)])
    assert r.exit_code == 0
    # applying the calibration to the written scores gives the same LLRs as scoring again
    r = CliRunner().invoke(main, ["apply-calibration", str(cal), str(out), "-o",
                                  str(tmp_path / "applied")])
    assert r.exit_code == 0, r.output
    applied, rescored = read_scores(tmp_path / "applied"), read_scores(tmp_path / "cal_scores")
    assert applied.keys() == rescored.keys()
    scale = Calibration.load(cal).scale_  # the input file holds 6 decimals
    np.testing.assert_allclose([applied[k] for k in rescored], list(rescored.values()),
                               rtol=0, atol=abs(scale) * 5e-7 + 6e-7)
    r = CliRunner().invoke(main, ["apply-calibration", str(out), str(out), "-o",
                                  str(tmp_path / "bad")])
    assert r.exit_code == 2 and not (tmp_path / "bad").exists()
    tar, non = labelled_scores(tmp_path / "cal_scores", trials)
    from speakergmm.eval.metrics import cllr

    raw_tar, raw_non = labelled_scores(out, trials)
    assert cllr(tar, non) < cllr(raw_tar, raw_non)


def test_adapt_reaches_models_and_cohort(world, tmp_path):
    """--adapt builds the trial models and the cohort models the same way, as the library
    does with the same arguments."""
    root, ubm, enroll, test, cohort, trials = world
    mwv = ("means", "weights", "variances")
    spk2utt = {f"s{m:03d}": [f"s{m:03d}-0", f"s{m:03d}-1"] for m in range(4)}
    coh = Cohort.from_archive(ubm, cohort, cohort.utt2spk, adapt=mwv, relevance=8)
    assert not coh.models.means_only
    models = enroll_models(ubm, enroll, spk2utt, adapt=mwv, relevance=8)
    expect = score_trial_list(ubm, trials, models, test, norm="snorm", cohort=coh)
    means_only = score_trial_list(
        ubm, trials, enroll_models(ubm, enroll, spk2utt, relevance=8), test, norm="snorm",
        cohort=Cohort.from_archive(ubm, cohort, cohort.utt2spk, relevance=8))
    assert not np.allclose(expect, means_only)
    # the CLI keeps the models' statistics in float32, as a statistics archive does
    expect = score_trial_list(ubm, trials, stats_models(ubm, enroll, spk2utt, tmp_path / "st",
                                                        adapt=mwv, relevance=8),
                              test, norm="snorm", cohort=coh)
    base = ["score", str(root / "trials"), "--enroll", str(root / "feats" / "enroll"),
            "--test", str(root / "feats" / "test"), "--ubm", str(root / "ubm.npz"),
            "--norm", "snorm", "--cohort", str(root / "feats" / "cohort"), "--relevance", "8"]
    r = CliRunner().invoke(main, base + ["--adapt", "variances,means,weights", "-o",
                                         str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    got = read_scores(tmp_path / "s")
    np.testing.assert_allclose([got[(e, t)] for e, t in zip(trials.enroll, trials.test)],
                               expect, rtol=0, atol=6e-7)  # files hold 6 decimals
    r = CliRunner().invoke(main, base + ["--adapt", "mean", "-o", str(tmp_path / "bad")])
    assert r.exit_code == 2 and "cannot adapt" in r.output
    assert not (tmp_path / "bad").exists()


def test_cohort_models_enrolled_like_the_targets(world, tmp_path):
    """enroll_utterances caps each cohort model's enrollment (evenly spread utterances); the
    cohort test utterances stay all of them; the CLI option reaches it."""
    root, ubm, enroll, test, cohort, trials = world
    spk2utt = {f"s{m:03d}": [f"s{m:03d}-0", f"s{m:03d}-1"] for m in range(4)}
    models = enroll_models(ubm, enroll, spk2utt)
    capped = Cohort.from_archive(ubm, cohort, cohort.utt2spk, enroll_utterances=1)
    by_hand = Cohort(enroll_models(ubm, cohort, {f"s{s:03d}": [f"s{s:03d}-0"]
                                                 for s in range(50, 56)}),
                     cohort, sorted(cohort))
    assert capped.utterances == by_hand.utterances and len(capped.utterances) == 12
    expect = score_trial_list(ubm, trials, models, test, norm="snorm", cohort=by_hand)
    np.testing.assert_allclose(
        score_trial_list(ubm, trials, models, test, norm="snorm", cohort=capped), expect)
    full = Cohort.from_archive(ubm, cohort, cohort.utt2spk)
    assert not np.allclose(score_trial_list(ubm, trials, models, test, norm="snorm",
                                            cohort=full), expect)
    r = CliRunner().invoke(main, [
        "score", str(root / "trials"), "--enroll", str(root / "feats" / "enroll"),
        "--test", str(root / "feats" / "test"), "--ubm", str(root / "ubm.npz"), "--norm",
        "snorm", "--cohort", str(root / "feats" / "cohort"), "--cohort-enroll-utts", "1",
        "-o", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    got = read_scores(tmp_path / "s")
    expect = score_trial_list(ubm, trials, stats_models(ubm, enroll, spk2utt, tmp_path / "st"),
                              test, norm="snorm", cohort=by_hand)
    np.testing.assert_allclose([got[(e, t)] for e, t in zip(trials.enroll, trials.test)],
                               expect, rtol=0, atol=6e-7)  # files hold 6 decimals


def test_score_refuses_features_of_another_config(world, tmp_path):
    root, ubm, enroll, test, cohort, trials = world
    extract_archive(root / "data" / "test", tmp_path / "t13", audio_root=root,
                    config=FeatureConfig(n_mfcc=13))
    r = CliRunner().invoke(main, ["score", str(root / "trials"), "--enroll",
                                  str(root / "feats" / "enroll"), "--test", str(tmp_path / "t13"),
                                  "--ubm", str(root / "ubm.npz"), "-o", str(tmp_path / "s")])
    assert r.exit_code != 0 and "another feature config" in r.output


def test_cli_train_channel_and_score_with_it(world, tmp_path):
    root, ubm, enroll, test, cohort, trials = world
    channel = tmp_path / "channel.npz"
    r = CliRunner().invoke(main, ["train-channel", str(root / "feats" / "cohort"), "--ubm",
                                  str(root / "ubm.npz"), "-r", "2", "-n", "3", "-o",
                                  str(channel)])
    assert r.exit_code == 0, r.output
    assert "iter   3 objective" in r.output and channel.is_file()
    r = CliRunner().invoke(main, ["info", str(channel)])
    assert r.exit_code == 0, r.output
    assert "rank (R):       2" in r.output and f"UBM:            {ubm.fingerprint()}" in r.output
    assert "12 utterances in 6 classes, 3 EM iterations" in r.output
    (tmp_path / "junk.npz").write_bytes(b"junk")
    r = CliRunner().invoke(main, ["info", str(tmp_path / "junk.npz")])
    assert r.exit_code == 2 and "not a valid .npz model file" in r.output
    base = ["score", str(root / "trials"), "--enroll", str(root / "feats" / "enroll"),
            "--test", str(root / "feats" / "test"), "--ubm", str(root / "ubm.npz"),
            "--norm", "snorm", "--cohort", str(root / "feats" / "cohort")]
    r = CliRunner().invoke(main, base + ["-o", str(tmp_path / "plain")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, base + ["--channel", str(channel), "-o", str(tmp_path / "comp")])
    assert r.exit_code == 0, r.output
    plain, comp = read_scores(tmp_path / "plain"), read_scores(tmp_path / "comp")
    assert plain.keys() == comp.keys()
    assert not np.allclose(list(plain.values()), list(comp.values()))
    tar, non = labelled_scores(tmp_path / "comp", trials)
    assert tar.mean() > non.mean()

    # the library gives the same scores: enroll, test and cohort are all compensated
    from speakergmm.gmm.eigenchannel import CompensatedFeatures, EigenChannel

    ch = EigenChannel.load(channel, ubm)
    wrap = {name: CompensatedFeatures(f, ch) for name, f in
            (("enroll", enroll), ("test", test), ("cohort", cohort))}
    models = enroll_models(ubm, wrap["enroll"], {m: [u for u in enroll if u.startswith(m)]
                                                 for m in sorted(set(trials.enroll))})
    coh = Cohort.from_archive(ubm, wrap["cohort"], cohort.utt2spk, max_utterances=500)
    lib = score_trial_list(ubm, trials, models, wrap["test"], norm="snorm", cohort=coh)
    np.testing.assert_allclose([comp[(e, t)] for e, t in zip(trials.enroll, trials.test)], lib,
                               atol=2e-6)

    # a class map: each utterance its own class leaves nothing to learn
    classes = tmp_path / "utt2class"
    classes.write_text("".join(f"{u} {u}\n" for u in sorted(cohort)))
    r = CliRunner().invoke(main, ["train-channel", str(root / "feats" / "cohort"), "--ubm",
                                  str(root / "ubm.npz"), "--utt2class", str(classes), "-o",
                                  str(tmp_path / "c2.npz")])
    assert r.exit_code == 2 and "of which 0 have two or more" in r.output
    assert not (tmp_path / "c2.npz").exists()
    # a channel trained with another UBM is refused, naming the fix
    other = tmp_path / "other_ubm.npz"
    DiagGMM(ubm.weights, ubm.means + 0.5, ubm.variances, metadata=ubm.metadata).save(other)
    r = CliRunner().invoke(main, ["score", str(root / "trials"), "--enroll",
                                  str(root / "feats" / "enroll"), "--test",
                                  str(root / "feats" / "test"), "--ubm", str(other),
                                  "--channel", str(channel), "-o", str(tmp_path / "x")])
    assert r.exit_code == 2 and "train it again with this UBM" in r.output
    assert not (tmp_path / "x").exists()


def test_each_utterance_is_selected_and_compensated_once(world, tmp_path, monkeypatch):
    """Item 4 of the architecture issue: whatever the normalisation, a test utterance is
    compensated and Gaussian-selected once per run, each cohort utterance once, and the
    cohort statistics are computed once per model / test utterance."""
    from speakergmm.backend import trials as scorer
    from speakergmm.gmm.eigenchannel import CompensatedFeatures, EigenChannel

    root, ubm, enroll, test, cohort, trials = world
    channel = EigenChannel.fit(ubm, cohort, cohort.utt2spk, n_factors=2, n_iterations=2)
    calls = {"top": 0, "comp": 0, "stats": 0}
    top, comp, stats = DiagGMM.top_components, EigenChannel.compensate, scorer.cohort_stats

    def counting(name, fn, count=lambda *args: 1):
        def wrapped(*args, **kwargs):
            calls[name] += count(*args)
            return fn(*args, **kwargs)
        return wrapped

    models = enroll_models(ubm, CompensatedFeatures(enroll, channel),
                           {f"s{m:03d}": [f"s{m:03d}-0", f"s{m:03d}-1"] for m in range(4)})
    coh = Cohort.from_archive(ubm, CompensatedFeatures(cohort, channel), cohort.utt2spk)
    monkeypatch.setattr(DiagGMM, "top_components", counting("top", top))
    monkeypatch.setattr(EigenChannel, "compensate", counting("comp", comp))
    # rows of cohort scores reduced to statistics
    monkeypatch.setattr(scorer, "cohort_stats", counting("stats", stats, lambda a, *_: len(a)))
    tests = len(set(trials.test))
    for norm, cohort_utts in (("none", 0), ("tnorm", 0), ("znorm", 12), ("snorm", 12),
                              ("ztnorm", 12)):
        calls.update(top=0, comp=0, stats=0)
        score_trial_list(ubm, trials, models, CompensatedFeatures(test, channel), norm=norm,
                         cohort=coh)
        assert calls["top"] == calls["comp"] == tests + cohort_utts, (norm, calls)
        # the statistics of each test utterance (T side), model (Z side) and cohort model
        # (ZT's Z-normalised T side) once
        rows = {"none": 0, "tnorm": tests, "znorm": len(models), "snorm": tests + len(models),
                "ztnorm": tests + len(models) + len(coh.models)}[norm]
        assert calls["stats"] == rows, (norm, calls)
    assert len(trials) > tests  # several trials per test utterance: sharing is real


@pytest.mark.parametrize("extra, message", [
    (["--norm", "snorm", "--top-n", "5"], "--top-n applies to --norm asnorm"),
    (["--top-c", "1000"], "C (--top-c) must lie in 1..16, got 1000"),
    (["--norm", "none", "--top-n", "5"], "--top-n applies to --norm asnorm"),
    (["--norm", "snorm"], "needs an impostor cohort"),
    (["--method", "linear", "--cohort", "COHORT"], "a cohort is only used by"),
    (["--norm", "asnorm", "--cohort", "COHORT"], "--norm asnorm needs --top-n"),
])
def test_cli_option_errors_fail_before_any_work(world, tmp_path, monkeypatch, extra, message):
    from speakergmm import batch

    root, ubm, enroll, test, cohort, trials = world
    monkeypatch.setattr(batch, "_enrollment", lambda *a, **k: pytest.fail("work was done"))
    out = tmp_path / "scores"
    extra = [str(root / "feats" / "cohort") if x == "COHORT" else x for x in extra]
    r = CliRunner().invoke(main, ["score", str(root / "trials"), "--enroll",
                                  str(root / "feats" / "enroll"), "--test",
                                  str(root / "feats" / "test"), "--ubm", str(root / "ubm.npz"),
                                  "-o", str(out), *extra])
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("speakergmm: error:"), r.output
    assert message in lines[0]
    assert "Traceback" not in r.output and not out.exists()


def test_cli_short_c_still_works_with_a_note(world, tmp_path):
    root, ubm, enroll, test, cohort, trials = world
    base = ["score", str(root / "trials"), "--enroll", str(root / "feats" / "enroll"),
            "--test", str(root / "feats" / "test"), "--ubm", str(root / "ubm.npz")]
    r_old = CliRunner().invoke(main, base + ["-c", "3", "-o", str(tmp_path / "old")])
    r_new = CliRunner().invoke(main, base + ["--top-c", "3", "-o", str(tmp_path / "new")])
    assert r_old.exit_code == 0 and r_new.exit_code == 0, r_old.output + r_new.output
    assert "-c is deprecated" in r_old.output and "deprecated" not in r_new.output
    assert (tmp_path / "old").read_text() == (tmp_path / "new").read_text()


@pytest.mark.parametrize("with_channel", [False, True])
def test_score_from_statistics_equals_score_from_features(world, tmp_path, with_channel):
    root, ubm, enroll, test, cohort, trials = world
    run = CliRunner().invoke
    channel = []
    if with_channel:
        assert run(main, ["train-channel", str(root / "feats" / "cohort"), "--ubm",
                          str(root / "ubm.npz"), "-r", "2", "-n", "2", "-o",
                          str(tmp_path / "ch.npz")]).exit_code == 0
        channel = ["--channel", str(tmp_path / "ch.npz")]
    for part in ("enroll", "cohort"):
        r = run(main, ["stats", str(root / "feats" / part), "--ubm", str(root / "ubm.npz"),
                       "--second-order", "-o", str(tmp_path / f"stats_{part}"), *channel])
        assert r.exit_code == 0, r.output
    common = ["score", str(root / "trials"), "--test", str(root / "feats" / "test"), "--ubm",
              str(root / "ubm.npz"), "--norm", "snorm", "--adapt", "means,weights,variances",
              *channel]
    r = run(main, common + ["--enroll", str(root / "feats" / "enroll"), "--cohort",
                            str(root / "feats" / "cohort"), "-o", str(tmp_path / "from_feats")])
    assert r.exit_code == 0, r.output
    r = run(main, common + ["--enroll", str(tmp_path / "stats_enroll"), "--cohort",
                            str(tmp_path / "stats_cohort"), "-o", str(tmp_path / "from_stats")])
    assert r.exit_code == 0, r.output
    a, b = read_scores(tmp_path / "from_feats"), read_scores(tmp_path / "from_stats")
    assert a.keys() == b.keys()
    # float32 storage of the statistics: the same scores to the files' 6 decimals, near enough
    np.testing.assert_allclose([b[k] for k in a], [a[k] for k in a], rtol=0, atol=2e-5)


def test_statistics_of_another_ubm_or_channel_are_refused(world, tmp_path):
    root, ubm, enroll, test, cohort, trials = world
    run = CliRunner().invoke
    assert run(main, ["stats", str(root / "feats" / "enroll"), "--ubm", str(root / "ubm.npz"),
                      "-o", str(tmp_path / "st")]).exit_code == 0
    other = DiagGMM(ubm.weights, ubm.means + 0.1, ubm.variances, metadata=ubm.metadata)
    other.save(tmp_path / "other.npz")
    r = run(main, ["score", str(root / "trials"), "--enroll", str(tmp_path / "st"), "--test",
                   str(root / "feats" / "test"), "--ubm", str(tmp_path / "other.npz"),
                   "-o", str(tmp_path / "s")])
    assert r.exit_code == 2 and "recompute them with this UBM" in r.output, r.output
    assert run(main, ["train-channel", str(root / "feats" / "cohort"), "--ubm",
                      str(root / "ubm.npz"), "-r", "2", "-n", "1", "-o",
                      str(tmp_path / "ch.npz")]).exit_code == 0
    r = run(main, ["score", str(root / "trials"), "--enroll", str(tmp_path / "st"), "--test",
                   str(root / "feats" / "test"), "--ubm", str(root / "ubm.npz"), "--channel",
                   str(tmp_path / "ch.npz"), "-o", str(tmp_path / "s")])
    assert r.exit_code == 2 and "give the same --channel" in r.output, r.output
    r = run(main, ["score", str(root / "trials"), "--enroll", str(tmp_path / "st"), "--test",
                   str(tmp_path / "st"), "--ubm", str(root / "ubm.npz"), "-o",
                   str(tmp_path / "s")])
    assert r.exit_code == 2 and "frames are needed" in r.output, r.output
    assert not (tmp_path / "s").exists()


def test_one_pass_over_two_trial_lists_equals_two_runs(world, tmp_path):
    """Evaluation and calibration trials of different archives scored together (repeated
    --enroll/--test), with the raw scores of the same pass: the same numbers as separate
    runs, and the raw ones as a run without normalisation."""
    root, ubm, enroll, test, cohort, trials = world
    run = CliRunner().invoke
    b_map = {f"s{s:03d}": [f"s{s:03d}-0"] for s in (50, 51)}
    write_enroll_map(tmp_path / "b_map", b_map)
    b_tests = [f"s{s:03d}-1" for s in range(50, 56)]
    write_trials(tmp_path / "b_trials", Trials(np.repeat(["s050", "s051"], 6),
                                               np.tile(b_tests, 2)))
    (tmp_path / "ab_map").write_text((root / "enroll_map").read_text()
                                     + (tmp_path / "b_map").read_text())
    (tmp_path / "ab_trials").write_text("".join(
        " ".join(line.split()[:2]) + "\n" for line in (root / "trials").read_text().splitlines())
        + (tmp_path / "b_trials").read_text())
    common = ["--ubm", str(root / "ubm.npz"), "--norm", "snorm", "--cohort",
              str(root / "feats" / "cohort")]
    feats = root / "feats"
    for name, extra in (
            ("a", [str(root / "trials"), "--enroll", str(feats / "enroll"), "--enroll-map",
                   str(root / "enroll_map"), "--test", str(feats / "test")]),
            ("b", [str(tmp_path / "b_trials"), "--enroll", str(feats / "cohort"), "--enroll-map",
                   str(tmp_path / "b_map"), "--test", str(feats / "cohort")]),
            ("ab", [str(tmp_path / "ab_trials"), "--enroll", str(feats / "enroll"), "--enroll",
                    str(feats / "cohort"), "--enroll-map", str(tmp_path / "ab_map"), "--test",
                    str(feats / "test"), "--test", str(feats / "cohort"), "--raw-output",
                    str(tmp_path / "ab_raw")])):
        r = run(main, ["score", *extra, *common, "-o", str(tmp_path / name)])
        assert r.exit_code == 0, r.output
    together = (tmp_path / "ab").read_text()
    assert together == (tmp_path / "a").read_text() + (tmp_path / "b").read_text()
    r = run(main, ["score", str(root / "trials"), "--enroll", str(feats / "enroll"),
                   "--enroll-map", str(root / "enroll_map"), "--test", str(feats / "test"),
                   "--ubm", str(root / "ubm.npz"), "-o", str(tmp_path / "a_raw")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "ab_raw").read_text().startswith((tmp_path / "a_raw").read_text())
    r = run(main, ["score", str(root / "trials"), "--enroll", str(feats / "enroll"),
                   "--enroll", str(feats / "enroll"), "--test", str(feats / "test"),
                   "--ubm", str(root / "ubm.npz"), "-o", str(tmp_path / "dup")])
    assert r.exit_code == 2 and "is in both" in r.output, r.output


def test_cohort_utt2spk_selects_part_of_an_archive(world, tmp_path):
    root, ubm, enroll, test, cohort, trials = world
    part = {u: s for u, s in cohort.utt2spk.items() if s in ("s050", "s051", "s052")}
    (tmp_path / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s in sorted(part.items())))
    (tmp_path / "bad").write_text("nope s050\n")

    def score_with(utt2spk: str):
        return CliRunner().invoke(main, [
            "score", str(root / "trials"), "--enroll", str(root / "feats" / "enroll"),
            "--test", str(root / "feats" / "test"), "--ubm", str(root / "ubm.npz"), "--norm",
            "snorm", "--cohort", str(root / "feats" / "cohort"), "--cohort-utt2spk",
            str(tmp_path / utt2spk), "-o", str(tmp_path / f"scores_{utt2spk}")])

    r = score_with("utt2spk")
    assert r.exit_code == 0, r.output
    models = stats_models(ubm, enroll, {f"s{m:03d}": [f"s{m:03d}-0", f"s{m:03d}-1"]
                                        for m in range(4)}, tmp_path / "st")
    coh = Cohort.from_archive(ubm, cohort, part)
    assert len(coh.models) == 3
    want = score_trial_list(ubm, trials, models, test, norm="snorm", cohort=coh)
    got = read_scores(tmp_path / "scores_utt2spk")
    np.testing.assert_allclose([got[(e, t)] for e, t in zip(trials.enroll, trials.test)], want,
                               rtol=0, atol=6e-7)
    r = score_with("bad")
    assert r.exit_code == 2 and "no features for cohort utterance 'nope'" in r.output, r.output


@pytest.mark.parametrize("norm, top_n", [("none", None), ("snorm", None), ("ztnorm", None),
                                         ("asnorm", 3)])
def test_models_beyond_the_memory_budget_are_adapted_per_test(world, tmp_path, monkeypatch,
                                                              norm, top_n):
    """Models that fit are adapted once; beyond the budget each test utterance adapts only
    its own trials' models, and the Z side a block at a time: the scores are the same."""
    from speakergmm.backend import trials as scorer

    root, ubm, enroll, test, cohort, trials = world
    spk2utt = {f"s{m:03d}": [f"s{m:03d}-0", f"s{m:03d}-1"] for m in range(4)}
    # a sparse list, as VoxCeleb's: each test utterance against two of the four models
    keep = [i for i, (e, t) in enumerate(zip(trials.enroll, trials.test))
            if int(e[1:]) in (int(t[1:4]), (int(t[1:4]) + 1) % 4)]
    sparse = Trials(trials.enroll[keep], trials.test[keep], trials.is_target[keep])
    models = stats_models(ubm, enroll, spk2utt, tmp_path / "st")
    coh = Cohort.from_archive(ubm, cohort, cohort.utt2spk)
    built = []
    adapt = EnrollmentStatistics.model_set
    monkeypatch.setattr(EnrollmentStatistics, "model_set",
                        lambda self, u, rows: built.append(len(rows)) or adapt(self, u, rows))
    monkeypatch.setattr(scorer, "_Z_BLOCK_BYTES", 1)  # one model per Z-side task
    kw = dict(norm=norm, cohort=coh, top_n=top_n)
    held = score_trial_list(ubm, sparse, models, test, **kw)
    assert built == [4]
    built.clear()
    streamed = score_trial_list(ubm, sparse, models, test, model_memory=3 * models.model_bytes,
                                **kw)
    z_blocks = 0 if norm == "none" else 4
    assert len(built) == len(set(sparse.test)) + z_blocks and max(built) == 2
    # bit for bit at this size (the kernel gathers for 2 models as for 4; past its GEMM
    # threshold the two would differ by float32 rounding)
    np.testing.assert_array_equal(streamed, held)
    # = the models adapted in memory from float64 statistics, to float32 rounding
    np.testing.assert_allclose(held, score_trial_list(
        ubm, sparse, enroll_models(ubm, enroll, spk2utt), test, **kw), rtol=1e-5)


def test_enrollment_statistics_refuse_what_they_cannot_adapt(world, tmp_path):
    root, ubm, enroll, test, cohort, trials = world
    archive = extract_stats(ubm, enroll, tmp_path / "st")
    other = DiagGMM(ubm.weights, ubm.means + 0.5, ubm.variances)
    with pytest.raises(SpeakerGMMError, match="statistics of UBM .* not of the UBM given"):
        EnrollmentStatistics(other, archive, {"s000": ["s000-0"]})
    with pytest.raises(SpeakerGMMError, match="no second-order statistics"):
        EnrollmentStatistics(ubm, archive, {"s000": ["s000-0"]}, adapt=("means", "variances"))
    with pytest.raises(SpeakerGMMError, match="model 's000': no features for enrollment "
                                              "utterance 'nope'"):
        EnrollmentStatistics(ubm, archive, {"s000": ["s000-0", "nope"]})
    models = EnrollmentStatistics(ubm, archive, {"s000": ["s000-0", "s000-1"]})
    with pytest.raises(SpeakerGMMError, match="of UBM .*, not "):
        models.model_set(other, [0])


def test_ivector_plda_and_cosine_scoring_from_the_cli(world, tmp_path):
    """stats -> train-ivector -> extract-ivectors -> train-plda -> score --backend: the CLI
    gives what the library gives, with S-norm against a vector cohort; GMM-only options are
    refused with a vector back-end."""
    from speakergmm.backend.vectors import VectorBackend
    from speakergmm.batch import score_vector_trials
    from speakergmm.gmm.ivector import read_vectors

    root, ubm, enroll, test, cohort, trials = world
    run = CliRunner().invoke
    ubm_path = str(root / "ubm.npz")
    for part in ("enroll", "test", "cohort"):
        r = run(main, ["stats", str(root / "feats" / part), "--ubm", ubm_path, "-q", "-o",
                       str(tmp_path / "stats" / part)])
        assert r.exit_code == 0, r.output
    r = run(main, ["train-ivector", str(tmp_path / "stats" / "cohort"), "--ubm", ubm_path,
                   "-r", "4", "-n", "3", "-o", str(tmp_path / "iv.npz")])
    assert r.exit_code == 0, r.output
    for part in ("enroll", "test", "cohort"):
        r = run(main, ["extract-ivectors", str(tmp_path / "stats" / part), "--ubm", ubm_path,
                       "--extractor", str(tmp_path / "iv.npz"), "-q", "-o",
                       str(tmp_path / "iv" / part)])
        assert r.exit_code == 0, r.output
    r = run(main, ["train-plda", str(tmp_path / "iv" / "cohort"), "-n", "5", "-o",
                   str(tmp_path / "plda.npz")])
    assert r.exit_code == 0, r.output
    assert "iter   5 log-likelihood" in r.output
    base = ["score", str(root / "trials"), "--enroll", str(tmp_path / "iv" / "enroll"),
            "--test", str(tmp_path / "iv" / "test"), "--plda", str(tmp_path / "plda.npz")]
    for kind in ("plda", "cosine"):
        out = tmp_path / f"scores_{kind}"
        r = run(main, base + ["--backend", kind, "--norm", "snorm", "--cohort",
                              str(tmp_path / "iv" / "cohort"), "-o", str(out)])
        assert r.exit_code == 0, r.output
        got = read_scores(out)
        _, want = score_vector_trials(
            trials, enroll=read_vectors(tmp_path / "iv" / "enroll"),
            test=read_vectors(tmp_path / "iv" / "test"),
            backend=VectorBackend.load(tmp_path / "plda.npz"), kind=kind, norm="snorm",
            cohort=read_vectors(tmp_path / "iv" / "cohort"))
        np.testing.assert_allclose([got[(e, t)] for e, t in zip(trials.enroll, trials.test)],
                                   want, rtol=0, atol=6e-7)
        assert np.isfinite(want).all()
    r = run(main, base + ["--backend", "plda", "--top-c", "3", "-o", str(tmp_path / "x")])
    assert r.exit_code == 2 and "--top-c only apply to --backend gmm" in r.output
    r = run(main, base + ["--backend", "plda", "--norm", "snorm", "-o", str(tmp_path / "x")])
    assert r.exit_code == 2 and "needs an impostor cohort" in r.output
    assert not (tmp_path / "x").exists()
    r = run(main, ["score", str(root / "trials"), "--enroll", str(root / "feats" / "enroll"),
                   "--test", str(root / "feats" / "test"), "--ubm", ubm_path, "--plda",
                   str(tmp_path / "plda.npz"), "-o", str(tmp_path / "x")])
    assert r.exit_code == 2 and "--plda is the back-end of" in r.output


def test_vector_scoring_equals_the_backend_and_the_norms(world, tmp_path):
    """score_vector_trials: raw scores are the back-end's model-by-test matrix at the trial
    pairs; S-norm equals the matrix normalisation with the same cohort."""
    from speakergmm.backend.scorenorm import normalize_scores
    from speakergmm.backend.vectors import VectorBackend
    from speakergmm.batch import score_vector_trials
    from speakergmm.gmm.ivector import IVectorExtractor, extract_ivectors

    root, ubm, enroll, test, cohort, trials = world
    ivx = IVectorExtractor.fit(ubm, cohort, n_factors=4, n_iterations=3)
    ivs = {p: extract_ivectors(ivx, f, tmp_path / p) for p, f in
           (("enroll", enroll), ("test", test), ("cohort", cohort))}
    coh_spk = cohort.utt2spk
    utts = sorted(coh_spk)
    backend = VectorBackend.train(ivs["cohort"].matrix(utts), np.array([coh_spk[u] for u in utts]),
                                  n_iterations=4)
    spk2utt = {f"s{m:03d}": [f"s{m:03d}-0", f"s{m:03d}-1"] for m in range(4)}
    _, scores, raw = score_vector_trials(trials, enroll=ivs["enroll"], test=ivs["test"],
                                         backend=backend, norm="snorm", cohort=ivs["cohort"],
                                         return_raw=True)
    ids = sorted(spk2utt)
    models = backend.models([ivs["enroll"].matrix(spk2utt[m]) for m in ids])
    tests = sorted(set(trials.test))
    matrix = models.scores(backend.transform(ivs["test"].matrix(tests)))
    rows = np.array([ids.index(e) for e in trials.enroll])
    cols = np.array([tests.index(t) for t in trials.test])
    np.testing.assert_allclose(raw, matrix[rows, cols], rtol=1e-10)
    by_spk = {}
    for u in utts:
        by_spk.setdefault(coh_spk[u], []).append(u)
    cohort_models = backend.models([ivs["cohort"].matrix(us) for us in by_spk.values()])
    cohort_tests = backend.transform(ivs["cohort"].matrix([u for us in by_spk.values()
                                                           for u in us]))
    want = normalize_scores(
        "snorm", raw, enroll_cohort=models.scores(cohort_tests)[rows],
        test_cohort=cohort_models.scores(backend.transform(ivs["test"].matrix(tests))).T[cols])
    np.testing.assert_allclose(scores, want, rtol=1e-10)
    assert raw[trials.is_target].mean() > raw[~trials.is_target].mean()


def test_cli_fuse_apply_and_evaluate_together(tmp_path):
    """fuse trains on two systems' scores; apply-calibration applies it (the files in the
    fusion's order, trials aligned by name, not by line); evaluate shows all on one plot."""
    from speakergmm.backend.calibration import Fusion
    from speakergmm.data.scores import write_scores

    rng = np.random.default_rng(0)
    n = 400
    is_target = rng.random(n) < 0.3
    enroll = np.array([f"m{i % 20}" for i in range(n)])
    test = np.array([f"t{i}" for i in range(n)])
    write_trials(tmp_path / "key", Trials(enroll, test, is_target))
    sign = np.where(is_target, 1.0, -1.0)
    a, b = sign * 1.0 + rng.standard_normal(n), sign * 0.7 + rng.standard_normal(n)
    write_scores(tmp_path / "a", enroll, test, a)
    order = rng.permutation(n)  # the second file lists the trials in another order
    write_scores(tmp_path / "b", enroll[order], test[order], b[order])
    run = CliRunner().invoke
    r = run(main, ["fuse", str(tmp_path / "a"), str(tmp_path / "b"), "--trials",
                   str(tmp_path / "key"), "--prior", "0.3", "-o", str(tmp_path / "f.json")])
    assert r.exit_code == 0, r.output
    assert "-> fused" in r.output
    fusion = Fusion.load(tmp_path / "f.json")
    r = run(main, ["apply-calibration", str(tmp_path / "f.json"), str(tmp_path / "a"),
                   str(tmp_path / "b"), "-o", str(tmp_path / "fused")])
    assert r.exit_code == 0, r.output
    fused, sa, sb = (read_scores(tmp_path / name) for name in ("fused", "a", "b"))
    keys = list(zip(enroll, test))
    want = fusion.transform(np.array([[sa[k], sb[k]] for k in keys]))  # as the files hold
    np.testing.assert_allclose([fused[k] for k in keys], want, atol=6e-7)
    r = run(main, ["apply-calibration", str(tmp_path / "f.json"), str(tmp_path / "a"), "-o",
                   str(tmp_path / "x")])
    assert r.exit_code == 2 and "maps 2 system(s)' scores, 1 score file(s) given" in r.output
    write_scores(tmp_path / "short", enroll[:-1], test[:-1], b[:-1])
    r = run(main, ["apply-calibration", str(tmp_path / "f.json"), str(tmp_path / "a"),
                   str(tmp_path / "short"), "-o", str(tmp_path / "x")])
    assert r.exit_code == 2 and "trial(s) of" in r.output and not (tmp_path / "x").exists()
    r = run(main, ["evaluate", str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "fused"),
                   "--trials", str(tmp_path / "key"), "-o", str(tmp_path / "report")])
    assert r.exit_code == 0, r.output
    report = (tmp_path / "report" / "report.md").read_text()
    assert all(name in report for name in ("a", "b", "fused"))
    assert (tmp_path / "report" / "det.png").is_file()


def test_score_reports_progress_per_test_utterance(world, tmp_path):
    """Issue 25: score showed no progress (518 s for a VoxCeleb1-H-sized list); the library
    reports each test utterance's trials, the CLI draws a bar (-q: none)."""
    from speakergmm.batch import score_from_paths

    root, ubm, enroll, test, cohort, trials = world
    seen = []
    got, scores = score_from_paths(root / "trials", enroll=root / "feats" / "enroll",
                                   test=root / "feats" / "test", ubm=root / "ubm.npz",
                                   progress=lambda step, total: seen.append((step, total)))
    assert len(seen) == len(set(got.test)) and {t for _, t in seen} == {len(got)}
    assert sum(step for step, _ in seen) == len(got) == len(scores)
    r = CliRunner().invoke(main, ["score", str(root / "trials"), "--enroll",
                                  str(root / "feats" / "enroll"), "--test",
                                  str(root / "feats" / "test"), "--ubm", str(root / "ubm.npz"),
                                  "-q", "-o", str(tmp_path / "scores")])
    assert r.exit_code == 0, r.output
