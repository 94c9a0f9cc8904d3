"""The Tune trainable: config handling, reports, checkpoints and resume; one real Tune run."""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from ray import tune

from trainables import checkpoint, trainable
from trainables.config import TrainConfig
from trainables.data import DSprites

TINY = {"replicates": 2, "steps": 6, "batch_size": 8, "latent_dim": 4, "encoder_width": 16,
        "decoder_width": 16, "report_every": 2, "checkpoint_every": 4, "metrics": [],
        "recon_eval_images": 32, "device": "cpu"}
REPORT_KEYS = {"step", "loss", "recon", "member_loss", "diverged_at", "n_diverged", "family",
               "param", "value", "disentanglement_4var", "disentanglement_5var", "recon_test",
               "recon_train", "eval_step"}
ROW_KEYS = {"replicate", "seed", "calculation", "step", "diverged", "disentanglement_4var",
            "disentanglement_5var", "recon_test", "recon_train"}


@pytest.fixture(scope="module")
def packed(random_packed) -> np.ndarray:
    return random_packed


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---- config -----------------------------------------------------------------------------
def test_config_defaults_are_the_authors_setting():
    cfg = TrainConfig()
    assert (cfg.batch_size, cfg.latent_dim, cfg.encoder_width, cfg.steps) == (100, 16, 1200, 60000)
    assert cfg.schedule()[1:] == [(15_000, 7e-4), (30_000, 3e-4), (45_000, 1e-4)]
    assert (cfg.lambda_mmd, cfg.mmd_estimator, cfg.uniform_box) == (400.0, "authors", "corner")
    assert TrainConfig(family="wae_uniform").param == "lambda1" and cfg.param == "beta"
    assert TrainConfig(seed=7, replicates=3).member_seeds == [7, 8, 9]
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert all(TrainConfig.field_help().values())
    # numpy scalars, tuples and integral floats coerce to the field's real type
    typed = TrainConfig.from_dict({"steps": np.int64(5), "seeds": (np.int32(3),),
                                   "lr_schedule": [[0.0, 1e-3]], "logvar_clip": (-1, 1)})
    assert typed.steps == 5 and type(typed.steps) is int and typed.seeds == [3]
    assert typed.lr_schedule == [[0, 1e-3]] and type(typed.lr_schedule[0][0]) is int
    assert typed.logvar_clip == [-1.0, 1.0] and type(typed.logvar_clip[0]) is float


@pytest.mark.parametrize("bad, field", [
    ({"nope": 1}, "nope"), ({"steps": "10"}, "steps"), ({"steps": 0}, "steps"),
    ({"family": "vae"}, "family"), ({"eval_at_start": 1}, "eval_at_start"),
    ({"lr_schedule": [[5, 1e-3]]}, "lr_schedule"), ({"lr_schedule": "fast"}, "lr_schedule"),
    ({"metrics": ["higgins", "bogus"]}, "metrics"), ({"test_fraction": 1.0}, "test_fraction"),
    ({"logvar_clip": [10, -16]}, "logvar_clip"), ({"device": "gpu"}, "device"),
    ({"value": -1.0}, "value"), ({"batch_size": 1}, "batch_size"),
    ({"family": None}, "family may not be null"), ({"seeds": [1.5]}, "seeds has the wrong type"),
    ({"seeds": [1, 2]}, "one seed >= 0 per replicate"), ({"uniform_code": "corner"},
                                                         "uniform_code must be one of mu, centre"),
    ({"lr_schedule": [[0, 1e-3], [2.5, 1e-4]]}, "whole numbers"),
])
def test_config_rejects_bad_fields_by_name(bad, field):
    with pytest.raises(ValueError, match=field):
        TrainConfig.from_dict(bad)


def test_trial_config_reads_the_settings_under_trial():
    cfg = trainable.trial_config({"trial": {"family": "wae_gaussian", "value": 1.0, "seed": 3}})
    assert (cfg.family, cfg.value, cfg.seed) == ("wae_gaussian", 1.0, 3)


# ---- train_trial without Ray: a fake `tune` records reports and serves checkpoints ------
class FakeTune:
    Checkpoint = tune.Checkpoint

    def __init__(self, store: Path, resume_from: Path | None = None,
                 trial_id: str | None = None) -> None:
        self.store, self.resume_from, self.reports, self.saved = store, resume_from, [], []
        self.trial_id = trial_id

    def get_context(self):
        return SimpleNamespace(get_trial_id=lambda: self.trial_id, get_trial_dir=lambda: None)

    def get_checkpoint(self):
        return None if self.resume_from is None else tune.Checkpoint.from_directory(
            self.resume_from)

    def report(self, metrics: dict, *, checkpoint=None) -> None:
        self.reports.append(metrics)
        if checkpoint is not None:  # Tune persists the folder before report returns
            kept = self.store / f"checkpoint_{len(self.saved):06d}"
            shutil.copytree(checkpoint.path, kept)
            self.saved.append(kept)


def run_fake(monkeypatch, config, packed, store, resume_from=None, trial_id=None) -> FakeTune:
    fake = FakeTune(store, resume_from, trial_id)
    monkeypatch.setattr(trainable, "tune", fake)
    trainable.train_trial(config, packed)
    return fake


def test_reports_evaluations_and_checkpoints(monkeypatch, packed, tmp_path):
    config = {"trial": {**TINY, "family": "wae_uniform", "value": 0.5}}
    fake = run_fake(monkeypatch, config, packed, tmp_path)
    assert [r["step"] for r in fake.reports] == [0, 2, 4, 6]
    for report in fake.reports:
        assert REPORT_KEYS <= set(report)
        assert (report["family"], report["param"], report["value"]) == ("wae_uniform",
                                                                         "lambda1", 0.5)
        assert len(report["member_loss"]) == 2 and report["diverged_at"] == [-1, -1]
    start, _, _, end = fake.reports
    assert math.isnan(start["loss"]) and math.isfinite(end["loss"])
    for report in (start, end):
        assert report["eval_step"] == report["step"]
        assert [row["replicate"] for row in report["evaluation"]] == [0, 1]
        assert all(ROW_KEYS <= set(row) for row in report["evaluation"])
        assert report["recon_test"] > 0 and math.isfinite(report["recon_train"])
    assert fake.reports[1]["eval_step"] == 0  # carries the latest evaluation
    assert "evaluation" not in fake.reports[1]
    assert len(fake.saved) == 2  # step 4 and the end

    payload = torch.load(fake.saved[-1] / checkpoint.FILE, weights_only=True)
    assert payload["step"] == 6 and payload["split_seed"] == 0
    assert payload["diverged_at"] == [-1, -1] and payload["config"]["family"] == "wae_uniform"
    model, cfg = checkpoint.load_pack(fake.saved[-1])
    assert cfg.family == "wae_uniform" and model.k == 2
    # the periodic checkpoint can continue training; the final one holds the weights only
    assert "exp_avg" in torch.load(fake.saved[0] / checkpoint.FILE, weights_only=True)["trainer"]
    assert "exp_avg" not in payload["trainer"] and "generators" not in payload["trainer"]


def test_final_checkpoint_weights_only_unless_asked_and_a_restore_from_it(monkeypatch, packed,
                                                                        tmp_path):
    config = {**TINY, "family": "beta_vae", "eval_at_start": False}
    kept = run_fake(monkeypatch, {**config, "keep_optimizer_state": True}, packed, tmp_path / "a")
    full = torch.load(kept.saved[-1] / checkpoint.FILE, weights_only=True)["trainer"]
    assert {"exp_avg", "exp_avg_sq", "generators"} <= set(full)
    done = run_fake(monkeypatch, config, packed, tmp_path / "b")
    again = run_fake(monkeypatch, config, packed, tmp_path / "c", resume_from=done.saved[-1])
    assert [r["step"] for r in again.reports] == [6] and not again.saved  # reported, not re-run
    assert again.reports[0]["diverged_at"] == [-1, -1]


def assert_ends_bitwise_equal(straight: FakeTune, resumed: FakeTune) -> None:
    """Both runs' final weights and last losses are identical."""
    end_a = torch.load(straight.saved[-1] / checkpoint.FILE, weights_only=True)["trainer"]
    end_b = torch.load(resumed.saved[-1] / checkpoint.FILE, weights_only=True)["trainer"]
    for name, tensor in end_a["model"].items():
        assert torch.equal(tensor, end_b["model"][name]), name
    assert straight.reports[-1]["member_loss"] == resumed.reports[-1]["member_loss"]


def test_resumed_trial_ends_bitwise_equal_to_a_straight_one(monkeypatch, packed, tmp_path):
    config = {**TINY, "family": "beta_vae", "value": 4.0, "eval_at_start": False}
    straight = run_fake(monkeypatch, config, packed, tmp_path / "a")
    resumed = run_fake(monkeypatch, config, packed, tmp_path / "b",
                       resume_from=straight.saved[0])
    assert [r["step"] for r in resumed.reports] == [6]
    assert_ends_bitwise_equal(straight, resumed)


def as_written_earlier(saved: Path, into: Path) -> Path:
    """A copy of checkpoint `saved` as a version before `test_fraction` existed, and that had
    a setting this version no longer has, would have written it."""
    payload = checkpoint.load(saved)
    config = {k: v for k, v in payload["config"].items() if k != "test_fraction"}
    checkpoint.save(into, {**payload, "config": {**config, "retired_knob": 3}})
    return into


def test_a_checkpoint_written_before_a_field_existed_resumes_bitwise(monkeypatch, packed,
                                                                     tmp_path):
    config = {**TINY, "family": "beta_vae", "value": 4.0, "eval_at_start": False}
    straight = run_fake(monkeypatch, config, packed, tmp_path / "a")
    earlier = as_written_earlier(straight.saved[0], tmp_path / "earlier")
    with pytest.warns(UserWarning, match="retired_knob"):  # said in the trial's output
        resumed = run_fake(monkeypatch, config, packed, tmp_path / "b", resume_from=earlier)
    assert [r["step"] for r in resumed.reports] == [6]
    assert_ends_bitwise_equal(straight, resumed)
    with pytest.warns(UserWarning, match="retired_knob"):
        assert checkpoint.load_pack(earlier)[1].test_fraction == 0.1


def test_a_checkpoint_written_before_a_field_existed_refuses_a_changed_one(monkeypatch, packed,
                                                                          tmp_path):
    config = {**TINY, "steps": 4, "eval_at_start": False}
    first = run_fake(monkeypatch, config, packed, tmp_path / "a")
    earlier = as_written_earlier(first.saved[0], tmp_path / "earlier")
    with pytest.warns(UserWarning, match="retired_knob"), pytest.raises(
            checkpoint.CheckpointError, match=r"different lambda_mmd \(\[400.0\] vs \[100.0\]\)"):
        run_fake(monkeypatch, {**config, "lambda_mmd": 100.0}, packed, tmp_path / "b",
                 resume_from=earlier)


def test_resume_refuses_a_checkpoint_of_another_trajectory(monkeypatch, packed, tmp_path):
    config = {**TINY, "steps": 4, "eval_at_start": False}
    first = run_fake(monkeypatch, config, packed, tmp_path / "a")
    with pytest.raises(checkpoint.CheckpointError, match="seed"):
        run_fake(monkeypatch, {**config, "seed": 9}, packed, tmp_path / "b",
                 resume_from=first.saved[0])


def test_a_pbt_clone_takes_the_donors_weights_with_its_own_value_and_streams(
        monkeypatch, packed, tmp_path):
    donor_cfg = {**TINY, "family": "beta_vae", "value": 4.0, "eval_at_start": False,
                 "perturbable": True, "seeds": [11, 12]}
    donor = run_fake(monkeypatch, donor_cfg, packed, tmp_path / "a", trial_id="donor")
    mine = {**donor_cfg, "value": 5.0, "seeds": [21, 22]}
    clone = run_fake(monkeypatch, mine, packed, tmp_path / "b", resume_from=donor.saved[0],
                     trial_id="me")
    first = clone.reports[0]
    assert (first["step"], first["value"], first["seeds"]) == (6, 5.0, [21, 22])
    assert (first["cloned_from"], first["cloned_at"]) == ("donor", 4)
    assert torch.load(clone.saved[-1] / checkpoint.FILE, weights_only=True)["trial_id"] == "me"
    # the same restore within one trial (a resume) is no clone: the streams continue
    again = run_fake(monkeypatch, {**donor_cfg, "value": 5.0}, packed, tmp_path / "c",
                     resume_from=donor.saved[0], trial_id="donor")
    assert "cloned_from" not in again.reports[0]
    assert again.reports[-1]["member_loss"] != clone.reports[-1]["member_loss"]


def test_only_a_perturbable_trial_continues_with_another_value(monkeypatch, packed, tmp_path):
    config = {**TINY, "family": "beta_vae", "eval_at_start": False}
    first = run_fake(monkeypatch, config, packed, tmp_path / "a", trial_id="t")
    with pytest.raises(checkpoint.CheckpointError, match="value"):
        run_fake(monkeypatch, {**config, "value": 2.0}, packed, tmp_path / "b",
                 resume_from=first.saved[0], trial_id="t")
    with pytest.raises(checkpoint.CheckpointError, match="seeds"):  # not a clone: same trial
        run_fake(monkeypatch, {**config, "perturbable": True, "seeds": [5, 6]}, packed,
                 tmp_path / "c", resume_from=first.saved[0], trial_id="t")


def test_interim_evaluations_use_the_interim_settings(monkeypatch, packed, tmp_path):
    import trainables.trainable as module

    seen = []
    real = module.evaluate_pack

    def spy(model, data, split, cfg, step, diverged_at):
        seen.append((step, cfg.recon_eval_images))
        return real(model, data, split, cfg, step, diverged_at)

    monkeypatch.setattr(module, "evaluate_pack", spy)
    run_fake(monkeypatch, {**TINY, "eval_every": 2, "interim_recon_eval_images": 8}, packed,
             tmp_path)
    assert seen == [(0, 32), (2, 8), (4, 8), (6, 32)]


def test_evaluation_rows_with_higgins_and_a_diverged_member(packed):
    from trainables.evaluate import evaluate_pack, summarize
    from trainables.pack import PackTrainer

    cfg = TrainConfig.from_dict({**TINY, "replicates": 3, "metrics": ["higgins"],
                                 "higgins_votes": 60, "higgins_classifier_steps": 50})
    data = DSprites(packed)
    split = data.split(cfg.split_seed)
    trainer = PackTrainer(cfg, packed, split.train)
    rows = evaluate_pack(trainer.model, data, split, cfg, 0, [-1, 0, -1])
    assert [(r["replicate"], r["calculation"], r["diverged"]) for r in rows] == [
        (0, 0, False), (0, 1, False), (0, 2, False), (1, 0, True),
        (2, 0, False), (2, 1, False), (2, 2, False)]  # authors' protocol: 3 restarts
    assert rows[3]["disentanglement_5var"] is None and rows[3]["recon_test"] is None
    assert all(0 <= r["disentanglement_4var"] <= 1 for r in rows if not r["diverged"])
    means = summarize(rows)
    healthy = [r for r in rows if not r["diverged"]]
    assert means["disentanglement_5var"] == pytest.approx(
        np.mean([r["disentanglement_5var"] for r in healthy]))
    assert means["recon_test"] == pytest.approx(healthy[0]["recon_test"] / 2
                                                + healthy[-1]["recon_test"] / 2)


def test_read_only_packed_wraps_without_copy_or_warning(packed, recwarn):
    from trainables.pack import as_tensor

    tensor = as_tensor(DSprites(packed).packed)
    assert tensor.data_ptr() == packed.__array_interface__["data"][0]
    assert not [w for w in recwarn if "writable" in str(w.message)]


def test_gpu_assigned_but_invisible_falls_back_to_cpu_with_one_warning(monkeypatch):
    import ray

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [0])
    monkeypatch.setattr(trainable, "_warned_gpu", False)
    with pytest.warns(UserWarning, match="torch sees no CUDA device"):
        assert trainable.pick_device("auto") == torch.device("cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        assert trainable.pick_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="cuda"):
        trainable.pick_device("cuda")


# ---- one real Tune run ------------------------------------------------------------------
@pytest.mark.integration
def test_two_trials_through_ray_tune(packed, tmp_path, monkeypatch):
    import ray

    monkeypatch.setenv("RAY_CHDIR_TO_TRIAL_DIR", "0")
    started = not ray.is_initialized()  # another test module may hold a Ray session
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        space = {"trial": tune.grid_search([
            {**TINY, "family": "beta_vae", "value": 1.0},
            {**TINY, "family": "wae_gaussian", "value": 2.0},
        ])}
        tuner = tune.Tuner(
            tune.with_parameters(trainable.train_trial, packed=packed),
            param_space=space,
            run_config=tune.RunConfig(storage_path=str(tmp_path), name="two", verbose=0),
        )
        results = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    assert not results.errors
    assert len(results) == 2
    for result in results:
        assert result.metrics["step"] == 6 and result.metrics["n_diverged"] == 0
        assert REPORT_KEYS <= set(result.metrics)
        assert result.checkpoint is not None
        with result.checkpoint.as_directory() as folder:
            model, cfg = checkpoint.load_pack(folder)
        assert cfg.family == result.metrics["family"] and model.k == 2
        lines = [json.loads(line) for line in
                 (Path(result.path) / "result.json").read_text().splitlines()]
        assert [line["step"] for line in lines] == [0, 2, 4, 6]
        assert "evaluation" in lines[0] and "evaluation" in lines[-1]
