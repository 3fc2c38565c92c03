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
