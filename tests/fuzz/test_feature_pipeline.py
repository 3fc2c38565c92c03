"""Fuzzing the feature pipeline (issue 14): any signal (finite or not, of any length and
amplitude, at any rate the toolkit accepts) gives finite features of the configured shape,
or the documented error naming the utterance; never NaN, never another exception.
``python -m pytest tests/fuzz --hypothesis-profile=long`` runs it longer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from speakergmm.errors import SpeakerGMMError
from speakergmm.frontend.config import PRESETS, FeatureConfig
from speakergmm.frontend.features import extract_features

pytestmark = pytest.mark.filterwarnings("ignore")

SAMPLES = st.one_of(
    st.floats(width=32, allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1.0, -1.0, 1e-30, 1e30, 3e38, 1e-45]),
)


@st.composite
def signals(draw):
    """A signal built from a few pieces (silence, noise, tones, constants, arbitrary
    samples) at a scale from 1e-30 to 1e30, so that lengths and levels vary a lot."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    pieces = []
    for _ in range(draw(st.integers(1, 4))):
        n = draw(st.sampled_from([0, 1, 2, 100, 399, 400, 401, 1600, 8000, 16000]))
        kind = draw(st.sampled_from(["zeros", "noise", "tone", "constant", "samples"]))
        if kind == "zeros":
            piece = np.zeros(n)
        elif kind == "noise":
            piece = rng.standard_normal(n)
        elif kind == "tone":
            piece = np.sin(2 * np.pi * draw(st.floats(1, 8000)) * np.arange(n) / 16000)
        elif kind == "constant":
            piece = np.full(n, draw(st.floats(-1, 1)))
        else:
            piece = draw(arrays(np.float32, st.integers(0, 64), elements=SAMPLES))
        pieces.append(piece * draw(st.sampled_from([1e-30, 1e-6, 1e-3, 0.1, 1.0, 10.0, 1e30])))
    with np.errstate(all="ignore"):
        return np.concatenate(pieces).astype(np.float32)


@given(y=signals(), sr=st.sampled_from([8000, 16000, 44100]),
       preset=st.sampled_from(sorted(PRESETS)),
       norm=st.sampled_from(["cmvn", "cmn", "sliding_cmvn", "warp", "none"]),
       vad=st.sampled_from(["energy", "none"]))
def test_any_signal_gives_finite_features_or_a_named_error(y, sr, preset, norm, vad):
    config = FeatureConfig.preset(preset, norm=norm, vad=vad)
    try:
        feats, speech = extract_features(y=y, sr=sr, config=config, name="utt-7",
                                         return_vad=True)
    except SpeakerGMMError as exc:
        assert "utt-7" in str(exc) and "\n" not in str(exc), str(exc)
        return
    assert feats.dtype == np.float32 and feats.flags.c_contiguous
    assert feats.ndim == 2 and feats.shape[1] == config.dim
    assert feats.shape[0] == int(speech.sum()) >= config.min_speech_frames
    assert np.isfinite(feats).all()
