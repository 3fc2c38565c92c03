"""TIMIT Acoustic-Phonetic Continuous Speech Corpus (Garofolo et al., LDC93S1, 1993).

Read American English, 16 kHz 16-bit mono: 630 speakers (438 male, 192 female) of 8
dialect regions, 10 sentences each: the dialect sentences SA1 and SA2 (read by every
speaker), 5 phonetically-compact SX sentences (each text read by 7 speakers) and 3
phonetically-diverse SI sentences (each text read by this speaker only). Laid out as
``<TRAIN|TEST>/<DR1..DR8>/<speaker>/<sentence>.WAV``, where the speaker folder is the sex
(M/F) followed by initials and a digit (``FCJF0``) and the sentence is ``SA1``, ``SI648``,
``SX43``...; some copies use lower case throughout (``train/dr1/fcjf0/sa1.wav``), both are
accepted. TIMIT's standard split puts 462 speakers in ``TRAIN`` and 168 in ``TEST`` (the
"complete test set"; apart from the dialect sentences SA1/SA2, which every speaker reads,
no sentence text appears in both).

Licence: LDC User Agreement (for licence holders only; distributed by the Linguistic Data
Consortium, https://catalog.ldc.upenn.edu/LDC93S1). speakergmm cannot download it: point
``prepare`` at your copy.

Audio: the ``.WAV`` files are NIST SPHERE files, not RIFF WAV. libsndfile, hence soundfile
and speakergmm, reads (uncompressed) NIST SPHERE natively, detecting the format from the
header rather than the extension, so no conversion is needed. Copies whose ``.wav`` files
are RIFF conversions work the same way; where a converted ``SA1.WAV.wav`` sits beside the
original ``SA1.WAV``, the original is used. (Shorten-compressed SPHERE, used by some other
LDC corpora, is not readable by libsndfile; convert such files with ``sph2pipe``.)

Protocol (speaker verification, text-independent):

- UBM: every sentence of the 462 ``TRAIN`` speakers (4,620 utterances).
- Evaluation: the 168 ``TEST`` speakers. Each is enrolled on 9 of its sentences and tested
  with the remaining one, its SI sentence with the highest sentence number, compared
  as numbers (of SI648, SI1027 and SI1657 it is SI1657, although SI648 sorts last as
  text); the other 9, in sorted id order, enroll it. An SI
  sentence is the only choice whose text is read by no other speaker in the corpus, so
  no test utterance shares its text with any enrollment, the target speaker's or an
  impostor's (an SX test sentence would share its text with up to 6 other test speakers'
  enrollments, SA1 or SA2 with all of them).
- Trials: every test utterance against every test speaker, 168 target and
  168 x 167 = 28,056 non-target trials.

Utterance ids are ``<SPEAKER>-<SENTENCE>`` in upper case (``FCJF0-SA1``) whatever the case
of the files, so speaker ids prefix them, as Kaldi wants; ``wav.scp`` keeps the files' own
paths, relative to the corpus root. ``spk2gender`` comes from the speaker folder's first
letter.

Relation to the MSR Identity Toolbox demo: the toolbox's TIMIT demo (Sadjadi, Slaney and
Heck, MSR Identity Toolbox v1.0, 2013; ``demo_gmm_ubm.m``) trains the UBM on 530 speakers
and tests 100 others (30 female, 70 male), enrolling each on 9 sentences and testing it on
the remaining one: 100 target and 9,900 impostor trials. The issue that asked for this
corpus quoted "530 background, 168 test speakers", which cannot both hold (530 + 168 =
698 > 630). The toolbox names neither its 100 test speakers nor its test sentence (its
list files are not distributed with it), so its split cannot be reproduced; this module
uses TIMIT's own documented train/test split instead, with the 9 + 1 sentence rule above.
Results are therefore not directly comparable with the toolbox demo's.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..data.datadir import DataDir
from ..errors import SpeakerGMMError
from ._protocol import Protocol, all_vs_all, subset

__all__ = ["prepare_timit", "scan_timit", "held_out_sentence", "SETS", "SPEAKERS"]

#: Protocol part -> TIMIT set folder (upper-case name; lower case is accepted too).
SETS = {"ubm": "TRAIN", "eval": "TEST"}
#: Speakers of each set in the complete corpus.
SPEAKERS = {"TRAIN": 462, "TEST": 168}
#: Sentences of each type every TIMIT speaker read.
SENTENCES = {"SA": 2, "SI": 3, "SX": 5}

_DIALECT = re.compile(r"DR[1-8]", re.IGNORECASE)
_SPEAKER = re.compile(r"[MF][A-Z]{3}[0-9]", re.IGNORECASE)
# SA1.WAV, sa1.wav, and the RIFF conversions some copies add beside them (SA1.WAV.wav).
_AUDIO = re.compile(r"(S[AIX][0-9]+)\.WAV(\.WAV)?", re.IGNORECASE)


def _set_folder(root: Path, name: str) -> Path:
    """``root/TRAIN`` or ``root/train``; a clear error naming the fix otherwise."""
    if root.is_dir():
        for child in sorted(root.iterdir()):
            if child.is_dir() and child.name.upper() == name:
                return child
    hint = ""
    if root.is_dir():  # a common mistake: pointing one level too high
        for child in sorted(root.iterdir()):
            if child.is_dir() and {"TRAIN", "TEST"} <= {
                    c.name.upper() for c in child.iterdir() if c.is_dir()}:
                hint = f" (did you mean {child}?)"
                break
    raise SpeakerGMMError(f"{root}: no {name}/ (or {name.lower()}/) folder; point at the TIMIT "
                          f"root, the folder that holds TRAIN/ and TEST/{hint}. TIMIT (LDC93S1) "
                          "is licensed by the LDC: https://catalog.ldc.upenn.edu/LDC93S1")


def scan_timit(corpus_root: str | os.PathLike, part: str) -> DataDir:
    """Every sentence of TIMIT set ``part`` (``"TRAIN"`` or ``"TEST"``) as a data directory.

    Parameters
    ----------
    corpus_root : path-like
        The folder that holds ``TRAIN/`` and ``TEST/`` (either case).
    part : {"TRAIN", "TEST"}

    Returns
    -------
    DataDir
        Utterance ids ``<SPEAKER>-<SENTENCE>``, ``wav.scp`` paths relative to
        ``corpus_root``, ``spk2gender`` from the speaker folder names.

    Raises
    ------
    SpeakerGMMError
        The set folder is missing, a folder does not follow the TIMIT layout, a speaker
        appears twice, or a speaker has not exactly the 10 sentences TIMIT gives every
        speaker (SA1, SA2, 3 SI, 5 SX); the message names the folder.
    """
    root = Path(corpus_root)
    folder = _set_folder(root, part)
    wav: dict[str, str] = {}
    utt2spk: dict[str, str] = {}
    gender: dict[str, str] = {}
    where: dict[str, Path] = {}
    dialects = [d for d in sorted(folder.iterdir()) if d.is_dir() and _DIALECT.fullmatch(d.name)]
    if not dialects:
        raise SpeakerGMMError(f"{folder}: no dialect-region folders DR1..DR8; this is not a "
                              "TIMIT set folder (expected <DR>/<speaker>/<sentence>.WAV)")
    for dialect in dialects:
        for spk_dir in sorted(p for p in dialect.iterdir() if p.is_dir()):
            if not _SPEAKER.fullmatch(spk_dir.name):
                raise SpeakerGMMError(f"{spk_dir}: not a TIMIT speaker folder (expected the sex "
                                      "M/F, 3 initials and a digit, e.g. FCJF0)")
            spk = spk_dir.name.upper()
            if spk in where:
                raise SpeakerGMMError(f"speaker {spk} appears twice: {where[spk]} and {spk_dir}")
            where[spk] = spk_dir
            files: dict[str, Path] = {}
            for path in sorted(spk_dir.iterdir()):
                match = _AUDIO.fullmatch(path.name)
                if match and path.is_file():
                    sentence = match.group(1).upper()
                    # The original SPHERE file wins over a converted copy beside it.
                    if sentence not in files or match.group(2) is None:
                        files[sentence] = path
            _check_sentences(spk_dir, sorted(files))
            gender[spk] = spk[0].lower()
            for sentence, path in files.items():
                utt = f"{spk}-{sentence}"
                wav[utt] = path.relative_to(root).as_posix()
                utt2spk[utt] = spk
    if not wav:
        raise SpeakerGMMError(f"{folder}: no speaker folders with .WAV files")
    return DataDir(wav_scp=wav, utt2spk=utt2spk, spk2gender=gender)


def _check_sentences(spk_dir: Path, sentences: list[str]) -> None:
    counts = {kind: sum(s.startswith(kind) for s in sentences) for kind in SENTENCES}
    if counts != SENTENCES or not {"SA1", "SA2"} <= set(sentences):
        found = ", ".join(sentences) or "none"
        raise SpeakerGMMError(f"{spk_dir}: every TIMIT speaker has 10 sentences (SA1, SA2, 3 SI "
                              f"and 5 SX .WAV files); found {found}. Restore the missing files "
                              "from your TIMIT copy")


def held_out_sentence(utterances: list[str]) -> str:
    """The test utterance of one speaker: its SI sentence with the highest number.

    ``utterances`` are the speaker's ids (``FDHC0-SI929``, ...).
    """
    si = [u for u in utterances if u.rsplit("-", 1)[1].startswith("SI")]
    if not si:
        raise SpeakerGMMError(f"no SI sentence among {', '.join(utterances)}")
    return max(si, key=lambda u: int(u.rsplit("-", 1)[1][2:]))


def prepare_timit(corpus_root: str | os.PathLike,
                  output_dir: str | os.PathLike | None = None, *,
                  complete: bool = True) -> Protocol:
    """Write the protocol's data directories, enrollment map and trials.

    Parameters
    ----------
    corpus_root : path-like
        The TIMIT root: the folder that holds ``TRAIN/`` and ``TEST/`` (or ``train/``,
        ``test/``).
    output_dir : path-like
        Receives ``ubm/``, ``enroll/``, ``test/`` (data directories whose ``wav.scp``
        paths are relative to the corpus root: pass it as ``--audio-root``),
        ``enroll_map`` (speaker -> its 9 enrollment utterances), ``trials``
        (``<speaker> <test-utt> target|nontarget``) and a README.
    complete : bool
        Require the complete corpus (462 ``TRAIN`` and 168 ``TEST`` speakers). False
        accepts fewer speakers (a partial copy, tests); the README states the counts. On
        the command line: ``speakergmm prepare --allow-incomplete``.

    Returns
    -------
    dict
        Name -> path of everything written.

    Raises
    ------
    SpeakerGMMError
        Not a TIMIT root, a malformed speaker folder, or (with ``complete``) speakers
        missing; the message names the folder and the fix.
    """
    root = Path(corpus_root)
    ubm = scan_timit(root, SETS["ubm"])
    evaluation = scan_timit(root, SETS["eval"])
    counts = {SETS["ubm"]: len(ubm.speakers), SETS["eval"]: len(evaluation.speakers)}
    if complete and counts != SPEAKERS:
        found = ", ".join(f"{n} {name}" for name, n in counts.items())
        raise SpeakerGMMError(f"{root}: the complete TIMIT has {SPEAKERS['TRAIN']} TRAIN and "
                              f"{SPEAKERS['TEST']} TEST speakers, found {found}; point at a "
                              "complete copy, or accept a subset with 'speakergmm prepare "
                              "--allow-incomplete' (complete=False in Python)")
    overlap = sorted(set(ubm.speakers) & set(evaluation.speakers))
    if overlap:
        raise SpeakerGMMError(f"{root}: speaker {overlap[0]} is in both TRAIN and TEST")
    enroll_map, tests = {}, []
    for spk, utts in evaluation.spk2utt.items():
        held_out = held_out_sentence(utts)
        tests.append(held_out)
        enroll_map[spk] = [u for u in utts if u != held_out]
    enroll = subset(evaluation, [u for utts in enroll_map.values() for u in utts])
    test = subset(evaluation, tests)
    n_eval = len(enroll_map)
    header = (f"speakers: {counts['TRAIN']} background (TRAIN), {n_eval} evaluation (TEST); "
              f"trials: {n_eval} target, {n_eval * (n_eval - 1)} non-target\n\n")
    protocol = Protocol("timit", root, {"ubm": ubm, "enroll": enroll, "test": test},
                        {"enroll_map": enroll_map},
                        {"trials": all_vs_all(sorted(enroll_map), test)},
                        header + __doc__.strip())
    if output_dir is not None:
        protocol.write(output_dir)
    return protocol
