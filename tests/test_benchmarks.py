"""Every benchmark runs, at a tiny size, in the suite (issue 25: a benchmark backing a README
figure had stopped running unnoticed). Nothing here measures speed: each script must end
with status 0 and print its table (a few lines at least); the figures come from full-size
runs by hand."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO, corpora_root

BENCH = REPO / "tests" / "benchmarks"

# script -> arguments of a tiny run (and the corpus it needs, if any)
TINY = {
    "bench_store.py": ["--system", "wideband", "--speakers", "20", "--runs", "1"],
    "bench_em.py": ["--n", "3000", "--k", "8", "--dim", "4", "--repeats", "1",
                    "--chunk-sizes", "512", "--quiet-wait", "0"],
    "bench_scoring.py": ["--quick", "--repeats", "1", "--quiet-wait", "0"],
    "bench_long_audio.py": ["--hours", "0.02"],  # one minute
    "bench_ivector.py": ["--cases", "tiny", "--repeat", "1", "--iterations", "1",
                         "--models", "1000"],
    "bench_channel.py": ["--tiny"],
    "bench_scale.py": ["--frames", "20000", "--utterances", "40", "--k", "8", "--rank", "3",
                       "--work", "{tmp}/scale"],
    "bench_vector_trials.py": ["--models", "200", "--dim", "250", "--cohort-utts", "50",
                               "--work", "{tmp}/w"],
    "bench_trials.py": ["--models", "20", "--frames", "50", "--cohort-utts", "5",
                        "--work", "{tmp}/trials"],
    "bench_features.py": ["--repeat", "1", "--jobs", "1", "--limit", "20"],
    # the bundled system stands in for one built on the dev split
    "bench_conditions.py": ["--systems", str(REPO / "speakergmm" / "models"), "--speakers",
                            "2", "--conditions", "clean", "babble", "noise", "room", "phone",
                            "1s"],
    "bench_vad.py": ["--speakers", "3", "--conditions", "clean", "car5"],
    "bench_diarization.py": ["--count", "1", "--minutes", "0.2"],
    "bench_service.py": ["--speakers", "20", "--clients", "3", "--seconds", "3", "--workers",
                         "1", "--cli-runs", "1", "--work", "{tmp}/service"],
}
# These need what only a full setup has; each says what when run without it.
NEEDS = {
    "bench_product.py": "systems built by recipes/systems/run.sh (--systems)",
    "bench_enroll_duration.py": "a system built on the dev split (--system) and speechocean762",
    "bench_recipes.py": "another source tree (--peer) and several full recipe runs",
}


def test_every_benchmark_is_listed():
    scripts = {p.name for p in BENCH.glob("bench_*.py")}
    assert scripts == set(TINY) | set(NEEDS)


@pytest.mark.parametrize("script", sorted(TINY))
def test_benchmark_runs_at_a_tiny_size(script, tmp_path):
    if script == "bench_features.py" and not (corpora_root() / "fsdd").is_dir():
        pytest.skip("bench_features reads the shared corpora")
    args = [a.format(tmp=tmp_path) for a in TINY[script]]
    if script in ("bench_conditions.py", "bench_vad.py", "bench_diarization.py"):
        if not (corpora_root() / "speechocean762").is_dir():
            pytest.skip(f"{script} reads speechocean762 from the shared corpora")
        args += ["--corpora", str(corpora_root())]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    out = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True,
                         text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert len(out.stdout.strip().splitlines()) >= 3, out.stdout  # its table


@pytest.mark.parametrize("script", sorted(NEEDS))
def test_benchmarks_needing_a_full_setup_say_what_they_need(script, tmp_path):
    out = subprocess.run([sys.executable, str(BENCH / script), "--help"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and "usage" in out.stdout.lower(), out.stderr
