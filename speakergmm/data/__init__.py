"""Data: Kaldi text maps, data directories and their validation, trial lists, enrollment
maps and score files. The bottom layer: it imports nothing of speakergmm but errors and
file helpers."""

from .datadir import AudioRef, DataDir, read_data_dir, spk2utt, write_data_dir
from .scores import (as_scores, key_scores, labelled_scores, read_scores, write_scores)
from .textmap import read_kaldi_map, write_kaldi_map
from .trials import Trials, read_enroll_map, read_trials, write_enroll_map, write_trials
from .validate import Problem, validate_data_dir

__all__ = ["AudioRef", "DataDir", "Problem", "Trials", "as_scores", "key_scores",
           "labelled_scores", "read_data_dir", "read_enroll_map", "read_kaldi_map",
           "read_scores", "read_trials", "spk2utt", "validate_data_dir", "write_data_dir",
           "write_enroll_map", "write_kaldi_map", "write_scores", "write_trials"]
