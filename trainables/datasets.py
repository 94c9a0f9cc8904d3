"""The datasets a study can train on: each one's factors, image shape and how an image is seen.

A `Dataset` is pure description, following disentanglement_lib's `data/ground_truth`
definitions: the factors that index its images (`factor_names`, `factor_sizes`, the full
state), the ground-truth factors the metrics score (`latent_factors`; a state factor left out
is a nuisance, drawn at random with each observation, as disentanglement_lib's
`SplitDiscreteStateSpace`), the Higgins tasks it is scored on, its image shape, and
`observe`: what a model sees of a stored image.

The dSprites variants share dSprites' file and its packed bits (the generated file works
offline) and differ only in `observe` and the latent factors:
- `dsprites`: the images as they are (binary), scored on shape..posY; the seed's dataset.
- `dsprites_noshape`: the same images, shape a nuisance (scale..posY scored).
- `color_dsprites`: each image's sprite in one colour drawn uniformly from [0.5, 1]^3 on a
  black background (3 channels).
- `noisy_dsprites`: a white sprite over a background of uniform [0, 1] noise per pixel and
  channel (3 channels).
The random colour or noise is fresh with every training draw (each member's own generator,
as disentanglement_lib draws it with each observation). Evaluation images (metrics,
reconstruction errors) take theirs from a generator seeded with the image index instead
(`indexed_uniform`), so an image looks the same to every model, alone or in a pack, in any metric.

Nothing here imports torch at module level: the command line reads the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    Uniform = Callable[[int], torch.Tensor]  # count -> (n, count) uniforms in [0, 1)

DSPRITES_FACTORS = ("color", "shape", "scale", "orientation", "posX", "posY")
DSPRITES_SIZES = (1, 3, 6, 40, 32, 32)


@dataclass(frozen=True, kw_only=True)
class Dataset:
    """One dataset: its factor grid, what the metrics score, its image shape and `observe`.

    A subclass overrides `observe` where a model sees more than the stored image."""

    name: str
    summary: str  # a few words, for the `dataset` setting's help and `wae-study data list`
    factor_names: tuple[str, ...]  # the state that indexes the stored images, in file order
    factor_sizes: tuple[int, ...]
    latent_factors: tuple[int, ...]  # indices of the ground-truth factors the metrics score
    tasks: Mapping[str, tuple[int, ...]]  # Higgins task name -> the factors it votes on
    channels: int = 1
    image_size: int = 64
    base: str = "dsprites"  # whose stored images it reads: dSprites' bits, or its own file
    sparse: bool = True  # mostly-zero pixels: the CPU's first layer sums only the lit ones

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, channels): pixels are flattened in this order (channels last)."""
        return (self.image_size, self.image_size, self.channels)

    @property
    def pixels(self) -> int:
        """Values per image: the fully connected encoder's input, the decoder's output."""
        return self.image_size * self.image_size * self.channels

    @property
    def as_stored(self) -> bool:
        """Whether a model sees the stored images themselves (`observe` is the identity)."""
        return type(self).observe is Dataset.observe

    def observe(self, stored: torch.Tensor, uniform: Uniform) -> torch.Tensor:
        """What a model sees: stored images (n, H*W) in [0, 1] -> (n, `pixels`) floats.
        `uniform(count)` gives (n, count) fresh uniforms in [0, 1) where it needs them."""
        return stored


@dataclass(frozen=True, kw_only=True)
class ColorDSprites(Dataset):
    """The sprite in one random colour per image, uniform in [0.5, 1]^3, background black
    (disentanglement_lib's `ColorDSprites`)."""

    def observe(self, stored: torch.Tensor, uniform: Uniform) -> torch.Tensor:
        colour = 0.5 + 0.5 * uniform(3)  # (n, 3)
        return (stored.unsqueeze(-1) * colour.unsqueeze(1)).reshape(len(stored), -1)


@dataclass(frozen=True, kw_only=True)
class NoisyDSprites(Dataset):
    """A white sprite over uniform noise in every pixel and channel: min(image + noise, 1)
    (disentanglement_lib's `NoisyDSprites`)."""

    def observe(self, stored: torch.Tensor, uniform: Uniform) -> torch.Tensor:
        noise = uniform(stored.shape[1] * 3).view(len(stored), -1, 3)
        return (stored.unsqueeze(-1) + noise).clamp(max=1.0).reshape(len(stored), -1)


_DSPRITES_TASKS = {
    "5var": (1, 2, 3, 4, 5),  # shape, scale, orientation, posX, posY
    "4var": (2, 3, 4, 5),  # shape excluded, as Higgins et al.'s 99.23 %
}

DSPRITES = Dataset(
    name="dsprites", summary="dSprites, binary 64x64 (the seed's)",
    factor_names=DSPRITES_FACTORS, factor_sizes=DSPRITES_SIZES,
    latent_factors=(1, 2, 3, 4, 5), tasks=_DSPRITES_TASKS)
DSPRITES_NOSHAPE = Dataset(
    name="dsprites_noshape", summary="dSprites with shape a nuisance (scale..posY scored)",
    factor_names=DSPRITES_FACTORS, factor_sizes=DSPRITES_SIZES,
    latent_factors=(2, 3, 4, 5), tasks={"4var": (2, 3, 4, 5)})
COLOR_DSPRITES = ColorDSprites(
    name="color_dsprites", summary="dSprites, the sprite in a random colour, 3 channels",
    factor_names=DSPRITES_FACTORS, factor_sizes=DSPRITES_SIZES,
    latent_factors=(1, 2, 3, 4, 5), tasks=_DSPRITES_TASKS, channels=3)
NOISY_DSPRITES = NoisyDSprites(
    name="noisy_dsprites", summary="dSprites, a white sprite on uniform noise, 3 channels",
    factor_names=DSPRITES_FACTORS, factor_sizes=DSPRITES_SIZES,
    latent_factors=(1, 2, 3, 4, 5), tasks=_DSPRITES_TASKS, channels=3, sparse=False)

DATASETS: dict[str, Dataset] = {dataset.name: dataset for dataset in (
    DSPRITES, DSPRITES_NOSHAPE, COLOR_DSPRITES, NOISY_DSPRITES)}


def indexed_uniform(indices: torch.Tensor, count: int, stream: int = 0) -> torch.Tensor:
    """(n, count) uniforms in [0, 1) that depend only on (image index, stream): an evaluation
    image's colour or noise, the same in every call that asks for that image. Each image's
    come from a CPU generator seeded with (stream, index) (1.3 s per 16,384 noisy images on
    one core; a vectorised integer hash measured 7x slower)."""
    import torch

    out = torch.empty(len(indices), count)
    generator = torch.Generator()
    for row, index in enumerate(indices.tolist()):
        generator.manual_seed((stream << 32) | index)
        torch.rand(count, generator=generator, out=out[row])
    return out
