"""Who spoke when: speaker diarization with the classical back-end (issue 23).

- :class:`Diarizer` (:mod:`.diarizer`): speech detection, i-vectors of windows, PLDA,
  agglomerative clustering at a calibrated threshold, Viterbi resegmentation;
- :func:`train_diarizer`, :func:`calibrate_pairs` (:mod:`.training`): the models a
  diarizer adds to a system, and the calibration of its window pairs;
- :func:`track` (:mod:`.tracking`): who among a store's enrolled speakers speaks when;
- :func:`plot_timeline` (:mod:`.plot`): a lane per speaker.
"""

from .diarizer import (
                       FORMAT_NAME,
                       FORMAT_VERSION,
                       Diarization,
                       Diarizer,
                       speech_features,
                       speech_windows,
                       viterbi_labels,
)
from .plot import plot_timeline
from .tracking import Tracking, track
from .training import calibrate_pairs, conversation_recordings, train_diarizer

__all__ = ["Diarizer", "Diarization", "viterbi_labels", "speech_windows", "speech_features",
           "train_diarizer", "calibrate_pairs", "conversation_recordings", "plot_timeline",
           "Tracking", "track", "FORMAT_NAME",
           "FORMAT_VERSION"]
