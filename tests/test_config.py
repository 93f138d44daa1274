"""Every config composes with its typed schema; typos, wrong types and impossible values are refused."""

import itertools
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

from sympscale.recipe import effective_train
from sympscale.seeds import rewrite_args
from sympscale.train import config_dir
from sympscale.validation import config_errors

CONF = Path(config_dir())


def options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def composed(overrides):
    overrides = rewrite_args(overrides)  # as the entrypoint does
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def test_groups_present():
    assert options("system") == ["cr3bp", "fput", "ks", "ks_32pi", "nbody", "toda"]
    assert options("model") == ["freeform", "gru", "oracle", "rk4", "symp"]
    assert options("bptt_window") == ["256", "32", "4", "full"]
    assert options("train") == ["default", "paper", "smoke"]


@pytest.mark.parametrize(
    "system, model, window, train",
    list(itertools.product(options("system"), options("model"), options("bptt_window"), options("train"))),
)
def test_every_combination_composes(system, model, window, train):
    D = 4 if system == "cr3bp" else 64
    overrides = [f"system={system}", f"model={model}", f"bptt_window={window}", f"train={train}", f"D={D}"]
    cfg = composed(overrides)
    assert cfg.system.name == system.split("_")[0] and cfg.model.name == model and cfg.train.preset == train
    errors = config_errors(cfg)
    if window != "full" and int(window) > effective_train(cfg.train, model)["horizon"]:  # the model's own recipe
        assert any("bptt_window" in e for e in errors)
    else:
        assert errors == [], errors


def test_presets_set_their_scale():
    smoke, default, paper = (composed([f"train={t}"]) for t in ("smoke", "default", "paper"))
    assert smoke.train.steps < default.train.steps < paper.train.steps
    assert paper.train.batch_size == 512 and paper.train.horizon == 1000 and paper.capacity.width == 512
    assert smoke.capacity.width < default.capacity.width


def test_typo_and_wrong_type_fail_at_composition():
    with pytest.raises(ConfigCompositionException):
        composed(["train.stpes=3"])
    with pytest.raises(ConfigCompositionException):
        composed(["D=sixteen"])
    with pytest.raises(ConfigCompositionException):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            compose(config_name="config", overrides=["seed=1-10"])  # why ranges are expanded before Hydra


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["D=15"], "D=15"),
        (["system=toda", "D=4"], "D=4"),
        (["bptt_window=32", "train=smoke"], "bptt_window=32"),
        (["eval.horizon=5000"], "eval.horizon=5000"),
        (["train.memory=magic"], "magic"),
        (["model.kinetic=none"], "model.kinetic=none"),
        (["system=cr3bp", "D=4", "model.kinetic=none", "model.exact_part=false"], "exact_part=False"),
        (["model.kinetic=cubic"], "cubic"),
        (["model.method=euler"], "euler"),
        (["model.activation=relu6"], "relu6"),
    ],
)
def test_semantic_errors_name_the_bad_value(overrides, fragment):
    errors = config_errors(composed(overrides))
    assert any(fragment in e for e in errors), errors


EXPERIMENTS = options("experiment")


def test_every_study_preset_has_a_smoke_twin_and_a_command_header():
    full = [e for e in EXPERIMENTS if not e.endswith("_smoke")]
    assert {"scaling", "bptt_ablation"} <= set(full)
    for e in full:
        assert f"{e}_smoke" in EXPERIMENTS
    for e in EXPERIMENTS:
        text = (CONF / "experiment" / f"{e}.yaml").read_text()
        assert f"python -m sympscale.train -m experiment={e}" in text and "Cost:" in text


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_study_grids_are_valid(experiment):
    """Every job of a preset's YAML-defined sweep composes and passes validation (sampled for the big ones)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from sympscale.seeds import rewrite_arg

    cfg = composed([f"experiment={experiment}"])
    assert cfg.name == experiment
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        hcfg = compose(config_name="config", overrides=[f"experiment={experiment}"], return_hydra_config=True)
    params = [f"{k}={rewrite_arg(k, str(v))}" for k, v in hcfg.hydra.sweeper.params.items()]
    jobs = [j for b in BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(params), None) for j in b]
    assert len(jobs) >= 12
    sample = jobs if experiment.endswith("_smoke") else jobs[:: max(1, len(jobs) // 10)]
    for job in sample:
        assert config_errors(composed([f"experiment={experiment}", *job])) == [], job


# The study grid of DESIGN §6: every system at every D the study uses, and the D each system cannot have.
STUDY_D = {
    "fput": [4, 16, 64, 256, 1024],
    "toda": [16, 64, 256, 1024],
    "nbody": [16, 64, 256, 1024],
    "cr3bp": [4],
    "ks": [64, 128, 256],
    "ks_32pi": [128, 256],
}
IMPOSSIBLE_D = {"fput": [15, 2], "toda": [4, 7], "nbody": [10, 4, 6], "cr3bp": [8, 16], "ks": [63, 8]}


@pytest.mark.parametrize("system, D", [(s, d) for s, ds in STUDY_D.items() for d in ds])
def test_every_system_composes_at_every_study_D(system, D):
    for model in ("symp", "gru"):
        cfg = composed([f"system={system}", f"D={D}", f"model={model}"])
        assert config_errors(cfg) == [], (system, D, model)


@pytest.mark.parametrize("system, D", [(s, d) for s, ds in IMPOSSIBLE_D.items() for d in ds])
def test_impossible_D_is_refused_naming_the_valid_ones(system, D):
    errors = config_errors(composed([f"system={system}", f"D={D}"]))
    valid = "D=4 only" if system == "cr3bp" else "(e.g. D="  # the CR3BP has one dimension; the others a list
    assert len(errors) == 1 and f"D={D} is invalid for system '{system}'" in errors[0] and valid in errors[0], errors
