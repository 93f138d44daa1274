"""`python -m sympscale.estimate`: the predicted device time of jobs and seed bundles, from measured steps.

Reads {"requests": [{"config": <a job's resolved task config>, "seeds": n}, ...]} as JSON on stdin and prints one
JSON line {"index": i, "estimate": {"seconds": ..., "step_s": ..., "basis": "..."}} per request, the kept ones first,
each as it is made (a process that dies or runs out of time keeps the ones it printed).
The launcher's dry run calls it once for every distinct configuration and bundle size of the grid
(`sympscale.launcher_hook.estimate`): one process of its own (the launcher never imports JAX), whose Python and
JAX start-up is paid once. On an accelerator the steps to measure are first compiled at once, in threads on the
host's cores (`compiled_ahead`: a GPU compile takes tens of seconds, mostly on one core), then timed in turn.
Each measurement is kept (`sympscale.estimate_cache`): a later dry run on the same device with the same code
reuses it and says when it was measured.

Each configuration's training step (its model, projection, window and memory strategy; the one training step
over n seeds, `training.bundle_step`) is compiled once on this process's default device and timed at a short
horizon (`SHORT_HORIZON`), then scaled in proportion to the horizon. A step costs a + b x horizon (the rollout and
its gradient grow with the horizon, the update does not): scaled from 16 to h, the estimate exceeds the step by
a x (h/16 - 1), a fraction of the estimate below a / (a + 16 b), the update's share of the timed step (9 % for
the paper preset's symp step on the reference CPU; on an accelerator, where a 16-step program may be bound by
launches, it may be more: `benchmarks/gpu_step.py` sets the estimate beside the step timed at the final horizon).
The curriculum's first stages, shorter than 16, come out low alike; they are a small part of a run. Compiling
and running the step at the final horizon (1,000 at `train=paper`) would cost minutes per configuration; a second
horizon, to fit a and b, another compile each.

On the CPU backend, whose time grows with the work, one seed at a batch of `CPU_BATCH` is timed and scaled by
batch x seeds (a `train=paper` step of 10 seeds takes minutes there even at horizon 16): high at paper scale, where
a per-call cost is scaled too (~1.9x for symp, ~1.4x for a GRU, measured in BENCHMARKS.md); on an
accelerator the bundle and batch are timed as they are, since their parallel work is what the device absorbs. The
memory strategy is the one the run would take (`train.memory=auto`: decided from the full-horizon program's
predicted peak). The job's time is steps x the step at the curriculum's mean horizon. Data generation,
validation and the final evaluation are not counted.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Mapping

REPEATS = 1  # timed calls after the first (which allocates the buffers), on CPU: a call takes ~1 s there
DEVICE_REPEATS = 3  # ... on an accelerator: a call of a 16-step program takes milliseconds
SHORT_HORIZON = 16  # the step is timed at this horizon, then scaled in proportion to the horizon
CPU_BATCH = 16  # on the CPU backend one seed at this batch is timed and scaled: CPU work grows with batch x seeds
CPU_DIRECT_S = 1.0  # ... unless the scaled step would take less than this: then it is timed as it is


def step_key(task_cfg: Mapping, seeds: int) -> str:
    """What a training step's cost depends on: the model, D, capacity, training settings and window; the system
    too, except for a GRU without projection (which never reads it: a symplectic model may integrate the system's
    known quadratic part, a projection its invariants). No JAX: the launcher's hook uses it."""
    cfg = dict(task_cfg)
    model = dict(cfg.get("model") or {})
    parts = {k: cfg.get(k) for k in ("D", "capacity", "train", "bptt_window")}
    parts["data"] = {k: v for k, v in dict(cfg.get("data") or {}).items() if k != "cache_dir"}  # a place, not work
    if model.get("projection", "none") != "none" or model.get("name") != "gru":
        parts["system"] = cfg.get("system")
    parts["model"] = model
    return json.dumps({**parts, "seeds": seeds}, sort_keys=True, default=str)


def assembled(task_cfg: dict):
    """(the run's assembly from shapes, no data generated; its training settings with the memory strategy resolved)."""
    from omegaconf import OmegaConf

    from sympscale.assembly import assemble
    from sympscale.job import JobSpec

    spec = JobSpec.from_config(OmegaConf.create(task_cfg))
    run = assemble(spec)
    tr = run.train
    if tr.memory == "auto":
        from sympscale.profiling import choose_memory

        tr = dataclasses.replace(tr, memory=choose_memory(run)[0])
    return spec, run, tr


def step_program(spec, run, tr, seeds: int, horizon: int) -> tuple:
    """(the bundled training step of `seeds` seeds at `horizon`, jitted; the arguments of its first call): random
    parameters, zero data (its values do not change the work)."""
    import jax.numpy as jnp
    import numpy as np

    from sympscale.assembly import init_params
    from sympscale.seedaxis import stack
    from sympscale.training import bundle_step, healthy

    tr = dataclasses.replace(tr, horizon=horizon)
    inits = [init_params(run, seed) for seed in range(seeds)]
    n_train = spec.data.split_sizes()[0]
    train = jnp.zeros((n_train, spec.data.n_obs, spec.D), dtype=jnp.float64)
    step = bundle_step(run.model, np.ones(spec.D), tr, train, run.projector)
    state = stack([p for p, _ in inits]), stack([run.optimiser().init(p) for p, _ in inits])
    keys, health = jnp.stack([k for _, k in inits]), healthy(seeds)
    return step, (*state, keys, jnp.asarray(0), horizon, health)


def measured_step(spec, run, tr, seeds: int, horizon: int, repeats: int = REPEATS, compiled=None) -> dict:
    """Compile the bundled training step of `seeds` seeds at `horizon` on the default device (unless `compiled`, the
    same program compiled ahead, is given) and time it (median of `repeats` calls): {"step_s", "compile_s",
    "horizon", "seeds", "xla_flops"}."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from sympscale.profiling import _flops

    step, args = step_program(spec, run, tr, seeds, horizon)
    params, opt_state, keys, _, _, health = args
    t0 = time.perf_counter()
    compiled = compiled if compiled is not None else step.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(params, opt_state, keys, jnp.asarray(0), health))  # buffers allocated
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(params, opt_state, keys, jnp.asarray(i + 1), health))
        times.append(time.perf_counter() - t0)
    return {
        "step_s": float(np.median(times)),
        "compile_s": compile_s,
        "horizon": horizon,
        "seeds": seeds,
        "xla_flops": _flops(compiled),
    }


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What `estimate` times first: `seeds` seeds of `timed` (the run's settings, on CPU at a smaller batch) at
    horizon `short`, scaled by `scale` (batch x seeds over what was timed)."""

    spec: object
    run: object
    train: object  # the run's training settings
    timed: object
    seeds: int
    scale: float
    short: int
    repeats: int

    def lowered(self):
        step, args = step_program(self.spec, self.run, self.timed, self.seeds, self.short)
        return step.lower(*args)


def _plan(task_cfg: dict, seeds: int) -> _Plan | None:
    """None where the model has nothing to train."""
    import jax

    spec, run, tr = assembled(task_cfg)
    if not run.info["params"]:
        return None
    timed, n, scale = tr, seeds, 1.0
    cpu = jax.default_backend() == "cpu"
    if cpu and tr.batch_size * seeds > CPU_BATCH:
        timed, n = dataclasses.replace(tr, batch_size=min(CPU_BATCH, tr.batch_size)), 1
        scale = tr.batch_size * seeds / timed.batch_size
    return _Plan(spec, run, tr, timed, n, scale, min(SHORT_HORIZON, tr.horizon), REPEATS if cpu else DEVICE_REPEATS)


def estimate(task_cfg: dict, seeds: int, prepared: tuple | None = None) -> dict:
    """The device seconds of a job (seeds = 1) or a bundle, from its step measured at a short horizon (`prepared`:
    its plan and that program compiled ahead, `compiled_ahead`)."""
    import jax

    from sympscale.curriculum import mean_horizon

    plan, compiled = prepared if prepared is not None else (_plan(task_cfg, seeds), None)
    if plan is None:
        return {"seconds": 0.0, "step_s": 0.0, "basis": "nothing to train"}
    tr, timed, n, scale, short = plan.train, plan.timed, plan.seeds, plan.scale, plan.short
    first = measured_step(plan.spec, plan.run, timed, n, short, plan.repeats, compiled)
    if scale != 1.0 and first["step_s"] * scale < CPU_DIRECT_S:  # cheap enough to time as it is (per-call costs
        timed, n, scale = tr, seeds, 1.0  # that do not grow with the batch would be scaled too)
        first = measured_step(plan.spec, plan.run, timed, n, short, plan.repeats)
    per_h = first["step_s"] * scale / short
    if short < tr.horizon:
        how = f"timed at horizon {short}, scaled in proportion to the horizon"
    else:
        how = f"timed at the final horizon {short}"
    if scale != 1.0:
        how += f", one seed at batch {timed.batch_size} scaled x{scale:g} (CPU: time grows with batch x seeds)"
    mean_h = mean_horizon(tr.schedule(), tr.steps)
    step_s = per_h * tr.horizon  # at the final horizon
    dev = jax.devices()[0]
    return {
        "seconds": tr.steps * per_h * mean_h,
        "step_s": step_s,
        "horizon_scale": mean_h / tr.horizon,
        "basis": f"a measured training step ({seeds} seed(s), {tr.memory}) on {dev.platform}:"
        f"{getattr(dev, 'device_kind', dev)}, {how} to the curriculum's mean horizon {mean_h:.0f}, x {tr.steps} "
        f"steps; data, validation and evaluation not counted",
    }


def estimate_all(requests: list[dict], ahead: bool | None = None):
    """(index, `estimate`) of each {"config", "seeds"}: first the kept measurements of their steps on this device
    with this code, then the others measured in turn, each yielded as it is made; one that cannot be measured says
    why in its basis. `ahead` (default: on an accelerator) compiles the steps to measure at once first
    (`compiled_ahead`)."""
    import jax

    from sympscale import estimate_cache

    paths = estimate_cache.paths(requests)
    todo = []
    for i, path in enumerate(paths):
        kept = estimate_cache.kept(path)
        if kept is not None:
            yield i, kept
        else:
            todo.append(i)
    if ahead is None:
        ahead = jax.default_backend() != "cpu"
    prepared = compiled_ahead([requests[i] for i in todo]) if ahead and len(todo) > 1 else {}
    for i in todo:
        r = requests[i]
        try:
            answer = estimate(r["config"], int(r["seeds"]), prepared.pop(id(r), None))
        except Exception as e:  # noqa: BLE001 (one configuration's failure must not hide the others' estimates)
            yield i, {"seconds": None, "basis": f"unavailable: {type(e).__name__}: {str(e)[:300]}"}
            continue
        if paths[i] is not None:
            estimate_cache.keep(paths[i], answer)
        yield i, answer


AHEAD_WORKERS = 4  # compiles at once: each takes a host core, and on a GPU its autotuning times kernels there


def compiled_ahead(requests: list[dict]) -> dict:
    """id(request) -> (its plan, the program `estimate` times first, compiled or None): traced one after the
    other, compiled at once in threads (XLA releases the GIL while it compiles; a GPU compile of a paper step takes
    tens of seconds, mostly on one host core). A request that cannot be planned is left out (`estimate` says
    why); one whose program does not compile is compiled again by `estimate`, which then says why."""
    from concurrent.futures import ThreadPoolExecutor

    from sympscale.launcher.devices import usable_cores

    plans, lowered = {}, {}
    for r in requests:
        try:
            plans[id(r)] = _plan(r["config"], int(r["seeds"]))
            if plans[id(r)] is not None:
                lowered[id(r)] = plans[id(r)].lowered()
        except Exception:  # noqa: BLE001, S112 (estimate meets the same error and says it)
            plans.pop(id(r), None)

    def compile_one(low):
        try:
            return low.compile()
        except Exception:  # noqa: BLE001
            return None

    workers = max(1, min(len(lowered), usable_cores() // 2, AHEAD_WORKERS))
    with ThreadPoolExecutor(workers) as pool:
        done = dict(zip(lowered, pool.map(compile_one, lowered.values()), strict=True))
    return {k: (plan, done.get(k)) for k, plan in plans.items()}


def main() -> int:
    import sympscale  # noqa: F401  (float64)

    request = json.loads(sys.stdin.read())
    for i, answer in estimate_all(request["requests"]):
        print(json.dumps({"index": i, "estimate": answer}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
