"""speechocean762 (Zhang et al., Interspeech 2021; OpenSLR resource 101; CC BY 4.0).

Non-native English read speech (Mandarin first language), 16 kHz: two speaker-disjoint
halves, ``train/`` and ``test/``, of 125 speakers x 20 utterances each, laid out with Kaldi
lists (``wav.scp`` paths relative to the corpus root, ``utt2spk``, ``spk2utt``,
``spk2gender``) and audio under ``WAVE/SPEAKERnnnn/``.

Protocols (speaker verification):

- **official** (both halves present): UBM, cohort and calibration data from ``train``; each
  ``test`` speaker enrolled on its first 5 utterances (sorted ids), its other 15 tested
  against every ``test`` speaker: 1,875 target and 232,500 non-target trials.
- **dev** (only ``train/``, as in a copy of the train half): speakers in sorted order, even
  positions (0, 2, ...) are background (UBM, cohort and calibration), odd positions
  evaluation, same enroll/test rule: 62 evaluation speakers, 930 target and 56,730
  non-target trials.
- **dev mirror** (``mirror=True``, only ``train/``): the dev protocol with the roles swapped,
  odd positions background and the 63 even ones evaluated (945 target trials), so that a
  setting has to hold on two disjoint sets of evaluation speakers.

Both also split the background speakers (sorted) for score normalisation and calibration:
every fourth one, from the fourth on, is a calibration speaker (15 in dev, 31 in official),
the others form the S-norm cohort (``cohort/``). Calibration trials (``cal_enroll_map``,
``cal_trials``) follow the same enroll/test rule among the calibration speakers; their
utterances are in ``ubm/``. Calibration speakers must stay out of the cohort: S-norm of a
speaker's trials against a cohort holding that speaker's own utterances shifts its scores,
and a calibration trained on them does not transfer (actDCF 1.8 against 0.34).

``folds/0``, ``folds/1`` and ``folds/2`` hold the three other such splits (calibration
speakers from the first, second and third on; each its ``cohort/``, ``cal_enroll_map``
and ``cal_trials``): with all four, every background speaker's trials are scored once by
systems that never saw that speaker, and a calibration trained on them all (cross-fold)
rests on four times the speakers. On one split of 15 it did not transfer (actDCF 2.4x
minDCF on the mirror protocol); on the four, within 6%.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..data.datadir import read_data_dir
from ..errors import SpeakerGMMError
from ._download import openslr_urls, unpacked_download
from ._protocol import Protocol, all_vs_all, enroll_test_split, subset

__all__ = ["download_speechocean762", "prepare_speechocean762", "verify_speechocean762",
           "ENROLL_UTTERANCES", "URLS"]

ENROLL_UTTERANCES = 5
#: Every CAL_EVERY-th background speaker (sorted, from the CAL_EVERY-th) is for calibration.
CAL_EVERY = 4

# Download (not in the module docstring, which is the README of prepared outputs):
# speechocean762.tar.gz from OpenSLR resource 101, https://www.openslr.org/101/. No checksum
# of the archive published by OpenSLR or the authors was found, so download_speechocean762
# verifies the unpacked corpus instead (verify_speechocean762).

#: The archive on OpenSLR (resource 101), then OpenSLR's US, EU and CN mirrors.
URLS = tuple(openslr_urls(101, "speechocean762.tar.gz"))
#: The two halves, and the size of each in the published corpus.
HALVES = ("train", "test")
SPEAKERS_PER_HALF = 125
UTTERANCES_PER_HALF = 2500


def verify_speechocean762(corpus_root: str | os.PathLike) -> Path:
    """Check that ``corpus_root`` holds the complete corpus: both halves, their sizes and
    every audio file they list.

    Returns the corpus root. Raises :class:`SpeakerGMMError` naming the half, the count or
    the audio files that differ.
    """
    root = Path(corpus_root)
    for half in HALVES:
        if not (root / half / "wav.scp").is_file():
            raise SpeakerGMMError(f"{root}: no {half}/wav.scp; the complete speechocean762 has "
                                  f"{' and '.join(HALVES)} halves")
        data = read_data_dir(root / half)
        sizes = (len(data.speakers), len(data.utt2spk))
        if sizes != (SPEAKERS_PER_HALF, UTTERANCES_PER_HALF):
            raise SpeakerGMMError(f"{root / half}: {sizes[0]} speakers and {sizes[1]} "
                                  f"utterances, but each half of speechocean762 has "
                                  f"{SPEAKERS_PER_HALF} and {UTTERANCES_PER_HALF}")
        missing = sorted(path for path in data.wav_scp.values() if not (root / path).is_file())
        if missing:
            raise SpeakerGMMError(f"{root / half / 'wav.scp'}: {len(missing)} audio file(s) "
                                  f"missing under {root} (e.g. {', '.join(missing[:3])})")
    return root


def download_speechocean762(target_dir: str | os.PathLike, *, progress=None) -> Path:
    """Download speechocean762 into ``target_dir/speechocean762`` and verify it.

    The archive is streamed from OpenSLR resource 101
    (:data:`URLS`: the main site, then its mirrors, the next one tried also when one serves
    something other than a good archive: a web page, a truncated or damaged file) into a
    temporary folder inside ``target_dir``, unpacked there, refusing absolute paths, ``..``
    components, links and special files (see
    :func:`~speakergmm.corpora._download.safe_extract`), verified with
    :func:`verify_speechocean762`, and only then moved into place by one rename: an
    interrupted or failed download leaves nothing half-done. No checksum of the archive
    published by OpenSLR or the authors was found, so the unpacked corpus is what is
    verified. Does nothing but verify when the corpus is already there.

    Parameters
    ----------
    target_dir : path-like
    progress : callable, optional
        ``progress(bytes_so_far, total_bytes_or_None)``, called as the archive arrives.

    Returns
    -------
    Path
        The corpus root, ``target_dir/speechocean762`` (holds ``train/``, ``test/`` and
        ``WAVE/``): pass it to :func:`prepare_speechocean762`.

    Raises
    ------
    SpeakerGMMError
        No mirror answers, the archive is damaged or unsafe, or the unpacked corpus is
        incomplete; the message names the URL or file.
    """
    target = Path(target_dir)
    root = target / "speechocean762"
    if (root / "train" / "wav.scp").is_file():
        return verify_speechocean762(root)
    if root.exists():
        raise SpeakerGMMError(f"{root} exists but holds no train/wav.scp; remove it or choose "
                              "another folder")
    # The published archive holds one folder, speechocean762/; a bare corpus is accepted too.
    with unpacked_download(URLS, target, archive="speechocean762.tar.gz", holding="train",
                           layout="the speechocean762 layout (train/, test/, WAVE/)",
                           what="speechocean762", fix="download it by hand from "
                           "https://www.openslr.org/101/ and unpack it",
                           progress=progress) as corpus:
        verify_speechocean762(corpus).rename(root)
    return root


def prepare_speechocean762(corpus_root: str | os.PathLike,
                           output_dir: str | os.PathLike | None = None, *,
                           background_only: bool = False, mirror: bool = False) -> Protocol:
    """Write ``ubm/``, ``cohort/``, ``enroll/``, ``test/``, ``enroll_map``, ``trials``,
    ``cal_enroll_map``, ``cal_trials`` and a README.

    The protocol is ``official`` when ``corpus_root/test`` exists, else ``dev`` (see the
    module docstring). ``wav.scp`` paths stay relative to the corpus root: pass it as
    ``--audio-root``. With ``background_only`` every ``train`` speaker is background, split
    into cohort and calibration speakers as the official protocol splits them, and nothing
    is evaluated (no ``enroll/``, ``test/``, ``enroll_map``, ``trials``): what the bundled
    systems are built on (``speakergmm/models/README.md``). ``mirror`` swaps the dev
    protocol's background and evaluation speakers.
    """
    root = Path(corpus_root)
    if not (root / "train" / "wav.scp").is_file():
        raise SpeakerGMMError(f"{root}: no train/wav.scp; point at the speechocean762 root "
                              "(the folder that holds train/ and WAVE/)")
    train = read_data_dir(root / "train")
    if mirror and (background_only or (root / "test" / "wav.scp").is_file()):
        raise SpeakerGMMError("--mirror swaps the dev protocol's speakers: give a copy of "
                              "train/ alone (no test/), without --background-only")
    if background_only:
        protocol, evaluation, background, eval_speakers = "background only", None, train, []
    elif (root / "test" / "wav.scp").is_file():
        protocol, evaluation = "official", read_data_dir(root / "test")
        background = train
        eval_speakers = evaluation.speakers
    else:
        protocol, evaluation = "dev mirror" if mirror else "dev", train
        speakers = train.speakers
        eval_speakers = speakers[0::2] if mirror else speakers[1::2]
        kept = set(speakers[1::2] if mirror else speakers[0::2])
        background = subset(train, [u for u in train.utterances if train.utt2spk[u] in kept])
    dirs, maps, trials = {"ubm": background}, {}, {}
    # The calibration split, CAL_EVERY - 1 (speakers 3, 7, ...), at the top; the other
    # CAL_EVERY - 1 splits under folds/. The calibration speakers' utterances are in ubm/,
    # so the UBM's features serve them.
    for split in range(CAL_EVERY):
        prefix = "" if split == CAL_EVERY - 1 else f"folds/{split}/"
        cal_speakers = background.speakers[split::CAL_EVERY]
        calibrating = set(cal_speakers)
        dirs[prefix + "cohort"] = subset(background, [u for u in background.utterances
                                                      if background.utt2spk[u] not in
                                                      calibrating])
        _, cal_test, cal_map = enroll_test_split(background, ENROLL_UTTERANCES, cal_speakers)
        maps[prefix + "cal_enroll_map"] = cal_map
        trials[prefix + "cal_trials"] = all_vs_all(sorted(cal_map), cal_test)
    if evaluation is not None:
        enroll, test, enroll_map = enroll_test_split(evaluation, ENROLL_UTTERANCES,
                                                     eval_speakers)
        dirs.update(enroll=enroll, test=test)
        maps["enroll_map"] = enroll_map
        trials["trials"] = all_vs_all(list(eval_speakers), test)
    prepared = Protocol("speechocean762", root, dirs, maps, trials,
                        f"protocol: {protocol}\n\n" + __doc__.strip())
    if output_dir is not None:
        prepared.write(output_dir)
    return prepared
