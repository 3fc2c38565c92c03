"""The speaker store: enrolled speakers in one SQLite file.

One file holds every speaker enrolled against one UBM: their summed Baum-Welch statistics,
zeroth and first order in float32, the precision the E-step computes them in (123 KB per
speaker at K = 512, D = 60), and one derived term per component (2 KB): the bias of the
means-only model (:func:`~speakergmm.gmm.adapt.map_offset_bias`), which identification over
thousands of speakers would otherwise make again at every call (a quarter of its time).
Speakers whose variances are adapted also keep the second order, and all three in float64
(the adapted variance is a difference of second moments, which float32 sums would blur):
490 KB each. Enrolling more audio later adds statistics, so it gives the model enrolling
everything at once would, to float32 rounding. The MAP-adapted parameters are computed from
the statistics when a speaker is scored, for thousands of speakers at once, and
identification reads the store in blocks, so its memory does not grow with the number of
speakers. The store also records the fingerprints of the UBM and of the channel
compensation, utterance counts, seconds of speech and timestamps.

Stores written by earlier versions are migrated on first use, in one transaction: schema 1
(float64 statistics of every order and stored adapted parameters, about 0.7 MB per speaker)
with a warning saying so, nothing lost but the derived parameters; schema 2 (no biases)
gains the column, and the next enrollment, which has the UBM at hand, fills it.

Every change is one ``BEGIN IMMEDIATE`` transaction in WAL mode, so concurrent ``enroll``
processes are serialised by SQLite and lose nothing, and a crash leaves the store as it was
before the change. All SQL is parameterised.

The package keeps its jobs apart: :mod:`.database` (the SQLite file, schema, migrations,
transactions), :mod:`.records` (speakers, bindings, trials; no scoring), :mod:`.selfcal`
(the store's own calibration) and :mod:`.models` (speakers as scoring models);
:class:`SpeakerStore` joins them.

The default store is ``$SPEAKERGMM_HOME/speakers.db``, with ``SPEAKERGMM_HOME`` defaulting
to ``$XDG_DATA_HOME/speakergmm`` or ``~/.local/share/speakergmm``.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from ..backend.calibration import Calibration
from ..gmm.mixture import DiagGMM
from . import models as _models
from . import selfcal as _selfcal
from .database import (
    SCHEMA_VERSION,
    BadSpeakerId,
    SpeakerExists,
    StoreBusy,
    StoreError,
    StoreMigrated,
    UnknownSpeaker,
    default_store_path,
)
from .models import BLOCK
from .records import SpeakerInfo, SpeakerRecords, StatisticsBlock, check_speaker_id
from .selfcal import (
    AUTO_CALIBRATION,
    MIN_CALIBRATION,
    calibration_advice,
    describe_store,
    store_summary,
)

__all__ = ["SpeakerStore", "SpeakerInfo", "StatisticsBlock", "StoreError", "StoreMigrated",
           "UnknownSpeaker", "SpeakerExists", "BadSpeakerId", "StoreBusy",
           "default_store_path", "check_speaker_id", "MIN_CALIBRATION", "AUTO_CALIBRATION",
           "SCHEMA_VERSION", "describe_store", "store_summary", "calibration_advice"]


class SpeakerStore(SpeakerRecords):
    """Enrolled speakers of one UBM in an SQLite file: the records
    (:class:`~.records.SpeakerRecords`), with the store's own calibration
    (:mod:`.selfcal`) and its speakers as scoring models (:mod:`.models`).

    Parameters as :class:`~.database.Database`: the file and the seconds to wait for
    another process's transaction.
    """

    def remove(self, speaker_id: str) -> Calibration | None:
        """:func:`.selfcal.remove`: the speaker gone, the store's calibration learnt again
        without its trials (or dropped), in one transaction."""
        return _selfcal.remove(self, speaker_id)

    def calibrate(self, *, prior: float = 0.01) -> Calibration:
        """:func:`.selfcal.calibrate`."""
        return _selfcal.calibrate(self, prior=prior)

    def calibration(self) -> Calibration | None:
        """:func:`.selfcal.calibration`."""
        return _selfcal.calibration(self)

    def has_trials(self, needed: dict, trials=None) -> bool:
        """:func:`.selfcal.has_trials`."""
        return _selfcal.has_trials(self, needed, trials)

    def model_sets(self, ubm: DiagGMM, channel: str | None = None, *, block: int = BLOCK,
                   ids=None) -> Iterator:
        """:func:`.models.model_sets`."""
        return _models.model_sets(self, ubm, channel, block=block, ids=ids)

    def adapted(self, speaker_id: str, ubm: DiagGMM, channel: str | None = None) -> DiagGMM:
        """:func:`.models.adapted`."""
        return _models.adapted(self, speaker_id, ubm, channel)

    def parameters(self, ubm: DiagGMM, channel: str | None = None
                   ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """:func:`.models.parameters`."""
        return _models.parameters(self, ubm, channel)
