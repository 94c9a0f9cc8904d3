"""Provenance records and the report's first line (how far the models are from the seed's)."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest

from analysis import provenance
from analysis.caveats import training_caveat


def test_dataset_hash_is_cached_beside_the_file_and_renewed_when_it_changes(tmp_path):
    data = tmp_path / "dsprites.h5"
    data.write_bytes(b"abc" * 1000)
    first = provenance.dataset_fingerprint(data)
    assert first == {"path": str(data), "bytes": 3000,
                     "sha256": hashlib.sha256(b"abc" * 1000).hexdigest()}
    cache = tmp_path / "dsprites.h5.sha256.json"
    assert json.loads(cache.read_text())["sha256"] == first["sha256"]
    cached = json.loads(cache.read_text())
    cache.write_text(json.dumps({**cached, "sha256": "from-the-cache"}))
    assert provenance.dataset_fingerprint(data)["sha256"] == "from-the-cache"  # not re-read
    data.write_bytes(b"xyz" * 999)  # another size: the cache no longer applies
    assert provenance.dataset_fingerprint(data)["sha256"] == hashlib.sha256(
        b"xyz" * 999).hexdigest()


def test_runs_are_appended_and_the_footer_names_everything(tmp_path):
    data = tmp_path / "d.h5"
    data.write_bytes(b"0")
    provenance.record_run(tmp_path, "run", data)
    provenance.record_run(tmp_path, "resume", data)
    runs = provenance.read_runs(tmp_path)
    assert [r["command"] for r in runs] == ["run", "resume"]
    assert runs[0]["versions"]["torch"] and runs[0]["versions"]["python"]
    assert isinstance(runs[0]["driver_cpu_native_bf16"], list)
    auto = "auto: avx512_bf16 in the CPU flags and the probe ran bf16 at 40.0 and fp32 at 25.0"
    trials = [{"trial_id": "t0", "seeds": [11, 12], "devices": ["CPU: x"], "precision": "bf16",
               "precision_reason": auto},
              {"trial_id": "t1", "seeds": [13], "devices": ["CPU: x"], "precision": "bf16",
               "precision_reason": auto},
              {"trial_id": "t2", "seeds": [14], "devices": ["CPU: x"], "precision": "fp32",
               "precision_reason": "set in [train]"},
              {"trial_id": "old", "seeds": [15], "devices": ["CPU: x"], "precision": None}]
    origin = provenance.report_provenance(tmp_path, {"higgins_votes": 1000}, trials)
    lines = provenance.footer_lines(origin)
    text = "\n".join(lines)
    assert hashlib.sha256(b"0").hexdigest() in text and "torch" in text
    assert "higgins_votes = 1000" in text and "t0 member seeds: [11, 12]" in text
    assert "devices: CPU: x" in text
    assert f"training precision bf16 ({auto}): 2 trials (t0, t1)" in lines
    assert "training precision fp32 (set in [train]): 1 trial (t2)" in lines


def curve(trial: str, steps: list[int], recon: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"trial_id": trial, "step": steps, "recon": recon})


FLAT = curve("a", [15_000, 30_000, 45_000, 60_000], [50.0, 40.0, 39.9, 39.8])
FALLING = curve("a", [1000, 2000, 3000, 4000], [200.0, 150.0, 120.0, 100.0])


@pytest.mark.parametrize(("step", "width", "curves", "expected"), [
    (60_000, 1200, FLAT, None),
    (600, 128, FLAT, "Models trained 600 of the seed's 60,000 steps, with 128-unit layers "
                     "instead of the seed's 1200: a pipeline check, not a finding."),
    (4000, 1200, FALLING, "Models trained 4,000 of the seed's 60,000 steps, their training "
                          "reconstruction error still fell by 17% over the last 25% of "
                          "training (not converged): a shorter study than the seed's."),
])
def test_training_caveat(step, width, curves, expected):
    trials = pd.DataFrame({"evaluated_step": pd.array([step, None], dtype="Int64")})
    text = training_caveat(trials, curves, {"encoder_width": width, "decoder_width": width})
    if expected is None:
        assert text is None
    else:
        assert text.startswith(expected)


def test_training_caveat_names_a_cut_classifier_budget():
    trials = pd.DataFrame({"evaluated_step": pd.array([60_000], dtype="Int64")})
    cut = {"higgins_protocol": "authors", "higgins_classifier_steps": 10_000}
    assert training_caveat(trials, FLAT, cut).startswith(
        "The Higgins classifier trained 10,000 of the authors' 100,000 steps")
    assert training_caveat(trials, FLAT, {**cut, "higgins_classifier_steps": 100_000}) is None
    assert training_caveat(trials, FLAT, {**cut, "higgins_protocol": "heldout"}) is None
