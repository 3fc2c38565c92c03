"""Shared fixtures: synthetic audio written to tmp_path, and the shared corpora when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import settings

# Fuzzing (tests/fuzz and other property tests): a short run in CI, a long one on demand
# with --hypothesis-profile=long. No deadline: the machine is shared and its speed varies.
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("long", max_examples=20_000, deadline=None)
settings.load_profile("ci")

REPO = Path(__file__).resolve().parents[1]


def corpora_root() -> Path:
    """``$SPEAKERGMM_CORPORA``, else ``../shared/corpora`` beside the repository."""
    env = os.environ.get("SPEAKERGMM_CORPORA")
    return Path(env) if env else REPO.parent / "shared" / "corpora"


def corpus(name: str) -> Path:
    root = corpora_root() / name
    if not root.is_dir():
        pytest.skip(f"corpus {name} not found at {root} (set SPEAKERGMM_CORPORA)")
    return root


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def tone_bursts(sr: int = 16000, *, freq: float = 440.0, burst: float = 0.3, gap: float = 0.3,
                n: int = 3, amplitude: float = 0.5, noise: float = 1e-4, seed: int = 0):
    """Tone bursts separated by near-silence; returns the signal and the per-sample truth."""
    rng = np.random.default_rng(seed)
    nb, ng = int(burst * sr), int(gap * sr)
    pieces, truth = [np.zeros(ng)], [np.zeros(ng, bool)]
    t = np.arange(nb) / sr
    for _ in range(n):
        pieces += [amplitude * np.sin(2 * np.pi * freq * t), np.zeros(ng)]
        truth += [np.ones(nb, bool), np.zeros(ng, bool)]
    y = np.concatenate(pieces) + noise * rng.standard_normal(sum(map(len, pieces)))
    return y.astype(np.float32), np.concatenate(truth)


def speechlike(sr: int = 16000, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """Noise shaped by a slow random envelope with pauses: enough to pass VAD and give
    varied MFCCs."""
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    env = np.repeat(rng.uniform(0.05, 0.5, size=n // 800 + 1), 800)[:n]
    env[: n // 10] = 0.0  # leading pause
    tone = np.sin(2 * np.pi * rng.uniform(100, 300) * np.arange(n) / sr)
    return (env * (0.5 * rng.standard_normal(n) + tone)).astype(np.float32)


def random_gmm(rng, k=12, d=4, scale=1.0, config=None):
    """A random diagonal GMM (speakergmm.gmm.DiagGMM); ``config``: the feature config it
    records (that of the archives it is used with)."""
    from speakergmm.gmm.mixture import DiagGMM

    meta = {} if config is None else {"feature_config": config.to_dict()}
    return DiagGMM(rng.dirichlet(np.full(k, 2.0)), scale * rng.standard_normal((k, d)),
                   rng.uniform(0.3, 2.0, (k, d)), metadata=meta)


def sample(rng, gmm, n, shift=0.0):
    """``n`` float32 frames drawn from ``gmm``, means shifted by ``shift``."""
    comp = rng.choice(gmm.n_components, n, p=gmm.weights)
    x = gmm.means[comp] + shift + np.sqrt(gmm.variances[comp]) * rng.standard_normal((n, gmm.dim))
    return x.astype(np.float32)


def write_audio(path: Path, y: np.ndarray, sr: int, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sr, **kw)
    return path


@pytest.fixture(scope="session")
def speechocean_train_feats(tmp_path_factory):
    """speechocean762 train extracted once per session: (summary, archive path)."""
    from speakergmm.frontend.archive import extract_archive

    root = corpus("speechocean762")
    out = tmp_path_factory.mktemp("so762") / "feats"
    summary = extract_archive(root / "train", out, audio_root=root, executor=2)
    return summary, out


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Filterbank cache in a temporary folder, not the user's ~/.cache."""
    old = os.environ.get("SPEAKERGMM_CACHE")
    os.environ["SPEAKERGMM_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("SPEAKERGMM_CACHE", None)
    else:
        os.environ["SPEAKERGMM_CACHE"] = old


SR = 16000


def voice(seed: int, utt: int, seconds: float = 2.0) -> np.ndarray:
    """A synthetic 'speaker': a harmonic source with a speaker-specific pitch and formant-like
    resonances, random prosody per utterance, pauses."""
    rng = np.random.default_rng(1000 * seed + utt)
    spk = np.random.default_rng(seed)
    f0, formants = spk.uniform(90, 250), spk.uniform([300, 900, 2000], [800, 2000, 3500])
    n = int(SR * seconds)
    t = np.arange(n) / SR
    pitch = f0 * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    phase = 2 * np.pi * np.cumsum(pitch) / SR
    y = sum(np.sin(h * phase) / h for h in range(1, 20))
    spec = np.fft.rfft(y)
    freqs = np.fft.rfftfreq(n, 1 / SR)
    spec *= sum(np.exp(-((freqs - f) / 150) ** 2) for f in formants) + 0.05
    y = np.fft.irfft(spec, n)
    env = np.repeat(rng.uniform(0.2, 1.0, n // 1600 + 1), 1600)[:n]
    env[rng.random(n // 1600 + 1).repeat(1600)[:n] < 0.15] = 0.0
    y = y / np.abs(y).max() * 0.5 * env + 1e-4 * rng.standard_normal(n)
    return y.astype(np.float32)


def make_data_dir(root: Path, n_spk=3, n_utt=3, sr=16000, bad=()):
    """A data dir of synthetic utterances; ``bad`` names utterances to spoil."""
    wav, utt2spk = {}, {}
    for s in range(n_spk):
        for u in range(n_utt):
            spk, utt = f"spk{s}", f"spk{s}-u{u}"
            path = write_audio(root / "audio" / f"{utt}.wav",
                               speechlike(sr, seconds=1.0, seed=10 * s + u), sr)
            wav[utt], utt2spk[utt] = f"audio/{utt}.wav", spk
    for utt in bad:
        path = root / "audio" / f"{utt}.wav"
        if utt.endswith("u0"):
            path.write_bytes(b"RIFF....not audio")   # corrupt
        else:
            write_audio(path, np.zeros(sr, np.float32), sr)  # digital silence
    from speakergmm.data import DataDir, write_data_dir

    write_data_dir(root / "data", DataDir(wav_scp=wav, utt2spk=utt2spk))
    return root / "data"


# --- bad inputs: what every refusal must do ---------------------------------------------------

def tree_state(*roots: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``roots`` (hidden ones too) -> (mode, content): equal before and
    after a refused command, or it changed something."""
    state = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in paths:
            state[str(p)] = (p.stat().st_mode, p.read_bytes())
    return state


def refused(args, *names: str, roots=(), env=None):
    """Run the CLI with ``args``; assert it is refused as the project promises: exit status
    2, one line on stderr (``speakergmm: error: ...``) naming each of ``names``, no
    traceback, and no file under ``roots`` created, removed or changed. Returns the line."""
    from click.testing import CliRunner

    from speakergmm.cli import main

    before = tree_state(*roots)
    result = CliRunner().invoke(main, [str(a) for a in args], env=env)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert len(lines) == 1 and lines[0].startswith("speakergmm: error: "), lines
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    assert tree_state(*roots) == before
    return lines[0]


@pytest.fixture(scope="session")
def work(tmp_path_factory):
    """A small working folder made through the CLI: ``data/`` (3 speakers x 3 synthetic
    utterances, audio under ``audio/``), its features ``feats/``, a UBM of K = 4
    ``ubm.npz`` and an unlabelled ``trials`` list. Tests must not change it (the bad-input
    catalogue's :func:`refused` checks they did not)."""
    from click.testing import CliRunner

    from speakergmm.cli import main

    root = tmp_path_factory.mktemp("work")
    data = make_data_dir(root)
    for args in (["extract", data, root / "feats", "--audio-root", root, "-q"],
                 ["train-ubm", root / "feats", "-c", "4", "-n", "2", "-o", root / "ubm.npz"]):
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 0, result.output
    (root / "trials").write_text("spk0-u0 spk1-u1\nspk0-u0 spk0-u1\n")
    return root
