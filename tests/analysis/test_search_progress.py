"""Comparing two studies' fronts in one box, and the search-progress tables (closed form)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import figures, search_progress
from analysis.box import Box
from analysis.comparison import compare
from analysis.pareto import hypervolume
from analysis.report import write_report
from analysis.results import load_results
from tests.analysis.fixtures import make_experiment


def test_two_studies_share_one_box_and_keep_their_order(tmp_path):
    this = load_results(make_experiment(tmp_path, "this"))
    worse = load_results(make_experiment(tmp_path, "worse"))
    worse.results["disentanglement_5var"] -= 0.2  # the same models, every score lower
    worse.results["disentanglement_4var"] -= 0.2
    found = compare(this, worse)
    assert found.box == Box.from_spec(this.spec) and found.same_box
    hv = found.hypervolumes["5var"].set_index("front")["mean_norm"]
    for family in ("beta_vae", "wae_gaussian", "wae_uniform"):
        assert hv[f"{family} · this"] > hv[f"{family} · worse"]
    assert set(found.fronts["5var"]["front"]) == set(hv.index)


def test_a_report_beside_another_study(tmp_path):
    exp = make_experiment(tmp_path, "this")
    other = make_experiment(tmp_path, "other")
    out = write_report(exp, compare_with=other)
    assert (out / "compared_fronts_5var.png").exists()
    compared = pd.read_csv(out / "compared_pareto_5var.csv")
    assert {f.split(" · ")[1] for f in compared["front"]} == {"this", "other"}
    assert "## Beside other" in (out / "report.md").read_text()


def curves(rows: list[tuple]) -> pd.DataFrame:
    """Report lines (trial, step, eval_step, 5-var, recon, value, cloned_from, cloned_at)."""
    return pd.DataFrame(rows, columns=["trial_id", "step", "eval_step", "disentanglement_5var",
                                       "recon_test", "value", "cloned_from", "cloned_at"]
                        ).assign(family="wae_gaussian", timestamp=np.nan)


def test_pbt_progress_is_the_hypervolume_of_each_evaluation_step():
    table = curves([
        ("a", 10, 10, 0.5, 50.0, 1.0, None, np.nan), ("b", 10, 10, 0.8, 100.0, 2.0, None, np.nan),
        ("a", 15, 10, 0.5, 50.0, 1.0, None, np.nan),  # carries step 10's evaluation: skipped
        ("a", 20, 20, 0.9, 50.0, 2.5, "b", 10.0), ("b", 20, 20, 0.6, 80.0, 2.0, None, np.nan),
    ])
    progress = search_progress.pbt_progress(table, Box(200.0, 0.0), "5var")
    assert list(progress["x"]) == [10, 20]
    # step 10: 0.5 over [50, 100), 0.8 over [100, 200] → 25 + 80; step 20: 0.9 over [50, 200]
    assert list(progress["hypervolume"]) == pytest.approx([105.0, 135.0])
    assert list(progress["hypervolume_norm"]) == pytest.approx([105 / 200, 135 / 200])
    clones = search_progress.clones(table)
    assert clones.to_dict("records") == [{"trial_id": "a", "family": "wae_gaussian",
                                          "cloned_at": 10, "value": 2.5, "cloned_from": "b"}]
    scores = search_progress.final_objective(table, {"objective": "weighted",
                                                     "max_recon_test": 150.0,
                                                     "recon_scale": 100.0}, "5var")
    assert scores == pytest.approx({"a": 0.9 - 0.5, "b": 0.6 - 0.8})


def test_trial_progress_adds_trials_in_the_order_they_finished(tmp_path):
    study = load_results(make_experiment(tmp_path, "s"))
    curves_ = study.curves.copy()
    finished = list(study.trials[study.trials["finished"]]["trial_id"])
    order = finished[::-1]
    curves_["timestamp"] = curves_["trial_id"].map({t: i for i, t in enumerate(order)})
    box = Box(200.0)
    progress = search_progress.trial_progress(study.results, study.trials, curves_, box, "5var")
    assert list(progress["x"]) == list(range(1, len(finished) + 1))

    def after_each(trials: list[str]) -> list[float]:
        rows = study.results[~study.results["diverged"]]
        return [hypervolume(*rows[rows["trial_id"].isin(trials[:n])][
            ["disentanglement_5var", "recon_test"]].to_numpy().T, 200.0, box.floor("5var"))
            for n in range(1, len(trials) + 1)]

    assert list(progress["hypervolume"]) == pytest.approx(after_each(order))
    assert after_each(order) != pytest.approx(after_each(finished))  # the order matters here


def test_rank_labels_read_pbt_state():
    state = {"trials": {"a": {"rank": {"front": 2, "position": 1}}, "b": {"rank": {"position": 3}},
                        "c": {"rank": None}, "d": {}}}  # d: saved before ranks were
    assert search_progress.rank_labels(state) == {"a": "F2 #1", "b": "#3"}
    assert search_progress.rank_labels({}) == {}


def test_the_schedules_figure_ends_each_ranked_line_in_its_rank(tmp_path, monkeypatch):
    table = curves([
        ("a", 10, 10, 0.5, 50.0, 1.0, None, np.nan), ("b", 10, 10, 0.8, 100.0, 2.0, None, np.nan),
        ("a", 20, 20, 0.9, 50.0, 2.5, "b", 10.0), ("b", 20, 20, 0.6, 80.0, 2.0, None, np.nan),
    ])
    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.append(fig) or path)
    figures.pbt_schedules(search_progress.schedules(table), {}, {"a": "F1 #2"},
                          tmp_path / "schedules.png")
    (ax,) = [ax for ax in drawn[0].axes if ax.texts]
    assert [(text.get_text(), tuple(map(float, text.xy))) for text in ax.texts] == [
        ("F1 #2", (20.0, 2.5))]  # at the end of a's line: its last step and value
