"""What a family must define (`trainables.families.base.Family`), checked for every one in
the registry, and that the rest of the project reads the registry rather than a list of its
own."""

from __future__ import annotations

import dataclasses
import math
from typing import get_args

import pytest
from matplotlib.colors import is_color_like

from analysis.aggregate import PAPER
from analysis.figures import colour
from search_spaces.grids import DEFAULT_GRID
from study.tables import ParamBounds
from trainables.config import FAMILIES as NAMES
from trainables.config import PARAM_OF, PARAM_SYMBOL, SEED_FAMILIES, Family, TrainConfig
from trainables.families import FAMILIES
from trainables.families import Family as FamilyClass
from trainables.families.beta_vae import BETA_VAE, BetaVae


def missing(family: FamilyClass) -> list[str]:
    """What `family` lacks of what every family must define (empty when complete)."""
    lacks = [name for name in ("name", "summary", "param", "symbol")
             if not isinstance(getattr(family, name), str) or not getattr(family, name)]
    if type(family).losses is FamilyClass.losses:
        lacks.append("losses")
    if not is_color_like(family.colour):
        lacks.append("colour")
    low, high = family.bounds
    if not 0 <= low < high or not all(map(math.isfinite, family.bounds)):
        lacks.append("bounds")
    if not family.grid or not all(low <= v <= high for v in family.grid):
        lacks.append("grid")  # a default grid, inside the default bounds
    if not family.wae and family.uniform:
        lacks.append("uniform")  # the box encoder is a WAE's: a KL needs a Gaussian posterior
    return lacks


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_defines_what_a_family_must(name):
    family = FAMILIES[name]
    assert family.name == name
    assert missing(family) == []


def test_a_family_missing_a_definition_is_caught():
    class NoLoss(BetaVae):
        losses = FamilyClass.losses

    assert missing(NoLoss(**{f.name: getattr(BETA_VAE, f.name)
                             for f in dataclasses.fields(BETA_VAE)})) == ["losses"]
    assert missing(dataclasses.replace(BETA_VAE, colour="not a colour")) == ["colour"]
    assert missing(dataclasses.replace(BETA_VAE, symbol="")) == ["symbol"]
    assert missing(dataclasses.replace(BETA_VAE, bounds=(5.0, 1.0))) == ["bounds", "grid"]
    assert missing(dataclasses.replace(BETA_VAE, grid=())) == ["grid"]
    with pytest.raises(TypeError, match="colour"):  # a field with no value is no family
        BetaVae(name="x", summary="x", param="x", symbol="x", grid=(1,), bounds=(0, 1))


def test_families_that_share_a_parameter_agree_on_its_symbol_and_bounds():
    for param in set(PARAM_OF.values()):
        sharing = [f for f in FAMILIES.values() if f.param == param]
        assert {(f.symbol, f.bounds) for f in sharing} == {(PARAM_SYMBOL[param],
                                                            sharing[0].bounds)}, param


def test_colours_tell_the_families_apart():
    assert len({f.colour for f in FAMILIES.values()}) == len(FAMILIES)


def test_the_project_reads_the_registry():
    """The config's choice, the grids, the search bounds, the figures' colours and the
    paper's numbers are the registry's, so a new family needs no edit there."""
    assert get_args(Family) == NAMES == tuple(FAMILIES)
    assert PARAM_OF == {name: f.param for name, f in FAMILIES.items()}
    assert DEFAULT_GRID == {name: f.grid for name, f in FAMILIES.items()}
    bounds = ParamBounds()
    for family in FAMILIES.values():
        assert (getattr(bounds, f"{family.param}_min"),
                getattr(bounds, f"{family.param}_max")) == family.bounds
        assert colour(family.name) == family.colour
    assert set(PAPER) == set(SEED_FAMILIES) == {n for n, f in FAMILIES.items() if f.paper}


def test_a_familys_rule_on_the_config_is_its_own():
    """FactorVAE's batch rule (`check`) binds FactorVAE alone."""
    small = dict(batch_size=8, latent_dim=2)
    with pytest.raises(ValueError, match="factor_vae's shuffled codes"):
        TrainConfig(family="factor_vae", **small)
    for name in FAMILIES:
        if name != "factor_vae":
            TrainConfig(family=name, **small)
