"""The public API (``speakergmm/__init__.py``): what ``__all__`` names exists, is documented,
and loads only when first used."""

import subprocess
import sys

import speakergmm


def test_every_public_name_resolves_and_has_a_docstring():
    for name in speakergmm.__all__:
        value = getattr(speakergmm, name)
        if name != "__version__":
            assert (getattr(value, "__doc__", None) or "").strip(), name


def test_the_readme_names_are_public():
    """Issue 21: what a user of the README needs, from the package itself."""
    for name in ("DiagGMM", "train_ubm", "EigenChannel", "IVectorExtractor", "VectorBackend",
                 "PLDA", "Calibration", "Fusion", "System", "Recognizer", "read_features",
                 "extract_stats", "read_stats", "read_vectors", "rocch_eer", "min_dcf",
                 "cllr", "SpeakerGMMError", "ParameterError"):
        assert name in speakergmm.__all__, name


def test_bad_parameters_are_speakergmm_errors_and_still_value_errors():
    """One error policy: bad input is a SpeakerGMMError whichever module raises it; a
    ParameterError is also a ValueError and a TypeError, as numpy and scikit-learn raise."""
    from speakergmm.backend.calibration import Calibration

    for call in (lambda: Calibration().fit([1.0], [0.0], prior=2.0),
                 lambda: speakergmm.get_executor(0),
                 lambda: speakergmm.get_executor("two")):
        try:
            call()
        except speakergmm.ParameterError as exc:
            assert isinstance(exc, (speakergmm.SpeakerGMMError, ValueError, TypeError))
        else:
            raise AssertionError("not refused")


def test_import_loads_nothing_heavy():
    code = "import sys, speakergmm; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
