"""`python -m sympscale.estimate`: the predicted device time of a job or a seed bundle, from a measured step.

Reads {"config": <a job's resolved task config>, "seeds": n} as JSON on stdin and prints one JSON line
{"seconds": ..., "step_s": ..., "basis": "..."}. The launcher's dry run calls it once per distinct configuration
and bundle size (`sympscale.launcher_hook.estimate`), in a process of its own: the launcher never imports JAX.

The configuration's training step (its model, projection, window and memory strategy; the one training step over n seeds, `training.bundle_step`) is
compiled from shapes on this process's default device at the final training horizon and timed; the job's time
is steps x step time x (curriculum's mean horizon / final horizon): a step's rollout costs in proportion to its
horizon. Data generation, validation and the final evaluation are not counted.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time

REPEATS = 3


def estimate(task_cfg: dict, seeds: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from omegaconf import OmegaConf

    from sympscale.assembly import assemble, init_params
    from sympscale.curriculum import mean_horizon
    from sympscale.job import JobSpec
    from sympscale.seedaxis import stack
    from sympscale.training import bundle_step, healthy

    spec = JobSpec.from_config(OmegaConf.create(task_cfg))
    run = assemble(spec)  # shapes only: no data generated
    tr = run.train
    if tr.memory == "auto":
        from sympscale.profiling import choose_memory

        tr = dataclasses.replace(tr, memory=choose_memory(run)[0])
    if not run.info["params"]:
        return {"seconds": 0.0, "step_s": 0.0, "basis": "nothing to train"}
    inits = [init_params(run, seed) for seed in range(seeds)]
    n_train = spec.data.split_sizes()[0]
    train = jnp.zeros((n_train, spec.data.n_obs, spec.D), dtype=jnp.float64)
    step = bundle_step(run.model, np.ones(spec.D), tr, train, run.projector)
    state = stack([p for p, _ in inits]), stack([run.optimiser().init(p) for p, _ in inits])
    keys, health = jnp.stack([k for _, k in inits]), healthy(seeds)
    jax.block_until_ready(step(*state, keys, jnp.asarray(0), tr.horizon, health))  # compile
    times = []
    for i in range(REPEATS):
        t0 = time.perf_counter()
        jax.block_until_ready(step(*state, keys, jnp.asarray(i + 1), tr.horizon, health))
        times.append(time.perf_counter() - t0)
    step_s = float(np.median(times))
    scale = mean_horizon(tr.schedule(), tr.steps) / tr.horizon
    dev = jax.devices()[0]
    return {
        "seconds": tr.steps * step_s * scale,
        "step_s": step_s,
        "horizon_scale": scale,
        "basis": f"a measured training step ({seeds} seed(s), horizon {tr.horizon}, {tr.memory}) on "
        f"{dev.platform}:{getattr(dev, 'device_kind', dev)} x {tr.steps} steps x mean/final horizon {scale:.2f}; "
        f"data, validation and evaluation not counted",
    }


def main() -> int:
    import sympscale  # noqa: F401  (float64)

    request = json.loads(sys.stdin.read())
    print(json.dumps(estimate(request["config"], int(request["seeds"]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
