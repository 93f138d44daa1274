"""Memory and time of the real training-gradient program, per memory strategy.

`predicted_memory` compiles the gradient program from shape structs (nothing is allocated) and reads XLA's
memory analysis: peak ≈ code + arguments + outputs − aliased + temp. `measure_step` runs it on random data
and reads the device's high-water mark (`peak_bytes_in_use`; it never resets, so measure one strategy per
fresh process). CPU compiles overestimate GPU memory (DESIGN §4: ~30 %): size a GPU run with a GPU compile.
"""

from __future__ import annotations

import os
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np

STRATEGY_ORDER = ("none", "remat", "blocked")  # cheapest compute first: what `auto` tries in turn
HEADROOM = 0.9  # `auto` takes a strategy whose predicted peak is within this fraction of the device's budget


def _grad_fn(run, memory: str):
    """The run's own training gradient (`Assembly.loss`: its model, its projection) with strategy `memory`."""
    return jax.jit(jax.value_and_grad(run.loss(memory)))


def _shapes(model, batch_size: int, horizon: int):
    params = jax.eval_shape(model.init, jax.random.key(0))
    x0 = jax.ShapeDtypeStruct((batch_size, model.D), jnp.float64)
    targets = jax.ShapeDtypeStruct((horizon, batch_size, model.D), jnp.float64)
    return params, x0, targets


def predicted_memory(run, memory: str) -> dict:
    """XLA's memory analysis (bytes) and FLOP estimate of one gradient step of `run` (a `sympscale.assembly.Assembly`)
    at its full training horizon, compiled for the default backend."""
    t0 = time.perf_counter()
    spec = run.train
    compiled = _grad_fn(run, memory).lower(*_shapes(run.model, spec.batch_size, spec.horizon)).compile()
    ma = compiled.memory_analysis()
    out = {"memory": memory, "compile_s": time.perf_counter() - t0}
    if ma is None:
        return {**out, "peak": None}
    return {**out, **_memory_parts(ma), "xla_flops": _flops(compiled)}


def _memory_parts(ma) -> dict:
    """XLA's memory analysis as bytes: code, arguments, outputs, alias, temp, and the peak they make."""
    parts = {
        "code": ma.generated_code_size_in_bytes,
        "arguments": ma.argument_size_in_bytes,
        "outputs": ma.output_size_in_bytes,
        "alias": ma.alias_size_in_bytes,
        "temp": ma.temp_size_in_bytes,
    }
    parts["peak"] = parts["code"] + parts["arguments"] + parts["outputs"] - parts["alias"] + parts["temp"]
    return parts


def _flops(compiled) -> float | None:
    """XLA's FLOP estimate of a compiled program; None where the backend gives none (its cost analysis is
    unimplemented, or returns nothing usable)."""
    try:
        cost = compiled.cost_analysis()
    except (NotImplementedError, RuntimeError):  # backends without a cost model raise one of these
        return None
    cost = cost[0] if isinstance(cost, list | tuple) and cost else cost
    return float(cost["flops"]) if isinstance(cost, dict) and "flops" in cost else None


def device_budget() -> tuple[int | None, str]:
    """Bytes a program may use on the default device, and what that number is."""
    dev = jax.devices()[0]
    stats = dev.memory_stats() if hasattr(dev, "memory_stats") else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"]), f"{dev.device_kind} memory limit"
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return int(ram), "host RAM (CPU backend)"
    except (ValueError, OSError):
        return None, "unknown"


def choose_memory(run, *, headroom: float = HEADROOM) -> tuple[str, list[dict]]:
    """`auto`: the first of none → remat → blocked whose predicted peak fits the device (with headroom)."""
    budget, _ = device_budget()
    tried = []
    for memory in STRATEGY_ORDER:
        pred = predicted_memory(run, memory)
        tried.append(pred)
        if budget is None or pred["peak"] is None or pred["peak"] <= headroom * budget:
            return memory, tried
    raise MemoryError(
        "no memory strategy fits: predicted peaks "
        + ", ".join(f"{p['memory']} {p['peak'] / 2**30:.1f} GiB" for p in tried)
        + f" vs {budget / 2**30:.1f} GiB available; reduce train.batch_size or train.horizon"
    )


def measure_step(run, memory: str, *, repeats: int = 3, seed: int = 0) -> dict:
    """Run one gradient step of `run` (compile, then `repeats` timed calls); peak memory from the device or the process."""
    model, spec = run.model, run.train
    rng = np.random.default_rng(seed)
    params = model.init(jax.random.key(seed))
    x0 = jnp.asarray(rng.normal(size=(spec.batch_size, model.D)) * 0.5)
    targets = jnp.asarray(rng.normal(size=(spec.horizon, spec.batch_size, model.D)) * 0.5)
    fn = _grad_fn(run, memory)
    t0 = time.perf_counter()
    jax.block_until_ready(fn(params, x0, targets))
    compile_and_first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(params, x0, targets))
        times.append(time.perf_counter() - t0)
    dev = jax.devices()[0]
    stats = dev.memory_stats() if hasattr(dev, "memory_stats") else None
    if stats and "peak_bytes_in_use" in stats:
        peak, source = int(stats["peak_bytes_in_use"]), "device peak_bytes_in_use"
    else:
        peak, source = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "process max RSS (CPU)"
    return {
        "memory": memory,
        "measured_peak": peak,
        "peak_source": source,
        "step_s": float(np.median(times)),
        "first_call_s": compile_and_first,
        "device": f"{dev.platform}:{getattr(dev, 'device_kind', dev)}",
    }


def predicted_bundle_peak(run, seeds: int) -> int | None:
    """XLA's predicted peak bytes of `run`'s bundled training step for `seeds` seeds, compiled from shapes for
    the default backend at the final horizon (`run.bundle_step`, the program `training.fit_bundle` runs, compiled
    once); None where XLA gives none."""
    from sympscale.training import healthy, make_optimizer

    spec = run.train
    step = run.bundle_step  # the run's own: training finds this compile done

    def stacked(tree):
        return jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct((seeds, *a.shape), a.dtype), tree)

    params = jax.eval_shape(run.model.init, jax.random.key(0))
    opt_state = jax.eval_shape(make_optimizer(spec).init, params)
    keys = jax.eval_shape(lambda: jnp.stack([jax.random.key(0)] * seeds))
    health = jax.eval_shape(lambda: healthy(seeds))
    step_no = jax.eval_shape(lambda: jnp.asarray(0))  # as the training loop passes it (weakly typed)
    args = (stacked(params), stacked(opt_state), keys, step_no, spec.horizon, health)
    ma = step.lower(*args).compile().memory_analysis()
    return None if ma is None else _memory_parts(ma)["peak"]


def bundle_sizes(seeds: int) -> list[int]:
    """The sizes a bundle of `seeds` tries, largest first: `seeds`, then halved (rounded up) down to 1."""
    sizes = [seeds]
    while sizes[-1] > 1:
        sizes.append((sizes[-1] + 1) // 2)
    return sizes
