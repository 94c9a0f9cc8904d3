"""`wae-study report`: the report of a finished or partial study."""

from __future__ import annotations

import tomllib
from pathlib import Path

from study import spec as specs


def report(experiment_dir: Path, out: Path | None, data_path: Path | None) -> int:
    from analysis.report import write_report
    from trainables import data as dsdata

    spec_path = specs.spec_path(experiment_dir)
    if data_path is None:
        data_path = tomllib.loads(spec_path.read_text()).get("train", {}).get("data_path")
    dataset = dsdata.load(data_path) if data_path or dsdata.default_path().exists() else None
    folder = write_report(experiment_dir, out_dir=out, data=dataset)
    print(folder / "index.html")
    return 0
