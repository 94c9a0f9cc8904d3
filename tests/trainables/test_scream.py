"""scream_dsprites: the sprite inverted over a patch of a painting, as disentanglement_lib
shows it; the painting fetched, checked, carried with the data and named in provenance."""

from __future__ import annotations

import dataclasses
import hashlib
import io

import numpy as np
import pytest
import torch
from PIL import Image

from analysis import provenance
from study.cli import main
from trainables import data
from trainables.config import TrainConfig
from trainables.datasets import DATASETS
from trainables.image_files import DataError, read_painting
from trainables.pack import PackTrainer

from .test_fetch import Server

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SCREAM = DATASETS["scream_dsprites"]
HEIGHT, WIDTH = 100, 80


def ramp_painting() -> np.ndarray:
    """A painting whose red channel is its row / 100, green its column / 100, blue 0.25."""
    rows, cols = np.meshgrid(np.arange(HEIGHT), np.arange(WIDTH), indexing="ij")
    return np.stack([rows / 100, cols / 100, np.full(rows.shape, 0.25)], -1).astype(np.float32)


SHOWN = dataclasses.replace(SCREAM, painting=ramp_painting())


def jpeg(width: int, height: int) -> bytes:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3),
                                                              dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    return buffer.getvalue()


def test_the_sprite_is_inverted_over_the_painting_patch_its_draws_pick():
    sprite = torch.zeros(2, 4096)
    sprite[:, 64 * 10 + 5] = 1.0  # row 10, column 5 lit
    draws = torch.tensor([[0.0, 0.0, 0.2, 0.4, 0.6], [0.9999, 0.5, 0.0, 0.0, 1.0]])
    seen = SHOWN.observe(sprite, lambda count: draws[:, :count]).view(2, 64, 64, 3)
    # offsets floor(u * (H - 64)): (0, 0) and (35, 8); the last offset, 36, is never drawn
    for image, (top, left), colour in ((0, (0, 0), [0.2, 0.4, 0.6]),
                                       (1, (35, 8), [0.0, 0.0, 1.0])):
        patch = torch.from_numpy(ramp_painting()[top:top + 64, left:left + 64])
        background = (patch + torch.tensor(colour)) / 2
        torch.testing.assert_close(seen[image, 10, 5], 1 - background[10, 5])
        expected = background.clone()
        expected[10, 5] = 1 - background[10, 5]
        torch.testing.assert_close(seen[image], expected)


def test_patches_cover_every_offset_but_the_last_and_colours_are_uniform():
    draws = torch.rand(4000, 5, generator=torch.Generator().manual_seed(0))
    seen = SHOWN.observe(torch.zeros(4000, 4096), lambda count: draws[:, :count])
    corner = seen.view(-1, 64, 64, 3)[:, 0, 0]  # (row / 100 + colour) / 2 at the patch's corner
    tops = torch.round((2 * corner[:, 0] - draws[:, 2]) * 100).long()
    assert set(tops.tolist()) == set(range(HEIGHT - 64))
    blue = 2 * corner[:, 2] - 0.25  # the colour's third draw
    assert abs(blue.mean().item() - 0.5) < 0.02  # 4 standard errors of 4,000 draws


def test_a_member_sees_the_same_patches_alone_as_in_a_pack():
    packed = np.random.default_rng(0).integers(0, 256, (3000, 512), dtype=np.uint8)
    train = np.arange(0, 3000, 2)
    cfg = dict(family="beta_vae", value=1.0, steps=40, batch_size=8, latent_dim=4,
               encoder_width=32, decoder_width=32, dataset="scream_dsprites")
    pack = PackTrainer(TrainConfig(**cfg, replicates=3, seed=10), packed, train, dataset=SHOWN)
    solo = PackTrainer(TrainConfig(**cfg, replicates=1, seed=11), packed, train, dataset=SHOWN)
    for trainer in (pack, solo):
        for _ in range(10):
            trainer.train_step()
    for in_pack, alone in zip(pack.params, solo.params, strict=True):
        torch.testing.assert_close(in_pack[1], alone[0], rtol=1e-5, atol=1e-7)
    bare = PackTrainer(TrainConfig(**cfg, replicates=1), packed, train)  # the registry's
    with pytest.raises(RuntimeError, match="scream_dsprites has no painting"):
        bare.train_step()
    with pytest.raises(ValueError, match="the data shows dsprites, the config trains on scream"):
        PackTrainer(TrainConfig(**cfg), packed, train, dataset=DATASETS["dsprites"])


def test_the_painting_is_a_thumbnail_within_350_by_274(tmp_path):
    path = tmp_path / "scream.jpg"
    path.write_bytes(jpeg(700, 900))  # portrait, as The Scream
    painting = read_painting(path, SCREAM)
    assert painting.shape == (274, 213, 3) and painting.dtype == np.float32
    assert 0 <= painting.min() and painting.max() <= 1
    path.write_bytes(jpeg(60, 300))
    with pytest.raises(DataError, match="too small for 64x64 patches"):
        read_painting(path, SCREAM)
    path.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="cannot read the painting"):
        read_painting(path, SCREAM)


@pytest.fixture
def cache(own_cache, monkeypatch):
    """The user cache of this test's own (the painting goes there)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(own_cache))
    return data.cache_dir()


def test_loaded_data_carries_its_painting_and_shows_each_image_alike(cache, dsprites_path):
    with pytest.raises(DataError, match="run `wae-study data fetch scream_dsprites`"):
        data.check_source(None, "scream_dsprites")
    with pytest.raises(DataError, match="needs its painting"):
        data.load(dsprites_path, dataset="scream_dsprites")
    (cache / "scream.jpg").write_bytes(jpeg(700, 900))
    loaded = data.load(dsprites_path, dataset="scream_dsprites")
    images = loaded.images(np.array([5, 90_000]))
    assert images.shape == (2, 64, 64, 3)
    np.testing.assert_array_equal(loaded.images(np.array([90_000]))[0], images[1])
    painting = data.painting_of(loaded)
    assert painting.shape == (274, 213, 3)
    wrapped = data.wrap(loaded.stored, "scream_dsprites", painting)
    np.testing.assert_array_equal(wrapped.images(np.array([5])), images[:1])
    with pytest.raises(DataError, match="needs its painting beside the stored images"):
        data.wrap(loaded.stored, "scream_dsprites")
    assert data.painting_source(loaded) == cache / "scream.jpg"
    assert data.painting_source(data.load(dsprites_path)) is None


def test_data_fetch_gets_the_painting_checks_it_and_says_its_digest(cache, capsys):
    body = jpeg(700, 900)
    mirror = Server({"/scream.jpg": body, "/small.jpg": jpeg(50, 50), "/text": b"<html>"})
    try:
        for path, problem in (("/text", "cannot read the painting"),
                              ("/small.jpg", "too small for 64x64 patches")):
            assert main(["data", "fetch", "scream_dsprites", "--url", mirror.url + path]) == 2
            assert problem in capsys.readouterr().err
            assert not (cache / "scream.jpg").exists()
        assert main(["data", "fetch", "scream_dsprites", "--url",
                     mirror.url + "/scream.jpg"]) == 0
        said = capsys.readouterr().out
        assert f"sha256 {hashlib.sha256(body).hexdigest()}" in said and "213x274" in said
        assert (cache / "scream.jpg").read_bytes() == body
        assert main(["data", "fetch", "scream_dsprites", "--out", str(cache / "x.jpg")]) == 2
        assert "drop --out" in capsys.readouterr().err
    finally:
        mirror.close()


def test_provenance_and_the_footer_name_the_painting(tmp_path):
    painting = tmp_path / "scream.jpg"
    painting.write_bytes(jpeg(100, 100))
    entry = provenance.record_run(tmp_path, "run", None, painting)
    assert entry["painting"]["sha256"] == hashlib.sha256(painting.read_bytes()).hexdigest()
    assert "painting" not in provenance.record_run(tmp_path, "resume", None)
    lines = provenance.footer_lines({"runs": provenance.read_runs(tmp_path), "devices": [],
                                     "protocols": {}, "member_seeds": {}})
    assert [line for line in lines if line.startswith(f"painting {painting} (")]


def test_a_trainer_keeps_the_painting_on_its_device():
    """As a tensor on the trainer's device, once: a copy from the host with every batch would
    make each GPU step wait for it."""
    packed = np.zeros((100, 512), dtype=np.uint8)
    cfg = TrainConfig(family="beta_vae", value=1.0, latent_dim=4, encoder_width=32,
                      decoder_width=32, dataset="scream_dsprites")
    trainer = PackTrainer(cfg, packed, np.arange(100), dataset=SHOWN)
    assert isinstance(trainer.dataset.painting, torch.Tensor)
    assert trainer.dataset.painting.device == trainer.device
    assert isinstance(SHOWN.painting, np.ndarray)  # the data's own copy is left as it was
    assert DATASETS["scream_dsprites"].to(torch.device("cpu")) is DATASETS["scream_dsprites"]
