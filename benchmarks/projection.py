"""Newton projection: cost per projected step and iteration counts, per system, D and invariant set.

    python benchmarks/projection.py                       # every system at a small and its largest study D
    python benchmarks/projection.py --system toda --D 1024 --batch 64

States are the system's own initial conditions pushed off their level set by a relative error `--offset`
(default 1e-3 of each coordinate's spread, about what one step of a trained model does); the projector must
bring them back to the invariants of the unperturbed states. Prints one JSON line per (system, D, kind): wall
time per batch projection (median of 5, compiled), iterations histogram, the largest remaining scaled
residual, and the size of the correction relative to the offset.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

import sympscale  # noqa: F401  (float64)
from sympscale.projection import make_projector
from sympscale.systems import make_system

CASES = [
    ("fput", 16), ("fput", 1024), ("toda", 16), ("toda", 1024), ("nbody", 16), ("nbody", 1024),
    ("cr3bp", 4), ("ks", 64), ("ks", 256),
]  # fmt: skip


def run(system: str, D: int, kind: str, batch: int, offset: float) -> dict:
    s = make_system(system, D)
    x0 = s.sample_initial(jax.random.key(0), batch)
    spread = jnp.maximum(jnp.std(x0, axis=0), 1e-12)
    y = x0 + offset * spread * jax.random.normal(jax.random.key(1), x0.shape, dtype=jnp.float64)
    projector = make_projector(s, kind)
    c0, scales = projector.targets(x0)
    project = jax.jit(projector.__call__)
    out, it, ok = jax.block_until_ready(project(y, c0, scales))  # compile
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        jax.block_until_ready(project(y, c0, scales))
        times.append(time.perf_counter() - t0)
    resid = jax.vmap(projector._g)(out, c0, scales)
    it = np.asarray(it)
    return {
        "system": system,
        "D": D,
        "kind": kind,
        "invariants": list(projector.names),
        "batch": batch,
        "offset": offset,
        "ms_per_batch": round(1e3 * float(np.median(times)), 3),
        "iterations_histogram": np.bincount(it, minlength=projector.max_iter + 1).tolist(),
        "mean_iterations": float(it.mean()),
        "n_not_converged": int((~np.asarray(ok)).sum()),
        "max_scaled_residual": float(jnp.max(jnp.abs(resid))),
        "correction_over_offset": float(jnp.linalg.norm(out - y) / jnp.linalg.norm(y - x0)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--system")
    ap.add_argument("--D", type=int)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--offset", type=float, default=1e-3)
    args = ap.parse_args()
    cases = [(args.system, args.D)] if args.system else CASES
    dev = jax.devices()[0]
    env = {"device": getattr(dev, "device_kind", dev.platform), "jax": jax.__version__, "host": platform.node()}
    print(json.dumps({"env": env}), flush=True)
    for system, D in cases:
        kinds = ["single", "multi"]
        if len(make_system(system, D).projection_invariants("multi")) == 1:
            kinds = ["single"]
        for kind in kinds:
            print(json.dumps(run(system, D, kind, args.batch, args.offset)), flush=True)


if __name__ == "__main__":
    main()
