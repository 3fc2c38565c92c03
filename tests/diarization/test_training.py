"""train_diarizer and its command (speakergmm.diarization.training)."""

import numpy as np
import pytest

from conftest import corpora_root


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """5 recordings of each of 4 speechocean762 speakers."""
    root = corpora_root() / "speechocean762"
    if not root.is_dir():
        pytest.skip("needs speechocean762 from the shared corpora")
    from speakergmm.corpora.speechocean762 import prepare_speechocean762
    from speakergmm.data.datadir import DataDir, write_data_dir

    ubm = prepare_speechocean762(root).data["ubm"]
    keep = {u: ubm.wav_scp[u] for s in sorted(ubm.spk2utt)[:4] for u in ubm.spk2utt[s][:5]}
    out = tmp_path_factory.mktemp("small") / "data"
    write_data_dir(out, DataDir(wav_scp=keep, utt2spk={u: ubm.utt2spk[u] for u in keep}))
    return out, root


def test_command_equals_the_library(small_data, tmp_path):
    from click.testing import CliRunner

    from speakergmm.cli import main
    from speakergmm.diarization import Diarizer, train_diarizer
    from speakergmm.pretrained import load_speech_detector
    from speakergmm.system import load_system

    data, root = small_data
    system, detector = load_system("wideband"), load_speech_detector("wideband")
    lib = train_diarizer(system, detector, data, audio_root=root, n_factors=10,
                         n_iterations=2, lda=3)
    result = CliRunner().invoke(main, ["train-diarization", str(data), "-o",
                                       str(tmp_path / "d.npz"), "--audio-root", str(root),
                                       "-r", "10", "-n", "2", "--lda", "3", "-q"])
    assert result.exit_code == 0, result.output
    assert "not calibrated" in result.output
    cli = Diarizer.load(tmp_path / "d.npz", system, detector)
    # the file keeps T in float16
    np.testing.assert_allclose(cli.extractor.T, lib.extractor.T.astype(np.float16), rtol=0,
                               atol=0)
    assert cli.settings() == lib.settings() and cli.calibration == (1.0, 0.0)


def test_refuses_what_it_cannot_train_on(small_data, tmp_path):
    from speakergmm.data.datadir import DataDir, read_data_dir, write_data_dir
    from speakergmm.diarization import train_diarizer
    from speakergmm.errors import DataDirError, ParameterError
    from speakergmm.pretrained import load_speech_detector
    from speakergmm.system import load_system

    data, root = small_data
    system, detector = load_system("wideband"), load_speech_detector("wideband")
    with pytest.raises(ParameterError, match="unknown diarizer setting"):
        train_diarizer(system, detector, data, audio_root=root, settings={"windw": 100})
    # refused before any recording is read: a bad setting, a system that drops frames
    with pytest.raises(ParameterError, match="hop"):
        train_diarizer(system, detector, tmp_path / "nowhere", settings={"hop": 0})
    import dataclasses
    from types import SimpleNamespace

    vad = SimpleNamespace(config=dataclasses.replace(system.config, vad="energy"))
    with pytest.raises(ParameterError, match="keep every frame"):
        train_diarizer(vad, detector, tmp_path / "nowhere")
    one = read_data_dir(data)
    first = sorted(one.utt2spk)[:5]
    write_data_dir(tmp_path / "one", DataDir(wav_scp={u: one.wav_scp[u] for u in first},
                                            utt2spk={u: one.utt2spk[u] for u in first}))
    with pytest.raises(ParameterError, match="at least two speakers"):
        train_diarizer(system, detector, tmp_path / "one", audio_root=root, n_factors=5)
    with pytest.raises(ParameterError, match="allow at most 3"):
        train_diarizer(system, detector, data, audio_root=root, n_factors=10, lda=5)
    with pytest.raises(DataDirError, match="no rttm"):
        train_diarizer(system, detector, data, audio_root=root, n_factors=10,
                       n_iterations=1, lda=3, conversations=[tmp_path / "one"])
