"""The built-in study presets: plain data, resolved against the spec's tables (`study.tables`).

quick / quick-adaptive / quick-pbt are sized for minutes on a 2-core laptop CPU (narrow
networks, short schedules, a shortened Higgins classifier): pipeline checks. laptop is the
largest study that tests the seed's finding in <= 45 minutes there. paper / adaptive / pbt are
the seed protocol (paper architecture, the authors' optimiser schedule and metric protocol,
10 replicates).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from search_spaces.grids import DEFAULT_GRID, PAPER_GRID


@dataclass(frozen=True)
class Preset:
    description: str
    spec: dict[str, dict[str, Any]]


# Small networks and a short compressed version of the authors' schedule: minutes on a CPU.
QUICK_TRAIN: dict[str, Any] = {
    "steps": 600,
    "batch_size": 64,
    "encoder_width": 128,
    "decoder_width": 128,
    "latent_dim": 10,
    "discriminator_width": 128,  # factor_vae's, narrowed as the VAE's layers are
    "lr_schedule": "authors",
    "report_every": 100,
    "checkpoint_every": 200,
    "eval_every": 0,
    "recon_eval_images": 1000,
    "higgins_votes": 1000,
    "higgins_classifier_steps": 2000,
    "precision": "fp32",
}

# The seed protocol: paper architecture, batch 100, 60,000 steps, the authors' schedule,
# λ_MMD = 400, the authors' MMD estimator, the authors' Higgins protocol (100,000 steps).
PAPER_TRAIN: dict[str, Any] = {
    "steps": 60_000,
    "batch_size": 100,
    "encoder_width": 1200,
    "decoder_width": 1200,
    "latent_dim": 16,
    "lr_schedule": "authors",
    "report_every": 500,
    "checkpoint_every": 5000,
    "eval_every": 0,
    "recon_eval_images": 10_000,
}

# The largest study that tests the seed's finding in <= 45 minutes on 2 CPU cores (measured:
# docs/results.md, "A laptop-sized study"): 256-unit layers (the embedding-bag input layer makes the
# encoder cheap on a CPU), the paper's d = 16, λ_MMD = 400 and MMD estimator, the authors'
# schedule compressed to 5,000 steps, batch 64; the authors' Higgins protocol (L = 30,
# 5,000 votes, training accuracy, 3 restarts) with its classifier cut to 10,000 steps.
LAPTOP_TRAIN: dict[str, Any] = {
    "steps": 5000,
    "batch_size": 64,
    "encoder_width": 256,
    "decoder_width": 256,
    "latent_dim": 16,
    "discriminator_width": 256,  # factor_vae's, narrowed as the VAE's layers are
    "lr_schedule": "authors",
    "lambda_mmd": 400.0,
    "report_every": 250,
    "checkpoint_every": 1000,
    "eval_every": 0,
    "recon_eval_images": 10_000,
    "higgins_protocol": "authors",
    "higgins_votes": 5000,
    "higgins_classifier_steps": 10_000,
    "precision": "fp32",
}

# PBT at quick size: the quick nets trained twice as long, evaluated (cheaply) and
# checkpointed at every perturbation step.
QUICK_PBT_TRAIN: dict[str, Any] = {
    **QUICK_TRAIN,
    "steps": 1200,
    "report_every": 100,
    "checkpoint_every": 200,
    "eval_every": 200,
    "interim_higgins_votes": 500,
    "interim_higgins_classifier_steps": 1000,
    "interim_recon_eval_images": 500,
}

# PBT at the seed's protocol: evaluations and checkpoints at every perturbation (5,000 steps),
# the interim ones with a tenth of the authors' votes and classifier steps.
PAPER_PBT_TRAIN: dict[str, Any] = {
    **PAPER_TRAIN,
    "eval_every": 5000,
    "interim_higgins_votes": 500,
    "interim_higgins_classifier_steps": 10_000,
    "interim_recon_eval_images": 2000,
}

# The searches compared at equal compute (`study.compare`): quick-pbt's nets and schedule for
# every method (evaluated cheaply and checkpointed every 200 of 1,200 steps), half the
# held-out images for validation in every study, so all are scored on the same test images.
SEARCH_COMPARE_TRAIN: dict[str, Any] = {**QUICK_PBT_TRAIN, "validation_fraction": 0.5}

# The hypervolume box, fixed before the study runs: the quick presets' small, short-trained
# models reconstruct at ~300-650 nats (the others keep analysis.box.DEFAULT).
QUICK_REPORT: dict[str, Any] = {"recon_reference": 1000.0}

PRESETS: dict[str, Preset] = {
    "quick": Preset(
        "the seed's three families at two values each, 2 replicates, small nets, 600 steps: "
        "minutes on a laptop CPU",
        {
            "study": {"name": "quick", "search": "grid", "replicates": 2,
                      "description": "quick end-to-end check of the whole pipeline"},
            "grid": {"beta_vae": [1, 16], "wae_gaussian": [0, 4], "wae_uniform": [0, 4]},
            "train": QUICK_TRAIN,
            "resources": {"max_failures": 1},
            "report": QUICK_REPORT,
        },
    ),
    "quick-adaptive": Preset(
        "the adaptive Optuna search over λ1 at quick size (6 trials × 2 replicates): "
        "minutes on a laptop CPU",
        {
            "study": {"name": "quick-adaptive", "search": "adaptive", "replicates": 2,
                      "description": "quick check of the adaptive search"},
            "adaptive": {"trials": 6},
            "train": QUICK_TRAIN,
            "resources": {"max_failures": 1},
            "report": QUICK_REPORT,
        },
    ),
    "quick-pbt": Preset(
        "population-based training of λ1 at quick size (4 Gaussian WAEs × 2 replicates, "
        "perturbed every 200 of 1,200 steps): minutes on a laptop CPU",
        {
            "study": {"name": "quick-pbt", "search": "pbt", "replicates": 2,
                      "description": "quick check of population-based training of λ1"},
            # quick models' test recon (~330 nats) is far above the seed's 150-nat bound:
            # rank by 5-var minus recon / 1000 instead of the constrained score
            # the bottom half clones the top half at each of 5 perturbation steps: PBT at work
            "pbt": {"families": ["wae_gaussian"], "population": 4,
                    "perturbation_interval": 200, "quantile_fraction": 0.5,
                    "objective": "weighted", "recon_scale": 1000.0},
            "train": QUICK_PBT_TRAIN,
            "resources": {"max_failures": 1},
            "report": QUICK_REPORT,
        },
    ),
    "laptop": Preset(
        "β-VAE against the Gaussian WAE, 3 values × 8 replicates each, 256-unit nets, "
        "5,000 steps: the seed's finding tested in under 45 minutes on 2 CPU cores",
        {
            "study": {"name": "laptop", "search": "grid", "replicates": 8,
                      "families": ["beta_vae", "wae_gaussian"],
                      "description": "the seed's qualitative finding at laptop size"},
            # values of the seed's grids: β from the plain VAE to its most disentangling
            # value on the GPU calibration (β = 30), λ1 from none to well past the knee
            "grid": {"beta_vae": [1, 10, 30], "wae_gaussian": [0, 2, 5]},
            "train": LAPTOP_TRAIN,
            "resources": {"max_failures": 1},
        },
    ),
    "color-laptop": Preset(
        "the seed's finding beyond dSprites: β-VAE against the Gaussian WAE on color_dsprites "
        "(offline), 2 values × 6 replicates each, 256-unit nets, 2,500 steps: 50 minutes on "
        "2 CPU cores, measured once",
        {
            "study": {"name": "color-laptop", "search": "grid", "replicates": 6,
                      "families": ["beta_vae", "wae_gaussian"],
                      "description": "the seed's qualitative finding on coloured dSprites"},
            # the laptop study's outer values: its β-VAE front rested on β = 1 and 10 (β = 30
            # did not train at this length), its WAE's on λ1 = 0 (recon) and 5 (5-var)
            "grid": {"beta_vae": [1, 10], "wae_gaussian": [0, 5]},
            # a coloured step costs ~3.7 dSprites ones on the CPU (3 channels, and a sprite's
            # colour in [0.5, 1] is no binary target): half the laptop's steps, 4 trials
            "train": {**LAPTOP_TRAIN, "dataset": "color_dsprites", "steps": 2500},
            "resources": {"max_failures": 1},
            # colour targets in [0.5, 1] carry ~0.5 nats of entropy per channel: an image's
            # recon floor is ~260 nats (dSprites': 0), so the box's reference moves up
            "report": {"recon_reference": 600.0},
        },
    ),
    "search-compare-laptop": Preset(
        "the seed's closing question at laptop size: grid, Optuna (TPE), PBT scalar and PBT "
        "Pareto over λ1 of the Gaussian WAE, 6 packs each (equal model-steps), 6 search seeds, "
        "and Optuna and PBT again selecting on the test measures (their bias)",
        {
            "compare": {"family": "wae_gaussian", "search_seeds": 6, "trials": 6,
                        "methods": ["grid", "optuna", "pbt_scalar", "pbt_pareto"],
                        "select_on": ["validation", "test"]},
            "study": {"name": "search-compare-laptop", "replicates": 1,
                      "description": "grid vs Optuna vs PBT at equal compute"},
            # 3 random trials of 6 before TPE's model steers
            "adaptive": {"startup_trials": 3},
            # quick models reconstruct at ~330 nats: rank by 5-var minus recon / 1000; the
            # bottom quarter (2 of 6) clones the top quarter at each of 5 perturbation steps
            "pbt": {"perturbation_interval": 200, "quantile_fraction": 0.25,
                    "objective": "weighted", "recon_scale": 1000.0},
            "train": SEARCH_COMPARE_TRAIN,
            "resources": {"max_failures": 1},
            "report": QUICK_REPORT,
        },
    ),
    "paper": Preset(
        "the seed protocol: 3 families × 9 values × 10 replicates = 270 models, paper "
        "architecture, authors' schedule and metric protocol (GPU hours)",
        {
            "study": {"name": "paper", "search": "grid", "replicates": 10,
                      "description": "Rubenstein et al. 2018, Figure 1"},
            "grid": {family: list(values) for family, values in PAPER_GRID.items()},
            "train": PAPER_TRAIN,
        },
    ),
    "baselines": Preset(
        "the seed protocol against the field's later objectives: the seed's 3 families at its "
        "grids and β-TCVAE, DIP-VAE-I, DIP-VAE-II, AnnealedVAE, FactorVAE at "
        "disentanglement_lib's, × 10 replicates, paper architecture (GPU hours)",
        {
            "study": {"name": "baselines", "search": "grid", "replicates": 10,
                      "families": list(DEFAULT_GRID),
                      "description": "Rubenstein et al. 2018 against Locatello et al. 2019's "
                                     "objectives"},
            "grid": {family: list(values) for family, values in DEFAULT_GRID.items()},
            "train": PAPER_TRAIN,
        },
    ),
    "baselines-laptop": Preset(
        "the Gaussian WAE and β-VAE against β-TCVAE, DIP-VAE-I, DIP-VAE-II, AnnealedVAE and "
        "FactorVAE, 2 values × 3 replicates each, laptop-size nets and schedule: under 45 "
        "minutes on 2 CPU cores (intervals only: 3 replicates cannot reach a verdict)",
        {
            "study": {"name": "baselines-laptop", "search": "grid", "replicates": 3,
                      "families": ["beta_vae", "wae_gaussian", "beta_tcvae", "dip_vae_i",
                                   "dip_vae_ii", "annealed_vae", "factor_vae"],
                      "description": "the seed's comparison against today's baselines at "
                                     "laptop size"},
            # two values of each family's grid: a weak and a strong regulariser
            "grid": {"beta_vae": [1, 10], "wae_gaussian": [0, 2], "beta_tcvae": [4, 10],
                     "dip_vae_i": [1, 10], "dip_vae_ii": [1, 10], "annealed_vae": [5, 25],
                     "factor_vae": [10, 40]},
            "train": LAPTOP_TRAIN,
            "resources": {"max_failures": 1},
        },
    ),
    "pbt": Preset(
        "population-based training of β and λ1 at the seed protocol: 9 β-VAEs and 9 Gaussian "
        "WAEs × 10 replicates, perturbed every 5,000 of 60,000 steps (GPU hours)",
        {
            "study": {"name": "pbt", "search": "pbt", "replicates": 10,
                      "description": "the seed's open question: λ1 set during training"},
            "pbt": {"families": ["beta_vae", "wae_gaussian"], "population": 9,
                    "perturbation_interval": 5000},
            "train": PAPER_PBT_TRAIN,
        },
    ),
    "adaptive": Preset(
        "Optuna search over λ1 for both WAE families (30 trials × 10 replicates, paper "
        "protocol): 5-var disentanglement up, test reconstruction error down",
        {
            "study": {"name": "adaptive", "search": "adaptive", "replicates": 10,
                      "description": "adaptive λ1 search, multi-objective"},
            "adaptive": {"trials": 30, "objective": "pareto"},
            "train": PAPER_TRAIN,
        },
    ),
}
