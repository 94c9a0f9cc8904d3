"""What a training family is: its objective and every fact about it, in one object.

As disentanglement_lib's one class per objective (`BaseVAE.regularizer` overridden), a
family here is a frozen `Family` whose subclass writes its loss (`losses`) and whose fields
say everything else the project needs to know about it: the parameter it is swept over and
how reports write it, its encoder and prior, whether it trains a discriminator, its colour
in the figures, its default grid and search bounds, the seed paper's numbers for it, and
any rule it puts on the config (`check`). The registry (`trainables.families.FAMILIES`)
lists them; the pack, the models, the config, the searches, the figures and the presets
read them there, so adding a family is one module and its line in the registry.

Nothing here imports torch at module level: the config (hence the command line's start-up)
reads the registry, and a family's loss imports `trainables.losses` when it runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import torch

    from trainables.config import TrainConfig
    from trainables.pack import Batch, PackTrainer


class Forward(NamedTuple):
    """One step's forward pass, what a family's loss reads; each tensor has a leading K."""

    batch: Batch
    mean: torch.Tensor  # the encoder's mean (K, B, d)
    spread: torch.Tensor  # its log-variance, or the uniform box's log side length (K, B, d)
    z: torch.Tensor  # the posterior sample (K, B, d)
    recon: torch.Tensor  # each member's reconstruction loss [K]


class Losses(NamedTuple):
    """Each member's losses, [K]: what the VAE minimises, its reconstruction term, and what
    its discriminator minimises (FactorVAE's; else None)."""

    total: torch.Tensor
    recon: torch.Tensor
    discriminator: torch.Tensor | None = None


@dataclass(frozen=True, kw_only=True)
class Family:
    """One training family. A subclass writes `losses` (and `check` where the family puts a
    rule on the config); an instance fills in the facts."""

    name: str  # the config's `family`
    summary: str  # its objective in a few words, for the `family` setting's help
    param: str  # the name of the swept `TrainConfig.value`
    symbol: str  # how reports, figures and progress lines write the parameter
    colour: str  # a matplotlib colour, the same in every figure
    grid: tuple[float, ...]  # the values a grid study trains by default
    bounds: tuple[float, float]  # the default [min, max] the adaptive search and PBT explore
    paper: Mapping[str, Any] | None = None  # the seed paper's headline numbers, §3: a seed family
    wae: bool = False  # an MMD to prior samples instead of a KL; μ through tanh, spread clipped
    uniform: bool = False  # a box posterior and a U[-1,1]^d prior instead of Gaussians
    discriminator: bool = False  # trains K discriminators beside the VAEs (FactorVAE)

    def losses(self, trainer: PackTrainer, forward: Forward) -> Losses:
        """Each member's losses from one forward pass; `trainer.value` [K] is the family's
        parameter. The terms are added to the reconstruction in the order written, which
        fixes every bit of the sum."""
        raise NotImplementedError(f"family {self.name!r} defines no losses")

    def check(self, cfg: TrainConfig) -> None:
        """Raise ValueError naming the fix where `cfg` breaks a rule of this family's."""
