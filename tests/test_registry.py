"""Adding a system or a model is one module and one YAML file: a toy of each, declared in this file, runs end to end."""

import dataclasses
import json
import shutil
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sympscale import config, job
from sympscale.models.base import Context, ModelOptions
from sympscale.models.nn import StateCarry
from sympscale.registry import MODELS, SYSTEMS, Registry, UnknownName
from sympscale.systems.base import Lattice
from sympscale.train import config_dir
from sympscale.validation import config_errors

# ----- the "module" of a new system: a chain of uncoupled quartic oscillators ----------------------------------


@dataclasses.dataclass(frozen=True)
class QuarticChain(Lattice):
    """H = Σ p²/2 + q²/2 + λ q⁴/4: N independent anharmonic oscillators (integrable; each energy is kept)."""

    stiffness: float = 0.5  # λ
    name: ClassVar[str] = "toy_chain"

    def potential(self, q):
        return jnp.sum(0.5 * q**2 + 0.25 * self.stiffness * q**4, axis=-1)


# ----- the "module" of a new model: a learned linear vector field, stepped by explicit Euler ------------------


@dataclasses.dataclass(frozen=True)
class LinearOptions(ModelOptions):
    """A linear vector field dx/dt = A x, integrated by `substeps` Euler steps."""

    substeps: int = 2
    init_scale: float = 0.01


@dataclasses.dataclass(frozen=True, eq=False)
class LinearModel(StateCarry):
    D: int
    dt: float
    substeps: int
    init_scale: float

    def init(self, key):
        return {"A": self.init_scale * jax.random.normal(key, (self.D, self.D), dtype=jnp.float64)}

    def step(self, params, x):
        h = self.dt / self.substeps
        for _ in range(self.substeps):
            x = x + h * x @ params["A"].T
        return x


def make_linear(options: LinearOptions, ctx: Context):
    model = LinearModel(D=ctx.D, dt=ctx.dt, substeps=options.substeps, init_scale=options.init_scale)
    return model, {"matrix": ctx.D * ctx.D}


@pytest.fixture
def registered(tmp_path):
    """Register both toys (as their modules would at import) and give each one YAML file in a copy of conf/."""
    SYSTEMS.register("toy_chain", options=QuarticChain, make=QuarticChain)
    MODELS.register("toy_linear", options=LinearOptions, make=make_linear)
    config.register()  # the application registers the schemas at start-up, after importing the modules
    conf = tmp_path / "conf"
    shutil.copytree(config_dir(), conf)
    (conf / "system" / "toy_chain.yaml").write_text("defaults:\n  - base_toy_chain\nstiffness: 2.0\n")
    (conf / "model" / "toy_linear.yaml").write_text("defaults:\n  - base_toy_linear\n")
    yield conf
    SYSTEMS.unregister("toy_chain")
    MODELS.unregister("toy_linear")


def test_a_toy_system_and_a_toy_model_run_end_to_end(registered, tmp_path):
    overrides = [
        "system=toy_chain",
        "model=toy_linear",
        "D=4",
        "train=smoke",
        "train.steps=30",
        "train.val_every=10",
        "train.val_horizon=20",
        "data.n_trajectories=8",
        "data.n_obs=150",
        "eval.horizon=100",
        f"data.cache_dir={tmp_path / 'cache'}",
        "model.substeps=3",
    ]
    with initialize_config_dir(config_dir=str(registered), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    assert cfg.system.stiffness == 2.0 and cfg.system.energy_density == 1.0  # the YAML's value, the schema's default
    assert cfg.model.init_scale == 0.01 and cfg.model.substeps == 3
    assert config_errors(cfg) == []
    spec = job.JobSpec.from_config(cfg)
    metrics = job.execute(spec, tmp_path / "job", resolved=OmegaConf.to_container(cfg, resolve=True))
    assert metrics["system"] == "toy_chain" and metrics["model"] == "toy_linear"
    assert metrics["params"] == 16 and metrics["model_sizes"] == {"matrix": 16}
    assert metrics["train"]["steps_trained"] == 30 and np.isfinite(metrics["eval"]["last100_mse"])
    assert set(metrics["eval"]["conservation"]) == {"H"}
    assert json.loads((tmp_path / "job" / "config.json").read_text())["model"]["substeps"] == 3


def test_a_misspelt_option_of_a_registered_model_fails_at_composition(registered):
    from hydra.errors import ConfigCompositionException

    with initialize_config_dir(config_dir=str(registered), version_base="1.3"):
        with pytest.raises(ConfigCompositionException, match="init_scal"):
            compose(config_name="config", overrides=["model=toy_linear", "model.init_scal=1.0"])


def test_registry_contract():
    reg = Registry("thing")

    @dataclasses.dataclass
    class Opts:
        a: int = 1

    reg.register("one", options=Opts, make=Opts)
    assert "one" in reg and "two" not in reg and list(reg) == ["one"] and reg["one"].defaults() == {"a": 1}
    with pytest.raises(UnknownName, match="unknown thing 'two'; valid: one"):
        reg["two"]
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("one", options=Opts, make=Opts)
    with pytest.raises(TypeError, match="must be a dataclass"):
        reg.register("three", options=dict, make=dict)


def test_every_schema_is_derived_from_its_module():
    """The config node of each registered system and model has exactly its dataclass's fields and defaults."""
    for name, entry in SYSTEMS.items():
        node = OmegaConf.to_container(OmegaConf.structured(config.entry_schema(entry, "system")))
        fields = {f.name: f.default for f in dataclasses.fields(entry.options) if f.name != "D"}
        assert node == {"name": name, **{k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}}
    for name, entry in MODELS.items():
        node = OmegaConf.to_container(OmegaConf.structured(config.entry_schema(entry, "model")))
        assert node == {"name": name, **entry.defaults()}


def test_a_pickled_config_unpickles_where_only_the_config_module_is_importable(tmp_path):
    """The Slurm launcher pickles the composed config: its nodes' classes must exist on import, not only after
    the app registered its schemas."""
    import pickle
    import subprocess
    import sys

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["system=cr3bp", "D=4", "model=gru"])
    (tmp_path / "cfg.pkl").write_bytes(pickle.dumps(cfg))
    code = f"import pickle; c = pickle.loads(open({str(tmp_path / 'cfg.pkl')!r}, 'rb').read()); print(c.system.name, c.model.name)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.split() == ["cr3bp", "gru"], r.stderr[-2000:]
