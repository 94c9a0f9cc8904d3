"""The dataset registry: what each dSprites variant shows a model, in training and evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainables.config import TrainConfig
from trainables.data import DataError, DSprites, load
from trainables.datasets import DATASETS, DSPRITES, indexed_uniform
from trainables.pack import PackTrainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPRITE = torch.zeros(2000, 4096)
SPRITE[:, 1000:1200] = 1.0  # a lit block in every image


def fresh(count: int, n: int = len(SPRITE), seed: int = 0) -> torch.Tensor:
    return torch.rand(n, count, generator=torch.Generator().manual_seed(seed))


def test_color_dsprites_paints_each_sprite_one_colour_in_its_range():
    seen = DATASETS["color_dsprites"].observe(SPRITE, fresh).view(len(SPRITE), 4096, 3)
    assert (seen[:, :1000] == 0).all() and (seen[:, 1200:] == 0).all()  # black background
    colour = seen[:, 1000]
    assert (seen[:, 1000:1200] == colour[:, None]).all()  # one colour per image
    assert colour.min() >= 0.5 and colour.max() <= 1.0
    # uniform on [0.5, 1]: mean 0.75, sd 0.5 / sqrt(12); 6000 draws: se 0.0019
    assert abs(colour.mean().item() - 0.75) < 0.008
    assert abs(colour.std().item() - 0.5 / 12**0.5) < 0.006


def test_noisy_dsprites_shows_a_white_sprite_on_uniform_noise():
    seen = DATASETS["noisy_dsprites"].observe(SPRITE, fresh).view(len(SPRITE), 4096, 3)
    assert (seen[:, 1000:1200] == 1).all()
    background = seen[:, :1000]
    assert abs(background.mean().item() - 0.5) < 0.005
    assert abs(background.var().item() - 1 / 12) < 0.005
    assert not torch.equal(background[:, :, 0], background[:, :, 1])  # each channel its own


def test_an_evaluation_image_looks_the_same_whatever_else_is_asked_for():
    alone = indexed_uniform(torch.tensor([7]), 12)
    among = indexed_uniform(torch.tensor([3, 7, 7_000]), 12)
    torch.testing.assert_close(among[1], alone[0], rtol=0, atol=0)
    assert not torch.equal(among[0], among[1])
    many = indexed_uniform(torch.arange(20_000), 3)
    assert abs(many.mean().item() - 0.5) < 0.005 and many.min() >= 0 and many.max() < 1


@pytest.fixture(scope="module")
def packed() -> np.ndarray:
    array = np.random.default_rng(0).integers(0, 256, (3000, 512), dtype=np.uint8)
    array.flags.writeable = False  # as it arrives from Ray's object store
    return array


def tiny(**overrides) -> TrainConfig:
    base = dict(family="wae_gaussian", value=1.0, replicates=1, seed=0, steps=40, batch_size=8,
                latent_dim=4, encoder_width=32, decoder_width=32, lr_schedule="authors")
    return TrainConfig(**{**base, **overrides})


@pytest.mark.parametrize("dataset", ["color_dsprites", "noisy_dsprites"])
@pytest.mark.parametrize("family", ["beta_vae", "wae_uniform"])
def test_a_member_sees_the_same_colours_and_noise_alone_as_in_a_pack(packed, dataset, family):
    """Observation draws come from each member's own generator: member 1 of a pack of 3 and
    the same seed alone train alike."""
    train = np.arange(0, 3000, 2)
    pack = PackTrainer(tiny(family=family, dataset=dataset, replicates=3, seed=10), packed, train)
    solo = PackTrainer(tiny(family=family, dataset=dataset, seed=11), packed, train)
    for trainer in (pack, solo):
        for _ in range(15):
            trainer.train_step()
    assert pack.draw_batch().x.shape == (3, 8, 64 * 64 * 3)
    for in_pack, alone in zip(pack.params, solo.params, strict=True):
        torch.testing.assert_close(in_pack[1], alone[0], rtol=1e-5, atol=1e-7)


def test_a_variant_sees_colour_where_dsprites_sees_the_stored_bits(packed):
    """The same seeds draw the same batch picks: the colour is an extra draw after them."""
    train = np.arange(3000)
    plain = PackTrainer(tiny(), packed, train).draw_batch().x
    colour = PackTrainer(tiny(dataset="color_dsprites"), packed, train).draw_batch().x
    lit = colour.view(1, 8, 4096, 3) > 0
    assert torch.equal(lit.all(-1), plain.bool()) and torch.equal(lit.any(-1), plain.bool())


def test_variants_show_the_evaluation_images_of_the_generated_file(dsprites_path):
    data = load(dsprites_path, dataset="noisy_dsprites")
    assert (data.latent_factors, list(data.tasks)) == ((1, 2, 3, 4, 5), ["5var", "4var"])
    images = data.images(np.array([5, 90_000]))
    assert images.shape == (2, 64, 64, 3) and images.dtype == np.float32
    np.testing.assert_array_equal(data.images(np.array([90_000]))[0], images[1])
    bits = DSprites(data.packed).images(np.array([90_000]))[0].astype(bool)
    assert (images[1][bits] == 1).all() and (images[1][~bits] < 1).mean() > 0.99
    noshape = load(dsprites_path, dataset="dsprites_noshape")
    assert noshape.images(np.array([5])).dtype == np.uint8  # shown as stored
    assert (noshape.latent_factors, list(noshape.tasks)) == ((2, 3, 4, 5), ["4var"])


def test_an_unknown_dataset_is_refused_naming_the_choices():
    with pytest.raises(DataError, match="unknown dataset 'shapes4d': choose one of dsprites"):
        load(dataset="shapes4d")
    assert DSPRITES.as_stored and not DATASETS["color_dsprites"].as_stored
