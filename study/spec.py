"""Study specs: TOML in, validated before Ray starts, expanded deterministically into trials.

A spec has eight tables:
  [study]      name, search ("grid" | "adaptive" | "pbt"), families, replicates, seed,
               seeds, description
  [grid]       the values swept per family, of its parameter (`trainables.config.PARAM_OF`)
  [adaptive]   the Optuna search over family and parameter (by default λ1 of the WAEs)
  [pbt]        population-based training of each family's parameter (search_spaces.pbt)
  [train]      `trainables.config.TrainConfig` fields shared by every trial
  [resources]  cpus_per_trial, gpus_per_trial, max_concurrent, max_failures
  [report]     the hypervolume's box, fixed before the study runs (analysis.pareto.Box)
  [tracking]   MLflow or Weights & Biases runs, one per trial (study.tracking)

`resolve` fills every default in; the result is what `study.toml` records and what
`wae-study presets --show` prints. `expand` turns a grid (or a PBT population) into the same
list of trial configs every time.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import tomllib
from pathlib import Path
from typing import Any

from search_spaces import pbt as pbt_space
from search_spaces.grids import DEFAULT_GRID, grid_points
from search_spaces.seeds import trial_seeds
from study import toml_out
from study.errors import BadInput
from study.presets import PRESETS
from study.tables import TABLES
from trainables import experiment, typed
from trainables.columns import dataset_of
from trainables.config import FAMILIES, PARAM_OF, TrainConfig

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Text whose empty value means "the default" (their help says which); any other text needs one.
MAY_BE_EMPTY = ("study.description", "tracking.uri", "tracking.project")
# Fields the study sets per trial; [train] may not set them.
PER_TRIAL = ("family", "value", "replicates", "seed", "seeds", "perturbable")

DEFAULTS: dict[str, dict[str, Any]] = {
    **{name: dataclasses.asdict(table()) for name, table in TABLES.items()},
    "grid": {family: list(values) for family, values in DEFAULT_GRID.items()},
    "train": {},  # filled from TrainConfig's defaults in `resolve`
}
# study.toml's comments: every key's help text
COMMENTS: dict[str, str] = {f"{name}.{key}": text for name, table in TABLES.items()
                            for key, text in typed.field_help(table).items()}


def _train_defaults() -> dict[str, Any]:
    defaults = TrainConfig().to_dict()
    return {k: v for k, v in defaults.items() if k not in PER_TRIAL}


def resolve(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Validate a parsed spec and fill every default in; raise BadInput naming the key."""
    defaults = copy.deepcopy(DEFAULTS)
    defaults["train"] = _train_defaults()
    spec: dict[str, dict[str, Any]] = {}
    for table in raw:
        if table not in defaults:
            raise BadInput(f"unknown table [{table}] in the spec; "
                           f"known tables: {', '.join(defaults)}")
        if not isinstance(raw[table], dict):
            raise BadInput(f"{table} must be a table ([{table}]), got {raw[table]!r}")
    for table, table_defaults in defaults.items():
        given = raw.get(table, {})
        for key in given:
            if table == "grid":
                if key not in FAMILIES:
                    raise BadInput(f"unknown family '{key}' in [grid]; "
                                   f"known: {', '.join(FAMILIES)}")
            elif key not in table_defaults:
                hint = " (the study sets it per trial)" if key in PER_TRIAL else ""
                raise BadInput(f"unknown key '{table}.{key}'{hint}; see `wae-study presets "
                               "--show quick` for every key")
        if table in TABLES:
            try:
                spec[table] = dataclasses.asdict(typed.build(TABLES[table], given))
            except ValueError as err:
                raise BadInput(f"{table}.{err}") from None
        else:  # [train]: TrainConfig checks it in _check_ranges; [grid]: the value lists
            spec[table] = {**table_defaults, **given}
    _check_ranges(spec)
    return spec


def _check_one_search(raw: dict[str, Any], defaults: dict[str, dict[str, Any]]) -> None:
    """PBT is a scheduler that runs without a searcher: a spec that sets both [adaptive] (the
    Optuna searcher) and [pbt] values away from their defaults asks for a combination Ray
    cannot run. Checked on a new spec only (`load`): a study.toml holds every table, the
    other search's with the legacy values an upgrade gave it."""
    search = raw.get("study", {}).get("search") if isinstance(raw.get("study"), dict) else None
    other = {"pbt": "adaptive", "adaptive": "pbt"}.get(search)
    given = raw.get(other) if other else None
    if isinstance(given, dict) and any(defaults[other].get(k) != v for k, v in given.items()):
        raise BadInput(f"[{other}] does not combine with study.search = '{search}' (Ray's "
                       f"population-based training runs without a searcher): remove [{other}] "
                       f"or set study.search = '{other}'")


def _check_text(spec: dict[str, dict[str, Any]]) -> None:
    """No blank text, and no empty text where a value is needed (`MAY_BE_EMPTY`): a blank
    storage URI or data path would otherwise be taken for a folder named ' ' or for '.'."""
    for table, values in spec.items():
        for key, value in values.items():
            if not isinstance(value, str) or value.strip():
                continue
            if value:
                raise BadInput(f"{table}.{key} is blank ({value!r}); give a value, or '' "
                               "where its help says empty means the default")
            if f"{table}.{key}" not in MAY_BE_EMPTY:
                raise BadInput(f"{table}.{key} is empty; give a value (see `wae-study presets "
                               "--show quick`)")


def _check_ranges(spec: dict[str, dict[str, Any]]) -> None:
    _check_text(spec)
    study, grid, adaptive, res = spec["study"], spec["grid"], spec["adaptive"], spec["resources"]
    if not NAME_PATTERN.match(study["name"]):
        raise BadInput(f"study.name '{study['name']}' must be 1-64 letters, digits, '_', '.' "
                       "or '-', starting with a letter or digit")
    table = "study" if study["search"] == "grid" else study["search"]
    families = spec[table]["families"]
    if not families:
        raise BadInput(f"{table}.families is empty; name at least one of {', '.join(FAMILIES)}")
    for family in families:
        if family not in FAMILIES:
            raise BadInput(f"unknown family '{family}' in {table}.families; "
                           f"choose from {', '.join(FAMILIES)}")
    if study["replicates"] < 1:
        raise BadInput(f"study.replicates must be >= 1, got {study['replicates']}")
    if study["seed"] < 0:
        raise BadInput(f"study.seed must be >= 0, got {study['seed']}")
    if study["search"] == "grid":
        for family in families:
            values = grid[family]
            if not values:
                raise BadInput(f"grid.{family} is empty; give at least one value")
            bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int | float)
                   or v < 0]
            if bad:
                raise BadInput(f"grid.{family} must hold numbers >= 0, got {bad[0]!r}")
            if len(set(values)) != len(values):
                raise BadInput(f"grid.{family} repeats a value; list each value once")
    elif study["search"] == "pbt":
        _check_pbt(spec["pbt"], spec["train"], families)
    else:
        if adaptive["trials"] < 1:
            raise BadInput(f"adaptive.trials must be >= 1, got {adaptive['trials']}")
        if adaptive["startup_trials"] < 1:
            raise BadInput(f"adaptive.startup_trials must be >= 1, got "
                           f"{adaptive['startup_trials']}")
        _check_bounds("adaptive", adaptive, families)
        if adaptive["max_recon_test"] <= 0:
            raise BadInput("adaptive.max_recon_test must be > 0")
    report = spec["report"]
    if not report["recon_reference"] > 0:
        raise BadInput(f"report.recon_reference must be > 0 nats, got "
                       f"{report['recon_reference']}")
    floor = report["disentanglement_floor"]
    if floor != "chance" and not 0 <= floor < 1:
        raise BadInput(f"report.disentanglement_floor must be 'chance' or a number in [0, 1), "
                       f"got {floor!r}")
    if not 0 < res["cpus_per_trial"] < math.inf:
        raise BadInput(f"resources.cpus_per_trial must be > 0 and finite, got "
                       f"{res['cpus_per_trial']}")
    if not 0 <= res["gpus_per_trial"] < math.inf:
        raise BadInput(f"resources.gpus_per_trial must be >= 0 and finite, got "
                       f"{res['gpus_per_trial']}")
    if res["max_concurrent"] < 0 or res["max_failures"] < 0:
        raise BadInput("resources.max_concurrent and resources.max_failures must be >= 0")
    _resolve_validation(spec)
    for family in families:  # a rule may hold for one family only (FactorVAE's batch)
        try:
            checked = TrainConfig.from_dict({**spec["train"], "family": family}).to_dict()
        except ValueError as err:
            raise BadInput(f"[train] {err}") from None
    spec["train"] = {k: v for k, v in checked.items() if k not in PER_TRIAL}


def selects_on_validation(spec: dict[str, dict[str, Any]]) -> bool:
    """Whether the study's search decides on the validation measures."""
    search = spec["study"]["search"]
    return search != "grid" and spec[search]["select_on"] == "validation"


def _resolve_validation(spec: dict[str, dict[str, Any]]) -> None:
    """train.validation_fraction: null becomes 0.5 where a search selects on validation, 0
    elsewhere (a grid study's test measures stay as they were); a search that selects on
    validation needs some, with votes of their own."""
    train = spec["train"]
    search = spec["study"]["search"]
    if train.get("validation_fraction") is None:
        train["validation_fraction"] = 0.5 if selects_on_validation(spec) else 0.0
    if selects_on_validation(spec) and not train["validation_fraction"]:
        raise BadInput(f"{search}.select_on = 'validation' needs validation images: set "
                       "train.validation_fraction (e.g. 0.5) or select_on = 'test'")
    if train["validation_fraction"] and train.get("validation_seed") == train.get("eval_seed"):
        raise BadInput(f"train.validation_seed ({train['validation_seed']}) equals "
                       "train.eval_seed: validation votes must be drawn apart from the test "
                       "ones; choose another validation_seed")


def _check_bounds(name: str, table: dict[str, Any], families: list[str],
                  floor: float | None = None) -> None:
    """The [adaptive] or [pbt] table's families (each once) and the bounds of their
    parameters (`study.tables.ParamBounds`): 0 <= min < max, and max above PBT's floor."""
    if len(set(families)) != len(families):
        raise BadInput(f"{name}.families repeats a family; list each once")
    for param in sorted({PARAM_OF[f] for f in families}):
        low, high = table[f"{param}_min"], table[f"{param}_max"]
        if not 0 <= low < high or (floor is not None and high <= floor):
            above = f", which must exceed {name}.floor" if floor is not None else ""
            raise BadInput(f"{name}.{param}_min must be >= 0 and below {name}.{param}_max"
                           f"{above}")


def _check_pbt(pbt: dict[str, Any], train: dict[str, Any], families: list[str]) -> None:
    """The [pbt] table, and the [train] steps it relies on (evaluations and checkpoints at
    every perturbation step)."""
    if pbt["population"] < 2:
        raise BadInput(f"pbt.population must be >= 2 (a trial clones another of its family), "
                       f"got {pbt['population']}")
    interval = pbt["perturbation_interval"]
    steps = train["steps"]
    if not 0 < interval < steps:
        raise BadInput(f"pbt.perturbation_interval must be in (0, train.steps = {steps}), got "
                       f"{interval}")
    for key in ("checkpoint_every", "eval_every"):
        every = train[key]
        if not every or interval % every:
            raise BadInput(f"pbt.perturbation_interval ({interval}) must be a multiple of "
                           f"train.{key} ({every}): PBT ranks and clones trials by their "
                           f"evaluation and checkpoint at every perturbation step; set "
                           f"train.{key} = {interval}")
    if not 0 < pbt["quantile_fraction"] <= 0.5:
        raise BadInput("pbt.quantile_fraction must be in (0, 0.5]")
    if not 0 <= pbt["resample_probability"] <= 1:
        raise BadInput("pbt.resample_probability must be in [0, 1]")
    if not pbt["perturbation_factor"] > 1:
        raise BadInput("pbt.perturbation_factor must be > 1 (e.g. 1.25)")
    if not pbt["floor"] > 0:
        raise BadInput("pbt.floor must be > 0 (e.g. 0.1): log-scale steps need a floor")
    _check_bounds("pbt", pbt, families, floor=pbt["floor"])
    if pbt["max_recon_test"] <= 0 or pbt["recon_scale"] <= 0:
        raise BadInput("pbt.max_recon_test and pbt.recon_scale must be > 0")


def spec_path(experiment_dir: Path) -> Path:
    """`<experiment>/study.toml`, or BadInput when the folder is not an experiment."""
    path = experiment.study_file(experiment_dir)
    if not path.is_file():
        raise BadInput(f"{experiment_dir} is not a wae-study experiment folder (no study.toml); "
                       "pass the folder `wae-study run` printed")
    return path


def experiment_spec(experiment_dir: Path) -> dict[str, dict[str, Any]]:
    """An experiment's resolved `study.toml`; BadInput (one line, the fix) when the folder is
    no experiment or the file is unreadable or invalid (e.g. truncated)."""
    path = spec_path(experiment_dir)
    try:
        text = experiment.read_study_text(experiment_dir)
    except OSError as err:
        raise BadInput(f"cannot read {path} ({err})") from None
    return resolve(upgraded(parse_toml(text, path)))


def upgraded(raw: dict[str, Any]) -> dict[str, Any]:
    """A study.toml as this version reads one an earlier version wrote (`typed.upgrade`,
    table by table): a key added since takes its legacy value, which reproduces how the study
    ran then (e.g. a search without `select_on` selected on the test measures), and a key
    removed since is dropped with a warning."""
    tables = {**TABLES, "train": TrainConfig}
    return {**raw, **{name: typed.upgrade(cls, raw.get(name, {})) for name, cls in tables.items()
                      if isinstance(raw.get(name, {}), dict)}}


def data_for(experiment_dir: Path, data_path: Path | None) -> tuple[str | Path | None, str]:
    """The data of an experiment: (`data_path` if given, else its study.toml's
    `train.data_path` (None: the default file), the dataset it trains on); BadInput when the
    folder is no experiment."""
    spec = experiment_spec(experiment_dir)
    return (data_path if data_path is not None else spec["train"].get("data_path"),
            dataset_of(spec))


def parse_override(text: str) -> tuple[str, str, Any]:
    """`table.key=VALUE` (VALUE in TOML syntax; bare words are strings)."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise BadInput(f"--set expects TABLE.KEY=VALUE (e.g. train.steps=500), got '{text}'")
    path, raw_value = text.split("=", 1)
    table, key = path.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {raw_value}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw_value
    return table, key, value


def parse_toml(text: str, path: Path) -> dict[str, Any]:
    """A spec file's tables; BadInput naming the file when its syntax is broken."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise BadInput(f"{path} is not valid TOML ({err}); fix the syntax") from None


def load(source: str, overrides: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """A preset name or a TOML file, plus `--set` overrides, resolved and validated."""
    raw = read_source(source, overrides)
    _check_one_search(raw, DEFAULTS)
    return resolve(raw)


def read_source(source: str, overrides: list[str] | None = None) -> dict[str, Any]:
    """The raw tables of a preset or TOML file with `--set` overrides applied, unresolved
    (a study's `load` and a comparison's read their sources alike)."""
    if source in PRESETS:
        raw = copy.deepcopy(PRESETS[source].spec)
    else:
        path = Path(source)
        if not path.exists():
            raise BadInput(f"'{source}' is neither a preset ({', '.join(PRESETS)}) nor an "
                           "existing TOML file")
        try:
            raw = parse_toml(path.read_text(), path)
        except (OSError, UnicodeDecodeError) as err:
            raise BadInput(f"cannot read {path} ({err})") from None
    for text in overrides or []:
        table, key, value = parse_override(text)
        raw.setdefault(table, {})
        if not isinstance(raw[table], dict):
            raise BadInput(f"--set {text}: {table} is not a table")
        raw[table][key] = value
    return raw


def dumps(spec: dict[str, dict[str, Any]]) -> str:
    """The resolved spec as TOML (what `study.toml` holds), each train field with its help."""
    comments = {f"train.{k}": v for k, v in TrainConfig.field_help().items()}
    return toml_out.dumps(spec, {**comments, **COMMENTS})


def expand(spec: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """A grid spec (or a PBT spec's initial population) as its trial configs, in the same
    order every time; trial i's members get their seeds from `search_spaces.seeds`."""
    study = spec["study"]
    if study["search"] == "pbt":
        return pbt_space.expand(spec)
    return [
        {**spec["train"], "family": family, "value": value, "replicates": study["replicates"],
         "seeds": trial_seeds(study["seed"], i, study["replicates"], study["seeds"])}
        for i, (family, value) in enumerate(grid_points(spec["grid"], study["families"]))
    ]


def refuse_unshared_pbt(spec: dict[str, dict[str, Any]]) -> None:
    """A new PBT study whose `max_concurrent` is below its population: Tune would create the
    other trials only as these finish, so the population never takes turns and no trial is
    ever cloned (measured: `quick-pbt --max-concurrent 1` trained each trial to its end).
    Checked where a study starts, not on `resume`: a study written before still resumes."""
    res = spec["resources"]
    if spec["study"]["search"] == "pbt" and 0 < res["max_concurrent"] < n_trials(spec):
        raise BadInput(f"resources.max_concurrent = {res['max_concurrent']} with PBT: Tune would "
                       "start the population's other trials only as these finish, so none "
                       "would ever be cloned; limit the trials at once with --cpus-per-trial "
                       "or --gpus-per-trial (the population then takes turns), or set 0")


def n_trials(spec: dict[str, dict[str, Any]]) -> int:
    """Tune trials the study runs in all: the grid's points, or the adaptive budget."""
    if spec["study"]["search"] == "adaptive":
        return spec["adaptive"]["trials"]
    return len(expand(spec))


def n_models(spec: dict[str, dict[str, Any]]) -> int:
    return n_trials(spec) * spec["study"]["replicates"]

