"""Linear logistic-regression calibration and Cllr."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from speakergmm.backend.calibration import Calibration, Fusion, bayes_threshold
from speakergmm.errors import ModelError
from speakergmm.eval.metrics import cllr


def gaussian_scores(rng, n_target, n_nontarget, *, scale=1.0, shift=0.0):
    """Targets N(2, 1), non-targets N(-1, 1), then ``scale·s + shift`` (miscalibrated)."""
    t = rng.normal(2.0, 1.0, n_target)
    n = rng.normal(-1.0, 1.0, n_nontarget)
    return scale * t + shift, scale * n + shift


# For N(2,1) vs N(-1,1): LLR(s) = 3 s - 1.5.
TRUE_SLOPE, TRUE_OFFSET = 3.0, -1.5


def test_cllr_reference_values():
    assert cllr([0.0, 0.0], [0.0]) == pytest.approx(1.0)
    assert cllr([50.0, 80.0], [-60.0, -1e3]) == pytest.approx(0.0, abs=1e-12)
    assert cllr([np.inf], [-np.inf]) == 0.0
    assert cllr([-50.0], [-50.0]) > 30  # confidently wrong targets cost a lot
    # One target at LLR log 3: log2(1 + 1/3)/2 bits; non-target at 0: 1/2 bit.
    assert cllr([math.log(3)], [0.0]) == pytest.approx(0.5 * math.log2(4 / 3) + 0.5)


def test_fit_lowers_cllr_on_held_out_scores(rng):
    train_t, train_n = gaussian_scores(rng, 500, 2000, scale=3.0, shift=5.0)
    test_t, test_n = gaussian_scores(rng, 500, 2000, scale=3.0, shift=5.0)
    raw = cllr(test_t, test_n)
    cal = Calibration().fit(train_t, train_n, prior=0.5)
    calibrated = cllr(cal.transform(test_t), cal.transform(test_n))
    assert cal.converged_
    assert raw > 1.5          # shifted by +5: non-targets look like targets
    assert calibrated < 0.35  # near the ideal ≈ 0.26 bits for d' = 3
    assert calibrated < raw


@pytest.mark.parametrize("prior", [0.5, 0.1])
def test_fit_recovers_analytic_llr(rng, prior):
    t, n = gaussian_scores(rng, 20000, 20000)
    cal = Calibration().fit(t, n, prior=prior)
    assert cal.scale_ == pytest.approx(TRUE_SLOPE, abs=0.15)
    assert cal.offset_ == pytest.approx(TRUE_OFFSET, abs=0.15)
    assert cal.prior_ == prior
    assert (cal.n_target_, cal.n_nontarget_) == (20000, 20000)
    # Through a linear miscalibration the fit undoes it: a·(3s + 5) + b = 3 s - 1.5.
    cal2 = Calibration().fit(3.0 * t + 5.0, 3.0 * n + 5.0, prior=prior)
    assert cal2.scale_ == pytest.approx(cal.scale_ / 3.0, rel=1e-6)
    assert cal2.offset_ == pytest.approx(cal.offset_ - 5.0 * cal.scale_ / 3.0, rel=1e-6)


def test_fit_is_the_optimum_of_the_objective(rng):
    t, n = gaussian_scores(rng, 200, 300, scale=2.0, shift=-1.0)
    prior = 0.2
    cal = Calibration().fit(t, n, prior=prior)
    lp = math.log(prior / (1 - prior))

    def objective(a, b):
        return (prior * np.mean(np.logaddexp(0, -(a * t + b + lp)))
                + (1 - prior) * np.mean(np.logaddexp(0, a * n + b + lp)))

    best = objective(cal.scale_, cal.offset_)
    for da, db in [(1e-3, 0), (-1e-3, 0), (0, 1e-3), (0, -1e-3)]:
        assert objective(cal.scale_ + da, cal.offset_ + db) > best


def test_transform_and_threshold():
    cal = Calibration.from_json(json.dumps({
        "format": "speakergmm.calibration", "format_version": 1, "scale": 2.0,
        "offset": -1.0, "prior": 0.01, "n_target": 3, "n_nontarget": 7}))
    np.testing.assert_allclose(cal.transform([[0.0, 1.0]]), [[-1.0, 1.0]])
    assert bayes_threshold(0.5) == 0.0
    assert bayes_threshold(0.01) == pytest.approx(math.log(99))


def test_json_round_trip(tmp_path, rng):
    t, n = gaussian_scores(rng, 50, 80)
    cal = Calibration().fit(t, n, prior=0.05)
    back = Calibration.from_json(cal.to_json())
    assert (back.scale_, back.offset_, back.prior_) == (cal.scale_, cal.offset_, cal.prior_)
    assert (back.n_target_, back.n_nontarget_) == (50, 80)
    path = tmp_path / "cal.json"
    cal.save(path)
    loaded = Calibration.load(path)
    np.testing.assert_array_equal(loaded.transform(t), cal.transform(t))
    assert [p.name for p in tmp_path.iterdir()] == ["cal.json"]  # no temporary left
    doc = json.loads(path.read_text())
    assert doc["format"] == "speakergmm.calibration" and doc["format_version"] == 1
    assert doc["trained_on"] is None and loaded.trained_on_ is None


def test_calibration_and_fusion_record_what_they_were_trained_on(tmp_path, rng):
    """The library records it (the CLI passes the scores file): an absolute path for a
    file, the name given otherwise; files written before it recorded nothing still load."""
    from speakergmm.backend.calibration import Fusion

    t, n = gaussian_scores(rng, 50, 80)
    (tmp_path / "dev.scores").write_text("x\n")
    cal = Calibration().fit(t, n, source=tmp_path / "dev.scores")
    assert cal.trained_on_ == str((tmp_path / "dev.scores").resolve())
    assert Calibration.from_json(cal.to_json()).trained_on_ == cal.trained_on_
    fused = Fusion().fit(np.c_[t, t], np.c_[n, n], source="dev trials")
    assert Fusion.from_json(fused.to_json()).trained_on_ == "dev trials"
    old = json.loads(cal.to_json())
    del old["trained_on"]
    assert Calibration.from_json(json.dumps(old)).trained_on_ is None


def test_malformed_files_rejected(tmp_path, rng):
    good = json.loads(Calibration().fit([1.0, 2.0], [0.0, -1.0, 1.5]).to_json())
    with pytest.raises(ModelError, match="no such calibration file"):
        Calibration.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ModelError, match=r"bad\.json: not a JSON calibration file"):
        Calibration.load(bad)
    cases = [
        ({"format": "other"}, "format is 'other'"),
        ({"format_version": 99}, "format version 99 is not supported"),
        ({"scale": "x"}, "scale must be a finite number"),
        ({"prior": 1.0}, "prior must be a number strictly between 0 and 1"),
        ({"n_target": 0}, "n_target must be a positive integer"),
    ]
    for change, message in cases:
        with pytest.raises(ModelError, match=message):
            Calibration.from_json(json.dumps({**good, **change}))
    del good["offset"]
    with pytest.raises(ModelError, match="missing offset"):
        Calibration.from_json(json.dumps(good))
    with pytest.raises(ModelError, match="format is 'list'"):
        Calibration.from_json("[1, 2]")


def test_invalid_inputs_rejected():
    with pytest.raises(ValueError, match="target_scores is empty"):
        Calibration().fit([], [1.0])
    with pytest.raises(ValueError, match="nontarget_scores is empty"):
        Calibration().fit([1.0], [])
    with pytest.raises(ValueError, match="non-finite"):
        Calibration().fit([1.0, np.nan], [0.0])
    with pytest.raises(ValueError, match="non-finite"):
        Calibration().fit([1.0], [np.inf])
    for prior in (0.0, 1.0, -0.5, True, "0.5"):
        with pytest.raises(ValueError, match="prior must be"):
            Calibration().fit([1.0], [0.0], prior=prior)
    with pytest.raises(ValueError, match="not fitted"):
        Calibration().transform([1.0])
    with pytest.raises(ValueError, match="not fitted"):
        Calibration().to_json()
    with pytest.raises(ValueError, match="NaN"):
        cllr([np.nan], [0.0])
    with pytest.raises(ValueError, match="empty"):
        cllr([], [0.0])


def _two_systems(rng, n, mu=(1.0, 0.6)):
    """Independent systems with unit-variance Gaussian scores at ±mu_i: the true LLR of
    both together is 2 mu_1 s_1 + 2 mu_2 s_2."""
    tar = np.column_stack([rng.normal(m, 1.0, n) for m in mu])
    non = np.column_stack([rng.normal(-m, 1.0, 4 * n) for m in mu])
    return tar, non


def test_fusion_recovers_a_known_linear_combination_and_lowers_cllr():
    from speakergmm.backend.calibration import Fusion
    from speakergmm.eval.metrics import cllr

    rng = np.random.default_rng(0)
    tar, non = _two_systems(rng, 20000)
    fusion = Fusion().fit(tar, non, prior=0.5, systems=["a", "b"])
    np.testing.assert_allclose(fusion.weights_, [2.0, 1.2], atol=0.05)
    assert abs(fusion.offset_) < 0.05
    held_tar, held_non = _two_systems(np.random.default_rng(1), 5000)
    fused = cllr(fusion.transform(held_tar), fusion.transform(held_non))
    singles = [cllr(held_tar[:, i], held_non[:, i]) for i in range(2)]
    assert fused < min(singles) - 0.05, (fused, singles)
    # one system: the fusion is the calibration
    cal = Calibration().fit(tar[:, 0], non[:, 0], prior=0.3)
    one = Fusion().fit(tar[:, :1], non[:, :1], prior=0.3)
    assert one.weights_[0] == pytest.approx(cal.scale_, rel=1e-9)
    assert one.offset_ == pytest.approx(cal.offset_, rel=1e-9, abs=1e-12)


def test_fusion_file_round_trip_and_refusals(tmp_path):
    from speakergmm.backend.calibration import Fusion, load_score_map

    tar, non = _two_systems(np.random.default_rng(2), 500)
    fusion = Fusion().fit(tar, non, systems=["gmm", "plda"])
    fusion.save(tmp_path / "f.json")
    back = load_score_map(tmp_path / "f.json")
    assert isinstance(back, Fusion) and back.systems_ == ["gmm", "plda"]
    np.testing.assert_array_equal(back.transform(tar), fusion.transform(tar))
    with pytest.raises(ValueError, match="scores of 1 systems; the fusion was trained on 2"):
        back.transform(tar[:, :1])
    Calibration().fit(tar[:, 0], non[:, 0]).save(tmp_path / "c.json")
    assert isinstance(load_score_map(tmp_path / "c.json"), Calibration)
    (tmp_path / "bad.json").write_text('{"format": "speakergmm.fusion", "format_version": 1}')
    with pytest.raises(ModelError, match="bad.json: fusion file is missing"):
        Fusion.load(tmp_path / "bad.json")


def test_the_library_refuses_an_inverted_calibration_or_fusion():
    """Issue 21: the refusal lived only in the CLI; the library refuses to learn decisions
    the wrong way round, naming the source, and warns of too few trials."""
    import warnings

    from speakergmm.errors import CalibrationError, SpeakerGMMWarning

    rng = np.random.default_rng(0)
    tar, non = rng.normal(-2, 1, 50), rng.normal(2, 1, 200)
    with pytest.raises(CalibrationError, match="dev.scores: target trials score lower"):
        Calibration().fit(tar, non, source="dev.scores")
    with pytest.raises(CalibrationError, match="in every system"):
        Fusion().fit(np.c_[tar, tar], np.c_[non, non])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Calibration().fit(-tar[:5], -non[:20], source="few.scores")
    assert any(issubclass(w.category, SpeakerGMMWarning) and "few.scores" in str(w.message)
               for w in caught)
