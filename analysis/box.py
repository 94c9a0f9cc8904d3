"""The hypervolume's box, fixed before a study runs: `[report]` in the spec (`study.spec`
takes its defaults from here), never derived from the results, so that a difference of
hypervolumes means the same in every study with the same box. No heavy imports: the spec
reads it at the command line's start."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainables.columns import dataset_of
from trainables.datasets import DATASETS, DSPRITES

# Test recon bound, nats: the seed's models (and laptop's) reconstruct at ~40-160 nats, so
# 250 holds every model of the seed's Figure 1 (the quick presets set their own).
DEFAULT = {"recon_reference": 250.0, "disentanglement_floor": "chance"}


@dataclass(frozen=True)
class Box:
    """Test recon in [0, recon_reference] nats × disentanglement in [floor, 1], the floor per
    task of the study's dataset: "chance" (the Higgins classifier's chance accuracy, one over
    the factors the task votes on; dSprites: 1/4 and 1/5) or one number for every task."""

    recon_reference: float
    disentanglement_floor: float | str = "chance"
    dataset: str = DSPRITES.name  # whose tasks the floors are of

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Box:
        """The box of a resolved spec; an experiment written before `[report]` gets the
        defaults (the report says which box it used)."""
        table = {**DEFAULT, **(spec.get("report") or {})}
        return cls(float(table["recon_reference"]), table["disentanglement_floor"],
                   dataset_of(spec))

    def floor(self, task: str) -> float:
        if self.disentanglement_floor == "chance":
            return 1 / len(DATASETS[self.dataset].tasks[task])
        return float(self.disentanglement_floor)

    def area(self, task: str) -> float:
        return self.recon_reference * (1.0 - self.floor(task))

    def scaled(self, factor: float) -> Box:
        return Box(self.recon_reference * factor, self.disentanglement_floor, self.dataset)

    def describe(self) -> str:
        votes = sorted({len(factors) for factors in DATASETS[self.dataset].tasks.values()})
        floor = (f"chance ({', '.join(f'1/{n}' for n in votes)})"
                 if self.disentanglement_floor == "chance"
                 else f"{float(self.disentanglement_floor):g}")
        return (f"test recon 0-{self.recon_reference:g} nats × disentanglement from "
                f"{floor} to 1")
