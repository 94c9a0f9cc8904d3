"""The spec's tables as typed dataclasses: each key's type, default and help text, once.

`study.spec.resolve` fills them from the parsed TOML with the same coercion as a trial's
`TrainConfig` (`trainables.typed`), so a wrong type or choice reads alike in every table;
the ranges and the rules across keys stay in `study.spec`. `[train]` is `TrainConfig`
itself and `[grid]` maps family names to value lists (`search_spaces.grids`).
"""

from __future__ import annotations

from dataclasses import dataclass, make_dataclass
from typing import Any, Literal

from analysis import box
from search_spaces.seeds import SEED_DESIGNS
from trainables.config import PARAM_OF, PARAM_SYMBOL, SEED_FAMILIES, WAE_FAMILIES
from trainables.families import FAMILIES
from trainables.objectives import PBT_OBJECTIVES, SELECT_ON
from trainables.typed import setting

Search = Literal["grid", "adaptive", "pbt"]
Sampler = Literal["tpe", "nsga2", "random"]
AdaptiveObjective = Literal["pareto", "constrained"]
SeedDesign = Literal[SEED_DESIGNS]
PbtObjective = Literal[PBT_OBJECTIVES]
SelectOn = Literal[SELECT_ON]
PbtExploit = Literal["scalar", "pareto"]
Tracker = Literal["none", "mlflow", "wandb"]


@dataclass
class StudyTable:
    name: str = setting("the experiment folder's name, before its time stamp", default="study")
    description: str = setting("what the study is for, shown in its report", default="")
    search: Search = setting("grid | adaptive | pbt", default="grid")
    families: list[str] = setting(
        f"the families a grid study trains: by default the seed's {', '.join(SEED_FAMILIES)}; "
        f"also {', '.join(f for f in FAMILIES if f not in SEED_FAMILIES)}",
        default_factory=lambda: list(SEED_FAMILIES))
    replicates: int = setting("models per trial, trained together as one pack", default=10)
    seed: int = setting("the study's seed: every model's seed derives from it "
                        "(search_spaces.seeds)", default=0)
    seeds: SeedDesign = setting("independent: every (trial, replicate) its own seed | paired: "
                                "the same replicates' seeds at every grid point (common random "
                                "numbers)", default="independent")


def _bound_fields() -> list[tuple[str, type, Any]]:
    """`<param>_min`, `<param>_max` of each family's parameter, defaults from the registry
    (`Family.bounds`; families sharing a parameter share its bounds)."""
    fields = []
    for param, symbol in PARAM_SYMBOL.items():
        names = " and ".join(name for name, p in PARAM_OF.items() if p == param)
        low, high = next(f.bounds for f in FAMILIES.values() if f.param == param)
        fields += [(f"{param}_min", float, setting(f"the lowest {symbol} ({names})",
                                                     default=low)),
                   (f"{param}_max", float, setting(f"the highest {symbol} ({names})",
                                                     default=high))]
    return fields


# [<param>_min, <param>_max] of each family's parameter (`PARAM_OF`), the range the adaptive
# search and PBT explore (`search_spaces.grids.param_bounds`): one pair per parameter, so a
# family with a new parameter brings its keys.
ParamBounds = make_dataclass("ParamBounds", _bound_fields())


@dataclass
class SearchTable(ParamBounds):
    """What every adaptive search shares: its bounds, and the measures it selects on."""

    select_on: SelectOn = setting(
        "validation: every search decision (suggestions, clones) reads the validation "
        "measures (train.validation_fraction of the held-out images, votes from "
        "train.validation_seed), disjoint from the test measures the report states | test: "
        "the test measures themselves (the selection before validation existed: biased in "
        "the search's favour)", default="validation", legacy="test")


@dataclass
class AdaptiveTable(SearchTable):
    trials: int = setting("Tune trials the Optuna search runs", default=30)
    families: list[str] = setting("the families searched over (the seed's question: the "
                                  "WAEs'), each over its parameter's [<param>_min, "
                                  "<param>_max]", default_factory=lambda: list(WAE_FAMILIES))
    sampler: Sampler = setting("tpe | nsga2 | random (seeded with adaptive.seed)",
                               default="tpe")
    startup_trials: int = setting("tpe's random trials before its model steers (Optuna's "
                                  "n_startup_trials); a budget of a few trials needs fewer",
                                  default=10)
    objective: AdaptiveObjective = setting(
        "pareto: 5-var up, recon_test down | constrained: 5-var up subject to recon_test <= "
        "max_recon_test (5-var: the dataset's primary task, over all its factors)",
        default="pareto")
    max_recon_test: float = setting("the constrained objective's recon_test bound (nats)",
                                    default=150.0)
    seed: int = setting("seeds the sampler", default=0)


@dataclass
class PbtTable(SearchTable):
    families: list[str] = setting("one population per family; a trial only clones its own "
                                  "family", default_factory=lambda: ["wae_gaussian"])
    population: int = setting("trials per family, started log-spaced from max(min, floor) to "
                              "max (min itself first when below floor)", default=8)
    perturbation_interval: int = setting("steps between perturbations: a multiple of "
                                         "train.checkpoint_every and train.eval_every",
                                         default=5000)
    quantile_fraction: float = setting("bottom fraction that clones the top fraction (<= 0.5)",
                                       default=0.25)
    resample_probability: float = setting("chance a clone's value is drawn afresh, "
                                          "log-uniform", default=0.25)
    perturbation_factor: float = setting("otherwise the value is multiplied or divided by it",
                                         default=1.25)
    floor: float = setting("log-scale floor: a value below it perturbs as if at it; a result "
                           "below it becomes the family's min (so lambda1 = 0 is reachable)",
                           default=0.1)
    exploit: PbtExploit = setting(
        "scalar: rank each family by `objective` | pareto: rank by non-dominated sorting of "
        "(5-var ↑, recon ↓), each front ordered by MO-PBT's greedy spread (Dushatskiy et al. "
        "2023), both measures normalised in the [report] box", default="scalar")
    objective: PbtObjective = setting("constrained: 5-var - max(0, recon_test / max_recon_test "
                                      "- 1) | weighted: 5-var - recon_test / recon_scale "
                                      "(5-var: the dataset's primary task, over all its "
                                      "factors)", default="constrained")
    max_recon_test: float = setting("the constrained objective's recon_test bound (nats)",
                                    default=150.0)
    recon_scale: float = setting("the weighted objective's nats per unit of 5-var",
                                 default=1000.0)
    synch: bool = setting("false: each trial is ranked when it reaches a perturbation step "
                          "(Ray's asynchronous PBT) | true: all trials wait for each other at "
                          "every one", default=False)
    seed: int = setting("seeds the perturbations (Ray picks which top trial is cloned)",
                        default=0)


@dataclass
class ResourcesTable:
    cpus_per_trial: float = setting("CPUs each trial holds", default=1.0)
    gpus_per_trial: float = setting("GPUs each trial holds (fractions share one GPU)",
                                    default=0.0)
    max_concurrent: int = setting("trials at once; 0 = as many as the cluster's resources "
                                  "allow", default=0)
    max_failures: int = setting("retries per trial, each from its last checkpoint", default=2)


@dataclass
class ReportTable:
    recon_reference: float = setting(
        "the hypervolume box's test-recon bound in nats, fixed before the study (models above "
        "it count for nothing); the report shows the verdict at 0.5-2x it",
        default=box.DEFAULT["recon_reference"])
    disentanglement_floor: float | Literal["chance"] = setting(
        "chance: 1/4 (4-var) and 1/5 (5-var), the Higgins classifier's chance accuracy (one "
        "over the factors a task votes on) | a number in [0, 1)",
        default=box.DEFAULT["disentanglement_floor"])


@dataclass
class TrackingTable:
    backend: Tracker = setting("none | mlflow | wandb: one tracker run per trial (study.tracking)",
                               default="none")
    uri: str = setting("mlflow's tracking URI (sqlite:///..., http://...); empty = "
                       "sqlite:///<experiment>/mlflow.db", default="")
    project: str = setting("the W&B project; empty = the study's name", default="")


TABLES: dict[str, type] = {"study": StudyTable, "adaptive": AdaptiveTable, "pbt": PbtTable,
                           "resources": ResourcesTable, "report": ReportTable,
                           "tracking": TrackingTable}
