"""`precision = "auto"`: CPU flags read from a stand-in /proc/cpuinfo, the probe's choice, the
trial keeping its choice across a resume, and the choice in the trial's reports."""

from __future__ import annotations

import pytest
import torch

from tests.trainables.test_trainable import TINY, run_fake
from trainables import checkpoint, trainable
from trainables.config import TrainConfig
from trainables.hardware import cpu_flags, native_bf16
from trainables.pack import PackTrainer
from trainables.precision import PROBE_MARGIN, choose_precision, probe_rates

pytestmark = pytest.mark.usefixtures("one_torch_thread")

AVX2 = "fpu sse sse2 avx avx2 fma"
CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: {flags}
bogomips\t: 4800.00

processor\t: 1
flags\t\t: {flags}
"""


def stand_in(tmp_path, flags: str):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO.format(flags=flags))
    return path


@pytest.mark.parametrize(("flags", "native"), [
    (AVX2, []),
    (f"{AVX2} avx512f avx512_bf16", ["avx512_bf16"]),
    (f"{AVX2} amx_bf16 amx_tile avx512_bf16", ["avx512_bf16", "amx_bf16"]),
    (f"{AVX2} avx512_bf16x", []),  # whole flags only
])
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path, flags, native):
    assert native_bf16(cpu_flags(stand_in(tmp_path, flags))) == native


def test_unreadable_or_flagless_cpuinfo_has_no_flags(tmp_path):
    assert cpu_flags(tmp_path / "missing") == set()
    (tmp_path / "bare").write_text("processor\t: 0\n")
    assert cpu_flags(tmp_path / "bare") == set()


def never(cfg):
    raise AssertionError("the probe ran where the flags or the setting decide")


def rates(bf16: float, fp32: float):
    return lambda cfg: {"bf16": bf16, "fp32": fp32}


CPU = torch.device("cpu")


@pytest.mark.parametrize(("setting", "device", "flags", "probe", "chosen", "says"), [
    ("bf16", CPU, AVX2, never, "bf16", "set in [train]"),
    ("fp32", CPU, "avx512_bf16", never, "fp32", "set in [train]"),
    ("auto", CPU, AVX2, never, "fp32", "no native bf16"),
    ("auto", torch.device("cuda"), "avx512_bf16", never, "fp32", "auto on CUDA"),
    ("auto", CPU, "avx512_bf16", rates(bf16=40.0, fp32=25.0), "bf16",
     "avx512_bf16 in the CPU flags and the probe ran bf16 at 40.0 and fp32 at 25.0"),
    ("auto", CPU, "amx_bf16", rates(bf16=26.0, fp32=25.0), "fp32", "bf16 must be 1.1x faster"),
    ("auto", CPU, "avx512_bf16", rates(bf16=PROBE_MARGIN * 25.0, fp32=25.0), "bf16", "probe"),
])
def test_auto_takes_bf16_only_with_native_bf16_and_a_faster_probe(tmp_path, setting, device,
                                                                  flags, probe, chosen, says):
    cfg = TrainConfig(precision=setting)
    choice = choose_precision(cfg, device, probe, cpuinfo=stand_in(tmp_path, flags),
                              cache_dir=tmp_path)
    assert choice.precision == chosen
    assert says in choice.reason


def test_the_probe_runs_once_per_machine_and_step_shape(tmp_path):
    """Later trials of the shape (any family) take the first one's measurement, so a study's
    trials on one machine choose alike; another shape is probed anew, and so is FactorVAE's
    step with its discriminators."""
    cpuinfo = stand_in(tmp_path, "avx512_bf16")
    first = choose_precision(TrainConfig(precision="auto"), CPU, rates(bf16=40.0, fp32=25.0),
                             cpuinfo, tmp_path)
    assert first.precision == "bf16" and "measured now" in first.reason
    again = choose_precision(TrainConfig(precision="auto", family="wae_gaussian"), CPU, never,
                             cpuinfo, tmp_path)
    assert again.precision == "bf16" and "measured on this machine at" in again.reason
    narrow = choose_precision(TrainConfig(precision="auto", encoder_width=64), CPU,
                              rates(bf16=20.0, fp32=25.0), cpuinfo, tmp_path)
    assert narrow.precision == "fp32" and "measured now" in narrow.reason
    factor = choose_precision(TrainConfig(precision="auto", family="factor_vae"), CPU,
                              rates(bf16=20.0, fp32=25.0), cpuinfo, tmp_path)
    assert factor.precision == "fp32" and "measured now" in factor.reason  # discriminators


def test_the_probe_times_the_trials_own_step_in_both_precisions(random_packed):
    cfg = TrainConfig.from_dict({**TINY, "precision": "auto"})
    measured = probe_rates(random_packed, torch.arange(64), CPU, rounds=2)(cfg)
    assert set(measured) == {"fp32", "bf16"} and min(measured.values()) > 0


def test_a_pack_refuses_an_unresolved_auto(random_packed):
    with pytest.raises(ValueError, match="choose_precision"):
        PackTrainer(TrainConfig.from_dict({**TINY, "precision": "auto"}), random_packed,
                    torch.arange(64))


def test_a_trial_reports_its_choice_and_a_resume_keeps_it(monkeypatch, random_packed, tmp_path):
    """The trial's reports and checkpoints carry the precision chosen; resumed from its
    checkpoint the trial trains on in that precision without probing again."""
    monkeypatch.setattr(trainable, "probe_rates",
                        lambda *args, **kwargs: rates(bf16=99.0, fp32=1.0))
    monkeypatch.setattr(trainable, "choose_precision", lambda cfg, device, probe: (
        choose_precision(cfg, device, probe, stand_in(tmp_path, "avx512_bf16"), tmp_path)))
    config = {**TINY, "precision": "auto", "eval_at_start": False}
    first = run_fake(monkeypatch, config, random_packed, tmp_path / "a")
    assert {r["precision"] for r in first.reports} == {"bf16"}
    assert "probe ran bf16 at 99.0" in first.reports[0]["precision_reason"]
    saved = torch.load(first.saved[0] / checkpoint.FILE, weights_only=True)
    assert saved["precision"] == "bf16" and saved["config"]["precision"] == "auto"

    monkeypatch.setattr(trainable, "probe_rates",
                        lambda *args, **kwargs: never)  # now fp32 would win
    resumed = run_fake(monkeypatch, config, random_packed, tmp_path / "b",
                       resume_from=first.saved[0])
    assert {r["precision"] for r in resumed.reports} == {"bf16"}
    assert resumed.reports[-1]["precision_reason"] == "auto: kept from the checkpoint at step 4"
