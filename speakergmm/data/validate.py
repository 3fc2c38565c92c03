"""Validation of data directories, the way Kaldi's ``utils/validate_data_dir.sh`` does it:
every problem reported with its file, line and fix."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable

from .datadir import _FILES
from .datadir import spk2utt as _spk2utt
from .textmap import Problem, _scan

__all__ = ["Problem", "validate_data_dir"]

_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-+@:")
_ID_HINT = "ids become file names, so use only letters, digits and _ . - + @ :"
_REGEN = ("regenerate spk2utt from utt2spk (Kaldi: utils/utt2spk_to_spk2utt.pl utt2spk > "
          "spk2utt, or speakergmm.data.write_data_dir(d, read_data_dir(d)))")
_FIX = "(Kaldi: utils/fix_data_dir.sh removes such entries)"


# --------------------------------------------------------------------------- validation


def _check_ids(line_of: dict[str, int], kind: str, add: Callable) -> None:
    # One superset test over all ids at once; per-id work only when something is wrong.
    if _ID_CHARS.issuperset("".join(line_of)):
        return
    for ident, line in line_of.items():
        if bad := "".join(sorted(set(ident) - _ID_CHARS)):
            add(line, f"{kind} id '{ident}' contains {bad!r}; {_ID_HINT}")


def validate_data_dir(path: str | os.PathLike, *, audio_root: str | os.PathLike | None = None,
                      check_audio: bool = True) -> list[Problem]:
    """Check a data directory the way Kaldi's ``utils/validate_data_dir.sh`` does.

    Every problem is reported, not only the first, each with its file and (where there is
    one) line; an empty list means the directory is clean. Unknown files are ignored.

    Parameters
    ----------
    path : path-like
        The data directory.
    audio_root : path-like, optional
        Directory that relative ``wav.scp`` paths resolve against [default: current
        directory]. Pipe commands (``... |``) are never checked.
    check_audio : bool
        Check that every audio file exists.

    Returns
    -------
    list of Problem
        Sorted by file, then line (file-level problems first).
    """
    d = Path(path)
    if not d.is_dir():
        return [Problem(str(d), None, "not a directory")]
    problems: list[Problem] = []

    def add(name: str, line: int | None, message: str) -> None:
        problems.append(Problem(str(d / name), line, message))

    def load(name: str):
        if not (d / name).is_file():
            return None, {}
        return _scan(d / name, problems=problems, **_FILES[name])

    def orphans(name: str, keys, line_of: dict, known, message: str) -> None:
        # A missing or unreadable side (None) is reported once, not once per entry.
        for key in () if keys is None or known is None else keys:
            if key not in known:
                add(name, line_of.get(key), message.format(key))

    wav, wav_l = load("wav.scp")
    u2s, u2s_l = load("utt2spk")
    if u2s is not None and not u2s:
        add("utt2spk", None, "no utterances; a data directory lists at least one")
    s2u, s2u_l = load("spk2utt")
    seg, seg_l = load("segments")
    dur, dur_l = load("utt2dur")
    gen, gen_l = load("spk2gender")

    for name in ("wav.scp", "utt2spk"):
        if not (d / name).is_file():
            add(name, None, "missing: every data directory needs wav.scp and utt2spk")
    if not (d / "spk2utt").is_file() and u2s is not None:
        add("spk2utt", None, f"missing: {_REGEN}")
    for name, kind, line_of in (("wav.scp", "recording", wav_l), ("utt2spk", "utterance", u2s_l),
                                ("spk2utt", "speaker", s2u_l), ("segments", "utterance", seg_l),
                                ("utt2dur", "utterance", dur_l), ("spk2gender", "speaker", gen_l)):
        _check_ids(line_of, kind, lambda line, msg, name=name: add(name, line, msg))
    _check_ids({spk: u2s_l[utt] for utt, spk in (u2s or {}).items()}, "speaker",
               lambda line, msg: add("utt2spk", line, msg))
    # Kaldi keeps utt2spk sorted by utterance and assumes it is then sorted by speaker too.
    spk2utt = None if u2s is None else _spk2utt(u2s)
    ordered, prev_utt, prev_spk = True, None, None
    for utt in sorted(u2s or ()):
        spk = u2s[utt]
        if ordered and prev_spk is not None and spk < prev_spk:
            ordered = False  # the first disagreement is enough to act on
            add("utt2spk", u2s_l[utt],
                f"utterance '{utt}' of speaker '{spk}' sorts after '{prev_utt}' of speaker "
                f"'{prev_spk}', so sorting by speaker and by utterance disagree; make speaker "
                f"ids prefixes of utterance ids (e.g. '{spk}-{utt}')")
        prev_utt, prev_spk = utt, spk

    if seg is not None:
        for utt, (rec, start, end) in seg.items():
            where = ("segments", seg_l[utt])  # (times are checked as the file is read)
            if wav is not None and rec not in wav:
                add(*where, f"recording '{rec}' of utterance '{utt}' is not in wav.scp; add it "
                            f"or remove the segment {_FIX}")
        orphans("segments", seg, seg_l, u2s, "utterance '{}' has no speaker in utt2spk " + _FIX)
        orphans("utt2spk", u2s, u2s_l, seg, "utterance '{}' has no segment in segments; add "
                                            "one or remove the utterance " + _FIX)
        orphans("wav.scp", wav, wav_l, {rec for rec, _, _ in seg.values()},
                "recording '{}' is used by no segment in segments " + _FIX)
    else:  # without segments, recording id == utterance id
        orphans("utt2spk", u2s, u2s_l, wav, "utterance '{}' has no recording in wav.scp; add "
                                            "one or remove the utterance " + _FIX)
        orphans("wav.scp", wav, wav_l, u2s, "recording '{}' has no speaker in utt2spk; add it "
                                            "to utt2spk or remove it " + _FIX)

    if s2u is not None and spk2utt is not None:  # exactly what utt2spk implies
        seen: dict[str, int] = {}
        for spk, utts in s2u.items():
            line = s2u_l[spk]
            for utt in utts:
                if utt in seen:
                    add("spk2utt", line, f"utterance '{utt}' listed twice (also on line "
                                         f"{seen[utt]}); {_REGEN}")
                seen.setdefault(utt, line)
            want = spk2utt.get(spk)
            if want is None or utts == want:
                continue
            missing, extra = sorted(set(want) - set(utts)), sorted(set(utts) - set(want))
            if missing or extra:
                add("spk2utt", line, f"utterances of speaker '{spk}' disagree with utt2spk "
                                     f"(missing: {_few(missing)}; not in utt2spk for this "
                                     f"speaker: {_few(extra)}); {_REGEN}")
            elif len(set(utts)) == len(utts):
                add("spk2utt", line, f"utterances of speaker '{spk}' are not sorted; {_REGEN}")
        orphans("spk2utt", s2u, s2u_l, spk2utt, "speaker '{}' is not in utt2spk; " + _REGEN)
        orphans("spk2utt", spk2utt, {}, s2u, "speaker '{}' of utt2spk is missing; " + _REGEN)

    if dur is not None:
        for utt, seconds in dur.items():
            if not (math.isfinite(seconds) and seconds > 0):
                add("utt2dur", dur_l[utt], f"duration {seconds} of utterance '{utt}' must be a "
                                           "positive number; recompute it or drop the utterance")
        orphans("utt2dur", dur, dur_l, u2s, "utterance '{}' is not in utt2spk " + _FIX)
        orphans("utt2dur", u2s, {}, dur, "utterance '{}' has no duration; recompute utt2dur")

    if gen is not None:
        for spk, gender in gen.items():
            if gender not in ("m", "f"):
                add("spk2gender", gen_l[spk], f"gender '{gender}' of speaker '{spk}' must be "
                                              "'m' or 'f'")
        orphans("spk2gender", gen, gen_l, spk2utt, "speaker '{}' is not in utt2spk " + _FIX)
        orphans("spk2gender", spk2utt, {}, gen, "speaker '{}' has no gender")

    if check_audio and wav:
        _check_audio(wav, wav_l, audio_root, lambda line, msg: add("wav.scp", line, msg))
    return sorted(problems, key=lambda p: (p.file, -1 if p.line is None else p.line))


def _check_audio(wav: dict[str, str], line_of: dict[str, int], audio_root, add) -> None:
    root = None if audio_root is None else os.fspath(audio_root)
    where = "the current directory" if root is None else f"'{root}'"
    for rec, entry in wav.items():
        if entry.endswith("|"):
            continue  # a command: whatever it reads is its own business
        full = entry if root is None or os.path.isabs(entry) else os.path.join(root, entry)
        if not os.path.isfile(full):
            hint = "" if os.path.isabs(entry) else (
                f"; relative paths resolve against {where}: pass audio_root (CLI: "
                "--audio-root) if they are relative to another directory")
            add(line_of[rec], f"audio file '{full}' of recording '{rec}' not found{hint}")


def _few(items: list[str], n: int = 5) -> str:
    if not items:
        return "none"
    shown = ", ".join(items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


