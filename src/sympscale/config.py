"""Typed config schemas, registered in Hydra's ConfigStore (entrypoint side: library code never sees them).

YAML files under conf/ name a schema in their defaults list, so a misspelt key or a wrong type fails at
composition, before any job runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict  # noqa: UP035  (OmegaConf's structured configs want typing.Dict)

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class SystemConf:
    name: str = MISSING
    dt_obs: float = 0.5


@dataclass
class LatticeConf(SystemConf):
    energy_density: float = 1.0
    ref_method: str = "yoshida8"
    ref_substeps: int = 20


@dataclass
class FPUTConf(LatticeConf):
    alpha: float = 0.0
    beta: float = 1.0
    boundary: str = "periodic"


@dataclass
class TodaConf(LatticeConf):
    pass


@dataclass
class NBodyConf(SystemConf):
    dt_obs: float = 0.005
    softening: float = 0.5
    escape_radius: float = 4.0
    velocity_cap: float = 0.8
    ref_method: str = "yoshida6"
    ref_substeps: int = 1


@dataclass
class CR3BPConf(SystemConf):
    dt_obs: float = 0.1
    mu: float = 0.01215
    rtol: float = 1e-13
    atol: float = 1e-15
    C_range: list[float] = field(default_factory=lambda: [3.189, 3.20])
    x0_range: list[float] = field(default_factory=lambda: [0.75, 0.82])
    r_min_reject: float = 0.05
    r_escape: float = 2.0
    max_steps: int = 1_000_000


@dataclass
class KSConf(SystemConf):
    dt_obs: float = 1.0
    L: float = 22.0
    h: float = 0.05
    transient: float = 300.0
    ic_modes: int = 4
    ic_amplitude: float = 0.5


@dataclass
class ModelConf:
    name: str = MISSING
    projection: str = "none"  # none | single | multi: Newton projection onto the invariants after every step


@dataclass
class SympConf(ModelConf):
    substeps: int = 4
    method: str = "yoshida4"
    activation: str = "softplus"
    kinetic: str = "auto"  # auto | quadratic | mlp | none (auto: none where the system has an exact part)
    spectral_norm: bool = False
    exact_part: bool = True  # integrate the system's known quadratic part exactly (false: learn it, ablation)
    warmup_steps: int = 0  # train with leapfrog for this many steps before switching to `method`


@dataclass
class GRUConf(ModelConf):
    pass


@dataclass
class RK4Conf(ModelConf):
    substeps: int = 4
    activation: str = "softplus"
    kinetic: str = "auto"
    spectral_norm: bool = False
    exact_part: bool = True


@dataclass
class FreeformConf(ModelConf):
    substeps: int = 4
    activation: str = "softplus"


@dataclass
class OracleConf(ModelConf):
    substeps: int = 4  # the integrator of symp: the ceiling at symp's own step size
    method: str = "yoshida4"


@dataclass
class BPTTConf:
    name: str = MISSING
    window: int | None = None  # None = full horizon


@dataclass
class CapacityConf:
    width: int = 64
    depth: int = 3


@dataclass
class DataConf:
    n_trajectories: int = 50
    n_obs: int = 1200
    train_fraction: float = 0.7
    val_fraction: float = 0.1
    lyapunov_trajectories: int = 4
    lyapunov_intervals: int = 0  # 0: the dataset horizon n_obs
    ground_truth_trajectories: int = 4
    cache_dir: str = "outputs/cache"


@dataclass
class TrainConf:
    preset: str = MISSING
    steps: int = 2000
    batch_size: int = 64
    horizon: int = 20
    lr: float = 3e-3
    warmup: int = 100
    min_lr_ratio: float = 0.05
    decay_fraction: float = 1.0  # cosine decay ends here (fraction of steps); then the final lr is held
    clip: float = 1.0
    memory: str = "remat"  # none | remat | blocked | auto
    log_every: int = 100
    checkpoint_every: int = 500
    grad_cosine_every: int = 0  # truncated windows: log cos(truncated, full gradient) every N steps (0: off)
    curriculum: str = "geometric"  # geometric | constant: the free-running horizon doubles from horizon_start
    horizon_start: int = 1
    ramp_fraction: float = 0.5  # the horizon reaches `horizon` after this fraction of the steps
    val_every: int = 100  # validate (and keep the best parameters) every N steps; 0: keep the last parameters
    val_horizon: int = 200  # validation rollouts stop here (steps)
    val_starts: int = 8  # validation windows per validation trajectory
    patience: int = 0  # early stopping after N validations without improvement (0: off)
    plateau_tol: float = 0.05  # converged: best validation VPT gained < 5 % over the last quarter of training
    # per-model departures from the settings above (lr, horizon curriculum): sympscale/recipe.py
    recipes: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006


@dataclass
class EvalConf:
    horizon: int = 1000
    bounded_factor: float = 2.0  # bounded if last-100 MSE < factor x climatology (≈ 2): see README
    projection: str = "multi"  # invariant set of the projected evaluation rollout (single | multi)


@dataclass
class Config:
    system: Any = MISSING
    model: Any = MISSING
    bptt_window: BPTTConf = field(default_factory=BPTTConf)
    train: TrainConf = field(default_factory=TrainConf)
    D: int = 16
    seed: int = 0
    data_seed: int = 0
    capacity: CapacityConf = field(default_factory=CapacityConf)
    data: DataConf = field(default_factory=DataConf)
    eval: EvalConf = field(default_factory=EvalConf)
    name: str = "sweep"  # sweep folder name under outputs/
    if_changed: str = "stop"  # a job folder holding a finished run of another computation: stop | move_aside


def register() -> None:
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    cs.store(group="system", name="base_fput", node=FPUTConf)
    cs.store(group="system", name="base_toda", node=TodaConf)
    cs.store(group="system", name="base_nbody", node=NBodyConf)
    cs.store(group="system", name="base_cr3bp", node=CR3BPConf)
    cs.store(group="system", name="base_ks", node=KSConf)
    cs.store(group="model", name="base_symp", node=SympConf)
    cs.store(group="model", name="base_gru", node=GRUConf)
    cs.store(group="model", name="base_rk4", node=RK4Conf)
    cs.store(group="model", name="base_freeform", node=FreeformConf)
    cs.store(group="model", name="base_oracle", node=OracleConf)
