import warnings

import numpy as np
import pytest

from speakergmm.data.rttm import Turn
from speakergmm.errors import ParameterError
from speakergmm.eval.diarization import diarization_errors, evaluate_diarization


def test_hand_worked_example():
    """0-10 s: A speaks 0-6, B 4-10 (2 s overlap). The hypothesis: X 0-5, Y 5-10."""
    ref = [Turn(0, 6, "A"), Turn(4, 10, "B")]
    hyp = [Turn(0, 5, "X"), Turn(5, 10, "Y")]
    e = diarization_errors(ref, hyp, collar=0.0)
    # scored speech 12 s; 4-6 s: 2 reference, 1 hypothesis speaker -> 2 s missed;
    # 4-5: X = A correct; 5-6: Y = B correct, A missed; nothing confused
    assert (e.scored, e.missed, e.false_alarm, e.confusion) == (12.0, 2.0, 0.0, 0.0)
    assert e.der == pytest.approx(2 / 12)
    # JER: A~X: inter 5, union 6 -> 1/6; B~Y: inter 5, union 6 -> 1/6
    assert e.jer == pytest.approx(1 / 6)
    # without the overlap (4-6 s) left: A 0-4 = X, B 6-10 = Y, no error at all
    skip = diarization_errors(ref, hyp, collar=0.0, skip_overlap=True)
    assert (skip.scored, skip.der, skip.jer) == (8.0, 0.0, 0.0)


def test_collar_forgives_boundaries():
    ref = [Turn(0, 5, "A"), Turn(5, 10, "B")]
    hyp = [Turn(0, 5.2, "X"), Turn(5.2, 10, "Y")]
    assert diarization_errors(ref, hyp, collar=0.0).confusion == pytest.approx(0.2)
    assert diarization_errors(ref, hyp, collar=0.25).der == 0.0


def test_speaker_names_do_not_matter_and_extra_speakers_are_errors():
    ref = [Turn(0, 4, "A"), Turn(4, 8, "B")]
    same = diarization_errors(ref, [Turn(0, 4, "2"), Turn(4, 8, "1")], collar=0.0)
    assert same.der == 0.0 and same.jer == 0.0
    one = diarization_errors(ref, [Turn(0, 8, "1")], collar=0.0)
    assert one.confusion == 4.0 and one.jer == pytest.approx(0.5 * (0.5 + 1.0))
    silent = diarization_errors(ref, [], collar=0.0)
    assert silent.missed == 8.0 and silent.der == 1.0 and silent.jer == 1.0


def _annotation(turns):
    from pyannote.core import Annotation, Segment

    from speakergmm.eval.diarization import _by_speaker

    a = Annotation()
    for speaker, spans in _by_speaker(turns).items():
        for start, end in spans:
            a[Segment(start, end), len(a)] = speaker
    return a


def _random_turns(rng, speakers, seconds, n):
    out = []
    for _ in range(n):
        start = round(float(rng.uniform(0, seconds)), 2)
        end = round(min(seconds, start + float(rng.uniform(0.2, 5))), 2)
        out.append(Turn(start, end, f"s{rng.integers(speakers)}"))
    return out


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("collar, skip_overlap", [(0.0, False), (0.25, False), (0.25, True),
                                                  (0.0, True)])
def test_equals_pyannote_metrics(seed, collar, skip_overlap):
    """Random reference / hypothesis pairs with overlapping speech; pyannote's collar is
    the whole width (twice md-eval's, ours)."""
    import pyannote.metrics.diarization as pm  # a test dependency: fails if missing
    rng = np.random.default_rng(seed)
    ref = _random_turns(rng, int(rng.integers(1, 5)), 60, int(rng.integers(2, 25)))
    hyp = _random_turns(rng, int(rng.integers(1, 6)), 60, int(rng.integers(0, 25)))
    ours = diarization_errors(ref, hyp, collar=collar, skip_overlap=skip_overlap)
    if ours.jer_speakers == 0:
        pytest.skip("no reference speech outside the collars: JER undefined")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyannote: 'uem' approximated by the extents
        kw = dict(collar=2 * collar, skip_overlap=skip_overlap)
        der = pm.DiarizationErrorRate(**kw)(_annotation(ref), _annotation(hyp), detailed=True)
        jer = pm.JaccardErrorRate(**kw)(_annotation(ref), _annotation(hyp))
    assert ours.der == pytest.approx(der["diarization error rate"], abs=1e-9)
    assert ours.scored == pytest.approx(der["total"], abs=1e-9)
    assert ours.missed == pytest.approx(der["missed detection"], abs=1e-9)
    assert ours.false_alarm == pytest.approx(der["false alarm"], abs=1e-9)
    assert ours.confusion == pytest.approx(der["confusion"], abs=1e-9)
    assert ours.jer == pytest.approx(jer, abs=1e-9)


def test_pooled_equals_pyannote_accumulated():
    import pyannote.metrics.diarization as pm  # a test dependency: fails if missing
    rng = np.random.default_rng(99)
    refs = {f"r{i}": _random_turns(rng, 3, 40, 12) for i in range(5)}
    hyps = {f"r{i}": _random_turns(rng, 3, 40, 12) for i in range(5)}
    per, pooled = evaluate_diarization(refs, hyps, collar=0.25, skip_overlap=True)
    der = pm.DiarizationErrorRate(collar=0.5, skip_overlap=True)
    jer = pm.JaccardErrorRate(collar=0.5, skip_overlap=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for r in refs:
            der(_annotation(refs[r]), _annotation(hyps[r]))
            jer(_annotation(refs[r]), _annotation(hyps[r]))
    assert pooled.der == pytest.approx(abs(der), abs=1e-9)
    assert pooled.jer == pytest.approx(abs(jer), abs=1e-9)
    assert pooled.recordings == 5 and list(per) == sorted(refs)


def test_missing_and_extra_recordings():
    ref = {"a": [Turn(0, 2, "A")], "b": [Turn(0, 2, "B")]}
    with pytest.warns(UserWarning, match="not scored: c"):
        per, pooled = evaluate_diarization(ref, {"a": [Turn(0, 2, "x")],
                                                 "c": [Turn(0, 1, "y")]})
    assert per["a"].der == 0.0 and per["b"].der == 1.0 and pooled.der == 0.5
    with pytest.raises(ParameterError, match="no recording"):
        evaluate_diarization({}, {})
    with pytest.raises(ParameterError, match="collar"):
        diarization_errors([], [], collar=-1.0)


def test_evaluate_diarization_command(tmp_path):
    """The CLI's figures are the library's; the report has its four scoring conditions,
    a plot and a page."""
    import json

    from click.testing import CliRunner

    from speakergmm.cli import main
    from speakergmm.data.rttm import write_rttm

    rng = np.random.default_rng(5)
    refs = {f"rec{i}": _random_turns(rng, 3, 30, 8) for i in range(3)}
    hyps = {f"rec{i}": _random_turns(rng, 2, 30, 8) for i in range(3)}
    write_rttm(tmp_path / "ref.rttm", refs)
    write_rttm(tmp_path / "hyp.rttm", hyps)
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["evaluate-diarization", "-r", str(tmp_path / "ref.rttm"),
                                       "-s", str(tmp_path / "hyp.rttm"), "-o", str(out),
                                       "--skip-overlap"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    _, pooled = evaluate_diarization(refs, hyps, collar=0.25, skip_overlap=True)
    assert report["pooled"]["der"] == pytest.approx(pooled.der)
    assert len(report["conditions"]) == 4 and f"DER {100 * pooled.der:.2f}%" in result.output
    assert (out / "der.png").stat().st_size > 1000
    assert "<img" in (out / "report.html").read_text()
    twice = CliRunner().invoke(main, ["evaluate-diarization", "-r", str(tmp_path / "ref.rttm"),
                                      "-r", str(tmp_path / "ref.rttm"), "-s",
                                      str(tmp_path / "hyp.rttm"), "-o", str(tmp_path / "r2")])
    assert twice.exit_code == 2 and "in another of the files" in twice.output


def test_by_name_scores_names_as_claims():
    """The same turns under swapped names: the optimal mapping forgives it, by name not."""
    from speakergmm.data.rttm import Turn
    from speakergmm.eval.diarization import diarization_errors

    ref = [Turn(0, 10, "a"), Turn(10, 20, "b")]
    swapped = [Turn(0, 10, "b"), Turn(10, 20, "a")]
    assert diarization_errors(ref, swapped, collar=0).der == 0
    named = diarization_errors(ref, swapped, collar=0, by_name=True)
    assert named.confusion == 20 and named.attributed == 0
    half = diarization_errors(ref, [Turn(0, 10, "a"), Turn(10, 20, "unknown-spk1")],
                              collar=0, by_name=True)
    assert half.attributed == 0.5 and half.confusion == 10
    assert diarization_errors(ref, ref, collar=0, by_name=True).attributed == 1.0
