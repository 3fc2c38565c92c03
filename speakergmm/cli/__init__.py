"""The ``speakergmm`` command: a click group (:mod:`.app`) and its commands, one module per
stage; each command parses options around one library call."""

from . import (  # noqa: F401  (they register commands)
    corpora,
    data,
    diarization,
    models,
    serve,
    speakers,
    trials,
)
from .app import main

__all__ = ["main"]
