"""`trainables.result_line`: the one definition of a report, written by the trainable and
read by results, progress and status."""

from __future__ import annotations

import json
import math

from trainables.columns import SCORES
from trainables.result_line import ResultLine

LINE = ResultLine(step=250, family="wae_gaussian", param="lambda1", value=2.0, loss=130.5,
                  recon=120.25, member_loss=[130.0, 131.0], diverged_at=[-1, 200],
                  n_diverged=1, seeds=[11, 12], node_id="n", device="cpu",
                  device_name="CPU: x", scores={**dict.fromkeys(SCORES, 0.5), "mig": 0.25},
                  eval_step=250, evaluation=[{"replicate": 0, "calculation": 0}],
                  cloned_from="abcde_00001", cloned_at=200)


def test_a_report_reads_back_as_written_with_tunes_own_keys():
    # as result.json holds it: the report, through JSON, with what Tune adds
    written = json.loads(json.dumps({**LINE.to_report(), "trial_id": "abcde_00000",
                                     "time_total_s": 12.5, "timestamp": 1.7e9, "pid": 3}))
    assert written["disentanglement_5var"] == 0.5 and written["mig"] == 0.25  # flat scores
    read = ResultLine.read(written)
    assert read == ResultLine(**{**LINE.__dict__, "trial_id": "abcde_00000",
                                 "time_total_s": 12.5, "timestamp": 1.7e9})


def test_what_a_report_says_once_is_absent_otherwise():
    plain = ResultLine(step=10).to_report()
    assert not {"evaluation", "cloned_from", "cloned_at"} & set(plain)
    assert ResultLine.read(plain).evaluation is None


def test_older_and_damaged_lines_read_with_gaps_filled():
    read = ResultLine.read({"step": 5.0, "loss": "x", "diverged_at": None, "seeds": "?",
                            "evaluation": [{"replicate": 0}, 3], "disentanglement_5var": None})
    assert read.step == 5 and math.isnan(read.loss) and read.diverged_at == []
    assert read.seeds is None and read.evaluation == [{"replicate": 0}]
    assert math.isnan(read.score("disentanglement_5var")) and read.eval_step == -1
    assert ResultLine.read({"loss": 1.0}) is None  # no step: not a report
    assert ResultLine.read({"step": True}) is None
