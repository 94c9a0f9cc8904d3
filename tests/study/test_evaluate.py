"""`wae-study evaluate`: re-scoring the final checkpoints of a study with extra metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from analysis.results import load_results
from study import spec
from study.cli import main
from study.evaluate_command import evaluate_experiment
from trainables import checkpoint
from trainables import data as dsdata
from trainables.config import TrainConfig
from trainables.evaluate import evaluate_pack
from trainables.experiment import EXTRA_FILE, write_checkpoint_step
from trainables.pack import PackTrainer

TINY = {"replicates": 2, "steps": 4, "batch_size": 8, "latent_dim": 3, "encoder_width": 8,
        "decoder_width": 8, "metrics": [], "recon_eval_images": 16, "device": "cpu",
        "higgins_votes": 50}


@pytest.fixture(scope="module")
def dataset(random_packed) -> dsdata.DSprites:
    return dsdata.DSprites(random_packed)


# the real CLI, Ray and a study; one torch thread
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]


def write_trial(exp: Path, index: int, family: str, dataset, *, done: int, diverged=(-1, -1),
                corrupt_newest: bool = False) -> Path:
    """A trial folder as the trainable leaves it, trained for `done` of TINY's steps."""
    cfg = TrainConfig.from_dict({**TINY, "family": family, "value": 1.0, "seed": 10 * index})
    trial = exp / f"train_trial_ab12c_{index:05d}_{index}_family={family}"
    trial.mkdir()
    (trial / "params.json").write_text(json.dumps({"trial": cfg.to_dict()}))
    split = dataset.split(cfg.split_seed)
    trainer = PackTrainer(cfg, dataset.packed, split.train)
    for _ in range(done):
        trainer.train_step()
    state = trainer.state_dict()
    state["diverged_at"] = torch.tensor(diverged)
    checkpoint.save(trial / "checkpoint_000000", {
        "config": cfg.to_dict(), "step": done, "split_seed": cfg.split_seed,
        "diverged_at": list(diverged), "trainer": state, "rng": checkpoint.rng_state(),
        "last_eval": {}})
    if corrupt_newest:
        (trial / "checkpoint_000001").mkdir()
        (trial / "checkpoint_000001" / checkpoint.FILE).write_bytes(b"truncated")
        write_checkpoint_step(trial / "checkpoint_000001", done)  # the newer of the two
    line = {"trial_id": f"ab12c_{index:05d}", "step": done, "done": done == cfg.steps,
            "family": cfg.family, "param": cfg.param, "value": cfg.value,
            "diverged_at": list(diverged), "loss": 1.0, "recon": 1.0}
    if done == cfg.steps:
        line["evaluation"] = evaluate_pack(trainer.model, dataset, split, cfg, done,
                                           list(diverged))
    (trial / "result.json").write_text(json.dumps(line) + "\n")
    return trial


@pytest.fixture
def experiment(tmp_path, dataset) -> Path:
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "study.toml").write_text(spec.dumps(spec.load("quick")))
    write_trial(exp, 0, "beta_vae", dataset, done=4, diverged=(-1, 3), corrupt_newest=True)
    write_trial(exp, 1, "wae_uniform", dataset, done=4)
    write_trial(exp, 2, "wae_gaussian", dataset, done=2)  # unfinished: skipped
    return exp


def extra_rows(exp: Path) -> dict[str, list[dict]]:
    return {p.parent.name.split("_")[3]: json.loads(p.read_text())
            for p in sorted(exp.glob(f"*/{EXTRA_FILE}"))}


def test_evaluate_scores_merges_and_reports(experiment, dataset, monkeypatch, capsys):
    monkeypatch.setattr(dsdata, "load", lambda path=None, **_: dataset)
    code = main(["evaluate", str(experiment), "--metrics", "mig", "--data", "x.h5"])
    out, err = capsys.readouterr()
    assert code == 0
    assert out.strip().splitlines()[-1] == str(experiment / "report" / "index.html")
    answer = json.loads((experiment / "report" / "summary.json").read_text())["answer_lines"]
    assert out.strip().splitlines()[-3:-1] == list(answer.values())  # one line per task
    assert "00002" in err and "not finished" in err and "corrupt" in err

    rows = extra_rows(experiment)
    assert sorted(rows) == ["00000", "00001"]
    assert [(r["replicate"], r["seed"], r["step"]) for r in rows["00000"]] == [
        (0, 0, 4), (1, 1, 4)]
    assert 0 <= rows["00000"][0]["mig"] <= 1 and rows["00000"][1]["mig"] is None  # diverged
    first_mig = rows["00001"][0]["mig"]

    # re-running with another metric adds its column and keeps the first; same seed, same score
    evaluate_experiment(experiment, ["sap", "mig"], dataset)
    rows = extra_rows(experiment)
    assert set(rows["00001"][0]) == {"replicate", "seed", "step", "calculation", "mig", "sap"}
    assert rows["00001"][0]["mig"] == first_mig

    results = load_results(experiment).results
    assert len(results) == 4  # the unfinished trial has no final rows
    for col in ("mig", "sap"):
        healthy = results[~results["diverged"]]
        assert healthy[col].notna().all()
        assert results[results["diverged"]][col].isna().all()
    trial1 = results[results["trial_id"] == "ab12c_00001"].set_index("replicate")
    assert trial1.loc[0, "mig"] == pytest.approx(first_mig)
    csv = pd.read_csv(experiment / "report" / "results.csv")
    assert {"mig", "sap"} <= set(csv.columns)
    assert math.isclose(csv["mig"].max(), results["mig"].max())


def test_higgins_is_re_scored_at_another_classifier_budget(experiment, dataset):
    """A study trained with a cut classifier re-scored with more classifier steps: the
    columns name the budget, beside the study's own Higgins scores."""
    evaluate_experiment(experiment, ["higgins"], dataset, classifier_steps=30)
    evaluate_experiment(experiment, ["higgins"], dataset, classifier_steps=60)
    row = extra_rows(experiment)["00001"][0]
    for task in ("4var", "5var"):
        for steps in (30, 60):
            assert 0 <= row[f"disentanglement_{task}_c{steps}"] <= 1
    results = load_results(experiment).results
    assert {"disentanglement_5var_c30", "disentanglement_5var_c60"} <= set(results.columns)


@pytest.mark.parametrize("args, message", [
    (lambda exp: ["evaluate", str(exp), "--metrics", "mig,bogus"],
     "unknown metric 'bogus' in --metrics; valid: higgins, mig, factorvae, dci, sap"),
    (lambda exp: ["evaluate", str(exp), "--metrics", "higgins", "--classifier-steps", "0"],
     "--classifier-steps must be >= 1"),
    (lambda exp: ["evaluate", str(exp), "--metrics", " , "], "--metrics is empty"),
    (lambda exp: ["evaluate", str(exp.parent), "--metrics", "mig"], "no study.toml"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, args, message):
    exp = tmp_path / "exp"
    (exp / "trial_a").mkdir(parents=True)
    (exp / "study.toml").write_text("")
    (exp / "trial_a" / "params.json").write_text("{}")
    before = sorted(tmp_path.rglob("*"))
    assert main(args(exp)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert sorted(tmp_path.rglob("*")) == before


def test_the_report_reads_higgins_at_the_re_scored_budget(experiment, dataset):
    """Once every model is re-scored at more classifier steps than the study trained with,
    the report's Higgins scores are those, per calculation, and the trained ones are kept."""
    study = spec.load("quick")
    study["train"]["higgins_classifier_steps"] = 20
    (experiment / "study.toml").write_text(spec.dumps(study))
    before = load_results(experiment)
    assert before.higgins_rescored_at is None
    evaluate_experiment(experiment, ["higgins"], dataset, classifier_steps=60)
    rows = extra_rows(experiment)["00001"]
    assert [(r["replicate"], r["calculation"]) for r in rows] == [
        (m, c) for m in range(2) for c in range(3)]  # the authors' 3 restarts, kept apart
    after = load_results(experiment)
    assert after.higgins_rescored_at == 60
    table = after.results.set_index(["trial_id", "replicate", "calculation"])
    for task in ("4var", "5var"):
        assert table[f"disentanglement_{task}"].equals(table[f"disentanglement_{task}_c60"])
        assert table[f"disentanglement_{task}_c20"].equals(
            before.results.set_index(table.index.names)[f"disentanglement_{task}"])
    assert table["disentanglement_5var"].notna().sum() == 3  # the healthy members
    summary = json.loads((experiment / "report" / "summary.json").read_text())
    assert summary["higgins_classifier_steps"] == 60
