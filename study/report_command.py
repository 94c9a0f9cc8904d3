"""`wae-study report`: the report of a finished or partial study."""

from __future__ import annotations

from pathlib import Path

from study import spec as specs


def report(experiment_dir: Path, out: Path | None, data_path: Path | None) -> int:
    from analysis.report import write_report
    from trainables import data as dsdata

    data_path = specs.data_path_for(experiment_dir, data_path)
    dataset = dsdata.load(data_path) if data_path or dsdata.default_path().exists() else None
    folder = write_report(experiment_dir, out_dir=out, data=dataset)
    print(folder / "index.html")
    return 0
