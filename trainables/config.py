"""`TrainConfig`: everything one trial needs, validated before anything runs.

One trial trains a *pack*: `replicates` models of one family at one hyperparameter value,
each with its own seed. Defaults reproduce the authors' setting (paper architecture, batch 100,
their Adam schedule, their MMD estimator); the study presets override size and length.
Where the sources disagree (the paper's text, the authors' code, the WAE paper's code) the
choice is a named option, never a constant.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

from trainables import datasets, families, typed

# The families, read off their registry (`trainables.families`, one module per objective).
FAMILIES: tuple[str, ...] = tuple(families.FAMILIES)
SEED_FAMILIES: tuple[str, ...] = tuple(  # the seed paper's: a study's default
    name for name, family in families.FAMILIES.items() if family.paper)
WAE_FAMILIES: tuple[str, ...] = tuple(
    name for name, family in families.FAMILIES.items() if family.wae)
# The hyperparameter each family is swept over, and how reports and progress lines write it.
PARAM_OF: dict[str, str] = {name: family.param for name, family in families.FAMILIES.items()}
PARAM_SYMBOL: dict[str, str] = {family.param: family.symbol
                                for family in families.FAMILIES.values()}
# FactorVAE's discriminator optimiser (Kim & Mnih 2018, disentanglement_lib): Adam with
# these betas at `discriminator_lr`, one step per VAE step.
DISCRIMINATOR_BETAS = (0.5, 0.9)

# The choices of the string fields, as types: the dataclass checks values against them.
# Family's are the registry's names; the other tuples of names are read off their types
# (each list of names is written once).
Family = Literal[FAMILIES]
MmdEstimator = Literal["authors", "wae_paper"]
UniformBox = Literal["corner", "centred"]
UniformCode = Literal["mu", "centre"]
Precision = Literal["fp32", "tf32", "bf16", "auto"]
HigginsProtocol = Literal["authors", "heldout"]
Metric = Literal["higgins", "mig", "factorvae", "dci", "sap"]
DatasetName = Literal[tuple(datasets.DATASETS)]
Architecture = Literal["fc", "conv"]

METRIC_NAMES: tuple[str, ...] = get_args(Metric)  # what `metrics` / `evaluate --metrics` take
EXTRA_METRICS: tuple[str, ...] = METRIC_NAMES[1:]

# The authors' Adam schedule: (first step, learning rate), for a run of AUTHORS_STEPS steps.
AUTHORS_SCHEDULE = ((0, 1e-3), (15_000, 7e-4), (30_000, 3e-4), (45_000, 1e-4))
AUTHORS_STEPS = 60_000

# Fields that only say how a run is observed or where it runs: a resumed trial may change them
# without changing its training trajectory.
RUN_FIELDS = frozenset({
    "report_every", "checkpoint_every", "eval_every", "eval_at_start", "metrics",
    "higgins_protocol", "higgins_classifier_steps", "higgins_votes", "eval_seed",
    "recon_eval_images", "uniform_code", "data_path", "device", "keep_optimizer_state",
    "interim_higgins_votes", "interim_higgins_classifier_steps", "interim_recon_eval_images",
    "validation_fraction", "validation_seed",
})


def trial_settings(config: dict[str, Any]) -> dict[str, Any]:
    """A Tune trial's config as TrainConfig fields ({} for none), read as this version reads
    an earlier one's (`typed.upgrade`): Tune hands a resumed trial the config it saved, and
    params.json keeps it. Every search puts them under "trial" (the grid's and PBT's points,
    the Optuna searcher's suggestions merged into the [train] settings); adaptive experiments
    written before that hold them at the top level."""
    nested = config.get("trial")
    settings = nested if isinstance(nested, dict) else config
    return typed.upgrade(TrainConfig, settings) if settings else {}


_help = typed.setting


@dataclass
class TrainConfig:
    """One trial: a pack of `replicates` models of one family at one value of its parameter."""

    family: Family = _help("model family: " + "; ".join(
        f"{name} ({family.summary})" for name, family in families.FAMILIES.items()),
        default="beta_vae")
    value: float = _help("the family's hyperparameter (`param`): " + "; ".join(
        f"{param} ({symbol}) for {' and '.join(n for n, p in PARAM_OF.items() if p == param)}"
        for param, symbol in PARAM_SYMBOL.items()), default=1.0)
    replicates: int = _help("K, models trained together as one pack (one per seed)", default=1)
    seed: int = _help(
        "base seed when `seeds` is null: member r trains with seed + r", default=0)
    seeds: list[int] | None = _help(
        "each member's own seed (one per replicate), as a study assigns them "
        "(search_spaces.seeds); a member's init, batches and noise come from its seed alone, "
        "so it trains the same in any pack; null = seed + r", default=None)
    perturbable: bool = _help(
        "population-based training may change `value` between checkpoints (a PBT study sets "
        "it); otherwise a checkpoint only continues its own value", default=False)
    steps: int = _help("optimiser steps per member (the authors: 60,000)", default=AUTHORS_STEPS)
    batch_size: int = _help(
        "images per member per step; 100 as the authors (disentanglement_lib uses 64)",
        default=100)
    lr_schedule: str | list[list[float]] = _help(
        "Adam learning rates: 'authors' (1e-3, 7e-4 @15k, 3e-4 @30k, 1e-4 @45k of 60k steps, "
        "boundaries scaled by steps/60000) or a list of [first_step, lr] pairs starting at 0",
        default="authors")
    dataset: DatasetName = _help("the images trained on and scored: " + "; ".join(
        f"{name} ({dataset.summary})" for name, dataset in datasets.DATASETS.items())
        + "; the default is the behaviour before this field existed", default="dsprites")
    architecture: Architecture = _help(
        "'fc': the paper's fully connected encoder and decoder (widths below); 'conv': "
        "disentanglement_lib's conv_encoder / deconv_decoder as its code has them (4 strided "
        "convolutions 32, 32, 64, 64, the last two 2x2 kernels where the paper's table says "
        "4x4, then dense 256; the decoder its mirror); the default is the behaviour before "
        "this field existed", default="fc")
    latent_dim: int = _help("d, latent dimensions (the paper: 16)", default=16)
    encoder_width: int = _help("units in each of the 2 ReLU encoder layers", default=1200)
    decoder_width: int = _help("units in each of the 3 tanh decoder layers", default=1200)
    lambda_mmd: float = _help(
        "λ_MMD, the WAE's MMD weight: 400 as the authors' example command with batch 100 "
        "(their config file says 20); unused by beta_vae", default=400.0)
    mmd_estimator: MmdEstimator = _help(
        "'authors': IMQ scales C ∈ {0.001..2}·d, diagonal dropped from pp, qq and pq, all "
        "divided by n(n-1); 'wae_paper': C = 2·d·{0.1..10} (σ²=1), pq over all n² pairs / n²",
        default="authors")
    annealed_gamma: float = _help(
        "γ of annealed_vae, the weight of |KL − C| (disentanglement_lib: 1000)", default=1000.0)
    capacity_steps: int | None = _help(
        "steps over which annealed_vae's capacity C rises linearly from 0 to c_max (`value`), "
        "then held; null = a third of `steps` (disentanglement_lib: 100,000 of 300,000)",
        default=None)
    discriminator_width: int = _help(
        "units in each hidden layer of factor_vae's discriminator (disentanglement_lib: 1000)",
        default=1000)
    discriminator_layers: int = _help(
        "hidden leaky-ReLU layers of factor_vae's discriminator (disentanglement_lib: 6)",
        default=6)
    discriminator_lr: float = _help(
        "factor_vae's discriminator learning rate, constant (Adam, betas 0.5, 0.9: "
        "disentanglement_lib's 1e-4)", default=1e-4)
    penalty_p: float = _help("p of the WAE penalty λ1·mean_n Σ_i |log σ²_i|^p", default=1.0)
    uniform_box: UniformBox = _help(
        "wae_uniform posterior box: 'corner' z = μ + e^s·u, u ~ U(0,1) (the authors' code) or "
        "'centred' u ~ U(-1/2, 1/2)", default="corner")
    uniform_code: UniformCode = _help(
        "code of a wae_uniform model for the metrics: 'mu' (the encoder's μ, the authors' "
        "z_mean: the corner where a corner box starts) or 'centre' (the box centre, its "
        "posterior mean)", default="mu")
    logvar_clip: list[float] | None = _help(
        "[low, high] clip of the WAE encoders' log-variance / log side length where it is "
        "exponentiated (the authors: [-16, 10]; the L1 penalty acts on the unclipped value, as "
        "theirs); null = no clip; beta_vae is never clipped",
        default_factory=lambda: [-16.0, 10.0])
    precision: Precision = _help(
        "fp32; tf32 (CUDA TF32 matmuls); bf16 (autocast: the matmuls and the activations between "
        "them in bf16; the encoder heads, decoder logits, every loss term and reduction, the "
        "master weights, Adam and all evaluation in fp32). A bf16 model's scores differ from "
        "its fp32 twin's about as much as another seed's (docs/speed.md); auto (opt-in): "
        "bf16 on a CPU with native bf16 (avx512_bf16 or amx_bf16 flags) where a start-up probe "
        "of the trial's step finds it 1.1x faster, else fp32; fp32 on CUDA. A trial keeps its "
        "choice across resumes; the report's footer names it",
        default="fp32")
    keep_optimizer_state: bool = _help(
        "keep Adam's moments and the batch streams in a finished trial's final checkpoint, to "
        "continue training it later; false keeps the final weights only (a third of the size; "
        "a paper-size pack: 0.57 GB instead of 1.7 GB)", default=False)
    report_every: int = _help("steps between reports to Ray Tune", default=500)
    checkpoint_every: int = _help(
        "steps between checkpoints (0 = only at the end); one is always written at the end",
        default=5_000)
    eval_every: int = _help(
        "steps between metric evaluations (0 = only at the end)", default=0)
    eval_at_start: bool = _help(
        "evaluate the untrained pack at step 0 (the metrics' chance baseline)", default=True)
    metrics: list[Metric] = _help(
        "disentanglement metrics: 'higgins' (every Higgins task of the dataset: dSprites' 4- "
        "and 5-variable ones), extra 'mig', "
        "'factorvae', 'dci', 'sap'; [] = reconstruction errors only",
        default_factory=lambda: ["higgins"])
    higgins_protocol: HigginsProtocol = _help(
        "Higgins metric protocol: 'authors' (as the seed's code) or 'heldout'",
        default="authors")
    higgins_classifier_steps: int | None = _help(
        "training steps of the Higgins metric's classifier; null = the metric's default "
        "(quick presets shorten it)", default=None)
    higgins_votes: int | None = _help(
        "votes per Higgins calculation; null = the protocol's (authors 5,000, heldout 10,000)",
        default=None)
    eval_seed: int = _help(
        "seed of every metric sample: shared by all members and trials, so scores compare "
        "on identical votes and images, and a model scores the same alone or in a pack",
        default=0)
    recon_eval_images: int = _help(
        "images per split for the train/test reconstruction errors", default=10_000)
    interim_higgins_votes: int | None = _help(
        "higgins_votes of every evaluation before the last step (periodic ones, PBT's "
        "perturbation steps): a cheaper ranking; null = as the final evaluation", default=None)
    interim_higgins_classifier_steps: int | None = _help(
        "higgins_classifier_steps of the evaluations before the last step; null = as the "
        "final", default=None)
    interim_recon_eval_images: int | None = _help(
        "recon_eval_images of the evaluations before the last step; null = as the final",
        default=None)
    split_seed: int = _help("seed of the random train/test split of all images", default=0)
    test_fraction: float = _help("fraction of the images held out for testing", default=0.1)
    validation_fraction: float | None = _help(
        "fraction of the held-out images set aside for validation, the measures a search "
        "selects on (`validation_*` columns: Higgins votes from `validation_seed`, "
        "reconstruction on these images), so the test measures the report states played no "
        "part in any search decision; the rest stay the test images. Training images are never "
        "touched. null: a study resolves it (0.5 where a search selects on validation, else "
        "0); 0 = no validation, the behaviour before this field existed", default=None)
    validation_seed: int = _help(
        "seed of the validation measures' Higgins votes and image samples, kept apart from "
        "`eval_seed` (the test measures')", default=1)
    data_path: str | None = _help(
        "the dataset's file when the trial loads its own data (the dSprites variants read the "
        "dSprites file); null = its default file (dSprites: the generated one)",
        default=None)
    device: str = _help(
        "'auto' (the GPU Ray assigned, else CPU), 'cpu', 'cuda' or 'cuda:N'", default="auto")

    def __post_init__(self) -> None:
        self._validate()

    # ---- derived ----------------------------------------------------------------------
    @property
    def param(self) -> str:
        """Name of `value` (`PARAM_OF`): 'beta', 'lambda1', 'lambda_od', 'c_max', 'gamma'."""
        return PARAM_OF[self.family]

    @property
    def annealing_steps(self) -> int:
        """Steps over which annealed_vae's capacity rises (`capacity_steps`, else steps / 3)."""
        return self.capacity_steps or max(1, self.steps // 3)

    @property
    def member_seeds(self) -> list[int]:
        """Seed of each member: `seeds`, else seed + r; member r equals a K=1 run with it."""
        if self.seeds is not None:
            return list(self.seeds)
        return [self.seed + r for r in range(self.replicates)]

    def schedule(self) -> list[tuple[int, float]]:
        """The resolved piecewise-constant schedule: (first step, learning rate) pairs."""
        if self.lr_schedule == "authors":
            scale = self.steps / AUTHORS_STEPS
            return [(round(step * scale), lr) for step, lr in AUTHORS_SCHEDULE]
        return [(int(step), float(lr)) for step, lr in self.lr_schedule]

    @property
    def validates(self) -> bool:
        """Whether evaluations also measure the validation images (`validation_fraction`)."""
        return bool(self.validation_fraction)

    def interim(self) -> TrainConfig:
        """This config as evaluations before the last step use it (the `interim_*` fields)."""
        changes = {name: getattr(self, f"interim_{name}") for name in
                   ("higgins_votes", "higgins_classifier_steps", "recon_eval_images")}
        return dataclasses.replace(
            self, **{k: v for k, v in changes.items() if v is not None})

    def lr_at(self, step: int) -> float:
        """Learning rate of the update made at `step` (0-based)."""
        return [lr for first, lr in self.schedule() if step >= first][-1]

    # ---- dict round trip --------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON/TOML-friendly copy of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Validate and build; unknown keys and wrong types raise ValueError naming the fix."""
        return typed.build(cls, d)

    @classmethod
    def from_saved(cls, d: dict[str, Any]) -> TrainConfig:
        """`from_dict` of a config an earlier version may have written (a checkpoint's): the
        fields added since take their legacy values, those removed since are ignored."""
        return cls.from_dict(typed.upgrade(cls, d))

    @classmethod
    def field_help(cls) -> dict[str, str]:
        """Each field's help text, for the CLI and the README."""
        return typed.field_help(cls)

    # ---- validation -------------------------------------------------------------------
    def _validate(self) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, _coerce(f.name, getattr(self, f.name)))
        if len(set(self.metrics)) != len(self.metrics):
            raise ValueError(f"metrics lists a metric twice ({self.metrics}): list each once")
        _at_least("value", self.value, 0)
        _at_least("replicates", self.replicates, 1)
        _at_least("seed", self.seed, 0)
        if self.seeds is not None and (
            len(self.seeds) != self.replicates or any(s < 0 for s in self.seeds)
        ):
            raise ValueError(f"seeds must hold one seed >= 0 per replicate ({self.replicates}), "
                             f"got {self.seeds}: give {self.replicates} seeds or null")
        _at_least("split_seed", self.split_seed, 0)
        if self.validation_fraction is not None and not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1) (e.g. 0.5) or null, got "
                             f"{self.validation_fraction}")
        _at_least("steps", self.steps, 1)
        _at_least("batch_size", self.batch_size, 2)  # MMD needs two samples
        _at_least("latent_dim", self.latent_dim, 1)
        _at_least("encoder_width", self.encoder_width, 1)
        _at_least("decoder_width", self.decoder_width, 1)
        _at_least("lambda_mmd", self.lambda_mmd, 0)
        _at_least("annealed_gamma", self.annealed_gamma, 0)
        _at_least("discriminator_width", self.discriminator_width, 1)
        _at_least("discriminator_layers", self.discriminator_layers, 1)
        if not (self.discriminator_lr > 0 and math.isfinite(self.discriminator_lr)):
            raise ValueError(f"discriminator_lr must be positive and finite, got "
                             f"{self.discriminator_lr}: use 1e-4 (disentanglement_lib)")
        families.FAMILIES[self.family].check(self)
        if self.capacity_steps is not None:
            _at_least("capacity_steps", self.capacity_steps, 1)
        _at_least("report_every", self.report_every, 1)
        _at_least("checkpoint_every", self.checkpoint_every, 0)
        _at_least("eval_every", self.eval_every, 0)
        _at_least("recon_eval_images", self.recon_eval_images, 1)
        _at_least("eval_seed", self.eval_seed, 0)
        for name in ("higgins_classifier_steps", "higgins_votes", "interim_higgins_votes",
                     "interim_higgins_classifier_steps", "interim_recon_eval_images"):
            if getattr(self, name) is not None:
                _at_least(name, getattr(self, name), 1)
        if not self.penalty_p > 0:
            raise ValueError(f"penalty_p must be > 0, got {self.penalty_p}: use 1 (the paper)")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}: "
                             "use 0.1 (the paper's 90/10 split)")
        if self.logvar_clip is not None and (
            len(self.logvar_clip) != 2 or not self.logvar_clip[0] < self.logvar_clip[1]
        ):
            raise ValueError(f"logvar_clip must be [low, high] with low < high, got "
                             f"{self.logvar_clip}: use [-16, 10] (the authors) or null")
        dev = self.device
        if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {dev!r}")
        self._validate_schedule()

    def _validate_schedule(self) -> None:
        if isinstance(self.lr_schedule, str):
            if self.lr_schedule != "authors":
                raise ValueError(f"lr_schedule must be 'authors' or a list of [step, lr] pairs, "
                                 f"got {self.lr_schedule!r}")
            return
        fix = "give [[0, lr0], [step1, lr1], ...] with increasing steps and positive rates"
        pairs = self.lr_schedule
        if not pairs or any(len(pair) != 2 for pair in pairs):
            raise ValueError(f"lr_schedule {pairs} is not a list of [step, lr] pairs: {fix}")
        steps = [pair[0] for pair in pairs]
        if not all(float(step).is_integer() for step in steps):
            raise ValueError(f"lr_schedule steps {steps} must be whole numbers: {fix}")
        self.lr_schedule = [[int(step), lr] for step, lr in pairs]
        steps = [pair[0] for pair in self.lr_schedule]
        if steps[0] != 0 or any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
            raise ValueError(f"lr_schedule steps {steps} must start at 0 and increase: {fix}")
        if any(not (pair[1] > 0 and math.isfinite(pair[1])) for pair in pairs):
            raise ValueError(f"lr_schedule rates must be positive and finite: {fix}")


def _at_least(name: str, value: float, low: float) -> None:
    if not value >= low or (isinstance(value, float) and not math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number >= {low}, got {value!r}")


def _coerce(name: str, value: Any) -> Any:
    return typed.coerce(TrainConfig, name, value)
