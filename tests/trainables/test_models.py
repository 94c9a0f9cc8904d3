"""The pack model's CPU input layer (sums of lit pixels' weight rows) against the dense matmul,
and the allocator setting that keeps CPU training free of page faults."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest
import torch

from trainables.allocator import reuse_freed_memory
from trainables.models import PackModel


def pack(k: int = 3) -> PackModel:
    return PackModel("wae_gaussian", list(range(k)), latent_dim=4, encoder_width=24,
                     decoder_width=16)


def images(*shape: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    lit = (torch.rand(*shape, 4096, generator=gen) < 0.05).float()
    lit[..., 0, :] = 0.0  # an empty image: a bag with no entries
    return lit


@pytest.mark.parametrize("x", [
    images(5),  # one batch shared by the members (evaluation)
    images(5).to(torch.uint8),  # evaluation hands the pixels over as uint8
    images(3, 5),  # a batch per member (training)
    images(7) * torch.rand(7, 4096),  # any values, not only 0/1
], ids=["shared", "shared-uint8", "per-member", "real-valued"])
def test_input_layer_equals_the_dense_matmul_forward_and_backward(x):
    model = pack()
    sparse = model._first_layer(x)
    dense = model._linear("enc1", x.float())
    torch.testing.assert_close(sparse, dense, rtol=1e-5, atol=1e-5)
    weight = torch.randn_like(dense)
    (grad_sparse,) = torch.autograd.grad((sparse * weight).sum(), model.enc1_weight)
    (grad_dense,) = torch.autograd.grad((dense * weight).sum(), model.enc1_weight)
    torch.testing.assert_close(grad_sparse, grad_dense, rtol=1e-5, atol=1e-5)


def test_a_member_gets_the_same_layer_output_and_gradient_bitwise_alone():
    model, x = pack(3), images(3, 6, seed=1)
    out = model._first_layer(x)
    (grad,) = torch.autograd.grad(out[1].sum(), model.enc1_weight)
    alone = model.member(1)
    alone.enc1_weight.requires_grad_(True)
    solo = alone._first_layer(x[1:2])
    (solo_grad,) = torch.autograd.grad(solo.sum(), alone.enc1_weight)
    assert torch.equal(out[1], solo[0])
    assert torch.equal(grad[1], solo_grad[0])
    assert not grad[0].any() and not grad[2].any()


GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
FAULTS = textwrap.dedent("""
    import resource, sys, threading, torch
    from trainables.allocator import reuse_freed_memory
    if sys.argv[1] == "reuse":
        assert reuse_freed_memory()
    faults = []
    def work():  # in a thread, as Tune runs a function trainable
        torch.ones(16_000_000).sum()  # 64 MB allocated and freed
        for _ in range(5):  # the fewest faults of 5 rounds: the kernel may reclaim idle pages
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            for _ in range(4):
                torch.ones(16_000_000).sum()
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    print(min(faults))
""")


@pytest.mark.slow
@pytest.mark.skipif(not GLIBC, reason="the setting is glibc's; elsewhere it does nothing")
def test_reusing_freed_memory_stops_the_page_faults_of_large_tensors():
    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True,
                             text=True, check=True)
        return int(out.stdout.split()[-1])

    default, reuse = faults("default"), faults("reuse")
    assert default > 4 * 15_000  # each 64 MB tensor faults its ~15,600 pages in again
    assert reuse < default / 4


@pytest.mark.skipif(GLIBC, reason="on glibc the setting applies")
def test_reuse_freed_memory_is_a_no_op_elsewhere():
    assert reuse_freed_memory() is False
