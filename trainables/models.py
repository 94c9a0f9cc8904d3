"""The paper's fully connected encoder and decoder as a *pack* of K independent members.

Every weight is stacked as [K, in, out] and every bias as [K, 1, out], so one batched matmul
(`torch.baddbmm`) runs all K members at once: members never mix, and a GPU sees one big
kernel instead of K small ones.

    encoder: 4096 → W ReLU → W ReLU → (mean d, spread d)
    decoder: d → W tanh → W tanh → W tanh → 4096 Bernoulli logits

FactorVAE adds a discriminator over codes, packed the same way (`PackDiscriminator`).

`spread` is the log-variance (Gaussian encoders) or the log side length of the posterior box
(wae_uniform). The WAEs put the mean through tanh. As in the authors' `execute_all.py`, the
spread is clipped (`logvar_clip`) only where it is exponentiated (sampling, the box centre):
`encode` returns it unclipped, so the WAE's L1 penalty keeps its gradient beyond the clip.
Member k is initialised from its own seed only, so it starts identical whatever K is.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from trainables import factors
from trainables.config import TrainConfig
from trainables.families import FAMILIES
from trainables.seeding import hashed_seed

PIXELS = factors.IMAGE_SIZE**2  # the encoder's input, the decoder's output
INIT_STREAM = 0  # seed streams derived from a member seed (see member_stream_seed)
TRAIN_STREAM = 1
DISCRIMINATOR_STREAM = 2  # FactorVAE's discriminator init: the VAE's init stays as it was


def member_stream_seed(member_seed: int, stream: int, *more: int) -> int:
    """A 63-bit seed for one random stream of one member (init, training batches)."""
    return hashed_seed(member_seed, stream, *more)


def layer_shapes(latent_dim: int, encoder_width: int, decoder_width: int) -> dict:
    """(fan_in, fan_out) of each layer; the encoder's two heads share one matmul."""
    d, we, wd = latent_dim, encoder_width, decoder_width
    return {
        "enc1": (PIXELS, we), "enc2": (we, we), "enc_head": (we, 2 * d),
        "dec1": (d, wd), "dec2": (wd, wd), "dec3": (wd, wd), "dec_out": (wd, PIXELS),
    }


class PackModel(nn.Module):
    """K encoder/decoder pairs of one family, stacked along a leading member axis."""

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
    ) -> None:
        super().__init__()
        self.family = family
        self.member_seeds = list(member_seeds)
        self.latent_dim = latent_dim
        self.logvar_clip = logvar_clip
        self.uniform_box = uniform_box
        shapes = layer_shapes(latent_dim, encoder_width, decoder_width)
        register_stacked(self, shapes, self.member_seeds,
                         lambda seed: self._init_member(seed, shapes), device)

    @classmethod
    def from_config(cls, cfg: TrainConfig, device: torch.device | str = "cpu") -> PackModel:
        return cls(cfg.family, cfg.member_seeds, cfg.latent_dim, cfg.encoder_width,
                   cfg.decoder_width, cfg.logvar_clip, cfg.uniform_box, device)

    @staticmethod
    def _init_member(seed: int, shapes: dict) -> dict[str, torch.Tensor]:
        """Glorot-uniform weights of one member (`glorot_uniform`); the two encoder heads
        (mean and spread) count as separate layers, as they are in the authors' code."""
        return glorot_uniform(member_stream_seed(seed, INIT_STREAM), shapes,
                              heads={"enc_head": 2})

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

    def _linear(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return stacked_linear(self, name, x)

    def _first_layer(self, x: torch.Tensor) -> torch.Tensor:
        """x @ W + b of the 4096-pixel input layer, (K, B, W).

        On the CPU this sums the weight rows of the non-zero pixels instead (`embedding_bag`,
        weighted by the pixel values: the same sum for any input). dSprites images are ~4 %
        lit pixels, so this skips ~96 % of the layer's multiply-adds in the forward pass and
        in the weight gradient, the layer being 77 % of an encoder pass. One call per member,
        on that member's own weight: its gradient is then bitwise the same whatever else is in
        the pack (`unbind` gives the members' weights without copies; its backward stacks
        their gradients once). GPUs keep the dense matmul, which they run at full speed.
        """
        weight = self.enc1_weight
        if x.device.type != "cpu":
            return self._linear("enc1", x.to(weight.dtype))
        members = weight.unbind(0)
        lit = ([lit_pixels(x, weight.dtype)] * len(members) if x.dim() == 2
               else [lit_pixels(images, weight.dtype) for images in x])
        return torch.stack([
            F.embedding_bag(pixel, weight, offsets, mode="sum", per_sample_weights=value)
            for weight, (pixel, offsets, value) in zip(members, lit, strict=True)
        ]) + self.enc1_bias

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (K, B, 4096) or (B, 4096) pixels (float, or uint8: no float copy needed on the
        CPU) -> (mean, spread), each (K, B, d)."""
        h = torch.relu(self._first_layer(x))
        h = torch.relu(self._linear("enc2", h))
        mean, spread = self._linear("enc_head", h).float().chunk(2, dim=-1)
        if self.is_wae:
            mean = torch.tanh(mean)
        return mean, spread

    def clipped(self, spread: torch.Tensor) -> torch.Tensor:
        """The spread as it is exponentiated: clipped to `logvar_clip` for the WAEs (the
        authors' [-16, 10]); the β-VAE's log-variance is never clipped."""
        if self.is_wae and self.logvar_clip is not None:
            return spread.clamp(*self.logvar_clip)
        return spread

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (K, B, d) -> Bernoulli logits (K, B, 4096)."""
        h = torch.tanh(self._linear("dec1", z))
        h = torch.tanh(self._linear("dec2", h))
        h = torch.tanh(self._linear("dec3", h))
        return self._linear("dec_out", h).float()

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

    def member(self, k: int) -> PackModel:
        """Member k alone, as a K=1 pack sharing this pack's parameter storage."""
        single = PackModel.__new__(PackModel)
        nn.Module.__init__(single)
        single.family, single.latent_dim = self.family, self.latent_dim
        single.logvar_clip, single.uniform_box = self.logvar_clip, self.uniform_box
        single.member_seeds = [self.member_seeds[k]]
        for name, param in self.named_parameters():
            single.register_parameter(name, nn.Parameter(param.detach()[k : k + 1],
                                                         requires_grad=False))
        return single


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


def glorot_uniform(seed: int, shapes: dict[str, tuple[int, int]],
                   heads: dict[str, int] | None = None) -> dict[str, torch.Tensor]:
    """Glorot-uniform weights of one member, layer by layer (TensorFlow's dense default, as
    in the authors' code; biases start at zero), drawn on the CPU from one generator seeded
    with `seed`: the same on any device and for any K. A layer listed in `heads` is that
    many layers side by side (its fan-out split among them)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, (fan_in, fan_out) in shapes.items():
        limit = math.sqrt(6.0 / (fan_in + fan_out // (heads or {}).get(name, 1)))
        out[name] = torch.rand(fan_in, fan_out, generator=gen) * (2 * limit) - limit
    return out


def register_stacked(module: nn.Module, shapes: dict[str, tuple[int, int]],
                     member_seeds: list[int], init: Callable[[int], dict[str, torch.Tensor]],
                     device: torch.device | str) -> None:
    """Register `<layer>_weight` [K, in, out] and `<layer>_bias` [K, 1, out] (zeros) on
    `module`, member r's weights `init(member_seeds[r])`, made one member at a time (host
    memory stays at one member's size)."""
    k = len(member_seeds)
    for name, (fan_in, fan_out) in shapes.items():
        weight = torch.empty(k, fan_in, fan_out, device=device)
        module.register_parameter(f"{name}_weight", nn.Parameter(weight))
        module.register_parameter(f"{name}_bias",
                                  nn.Parameter(torch.zeros(k, 1, fan_out, device=device)))
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
