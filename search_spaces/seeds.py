"""The one rule that gives every model of a study its seed.

A model is (trial, replicate). With ``[study] seeds = "independent"`` (the default, as the
seed paper's replicates: every model its own initialisation, batches and noise) its seed is

    SeedSequence([study_seed, trial, replicate]).generate_state(1, uint64)[0] >> 1

where ``trial`` is the grid point's index in the expanded study, or an adaptive trial's Optuna
trial number. 63-bit seeds from a hash of the key: no two models of a study share one (the
chance that two of 270 collide is ~4e-15), and neighbouring trials share nothing.

``seeds = "paired"`` gives every trial the same R seeds (those of trial 0): common random
numbers, a deliberate variance-reduction design in which replicate r starts from the same
weights and sees the same batches at every grid point.

A member's own streams (init, batches, noise) are derived from its seed in
``trainables.models.member_stream_seed``, so a member trains the same in any pack.
"""

from __future__ import annotations

from trainables.seeding import hashed_seed

SEED_DESIGNS = ("independent", "paired")


def model_seed(study_seed: int, trial: int, replicate: int) -> int:
    """The seed of replicate `replicate` of trial `trial` (63 bits)."""
    return hashed_seed(study_seed, trial, replicate)


def trial_seeds(study_seed: int, trial: int, replicates: int, design: str) -> list[int]:
    """The member seeds of one trial under `design` ('independent' or 'paired')."""
    if design not in SEED_DESIGNS:
        raise ValueError(f"seeds must be one of {', '.join(SEED_DESIGNS)}, got {design!r}")
    key = 0 if design == "paired" else trial
    return [model_seed(study_seed, key, r) for r in range(replicates)]
