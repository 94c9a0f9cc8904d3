"""One study's fronts beside another's (e.g. a PBT population beside the grid it extends):
both studies' healthy final rows in one box, so their hypervolumes compare.

Each family becomes "<family> · <study name>"; the box is this study's (`[report]` in its
spec), and the comparison says whether the other study was run with the same box (only then
do the two studies' own reports' hypervolumes compare).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from analysis.box import Box
from analysis.pareto import hypervolume_table, pareto_rows
from analysis.results import StudyResults


@dataclass
class Comparison:
    other: str  # the other study's name
    box: Box  # this study's box, in which both are measured
    same_box: bool  # the other study's own box is this one
    hypervolumes: dict[str, pd.DataFrame]  # per task, one row per labelled front
    fronts: dict[str, pd.DataFrame]  # per task, the labelled fronts' rows


def labelled(study: StudyResults) -> pd.DataFrame:
    """The study's results with each family labelled by the study's name."""
    return study.results.assign(trial_id=study.name + "/" + study.results["trial_id"],
                                family=study.results["family"] + " · " + study.name)


def compare(this: StudyResults, other: StudyResults) -> Comparison:
    """Both studies' fronts per family (and over all) and their hypervolumes, in one box, on
    each of this study's tasks."""
    if other.name == this.name:
        other = StudyResults(**{**other.__dict__, "name": f"{other.name} (compared)"})
    rows = pd.concat([labelled(this), labelled(other)], ignore_index=True)
    box = Box.from_spec(this.spec)
    hypervolumes, fronts = {}, {}
    for task in this.tasks:
        table, _ = hypervolume_table(rows, task, box)
        hypervolumes[task] = table[table["front"] != "all"].reset_index(drop=True)
        fronts[task] = pareto_rows(rows, task).query("front != 'all'")
    return Comparison(other.name, box, Box.from_spec(other.spec) == box, hypervolumes, fronts)
