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

The development speakers (sorted) are split for score normalisation and calibration, as in
the speechocean762 protocol: every fourth one, from the fourth on, is a calibration speaker
(``n = floor(D / 4)`` of the ``D`` development speakers: 302 of 1,211), the others form the
S-norm cohort (``cohort/``: the first utterance, sorted ids, of each of them; one utterance
per cohort model, as the enrollment models have). All of them train the UBM. Calibration
speakers must stay out of the cohort: S-norm of a speaker's trials against a cohort holding
that speaker's own utterances shifts its scores, and a calibration trained on them does not
transfer (on speechocean762, actDCF 1.8 against 0.345 with the speakers kept apart).

Calibration trials (``cal_enroll_map``, ``cal_trials``; the utterances are in ``ubm/``)
mirror VoxCeleb1-O's single-utterance enrollment. Each calibration speaker's videos (sorted
ids) alternate between enrollment and test (1st, 3rd, 5th, ... enroll; 2nd, 4th, ...
test); from each side the first utterance (sorted ids) of each video is taken in turn,
then the second of each, and so on, until 4 are taken (fewer if the side has fewer); a
speaker of a single video has its utterances alternate instead. With 8 or more videos
(VoxCeleb1's speakers have 18 on average) that is the first utterance of videos 1, 3, 5, 7
(enrollment) and 2, 4, 6, 8 (test); whenever a speaker has two videos or more, every
target trial pairs utterances of different videos. Each enrollment utterance is a model,
named like it, tried against the speaker's own test utterances (target) and against those
of the next 4 calibration speakers in sorted order, wrapping around (non-target, always
across speakers). With ``n >= 5`` calibration speakers that all have 4 utterances on each
side (8 or more videos suffice): ``16 n`` target and ``64 n`` non-target trials, ``4 n``
models; with n = 302, 4,832 target and 19,328 non-target trials. The first line of this
README gives the counts written.

Published GMM-UBM anchor on VoxCeleb1-O: EER 15.0% (Nagrani et al. 2017).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import warnings
from pathlib import Path, PurePosixPath

import numpy as np

from ..data.datadir import DataDir
from ..data.trials import Trials, read_trials
from ..errors import SpeakerGMMError
from ._download import fetch, staging_dir
from ._protocol import Protocol, first_utterances, subset

__all__ = ["download_voxceleb1", "prepare_voxceleb1", "verify_trial_list",
           "calibration_trials", "TRIAL_LISTS", "TRIAL_URLS", "EXPECTED", "AUDIO_URL",
           "COHORT_UTTERANCES", "CAL_EVERY", "CAL_UTTERANCES", "CAL_IMPOSTORS"]

TRIAL_LISTS = {"trials": "veri_test.txt", "trials_cleaned": "veri_test2.txt"}
#: The S-norm cohort: this many utterances (the first, sorted ids) of each cohort speaker.
COHORT_UTTERANCES = 1
#: Every CAL_EVERY-th development speaker (sorted, from the CAL_EVERY-th) is for
#: calibration and kept out of the cohort: the rule (and value) of speechocean762.CAL_EVERY.
CAL_EVERY = 4
#: Calibration trials: utterances of each calibration speaker on each side (enrollment
#: models, test utterances) ...
CAL_UTTERANCES = 4
#: ... and how many of the following calibration speakers (sorted, wrapping around) each
#: model is tried against for non-target trials.
CAL_IMPOSTORS = 4

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
                              "match; if the authors have re-issued the list, accept it on "
                              "format and counts alone with 'speakergmm download voxceleb1 "
                              "--no-checksums' (checksums=False)")


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


def _round_robin(groups: list[list[str]]) -> list[str]:
    """The first item of each group, then the second of each, and so on."""
    return [x for layer in itertools.zip_longest(*groups) for x in layer if x is not None]


def _calibration_sides(utts_by_video: list[list[str]]) -> tuple[list[str], list[str]]:
    """A speaker's enrollment and test utterances for calibration (module docstring)."""
    if len(utts_by_video) == 1:
        utts = utts_by_video[0]
        return utts[0::2][:CAL_UTTERANCES], utts[1::2][:CAL_UTTERANCES]
    return (_round_robin(utts_by_video[0::2])[:CAL_UTTERANCES],
            _round_robin(utts_by_video[1::2])[:CAL_UTTERANCES])


def calibration_trials(data: DataDir, speakers: list[str]) -> tuple[dict[str, list[str]],
                                                                      Trials]:
    """Single-utterance calibration trials among ``speakers`` (sorted ids), as the module
    docstring describes; an utterance's video is the folder its audio file is in.

    Returns
    -------
    enroll_map : dict model -> [utterance]
        One model per enrollment utterance, named like it.
    trials : Trials
        Per model: the speaker's own test utterances (target), then those of the next
        :data:`CAL_IMPOSTORS` speakers (non-target).
    """
    spk2utt = data.spk2utt
    sides = {}
    for spk in speakers:
        videos: dict[str, list[str]] = {}
        for utt in spk2utt[spk]:
            videos.setdefault(PurePosixPath(data.wav_scp[utt]).parent.name, []).append(utt)
        sides[spk] = _calibration_sides([videos[v] for v in sorted(videos)])
    rows = []
    for i, spk in enumerate(speakers):
        others = [speakers[(i + k) % len(speakers)]
                  for k in range(1, min(CAL_IMPOSTORS, len(speakers) - 1) + 1)]
        rows += [(model, test, other == spk) for model in sides[spk][0]
                 for other in (spk, *others) for test in sides[other][1]]
    enroll_map = {model: [model] for spk in speakers for model in sides[spk][0]}
    models, tests, labels = zip(*rows) if rows else ((), (), ())
    return enroll_map, Trials(np.array(models), np.array(tests), np.array(labels, dtype=bool))


def prepare_voxceleb1(corpus_root: str | os.PathLike,
                      output_dir: str | os.PathLike | None = None) -> Protocol:
    """Write ``ubm/``, ``cohort/``, ``enroll/``, ``test/``, ``enroll_map``, the trial lists
    found (``trials``, ``trials_cleaned``), ``cal_enroll_map``, ``cal_trials`` and a README
    (a status line, then the module docstring).

    Raises :class:`SpeakerGMMError` when the audio or the trial lists are missing, a trial
    utterance has no audio, or there are fewer than ``2 * CAL_EVERY`` development speakers
    (two calibration speakers are needed for non-target calibration trials).
    """
    root = Path(corpus_root)
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
    cal_speakers = ubm.speakers[CAL_EVERY - 1::CAL_EVERY]
    if len(cal_speakers) < 2:
        raise SpeakerGMMError(f"{root}: {len(ubm.speakers)} development speaker(s) (outside the "
                              f"trial lists); the protocol needs at least {2 * CAL_EVERY}, and "
                              "VoxCeleb1 has 1,211: is vox1_dev_wav.zip unpacked into wav/?")
    cohort_speakers = sorted(set(ubm.speakers) - set(cal_speakers))
    dirs = {"ubm": ubm, "cohort": first_utterances(ubm, COHORT_UTTERANCES, cohort_speakers),
            "enroll": subset(data, sorted(enroll_utts)), "test": subset(data, sorted(test_utts))}
    cal_map, cal_trials = calibration_trials(ubm, cal_speakers)
    lists = {name: Trials(np.array([utt_id(u) for u in trials.enroll]),
                          np.array([utt_id(u) for u in trials.test]), trials.is_target)
             for name, trials in keys.items()}
    n_target = int(cal_trials.is_target.sum())
    status = (f"calibration: {len(cal_speakers)} of {len(ubm.speakers)} development speakers, "
              f"{len(cal_map)} models, {n_target} target and {len(cal_trials) - n_target} "
              f"non-target trials; lists: {', '.join(keys)}")
    protocol = Protocol("voxceleb1", root, dirs,
                        {"enroll_map": {u: [u] for u in sorted(enroll_utts)},
                         "cal_enroll_map": cal_map},
                        {**lists, "cal_trials": cal_trials}, f"{status}\n\n" + __doc__.strip())
    if output_dir is not None:
        protocol.write(output_dir)
    return protocol
