"""Study specs: validation with the offending key named, deterministic expansion, round trip."""

from __future__ import annotations

import tomllib

import pytest

from study import spec
from study.errors import BadInput
from study.presets import PRESETS
from study.tables import TABLES
from trainables import typed
from trainables.config import TrainConfig


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"studdy": {}}, r"unknown table \[studdy\]"),
        ({"study": {"nme": "x"}}, "unknown key 'study.nme'"),
        ({"train": {"stepz": 5}}, "stepz"),
        ({"train": {"family": "beta_vae"}}, "the study sets it per trial"),
        ({"study": {"replicates": "ten"}}, "study.replicates has the wrong type.*expected int"),
        ({"study": {"replicates": 0}}, "study.replicates must be >= 1"),
        ({"study": {"search": "bayes"}}, "study.search must be one of"),
        ({"study": {"families": []}}, "study.families is empty"),
        ({"study": {"families": ["vae"]}}, "unknown family 'vae'"),
        ({"grid": {"wae_gaussian": []}}, "grid.wae_gaussian is empty"),
        ({"grid": {"wae_gaussian": [1, -2]}}, "grid.wae_gaussian must hold numbers >= 0"),
        ({"grid": {"wae_gaussian": [1, 1]}}, "repeats a value"),
        ({"grid": {"vae": [1]}}, "unknown family 'vae' in \\[grid\\]"),
        ({"study": {"name": "../escape"}}, "study.name"),
        ({"study": {"search": "adaptive"}, "adaptive": {"families": ["vae"]}},
         "unknown family 'vae' in adaptive.families"),
        ({"study": {"search": "adaptive"}, "adaptive": {"families": ["factor_vae"],
                                                         "gamma_min": 50, "gamma_max": 20}},
         "adaptive.gamma_min must be >= 0 and below adaptive.gamma_max"),
        ({"study": {"families": ["beta_vae", "factor_vae"]},
          "train": {"latent_dim": 2, "batch_size": 50}},
         "factor_vae's shuffled codes would copy a real code whole too often: batch 50, "
         "latent_dim 2 .* use batch_size >= 100"),
        ({"study": {"search": "adaptive"}, "adaptive": {"lambda1_min": 5.0,
                                                         "lambda1_max": 1.0}}, "lambda1_min"),
        ({"train": {"steps": 0}}, "steps must be"),
        ({"train": {"precision": "fp8"}}, "precision must be one of"),
        ({"resources": {"gpus_per_trial": -1}}, "gpus_per_trial must be >= 0"),
        ({"study": "x"}, "study must be a table"),
    ],
)
def test_bad_specs_name_the_key(raw, message):
    with pytest.raises(BadInput, match=message):
        spec.resolve(raw)


@pytest.mark.parametrize("name, trials, models", [("quick", 6, 12), ("paper", 27, 270),
                                                  ("quick-adaptive", 6, 12),
                                                  ("adaptive", 30, 300), ("laptop", 6, 48),
                                                  ("color-laptop", 4, 24)])
def test_presets_expand_to_the_documented_size(name, trials, models):
    resolved = spec.load(name)
    assert spec.n_models(resolved) == models
    if resolved["study"]["search"] == "grid":
        assert len(spec.expand(resolved)) == trials


@pytest.mark.parametrize(("design", "distinct"), [("independent", 270), ("paired", 10)])
def test_expansion_is_deterministic_with_a_seed_per_model(design, distinct):
    a = spec.expand(spec.load("paper", [f"study.seeds={design}"]))
    assert a == spec.expand(spec.load("paper", [f"study.seeds={design}"]))
    member_seeds = [s for c in a for s in c["seeds"]]
    assert len(member_seeds) == 270 and len(set(member_seeds)) == distinct
    assert TrainConfig.from_dict(a[5]).member_seeds == a[5]["seeds"]
    assert [(c["family"], c["value"]) for c in a[:2]] == [("beta_vae", 1.0), ("beta_vae", 3.0)]
    assert all(c["replicates"] == 10 for c in a)


@pytest.mark.parametrize("name", [n for n in PRESETS if "compare" not in PRESETS[n].spec])
def test_resolved_toml_round_trips(name):
    resolved = spec.load(name)
    assert spec.resolve(tomllib.loads(spec.dumps(resolved))) == resolved


def test_overrides_use_toml_values():
    resolved = spec.load("quick", ["train.steps=42", "study.families=['beta_vae']",
                                   "train.precision=bf16"])
    assert resolved["train"]["steps"] == 42
    assert resolved["train"]["precision"] == "bf16"
    assert [c["family"] for c in spec.expand(resolved)] == ["beta_vae", "beta_vae"]
    with pytest.raises(BadInput, match="TABLE.KEY=VALUE"):
        spec.load("quick", ["steps=3"])


@pytest.mark.parametrize("exploit", ["scalar", "pareto"])
def test_a_pbt_spec_resolves_with_either_exploit(exploit):
    resolved = spec.load("quick-pbt", [f"pbt.exploit={exploit}"])
    assert resolved["pbt"]["exploit"] == exploit
    assert spec.resolve(tomllib.loads(spec.dumps(resolved))) == resolved
    assert spec.load("quick-pbt")["pbt"]["exploit"] == "scalar"  # the default


def test_spec_files_are_read_and_bad_toml_refused(tmp_path):
    good = tmp_path / "s.toml"
    good.write_text('[study]\nname = "mine"\nreplicates = 3\n[grid]\nbeta_vae = [2]\n'
                    '[train]\nsteps = 10\n')
    resolved = spec.load(str(good), ["study.families=['beta_vae']"])
    assert spec.n_models(resolved) == 3
    bad = tmp_path / "bad.toml"
    bad.write_text("[study\nname=")
    with pytest.raises(BadInput, match="not valid TOML"):
        spec.load(str(bad))



def test_a_study_toml_written_earlier_reads_as_it_ran_without_keys_removed_since(tmp_path):
    """An adaptive study's study.toml from before select_on existed (neither search table has
    it), with a [train] key this version no longer has: it resolves selecting on the test
    measures (select_on's legacy value) with no validation images, the removed key dropped
    with a warning; a new study selects on validation."""
    text = spec.dumps(spec.load("quick-adaptive"))
    earlier = "\n".join(line for line in text.splitlines()
                        if not line.startswith(("select_on", "validation_fraction")))
    (tmp_path / "study.toml").write_text(earlier.replace("[train]\n", "[train]\nretired = 3\n"))
    with pytest.warns(UserWarning, match="TrainConfig setting.s. retired"):
        resolved = spec.experiment_spec(tmp_path)
    assert (resolved["adaptive"]["select_on"], resolved["pbt"]["select_on"]) == ("test", "test")
    assert resolved["train"]["validation_fraction"] == 0.0 and "retired" not in resolved["train"]
    assert spec.load("quick-adaptive")["adaptive"]["select_on"] == "validation"


def test_every_key_of_every_table_has_its_help_in_study_toml():
    text = spec.dumps(spec.load("quick"))
    for name, table in TABLES.items():
        for key, help_text in typed.field_help(table).items():
            assert help_text and f"# {help_text.split(':')[0]}" in text, f"{name}.{key}"
