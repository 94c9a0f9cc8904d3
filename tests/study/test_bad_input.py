"""Bad input at the command line: exit 2, one line naming the problem, nothing created."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from study.cli import main
from tests.study.helpers import cli, finish


def bad_spec(tmp_path: Path, text: str) -> str:
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return str(path)


CASES = {
    "unknown-preset": (lambda t: ["run", "quik"], "neither a preset"),
    "missing-spec-file": (lambda t: ["run", str(t / "nope.toml")], "neither a preset"),
    "toml-syntax": (lambda t: ["run", bad_spec(t, "[study\n")], "not valid TOML"),
    "unknown-table": (lambda t: ["run", bad_spec(t, "[sutdy]\n")], "unknown table"),
    "unknown-key": (lambda t: ["run", bad_spec(t, "[train]\nstep = 3\n")],
                    "unknown key 'train.step'"),
    "wrong-type": (lambda t: ["run", bad_spec(t, "[study]\nreplicates = 'x'\n")],
                   "study.replicates has the wrong type"),
    "out-of-range": (lambda t: ["run", bad_spec(t, "[train]\nlatent_dim = 0\n")],
                     "latent_dim must be"),
    "empty-grid": (lambda t: ["run", bad_spec(t, "[grid]\nbeta_vae = []\n")], "is empty"),
    "unknown-family": (lambda t: ["run", bad_spec(t, "[study]\nfamilies = ['vae']\n")],
                       "unknown family"),
    "factor-vae-batch-too-small": (
        lambda t: ["run", "quick", "--set", "study.families=['factor_vae']", "--set",
                   "grid.factor_vae=[10]", "--set", "train.latent_dim=2", "--set",
                   "train.batch_size=16"],
        "factor_vae's shuffled codes would copy a real code whole too often"),
    "negative-grid-value": (lambda t: ["run", "quick", "--set", "grid.beta_vae=[-1]"],
                            "numbers >= 0"),
    "malformed-set": (lambda t: ["run", "quick", "--set", "steps"], "TABLE.KEY=VALUE"),
    "pbt-population-of-one": (lambda t: ["run", "quick-pbt", "--set", "pbt.population=1"],
                              "pbt.population must be >= 2"),
    "pbt-interval-off-checkpoints": (
        lambda t: ["run", "quick-pbt", "--set", "pbt.perturbation_interval=250"],
        "must be a multiple of train.checkpoint_every (200)"),
    "pbt-unknown-exploit": (lambda t: ["run", "quick-pbt", "--set", "pbt.exploit=best"],
                            "pbt.exploit must be one of scalar, pareto"),
    "pbt-with-a-searcher": (
        lambda t: ["run", "quick-pbt", "--set", "adaptive.sampler=nsga2"],
        "[adaptive] does not combine with study.search = 'pbt'"),
    "pbt-perturbable-set-by-hand": (
        lambda t: ["run", "quick", "--set", "train.perturbable=true"],
        "unknown key 'train.perturbable' (the study sets it per trial)"),
    "escaping-name": (lambda t: ["run", "quick", "--name", "../../etc"], "--name"),
    "name-with-space": (lambda t: ["run", "quick", "--name", "my study"], "--name"),
    "uri-storage-unreachable": (lambda t: ["run", "quick", "--storage", "s3://bucket/x"],
                                "cannot reach the storage at http://127.0.0.1:1"),
    "uri-unknown-scheme": (lambda t: ["run", "quick", "--storage", "foo://x/y"],
                           "no file system handles it"),
    "status-uri-unreachable": (lambda t: ["status", "s3://bucket/x/NAME"],
                               "cannot reach the storage"),
    "unwritable-storage": (lambda t: ["run", "quick", "--storage", "/proc/wae"],
                           "not writable"),
    "bad-address": (lambda t: ["run", "quick", "--address", "nonsense"], "HOST:PORT"),
    "dead-address": (lambda t: ["run", "quick", "--address", "127.0.0.1:1"],
                     "no Ray head answers"),
    "negative-gpus": (lambda t: ["run", "quick", "--gpus-per-trial", "-1"],
                      "gpus_per_trial must be >= 0"),
    "zero-cpus": (lambda t: ["run", "quick", "--cpus-per-trial", "0"],
                  "cpus_per_trial must be > 0"),
    "pbt-max-concurrent": (lambda t: ["run", "quick-pbt", "--max-concurrent", "3"],
                           "max_concurrent = 3 with PBT"),
    "comparison-pbt-max-concurrent": (lambda t: ["run", "search-compare-laptop", "--set",
                                                 "resources.max_concurrent=2"],
                                      "max_concurrent = 2 with PBT"),
    "bad-precision": (lambda t: ["run", "quick", "--set", "train.precision=fp8"],
                      "precision must be one of"),
    "missing-data": (lambda t: ["data", "verify", str(t / "none.h5")], "not found"),
    "data-extension": (lambda t: ["data", "verify", bad_spec(t, "x")], "extension"),
    "corrupt-data": (lambda t: ["data", "verify", str(_corrupt(t))], "truncated or corrupt"),
    "show-not-png": (lambda t: ["data", "show", str(t / "x.h5"), "--out", str(t / "a.jpg")],
                     "must end in .png"),
    "generate-unwritable": (lambda t: ["data", "generate", "--out", "/proc/x/d.h5"],
                            "cannot create folder"),
    "generate-wrong-suffix": (lambda t: ["data", "generate", "--out", str(t / "d.npz")],
                              "must end in .h5"),
    "resume-not-experiment": (lambda t: ["resume", str(t)], "not a wae-study experiment"),
    "status-missing": (lambda t: ["status", str(t / "nope")], "does not exist"),
    "report-not-experiment": (lambda t: ["report", str(t)], "not a wae-study experiment"),
    "unknown-preset-show": (lambda t: ["presets", "--show", "nope"], "unknown preset"),
    "status-truncated-spec": (lambda t: ["status", str(_truncated(t))], "is not valid TOML"),
    "report-truncated-spec": (lambda t: ["report", str(_truncated(t))], "is not valid TOML"),
    "resume-truncated-spec": (lambda t: ["resume", str(_truncated(t))], "is not valid TOML"),
    # empty and blank values: each would otherwise silently mean a default (or '.', ' ')
    "empty-name": (lambda t: ["run", "quick", "--name", ""], "argument --name: empty value"),
    "blank-storage": (lambda t: ["run", "quick", "--storage", " "],
                      "argument --storage: empty value"),
    "empty-data": (lambda t: ["run", "quick", "--data", ""], "argument --data: empty value"),
    "empty-address": (lambda t: ["run", "quick", "--address", ""],
                      "argument --address: empty value"),
    "empty-resume-address": (lambda t: ["resume", str(t), "--address", ""],
                             "argument --address: empty value"),
    "empty-report-out": (lambda t: ["report", str(t), "--out", ""], "argument --out: empty"),
    "run-missing-data": (lambda t: ["run", "quick", "--data", str(t / "none.h5")],
                         "data file not found"),
    "run-data-extension": (lambda t: ["run", "quick", "--data", bad_spec(t, "x")],
                           "extension"),
    "empty-set-key": (lambda t: ["run", "quick", "--set", "=5"], "TABLE.KEY=VALUE"),
    "empty-set-table": (lambda t: ["run", "quick", "--set", ".steps=5"], "unknown table []"),
    "empty-spec-data-path": (lambda t: ["run", "quick", "--set", "train.data_path=''"],
                             "train.data_path is empty"),
    "blank-spec-text": (lambda t: ["run", "quick", "--set", "tracking.project=' '"],
                        "tracking.project is blank"),
    "not-a-number": (lambda t: ["run", "quick", "--cpus-per-trial", "abc"],
                     "argument --cpus-per-trial: invalid float value"),
    "nan-cpus": (lambda t: ["run", "quick", "--cpus-per-trial", "nan"],
                 "cpus_per_trial must be > 0 and finite"),
    "infinite-gpus": (lambda t: ["run", "quick", "--gpus-per-trial", "inf"],
                      "gpus_per_trial must be >= 0 and finite"),
    "missing-spec": (lambda t: ["run"], "the following arguments are required: SPEC"),
    # trackers: what MLflow or W&B would refuse once the study ran
    "tracking-empty-uri": (lambda t: ["run", "quick", "--tracking", "mlflow="], "names no URI"),
    "tracking-unknown-scheme": (lambda t: ["run", "quick", "--tracking", "mlflow=foo://x/y"],
                                "no tracking store for that scheme"),
    "tracking-file-store": (lambda t: ["run", "quick", "--tracking", f"mlflow={t / 'mlruns'}"],
                            "creates no file-based store"),
    "tracking-sqlite-unwritable": (
        lambda t: ["run", "quick", "--tracking", "mlflow=sqlite:////proc/wae/mlflow.db"],
        "tracking.uri's folder /proc/wae is not writable"),
    "tracking-server-down": (lambda t: ["run", "quick", "--tracking", "mlflow=http://127.0.0.1:1"],
                             "no MLflow server answers"),
    "comparison-tracking": (lambda t: ["run", "search-compare-laptop", "--tracking",
                                       "mlflow=foo://x/y"], "no tracking store for that scheme"),
    "comparison-cpus": (lambda t: ["run", "search-compare-laptop", "--cpus-per-trial", "0"],
                        "cpus_per_trial must be > 0"),
    "comparison-missing-data": (lambda t: ["run", "search-compare-laptop", "--data",
                                           str(t / "none.h5")], "data file not found"),
    "tracking-bad-wandb-project": (lambda t: ["run", "quick", "--tracking", "wandb=a/b"],
                                   "Invalid project name"),
}


def _truncated(tmp: Path) -> Path:
    """An experiment folder whose study.toml a crash cut mid-line."""
    experiment = tmp / "cut"
    experiment.mkdir(exist_ok=True)
    (experiment / "study.toml").write_text('[study]\nname = "cu')
    return experiment


def _corrupt(tmp: Path) -> Path:
    path = tmp / "corrupt.hdf5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    return path


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_with_one_line(case, tmp_path, capsys, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    storage = tmp_path / "storage"
    monkeypatch.setenv("WAE_STUDY_STORAGE", str(storage))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")  # refuses: the URI cases
    monkeypatch.setenv("WAE_STUDY_MIRROR", str(storage / "mirror"))
    for name in ("RAY_CHDIR_TO_TRIAL_DIR", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS",
                 "RAY_AIR_NEW_OUTPUT"):  # restored afterwards: the CLI sets them for Tune
        monkeypatch.delenv(name, raising=False)
    make_args, message = CASES[case]
    args = make_args(work)
    before = sorted(p.name for p in work.iterdir())
    start = time.monotonic()
    assert main(args) == 2
    assert time.monotonic() - start < 15
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert message in err and "Traceback" not in err
    assert not storage.exists()
    assert sorted(p.name for p in work.iterdir()) == before


def test_existing_experiment_name_is_refused(tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    assert main(["run", "quick", "--storage", str(tmp_path), "--name", "taken"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert list((tmp_path / "taken").iterdir()) == []


@pytest.mark.integration
def test_gpus_no_node_has_are_refused_at_once(tmp_path):
    """Ray starts locally, sees no GPU, and the run is refused before anything is written."""
    code, out, err = finish(cli("run", "quick", "--storage", str(tmp_path), "--gpus-per-trial",
                                "2"), timeout=120)
    assert code == 2, err
    assert "exceeds the most GPUs on any node" in err
    assert list(tmp_path.iterdir()) == []
