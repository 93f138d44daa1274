"""Hydra's structured-config schemas, derived from the library's own dataclasses (entry-point side only).

Nothing here declares an option: a system's schema is its `System` dataclass (all fields but D), a model's is its
registered options dataclass, `train` is `TrainSpec` (but the BPTT window, its own group), `data` is `DataSpec`,
`capacity` is `Capacity`. YAML files under conf/ name a schema in their defaults list and set only what differs
from it, so a misspelt key or a wrong type fails at composition, before any job runs.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional  # noqa: UP035  (OmegaConf's structured configs want typing's names)

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

import sympscale.systems  # noqa: F401  (the systems register themselves)
from sympscale.data import DataSpec
from sympscale.models import Capacity
from sympscale.registry import MODELS, SYSTEMS, Entry
from sympscale.training import TrainSpec


def _hydra_type(hint: Any) -> Any:
    """A type OmegaConf accepts for a field annotated `hint` (tuples become lists, `X | None` Optional[X])."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return Optional[_hydra_type(rest[0])] if len(rest) == 1 else Any  # noqa: UP045
    if origin in (tuple, list):
        return List[args[0] if args else Any]  # noqa: UP006
    if origin is dict:
        return Dict[str, Any]  # noqa: UP006
    return hint if hint in (int, float, str, bool) else Any


def _default(value: Any):
    if isinstance(value, tuple | list):
        return field(default_factory=lambda v=list(value): list(v))
    return field(default=value)


def schema(cls: type, name: str, *, drop: tuple[str, ...] = (), extra: tuple = (), group: str = "") -> type:
    """A Hydra node with `cls`'s fields (but `drop`) and defaults, plus `extra` fields; `group` adds a `name` key."""
    hints = typing.get_type_hints(cls)
    fields: list[tuple] = [("name", str, field(default=group))] if group else []
    for f in dataclasses.fields(cls):
        if f.name in drop:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        fields.append((f.name, _hydra_type(hints[f.name]), _default(default)))
    node = dataclasses.make_dataclass(name, [*fields, *extra])
    node.__module__ = __name__
    globals()[name] = node  # importable by name: a pickled config (the Slurm launcher) refers to its node's class
    return node


def entry_schema(entry: Entry, kind: str) -> type:
    """The config node of a registered system (its dataclass but D) or model (its options): one class per entry,
    made once, since a pickled config refers to it by name."""
    made = _NODES.get((kind, entry.name))
    if made is None or made[0] is not entry.options:
        drop = ("D",) if kind == "system" else ()
        node = schema(entry.options, f"{entry.options.__name__}Node", drop=drop, group=entry.name)
        _NODES[(kind, entry.name)] = made = (entry.options, node)
    return made[1]


_NODES: dict[tuple[str, str], tuple[type, type]] = {}  # (group, name) -> (options dataclass, its node)


@dataclass
class BPTTConf:
    name: str = MISSING
    window: Optional[int] = None  # noqa: UP045  (None: full horizon)


CapacityConf = schema(Capacity, "CapacityConf")
DataConf = schema(DataSpec, "DataConf", extra=(("cache_dir", str, field(default="outputs/cache")),))
TrainConf = schema(
    TrainSpec,
    "TrainConf",
    drop=("window",),  # the bptt_window group sets it
    extra=(
        ("preset", str, field(default=MISSING)),
        # per-model departures from the settings above (lr, horizon curriculum): sympscale/recipe.py
        ("recipes", Dict[str, Any], field(default_factory=dict)),  # noqa: UP006
        ("recipe", str, field(default="auto")),  # auto | preset | none: which recipe layers apply
        # the tuned recipe of this (preset, system, D, model), filled in at composition (conf/config.yaml)
        ("tuned", Dict[str, Any], field(default_factory=dict)),  # noqa: UP006
        ("lr_factor", float, field(default=1.0)),  # a tuning grid's point: x the recipe's lr
        ("horizon_factor", float, field(default=1.0)),  # x the recipe's final horizon
    ),
)


@dataclass
class EvalConf:
    horizon: int = 1000
    start: int = 100  # rollouts start at this observation of each test trajectory: after the transient
    bounded_level: float = 0.995  # bounded: nominal level; an independent truth passes >= 99 % (README "Metrics")
    bounded_floor: float = 0.2  # ... and never below this |log| mean-square ratio (~10 % in RMS)
    bounded_pairs: int = 100  # ... the band from this many independent pairs of truths (perturbed starts)
    spectrum_trajectories: int = 2  # the learned model's own Lyapunov spectrum: from this many test states,
    spectrum_intervals: int = 1000  # ... over this many model steps (0: not computed),
    spectrum_transient: int = 200  # ... the first of which align the tangent vectors
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


def entry_nodes() -> dict[tuple[str, str], type]:
    """(group, name) -> the config node of every registered system and model, each also a module attribute: a
    config pickled with them (the Slurm launcher) unpickles in a process that only imports this module."""
    return {
        (group, name): entry_schema(entry, group)
        for group, registry in (("system", SYSTEMS), ("model", MODELS))
        for name, entry in registry.items()
    }


entry_nodes()  # the built-in entries' nodes exist once this module is imported


def register() -> None:
    """Store the primary schema and one `base_<name>` node per registered system and model."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for (group, name), node in entry_nodes().items():
        cs.store(group=group, name=f"base_{name}", node=node)
