"""`wae-study report`: the report of a finished or partial study."""

from __future__ import annotations

import tomllib
from pathlib import Path

from study.errors import BadInput


def report(experiment_dir: Path, out: Path | None, data_path: Path | None) -> int:
    from analysis.report import write_report
    from trainables import data as dsdata

    spec_path = experiment_dir / "study.toml"
    if not spec_path.exists():
        raise BadInput(f"{experiment_dir} is not a wae-study experiment folder (no study.toml); "
                       "pass the folder `wae-study run` printed")
    if data_path is None:
        data_path = tomllib.loads(spec_path.read_text()).get("train", {}).get("data_path")
    dataset = dsdata.load(data_path) if data_path or dsdata.default_path().exists() else None
    folder = write_report(experiment_dir, out_dir=out, data=dataset)
    print(folder / "index.html")
    return 0
