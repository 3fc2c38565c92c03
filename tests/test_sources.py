"""The input layer (speakergmm/sources.py): what each input records is checked against the
model it is used with, and nothing falls back to a default."""

import pytest

from speakergmm.errors import ArchiveError, ModelError
from speakergmm.frontend.archive import extract_archive
from speakergmm.frontend.config import FeatureConfig
from speakergmm.sources import (
    feature_config_of,
    open_features,
    open_training_features,
)

from conftest import make_data_dir, random_gmm


def test_a_ubm_without_a_feature_config_gets_no_default(tmp_path, rng):
    """A data directory was extracted with the default config for a UBM that recorded none
    (``or {}``); now refused, as are archives that cannot be checked against it."""
    data = make_data_dir(tmp_path, n_spk=1, n_utt=2)
    bare = random_gmm(rng, k=4, d=FeatureConfig().dim)
    with pytest.raises(ModelError, match="records no feature config"):
        feature_config_of(bare)
    with pytest.raises(ModelError, match="records no feature config"):
        open_features(data, bare, audio_root=tmp_path, workdir=tmp_path / "work")
    assert not (tmp_path / "work").exists()
    extract_archive(data, tmp_path / "feats", audio_root=tmp_path)
    with pytest.raises(ModelError, match="records no feature config"):
        open_features(tmp_path / "feats", bare)


def test_features_are_opened_for_the_ubms_config_only(tmp_path, rng):
    data = make_data_dir(tmp_path, n_spk=2, n_utt=2)
    config = FeatureConfig()
    ubm = random_gmm(rng, k=4, d=config.dim, config=config)
    opened = open_features(data, ubm, audio_root=tmp_path, workdir=tmp_path / "work")
    assert sorted(opened) == ["spk0-u0", "spk0-u1", "spk1-u0", "spk1-u1"]
    assert opened.config == config
    extract_archive(data, tmp_path / "phone", audio_root=tmp_path,
                    config=FeatureConfig.preset("wideband", norm="warp"))
    with pytest.raises(ArchiveError, match="another feature config"):
        open_features(tmp_path / "phone", ubm)
    with pytest.raises(ArchiveError, match="another feature config|one config"):
        open_training_features([tmp_path / "work" / "data", tmp_path / "phone"])
    with pytest.raises(ArchiveError, match="statistics archive|data directory|frames"):
        open_features(data, ubm, stats_ok=False)  # a data directory without a workdir
