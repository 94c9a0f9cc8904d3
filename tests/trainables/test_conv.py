"""disentanglement_lib's convolutional networks as packs (`trainables.conv`, `ConvPack`): the
geometry against an independent TensorFlow-style forward pass, the members' independence, the
initialisation; and the architecture and dataset choices of `build_model`, the fully connected
network's dense input layer included."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from trainables import conv, models
from trainables.config import TrainConfig
from trainables.models import ConvPack, PackModel, build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

D = 5  # latent dimensions
# disentanglement_lib's conv_encoder / deconv_decoder as its code writes them, per member
# (kh, kw, in, out) or (in, out): e3 and e4 are kernel_size=2 in the code (the paper: 4).
ARCHITECTURE = {
    "enc1": (4, 4, "C", 32), "enc2": (4, 4, 32, 32), "enc3": (2, 2, 32, 64),
    "enc4": (2, 2, 64, 64), "enc5": (1024, 256), "enc_head": (256, 2 * D),
    "dec1": (D, 256), "dec2": (256, 1024), "dec3": (4, 4, 64, 64), "dec4": (4, 4, 64, 32),
    "dec5": (4, 4, 32, 32), "dec_out": (4, 4, 32, "C"),
}
# TensorFlow's "same" padding (before, after) of each stride-2 convolution: 4x4 over an even
# size pads 1 and 1, 2x2 none; a transposed one crops its full output by the same amounts.
TF_PADDING = {"enc1": 1, "enc2": 1, "enc3": 0, "enc4": 0,
              "dec3": 1, "dec4": 1, "dec5": 1, "dec_out": 1}


def images(*shape: int, channels: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, 64 * 64 * channels, generator=torch.Generator().manual_seed(seed))


def kernel(weight: torch.Tensor) -> torch.Tensor:
    """A member's (kh, kw, in, out) weight as PyTorch's conv2d weight (out, in, kh, kw)."""
    return weight.permute(3, 2, 0, 1)


def tensorflow_forward(model: ConvPack, m: int, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Member m's heads and logits for images x (B, P) computed the way TensorFlow defines the
    layers: NHWC images, explicit "same" padding, convolutions unpadded, transposed ones full
    and then cropped, flatten and reshape in NHWC order."""
    p = {name: param[m] for name, param in model.named_parameters()}
    b, channels = len(x), model.image_shape[2]
    h = x.view(b, 64, 64, channels).permute(0, 3, 1, 2)
    sizes = []
    for name in ("enc1", "enc2", "enc3", "enc4"):
        pad = TF_PADDING[name]
        h = F.conv2d(F.pad(h, (pad, pad, pad, pad)), kernel(p[f"{name}_weight"]), stride=2)
        h = torch.relu(h + p[f"{name}_bias"].view(1, -1, 1, 1))
        sizes.append(h.shape[-1])
    assert sizes == [32, 16, 8, 4]
    h = torch.relu(h.permute(0, 2, 3, 1).reshape(b, 1024) @ p["enc5_weight"] + p["enc5_bias"])
    heads = h @ p["enc_head_weight"] + p["enc_head_bias"]
    h = torch.relu(heads[:, :D] @ p["dec1_weight"] + p["dec1_bias"])
    h = torch.relu(h @ p["dec2_weight"] + p["dec2_bias"])
    h = h.view(b, 4, 4, 64).permute(0, 3, 1, 2)
    sizes = []
    for name in ("dec3", "dec4", "dec5", "dec_out"):
        full = F.conv_transpose2d(h, p[f"{name}_weight"].permute(2, 3, 0, 1), stride=2)
        crop = TF_PADDING[name]
        h = full[..., crop : full.shape[-2] - crop, crop : full.shape[-1] - crop]
        h = h + p[f"{name}_bias"].view(1, -1, 1, 1)
        if name != "dec_out":
            h = torch.relu(h)
        sizes.append(h.shape[-1])
    assert sizes == [8, 16, 32, 64]
    return heads[:, :D], heads[:, D:], h.permute(0, 2, 3, 1).reshape(b, -1)


@pytest.mark.parametrize("channels", [1, 3])
def test_the_networks_are_disentanglement_libs_against_a_tensorflow_style_reference(channels):
    model = ConvPack("beta_vae", [3, 4], latent_dim=D, image_shape=(64, 64, channels))
    shapes = {name[: -len("_weight")]: tuple(param.shape[1:])
              for name, param in model.named_parameters() if name.endswith("_weight")}
    assert shapes == {name: tuple(channels if n == "C" else n for n in shape)
                      for name, shape in ARCHITECTURE.items()}
    x = images(2, 3, channels=channels)
    mean, spread = model.encode(x)
    logits = model.decode(mean)
    assert logits.shape == (2, 3, 64 * 64 * channels)
    for m in range(2):
        ref_mean, ref_spread, ref_logits = tensorflow_forward(model, m, x[m])
        torch.testing.assert_close(mean[m], ref_mean, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(spread[m], ref_spread, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(logits[m], ref_logits, rtol=1e-4, atol=1e-5)


def test_tensorflow_same_padding():
    assert conv.same_padding(64, 4, 2) == (1, 1)
    assert conv.same_padding(16, 2, 2) == (0, 0)
    assert conv.same_padding(4, 3, 2) == (0, 1)  # the odd pixel goes after, as TensorFlow's
    assert conv.same_padding(5, 3, 2) == (1, 1)  # ceil(5 / 2) = 3 outputs
    assert conv.PADDINGS == TF_PADDING


def trained_step(model: ConvPack, x: torch.Tensor, noise: torch.Tensor
                 ) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    """One training step's outputs (heads, logits, per-member loss) and parameter gradients."""
    mean, spread = model.encode(x)
    logits = model.decode(model.sample_posterior(mean, spread, noise))
    loss = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2))
    loss = loss + spread.exp().sum((1, 2))
    grads = torch.autograd.grad(loss.sum(), list(model.parameters()))
    names = [name for name, _ in model.named_parameters()]
    return [mean, spread, logits, loss], dict(zip(names, grads, strict=True))


@pytest.mark.parametrize("channels", [1, 3])
def test_a_member_in_a_pack_trains_bitwise_as_the_same_member_alone(channels):
    """On the CPU the pack runs each member's network as its own calls on tensors shaped as
    the member alone's, so outputs and gradients agree to the bit."""
    shape = (64, 64, channels)
    pack = ConvPack("wae_gaussian", [7, 8, 9], latent_dim=D, image_shape=shape,
                    logvar_clip=[-16.0, 10.0])
    alone = ConvPack("wae_gaussian", [8], latent_dim=D, image_shape=shape,
                     logvar_clip=[-16.0, 10.0])
    for (name, packed), single in zip(pack.named_parameters(), alone.parameters(), strict=True):
        assert torch.equal(packed[1:2], single), name  # member 1 starts the same for any K
    x = images(3, 4, channels=channels)
    noise = torch.randn(3, 4, D, generator=torch.Generator().manual_seed(1))
    outputs, grads = trained_step(pack, x, noise)
    solo_outputs, solo_grads = trained_step(alone, x[1:2], noise[1:2])
    for out, solo in zip(outputs, solo_outputs, strict=True):
        assert torch.equal(out[1:2], solo)
    for name, grad in grads.items():
        assert torch.equal(grad[1:2], solo_grads[name]), name
    shared_mean, shared_spread = pack.encode(x[1])  # evaluation: one batch for every member
    assert torch.equal(shared_mean[1:2], solo_outputs[0])
    assert torch.equal(shared_spread[1:2], solo_outputs[1])


def test_the_grouped_calls_a_gpu_runs_equal_the_members_alone():
    """The one-call path (every member in each grouped convolution and batched matmul), on
    per-member and on shared images, against each member run alone."""
    pack = ConvPack("beta_vae", [7, 8, 9], latent_dim=D)
    params = dict(pack.named_parameters())
    decoder = {name: param for name, param in params.items() if name.startswith("dec")}
    x, z = images(3, 4), torch.randn(3, 4, D, generator=torch.Generator().manual_seed(2))
    heads = conv.encoder(params, x, pack.image_shape)
    shared = conv.encoder(params, x[0], pack.image_shape)
    logits = conv.decoder(params, z)
    for m in range(3):
        single = {name: param[m : m + 1] for name, param in params.items()}
        torch.testing.assert_close(heads[m], conv.encoder(single, x[m], pack.image_shape)[0])
        torch.testing.assert_close(shared[m], conv.encoder(single, x[0], pack.image_shape)[0])
        torch.testing.assert_close(logits[m], conv.decoder(single, z[m : m + 1])[0])
    weights = torch.randn_like(logits)
    grads = torch.autograd.grad((logits * weights).sum(), list(decoder.values()))
    for m in (0, 2):
        single = {name: param[m : m + 1].detach().requires_grad_() for name, param in
                  decoder.items()}
        out = conv.decoder(single, z[m : m + 1])
        solo = torch.autograd.grad((out * weights[m : m + 1]).sum(), list(single.values()))
        for grad, solo_grad in zip(grads, solo, strict=True):
            torch.testing.assert_close(grad[m : m + 1], solo_grad)


def test_glorot_uniform_initialisation_with_tensorflows_fans():
    """Every kernel uniform in ±sqrt(6 / (fan_in + fan_out)), fans in·kh·kw and out·kh·kw
    (the heads `means` and `log_var` two layers of d outputs each); biases zero."""
    latent = 32  # the heads' fan-out counted once would change their limit by 5 %
    model = ConvPack("beta_vae", [0, 1], latent_dim=latent, image_shape=(64, 64, 3))
    for name, param in model.named_parameters():
        if name.endswith("_bias"):
            assert not param.any(), name
            continue
        *kernel_size, fan_in, fan_out = param.shape[1:]
        if name == "enc_head_weight":
            fan_out = latent
        limit = math.sqrt(6 / ((fan_in + fan_out) * math.prod(kernel_size)))
        assert param.abs().max() <= limit, name
        assert param.abs().max() > 0.99 * limit, name  # > 2,500 draws each
        n = param.numel()
        assert abs(param.mean()) < 4 * limit / math.sqrt(3 * n), name
        assert param.var().item() == pytest.approx(limit**2 / 3, rel=8 * math.sqrt(0.8 / n)), name
        assert not torch.equal(param[0], param[1]), name  # each member its own draw


def test_member_shares_storage_and_the_family_logic_is_the_fc_models():
    pack = ConvPack("wae_uniform", [7, 8], latent_dim=D, logvar_clip=[-1.0, 1.0])
    single = pack.member(1)
    assert type(single) is ConvPack and single.k == 1 and single.member_seeds == [8]
    assert single.image_shape == pack.image_shape
    for (name, param), view in zip(pack.named_parameters(), single.parameters(), strict=True):
        assert view.data_ptr() == param[1].data_ptr(), name
    with torch.no_grad():
        pack.dec_out_bias[1] += 1.0
    assert torch.equal(single.dec_out_bias, pack.dec_out_bias[1:2])
    x = images(2, 3)
    mean, spread = pack.encode(x)
    raw_mean, raw_spread = ConvPack("beta_vae", [7, 8], latent_dim=D).encode(x)
    assert torch.equal(mean, torch.tanh(raw_mean)) and torch.equal(spread, raw_spread)
    u = torch.full_like(mean, 0.5)
    assert torch.equal(pack.sample_posterior(mean, spread, u),
                       mean + torch.exp(spread.clamp(-1.0, 1.0)) * u)
    assert torch.equal(single.encode(x[1:2])[0], mean[1:2])


def test_bf16_autocast_returns_fp32_heads_and_logits():
    model = ConvPack("beta_vae", [0, 1], latent_dim=D)
    x = images(2, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mean, spread = model.encode(x)
        logits = model.decode(mean)
    assert mean.dtype == spread.dtype == logits.dtype == torch.float32
    reference = model.decode(model.encode(x)[0])
    assert (logits - reference).abs().max() < 0.05 * reference.abs().max()


@pytest.mark.parametrize(("dataset", "architecture", "network", "pixels", "sparse"), [
    ("dsprites", "fc", PackModel, 4096, True),
    ("noisy_dsprites", "fc", PackModel, 3 * 4096, False),
    ("color_dsprites", "fc", PackModel, 3 * 4096, True),
    ("dsprites", "conv", ConvPack, 4096, None),
    ("noisy_dsprites", "conv", ConvPack, 3 * 4096, None),
])
def test_build_model_reads_the_architecture_and_the_datasets_images(
        dataset, architecture, network, pixels, sparse):
    cfg = TrainConfig(family="beta_vae", value=1.0, replicates=2, dataset=dataset,
                      architecture=architecture, latent_dim=D, encoder_width=8,
                      decoder_width=8)
    model = build_model(cfg)
    assert type(model) is network and model.k == 2
    assert getattr(model, "sparse_input", None) is sparse
    assert model.decode(model.encode(images(2, 3, channels=pixels // 4096))[0]).shape == (
        2, 3, pixels)


def test_fc_state_dict_keeps_its_names():
    """Checkpoints written before the conv networks load into the fully connected pack."""
    cfg = TrainConfig(family="beta_vae", value=1.0, replicates=1, latent_dim=D,
                      encoder_width=8, decoder_width=8)
    assert list(build_model(cfg).state_dict()) == [
        f"{layer}_{kind}" for layer in ("enc1", "enc2", "enc_head", "dec1", "dec2", "dec3",
                                        "dec_out") for kind in ("weight", "bias")]


def test_fc_dense_input_layer_equals_the_sparse_one(monkeypatch):
    """`sparse_input=False` (dense images, e.g. noisy_dsprites) takes the dense matmul on the
    CPU: on binary images the same outputs and gradients as the lit-pixel sums."""
    def shapes(sparse: bool) -> PackModel:
        return PackModel("beta_vae", [1, 2], latent_dim=D, encoder_width=16, decoder_width=8,
                         image_shape=(64, 64, 3), sparse_input=sparse)

    sparse, dense = shapes(True), shapes(False)
    x = (images(2, 5, channels=3) < 0.05).float()
    sparse_out = sparse.encode(x)[0]
    monkeypatch.setattr(models.F, "embedding_bag", None)  # the dense model must not call it
    dense_out = dense.encode(x)[0]
    torch.testing.assert_close(dense_out, sparse_out, rtol=1e-5, atol=1e-5)
    monkeypatch.undo()
    (grad_sparse,) = torch.autograd.grad(sparse_out.sum(), sparse.enc1_weight)
    (grad_dense,) = torch.autograd.grad(dense_out.sum(), dense.enc1_weight)
    torch.testing.assert_close(grad_dense, grad_sparse, rtol=1e-5, atol=1e-5)
