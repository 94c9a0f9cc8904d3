"""`analysis.models`: a member loaded from its checkpoint encodes as the metrics do, with the
study's `uniform_code` (Figure 2 and the traversals show the codes that were scored)."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import models
from trainables import checkpoint
from trainables import data as dsdata
from trainables.config import TrainConfig
from trainables.evaluate import pack_encoder
from trainables.pack import PackTrainer

TINY = {"family": "wae_uniform", "value": 1.0, "replicates": 2, "steps": 3, "batch_size": 8,
        "latent_dim": 3, "encoder_width": 8, "decoder_width": 8, "metrics": [],
        "device": "cpu", "seed": 5}


@pytest.mark.parametrize("uniform_code", ["mu", "centre"])
def test_a_loaded_member_encodes_with_the_studys_uniform_code(random_packed, tmp_path,
                                                              uniform_code):
    cfg = TrainConfig.from_dict({**TINY, "uniform_code": uniform_code})
    data = dsdata.DSprites(random_packed)
    trainer = PackTrainer(cfg, data.packed, data.split(cfg.split_seed).train)
    for _ in range(cfg.steps):
        trainer.train_step()
    checkpoint.save(tmp_path / "checkpoint_000000", {
        "config": cfg.to_dict(), "step": cfg.steps, "split_seed": cfg.split_seed,
        "diverged_at": [-1, -1], "trainer": trainer.state_dict(),
        "rng": checkpoint.rng_state(), "last_eval": {}})
    images = data.images(np.arange(16))
    codes = models.load_codec(tmp_path, replicate=1).encode(images)
    model = trainer.model.eval()
    np.testing.assert_allclose(codes, pack_encoder(model, [1], uniform_code)(images)[0],
                               rtol=1e-5, atol=1e-6)
    other = "mu" if uniform_code == "centre" else "centre"
    assert not np.allclose(codes, pack_encoder(model, [1], other)(images)[0])
    assert codes.shape == (16, cfg.latent_dim)
