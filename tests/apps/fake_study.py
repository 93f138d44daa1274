"""A trivial task over SympScale's real configs, for launcher tests: records what device it saw and when (and, like
any task that needs no JAX, does not import it in its job processes).

FAKE_FAULTS="raise:3,exit:4,nan:5" makes the job with that seed raise, exit hard, or hit a non-finite
training loss (through the real trainer, which stops and flags the run diverged: a finished job, not a crash). FAKE_SLEEP sets how long a job works.
FAKE_BUNDLES=1: the task can run seed bundles (each member's task in its own Hydra job, as prepared).
FAKE_ESTIMATE=<file>: a dry run's estimate measures nothing; it writes the number of requests and the device
variables of the environment the launcher asked it to measure in (the hook is otherwise SympScale's own).
"""

import json
import os
import sys
import time
import types
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig

from sympscale import launcher_hook
from sympscale.launcher.devices import MEM_FRACTION_VARS
from sympscale.seeds import rewrite_args

VARS = (
    "CUDA_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "JAX_PLATFORMS",
    "SYMPSCALE_DEVICE",
    "JAX_COMPILATION_CACHE_DIR",
)


def recorded_estimate(requests: list, env: dict) -> None:
    record = {"requests": len(requests), "env": {k: env.get(k) for k in (*VARS, *MEM_FRACTION_VARS)}}
    Path(os.environ["FAKE_ESTIMATE"]).write_text(json.dumps(record))


LAUNCHER_HOOK = launcher_hook  # as sympscale.train
if os.environ.get("FAKE_ESTIMATE"):
    LAUNCHER_HOOK = types.SimpleNamespace(**vars(launcher_hook))
    LAUNCHER_HOOK.estimate = recorded_estimate


def nan_loss() -> str | None:
    import jax
    import numpy as np

    from sympscale.models import Capacity, build
    from sympscale.training import TrainSpec, fit

    rng = np.random.default_rng(0)
    traj = rng.normal(size=(2, 20, 4))
    model, _ = build("gru", D=4, dt=0.5, mean=np.zeros(4), std=np.ones(4), capacity=Capacity(width=16, depth=2))
    spec = TrainSpec(steps=20, batch_size=4, horizon=3, lr=1e300, warmup=1, log_every=1)
    _, summary = fit(model, model.init(jax.random.key(0)), traj, np.ones(4), spec, key=jax.random.key(1))
    return summary["divergence"]


def task(cfg) -> int:
    out = Path(HydraConfig.get().runtime.output_dir)
    start = time.time()
    (out / "started.json").write_text(json.dumps({"pid": os.getpid(), "start": start}))
    faults = dict(f.split(":")[::-1] for f in os.environ.get("FAKE_FAULTS", "").split(",") if f)
    fault = faults.get(str(cfg.seed))
    time.sleep(float(os.environ.get("FAKE_SLEEP", "0.2")))
    if fault == "raise":
        raise ValueError(f"injected failure for seed {cfg.seed}")
    if fault == "exit":
        os._exit(3)
    rec = {k: os.environ.get(k) for k in VARS}
    if fault == "nan":
        rec["diverged"] = nan_loss()
    rec.update(start=start, end=time.time(), seed=cfg.seed, system=cfg.system.name, D=cfg.D, pid=os.getpid())
    rec["jax_imported"] = "jax" in sys.modules
    (out / "fake.json").write_text(json.dumps(rec))
    with open(out / "completions", "a") as f:
        f.write("1\n")
    return cfg.seed


class _Bundle:
    """Seed bundles, as `sympscale.train`'s: each member's task runs in its own Hydra job as it is prepared."""

    prepare = staticmethod(task)

    @staticmethod
    def run(prepared: list) -> list:
        return prepared


if os.environ.get("FAKE_BUNDLES"):
    LAUNCHER_BUNDLE_TASK = _Bundle


if __name__ == "__main__":
    # SympScale's schemas and resolver, as `sympscale.train` registers them (importing JAX): in the launching
    # process only; each job's process receives its composed config and the resolver, and needs no JAX
    from sympscale.train import config_dir

    sys.argv = [sys.argv[0], *rewrite_args(sys.argv[1:])]
    hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")(task)()
