"""The packs: K independent encoder/decoder pairs of one family, their parameters stacked along
a leading member axis, so that batched calls run the members together and never mix them.

`FamilyPack` holds what a family decides, whatever the network: `spread` is the log-variance
(Gaussian encoders) or the log side length of the posterior box (wae_uniform); the WAEs put
the mean through tanh; as in the authors' `execute_all.py`, the spread is clipped
(`logvar_clip`) only where it is exponentiated (sampling, the box centre): `encode` returns it
unclipped, so the WAE's L1 penalty keeps its gradient beyond the clip. The networks
(`build_model` picks one by `TrainConfig.architecture`):

- `PackModel` ("fc"), the paper's fully connected one: every weight stacked [K, in, out], every
  bias [K, 1, out], one batched matmul (`torch.baddbmm`) for all members;
      encoder: P pixels → W ReLU → W ReLU → (mean d, spread d)
      decoder: d → W tanh → W tanh → W tanh → P Bernoulli logits
- `ConvPack` ("conv"), disentanglement_lib's `conv_encoder` / `deconv_decoder`
  (`trainables.conv`): on a GPU each convolution one call grouped by member, on the CPU one
  member after another.

Images are flat pixels, P = H·W·C in (row, column, channel) order, in [0, 1]. Member k is
initialised from its own seed only, so it starts identical whatever K is. FactorVAE adds a
discriminator over codes, packed the same way (`PackDiscriminator`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Self

import torch
from torch import nn
from torch.nn import functional as F

from trainables import conv, factors
from trainables.config import TrainConfig
from trainables.datasets import DATASETS
from trainables.families import FAMILIES
from trainables.seeding import hashed_seed

PIXELS = factors.IMAGE_SIZE**2  # dSprites' pixels, the encoder's input, the decoder's output
INIT_STREAM = 0  # seed streams derived from a member seed (see member_stream_seed)
TRAIN_STREAM = 1
DISCRIMINATOR_STREAM = 2  # FactorVAE's discriminator init: the VAE's init stays as it was
DSPRITES_SHAPE = DATASETS["dsprites"].image_shape


def member_stream_seed(member_seed: int, stream: int, *more: int) -> int:
    """A 63-bit seed for one random stream of one member (init, training batches)."""
    return hashed_seed(member_seed, stream, *more)


def layer_shapes(latent_dim: int, encoder_width: int, decoder_width: int,
                 pixels: int = PIXELS) -> dict:
    """(fan_in, fan_out) of each layer; the encoder's two heads share one matmul."""
    d, we, wd = latent_dim, encoder_width, decoder_width
    return {
        "enc1": (pixels, we), "enc2": (we, we), "enc_head": (we, 2 * d),
        "dec1": (d, wd), "dec2": (wd, wd), "dec3": (wd, wd), "dec_out": (wd, pixels),
    }


def build_model(cfg: TrainConfig, device: torch.device | str = "cpu") -> FamilyPack:
    """The pack a config trains: its `architecture` over its `dataset`'s images."""
    network = {"fc": PackModel, "conv": ConvPack}[cfg.architecture]
    return network.from_config(cfg, device)


class FamilyPack(nn.Module, ABC):
    """What every pack shares, whatever its network: the family's posterior (μ through tanh
    and the spread clipped for the WAEs, Gaussian or box), its noise, codes and members.
    A network registers its stacked layers (`_register`) and defines `_heads` and `decode`."""

    def __init__(self, family: str, member_seeds: list[int], latent_dim: int,
                 logvar_clip: list[float] | None, uniform_box: str,
                 image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.family = family
        self.member_seeds = list(member_seeds)
        self.latent_dim = latent_dim
        self.logvar_clip = logvar_clip
        self.uniform_box = uniform_box
        self.image_shape = tuple(image_shape)

    @classmethod
    @abstractmethod
    def from_config(cls, cfg: TrainConfig, device: torch.device | str = "cpu") -> Self:
        """The pack of `cfg`'s family, members and latent size over its dataset's images."""

    def _register(self, shapes: dict[str, tuple[int, ...]], device: torch.device | str
                  ) -> None:
        """Stack the layers `shapes` (`register_stacked`), each member's Glorot-uniform from
        its init stream; the encoder's two heads (mean and spread) count as separate layers,
        as they are in the authors' code and disentanglement_lib's."""
        register_stacked(self, shapes, self.member_seeds, lambda seed: glorot_uniform(
            member_stream_seed(seed, INIT_STREAM), shapes, heads={"enc_head": 2}), device)

    @abstractmethod
    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's raw heads (mean, spread), each (K, B, d) in fp32."""

    @abstractmethod
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (K, B, d) -> Bernoulli logits (K, B, P) in fp32."""

    @property
    def k(self) -> int:
        return len(self.member_seeds)

    @property
    def is_wae(self) -> bool:
        """An MMD objective (`Family.wae`): μ through tanh, the spread clipped."""
        return FAMILIES[self.family].wae

    @property
    def uniform(self) -> bool:
        """A box posterior and a uniform prior (`Family.uniform`) instead of Gaussians."""
        return FAMILIES[self.family].uniform

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (K, B, P) or (B, P) pixels -> (mean, spread), each (K, B, d) in fp32."""
        mean, spread = self._heads(x)
        if self.is_wae:
            mean = torch.tanh(mean)
        return mean, spread

    def clipped(self, spread: torch.Tensor) -> torch.Tensor:
        """The spread as it is exponentiated: clipped to `logvar_clip` for the WAEs (the
        authors' [-16, 10]); the β-VAE's log-variance is never clipped."""
        if self.is_wae and self.logvar_clip is not None:
            return spread.clamp(*self.logvar_clip)
        return spread

    def noise(self, *shape: int, generator: torch.Generator,
              device: torch.device | str = "cpu") -> torch.Tensor:
        """Noise for `sample_posterior` (and the WAE's prior samples): U(0, 1) for the uniform
        WAE's box, N(0, 1) otherwise."""
        draw = torch.rand if self.uniform else torch.randn
        return draw(*shape, generator=generator, device=device)

    def sample_posterior(
        self, mean: torch.Tensor, spread: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor:
        """One code per input: Gaussian z = μ + e^{s/2}·ε (noise ~ N(0,1)); uniform box
        z = μ + e^s·u (noise ~ U(0,1); 'centred' shifts it to U(-1/2, 1/2)); s clipped."""
        spread = self.clipped(spread)
        if self.uniform:
            u = noise - 0.5 if self.uniform_box == "centred" else noise
            return mean + torch.exp(spread) * u
        return mean + torch.exp(0.5 * spread) * noise

    def posterior_mean(self, mean: torch.Tensor, spread: torch.Tensor) -> torch.Tensor:
        """The mean of q(z|x), which `recon_*_mean` decodes (for the authors' corner box,
        the box centre μ + e^s/2)."""
        if self.uniform and self.uniform_box == "corner":
            return mean + 0.5 * torch.exp(self.clipped(spread))
        return mean

    def code(self, mean: torch.Tensor, spread: torch.Tensor,
             uniform_code: str = "mu") -> torch.Tensor:
        """The code the disentanglement metrics read: the encoder's μ (the authors' `z_mean`;
        for the corner box, the corner where it starts), or with uniform_code='centre' the
        uniform WAE's box centre (its posterior mean). Gaussian encoders: μ either way."""
        return self.posterior_mean(mean, spread) if uniform_code == "centre" else mean

    def member(self, k: int) -> Self:
        """Member k alone, as a K=1 pack of the same network sharing this pack's parameter
        storage (its settings copied, its parameters views of member k's slices)."""
        single = type(self).__new__(type(self))
        nn.Module.__init__(single)
        for name, value in vars(self).items():
            if not name.startswith("_"):
                setattr(single, name, value)
        single.member_seeds = [self.member_seeds[k]]
        for name, param in self.named_parameters():
            single.register_parameter(name, nn.Parameter(param.detach()[k : k + 1],
                                                         requires_grad=False))
        return single


class PackModel(FamilyPack):
    """The paper's fully connected encoder/decoder ("fc"), K of them stacked."""

    def __init__(
        self,
        family: str,
        member_seeds: list[int],
        latent_dim: int = 16,
        encoder_width: int = 1200,
        decoder_width: int = 1200,
        logvar_clip: list[float] | None = None,
        uniform_box: str = "corner",
        device: torch.device | str = "cpu",
        image_shape: tuple[int, int, int] = DSPRITES_SHAPE,
        sparse_input: bool = True,
    ) -> None:
        super().__init__(family, member_seeds, latent_dim, logvar_clip, uniform_box,
                         image_shape)
        self.sparse_input = sparse_input
        self._register(layer_shapes(latent_dim, encoder_width, decoder_width,
                                    math.prod(image_shape)), device)

    @classmethod
    def from_config(cls, cfg: TrainConfig, device: torch.device | str = "cpu") -> PackModel:
        dataset = DATASETS[cfg.dataset]
        return cls(cfg.family, cfg.member_seeds, cfg.latent_dim, cfg.encoder_width,
                   cfg.decoder_width, cfg.logvar_clip, cfg.uniform_box, device,
                   dataset.image_shape, dataset.sparse)

    def _linear(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return stacked_linear(self, name, x)

    def _first_layer(self, x: torch.Tensor) -> torch.Tensor:
        """x @ W + b of the input layer, (K, B, W).

        On the CPU, for sparse images (`sparse_input`, `Dataset.sparse`), this sums the
        weight rows of the non-zero pixels instead (`embedding_bag`, weighted by the pixel
        values: the same sum for any input). dSprites images are ~4 % lit pixels, so this
        skips ~96 % of the layer's multiply-adds in the forward pass and in the weight
        gradient, the layer being 77 % of an encoder pass. One call per member, on that
        member's own weight: its gradient is then bitwise the same whatever else is in the
        pack (`unbind` gives the members' weights without copies; its backward stacks their
        gradients once). GPUs, and dense images (noise in every pixel), keep the dense
        matmul.
        """
        weight = self.enc1_weight
        if x.device.type != "cpu" or not self.sparse_input:
            return self._linear("enc1", x.to(weight.dtype))
        members = weight.unbind(0)
        lit = ([lit_pixels(x, weight.dtype)] * len(members) if x.dim() == 2
               else [lit_pixels(images, weight.dtype) for images in x])
        return torch.stack([
            F.embedding_bag(pixel, weight, offsets, mode="sum", per_sample_weights=value)
            for weight, (pixel, offsets, value) in zip(members, lit, strict=True)
        ]) + self.enc1_bias

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x float, or uint8 (no float copy needed on the CPU's sparse path)."""
        h = torch.relu(self._first_layer(x))
        h = torch.relu(self._linear("enc2", h))
        mean, spread = self._linear("enc_head", h).float().chunk(2, dim=-1)
        return mean, spread

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (K, B, d) -> Bernoulli logits (K, B, P)."""
        h = torch.tanh(self._linear("dec1", z))
        h = torch.tanh(self._linear("dec2", h))
        h = torch.tanh(self._linear("dec3", h))
        return self._linear("dec_out", h).float()


class ConvPack(FamilyPack):
    """disentanglement_lib's convolutional encoder/decoder ("conv"), K of them (the network:
    `trainables.conv`). Its widths are disentanglement_lib's, fixed: the config's
    `encoder_width` and `decoder_width` are the fully connected network's.

    On a GPU the members run together, each convolution one grouped call and each dense
    layer one batched matmul (not yet timed on a GPU). On the CPU they run one after another,
    each member's network whole on its own parameters (`unbind` views, without copies), which
    trained 1.4-1.6x faster than the grouped calls at K=8 (figures: `trainables.conv`); a
    member's outputs and gradients are then bitwise those of the member alone: the same calls
    on tensors of the same shapes (`_run`)."""

    def __init__(self, family: str, member_seeds: list[int], latent_dim: int = 16,
                 logvar_clip: list[float] | None = None, uniform_box: str = "corner",
                 device: torch.device | str = "cpu",
                 image_shape: tuple[int, int, int] = DSPRITES_SHAPE) -> None:
        super().__init__(family, member_seeds, latent_dim, logvar_clip, uniform_box,
                         image_shape)
        self._register(conv.layer_shapes(self.image_shape, latent_dim), device)

    @classmethod
    def from_config(cls, cfg: TrainConfig, device: torch.device | str = "cpu") -> ConvPack:
        return cls(cfg.family, cfg.member_seeds, cfg.latent_dim, cfg.logvar_clip,
                   cfg.uniform_box, device, DATASETS[cfg.dataset].image_shape)

    def _run(self, network: Callable[[conv.Params, torch.Tensor], torch.Tensor],
             x: torch.Tensor) -> torch.Tensor:
        """network(parameters, x) of every member, (K, B, ...): one call on a GPU; on the
        CPU one per member, on its parameters and its inputs x[k] (or x shared, (B, ...))."""
        params = dict(self.named_parameters())
        if x.device.type != "cpu" or self.k == 1:
            return network(params, x)
        views = {name: param.unbind(0) for name, param in params.items()}
        return torch.cat([
            network({name: view[k].unsqueeze(0) for name, view in views.items()},
                    x if x.dim() == 2 else x[k : k + 1])
            for k in range(self.k)])

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        heads = self._run(lambda params, images: conv.encoder(params, images, self.image_shape),
                          x.to(self.enc1_weight.dtype))
        mean, spread = heads.float().chunk(2, dim=-1)
        return mean, spread

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self._run(conv.decoder, z).float()


def lit_pixels(images: torch.Tensor,
               dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The non-zero pixels of images (B, P) as `embedding_bag` input: (pixel indices, each
    image's offset into them, pixel values as `dtype`)."""
    image, pixel = images.nonzero(as_tuple=True)  # sorted by image (row-major)
    offsets = torch.searchsorted(image, torch.arange(len(images)))
    return pixel, offsets, images[image, pixel].to(dtype)


class PackDiscriminator(nn.Module):
    """FactorVAE's discriminator, K stacked like the VAEs: codes d → `width` leaky ReLU (0.2)
    × `layers` → 2 logits, (real, shuffled) (Kim & Mnih 2018; disentanglement_lib's
    `fc_discriminator`: 6 layers of 1000). Member k's starts from its own seed only."""

    def __init__(self, member_seeds: list[int], latent_dim: int, width: int = 1000,
                 layers: int = 6, device: torch.device | str = "cpu") -> None:
        super().__init__()
        widths = [latent_dim] + [width] * layers + [2]
        self.names = [f"disc{i}" for i in range(len(widths) - 1)]
        shapes = {name: (widths[i], widths[i + 1]) for i, name in enumerate(self.names)}
        register_stacked(self, shapes, member_seeds, lambda seed: glorot_uniform(
            member_stream_seed(seed, DISCRIMINATOR_STREAM), shapes), device)

    @classmethod
    def from_config(cls, cfg: TrainConfig, device: torch.device | str = "cpu"
                    ) -> PackDiscriminator:
        return cls(cfg.member_seeds, cfg.latent_dim, cfg.discriminator_width,
                   cfg.discriminator_layers, device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (K, B, d) -> logits (K, B, 2) in fp32."""
        h = z
        for name in self.names[:-1]:
            h = F.leaky_relu(stacked_linear(self, name, h), 0.2)
        return stacked_linear(self, self.names[-1], h).float()


def glorot_uniform(seed: int, shapes: dict[str, tuple[int, ...]],
                   heads: dict[str, int] | None = None) -> dict[str, torch.Tensor]:
    """Glorot-uniform weights of one member, layer by layer (TensorFlow's dense and conv
    default, as in the authors' code and disentanglement_lib's; biases start at zero), drawn
    on the CPU from one generator seeded with `seed`: the same on any device and for any K.
    A shape is (in, out) or (kh, kw, in, out): fans in·kh·kw and out·kh·kw, whose sum is all
    the limit reads. A layer listed in `heads` is that many layers side by side (its fan-out
    split among them)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in shapes.items():
        *kernel, fan_in, fan_out = shape
        fans = (fan_in + fan_out // (heads or {}).get(name, 1)) * math.prod(kernel)
        limit = math.sqrt(6.0 / fans)
        out[name] = torch.rand(*shape, generator=gen) * (2 * limit) - limit
    return out


def register_stacked(module: nn.Module, shapes: dict[str, tuple[int, ...]],
                     member_seeds: list[int], init: Callable[[int], dict[str, torch.Tensor]],
                     device: torch.device | str) -> None:
    """Register `<layer>_weight` [K, *shape] and `<layer>_bias` [K, 1, out] (zeros, `out`
    the shape's last entry) on `module`, member r's weights `init(member_seeds[r])`, made one
    member at a time (host memory stays at one member's size)."""
    k = len(member_seeds)
    for name, shape in shapes.items():
        weight = torch.empty(k, *shape, device=device)
        module.register_parameter(f"{name}_weight", nn.Parameter(weight))
        module.register_parameter(f"{name}_bias",
                                  nn.Parameter(torch.zeros(k, 1, shape[-1], device=device)))
    with torch.no_grad():
        for r, seed in enumerate(member_seeds):
            for name, weight in init(seed).items():
                getattr(module, f"{name}_weight")[r].copy_(weight)


def stacked_linear(module: nn.Module, name: str, x: torch.Tensor) -> torch.Tensor:
    """x @ W + b of `module`'s layer `name` (`register_stacked`) for every member at once:
    x (K, B, in), or (B, in) shared by all members."""
    weight, bias = getattr(module, f"{name}_weight"), getattr(module, f"{name}_bias")
    if x.dim() == 2:
        return torch.matmul(x, weight) + bias
    return torch.baddbmm(bias, x, weight)
