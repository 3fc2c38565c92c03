"""Quality-aware calibration (backend/qmf.py)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speakergmm.backend.calibration import Calibration
from speakergmm.backend.qmf import MEASURES, QualityCalibration, deficits
from speakergmm.errors import ModelError, ParameterError
from speakergmm.eval.metrics import cllr


def test_a_clean_long_full_band_recording_has_no_deficit():
    d = deficits(snr_db=[100.0, 30.0, 25.0], seconds=[10.0, 4.0, 60.0],
                 upper_band_db=[-18.0, None, -30.0])
    np.testing.assert_array_equal(d, 0.0)
    # 8 kHz audio measures no upper band: no deficit for it
    np.testing.assert_array_equal(deficits(snr_db=40, seconds=5.0), [[0.0, 0.0, 0.0]])


@settings(max_examples=50, deadline=None)
@given(st.floats(-30, 120), st.floats(0.01, 100), st.floats(-100, 0))
def test_deficits_grow_as_a_recording_gets_worse_and_stay_bounded(snr, seconds, band):
    d = deficits(snr_db=snr, seconds=seconds, upper_band_db=band)[0]
    worse = deficits(snr_db=snr - 5, seconds=seconds / 2, upper_band_db=band - 10)[0]
    assert np.all(worse >= d) and np.all(d >= 0)
    assert np.all(d <= [4.5, np.log2(40), 7.0])


def test_silence_counts_as_the_worst_snr():
    assert deficits(snr_db=float("nan"), seconds=4.0)[0, 0] == 4.5


def _cal() -> Calibration:
    """A calibration of the clean tests' scores below (llr = 2 s - 1: its LLRs are
    N(+-6, 3) per class)."""
    cal = Calibration()
    cal.scale_, cal.offset_, cal.prior_ = 2.0, -1.0, 0.5
    return cal


def _trials(rng, n_tests, deficit):
    """Scores of trials that :func:`_cal` calibrates on clean tests: a test with an SNR
    deficit has its target scores pulled down towards the non-targets (what noise does)."""
    llr, target, D = [], [], []
    for snr_deficit in deficit:
        t = rng.normal(6.0 - 4.0 * snr_deficit, 3.0, n_tests)
        n = rng.normal(-6.0 + snr_deficit, 3.0, 5 * n_tests)
        llr += [(t + 1.0) / 2.0, (n + 1.0) / 2.0]
        target += [np.ones(len(t), bool), np.zeros(len(n), bool)]
        D += [np.tile([snr_deficit, 0.0, 0.0], (len(t) + len(n), 1))]
    return np.concatenate(llr), np.concatenate(target), np.concatenate(D)


def test_fit_makes_noisy_tests_decide_right_and_leaves_clean_ones_alone():
    rng = np.random.default_rng(0)
    scores, target, D = _trials(rng, 400, [0.0, 1.0, 2.0])
    qmf = QualityCalibration().fit(scores, target, D, calibration=_cal())
    assert qmf.scale_weights_[0] < 0  # a noisy test: a smaller |LLR|
    # the weights of measures the trials never vary stay at 0
    np.testing.assert_allclose(qmf.scale_weights_[1:], 0, atol=1e-6)
    np.testing.assert_allclose(qmf.offset_weights_[1:], 0, atol=1e-6)
    # new trials of the same kinds
    scores, target, D = _trials(np.random.default_rng(1), 400, [0.0, 1.5, 2.0])
    llr = _cal().transform(scores)
    adjusted = _cal().transform(qmf.transform(scores, D))
    clean = D[:, 0] == 0
    np.testing.assert_array_equal(adjusted[clean], llr[clean])
    noisy = D[:, 0] == 1.5  # (between the deficits it learnt on; its EER is 23%)
    before = np.mean(llr[noisy & target] < 0)
    after = np.mean(adjusted[noisy & target] < 0)
    assert before > 0.45 and after < 0.3  # half the true speakers missed; then a quarter
    assert np.mean(adjusted[noisy & ~target] >= 0) < 0.3
    assert cllr(adjusted[noisy & target], adjusted[noisy & ~target]) < \
        cllr(llr[noisy & target], llr[noisy & ~target])


def test_one_test_against_many_models():
    rng = np.random.default_rng(2)
    qmf = QualityCalibration().fit(*_trials(rng, 100, [0.0, 1.0]), calibration=_cal())
    llr = rng.normal(size=7)
    one = qmf.transform(llr, deficits(snr_db=12.0, seconds=2.0))
    each = qmf.transform(llr, np.tile(deficits(snr_db=12.0, seconds=2.0), (7, 1)))
    np.testing.assert_allclose(one, each, rtol=0, atol=1e-12)
    assert one.shape == (7,)


def test_round_trip_and_damage():
    qmf = QualityCalibration().fit(*_trials(np.random.default_rng(3), 100, [0.0, 1.0]),
                                   calibration=_cal())
    back = QualityCalibration.from_dict(qmf.to_dict())
    D = deficits(snr_db=[5, 30], seconds=[1, 8], upper_band_db=[-60, -18])
    np.testing.assert_array_equal(back.transform([1.0, -2.0], D), qmf.transform([1.0, -2.0], D))
    assert back.prior_ == 0.5 and back.n_target_ == 200 and back.n_nontarget_ == 1000
    doc = qmf.to_dict()
    for broken in ({**doc, "measures": list(reversed(MEASURES))},
                   {**doc, "reference": {**doc["reference"], "seconds": 2.0}},
                   {**doc, "scale_weights": [1.0, float("nan"), 0.0]},
                   {**doc, "offset_weights": [1.0]},
                   {k: v for k, v in doc.items() if k != "prior"}, []):
        with pytest.raises(ModelError):
            QualityCalibration.from_dict(broken)


def test_bad_input_is_refused():
    fit = QualityCalibration().fit
    with pytest.raises(ParameterError, match="shapes"):
        fit([1.0, 2.0], [True, False], np.zeros((2, 2)), calibration=_cal())
    with pytest.raises(ParameterError, match="target and non-target"):
        fit([1.0, 2.0], [True, True], np.zeros((2, 3)), calibration=_cal())
    with pytest.raises(ParameterError, match="finite"):
        fit([1.0, np.nan], [True, False], np.zeros((2, 3)), calibration=_cal())
    with pytest.raises(ParameterError, match="not fitted"):
        fit([1.0, 2.0], [True, False], np.zeros((2, 3)), calibration=Calibration())
