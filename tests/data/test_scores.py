"""Score files and the score validator (speakergmm.data.scores)."""

import numpy as np
import pytest

from speakergmm.data.scores import as_scores, read_scores, write_scores
from speakergmm.errors import DataDirError


def test_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.standard_normal(50)
    enroll, test = [f"m{i % 5}" for i in range(50)], [f"t{i}" for i in range(50)]
    write_scores(tmp_path / "s", enroll, test, values)
    got = read_scores(tmp_path / "s")
    assert list(got) == list(zip(enroll, test))
    np.testing.assert_allclose(list(got.values()), values, atol=5e-7)
    (tmp_path / "blank").write_text("\na b 1.5\n\n  c d -2  \n")
    assert read_scores(tmp_path / "blank") == {("a", "b"): 1.5, ("c", "d"): -2.0}


@pytest.mark.parametrize("text, message", [
    ("a b 1\nc d\n", ":2: expected '<model> <test> <score>'"),
    ("a b 1\nc d x\n", ":2: score 'x' is not a number"),
    ("a b 1\nc d nan\n", ":2: score nan is not finite"),
    ("a b 1\nc d inf\n", ":2: score inf is not finite"),
    ("a b 1\na b 2\n", ":2: trial a b scored twice"),
    ("a b 1 c\nd e\n", ":1: expected"),  # token count right, lines wrong
])
def test_bad_lines_are_named(tmp_path, text, message):
    (tmp_path / "s").write_text(text)
    with pytest.raises(DataDirError, match=message):
        read_scores(tmp_path / "s")


def test_as_scores():
    assert as_scores([1, 2]).dtype == np.float64
    assert as_scores([[1, 2]], ndim=None).shape == (2,)
    with pytest.raises(ValueError, match="must have shape"):
        as_scores([[1.0]], "x", ndim=1)
    with pytest.raises(ValueError, match="x holds 1 non-finite"):
        as_scores([1.0, np.inf], "x")
    assert as_scores([np.inf], allow_inf=True)[0] == np.inf
    with pytest.raises(ValueError, match="holds 1 NaN"):
        as_scores([np.nan], allow_inf=True)
    with pytest.raises(ValueError, match="is empty"):
        as_scores([], "x", allow_empty=False)
