"""`python -m sympscale.estimate`: the predicted device time of jobs and seed bundles, from measured steps.

Reads {"requests": [{"config": <a job's resolved task config>, "seeds": n}, ...]} as JSON on stdin and prints one
JSON line {"estimate": {"seconds": ..., "step_s": ..., "basis": "..."}} per request, in order, as each is made
(a process that dies or runs out of time keeps the ones it printed).
The launcher's dry run calls it once for every distinct configuration and bundle size of the grid
(`sympscale.launcher_hook.estimate`): one process of its own (the launcher never imports JAX), whose Python and
JAX start-up is paid once. Each measurement is kept in a folder private to the user (`~/.cache/sympscale/
estimates`, one JSON file per step, device and code): a later dry run on the same device with the same code and
libraries reuses it and says when it was measured (remove the folder to measure again).

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
import datetime
import hashlib
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
    parts = {k: cfg.get(k) for k in ("D", "capacity", "train", "bptt_window", "data")}
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


def measured_step(spec, run, tr, seeds: int, horizon: int, repeats: int = REPEATS) -> dict:
    """Compile the bundled training step of `seeds` seeds at `horizon` on the default device and time it (median
    of `repeats` calls): {"step_s", "compile_s", "horizon", "seeds", "xla_flops"}."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from sympscale.assembly import init_params
    from sympscale.profiling import _flops
    from sympscale.seedaxis import stack
    from sympscale.training import bundle_step, healthy

    tr = dataclasses.replace(tr, horizon=horizon)
    inits = [init_params(run, seed) for seed in range(seeds)]
    n_train = spec.data.split_sizes()[0]
    train = jnp.zeros((n_train, spec.data.n_obs, spec.D), dtype=jnp.float64)
    step = bundle_step(run.model, np.ones(spec.D), tr, train, run.projector)
    state = stack([p for p, _ in inits]), stack([run.optimiser().init(p) for p, _ in inits])
    keys, health = jnp.stack([k for _, k in inits]), healthy(seeds)
    args = (*state, keys, jnp.asarray(0), horizon, health)
    t0 = time.perf_counter()
    compiled = step.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(*args[:-2], health))  # the first call: buffers allocated
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*state, keys, jnp.asarray(i + 1), health))
        times.append(time.perf_counter() - t0)
    return {
        "step_s": float(np.median(times)),
        "compile_s": compile_s,
        "horizon": horizon,
        "seeds": seeds,
        "xla_flops": _flops(compiled),
    }


def estimate(task_cfg: dict, seeds: int) -> dict:
    import jax

    from sympscale.curriculum import mean_horizon

    spec, run, tr = assembled(task_cfg)
    if not run.info["params"]:
        return {"seconds": 0.0, "step_s": 0.0, "basis": "nothing to train"}
    timed, n, scale = tr, seeds, 1.0
    if jax.default_backend() == "cpu" and tr.batch_size * seeds > CPU_BATCH:
        timed, n = dataclasses.replace(tr, batch_size=min(CPU_BATCH, tr.batch_size)), 1
        scale = tr.batch_size * seeds / timed.batch_size
    short = min(SHORT_HORIZON, tr.horizon)
    repeats = REPEATS if jax.default_backend() == "cpu" else DEVICE_REPEATS
    first = measured_step(spec, run, timed, n, short, repeats)
    if scale != 1.0 and first["step_s"] * scale < CPU_DIRECT_S:  # cheap enough to time as it is (per-call costs
        timed, n, scale = tr, seeds, 1.0  # that do not grow with the batch would be scaled too)
        first = measured_step(spec, run, timed, n, short, repeats)
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


def estimate_all(requests: list[dict]):
    """`estimate` of each {"config", "seeds"} in turn (or the kept measurement of its step on this device with this
    code), yielded as it is made; one that cannot be measured says why in its basis."""
    from sympscale.launcher import compile_cache

    folder, _ = compile_cache.private_dir("estimates")
    for r in requests:
        path = folder / f"{_measurement_key(r)}.json" if folder else None
        kept = _kept(path)
        if kept is not None:
            yield kept
            continue
        try:
            answer = estimate(r["config"], int(r["seeds"]))
        except Exception as e:  # noqa: BLE001 (one configuration's failure must not hide the others' estimates)
            yield {"seconds": None, "basis": f"unavailable: {type(e).__name__}: {str(e)[:300]}"}
            continue
        if path is not None:
            _keep(path, answer)
        yield answer


def _measurement_key(request: dict) -> str:
    """The step, the device it is timed on, the host and the code: a measurement is reused only where all agree."""
    import os
    import platform

    import jax

    from sympscale import provenance

    dev = jax.devices()[0]
    what = {
        "step": step_key(request["config"], int(request["seeds"])),
        "device": [dev.platform, getattr(dev, "device_kind", ""), platform.machine(), os.cpu_count()],
        "code": provenance.record(),
        "jaxlib": provenance.libraries().get("jaxlib"),
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _kept(path) -> dict | None:
    """A kept measurement, its basis saying when it was made; None where there is none (or it is damaged)."""
    from sympscale.launcher.jsonfile import read_json

    if path is None or not path.exists():
        return None
    rec, problem = read_json(path)
    if problem or not isinstance(rec, dict) or not isinstance(rec.get("estimate"), dict):
        return None
    answer = dict(rec["estimate"])
    answer["basis"] = f"{answer.get('basis', '')} (measured {rec.get('measured', '?')}, kept in {path.parent})"
    return answer


def _keep(path, answer: dict) -> None:
    from sympscale.launcher.jsonfile import write_json

    if answer.get("seconds") is None:
        return
    measured = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    try:
        write_json(path, {"estimate": answer, "measured": measured})
    except OSError:  # a full or read-only disk: the estimate stands, it is just not kept
        pass


def main() -> int:
    import sympscale  # noqa: F401  (float64)

    request = json.loads(sys.stdin.read())
    for answer in estimate_all(request["requests"]):
        print(json.dumps({"estimate": answer}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
