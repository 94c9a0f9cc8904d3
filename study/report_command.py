"""`wae-study report`: the report of a finished or partial study."""

from __future__ import annotations

from pathlib import Path

from study import spec as specs


def report(experiment_dir: Path, out: Path | None, data_path: Path | None,
           compare_with: Path | None = None) -> int:
    from analysis.report import write_report
    from trainables import data as dsdata

    data_path, dataset_name = specs.data_for(experiment_dir, data_path)
    if compare_with is not None:
        specs.experiment_spec(compare_with)  # BadInput unless an experiment folder
    dataset = (dsdata.load(data_path, dataset=dataset_name)
               if data_path or dsdata.default_path().exists() else None)
    folder = write_report(experiment_dir, out_dir=out, data=dataset, compare_with=compare_with)
    print_report(folder)
    return 0


def print_report(folder: Path) -> None:
    """The report's answer, one line per task, then its index.html as the last line: what a
    command that wrote the report leaves in the terminal."""
    from analysis.report import answer_lines

    for line in answer_lines(folder):
        print(line)
    print(folder / "index.html")
