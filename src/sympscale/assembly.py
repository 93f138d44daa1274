"""One way to build a run: system, dataset, model, loss, projector and optimiser from a job's plain values.

The run (`sympscale.job`), `train.memory=auto`, `python -m sympscale.memory` and the gradient-cosine probe all start
from `assemble(spec)`, so what is sized and probed is the program that trains: the same model, the same hard
projection, the same loss.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import optax

from sympscale import models
from sympscale.data import Dataset, load_or_generate
from sympscale.projection import Projector, make_projector
from sympscale.systems import System, make_system
from sympscale.training import TrainSpec, bundle_step, make_loss, make_optimizer


@dataclasses.dataclass(frozen=True, eq=False)
class Assembly:
    """Everything a run trains and evaluates with, built once from its spec."""

    system: System
    data: Dataset | None  # None: assembled for its shapes only (normalisation zeros and ones)
    model: Any
    info: dict  # parameter count, the capacity target and ratio, the model's sizes
    train: TrainSpec  # the settings the run trains with (its model's recipe applied)
    projector: Projector | None  # hard projection in the training rollouts
    start_with: tuple[Any, int] | None  # (the model stepped by leapfrog, steps): symp's model.leapfrog_steps

    @property
    def std(self) -> np.ndarray:
        return self.data.std if self.data is not None else np.ones(self.system.D)

    def loss(self, memory: str | None = None) -> Callable:
        """loss(params, x0, targets) of the training rollout (with `memory` instead of the run's strategy)."""
        spec = self.train if memory is None else dataclasses.replace(self.train, memory=memory)
        return make_loss(self.model, self.std, spec, self.projector)

    @functools.cached_property
    def bundle_step(self) -> Callable:
        """The bundled training step `fit_bundle` trains this run with (`training.bundle_step`), built once: what a
        memory prediction compiled for it (`profiling.predicted_bundle_peak`) is the program training runs (a jitted
        function keeps its compiled programs, one per horizon and bundle size)."""
        if self.data is None:
            raise ValueError("this run was assembled for its shapes only: it has no training data to step on")
        return bundle_step(self.model, self.std, self.train, self.data.train, self.projector)

    def optimiser(self) -> optax.GradientTransformation:
        return make_optimizer(self.train)

    def with_train(self, train: TrainSpec) -> Assembly:
        return dataclasses.replace(self, train=train)


def build_system(spec) -> System:
    return make_system(spec.system, spec.D, **spec.system_params)


def load_data(spec, system: System, log=print) -> Dataset:
    return load_or_generate(system, spec.data, data_seed=spec.data_seed, cache_dir=spec.cache_dir, log=log)


def assemble(spec, *, system: System | None = None, data: Dataset | None = None) -> Assembly:
    """The run of `spec` (a `job.JobSpec`); without `data`, built for shapes only (nothing generated)."""
    system = system if system is not None else build_system(spec)
    mean, std = (data.mean, data.std) if data is not None else (np.zeros(spec.D), np.ones(spec.D))
    ctx = models.context(spec.D, system.dt_obs, mean, std, spec.capacity, system.exact_quadratic(), system)
    opts = models.options_of(spec.model, spec.model_options)
    model, info = models.construct(spec.model, opts, ctx)
    start_with = None
    if spec.leapfrog_steps:  # leapfrog -> the configured method: same parameters, cheaper integrator first
        start_with = (
            models.construct(spec.model, dataclasses.replace(opts, method="leapfrog"), ctx)[0],
            spec.leapfrog_steps,
        )
    projector = make_projector(system, spec.projection)
    return Assembly(system, data, model, info, spec.train, projector, start_with)


def init_params(run: Assembly, seed: int):
    """(params, training key) of a seed: the initialisation and the batch order."""
    init_key, train_key = jax.random.split(jax.random.key(seed))
    return run.model.init(init_key), train_key
