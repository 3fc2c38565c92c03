"""Free Spoken Digit Dataset (FSDD).

6 speakers (all male), 50 recordings of each digit 0-9 per speaker, 3,000 files of
0.3-0.8 s, 8 kHz mono 16-bit WAV named ``recordings/{digit}_{speaker}_{index}.wav``.
Source: Jakobovski et al., https://github.com/Jakobovski/free-spoken-digit-dataset.
Licence: Creative Commons Attribution-ShareAlike 4.0 International (CC BY-SA 4.0).

Protocol (speaker verification, text-dependent on digits): for every speaker and digit,
recordings 0-4 enroll the speaker (50 per speaker), 10-39 train the UBM (1,800 files),
40-49 are tests (600). Every test recording is tried against every speaker: 600 target and
3,000 non-target trials. Recordings 5-9 form a development set (``dev/``, ``dev_trials``:
300 target and 1,500 non-target trials against the same enrolled speakers) for
calibration and tuning.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..data.datadir import DataDir
from ..errors import SpeakerGMMError
from ._download import file_digest, unpacked_download
from ._protocol import Protocol, all_vs_all

__all__ = ["download_fsdd", "prepare_fsdd", "URL", "SPEAKERS"]

URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/heads/master.zip"
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
SPLITS = {"enroll": range(0, 5), "dev": range(5, 10), "ubm": range(10, 40),
          "test": range(40, 50)}
_CHECKSUMS = Path(__file__).with_name("fsdd.sha256")


def _expected() -> dict[str, str]:
    """File name -> SHA-256 of the 3,000 recordings this protocol was defined on."""
    pairs = (line.split() for line in _CHECKSUMS.read_text().splitlines() if line.strip())
    return {name: digest for digest, name in pairs}


def verify_fsdd(corpus_root: str | os.PathLike, *, checksums: bool = True) -> Path:
    """Check that ``corpus_root/recordings`` holds the 3,000 expected files.

    Returns the recordings folder. Raises :class:`SpeakerGMMError` naming the missing,
    extra or (with ``checksums``) altered files.
    """
    rec = Path(corpus_root) / "recordings"
    if not rec.is_dir():
        raise SpeakerGMMError(f"{corpus_root}: no 'recordings' folder; point at the FSDD "
                              "root (the folder that holds recordings/), or download it with "
                              "'speakergmm download fsdd DIR'")
    expected = _expected()
    present = {p.name for p in rec.glob("*.wav")}
    missing = sorted(set(expected) - present)
    if missing:
        raise SpeakerGMMError(f"{rec}: {len(missing)} of {len(expected)} recordings missing "
                              f"(e.g. {', '.join(missing[:3])})")
    if checksums:
        bad = [n for n in sorted(expected)
               if file_digest(rec / n, "sha256") != expected[n]]
        if bad:
            raise SpeakerGMMError(f"{rec}: {len(bad)} recording(s) differ from the reference "
                                  f"version (checksum mismatch: {', '.join(bad[:3])})")
    return rec


def download_fsdd(target_dir: str | os.PathLike, *, url: str = URL, progress=None) -> Path:
    """Download FSDD into ``target_dir`` (which then holds ``recordings/``) and verify it.

    Does nothing but verify when the recordings are already there. The archive is
    downloaded and unpacked (safely: see :func:`~speakergmm.corpora._download.safe_extract`)
    into a temporary folder inside the target, and its ``recordings/`` moved into place by
    one rename only once every file's SHA-256 matches, so an interrupted or failed download
    leaves nothing half-done.

    Parameters
    ----------
    target_dir : path-like
    url : str
        Where the archive is (default: the dataset's GitHub archive, :data:`URL`).
    progress : callable, optional
        ``progress(bytes_so_far, total_bytes_or_None)``, called as the archive arrives.

    Returns
    -------
    Path
        ``target_dir``, the corpus root to pass to :func:`prepare_fsdd`.

    Raises
    ------
    SpeakerGMMError
        The archive cannot be downloaded, is damaged or unsafe, or its recordings are
        missing or altered; the message names the URL or files.
    """
    target = Path(target_dir)
    if (target / "recordings").is_dir():
        return verify_fsdd(target).parent
    with unpacked_download(url, target, archive="fsdd.zip", holding="recordings",
                           layout="FSDD's recordings/ folder", what="FSDD",
                           fix="download it by hand and point FSDD_ROOT / --corpus-root at it",
                           progress=progress) as corpus:
        verify_fsdd(corpus).rename(target / "recordings")
    return target


def prepare_fsdd(corpus_root: str | os.PathLike, output_dir: str | os.PathLike | None = None,
                 *, checksums: bool = True) -> Protocol:
    """Write the protocol's data directories, enrollment map and trials.

    Output: ``ubm/``, ``enroll/``, ``dev/``, ``test/`` (data directories whose ``wav.scp`` paths are
    relative to the corpus root: pass it as ``--audio-root``, so the files are portable),
    ``enroll_map`` (speaker -> enrollment utterances), ``trials`` and ``dev_trials``
    (``<speaker> <test-utt> target|nontarget``). Utterance ids are
    ``<speaker>-<digit>-<index>`` so that speaker ids prefix them, as Kaldi wants.

    Returns
    -------
    Protocol
        Validated; written under ``output_dir`` when one is given (``paths`` says where).
    """
    rec = verify_fsdd(corpus_root, checksums=checksums)
    splits: dict[str, tuple[dict, dict]] = {name: ({}, {}) for name in SPLITS}
    for path in sorted(rec.glob("*.wav")):
        digit, spk, index = path.stem.split("_")
        for name, indices in SPLITS.items():
            if int(index) in indices:
                utt = f"{spk}-{digit}-{int(index):02d}"
                splits[name][0][utt] = f"recordings/{path.name}"
                splits[name][1][utt] = spk
    dirs = {name: DataDir(wav_scp=w, utt2spk=u2s) for name, (w, u2s) in splits.items()}
    enroll = splits["enroll"][1]
    protocol = Protocol(
        "fsdd", Path(corpus_root), dirs,
        {"enroll_map": {s: sorted(u for u in enroll if enroll[u] == s) for s in SPEAKERS}},
        {key: all_vs_all(list(SPEAKERS), dirs[part])
         for part, key in (("test", "trials"), ("dev", "dev_trials"))}, __doc__)
    if output_dir is not None:
        protocol.write(output_dir)
    return protocol
