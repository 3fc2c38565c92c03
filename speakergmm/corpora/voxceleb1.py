"""VoxCeleb1 (Nagrani, Chung and Zisserman, Interspeech 2017).

Celebrity interviews from YouTube, 16 kHz WAV laid out as
``wav/<speaker>/<video>/<nnnnn>.wav`` (1,251 speakers). The audio needs registration with
its authors, so the user provides it: request it on the VoxCeleb page,
https://www.robots.ox.ac.uk/~vgg/data/voxceleb/vox1.html, and unpack both archives
(``vox1_dev_wav.zip``, ``vox1_test_wav.zip``) into the corpus root so that they merge into
one ``wav/``. The VoxCeleb1-O trial lists are public: ``veri_test.txt`` (original, 37,720
trials: 18,860 target) and ``veri_test2.txt`` (cleaned, 37,611 trials: 18,802 target),
lines ``1|0 <enroll wav> <test wav>``. ``download_voxceleb1(ROOT)`` (CLI: ``speakergmm
download voxceleb1 ROOT``) fetches and verifies them into the corpus root.

Protocol: the UBM is trained on the development speakers (every speaker that does not
appear in the trial lists; ``ubm/``); each trial's enrollment is a single utterance, so the
enroll map has one model per enrollment utterance, named like it (``enroll/``, ``test/``,
``enroll_map``; ``trials`` from veri_test.txt, ``trials_cleaned`` from veri_test2.txt).
The S-norm cohort (``cohort/``) is the first utterance (sorted ids) of each development
speaker, a subset of ``ubm/``: one utterance per cohort model, as the enrollment models
have. Published GMM-UBM anchor on VoxCeleb1-O: EER 15.0% (Nagrani et al. 2017).
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from pathlib import Path

import numpy as np

from .._io import write_text_atomic
from ..datadir import DataDir, Trials, read_trials, write_enroll_map, write_trials
from ..errors import SpeakerGMMError
from ._download import fetch, staging_dir
from ._protocol import first_utterances, subset, write_data_dirs

__all__ = ["download_voxceleb1", "prepare_voxceleb1", "verify_trial_list", "TRIAL_LISTS",
           "TRIAL_URLS", "EXPECTED", "AUDIO_URL", "COHORT_UTTERANCES"]

TRIAL_LISTS = {"trials": "veri_test.txt", "trials_cleaned": "veri_test2.txt"}
#: The S-norm cohort: this many utterances (the first, sorted ids) of each UBM speaker.
COHORT_UTTERANCES = 1

#: Where each trial list is published: the VoxCeleb authors' site, then the mirror at
#: mm.kaist.ac.kr that several recipes use; what either serves is verified the same way.
TRIAL_URLS = {name: (f"https://www.robots.ox.ac.uk/~vgg/data/voxceleb/meta/{name}",
                     f"https://mm.kaist.ac.kr/datasets/voxceleb/meta/{name}")
              for name in TRIAL_LISTS.values()}

#: Trial list -> (trials, target trials, MD5 of the file). No checksum published by the
#: authors was found (no SHA-256 at all); these MD5 sums are the ones PaddleSpeech checks
#: its downloads of the same URLs against (PaddlePaddle/PaddleSpeech,
#: dataset/voxceleb/voxceleb1.py, TRIAL_LIST; other recipes use the same MD5 for
#: veri_test2.txt). The counts are those the lists are known by (PaddleSpeech,
#: examples/voxceleb/README.md).
EXPECTED = {"veri_test.txt": (37_720, 18_860, "29fc7cc1c5d59f0816dc15d6e8be60f7"),
            "veri_test2.txt": (37_611, 18_802, "b73110731c9223c1461fe49cb48dddfc")}

#: Where to request the audio (registration with the authors).
AUDIO_URL = "https://www.robots.ox.ac.uk/~vgg/data/voxceleb/vox1.html"

_WAV = r"id[0-9]{5}/[A-Za-z0-9_-]+/[0-9]{5}\.wav"
_LINE = re.compile(rf"[01] {_WAV} {_WAV}")


def utt_id(wav: str) -> str:
    """``id10270/x6uYqmx31kE/00001.wav`` -> ``id10270-x6uYqmx31kE-00001`` (ids are file
    names downstream, so no slashes)."""
    return wav[:-4].replace("/", "-") if wav.endswith(".wav") else wav.replace("/", "-")


def verify_trial_list(name: str, data: bytes, *, checksums: bool = True,
                      source: str | None = None) -> None:
    """Check that ``data`` is the published trial list ``name`` (a key of :data:`EXPECTED`).

    Every line must read ``1|0 idNNNNN/<video>/NNNNN.wav idNNNNN/<video>/NNNNN.wav``; the
    number of trials and of target trials must be the published ones and, with
    ``checksums``, the MD5 sum too.

    Raises
    ------
    SpeakerGMMError
        Naming ``source`` (default: ``name``), the first malformed line or the count or
        checksum that differs.
    """
    where = source or name
    n_trials, n_target, md5 = EXPECTED[name]
    lines = data.decode("utf-8", errors="replace").splitlines()
    for lineno, line in enumerate(lines, 1):
        if not _LINE.fullmatch(line.strip()):
            raise SpeakerGMMError(f"{where}: line {lineno} is not '1|0 idNNNNN/<video>/NNNNN.wav "
                                  f"idNNNNN/<video>/NNNNN.wav': {line[:80]!r}; this is not the "
                                  f"VoxCeleb1 trial list {name}")
    targets = sum(line.startswith("1") for line in lines)
    if (len(lines), targets) != (n_trials, n_target):
        raise SpeakerGMMError(f"{where}: {len(lines)} trials ({targets} target), but {name} has "
                              f"{n_trials} ({n_target} target); the file is incomplete or "
                              "another version")
    if checksums and (found := hashlib.md5(data).hexdigest()) != md5:
        raise SpeakerGMMError(f"{where}: MD5 {found} differs from "
                              f"{md5}, that of the known {name}, although format and counts "
                              "match; if the authors have re-issued the list, pass "
                              "checksums=False to accept it on format and counts alone")


def download_voxceleb1(target_dir: str | os.PathLike, *, checksums: bool = True,
                       progress=None) -> Path:
    """Download the VoxCeleb1-O trial lists into ``target_dir`` and verify them.

    Fetches ``veri_test.txt`` (original, 37,720 trials) and ``veri_test2.txt`` (cleaned,
    37,611) from the VoxCeleb site (:data:`TRIAL_URLS`, falling back to the KAIST mirror),
    then checks every line's format, the trial and target counts and the MD5 sums
    (:func:`verify_trial_list`). No checksum published by the authors was found: the MD5
    sums are those PaddleSpeech verifies the same files against (see :data:`EXPECTED`); pass
    ``checksums=False`` to rely on format and counts alone. Lists already present are
    verified, not downloaded again. Nothing is written until both lists have been
    verified (they are downloaded into a temporary folder inside ``target_dir``, then
    renamed into place), so a failure leaves nothing half-written. ``progress``, if given,
    is called as ``progress(bytes_so_far, total_bytes_or_None)`` as each list arrives.

    **Only the trial lists are downloaded.** The audio needs registration with the
    authors: request it at :data:`AUDIO_URL` and unpack ``vox1_dev_wav.zip`` and
    ``vox1_test_wav.zip`` into ``target_dir`` (they merge into ``wav/``). While
    ``target_dir/wav`` is missing, a :class:`UserWarning` says so.

    Returns
    -------
    Path
        ``target_dir``, the corpus root to pass to :func:`prepare_voxceleb1`.

    Raises
    ------
    SpeakerGMMError
        A list cannot be downloaded, or a list (downloaded or already present) fails
        verification; the message names the file or URL.
    """
    target = Path(target_dir)
    missing = []
    for name in TRIAL_LISTS.values():
        path = target / name
        if not path.is_file():
            missing.append(name)
            continue
        try:
            verify_trial_list(name, path.read_bytes(), checksums=checksums, source=str(path))
        except SpeakerGMMError as exc:
            raise SpeakerGMMError(f"{exc}; delete it to download it again") from None
    if missing:
        with staging_dir(target) as tmp:
            for name in missing:
                url = fetch(TRIAL_URLS[name], tmp / name, what=name,
                            fix="download it by hand into the corpus root", progress=progress)
                verify_trial_list(name, (tmp / name).read_bytes(), checksums=checksums,
                                  source=url)
            for name in missing:
                os.replace(tmp / name, target / name)
    if not (target / "wav").is_dir():
        warnings.warn(f"only the VoxCeleb1 trial lists were downloaded: the audio needs "
                      f"registration with its authors. Request it at {AUDIO_URL} and unpack "
                      f"vox1_dev_wav.zip and vox1_test_wav.zip into {target} (they merge into "
                      f"wav/) before 'speakergmm prepare voxceleb1 {target} OUT'", stacklevel=2)
    return target


def prepare_voxceleb1(corpus_root: str | os.PathLike,
                      output_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``ubm/``, ``cohort/``, ``enroll/``, ``test/``, ``enroll_map``, the trial lists
    found (``trials``, ``trials_cleaned``) and a README (the module docstring)."""
    root, out = Path(corpus_root), Path(output_dir)
    if not (root / "wav").is_dir():
        raise SpeakerGMMError(f"{root}: no wav/ folder; point at the VoxCeleb1 root "
                              "(wav/<speaker>/<video>/<nnnnn>.wav). The audio needs "
                              f"registration with its authors: request it at {AUDIO_URL}")
    lists = {name: root / f for name, f in TRIAL_LISTS.items() if (root / f).is_file()}
    if not lists:
        raise SpeakerGMMError(f"{root}: no {' or '.join(TRIAL_LISTS.values())}; download the "
                              f"VoxCeleb1-O trial lists into it with 'speakergmm download "
                              f"voxceleb1 {root}'")
    wav, utt2spk = {}, {}
    for path in sorted((root / "wav").glob("*/*/*.wav")):
        rel = path.relative_to(root / "wav").as_posix()
        wav[utt_id(rel)] = f"wav/{rel}"
        utt2spk[utt_id(rel)] = path.parent.parent.name
    data = DataDir(wav_scp=wav, utt2spk=utt2spk)
    keys = {name: read_trials(path) for name, path in lists.items()}
    enroll_utts, test_utts = set(), set()
    for trials in keys.values():
        enroll_utts.update(utt_id(u) for u in trials.enroll)
        test_utts.update(utt_id(u) for u in trials.test)
    missing = sorted((enroll_utts | test_utts) - set(wav))
    if missing:
        raise SpeakerGMMError(f"{root}: {len(missing)} trial utterance(s) have no audio, e.g. "
                              f"{missing[0]}")
    test_speakers = {utt2spk[u] for u in enroll_utts | test_utts}
    ubm = subset(data, [u for u in wav if utt2spk[u] not in test_speakers])
    dirs = {"ubm": ubm, "cohort": first_utterances(ubm, COHORT_UTTERANCES),
            "enroll": subset(data, sorted(enroll_utts)), "test": subset(data, sorted(test_utts))}
    written = write_data_dirs(out, dirs, root)
    write_enroll_map(out / "enroll_map", {u: [u] for u in sorted(enroll_utts)})
    for name, trials in keys.items():
        write_trials(out / name, Trials(np.array([utt_id(u) for u in trials.enroll]),
                                        np.array([utt_id(u) for u in trials.test]),
                                        trials.is_target))
        written[name] = out / name
    write_text_atomic(out / "README", __doc__.strip() + "\n")
    written["enroll_map"] = out / "enroll_map"
    return written
