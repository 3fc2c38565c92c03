"""Corpus preparation: one module per corpus, each with the same two functions.

``prepare_<corpus>(corpus_root, output_dir)`` writes validated Kaldi-style data directories,
enrollment maps and trial lists for the corpus's documented protocol; where the corpus is
freely downloadable, ``download_<corpus>(target_dir)`` fetches it from its official location
and verifies it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: Corpora speakergmm can prepare.
CORPORA = ("fsdd", "librispeech", "speechocean762", "timit", "voxceleb1")
#: Data ``speakergmm prepare`` makes from another data directory rather than a corpus.
SIMULATED = ("conversations",)


def corpus_module(name: str) -> ModuleType:
    """The module of corpus ``name`` (one of :data:`CORPORA`)."""
    from ..errors import SpeakerGMMError

    if name not in CORPORA + SIMULATED:
        raise SpeakerGMMError(f"unknown corpus {name!r}; known corpora: {', '.join(CORPORA)} "
                              f"(and {', '.join(SIMULATED)} from a data directory)")
    return importlib.import_module(f"{__name__}.{name}")
