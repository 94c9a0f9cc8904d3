"""Searches compared at equal compute: the seed's closing question, "whether optimal values of
the λ1 hyper-parameter can be found adaptively", as a measured answer.

A comparison is pure data: a study spec (its [train], [report], [resources], [adaptive] and
[pbt] tables, shared by every method) plus a [compare] table (`CompareTable`). It expands
deterministically (`expand`) into one ordinary study per (method, search seed), each an
experiment folder of its own, `<comparison>/<method>-s<seed>`, run one after another on one
Ray instance. Every method trains `trials` packs of `replicates` members for `train.steps`
steps, so every study costs the same model-steps:

  grid        the family's values as PBT's first population (log-spaced over its bounds)
  optuna      Optuna's multi-objective TPE, `[adaptive] startup_trials` random trials first
  pbt_scalar  PBT ranking each family by the `[pbt] objective` (`exploit = "scalar"`)
  pbt_pareto  PBT ranking by non-dominated sorting and MO-PBT's spread (`exploit = "pareto"`)

Search seed s is every study's `study.seed` (its models' seeds) and the searcher's or the
scheduler's seed. `select_on` lists the selections each adaptive method runs with: the
default "validation", and "test" to measure the bias of selecting on the measures the report
states (its studies are `<method>_ontest-s<seed>`, labelled `<method>@test`; the grid
selects nothing). The
outcome (`analysis.search_comparison`): each study's final front on the test measures, its
hypervolume in the fixed box, and per method and pair the intervals and tests of
`analysis.inference`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from search_spaces import pbt as pbt_space
from study import spec as specs
from study import toml_out
from study.errors import BadInput
from study.presets import PRESETS
from study.storage import check_writable
from study.tables import PbtTable
from trainables import experiment, typed
from trainables.config import FAMILIES
from trainables.typed import setting

FILE = "comparison.toml"
TIMES_FILE = "comparison_times.json"  # wall seconds each study ran, summed over its runs
Method = Literal["grid", "optuna", "pbt_scalar", "pbt_pareto"]
METHODS: tuple[str, ...] = ("grid", "optuna", "pbt_scalar", "pbt_pareto")
SelectOn = Literal["validation", "test"]


@dataclass
class CompareTable:
    family: str = setting("the family whose parameter every method searches",
                          default="wae_gaussian")
    methods: list[Method] = setting("grid | optuna | pbt_scalar | pbt_pareto",
                                    default_factory=lambda: list(METHODS))
    search_seeds: int = setting("independent repetitions of every method, the unit of the "
                                "tests: 4 methods make 6 pairs × 2 tasks, and 6 seeds are the "
                                "fewest whose exact permutation test can survive Holm's "
                                "correction over those 12", default=6)
    trials: int = setting("packs each method trains: the grid's points, Optuna's trials, "
                          "PBT's population (equal model-steps)", default=6)
    select_on: list[SelectOn] = setting(
        "the selections each adaptive method runs with: validation (the default) and test "
        "(the selection before validation existed, to measure its bias)",
        default_factory=lambda: ["validation"])


@dataclass(frozen=True)
class Study:
    """One study of a comparison: its folder's name, its method, selection and seed, and its
    resolved spec."""

    name: str
    method: str
    select_on: str
    seed: int
    spec: dict[str, dict[str, Any]]
    trials: int  # Tune trials it runs (`study.spec.n_trials`)


def is_comparison(source: str) -> bool:
    """Whether a `run` argument names a comparison: a preset or TOML file with [compare]."""
    if source in PRESETS:
        return "compare" in PRESETS[source].spec
    path = Path(source)
    if not path.is_file() or path.suffix != ".toml":
        return False
    try:
        return "compare" in specs.parse_toml(path.read_text(), path)
    except (OSError, UnicodeDecodeError, BadInput):
        return False


def load(source: str, overrides: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """A comparison preset or TOML file with `--set` overrides, resolved: [compare] checked,
    and every study it expands to validated as `run` validates a spec."""
    return resolve(specs.read_source(source, overrides))


def resolve(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """[compare] with its defaults, the shared tables as given; BadInput naming the key."""
    given = raw.get("compare")
    if not isinstance(given, dict):
        raise BadInput("a comparison needs a [compare] table")
    unknown = sorted(set(given) - {f.name for f in dataclasses.fields(CompareTable)})
    if unknown:
        raise BadInput(f"unknown key 'compare.{unknown[0]}'; known: "
                       f"{', '.join(f.name for f in dataclasses.fields(CompareTable))}")
    try:
        table = dataclasses.asdict(typed.build(CompareTable, given))
    except ValueError as err:
        raise BadInput(f"compare.{err}") from None
    if table["family"] not in FAMILIES:
        raise BadInput(f"compare.family '{table['family']}' is no family; choose from "
                       f"{', '.join(FAMILIES)}")
    for key in ("methods", "select_on"):
        if not table[key] or len(set(table[key])) != len(table[key]):
            raise BadInput(f"compare.{key} must list at least one choice, each once")
    if table["search_seeds"] < 2:
        raise BadInput(f"compare.search_seeds must be >= 2 (an interval needs two), got "
                       f"{table['search_seeds']}")
    if table["trials"] < 2:
        raise BadInput(f"compare.trials must be >= 2 (a population clones within itself), "
                       f"got {table['trials']}")
    comparison = {**{k: v for k, v in raw.items() if k != "compare"}, "compare": table}
    expand(comparison)  # every study valid before anything runs
    return comparison


def expand(comparison: dict[str, dict[str, Any]]) -> list[Study]:
    """The comparison's studies, seed by seed, method by method, in the same order every time
    (each seed's methods run side by side in time: a slower machine late in the run touches
    every method alike)."""
    table = comparison["compare"]
    studies = []
    for seed in range(table["search_seeds"]):
        for method in table["methods"]:
            for select_on in (["validation"] if method == "grid" else table["select_on"]):
                name = f"{method}{'_ontest' if select_on == 'test' else ''}-s{seed}"
                raw = _study_spec(comparison, method, select_on, seed, name)
                try:
                    spec = specs.resolve(raw)
                except BadInput as err:
                    raise BadInput(f"study {name} of the comparison: {err}") from None
                studies.append(Study(name, method, select_on, seed, spec, specs.n_trials(spec)))
    return studies


def _study_spec(comparison: dict[str, dict[str, Any]], method: str, select_on: str, seed: int,
                name: str) -> dict[str, Any]:
    """The raw spec of one study: the shared tables, the method's search at the budget."""
    table = comparison["compare"]
    family, trials = table["family"], table["trials"]
    shared = {k: copy.deepcopy(v) for k, v in comparison.items()
              if k in ("train", "report", "resources", "tracking")}
    study = {**comparison.get("study", {}), "name": name, "seed": seed, "families": [family]}
    pbt = {**comparison.get("pbt", {}), "families": [family], "population": trials,
           "seed": seed, "select_on": select_on}
    if method == "grid":
        values = pbt_space.initial_values(dataclasses.asdict(typed.build(PbtTable, pbt)), family)
        return {**shared, "study": {**study, "search": "grid"}, "grid": {family: values}}
    if method == "optuna":
        adaptive = {**comparison.get("adaptive", {}), "families": [family], "trials": trials,
                    "seed": seed, "sampler": "tpe", "objective": "pareto",
                    "select_on": select_on}
        return {**shared, "study": {**study, "search": "adaptive"}, "adaptive": adaptive}
    exploit = method.removeprefix("pbt_")
    return {**shared, "study": {**study, "search": "pbt"}, "pbt": {**pbt, "exploit": exploit}}


def dumps(comparison: dict[str, dict[str, Any]]) -> str:
    """The resolved comparison as TOML (`comparison.toml`)."""
    comments = {f"compare.{k}": v for k, v in typed.field_help(CompareTable).items()}
    return toml_out.dumps(comparison, comments)


def read(folder: Path) -> dict[str, dict[str, Any]]:
    """A comparison folder's resolved comparison; BadInput when it is none."""
    path = Path(folder) / FILE
    if not path.is_file():
        raise BadInput(f"{folder} is not a comparison folder (no {FILE})")
    return resolve(specs.parse_toml(path.read_text(), path))


def is_comparison_folder(folder: Path) -> bool:
    return (Path(folder) / FILE).is_file()


def run(source: str, overrides: list[str], name: str | None, storage: str | None,
        address: str | None, data_path: Path | None) -> int:
    """Validate every study, create the comparison's folder, run them all, report."""
    from study import runner

    comparison = load(source, overrides)
    if data_path is not None:
        comparison.setdefault("train", {})["data_path"] = str(Path(data_path).expanduser()
                                                              .resolve())
        comparison = resolve(comparison)
    base = comparison.get("study", {}).get("name", "comparison")
    name = name or f"{base}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not specs.NAME_PATTERN.match(name):
        raise BadInput(f"--name '{name}' must be 1-64 letters, digits, '_', '.' or '-', "
                       "starting with a letter or digit")
    root = runner.storage_root(storage)
    if not isinstance(root, Path):
        raise BadInput("a comparison runs on a local or shared folder, not object storage: "
                       "pass --storage DIR")
    folder = root / name
    if folder.exists():
        raise BadInput(f"{folder} already exists; `wae-study resume {folder}` continues it, "
                       "or pass another --name")
    check_writable(root)
    studies = expand(comparison)
    for study in studies:
        specs.refuse_unshared_pbt(study.spec)
    from study.tracking import check_tracking
    from trainables.data import check_source

    check_tracking(studies[0].spec["tracking"])  # [tracking] and [train]: one for all studies
    check_source(studies[0].spec["train"]["data_path"], specs.dataset_of(studies[0].spec))
    runner.start_ray(address, "pbt")
    runner.check_resources(studies[0].spec["resources"])
    dataset = _dataset(studies)
    folder.mkdir(parents=True)
    experiment.write_atomic(folder / FILE, dumps(comparison))
    print(f"comparison {name}: {len(studies)} studies -> {folder}", flush=True)
    return _run_all(folder, studies, dataset)


def resume(folder: Path, address: str | None = None) -> int:
    """Continue a comparison: finished studies kept, unfinished ones resumed, the rest run."""
    from study import runner

    folder = Path(folder).expanduser().resolve()
    studies = expand(read(folder))
    runner.start_ray(address, "pbt")
    runner.check_resources(studies[0].spec["resources"])
    print(f"resuming comparison {folder}", flush=True)
    return _run_all(folder, studies, _dataset(studies))


def _dataset(studies: list[Study]) -> Any:
    from trainables import data as dsdata

    spec = studies[0].spec
    return dsdata.load(spec["train"].get("data_path"), dataset=specs.dataset_of(spec))


def finished(study: Study, folder: Path) -> bool:
    """Whether the study's folder holds every trial it runs, each at its last step."""
    trials = experiment.read_trials(folder / study.name) if (folder / study.name).is_dir() \
        else []
    return len([t for t in trials if t.finished]) >= study.trials


def _run_all(folder: Path, studies: list[Study], dataset: Any) -> int:
    """Run or resume each unfinished study in order, timing each; then the report."""
    from study import runner

    failed = []
    for study in studies:
        where = folder / study.name
        if finished(study, folder):
            continue
        start = time.monotonic()
        if not where.exists():
            code = runner.start_study(study.spec, where, dataset)
        else:
            with runner.exclusive(where):
                code = runner.continue_study(study.spec, where, dataset)
        _add_time(folder, study.name, time.monotonic() - start)
        if code == 130:
            print(f"comparison interrupted; continue with `wae-study resume {folder}`",
                  file=sys.stderr)
            return 130
        if code:
            failed.append(study.name)
    print_answer(report(folder))
    if failed:
        print(f"{len(failed)} studies had failed trials ({', '.join(failed)}); "
              f"`wae-study resume {folder}` retries them", file=sys.stderr)
        return 1
    return 0


def _add_time(folder: Path, name: str, seconds: float) -> None:
    times = read_times(folder)
    times[name] = times.get(name, 0.0) + seconds
    experiment.write_atomic(folder / TIMES_FILE, json.dumps(times, indent=1))


def read_times(folder: Path) -> dict[str, float]:
    try:
        return json.loads((Path(folder) / TIMES_FILE).read_text())
    except (OSError, ValueError):
        return {}


def report(folder: Path) -> Any:
    """Write the comparison's report (`analysis.search_comparison`) and return its outcome."""
    from analysis.search_comparison import write

    folder = Path(folder)
    comparison = read(folder)
    return write(folder, comparison, expand(comparison), read_times(folder))


def print_answer(outcome: Any) -> None:
    for line in outcome.answer:
        print(line)
    print(outcome.path)
