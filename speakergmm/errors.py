"""Exception types.

Every error speakergmm raises on bad input derives from :class:`SpeakerGMMError`, whichever
module raises it; the CLI turns it into one readable line and exit status 2. Any other
exception (a TypeError or ValueError from numpy, say) is a bug: the CLI says "internal
error" with the ``--debug`` hint. Messages name the file, the utterance or the value at
fault, and say how to fix it where there is a fix.
"""


def plain(text: str) -> str:
    """``text`` with its control characters (newlines, terminal escape sequences) shown
    escaped: what reaches a terminal from a file or a user cannot split a message or
    drive the terminal."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)


def printable(value, limit: int = 60) -> str:
    """``value`` quoted for a message (:func:`plain`, long values cut): for what comes from
    files and users (ids, table names, metadata)."""
    text = plain(str(value))
    return repr(text if len(text) <= limit else text[:limit - 3] + "...")


class SpeakerGMMError(Exception):
    """Base class of the errors speakergmm raises on bad input or bad files."""


class AudioError(SpeakerGMMError):
    """An audio file is missing, unreadable, truncated, empty or holds non-finite samples."""


class FeatureError(SpeakerGMMError):
    """Features cannot be computed (e.g. no speech left after VAD) or a config is invalid."""


class DataDirError(SpeakerGMMError):
    """A Kaldi-style data directory or trial list is malformed."""


class ArchiveError(SpeakerGMMError):
    """A feature archive is missing, incomplete or was written with another config."""


class ModelError(SpeakerGMMError):
    """A model file is missing, corrupt or does not match what it is used with."""


class CalibrationError(SpeakerGMMError):
    """Scores cannot be calibrated (or fused) as given: the targets rank below the
    non-targets, so decisions from them would be the wrong way round (labels swapped, or
    another system's scores)."""


class ParameterError(SpeakerGMMError, ValueError, TypeError):
    """An argument of a library call is invalid: out of range, of the wrong kind or shape,
    non-finite, or a name the call does not know. Also a ValueError and a TypeError, as
    numpy and scikit-learn raise for these, so that code written for them still catches it."""


class NotFittedError(SpeakerGMMError, ValueError, AttributeError):
    """A model is used before it is fitted or loaded (as scikit-learn's NotFittedError)."""


class SpeakerGMMWarning(UserWarning):
    """Something the user should know that does not stop the work (the CLI prints it as one
    ``note:`` line)."""
