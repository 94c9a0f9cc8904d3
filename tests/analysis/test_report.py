"""The report folder from fixture experiments: files, escaping, offline HTML, figures, atomicity."""

from __future__ import annotations

import json
import re
import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from analysis import figures, models
from analysis.box import Box
from analysis.report import answer_lines, write_report
from analysis.results import RECON_MEAN, contract_columns, load_results
from analysis.summary import NO_RESULTS, analyse_task, answer, answer_line, correct
from study import spec
from study.cli import main
from tests.analysis.fixtures import NOSHAPE_SPEC, REPLICATES, make_experiment

CONTRACT_COLUMNS = contract_columns("dsprites")
CONTRACT_FILES = {
    "index.html", "report.md", "summary.json", "results.csv", "pareto_4var.csv",
    "pareto_5var.csv", "figure1_4var.png", "figure1_5var.png", "figure2_reconstructions.png",
}


class FakeData:
    """The two methods of ``trainables.data.DSprites`` the report uses, on 400 images."""

    def split(self, seed: int, test_fraction: float = 0.1):
        order = np.random.default_rng(seed).permutation(400)
        cut = int(400 * test_fraction)
        return SimpleNamespace(train=np.sort(order[cut:]), test=np.sort(order[:cut]))

    def images(self, indices):
        out = np.zeros((len(indices), 64, 64), dtype=np.uint8)
        for i, k in enumerate(np.asarray(indices)):
            out[i, 20 + k % 20 : 32 + k % 20, k % 48 : k % 48 + 12] = 1
        return out


class FakePack(torch.nn.Module):
    """PackModel's interface: encode (B, 4096) pixels → (mean, spread) (K, B, d); code (the
    metrics' codes: the mean, or mean + 1 as a stand-in box centre); decode (K, B, d) →
    logits."""

    def __init__(self, members: int, latent: int = 3) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.enc = torch.nn.Parameter(torch.randn(members, 4096, latent, generator=generator))
        self.dec = torch.nn.Parameter(torch.randn(members, latent, 4096, generator=generator))

    def encode(self, x):
        mean = torch.tanh(torch.matmul(x.float(), self.enc) / 20)
        return mean, torch.zeros_like(mean)

    def code(self, mean, spread, uniform_code="mu"):
        return mean + 1 if uniform_code == "centre" else mean

    def decode(self, z):
        return torch.bmm(z, self.dec)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return write_report(make_experiment(tmp_path_factory.mktemp("report")))


def test_every_contract_file_is_written(report):
    names = {p.name for p in report.iterdir()}
    assert CONTRACT_FILES | {"training_curves.png"} <= names
    assert not list(report.parent.glob(".report.*"))  # no temporary folder left behind


def test_csv_layouts(report):
    results = pd.read_csv(report / "results.csv")
    assert list(results.columns[: len(CONTRACT_COLUMNS)]) == list(CONTRACT_COLUMNS)
    assert results["diverged"].sum() == 3
    for task in ("4var", "5var"):
        front = pd.read_csv(report / f"pareto_{task}.csv")
        assert list(front.columns) == [*results.columns, "front"]
        assert set(front["front"]) == {"beta_vae", "wae_gaussian", "wae_uniform", "all"}
        assert not front["diverged"].any()


def test_html_is_offline_and_escaped(report):
    html = (report / "index.html").read_text(encoding="utf-8")
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"""(?:src|href)\s*=\s*["'](?!data:)""", html)
    assert html.count('src="data:image/png;base64,') >= 4
    assert "<script" not in html.lower() and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>bold</b>" not in html and "a &amp; b &lt;b&gt;bold&lt;/b&gt;" in html
    markdown = (report / "report.md").read_text(encoding="utf-8")
    assert "<script>alert" not in markdown.split("```")[0]  # escaped outside the spec block


def test_summary_answers_the_question(report):
    summary = json.loads((report / "summary.json").read_text())
    assert {"study", "answer", "counts", "headline", "hypervolume", "domination_share",
            "baseline", "diverged", "notes", "paper"} <= set(summary)
    assert summary["counts"] == {
        "trials": 8, "trials_finished": 6, "trials_evaluated": 6,
        "trials_unfinished_evaluated": 0, "models": 12, "healthy_models": 11, "rows": 36,
        "diverged_members": 1,
    }
    assert summary["hypervolume"]["box"]["recon_reference"] == 250.0  # the spec's default
    fronts = summary["hypervolume"]["5var"]["fronts"]
    assert fronts["wae_gaussian"]["mean_norm"] > fronts["beta_vae"]["mean_norm"]
    pairs = summary["hypervolume"]["5var"]["comparisons"]
    assert all(p["p_holm"] >= p["p_value"] for p in pairs)  # corrected over pairs × tasks
    assert "Holm over 6 tests" in summary["hypervolume"]["inference"]["correction"]
    assert summary["answer"]["5var"].startswith("5-variable task: wae_gaussian has the largest")
    # 2 replicates: no p below 2/6, so nothing survives Holm over 6 tests; the answer says so
    assert ("No difference can be called with 2 replicates: the permutation test cannot give "
            "p below 0.333 (1 after Holm's correction over 6 tests); 5 replicates per family "
            "are the fewest that can.") in summary["answer"]["5var"]
    assert "Figure 2" in " ".join(summary["notes"])  # skipped: no dataset given
    html = (report / "index.html").read_text(encoding="utf-8")
    assert html.index("4-variable task: wae_gaussian") < html.index("Headline numbers")
    # before any verdict: these models trained 200 steps (the fixture), no finding
    assert summary["caveat"].startswith("Models trained 200 of the seed's 60,000 steps")
    assert html.index("a pipeline check, not a finding") < html.index("4-variable task:")
    # the fixture's rows predate the sampled measure: the report says what recon_test is
    assert summary["recon_measure"] == RECON_MEAN
    assert "decode the posterior mean" in " ".join(summary["notes"])
    assert "Provenance" in html and summary["provenance"]["versions_now"]["torch"]


def test_answer_lines_head_the_report_and_summary(report):
    """2 replicates: no pair can be told apart; the line says so and names the fewest."""
    lines = json.loads((report / "summary.json").read_text())["answer_lines"]
    assert list(lines) == ["4var", "5var"]
    assert lines["5var"].startswith("5-var: wae_gaussian vs wae_uniform: not distinguishable "
                                    "with 2 replicates (+0.115 [-0.774, +1.004], Holm p = 1); "
                                    "wae_gaussian vs beta_vae: not distinguishable with 2 "
                                    "replicates (")
    assert lines["5var"].endswith("; 5 replicates per family are the fewest that can tell two "
                                  "apart")
    assert answer_lines(report) == [lines["4var"], lines["5var"]]
    for name in ("report.md", "index.html"):
        text = (report / name).read_text(encoding="utf-8")
        # after the caveat, before the detailed answers
        assert (text.index("a pipeline check, not a finding") < text.index(lines["4var"])
                < text.index(lines["5var"]) < text.index("4-variable task:")), name


def test_answer_line_states_a_verdict_with_its_interval_and_holm_p(tmp_path):
    """Six replicates (the fixture's two, thrice, 5-var shifted a little): every pair can be
    told apart, Holm over 3 tests of p = 2/924."""
    results = load_results(make_experiment(tmp_path)).results
    six = pd.concat([results.assign(replicate=results["replicate"] + REPLICATES * k,
                                    disentanglement_5var=results["disentanglement_5var"]
                                    + 0.001 * k) for k in range(3)], ignore_index=True)
    found = analyse_task(six, "5var", Box(250.0), paired=False)
    n_tests = correct({"5var": found})
    assert answer_line(found, n_tests) == (
        "5-var: wae_gaussian's front is larger than wae_uniform's by +0.115 [+0.034, +0.197], "
        "Holm p = 0.00649; wae_gaussian's front is larger than beta_vae's by +0.266 "
        "[+0.261, +0.272], Holm p = 0.00649")
    assert "wae_gaussian is better" in answer(found, n_tests)  # the same verdict in detail


def test_answer_line_with_one_family_has_nothing_to_compare(tmp_path):
    results = load_results(make_experiment(tmp_path)).results
    found = analyse_task(results[results["family"] == "beta_vae"], "4var", Box(250.0),
                         paired=False)
    n_tests = correct({"4var": found})
    assert answer_line(found, n_tests) == (
        "4-var: only beta_vae has evaluated models; nothing to compare yet.")


def test_one_replicate_per_value_has_no_interval(tmp_path):
    results = load_results(make_experiment(tmp_path)).results
    single = results[results["replicate"] == 0]
    found = analyse_task(single, "5var", Box(250.0), paired=False)
    correct({"5var": found})
    text = answer(found, 3)
    assert "no interval can be computed" in text
    assert "95 % CI" not in text and "is better" not in text
    line = answer_line(found, 3)
    assert line.startswith("5-var: wae_gaussian vs wae_uniform: +")
    assert line.endswith(", one replicate per value: no interval, no test")
    assert "[" not in line and "Holm" not in line and "fewest" not in line


def test_report_command_prints_the_answer_lines_before_the_path(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WAE_STUDY_DATA", str(tmp_path / "no-dataset.h5"))  # no Figure 2
    exp = make_experiment(tmp_path, spec=spec.dumps(spec.load("quick")))  # as `run` writes it
    assert main(["report", str(exp)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    lines = json.loads((exp / "report" / "summary.json").read_text())["answer_lines"]
    assert printed[-3:] == [lines["4var"], lines["5var"], str(exp / "report" / "index.html")]


def test_trials_in_mixed_precisions_are_named_in_a_note_and_the_footer(tmp_path):
    """`precision = auto` chooses per trial: a study whose trials differ says so."""
    exp = make_experiment(tmp_path)
    for i, trial in enumerate(sorted(exp.glob("ab12c_*"))[:6]):
        precision = ("bf16", "auto: avx512_bf16 in the CPU flags and ...") if i % 3 else \
            ("fp32", "auto: the CPU has no native bf16")
        lines = (trial / "result.json").read_text().splitlines()
        (trial / "result.json").write_text("".join(json.dumps(
            {**json.loads(line), "precision": precision[0], "precision_reason": precision[1]})
            + "\n" for line in lines))
    out = write_report(exp)
    notes = " ".join(json.loads((out / "summary.json").read_text())["notes"])
    assert "Trials trained in different precisions (bf16: 4, fp32: 2;" in notes
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "training precision fp32 (auto: the CPU has no native bf16): 2 trials" in html


def test_empty_study_still_gives_a_valid_report(tmp_path):
    exp = tmp_path / "empty"
    exp.mkdir()
    out = write_report(exp)
    assert CONTRACT_FILES <= {p.name for p in out.iterdir()}
    assert "No finished trials yet" in (out / "index.html").read_text(encoding="utf-8")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["rows"] == 0
    assert list(pd.read_csv(out / "results.csv").columns[:12]) == list(CONTRACT_COLUMNS)


def test_partial_study_without_any_evaluation(tmp_path):
    exp = make_experiment(tmp_path)
    for trial in sorted(exp.glob("ab12c_*"))[:6]:
        shutil.rmtree(trial)
    out = write_report(exp, tmp_path / "elsewhere")
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "No finished trials yet" in html and "Untrained baseline" in html
    assert answer_lines(out) == [f"4-var: {NO_RESULTS}", f"5-var: {NO_RESULTS}"]
    assert html.index(f"4-var: {NO_RESULTS}") < html.index("4-variable task:")


def test_figure2_and_traversals_with_loaded_models(tmp_path, monkeypatch):
    monkeypatch.setattr(
        models, "load_codec", lambda _dir, replicate: models.pack_codec(FakePack(2), replicate, 2)
    )
    exp = make_experiment(tmp_path)
    for trial in exp.glob("ab12c_*_wae_uniform_*"):  # fewer figures, faster test
        shutil.rmtree(trial)
    out = write_report(exp, data=FakeData())
    assert {p.name for p in out.glob("traversals_*.png")} == {
        "traversals_beta_vae.png", "traversals_wae_gaussian.png"
    }
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "Latent traversals of wae_gaussian" in html
    notes = json.loads((out / "summary.json").read_text())["notes"]
    assert not any("skipped" in note for note in notes)


def test_pack_codec_keeps_one_member():
    model = FakePack(3)
    codec = models.pack_codec(model, member=1, n_members=3)
    images = FakeData().images(np.arange(5))
    codes = codec.encode(images)
    x = torch.as_tensor(images.reshape(5, -1), dtype=torch.float32)
    expected = torch.tanh(x @ model.enc[1] / 20).detach().numpy()
    np.testing.assert_allclose(codes, expected, rtol=1e-5)
    centred = models.pack_codec(model, member=1, n_members=3, uniform_code="centre")
    np.testing.assert_allclose(centred.encode(images), expected + 1, rtol=1e-5)
    pictures = codec.decode(codes)
    assert pictures.shape == (5, 64, 64) and (pictures >= 0).all() and (pictures <= 1).all()
    traversal, labels = models.traversal(codec, images[0], images, steps=4)
    assert traversal.shape == (3, 4, 64, 64) and len(labels) == 3


def test_missing_checkpoints_then_a_failed_rewrite_leaves_the_old_report(tmp_path, monkeypatch):
    exp = make_experiment(tmp_path)
    out = write_report(exp, data=FakeData())
    notes = " ".join(json.loads((out / "summary.json").read_text())["notes"])
    assert "no checkpoint" in notes and "skipped" in notes  # a note, not a crash
    assert (out / "figure2_reconstructions.png").is_file()
    before = (out / "index.html").read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(figures, "figure1", broken)
    with pytest.raises(RuntimeError, match="boom"):
        write_report(exp)
    assert (out / "index.html").read_bytes() == before
    assert [p.name for p in exp.iterdir() if p.name.startswith(".report")] == []


def test_headline_table_shows_every_headline_field():
    """The report reads Headline's fields by name: each measured number lands in its cell, and
    a family without models above the 4-var threshold shows '–' there, not a stale value."""
    from analysis.aggregate import Headline
    from analysis.document import Table
    from analysis.report import _headline_blocks

    full = Headline(family="wae_gaussian", best_5var=0.912, best_5var_value=2.0,
                    best_5var_model_recon_test=81.25, best_5var_trial_id="t",
                    best_5var_replicate=1, best_5var_value_recon_test_mean=83.5,
                    best_5var_value_recon_test_std=4.25, recon_train_98_value=4.0,
                    recon_train_98_mean=40.5, recon_train_98_std=1.5,
                    recon_train_98_n_models=3, recon_train_98_lowest_model=39.75,
                    paper_best_5var=0.988, paper_best_5var_recon_test="94.0 ± 5.8",
                    paper_recon_train_98="40.8 ± 1.5")
    bare = Headline(family="factor_vae", best_5var=0.5, best_5var_value=10.0)
    table = next(b for b in _headline_blocks([full, bare], ("4var", "5var"))
                 if isinstance(b, Table)).frame
    assert table.iloc[0].tolist() == ["wae_gaussian", "0.912", "0.988", "2", "81.2",
                                      "83.5 ± 4.2", "94.0 ± 5.8", "40.5 ± 1.5", "4 (3)", "39.8",
                                      "40.8 ± 1.5"]
    assert table.iloc[1].tolist() == ["factor_vae", "0.500", "–", "10", "–", "–", "–", "–",
                                      "– (–)", "–", "–"]
    only_4var = next(b for b in _headline_blocks([full], ("4var",)) if isinstance(b, Table))
    assert only_4var.frame.iloc[0].tolist() == ["wae_gaussian", "40.5 ± 1.5", "4 (3)", "39.8",
                                                "40.8 ± 1.5"]  # no 5var task: no best 5-var


def test_a_study_with_one_task_reports_that_task_only(tmp_path):
    """dsprites_noshape's one task, 4var: its front, figure, verdict and box; no 5var file,
    column or section."""
    exp = make_experiment(tmp_path, spec=NOSHAPE_SPEC, tasks=("4var",))
    out = write_report(exp)
    names = {p.name for p in out.iterdir()}
    assert {"pareto_4var.csv", "figure1_4var.png", "results.csv", "summary.json"} <= names
    assert not [name for name in names if "5var" in name]
    results = pd.read_csv(out / "results.csv")
    fixed = contract_columns("dsprites_noshape")
    assert list(results.columns[: len(fixed)]) == list(fixed)
    assert not [c for c in results.columns if "5var" in c]
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["answer_lines"]) == list(summary["answer"]) == ["4var"]
    assert summary["answer_lines"]["4var"].startswith("4-var: ")
    assert "Holm over 3 tests" in summary["hypervolume"]["inference"]["correction"]
    assert {k for k in summary["hypervolume"] if k.endswith("var")} == {"4var"}
    assert summary["hypervolume"]["4var"]["fronts"]["all"]["floor"] == 0.25  # chance: 1/4
    assert all(h["best_5var"] is None for h in summary["headline"])
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "5-variable task" not in html and "pareto_5var" not in html
    assert "best 5-var" not in html and "chance (1/4) to 1" in html
    assert "lowest train recon, &gt; 98 % 4-var" in html
    assert answer_lines(out) == [summary["answer_lines"]["4var"]]


@pytest.mark.parametrize("scale", ["log", "symlog"])
def test_log_axes_label_their_ticks_as_plain_numbers(scale):
    """The training curves' and PBT schedules' log axes: no math text (each distinct label
    costs ~20 ms to parse), and numbers as a reader writes them (`0.1`, `10000`)."""
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    ax.set_yscale(scale, **({"linthresh": 0.1} if scale == "symlog" else {}))
    ax.set_ylim(0.05 if scale == "log" else 0, 20_000)
    figures.plain_log_labels(ax.yaxis)
    ax.figure.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert {"0.1", "1", "10", "10000"} <= set(labels), labels
    assert not any("$" in label or "e" in label for label in labels), labels
