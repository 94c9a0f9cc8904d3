"""disentanglement_lib's convolutional encoder and decoder, their layers run K members at once.

The networks are `conv_encoder` and `deconv_decoder` of disentanglement_lib's
`methods/shared/architectures.py` as its code has them (`trainables.models.ConvPack` is the
pack built from these layers):

    encoder: image (64, 64, C) → conv 32 k4 s2 ReLU → conv 32 k4 s2 ReLU → conv 64 k2 s2 ReLU
             → conv 64 k2 s2 ReLU → flatten (4·4·64) → dense 256 ReLU → means d, log_var d
    decoder: z d → dense 256 ReLU → dense 1024 ReLU → reshape (4, 4, 64) → deconv 64 k4 s2 ReLU
             → deconv 32 k4 s2 ReLU → deconv 32 k4 s2 ReLU → deconv C k4 s2 → logits (64, 64, C)

The third and fourth convolutions have 2x2 kernels because the code says `kernel_size=2`; the
β-VAE paper's Table 1, which the code's docstring cites, says 4x4. Every convolution is
TensorFlow's `padding="same"` (`same_padding`): 1 before and 1 after for the 4x4 kernels,
none for the 2x2 ones; a transposed one doubles its input's size (TensorFlow crops its output
by the padding of the convolution it transposes, which is PyTorch's `padding`). The flatten
before the encoder's dense layer and the reshape after the decoder's are TensorFlow's, NHWC:
features in (row, column, channel) order, as the flat images are.

Each member's weight is (kh, kw, in, out): TensorFlow's conv2d kernel layout, a dense layer
being the kernel-less (in, out), and for a transposed convolution `in` is the channels it
reads (TensorFlow stores those kernels as (kh, kw, out, in)). Stacked, they are (K, kh, kw,
in, out) with biases (K, 1, out), initialised as the dense layers are
(`trainables.models.glorot_uniform`, TensorFlow's defaults: Glorot-uniform with fans
in·kh·kw and out·kh·kw, zero biases).

The network is written over stacked parameters (`Params`, K first: `encoder`, `decoder`), so
one call runs K members: each convolution one grouped convolution (`packed_conv`: the members'
feature maps side by side along the channels, (B, K·channels, H, W), `groups=K`, so no member
reads another's channels; channels-last, `to_groups`), each dense layer one batched matmul.
Measured against `torch.func.vmap` of the same network over the members' parameters (one
training step's forward and backward, fp32, batch 64, torch 2.13 on the project's 2-core AMD
EPYC, shared with other work; best of 3-8, ms):

    K=1: grouped 117, vmap 155 on 1 thread;   68 against 98 on 2 threads
    K=8: grouped 1506, vmap 1999 on 1 thread; 808 against 1294 on 2 threads

vmap's convolution rule builds a grouped convolution too, in the default layout (it cannot
take channels-last), plus its own reshapes. Faster still on this CPU was running the members
one after another, each with K=1 calls: 932 ms at K=8 on 1 thread, 595 on 2, likely because
a member's feature maps stay in cache where the grouped call's K-times larger ones do not;
so a pack on the CPU does that (`trainables.models.ConvPack._run`), and keeps the grouped
calls for GPUs.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch.nn import functional as F

ENCODER = ((32, 4), (32, 4), (64, 2), (64, 2))  # conv_encoder e1..e4: (filters, kernel)
DECODER = ((64, 4), (32, 4), (32, 4))  # deconv_decoder d3..d5, then d6: (channels, 4)
OUT_KERNEL = 4  # d6, the logits
HIDDEN = 256  # e5 and d1
START = (4, 4, 64)  # d2's 1024 units reshaped (height, width, channels)
STRIDE = 2  # every convolution's
IMAGE_SIZE = 64  # the decoder doubles START's 4 four times

Params = Mapping[str, torch.Tensor]  # "<layer>_weight" (K, ...), "<layer>_bias" (K, 1, out)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same" padding (before, after) of one spatial axis of a convolution over
    `size` pixels: the output has ceil(size / stride), the odd pixel of padding goes after."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def symmetric_padding(size: int, kernel: int) -> int:
    """`same_padding` as PyTorch's one-number padding, which these layers' all are."""
    before, after = same_padding(size, kernel, STRIDE)
    if before != after:
        raise ValueError(f"a {kernel}x{kernel} stride-{STRIDE} convolution over {size} "
                         f"pixels pads ({before}, {after}): PyTorch pads both sides alike")
    return before


ENCODER_CONVS = tuple(f"enc{i}" for i in range(1, len(ENCODER) + 1))
DECODER_CONVS = (*(f"dec{i}" for i in range(3, 3 + len(DECODER))), "dec_out")


def layer_shapes(image_shape: tuple[int, int, int], latent_dim: int
                 ) -> dict[str, tuple[int, ...]]:
    """Each member's weight shapes, (kh, kw, in, out) or (in, out), in the order they are
    drawn; `enc_head` is disentanglement_lib's `means` and `log_var` side by side."""
    height, width, channels = image_shape
    if (height, width) != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"the convolutional networks take {IMAGE_SIZE}x{IMAGE_SIZE} images, "
                         f"not {height}x{width}: deconv_decoder doubles 4x4 four times")
    start = START[0] * START[1] * START[2]
    encoder = kernels(ENCODER_CONVS, ENCODER, channels)
    decoder = kernels(DECODER_CONVS, (*DECODER, (channels, OUT_KERNEL)), START[2])
    return {**encoder, "enc5": (start, HIDDEN), "enc_head": (HIDDEN, 2 * latent_dim),
            "dec1": (latent_dim, HIDDEN), "dec2": (HIDDEN, start), **decoder}


def kernels(names: tuple[str, ...], layers: tuple[tuple[int, int], ...], channels: int
            ) -> dict[str, tuple[int, int, int, int]]:
    """(kh, kw, in, out) of a chain of convolutions (filters, kernel) over `channels`."""
    shapes = {}
    for name, (filters, kernel) in zip(names, layers, strict=True):
        shapes[name] = (kernel, kernel, channels, filters)
        channels = filters
    return shapes


def paddings() -> dict[str, int]:
    """Each convolution's PyTorch padding: an encoder convolution's from its input (halving
    layer by layer), a transposed one's that of the convolution it transposes, from its
    output (twice its input) back to its input."""
    out, size = {}, IMAGE_SIZE
    for name, (_, kernel) in zip(ENCODER_CONVS, ENCODER, strict=True):
        out[name] = symmetric_padding(size, kernel)
        size //= STRIDE
    size = START[0]
    for name, (_, kernel) in zip(DECODER_CONVS, (*DECODER, (0, OUT_KERNEL)), strict=True):
        size *= STRIDE
        out[name] = symmetric_padding(size, kernel)
    return out


PADDINGS = paddings()


def to_groups(x: torch.Tensor, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """Flat NHWC maps (K, B, H·W·C) -> (B, K·C, H, W), member k's channels at k·C; maps
    (B, H·W·C) shared by the members stay one copy, (B, C, H, W). In PyTorch's channels-last
    memory format, which the convolutions keep: a K=8 training step of grouped convolutions
    took 826 ms in it against 1054 ms in the default layout (2 threads, this CPU)."""
    height, width, channels = image_shape
    nhwc = (x.reshape(len(x), height, width, channels) if x.dim() == 2 else
            x.reshape(*x.shape[:2], height, width, channels).permute(1, 2, 3, 0, 4)
            .reshape(x.shape[1], height, width, -1))
    return nhwc.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


def from_groups(h: torch.Tensor, k: int) -> torch.Tensor:
    """`to_groups` undone: (B, K·C, H, W) -> flat NHWC (K, B, H·W·C), TensorFlow's flatten."""
    b, kc, height, width = h.shape
    return (h.permute(0, 2, 3, 1).reshape(b, height, width, k, kc // k)
            .permute(3, 0, 1, 2, 4).reshape(k, b, height * width * (kc // k)))


def packed_conv(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, padding: int,
                transpose: bool = False) -> torch.Tensor:
    """One stride-2 (transposed) convolution of all K members: weight (K, kh, kw, in, out),
    bias (K, 1, out), maps h (B, K·in, H, W) -> (B, K·out, H', W'). Maps shared by the
    members (B, in, H, W) take one ungrouped convolution with K·out filters instead."""
    k, kh, kw, fan_in, fan_out = weight.shape
    if transpose:
        filters = weight.permute(0, 3, 4, 1, 2).reshape(k * fan_in, fan_out, kh, kw)
        return F.conv_transpose2d(h, filters, bias.reshape(-1), STRIDE, padding, groups=k)
    filters = weight.permute(0, 4, 3, 1, 2).reshape(k * fan_out, fan_in, kh, kw)
    groups = k if h.shape[1] == k * fan_in else 1
    return F.conv2d(h, filters, bias.reshape(-1), STRIDE, padding, groups=groups)


def convolve(params: Params, names: tuple[str, ...], h: torch.Tensor,
             transpose: bool = False) -> torch.Tensor:
    """The chain of (transposed) convolutions `names`, ReLU after each but the decoder's
    last (the logits)."""
    for name in names:
        h = packed_conv(h, params[f"{name}_weight"], params[f"{name}_bias"], PADDINGS[name],
                        transpose)
        if name != "dec_out":
            h = torch.relu(h)
    return h


def dense(params: Params, name: str, h: torch.Tensor) -> torch.Tensor:
    """h (K, B, in) @ W + b of every member, one batched matmul."""
    return torch.baddbmm(params[f"{name}_bias"], h, params[f"{name}_weight"])


def encoder(params: Params, x: torch.Tensor, image_shape: tuple[int, int, int]
            ) -> torch.Tensor:
    """`conv_encoder` of the members in `params` (stacked, K first): images (K, B, P) or
    (B, P) shared -> their heads (K, B, 2d), means then log-variances."""
    h = convolve(params, ENCODER_CONVS, to_groups(x, image_shape))
    h = torch.relu(dense(params, "enc5", from_groups(h, len(params["enc1_weight"]))))
    return dense(params, "enc_head", h)


def decoder(params: Params, z: torch.Tensor) -> torch.Tensor:
    """`deconv_decoder` of the members in `params`: codes (K, B, d) -> logits (K, B, P)."""
    h = torch.relu(dense(params, "dec2", torch.relu(dense(params, "dec1", z))))
    h = convolve(params, DECODER_CONVS, to_groups(h, START), transpose=True)
    return from_groups(h, len(z))
