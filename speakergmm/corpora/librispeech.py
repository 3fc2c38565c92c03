"""LibriSpeech (Panayotov et al., ICASSP 2015; OpenSLR resource 12; CC BY 4.0).

Read English audiobooks, 16 kHz FLAC, laid out as
``<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac``.

Protocol (speaker verification): the UBM is trained on ``train-clean-100`` (251 speakers);
evaluation on ``test-clean`` (40 speakers): each speaker enrolled on its first 5 utterances
(sorted ids), every other utterance tested against every test speaker (``ubm/``,
``enroll/``, ``test/``, ``enroll_map``, ``trials``).

S-norm cohort (``cohort/``): the first 5 utterances (sorted ids) of each UBM speaker, a
subset of ``ubm/`` (1,255 utterances): as many as a test speaker is enrolled on, and far
cheaper to enroll than all of a speaker's ~24 minutes.

Calibration, when the corpus root holds ``dev-clean/``: the same enroll/test rule on
dev-clean's 40 speakers, who are disjoint from train-clean-100 and test-clean (so from the
UBM and the evaluation): ``cal/`` (all of dev-clean's utterances, enrollment and test),
``cal_enroll_map``, ``cal_trials``. Without dev-clean/ these are not written (and any left
from an earlier preparation are removed).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..data.datadir import DataDir
from ..errors import SpeakerGMMError
from ._download import openslr_urls, unpacked_download
from ._protocol import Protocol, all_vs_all, enroll_test_split, first_utterances

__all__ = ["download_librispeech", "prepare_librispeech", "verify_librispeech", "SUBSETS",
           "REQUIRED", "MD5", "ENROLL_UTTERANCES", "COHORT_UTTERANCES"]

#: The subset each part of the protocol is drawn from. All three are downloaded by default.
SUBSETS = {"ubm": "train-clean-100", "eval": "test-clean", "cal": "dev-clean"}
#: The subsets prepare needs; the calibration subset, ``SUBSETS["cal"]``, is optional.
REQUIRED = (SUBSETS["ubm"], SUBSETS["eval"])
ENROLL_UTTERANCES = 5
#: The S-norm cohort: this many utterances (the first, sorted ids) of each UBM speaker.
COHORT_UTTERANCES = 5

# Download (not in the module docstring, which is the README of prepared outputs): one
# <subset>.tar.gz per subset from OpenSLR resource 12, https://www.openslr.org/12/, each
# unpacking into LibriSpeech/<subset>/ (plus README.TXT, SPEAKERS.TXT... beside it).

#: MD5 of each subset's archive: the MD5 sums OpenSLR publishes for resource 12
#: (https://www.openslr.org/resources/12/md5sum.txt), for the subsets this protocol uses.
MD5 = {"dev-clean": "42e2234ba48799c1f50f24a7926300a1",
       "test-clean": "32fa31d27d2e1cad72775fee3f4849a9",
       "train-clean-100": "2a93770f6d5c6c964bc36631d331a522"}


def _scan(root: Path, subset: str) -> DataDir:
    folder = root / subset
    if not folder.is_dir():
        raise SpeakerGMMError(f"{root}: no {subset}/ folder; point at the LibriSpeech root "
                              f"(the folder that holds {'/ and '.join(REQUIRED)}/, and "
                              f"{SUBSETS['cal']}/ for calibration if you have it), or "
                              f"download it with 'speakergmm download librispeech DIR'")
    wav, utt2spk = {}, {}
    for path in sorted(folder.glob("*/*/*.flac")):
        spk = path.parent.parent.name
        wav[path.stem] = path.relative_to(root).as_posix()
        utt2spk[path.stem] = spk
    if not wav:
        raise SpeakerGMMError(f"{folder}: no <speaker>/<chapter>/*.flac files")
    return DataDir(wav_scp=wav, utt2spk=utt2spk)


def verify_librispeech(corpus_root: str | os.PathLike,
                       subsets: Iterable[str] | None = None) -> Path:
    """Check the layout of each of ``subsets`` under ``corpus_root``: by default those
    :func:`prepare_librispeech` uses, the :data:`REQUIRED` ones and, when its folder is
    there, the calibration subset (``SUBSETS["cal"]``, dev-clean).

    Every subset must hold ``<speaker>/<chapter>/`` folders, and every chapter folder its
    transcript ``<speaker>-<chapter>.trans.txt`` and exactly the FLAC files it lists. This
    finds an incomplete copy of a chapter, not a missing speaker or chapter (the numbers of
    speakers and chapters are not checked; a downloaded archive is checked by its MD5).

    Returns the corpus root. Raises :class:`SpeakerGMMError` naming the folder or file.
    """
    root = Path(corpus_root)
    if subsets is None:
        optional = [SUBSETS["cal"]] if (root / SUBSETS["cal"]).is_dir() else []
        subsets = [*REQUIRED, *optional]
    for name in subsets:
        _scan(root, name)  # the folder exists and holds <speaker>/<chapter>/*.flac files
        for chapter in sorted(p for p in (root / name).glob("*/*") if p.is_dir()):
            transcript = chapter / f"{chapter.parent.name}-{chapter.name}.trans.txt"
            if not transcript.is_file():
                raise SpeakerGMMError(f"{chapter}: no {transcript.name}; not the LibriSpeech "
                                      "layout, or an incomplete copy")
            listed = {line.split(maxsplit=1)[0]
                      for line in transcript.read_text().splitlines() if line.strip()}
            present = {p.stem for p in chapter.glob("*.flac")}
            if listed != present:
                missing, extra = sorted(listed - present), sorted(present - listed)
                raise SpeakerGMMError(
                    f"{chapter}: {len(missing)} utterance(s) of {transcript.name} have no FLAC "
                    f"file{' (e.g. ' + missing[0] + ')' if missing else ''} and {len(extra)} "
                    f"FLAC file(s) are not in it{' (e.g. ' + extra[0] + ')' if extra else ''}")
    return root


def _download_subset(target: Path, subset: str, progress) -> None:
    """Fetch ``subset``'s archive, check its MD5, unpack it and verify it in a staging
    folder, then rename ``LibriSpeech/<subset>`` into ``target``."""
    archive = f"{subset}.tar.gz"
    with unpacked_download(openslr_urls(12, archive), target, archive=archive,
                           holding=subset, layout=f"a LibriSpeech/{subset}/ folder",
                           what=f"LibriSpeech {archive}", digest=("md5", MD5[subset]),
                           fix=f"download it by hand from https://www.openslr.org/12/ and "
                               f"unpack its LibriSpeech/{subset}/ into {target}",
                           progress=progress) as unpacked:
        verify_librispeech(unpacked, [subset])
        (unpacked / subset).rename(target / subset)
        for extra in sorted(unpacked.iterdir()):  # README.TXT, SPEAKERS.TXT, CHAPTERS.TXT...
            if extra.is_file() and not (target / extra.name).exists():
                extra.rename(target / extra.name)


def download_librispeech(target_dir: str | os.PathLike, *,
                         subsets: Iterable[str] = tuple(SUBSETS.values()),
                         progress=None) -> Path:
    """Download LibriSpeech subsets into ``target_dir`` (which then holds ``<subset>/``).

    Each subset's archive, ``<subset>.tar.gz``, is streamed from OpenSLR resource 12 (the
    main site, then its mirrors: :func:`~speakergmm.corpora._download.openslr_urls`) into a
    temporary folder inside ``target_dir``, checked against the MD5 sum OpenSLR publishes
    (:data:`MD5`) before anything is unpacked (an archive that fails it, or is no archive
    at all, is fetched again from the next mirror), unpacked there (safely: see
    :func:`~speakergmm.corpora._download.safe_extract`), its layout verified
    (:func:`verify_librispeech`), and only then its ``LibriSpeech/<subset>/`` moved into
    place by one rename; the archive's top-level files (``README.TXT``,
    ``SPEAKERS.TXT``...) are moved beside it unless already there. A failed or interrupted
    download leaves nothing of that subset (subsets completed before it stay). Subsets
    already present are verified, not downloaded again; all of them are verified before
    anything is downloaded.

    Parameters
    ----------
    target_dir : path-like
    subsets : iterable of str
        Which subsets (those of :data:`MD5`); by default the protocol's three,
        :data:`SUBSETS` (train-clean-100: 6.3 GB, test-clean: 346 MB, and dev-clean:
        337 MB, which :func:`prepare_librispeech` needs only for the calibration trials).
    progress : callable, optional
        ``progress(bytes_so_far, total_bytes_or_None)``, called as each archive arrives.

    Returns
    -------
    Path
        ``target_dir``, the corpus root to pass to :func:`prepare_librispeech`.

    Raises
    ------
    SpeakerGMMError
        A subset is unknown, a present one fails verification, no mirror answers, or an
        archive's MD5 differs, is damaged or unsafe, or holds another layout; the message
        names the subset, folder or URL.
    """
    target, subsets = Path(target_dir), list(subsets)
    unknown = [s for s in subsets if s not in MD5]
    if unknown:
        raise SpeakerGMMError(f"no MD5 sum known for LibriSpeech subset {unknown[0]!r}; "
                              f"subsets that can be downloaded: {', '.join(MD5)}")
    missing = [s for s in subsets if not (target / s).exists()]
    for subset in subsets:
        if subset not in missing:
            try:
                verify_librispeech(target, [subset])
            except SpeakerGMMError as exc:
                raise SpeakerGMMError(f"{exc}; delete {target / subset} to download it "
                                      "again") from None
    for subset in missing:
        _download_subset(target, subset, progress)
    return target


def prepare_librispeech(corpus_root: str | os.PathLike,
                        output_dir: str | os.PathLike | None = None) -> Protocol:
    """Write ``ubm/``, ``cohort/``, ``enroll/``, ``test/``, ``enroll_map``, ``trials``, a
    README and, when ``corpus_root`` holds ``dev-clean/``, ``cal/``, ``cal_enroll_map`` and
    ``cal_trials``.

    See the module docstring for the protocol. ``wav.scp`` paths stay relative to the
    corpus root: pass it as ``--audio-root``. The README's first line says whether the
    calibration trials were written.
    """
    root = Path(corpus_root)
    ubm = _scan(root, SUBSETS["ubm"])
    evaluation = _scan(root, SUBSETS["eval"])
    enroll, test, enroll_map = enroll_test_split(evaluation, ENROLL_UTTERANCES)
    dirs = {"ubm": ubm, "cohort": first_utterances(ubm, COHORT_UTTERANCES), "enroll": enroll,
            "test": test}
    trials = {"": (enroll_map, test)}
    if (root / SUBSETS["cal"]).is_dir():
        cal = _scan(root, SUBSETS["cal"])
        _, cal_test, cal_map = enroll_test_split(cal, ENROLL_UTTERANCES)
        dirs["cal"] = cal  # enrollment and test utterances: one feature archive serves both
        trials["cal_"] = (cal_map, cal_test)
        status = f"calibration: {SUBSETS['cal']} ({len(cal_map)} speakers)"
    else:
        status = (f"calibration: none (no {SUBSETS['cal']}/ folder in the corpus root; "
                  "cal/, cal_enroll_map and cal_trials not written)")
    protocol = Protocol(
        "librispeech", root, dirs,
        {f"{prefix}enroll_map": models for prefix, (models, _) in trials.items()},
        {f"{prefix}trials": all_vs_all(sorted(models), test_dir)
         for prefix, (models, test_dir) in trials.items()},
        f"{status}\n\n" + __doc__.strip(),
        stale=() if "cal_" in trials else ("cal", "cal_enroll_map", "cal_trials"))
    if output_dir is not None:
        protocol.write(output_dir)
    return protocol
