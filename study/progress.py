"""The callbacks' old home, kept for experiments written before `study.callbacks` existed:
Tune pickles the run's callbacks into an experiment's tuner.pkl by module path, so a study
interrupted under an earlier version names these classes here when it resumes
(tests/study/test_upgrade.py resumes such a kept experiment). New code imports
`study.callbacks`."""

from study.callbacks.console import ProgressLines
from study.callbacks.mirror import MirrorUploads
from study.callbacks.pruning import PruneFinished
from study.callbacks.record import ResultFiles
from study.callbacks.tensorboard_curves import TensorBoardScalars

__all__ = ["MirrorUploads", "ProgressLines", "PruneFinished", "ResultFiles",
           "TensorBoardScalars"]
