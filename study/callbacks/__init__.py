"""The driver's Tune callbacks, one job each (`study.runner` passes them to the Tuner):

- `record.ResultFiles`: each trial's params.json and result.json, the record that status,
  report and resume read;
- `console.ProgressLines`: one readable progress line per reporting interval and the
  study's estimated wall time, instead of Ray's verbose tables;
- `pruning.PruneFinished`: a finished trial's older checkpoints deleted;
- `mirror.MirrorUploads`: a remote experiment's driver files kept current in the bucket;
- `tensorboard_curves.TensorBoardScalars`: TensorBoard curves.

The attributes of Ray's Trial they read are pinned by tests/test_dependency_contracts.py.
"""
