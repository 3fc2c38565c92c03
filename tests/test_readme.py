"""The README's Python examples of the product path and of a Dask client run as written
(issue 25), on files made here in their place."""

from __future__ import annotations

import re

import pytest

from conftest import REPO, SR, make_data_dir, voice, write_audio


def _python_blocks(containing: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    found = [b for b in blocks if containing in b]
    assert found, f"no Python example in README.md uses {containing}"
    return found


def test_the_product_path_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, (speaker, take) in {"alice1.wav": (0, 0), "alice2.wav": (0, 1),
                                  "test.wav": (0, 2), "who.wav": (0, 3)}.items():
        write_audio(tmp_path / name, voice(speaker, take, seconds=4.0), SR)
    for block in _python_blocks("Recognizer("):
        namespace: dict = {}
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102
        assert namespace["v"].llr is not None and namespace["who"].ranking[0][0] == "alice"
    assert (tmp_path / "speakers.db").is_file()


def test_the_dask_client_example_runs(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    from speakergmm.frontend.archive import extract_archive

    data = make_data_dir(tmp_path, n_spk=4, n_utt=4)
    extract_archive(data, tmp_path / "feats" / "train", audio_root=tmp_path)
    monkeypatch.chdir(tmp_path)
    for block in _python_blocks("Client("):
        namespace: dict = {}
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102
        assert namespace["ubm"].n_components == 64
        assert len(namespace["stats"]) == 16


def test_the_feature_and_ubm_examples_give_a_ubm_that_a_system_accepts(tmp_path, monkeypatch):
    """Issue 21: the README's feature and UBM examples run as written, and the UBM they
    train records its feature config (the library records it, not the CLI): a System takes
    it, and features of another config are refused (they were silently accepted)."""
    import speakergmm
    from speakergmm.data import DataDir, write_data_dir
    from speakergmm.frontend.archive import extract_archive
    from speakergmm.frontend.config import FeatureConfig

    def archive(name: str, utts: list[str], seconds: float, config=None):
        wav = {}
        for i, utt in enumerate(utts):
            write_audio(tmp_path / "audio" / f"{utt}.wav", voice(i % 4, i, seconds), SR)
            wav[utt] = f"audio/{utt}.wav"
        write_data_dir(tmp_path / "data" / name,
                       DataDir(wav_scp=wav, utt2spk={u: f"spk{i % 4}"
                                                    for i, u in enumerate(utts)}))
        kw = {} if config is None else {"config": config}
        extract_archive(tmp_path / "data" / name, tmp_path / "feats" / name,
                        audio_root=tmp_path, **kw)

    # K = 512 needs 5,120 frames: 8 recordings of 10 s, one named as in the README
    archive("train", ["000010011", *(f"t{i}" for i in range(7))], 10.0)
    archive("enroll", ["utt1", "utt2"], 3.0)
    archive("phone", ["p1", "p2"], 3.0, config=FeatureConfig.preset("telephone"))
    write_audio(tmp_path / "a.flac", voice(0, 9, 2.0), SR)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in _python_blocks("read_features(\"feats/train\")"):
        if "Client(" in block:
            continue  # (the Dask example, run above)
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102
    ubm = namespace["ubm"]
    assert ubm.n_components == 512 and len(namespace["archive"]) == 2
    assert ubm.metadata["feature_config"] == FeatureConfig().to_dict()
    speakergmm.System(ubm)  # refused before: "the UBM's metadata holds no feature config"
    from speakergmm.sources import open_features

    with pytest.raises(speakergmm.ArchiveError, match="another feature config"):
        open_features(tmp_path / "feats" / "phone", ubm)


def test_the_service_examples_call_routes_and_fields_that_exist(tmp_path):
    """Every ``curl`` line of the README's serving section names a route of the API with
    its method, and form fields the route takes."""
    pytest.importorskip("fastapi")
    import shlex

    from speakergmm.serve import ServiceConfig, create_app

    schema = create_app(ServiceConfig(tmp_path / "s.db")).openapi()
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Serving"):text.index("## Corpora and recipes")]
    lines = [line.split("#")[0] for line in section.splitlines() if line.startswith("curl ")]
    assert len(lines) >= 6
    for line in lines:
        words = shlex.split(line.replace('"$T"', "T"))
        method = words[words.index("-X") + 1] if "-X" in words else (
            "POST" if "-F" in words else "GET")
        url = next(w for w in words if w.startswith("http://"))
        path = "/" + url.split("/", 3)[3]
        route = path.replace("/alice", "/{speaker}")
        assert route in schema["paths"], line
        operation = schema["paths"][route].get(method.lower())
        assert operation is not None, line
        fields = {words[i + 1].split("=")[0] for i, w in enumerate(words) if w == "-F"}
        if fields:
            ref = operation["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
            body = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
            assert fields <= set(body["properties"]), (line, sorted(body["properties"]))
