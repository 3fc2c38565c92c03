"""Data: Kaldi text maps, data directories and their validation, trial lists, enrollment
maps and score files. The bottom layer: it imports nothing of speakergmm but errors and
file helpers."""

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "AudioRef": "datadir", "DataDir": "datadir", "read_data_dir": "datadir",
    "spk2utt": "datadir", "write_data_dir": "datadir", "as_scores": "scores",
    "key_scores": "scores", "labelled_scores": "scores", "read_scores": "scores",
    "write_scores": "scores", "read_kaldi_map": "textmap", "write_kaldi_map": "textmap",
    "Trials": "trials", "read_enroll_map": "trials", "read_trials": "trials",
    "write_enroll_map": "trials", "write_trials": "trials", "Problem": "textmap",
    "validate_data_dir": "validate",
})
