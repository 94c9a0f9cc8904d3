"""Where a trial's files are, for the callbacks that write or delete them."""

from __future__ import annotations

from typing import Any


def remote_filesystem(trial: Any) -> Any:
    """The pyarrow file system of a trial on object storage; None for a local folder."""
    filesystem = trial.storage.storage_filesystem
    return None if filesystem.type_name == "local" else filesystem


def driver_folder(trial: Any) -> str:
    """Where the driver writes a trial's files: its folder, or on object storage Tune's local
    staging copy, which Ray uploads with its own files."""
    return trial.path if remote_filesystem(trial) is None else trial.local_path
