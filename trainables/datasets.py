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
- `scream_dsprites`: a random 64x64 patch of Munch's The Scream (the painting's thumbnail
  within 350x274), averaged with one uniform colour per image, the sprite's pixels inverted
  (3 channels). The painting comes from `wae-study data fetch scream_dsprites` and travels
  with the data (`ScreamDSprites.painting`, set by `trainables.data`).
The datasets with files of their own hold uint8 images (N, 64, 64, C) in the row-major order
of their factor grid (the last factor fastest), shown as stored, scaled to [0, 1]:
- `shapes3d` (DeepMind's `3dshapes.h5`: floor, wall and object hue, scale, shape,
  orientation; 480,000 images, its `labels` checked against the grid on load),
- `mpi3d_toy`, `mpi3d_realistic`, `mpi3d_real` (the published `.npz` files of
  rr-learning/disentanglement_dataset: object colour and shape, size, camera height,
  background colour, two joint angles; 1,036,800 images each, no labels: the order is the
  grid's). disentanglement_lib's code gives mpi3d_toy and mpi3d_realistic 4 colours and 4
  shapes: it read earlier 460,800-image files; the published ones have 6 and 6, as the
  dataset's README says and `mpi3d_real` has in disentanglement_lib too.
Two are converted from their published files by `wae-study data fetch` into such a file
(`trainables.converted`, following disentanglement_lib's `norb.py` and `cars3d.py`):
- `smallnorb` (NYU's NORB matrices: the first image of each stereo pair, grey, resized from
  96x96; category, instance, elevation, azimuth, lighting; 48,600 images, training and testing
  sets together). The instance is a nuisance, as in disentanglement_lib: 4 factors scored.
- `cars3d` (Reed et al.'s renderings, resized from 128x128: elevation, azimuth, object type;
  17,568 images).

The random colour or noise is fresh with every training draw (each member's own generator,
as disentanglement_lib draws it with each observation). Evaluation images (metrics,
reconstruction errors) take theirs from a generator seeded with the image index instead
(`indexed_uniform`), so an image looks the same to every model, alone or in a pack, in any metric.

Nothing here imports torch at module level: the command line reads the registry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
    def n_images(self) -> int:
        """Images in the full factor grid."""
        n = 1
        for size in self.factor_sizes:
            n *= size
        return n

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

    def stored_pixels(self, rows: torch.Tensor) -> torch.Tensor:
        """Stored rows (n, 512) of dSprites' packed bits -> pixels (n, 4096) of 0/1 in float32,
        on the rows' device (`Dataset.observe` takes them from here)."""
        return unpack_rows(rows)

    def observe(self, stored: torch.Tensor, uniform: Uniform) -> torch.Tensor:
        """What a model sees: stored images (n, H*W) in [0, 1] -> (n, `pixels`) floats.
        `uniform(count)` gives (n, count) fresh uniforms in [0, 1) where it needs them."""
        return stored

    def to(self, device: torch.device) -> Dataset:
        """This dataset with what `observe` reads kept on `device` (the trainer's): no copy
        to the device with every batch, which would make each step wait for it."""
        return self


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


@dataclass(frozen=True, kw_only=True)
class ScreamDSprites(Dataset):
    """The sprite inverted over a patch of The Scream (disentanglement_lib's `ScreamDSprites`):
    per image a 64x64 crop at a uniform offset (the painting's last offset excluded, as
    `randint(0, H - 64)` there), background = (crop + one uniform colour) / 2, and
    1 - background at the sprite's pixels. Five uniforms per image: the two offsets, then the
    colour."""

    painting_file: str  # its name in the data folder (`wae-study data fetch` puts it there)
    # the thumbnail, float32 (H, W, 3) in [0, 1]: none in the registry, the loaded data's own
    # (a numpy array; a trainer's copy holds it as a tensor on its device, `to`)
    painting: Any = field(default=None, compare=False, repr=False)

    def to(self, device: torch.device) -> Dataset:
        import torch

        if self.painting is None:
            return self
        return dataclasses.replace(self, painting=torch.as_tensor(self.painting, device=device))

    def observe(self, stored: torch.Tensor, uniform: Uniform) -> torch.Tensor:
        import torch

        if self.painting is None:
            raise RuntimeError(f"{self.name} has no painting: take the dataset from "
                               "trainables.data.load or wrap, which attach it")
        painting = torch.as_tensor(self.painting, device=stored.device)
        height, width, _ = painting.shape
        draws = uniform(5)
        size = self.image_size
        offsets = torch.arange(size, device=stored.device)
        rows = (draws[:, 0] * (height - size)).long()[:, None] + offsets  # (n, 64)
        cols = (draws[:, 1] * (width - size)).long()[:, None] + offsets
        patch = painting[rows[:, :, None], cols[:, None, :]]  # (n, 64, 64, 3)
        background = (patch + draws[:, None, None, 2:]) / 2.0
        sprite = stored.view(len(stored), size, size, 1) == 1
        return torch.where(sprite, 1.0 - background, background).reshape(len(stored), -1)


@dataclass(frozen=True, kw_only=True)
class FileDataset(Dataset):
    """A dataset with a file of its own: uint8 images (N, H, W, C) under `images_key`, in the
    row-major order of the factor grid, shown as stored in [0, 1] (disentanglement_lib: / 255)."""

    file_name: str  # its name in the data folder (`wae-study data fetch NAME` puts it there)
    images_key: str = "images"
    labels_key: str | None = None  # factor values (N, factors) in the same order, if it has them
    base: str = "own"
    sparse: bool = False

    def stored_pixels(self, rows: torch.Tensor) -> torch.Tensor:
        """Stored uint8 rows (n, H, W, C) -> pixels (n, H*W*C) in [0, 1], float32."""
        import torch

        return rows.reshape(rows.shape[0], -1).to(torch.float32) / 255.0


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
SCREAM_DSPRITES = ScreamDSprites(
    name="scream_dsprites", summary="dSprites, the sprite inverted over a patch of The Scream, "
                                    "3 channels (fetch the painting first)",
    factor_names=DSPRITES_FACTORS, factor_sizes=DSPRITES_SIZES,
    latent_factors=(1, 2, 3, 4, 5), tasks=_DSPRITES_TASKS, channels=3, sparse=False,
    painting_file="scream.jpg")

SHAPES3D = FileDataset(
    name="shapes3d", summary="3D Shapes, 64x64 colour, 6 factors (fetch it first)",
    factor_names=("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"),
    factor_sizes=(10, 10, 10, 8, 4, 15), latent_factors=tuple(range(6)),
    tasks={"6var": tuple(range(6))}, channels=3, file_name="3dshapes.h5", labels_key="labels")
_MPI3D_FACTORS = ("object_color", "object_shape", "object_size", "camera_height",
                  "background_color", "horizontal_axis", "vertical_axis")
MPI3D = {kind: FileDataset(
    name=f"mpi3d_{kind}", summary=f"MPI3D {what}, 64x64 colour, 7 factors (fetch it first)",
    factor_names=_MPI3D_FACTORS, factor_sizes=(6, 6, 2, 3, 3, 40, 40),
    latent_factors=tuple(range(7)), tasks={"7var": tuple(range(7))}, channels=3,
    file_name=f"mpi3d_{kind}.npz")
    for kind, what in (("toy", "simplistic renderings"), ("realistic", "realistic renderings"),
                       ("real", "camera images"))}

SMALLNORB = FileDataset(
    name="smallnorb", summary="smallNORB, 64x64 grey, 4 factors, instance a nuisance (fetch it "
                              "first)",
    factor_names=("category", "instance", "elevation", "azimuth", "lighting"),
    factor_sizes=(5, 10, 9, 18, 6), latent_factors=(0, 2, 3, 4), tasks={"4var": (0, 2, 3, 4)},
    file_name="smallnorb.npz")
CARS3D = FileDataset(
    name="cars3d", summary="Cars3D, 64x64 colour, 3 factors (fetch it first)",
    factor_names=("elevation", "azimuth", "object_type"), factor_sizes=(4, 24, 183),
    latent_factors=(0, 1, 2), tasks={"3var": (0, 1, 2)}, channels=3, file_name="cars3d.npz")

DATASETS: dict[str, Dataset] = {dataset.name: dataset for dataset in (
    DSPRITES, DSPRITES_NOSHAPE, COLOR_DSPRITES, NOISY_DSPRITES, SCREAM_DSPRITES, SHAPES3D,
    *MPI3D.values(),
    SMALLNORB, CARS3D)}


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


def unpack_rows(rows: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Unpack (B, 512) uint8 bit rows into (B, 4096) pixels of 0/1 (float32 unless `dtype`),
    on the rows' device."""
    import torch

    shifts = torch.arange(7, -1, -1, device=rows.device, dtype=torch.uint8)
    bits = (rows.unsqueeze(-1) >> shifts) & 1
    return bits.reshape(rows.shape[0], -1).to(dtype or torch.float32)
