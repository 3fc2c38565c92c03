"""The FSDD recipe end to end on ../shared/corpora/fsdd (skipped when absent); the LibriSpeech
and VoxCeleb1 recipes end to end on tiny synthetic corpora in their real layouts."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO, corpus


def test_fsdd_recipe_end_to_end(tmp_path):
    root = corpus("fsdd")
    scripts = Path(sys.executable).parent
    assert shutil.which("speakergmm", path=str(scripts)), "speakergmm is not installed"
    env = dict(os.environ, FSDD_ROOT=str(root), PATH=f"{scripts}{os.pathsep}{os.environ['PATH']}")
    work = tmp_path / "exp"
    out = subprocess.run(["bash", str(REPO / "recipes" / "fsdd" / "run.sh"), "--work", str(work)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "EER" in out.stdout and "report.html" in out.stdout
    report = json.loads((work / "report" / "report.json").read_text())
    systems = report["systems"]
    assert len(systems) == 3
    for figures in systems.values():
        assert (figures["n_target"], figures["n_nontarget"]) == (600, 3000)
        # regression guard, above the 2% target of the issue (4.7% / 3.2% measured)
        assert 0 < figures["eer_rocch"] < 0.10
        assert figures["min_dcf"]["vox"]["value"] < 1.0
    calibrated = systems[str(work / "scores_topc_snorm_cal")]
    assert calibrated["cllr"] < systems[str(work / "scores_topc_snorm")]["cllr"]
    assert calibrated["act_dcf"]["vox"]["value"] < 1.0
    assert (work / "report" / "det.png").stat().st_size > 1000
    # resuming from a later stage redoes only that stage
    again = subprocess.run(["bash", str(REPO / "recipes" / "fsdd" / "run.sh"), "--work",
                            str(work), "--stage", "5"], env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0 and "stage 4" not in again.stdout


# --------------------------------------------------------------------------------------------
# LibriSpeech and VoxCeleb1 recipes end to end on tiny synthetic corpora in the real layouts


def _voice(speaker: int, utterance: int, sr: int = 16000, seconds: float = 1.2):
    """A speech-like signal: harmonics of a speaker-specific pitch shaped by speaker-specific
    resonances, a syllable-rate envelope with pauses, and noise."""
    import numpy as np

    rng = np.random.default_rng(1000 * speaker + utterance)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    f0 = (90 + 23 * (speaker % 9)) * (1 + 0.03 * np.sin(2 * np.pi * rng.uniform(2, 5) * t)
                                      + rng.uniform(-0.03, 0.03))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    formants = 500 + 170 * (speaker % 5) + np.array([0.0, 900 + 130 * (speaker % 4), 2200])
    y = np.zeros(n)
    for h in range(1, 30):
        freq = h * f0.mean()
        if freq > sr / 2 - 500:
            break
        gain = sum(np.exp(-0.5 * ((freq - f) / 150) ** 2) for f in formants) + 0.05
        y += gain / h ** 0.5 * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
    env = np.repeat(rng.uniform(0.2, 1.0, n // 1600 + 1), 1600)[:n]
    env *= 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t + rng.uniform(0, 2 * np.pi)) ** 2
    env[: n // 12] = 0.02  # leading pause
    y = 0.3 * env * y / np.abs(y).max() + 0.003 * rng.standard_normal(n)
    return y.astype(np.float32)


def _recipe_env(**corpus_vars):
    scripts = Path(sys.executable).parent
    assert shutil.which("speakergmm", path=str(scripts)), "speakergmm is not installed"
    env = {k: v for k, v in os.environ.items()
           if k not in ("LIBRISPEECH_ROOT", "LIBRISPEECH_WORK", "VOXCELEB1_ROOT",
                        "VOXCELEB1_WORK")}
    env.update(corpus_vars, PATH=f"{scripts}{os.pathsep}{os.environ['PATH']}")
    return env


def _run_recipe(name, *args, env, timeout=300):
    return subprocess.run(["bash", str(REPO / "recipes" / name / "run.sh"), *map(str, args)],
                          env=env, capture_output=True, text=True, timeout=timeout)


def _fake_librispeech(root: Path) -> None:
    """<root>/LibriSpeech/<subset>/<spk>/<chapter>/<spk>-<chapter>-<nnnn>.flac, as the OpenSLR
    archives unpack; train-clean-100: 4 speakers x 2 chapters x 3 utterances; test-clean and
    dev-clean: 3 speakers x 7 utterances (5 enroll, 2 test)."""
    from conftest import write_audio

    layout = {"train-clean-100": ([19, 26, 27, 32], 2, 3), "test-clean": ([1089, 121, 1221], 1, 7),
              "dev-clean": ([84, 174, 251], 1, 7)}
    for subset_index, (subset, (speakers, chapters, utts)) in enumerate(layout.items()):
        for s, spk in enumerate(speakers):
            for c in range(chapters):
                chapter = 1000 + 10 * s + c
                for u in range(utts):
                    path = (root / "LibriSpeech" / subset / str(spk) / str(chapter)
                            / f"{spk}-{chapter}-{u:04d}.flac")
                    write_audio(path, _voice(10 * subset_index + s, 100 * c + u), 16000)
    (root / "LibriSpeech" / "README.TXT").write_text("fake LibriSpeech for tests\n")


def _librispeech_mirror(tmp_path: Path) -> Path:
    """A local 'OpenSLR' mirror: <subset>.tar.gz archives of the fake corpus + md5sum.txt."""
    import hashlib
    import tarfile

    src, mirror = tmp_path / "src", tmp_path / "mirror"
    _fake_librispeech(src)
    mirror.mkdir()
    sums = []
    for subset in ("train-clean-100", "test-clean", "dev-clean"):
        with tarfile.open(mirror / f"{subset}.tar.gz", "w:gz") as tar:
            tar.add(src / "LibriSpeech" / subset, arcname=f"LibriSpeech/{subset}")
            tar.add(src / "LibriSpeech" / "README.TXT", arcname="LibriSpeech/README.TXT")
        digest = hashlib.md5((mirror / f"{subset}.tar.gz").read_bytes()).hexdigest()
        sums.append(f"{digest}  {subset}.tar.gz\n")
    (mirror / "md5sum.txt").write_text("".join(sums))
    return mirror


def _fake_voxceleb1(root: Path) -> None:
    """<root>/wav/idNNNNN/<video>/NNNNN.wav: 4 development speakers and 3 test speakers, 2
    videos x 2 segments each; veri_test.txt (every pair of test segments, '1|0 enroll test')
    and veri_test2.txt (the same without its last two trials, standing in for the cleaned
    list)."""
    import itertools

    from conftest import write_audio

    speakers = {f"id{10001 + i}": i for i in range(4)} | {f"id{10270 + i}": 4 + i for i in range(3)}
    test_utts = []
    for spk, index in speakers.items():
        for v, video in enumerate([f"x6uY{index}qmx3-kE", f"_Zq{index}vyQbwGs"]):
            for seg in range(2):
                rel = f"{spk}/{video}/{seg + 1:05d}.wav"
                write_audio(root / "wav" / rel, _voice(index, 10 * v + seg, seconds=1.5), 16000)
                if spk >= "id10270":
                    test_utts.append(rel)
    lines = [f"{int(a.split('/')[0] == b.split('/')[0])} {a} {b}\n"
             for a, b in itertools.combinations(test_utts, 2)]
    (root / "veri_test.txt").write_text("".join(lines))
    (root / "veri_test2.txt").write_text("".join(lines[:-2]))


_SMALL = ["--components", 8, "--iterations", 2, "--subsample", 1, "--cohort-utts", 10, "--nj", 1]


def test_librispeech_recipe_end_to_end(tmp_path):
    """No corpus root: the recipe downloads the three subsets (from a local mirror here),
    checks their MD5 sums, unpacks them, and runs every stage, calibration on dev-clean."""
    mirror = _librispeech_mirror(tmp_path)
    work = tmp_path / "exp"
    out = _run_recipe("librispeech", "--work", work, "--mirror", mirror.as_uri(),
                      "--checksums", mirror / "md5sum.txt", *_SMALL, env=_recipe_env())
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "EER" in out.stdout and "report.html" in out.stdout
    corpus = work / "corpus"
    for subset in ("train-clean-100", "test-clean", "dev-clean"):
        assert len(list((corpus / subset).glob("*/*/*.flac"))) > 0
        assert not (corpus / f"{subset}.tar.gz").exists()  # removed once unpacked
    assert (corpus / "README.TXT").is_file()
    assert len((work / "data" / "cohort" / "utt2spk").read_text().splitlines()) == 4 * 5
    report = json.loads((work / "report" / "report.json").read_text())
    systems = report["systems"]
    assert sorted(systems) == sorted(str(work / s) for s in
                                     ("scores_topc", "scores_topc_snorm", "scores_topc_snorm_cal"))
    for figures in systems.values():
        # 3 test-clean speakers x 2 test utterances against 3 models
        assert (figures["n_target"], figures["n_nontarget"]) == (6, 12)
        assert 0 <= figures["eer_rocch"] <= 1


def test_librispeech_recipe_rejects_an_archive_with_the_wrong_md5(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "train-clean-100.tar.gz").write_bytes(b"not the archive OpenSLR publishes")
    work = tmp_path / "exp"
    out = _run_recipe("librispeech", "--work", work, "--mirror", mirror.as_uri(),
                      env=_recipe_env(), timeout=120)  # the real checksums (conf/md5sum.txt)
    assert out.returncode == 1
    assert "MD5 differs" in out.stderr and "2a93770f6d5c6c964bc36631d331a522" in out.stderr
    assert not (work / "corpus" / "train-clean-100.tar.gz").exists()
    assert not (work / "corpus" / "train-clean-100").exists()
    assert "stage 1" not in out.stdout


def test_librispeech_recipe_stops_when_the_given_root_lacks_a_subset(tmp_path):
    root = tmp_path / "LibriSpeech"
    (root / "train-clean-100").mkdir(parents=True)
    out = _run_recipe("librispeech", "--work", tmp_path / "exp", env=_recipe_env(
        LIBRISPEECH_ROOT=str(root)), timeout=60)
    assert out.returncode == 2
    assert "no test-clean/" in out.stderr and "stage 1" not in out.stdout
    assert not (root / "test-clean.tar.gz").exists()  # a given root is never downloaded into


def test_voxceleb1_recipe_end_to_end(tmp_path):
    """Both trial lists scored and evaluated (top-C, top-C + S-norm)."""
    root = tmp_path / "vox1"
    _fake_voxceleb1(root)
    work = tmp_path / "exp"
    env = _recipe_env(VOXCELEB1_ROOT=str(root))
    # --check-lists false: the fake lists would fail the MD5/count check of the real ones
    out = _run_recipe("voxceleb1", "--work", work, "--check-lists", "false", *_SMALL, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "EER" in out.stdout and out.stdout.count("report.html") == 2
    # the UBM and cohort are the speakers outside the trial lists
    ubm_speakers = set((work / "data" / "ubm" / "spk2utt").read_text().split()[::5])
    assert ubm_speakers == {"id10001", "id10002", "id10003", "id10004"}
    cohort = (work / "data" / "cohort" / "utt2spk").read_text().splitlines()
    assert [line.split()[1] for line in cohort] == sorted(ubm_speakers)
    for report_dir, key in (("report", "veri_test.txt"), ("report_cleaned", "veri_test2.txt")):
        labels = [line.split()[0] for line in (root / key).read_text().splitlines()]
        report = json.loads((work / report_dir / "report.json").read_text())
        assert len(report["systems"]) == 2
        for figures in report["systems"].values():
            assert figures["n_target"] == labels.count("1")
            assert figures["n_nontarget"] == labels.count("0")
            assert 0 <= figures["eer_rocch"] <= 1


def test_voxceleb1_recipe_without_the_corpus_says_where_to_get_it(tmp_path):
    out = _run_recipe("voxceleb1", "--work", tmp_path / "exp", env=_recipe_env(), timeout=60)
    assert out.returncode == 2
    assert "registration" in out.stderr and "robots.ox.ac.uk" in out.stderr
    assert not (tmp_path / "exp").exists()
