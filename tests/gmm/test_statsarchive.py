"""Statistics archives (speakergmm.gmm.statsarchive): round trip, resume, refusals."""

import numpy as np
import pytest

from speakergmm.errors import ArchiveError, ModelError
from speakergmm.gmm.eigenchannel import EigenChannel
from speakergmm.gmm.statsarchive import extract_stats, read_stats

from conftest import random_gmm


@pytest.fixture
def setup(rng):
    ubm = random_gmm(rng, k=8, d=3)
    feats = {f"u{i:02d}": rng.standard_normal((40 + 7 * i, 3)).astype(np.float32)
             for i in range(11)}
    return ubm, feats


@pytest.mark.parametrize("second_order", [False, True])
def test_round_trip_equals_accumulate(setup, tmp_path, second_order):
    ubm, feats = setup
    archive = extract_stats(ubm, feats, tmp_path / "st", second_order=second_order,
                            batch_size=4)
    assert sorted(archive) == sorted(feats) and len(archive) == 11
    for utt, X in feats.items():
        want, got = ubm.accumulate(X), archive[utt]
        np.testing.assert_allclose(got.n, want.n, rtol=1e-6)
        np.testing.assert_allclose(got.f, want.f, rtol=1e-6, atol=1e-6)
        assert got.frames == len(X) and got.llk == pytest.approx(want.llk, rel=1e-12)
        if second_order:
            np.testing.assert_allclose(got.s, want.s, rtol=1e-6, atol=1e-6)
        else:
            assert not got.s.any()
    reopened = read_stats(tmp_path / "st")
    assert reopened.ubm_fingerprint == ubm.fingerprint() and reopened.channel_fingerprint is None
    assert (tmp_path / "st" / "utt2num_frames").read_text().split("\n")[0] == "u00 40"


def test_groups_hold_each_models_summed_statistics(setup, tmp_path):
    """One entry per group: the float32 sum of its utterances' statistics, the same whether
    summed from the frames or from a statistics archive of the utterances; a resumed run
    with other groups is refused."""
    from speakergmm.gmm.adapt import SpeakerModel

    ubm, feats = setup
    groups = {"a": ["u00", "u03"], "b": ["u01"], "c": ["u02", "u04", "u05"]}
    archive = extract_stats(ubm, feats, tmp_path / "g", groups=groups, second_order=True,
                            batch_size=2)
    assert sorted(archive) == ["a", "b", "c"]
    for g, utts in groups.items():
        want = SpeakerModel.enroll(ubm, [feats[u] for u in utts]).stats
        got = archive[g]
        np.testing.assert_array_equal(got.f, want.f.astype(np.float32))
        np.testing.assert_array_equal(got.s, want.s.astype(np.float32))
        assert got.frames == sum(len(feats[u]) for u in utts)
    assert not (tmp_path / "g" / "utt2spk").exists()
    per_utt = extract_stats(ubm, feats, tmp_path / "u", second_order=True)
    again = extract_stats(ubm, per_utt, tmp_path / "g2", groups=groups, second_order=True)
    for g in groups:
        np.testing.assert_allclose(again[g].f, archive[g].f, rtol=1e-6, atol=1e-5)
    with pytest.raises(ArchiveError, match="made otherwise \\(groups: "):
        extract_stats(ubm, feats, tmp_path / "g", groups={"a": ["u00"]}, second_order=True)
    with pytest.raises(ArchiveError, match="'b': no features for its utterance 'zz'"):
        extract_stats(ubm, feats, tmp_path / "g3", groups={"b": ["u01", "zz"]})
    with pytest.raises(ArchiveError, match="no second-order statistics"):
        extract_stats(ubm, extract_stats(ubm, feats, tmp_path / "u1"), tmp_path / "g4",
                      groups=groups, second_order=True)


def test_parallel_gives_the_same_archive(setup, tmp_path):
    ubm, feats = setup
    a = extract_stats(ubm, feats, tmp_path / "a", batch_size=3)
    b = extract_stats(ubm, feats, tmp_path / "b", batch_size=3, executor=2)
    for utt in feats:
        np.testing.assert_array_equal(a[utt].f, b[utt].f)


def test_resume_after_a_killed_run(setup, tmp_path):
    ubm, feats = setup
    seen = []

    def die_after_two_batches(n):
        seen.append(n)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_stats(ubm, feats, tmp_path / "st", batch_size=3,
                      progress=die_after_two_batches)
    assert not (tmp_path / "st" / "stats.scp").exists()  # not an archive yet
    with pytest.raises(ArchiveError, match="incomplete"):
        read_stats(tmp_path / "st")
    redone = []
    archive = extract_stats(ubm, feats, tmp_path / "st", batch_size=3, progress=redone.append)
    assert redone[0] == 6 and sum(redone[1:]) == 5  # six were done, five computed now
    fresh = extract_stats(ubm, feats, tmp_path / "fresh", batch_size=3)
    for utt in feats:
        np.testing.assert_array_equal(archive[utt].f, fresh[utt].f)
    parts = {p.name.split(".")[0] for p in (tmp_path / "st" / "stats").iterdir()}
    assert len(parts) == 4  # nothing unreferenced left behind


def test_another_ubm_or_channel_is_refused(setup, tmp_path, rng):
    ubm, feats = setup
    archive = extract_stats(ubm, feats, tmp_path / "st")
    other = random_gmm(rng, k=8, d=3)
    with pytest.raises(ModelError, match="recompute them with this UBM"):
        archive.check(other)
    with pytest.raises(ArchiveError, match="made otherwise"):
        extract_stats(other, feats, tmp_path / "st")
    classes = {u: f"c{i % 3}" for i, u in enumerate(sorted(feats))}
    channel = EigenChannel.fit(ubm, feats, classes, n_factors=1, n_iterations=1)
    with pytest.raises(ModelError, match="give the same --channel"):
        archive.check(ubm, channel)
    compensated = extract_stats(ubm, feats, tmp_path / "ch", channel=channel)
    assert compensated.check(ubm, channel) is compensated
    np.testing.assert_allclose(compensated["u03"].f,
                               ubm.accumulate(channel.compensate(feats["u03"])).f, rtol=1e-5,
                               atol=1e-5)


def test_eigenchannel_trains_the_same_from_statistics(setup, tmp_path):
    ubm, feats = setup
    classes = {u: f"c{i % 3}" for i, u in enumerate(sorted(feats))}
    archive = extract_stats(ubm, feats, tmp_path / "st")
    a = EigenChannel.fit(ubm, feats, classes, n_factors=2, n_iterations=3)
    b = EigenChannel.fit(ubm, archive, classes, n_factors=2, n_iterations=3)
    np.testing.assert_allclose(b.U, a.U, rtol=1e-4, atol=1e-5)  # f is float32 in both


def test_damaged_archive_is_refused(setup, tmp_path):
    ubm, feats = setup
    extract_stats(ubm, feats, tmp_path / "st")
    part = next((tmp_path / "st" / "stats").glob("part-*.f.npy"))
    np.save(part, np.zeros((2, 5), np.float32))
    with pytest.raises(ArchiveError, match="damaged"):
        read_stats(tmp_path / "st")["u00"]


def test_eigenchannel_streams_the_archive_block_by_block(setup, tmp_path, monkeypatch):
    """From an archive, training reads the statistics again at every pass, a block at a
    time (memory bounded by the block), and learns what it learns from statistics held
    in memory."""
    import collections

    import speakergmm.gmm.factor as factor
    from speakergmm.gmm.statsarchive import StatsArchive

    ubm, feats = setup
    classes = {u: f"c{i % 3}" for i, u in enumerate(sorted(feats))}
    archive = extract_stats(ubm, feats, tmp_path / "st")
    monkeypatch.setattr(factor, "BLOCK", 4)  # several blocks
    monkeypatch.setattr(factor, "SPAN", 2)  # and several spans of them
    reads = collections.Counter()
    original = StatsArchive.first_order

    def counted(self, utts):
        utts = list(utts)
        assert len(utts) <= 4  # a block at a time
        reads.update(utts)
        return original(self, utts)

    monkeypatch.setattr(StatsArchive, "first_order", counted)
    a = EigenChannel.fit(ubm, feats, classes, n_factors=2, n_iterations=3)
    b = EigenChannel.fit(ubm, archive, classes, n_factors=2, n_iterations=3)
    assert len(feats) > 8 and set(reads) == set(classes)
    assert set(reads.values()) == {7 + 2 * 3}  # initialisation passes + 2 per iteration
    np.testing.assert_allclose(b.U, a.U, rtol=1e-4, atol=1e-5)
