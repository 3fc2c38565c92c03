"""The ``speakergmm`` command: a click group (:mod:`.app`) and its commands, one module per
stage; each command parses options around one library call."""

from . import corpora, data, diarization, models, speakers, trials  # noqa: F401  (they register commands)
from .app import main

__all__ = ["main"]
