"""The executor (speakergmm.exec): ordered results, state broadcast, serial = fork = spawn."""

import multiprocessing
import os

import numpy as np
import pytest

from speakergmm.batch import enroll_models, score_trial_list
from speakergmm.data.trials import Trials
from speakergmm.exec import ProcessExecutor, SerialExecutor, get_executor
from speakergmm.frontend.archive import extract_archive, read_features
from speakergmm.gmm.ubm import train_ubm

from conftest import make_data_dir, random_gmm

METHODS = [m for m in ("fork", "spawn") if m in multiprocessing.get_all_start_methods()]


def _scaled(state, item):
    return state["scale"] * item, os.getpid()


def _with_shared(state, shared, item):
    return state + shared + item


def _fails(state, item):
    if item == 3:
        raise ValueError(f"item {item} is bad")
    return item


def test_get_executor():
    assert isinstance(get_executor(None), SerialExecutor)
    assert isinstance(get_executor(1), SerialExecutor)
    ex = get_executor(3)
    assert isinstance(ex, ProcessExecutor) and ex.n_workers == 3
    assert get_executor(ex) is ex
    with pytest.raises(ValueError):
        get_executor(0)
    with pytest.raises(TypeError):
        get_executor("2")


@pytest.mark.parametrize("method", METHODS)
def test_ordered_results_state_and_shared_values(method):
    ex = ProcessExecutor(2, start_method=method)
    items = list(range(40))
    with ex.start({"scale": 3}) as session:
        out = list(session.map(_scaled, items))
        assert [v for v, _ in out] == [3 * i for i in items]  # in item order
        assert {pid for _, pid in out} - {os.getpid()}  # ran in workers
    with ex.start(100) as session:  # a second map in one session sees the same state
        assert list(session.map(_with_shared, [1, 2], shared=10)) == [111, 112]
        assert list(session.map(_with_shared, [1, 2], shared=20)) == [121, 122]
    with SerialExecutor().start(100) as session:
        assert list(session.map(_with_shared, [1, 2], shared=10)) == [111, 112]


@pytest.mark.parametrize("method", METHODS)
def test_worker_errors_reach_the_caller(method):
    with pytest.raises(ValueError, match="item 3 is bad"):
        ProcessExecutor(2, start_method=method).map(_fails, range(6))


def test_the_error_arrives_even_when_the_pool_hangs_stopping(monkeypatch):
    """Pool.terminate() can hang for good (a worker stopped while writing a result dies
    holding the result queue's lock): the caller's error still arrives after
    TERMINATE_WAIT, and the workers are killed."""
    import multiprocessing.pool
    import threading

    import speakergmm.exec as ex

    monkeypatch.setattr(ex, "TERMINATE_WAIT", 0.5)
    hang = threading.Event()
    # the hang, inside terminate()'s own path (which it leaves for good), as in CI
    monkeypatch.setattr(multiprocessing.pool.Pool, "_help_stuff_finish",
                        staticmethod(lambda *args: hang.wait()))
    pools = []
    stop = ex._terminate
    monkeypatch.setattr(ex, "_terminate", lambda pool: pools.append(pool) or stop(pool))
    with pytest.raises(ValueError, match="item 3 is bad"):
        ProcessExecutor(2, start_method="fork").map(_fails, range(6))
    assert len(pools) == 1
    for worker in pools[0]._pool:
        worker.join(5)
        assert worker.exitcode is not None


@pytest.mark.parametrize("method", METHODS)
def test_ubm_training_is_bit_identical_on_every_executor(tmp_path, method):
    data = make_data_dir(tmp_path, n_spk=2, n_utt=3)
    extract_archive(data, tmp_path / "feats", audio_root=tmp_path)
    feats = read_features(tmp_path / "feats")
    kw = dict(n_components=4, n_iterations=2, shard_frames=100)
    serial = train_ubm(feats, **kw)
    parallel = train_ubm(feats, executor=ProcessExecutor(2, start_method=method), **kw)
    for a, b in ((serial.weights, parallel.weights), (serial.means, parallel.means),
                 (serial.variances, parallel.variances)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("method", METHODS)
def test_extraction_and_scoring_under_every_start_method(tmp_path, method, rng):
    data = make_data_dir(tmp_path, n_spk=2, n_utt=3)
    ex = ProcessExecutor(2, start_method=method)
    extract_archive(data, tmp_path / "a", audio_root=tmp_path, batch_size=2)
    extract_archive(data, tmp_path / "b", audio_root=tmp_path, batch_size=2, executor=ex)
    a, b = read_features(tmp_path / "a"), read_features(tmp_path / "b")
    assert sorted(a) == sorted(b)
    for utt in a:
        np.testing.assert_array_equal(a[utt], b[utt])
    ubm = random_gmm(rng, k=8, d=a.config.dim, config=a.config)
    enroll = {"spk0": ["spk0-u0"], "spk1": ["spk1-u0"]}
    models = enroll_models(ubm, a, enroll)
    np.testing.assert_array_equal(enroll_models(ubm, b, enroll, executor=ex)._kernel,
                                  models._kernel)
    tests = [u for u in sorted(a) if not u.endswith("u0")]
    trials = Trials(np.repeat(["spk0", "spk1"], len(tests)), np.tile(tests, 2))
    np.testing.assert_array_equal(score_trial_list(ubm, trials, models, b, executor=ex),
                                  score_trial_list(ubm, trials, models, a))


_ORPHAN_SCRIPT = """
import os, sys, time
from speakergmm.exec import ProcessExecutor

def work(state, item):
    with open(os.path.join(state, f"worker-{os.getpid()}"), "w"):
        pass
    time.sleep(60)

if __name__ == "__main__":
    with ProcessExecutor(2, start_method=sys.argv[2]).start(sys.argv[1]) as session:
        list(session.map(work, range(2)))
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_workers_die_with_a_parent_killed_outright(tmp_path, method):
    """SIGKILL to the parent (the OOM killer, kill -9) ends its workers at once, even in
    the middle of a task: an orphan would go on writing into a folder that the next run
    is resuming."""
    import subprocess
    import sys
    import time

    script = tmp_path / "orphans.py"
    script.write_text(_ORPHAN_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path), method])
    deadline = time.monotonic() + 600  # a busy machine starts workers slowly
    while len(list(tmp_path.glob("worker-*"))) < 2:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    workers = [int(p.name.split("-")[1]) for p in tmp_path.glob("worker-*")]
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 30  # well before the tasks' 60 s sleep ends
    alive = workers
    while alive and time.monotonic() < deadline:
        alive = [w for w in workers if _running(w)]
        time.sleep(0.05)
    assert not alive


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
