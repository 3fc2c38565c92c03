"""Model files (issue 14): every field of the header, every array (missing, dtype, shape,
values) and the container itself, for the UBM and for the eigenchannel, i-vector extractor
and vector back-end files: refused with one line naming the file, exit 2, nothing written,
never unpickled."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from speakergmm.cli import main

from conftest import refused


def _contents(path):
    with np.load(path, allow_pickle=False) as npz:
        contents = {k: npz[k] for k in npz.files}
    return contents, json.loads(str(contents.pop("metadata")))


def _write(dst, arrays, header):
    np.savez(dst, **arrays, metadata=np.array(json.dumps(header)))
    return dst


HEADER_EDITS = {
    "format missing": (lambda h: {k: v for k, v in h.items() if k != "format"}, "format"),
    "format of another file": (lambda h: {**h, "format": "speakergmm.ivector"}, "format"),
    "format a number": (lambda h: {**h, "format": 7}, "format"),
    "version missing": (lambda h: {k: v for k, v in h.items() if k != "format_version"},
                        "version"),
    "version from the future": (lambda h: {**h, "format_version": 99}, "version"),
    "version a string": (lambda h: {**h, "format_version": "1"}, "version"),
    "metadata missing": (lambda h: {k: v for k, v in h.items() if k != "metadata"},
                         "metadata"),
    "metadata a string": (lambda h: {**h, "metadata": "x"}, "metadata"),
    "header a list": (lambda h: [h], "header"),
}


def _ubm_array_edits(k, d):
    return {
        "weights missing": ({"weights": None}, "weights"),
        "means missing": ({"means": None}, "means"),
        "variances missing": ({"variances": None}, "variances"),
        "weights of ints": ({"weights": np.ones(k, np.int64)}, "weights"),
        "means complex": ({"means": np.zeros((k, d), np.complex128)}, "means"),
        "means as text": ({"means": np.full((k, d), "a")}, "means"),
        "weights 2-D": ({"weights": np.full((k, 1), 1 / k)}, "weights"),
        "means of another K": ({"means": np.zeros((k + 1, d))}, "means"),
        "variances of another D": ({"variances": np.ones((k, d + 1))}, "variances"),
        "means empty": ({"means": np.zeros((k, 0)), "variances": np.ones((k, 0))}, "means"),
        "weights negative": ({"weights": np.r_[-0.5, np.full(k - 1, 1.5 / (k - 1))]},
                             "weights"),
        "weights not summing to 1": ({"weights": np.full(k, 0.5)}, "weights"),
        "weights NaN": ({"weights": np.full(k, np.nan)}, "weights"),
        "means infinite": ({"means": np.full((k, d), np.inf)}, "means"),
        "variances zero": ({"variances": np.zeros((k, d))}, "variances"),
        "variances negative": ({"variances": -np.ones((k, d))}, "variances"),
    }


@pytest.mark.parametrize("case", sorted(HEADER_EDITS))
def test_ubm_header_fields(work, tmp_path, case):
    edit, says = HEADER_EDITS[case]
    arrays, header = _contents(work / "ubm.npz")
    bad = _write(tmp_path / "bad.npz", arrays, edit(header))
    for args in (["info", bad], ["stats", work / "feats", "--ubm", bad, "-o", tmp_path / "st"]):
        refused(args, str(bad), roots=[tmp_path, work])


@pytest.mark.parametrize("case", sorted(_ubm_array_edits(4, 60)))
def test_ubm_arrays(work, tmp_path, case):
    arrays, header = _contents(work / "ubm.npz")
    k, d = arrays["means"].shape
    edits, says = _ubm_array_edits(k, d)[case]
    for name, value in edits.items():
        if value is None:
            arrays.pop(name)
        else:
            arrays[name] = value
    bad = _write(tmp_path / "bad.npz", arrays, header)
    for args in (["info", bad],
                 ["score", work / "trials", "--enroll", work / "feats", "--test", work / "feats",
                  "--ubm", bad, "-o", tmp_path / "scores"],
                 ["enroll", "spk0", work / "audio" / "spk0-u0.wav", "--ubm", bad, "--store",
                  tmp_path / "s.db"]):
        refused(args, str(bad), says, roots=[tmp_path, work])


def test_pickled_arrays_are_never_loaded(work, tmp_path):
    arrays, header = _contents(work / "ubm.npz")
    arrays["means"] = np.array([{"__reduce__": "boom"}], dtype=object)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays, metadata=np.array(json.dumps(header)))  # (pickles the object)
    refused(["info", bad], str(bad), "pickled", roots=[tmp_path, work])


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9, 0.999])
def test_a_cut_model_file(work, tmp_path, cut):
    data = (work / "ubm.npz").read_bytes()
    bad = tmp_path / "cut.npz"
    bad.write_bytes(data[: int(len(data) * cut)])
    refused(["info", bad], str(bad), roots=[tmp_path, work])


@pytest.mark.parametrize("content", [b"", b"PK", b"\x93NUMPY" + bytes(100), b"{}",
                                     b"\x80\x04\x95" + bytes(50)])
def test_not_a_model_file(work, tmp_path, content):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(content)
    refused(["info", bad], str(bad), roots=[tmp_path, work])


@pytest.fixture(scope="module")
def subspaces(work, tmp_path_factory):
    """An eigenchannel, an i-vector extractor and a vector back-end of the work UBM."""
    root = tmp_path_factory.mktemp("subspaces")
    for args in (["train-channel", work / "feats", "--ubm", work / "ubm.npz", "-r", "2", "-n",
                  "2", "-o", root / "channel.npz"],
                 ["train-ivector", work / "feats", "--ubm", work / "ubm.npz", "-r", "3", "-n",
                  "2", "-o", root / "extractor.npz"],
                 ["extract-ivectors", work / "feats", "--ubm", work / "ubm.npz", "--extractor",
                  root / "extractor.npz", "-o", root / "vectors", "-q"],
                 ["train-plda", root / "vectors", "--lda", "2", "-o", root / "plda.npz"]):
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 0, result.output
    return root


def _uses(work, root, kind, bad, out):
    trials = work / "trials"
    return {
        "channel": [["info", bad],
                    ["stats", work / "feats", "--ubm", work / "ubm.npz", "--channel", bad,
                     "-o", out / "st"]],
        "extractor": [["info", bad],
                      ["extract-ivectors", work / "feats", "--ubm", work / "ubm.npz",
                       "--extractor", bad, "-o", out / "iv", "-q"]],
        "plda": [["score", trials, "--backend", "plda", "--plda", bad, "--enroll",
                  root / "vectors", "--test", root / "vectors", "-o", out / "sc"]],
    }[kind]


ARRAY = {"channel": "U", "extractor": "T", "plda": "plda.within"}


@pytest.mark.parametrize("kind", sorted(ARRAY))
@pytest.mark.parametrize("case", ["format of another file", "version from the future",
                                  "metadata a string", "array missing", "array NaN",
                                  "array of another shape", "array as text"])
def test_subspace_and_backend_files(work, subspaces, tmp_path, kind, case):
    src = subspaces / {"channel": "channel.npz", "extractor": "extractor.npz",
                       "plda": "plda.npz"}[kind]
    arrays, header = _contents(src)
    name = ARRAY[kind]
    if case in HEADER_EDITS:
        header = HEADER_EDITS[case][0](header)
        if case == "format of another file":
            header["format"] = "speakergmm.diaggmm"
    elif case == "array missing":
        arrays.pop(name)
    elif case == "array NaN":
        arrays[name] = np.full_like(arrays[name], np.nan)
    elif case == "array of another shape":  # one axis too few
        arrays[name] = np.ascontiguousarray(arrays[name][..., 0])
    else:
        arrays[name] = np.full(arrays[name].shape, "x")
    bad = _write(tmp_path / f"bad-{kind}.npz", arrays, header)
    for args in _uses(work, subspaces, kind, bad, tmp_path):
        refused(args, str(bad), roots=[tmp_path, work, subspaces])


@pytest.mark.parametrize("kind", ["channel", "extractor"])
@pytest.mark.parametrize("case", ["float16", "all zeros", "huge values", "another UBM"])
def test_subspace_files_that_lie(work, subspaces, tmp_path, kind, case):
    """Issue 25: an eigenchannel or i-vector extractor file whose matrix is float16, all
    zeros or huge, or which names another UBM, was taken by info and extract-ivectors."""
    src = subspaces / {"channel": "channel.npz", "extractor": "extractor.npz"}[kind]
    arrays, header = _contents(src)
    name = ARRAY[kind]
    if case == "float16":
        arrays[name] = arrays[name].astype(np.float16)
    elif case == "all zeros":
        arrays[name] = np.zeros_like(arrays[name])
    elif case == "huge values":
        arrays[name] = arrays[name] * np.float32(1e30)
    else:
        header["metadata"]["ubm_fingerprint"] = "0123456789abcdef"
    bad = _write(tmp_path / f"bad-{kind}.npz", arrays, header)
    uses = _uses(work, subspaces, kind, bad, tmp_path)
    if case == "another UBM":  # info reads it without a UBM: it is what it says
        uses = uses[1:]
    for args in uses:
        refused(args, str(bad), roots=[tmp_path, work, subspaces])


@pytest.mark.parametrize("case, says", [
    ("cohort of one model", "cohort of 1 model"),
    ("top-C 1e9", "top-C 1000000000"),
    ("channel of another feature rate", "another feature config"),
])
def test_system_files_that_lie(tmp_path, case, says):
    """Issue 25: system files with a cohort of one model, a top-C of 1e9 or an eigenchannel
    of another feature config than the UBM's were taken."""
    from speakergmm.system import system_path

    arrays, header = _contents(system_path("wideband"))
    meta = header["metadata"]
    if case == "cohort of one model":
        arrays["cohort_offsets"] = arrays["cohort_offsets"][:1]
    elif case == "top-C 1e9":
        meta["c"] = 10 ** 9
    else:
        meta["channel_metadata"]["feature_config"] = {
            **meta["ubm_metadata"]["feature_config"], "sample_rate": 8000}
    bad = _write(tmp_path / "bad-system.npz", arrays, header)
    refused(["info", bad], str(bad), says, roots=[tmp_path])
    refused(["enroll", "x", bad, "--system", bad, "--store", tmp_path / "s.db"], str(bad),
            says, roots=[tmp_path])


def test_a_damaged_system_is_blamed_not_the_audio(tmp_path):
    """Issue 25: NaN cohort frames in a system file (no fingerprint to betray them) gave
    "test features are not finite", blaming the user's recording."""
    from speakergmm.system import system_path

    arrays, header = _contents(system_path("wideband"))
    header["metadata"].pop("fingerprint")
    arrays["cohort_frames"] = arrays["cohort_frames"].copy()
    arrays["cohort_frames"][3] = np.nan
    bad = _write(tmp_path / "bad-system.npz", arrays, header)
    refused(["info", bad], str(bad), "cohort_frames holds non-finite", roots=[tmp_path])


def test_extract_ivectors_of_compensated_statistics_advises_what_it_takes(work, subspaces,
                                                                          tmp_path):
    """extract-ivectors has no --channel, yet advised "give the same --channel" (issue 25)."""
    stats = tmp_path / "stats"
    made = CliRunner().invoke(main, [str(a) for a in [
        "stats", work / "feats", "--ubm", work / "ubm.npz", "--channel",
        subspaces / "channel.npz", "-q", "-o", stats]])
    assert made.exit_code == 0, made.output
    line = refused(["extract-ivectors", stats, "--ubm", work / "ubm.npz", "--extractor",
                    subspaces / "extractor.npz", "-q", "-o", tmp_path / "iv"], str(stats),
                   "without --channel", roots=[tmp_path, work, subspaces])
    assert "give the same --channel" not in line
