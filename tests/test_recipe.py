"""Per-model recipes: a model trains with the preset's budget and its own tuned settings, recorded as run."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from sympscale.models import MODELS
from sympscale.recipe import effective_train, recipe_errors
from sympscale.train import config_dir
from sympscale.validation import config_errors


def composed(overrides):
    with initialize_config_dir(config_dir=str(Path(config_dir())), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def test_a_recipe_overrides_only_its_model():
    train = {"steps": 100, "lr": 0.02, "horizon": 2, "recipes": {"gru": {"lr": 0.005, "horizon": 16}}}
    assert effective_train(train, "gru") == {"steps": 100, "lr": 0.005, "horizon": 16}
    assert effective_train(train, "symp") == {"steps": 100, "lr": 0.02, "horizon": 2}


def test_recipes_cannot_change_the_budget_or_name_unknown_models():
    errors = recipe_errors({"recipes": {"gru": {"steps": 5}, "lstm": {"lr": 1.0}, "symp": {"horizon": "long"}}}, MODELS)
    assert any("train.recipes.gru.steps" in e and "budget" in e for e in errors)
    assert any("train.recipes.lstm" in e and "unknown model" in e for e in errors)
    assert any("train.recipes.symp.horizon='long' must be a int" in e for e in errors)
    assert recipe_errors({"recipes": {"gru": {"lr": 1e-3, "horizon": 8}}}, MODELS) == []


def test_the_default_preset_gives_each_model_its_recipe_and_one_budget():
    from sympscale.job import JobSpec

    symp, gru = (JobSpec.from_config(composed([f"model={m}", "train.recipe=preset"])) for m in ("symp", "gru"))
    assert (symp.train.steps, symp.train.batch_size) == (gru.train.steps, gru.train.batch_size)  # one budget
    assert (symp.train.lr, symp.train.horizon) == (2e-2, 2) and (gru.train.lr, gru.train.horizon) == (5e-3, 16)
    assert config_errors(composed(["model=gru"])) == []


@pytest.mark.parametrize("model", ["symp", "gru"])
@pytest.mark.parametrize("system", ["fput", "toda"])
@pytest.mark.parametrize("D", [16, 64])
def test_a_tuned_cell_trains_with_its_recipe_file_and_says_so(model, system, D):
    from sympscale.job import JobSpec
    from sympscale.recipe import recipe_path, tuned_recipe

    root = Path(config_dir()) / "recipes"
    spec = JobSpec.from_config(composed([f"model={model}", f"system={system}", f"D={D}"]))
    if not recipe_path(root, "default", system, D, model).exists():
        assert spec.recipe_source.startswith("untuned default")
        return
    values = tuned_recipe(root, "default", system, D, model)["values"]
    assert (spec.train.lr, spec.train.horizon) == (values["lr"], values["horizon"])
    assert spec.recipe_source.startswith("tuned: ")


def test_a_bad_recipe_is_refused_before_compute():
    errors = config_errors(composed(["model=gru", "+train.recipes.gru.batch_size=8"]))
    assert any("train.recipes.gru.batch_size" in e for e in errors)
    errors = config_errors(composed(["model=gru", "train.recipe=preset", "train.recipes.gru.horizon=5000"]))
    assert any("train.horizon=5000" in e for e in errors)  # the effective horizon is checked against the data
