"""`train_trial`: the Ray Tune function trainable. One trial = one pack.

    config ─> TrainConfig ─> PackTrainer on the device Ray assigned, in the precision
              `trainables.precision` chooses (`auto` probes the machine; a resume keeps it)
    resume from ray.tune.get_checkpoint() if there is one, else evaluate step 0 (baseline)
    loop: train_step; every report_every steps report; at eval steps add the evaluation;
          at checkpoint steps (and the end) report with a checkpoint folder holding pack.pt

Every report carries the latest evaluation's scalar means (NaN before the first) so that a
searcher or scheduler watching them always finds its metric (Tune checks every result);
`eval_step` says which step they belong to. Evaluations before the last step use the
config's `interim_*` settings (step 0, the chance baseline, and the last use the full ones).

Population-based training restarts a trial from another trial's checkpoint with a perturbed
`value` (a `perturbable` config): the first report after it names the donor (`cloned_from`,
`cloned_at`), and the members' batch and noise streams restart from their own seeds.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
from ray import tune

from trainables import checkpoint, data, experiment
from trainables.allocator import reuse_freed_memory
from trainables.columns import scores, validation_scores
from trainables.config import RUN_FIELDS, TrainConfig, trial_settings
from trainables.evaluate import evaluate_pack, summarize
from trainables.hardware import device_name
from trainables.pack import PackTrainer
from trainables.precision import PrecisionChoice, Probe, choose_precision, probe_rates
from trainables.result_line import ResultLine


def train_trial(config: dict, packed: np.ndarray | None = None,
                experiment_dir: str | None = None, painting: np.ndarray | None = None) -> None:
    """Train, evaluate, report and checkpoint one pack inside a Tune trial.

    `config` holds TrainConfig fields under "trial" (`trainables.config.trial_settings`);
    `packed` is the dataset's stored array from the object store (dSprites' packed bits;
    None: load `data_path`);
    `experiment_dir` is the experiment's folder (None on object storage), which holds this
    trial's folder under the name of its working directory (Tune names both alike);
    `painting` is scream_dsprites' painting from the object store (`data.painting_of`).
    """
    cfg = trial_config(config)
    device = pick_device(cfg.device)
    if device.type == "cpu":
        reuse_freed_memory()  # this process is the trial's own: no page faults per step
    dataset = (data.wrap(packed, cfg.dataset, painting) if packed is not None
               else data.load(cfg.data_path, dataset=cfg.dataset))
    split = dataset.split(cfg.split_seed, cfg.test_fraction, cfg.validation_fraction or 0.0)
    context = tune.get_context()
    trial_id = context.get_trial_id()
    own = Path(experiment_dir) / Path(context.get_trial_dir()).name if experiment_dir else None
    payload = restorable_payload(tune.get_checkpoint(), own, trial_id, cfg.steps)
    donor = payload.get("trial_id") if payload is not None else None
    cloned = donor is not None and trial_id is not None and donor != trial_id
    if payload is not None and not cloned and cfg.perturbable:
        # its own checkpoint: the value it trained with, though Tune's saved state may lag
        cfg = dataclasses.replace(cfg, value=payload["config"]["value"])
    choice = trial_precision(cfg, payload, device, probe_rates(
        dataset.stored, split.train, device, dataset=dataset.dataset))
    trainer = PackTrainer(dataclasses.replace(cfg, precision=choice.precision), dataset.stored,
                          split.train, device, dataset.dataset)
    measured = (*scores(cfg.dataset), *(validation_scores(cfg.dataset) if cfg.validates else ()))
    last_eval: dict[str, Any] = {**dict.fromkeys(measured, math.nan), "eval_step": -1}
    node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"
    hardware = device_name(device)
    once: dict[str, Any] = {}  # for the next report only: a PBT clone, a restored evaluation

    def report(evaluate: bool, save: bool) -> None:
        nonlocal last_eval
        progress = trainer.read_report()
        rows = once.pop("evaluation", None)
        if evaluate:
            full = trainer.step in (0, cfg.steps)
            rows = evaluate_pack(trainer.model, dataset, split, cfg if full else cfg.interim(),
                                 trainer.step, progress["diverged_at"])
            last_eval = {**summarize(rows), "eval_step": trainer.step}
        line = ResultLine(
            **progress, family=cfg.family, param=cfg.param, value=cfg.value,
            seeds=cfg.member_seeds, node_id=node_id, device=str(device), device_name=hardware,
            precision=choice.precision, precision_reason=choice.reason,
            scores={k: v for k, v in last_eval.items() if k != "eval_step"},
            eval_step=last_eval["eval_step"], evaluation=rows, **once)
        once.clear()
        result = line.to_report()
        if not save:
            tune.report(result)
            return
        weights_only = trainer.step >= cfg.steps and not cfg.keep_optimizer_state
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint.save(tmp, {"config": cfg.to_dict(), "step": trainer.step,
                                  "trial_id": trial_id, "precision": choice.precision,
                                  "split_seed": cfg.split_seed,
                                  "diverged_at": result["diverged_at"],
                                  "trainer": trainer.state_dict(weights_only=weights_only),
                                  "rng": checkpoint.rng_state(), "last_eval": last_eval,
                                  "evaluation": line.evaluation})
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(tmp))

    if payload is not None:
        _check_resumable(cfg, payload["config"], cloned)  # same steps: weights-only is final
        trainer.load_state_dict(payload["trainer"])
        if cloned:
            trainer.restart_streams()
            once.update(cloned_from=donor, cloned_at=trainer.step)
        checkpoint.set_rng_state(payload["rng"])
        last_eval = payload["last_eval"]
    elif cfg.eval_at_start:
        report(evaluate=True, save=False)

    if trainer.step >= cfg.steps:  # restored from the final checkpoint: report it again, with
        if payload.get("evaluation"):  # its evaluation (the driver may have lost that report)
            once["evaluation"] = payload["evaluation"]
        report(evaluate=False, save=False)
    while trainer.step < cfg.steps:
        trainer.train_step()
        step, final = trainer.step, trainer.step == cfg.steps
        evaluate = final or (cfg.eval_every > 0 and step % cfg.eval_every == 0)
        save = final or (cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0)
        if evaluate or save or step % cfg.report_every == 0:
            report(evaluate, save)


def trial_precision(cfg: TrainConfig, payload: dict | None, device: torch.device,
                    probe: Probe) -> PrecisionChoice:
    """The precision this trial trains in, said once in its output: the one its checkpoint
    was trained in when it resumes (a trajectory never switches precision), else
    `choose_precision`'s (`auto` probes the machine)."""
    saved = payload.get("precision") if payload is not None else None
    if cfg.precision == "auto" and saved in ("fp32", "bf16"):
        choice = PrecisionChoice(saved, f"auto: kept from the checkpoint at step "
                                        f"{payload['step']}")
    else:
        choice = choose_precision(cfg, device, probe)
    print(f"training precision: {choice.precision} ({choice.reason})", flush=True)
    return choice


def restorable_payload(saved: tune.Checkpoint | None, trial_dir: str | Path | None = None,
                       trial_id: str | None = None, steps: int | None = None) -> dict | None:
    """The checkpoint to continue from: Tune's latest, else the older ones beside it (the
    study keeps two). None when there is none, or none loads (the trial restarts); each
    fallback's reason is logged in the trial's output.

    Tune saves its experiment state only every so often, so a killed driver's state can lag
    the trial's own folder (`trial_dir`, on a file system): without a checkpoint from Tune, the
    folder's newest is used; with one, a newer one in the folder that is this trial's
    (`trial_id`) final checkpoint (at `steps`) is used, so a finished trial is not trained
    again. A checkpoint that was pruned when its trial finished names the final one kept in
    its place (`experiment.kept_instead`), which is then Tune's latest."""
    own = Path(trial_dir) if trial_dir is not None and Path(trial_dir).is_dir() else None
    if saved is None:
        if own is None:
            return None
        found = checkpoint.newest_loadable(own)
        _warn_skipped(found.skipped, latest=None)
        if found.payload is not None:
            warnings.warn(f"Tune recorded no checkpoint of this trial (its driver stopped before "
                          f"saving it): resuming from {found.path.name} in the trial's folder",
                          stacklevel=2)
        return found.payload
    local = saved.filesystem.type_name == "local"
    if local and own is not None and Path(saved.path).parent.resolve() == own.resolve():
        final = _own_final(own, Path(saved.path), trial_id, steps)
        if final is not None:
            return final
    kept = experiment.kept_instead(saved.path, saved.filesystem)
    if kept is not None:
        saved = tune.Checkpoint(kept, saved.filesystem)
    with saved.as_directory() as folder:
        latest = Path(folder)
        # on object storage `folder` is a temporary download: no older checkpoints beside it
        found = checkpoint.newest_loadable(latest.parent if local else None, latest=latest)
    _warn_skipped(found.skipped, latest)
    if found.payload is None:
        warnings.warn("no usable checkpoint: the trial restarts from step 0", stacklevel=2)
    elif found.path != latest:
        warnings.warn(f"resuming from the earlier checkpoint {found.path.name}", stacklevel=2)
    return found.payload


def _own_final(trial_dir: Path, latest: Path, trial_id: str | None,
               steps: int | None) -> dict | None:
    """The payload of the trial's final checkpoint when its folder holds one newer than
    Tune's `latest` (Tune's saved state lagged the trial's last report); else None."""
    newer = experiment.around(trial_dir, latest)[0]
    if not newer or steps is None:
        return None
    try:
        payload = checkpoint.load(newer[0])
    except checkpoint.CheckpointError:
        return None
    if payload.get("trial_id") != trial_id or payload.get("step", -1) < steps:
        return None
    warnings.warn(f"the trial had finished ({newer[0].name}) after the experiment state Tune "
                  f"saved (which names {latest.name}): it is not trained again", stacklevel=3)
    return payload


def _warn_skipped(skipped: list[tuple[Path, str]], latest: Path | None) -> None:
    """Say in the trial's output why each newer checkpoint was passed over."""
    for path, reason in skipped:
        which = "latest checkpoint" if path == latest else "checkpoint"
        warnings.warn(f"{which} unusable: {reason}", stacklevel=3)


def trial_config(config: dict) -> TrainConfig:
    """The trial's TrainConfig: grid fields nested under "trial", searcher fields on top."""
    return TrainConfig.from_dict(trial_settings(config))


_warned_gpu = False


def pick_device(spec: str) -> torch.device:
    """'auto': the GPU Ray assigned (CUDA_VISIBLE_DEVICES makes it cuda:0) or the CPU;
    when Ray assigned a GPU that torch cannot see, warn once and use the CPU."""
    global _warned_gpu
    if spec != "auto":
        if spec.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device={spec!r} but torch sees no CUDA device: use 'auto' or "
                             "'cpu', or install a CUDA build of torch")
        return torch.device(spec)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if ray.is_initialized() and ray.get_gpu_ids() and not _warned_gpu:
        _warned_gpu = True
        warnings.warn(f"Ray assigned GPU(s) {ray.get_gpu_ids()} but torch sees no CUDA device "
                      "(a CPU-only torch build?): training on the CPU", stacklevel=2)
    return torch.device("cpu")


def _check_resumable(cfg: TrainConfig, saved: dict, cloned: bool = False) -> None:
    """A checkpoint continues only the same trajectory; run-only fields may change, `value`
    when PBT may perturb it, and the members' seeds when PBT cloned another trial. Both
    configs are compared as TrainConfig reads them, so a checkpoint written before a field
    existed (`TrainConfig.from_saved`: its legacy value or default) continues."""
    then = TrainConfig.from_saved(saved).to_dict()
    current = cfg.to_dict()
    free = RUN_FIELDS | ({"value"} if cfg.perturbable else set()) | \
        ({"seeds", "seed"} if cloned else set())
    changed = sorted(k for k in current if k not in free and then[k] != current[k])
    if changed:
        raise checkpoint.CheckpointError(
            f"checkpoint was written with different {', '.join(changed)} "
            f"({[then[k] for k in changed]} vs {[current[k] for k in changed]}): resume "
            "with the original trial config or start the trial afresh")
