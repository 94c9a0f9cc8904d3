"""Several metrics at once, every needed image encoded once.

Each metric draws its samples under keys that depend only on (seed, key) (see `codes`), so
MIG, DCI, SAP and the FactorVAE variance estimate share one ("points", "train", 10000) sample
(DCI and SAP also share the 5,000 test points), and all draws are merged into one set of
unique images: the 1.6 million images the default suite draws are ~650,000 distinct dSprites
images, encoded once in large chunks. A metric scores the same here as when called alone.

For a pack of K models: ``ev = prepare(data, names, seed=...)``, encode ``ev.indices`` with
every member (codes (K, U, d)), then ``ev.score(codes)`` gives one result per member.

The metrics score side by side, one single-threaded metric per CPU core (`score`): their fits
are small operations that one thread runs best (see `codes`), so the cores are better spent
on different metrics at once. Each metric's result does not depend on what runs beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from metrics.codes import (
    CHUNK_SIZE,
    Encode,
    IndexSet,
    Plan,
    Sampler,
    encode_indices,
    higgins_tasks,
    single_threaded,
)
from metrics.dci import plan_dci
from metrics.factorvae import plan_factorvae
from metrics.higgins import plan_higgins
from metrics.mig import plan_mig
from metrics.sap import plan_sap

HIGGINS = "higgins_"  # + one of the data's Higgins tasks (`codes.higgins_tasks`): its metric
METRICS: dict[str, Callable[..., Plan]] = {  # the others, slowest first
    "dci": plan_dci,
    "sap": plan_sap,
    "factorvae": plan_factorvae,
    "mig": plan_mig,
}


def metric_names(data: Any) -> list[str]:
    """The metrics `prepare` takes for `data`, slowest first (the order `score` starts them
    in): the Higgins metric of each of its tasks (`higgins_<task>`), then `METRICS`."""
    return [*(HIGGINS + task for task in higgins_tasks(data)), *METRICS]


def _planner(name: str) -> Callable[..., Plan]:
    return (partial(plan_higgins, task=name.removeprefix(HIGGINS)) if name.startswith(HIGGINS)
            else METRICS[name])


@dataclass(frozen=True)
class Evaluation:
    """The plans of several metrics and the unique images they need encoded."""

    plans: dict[str, Plan]
    index_set: IndexSet

    @property
    def indices(self) -> np.ndarray:
        """Sorted unique dataset indices to encode, in this order."""
        return self.index_set.indices

    def score(self, codes: Any, workers: int | None = None) -> list[dict[str, dict]]:
        """Per member, {metric: result} from codes of `indices`: (U, d) or (K, U, d).

        The metrics run in `workers` threads (default: torch's thread count, which follows the
        CPUs Ray gives a trial), each on one thread of torch, BLAS and OpenMP; the slowest
        (the Higgins fits) start first.
        """
        table = self.index_set.table(codes)
        workers = workers or min(len(self.plans), torch.get_num_threads())
        with single_threaded(), ThreadPoolExecutor(max(1, workers)) as pool:
            futures = {name: pool.submit(plan.scorer, table) for name, plan in self.plans.items()}
            per_metric = {name: future.result() for name, future in futures.items()}
        return [{name: results[m] for name, results in per_metric.items()}
                for m in range(table.members)]


def prepare(data: Any, metrics: list[str], *, seed: int = 0,
            options: dict[str, dict] | None = None) -> Evaluation:
    """Draw every sample the metrics need (`metric_names(data)`); `options` maps a metric name
    to its options. The plans are kept slowest first."""
    options = options or {}
    known = metric_names(data)
    unknown = sorted(set(metrics) - set(known) | set(options) - set(known))
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {sorted(known)}")
    sampler = Sampler(data, seed)
    plans = {name: _planner(name)(sampler, **options.get(name, {}))
             for name in known if name in metrics}
    keys = [key for plan in plans.values() for key in plan.keys]
    return Evaluation(plans=plans, index_set=sampler.index_set(keys))


def evaluate(encode: Encode, data: Any, metrics: list[str], *, seed: int = 0,
             options: dict[str, dict] | None = None,
             chunk_size: int = CHUNK_SIZE) -> dict[str, dict]:
    """{metric: result} for one model, encoding each needed image once."""
    evaluation = prepare(data, metrics, seed=seed, options=options)
    codes = encode_indices(encode, data, evaluation.indices, chunk_size)
    return evaluation.score(codes)[0]
