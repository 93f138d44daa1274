"""Dataset generation time, λ₁ and ground-truth horizon per system at the default dataset size.

    python benchmarks/generation.py                       # the largest valid D of every system
    python benchmarks/generation.py --system ks --D 64    # one system and D

Each run generates into a fresh temporary cache (nothing is reused) and prints one JSON line per dataset:
wall time split into reference trajectories (+ initial-condition filter), λ₁ run and second reference.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax

import sympscale
from sympscale.data import DataSpec, timed_generation
from sympscale.systems import make_system

LARGEST = [("fput", 1024), ("toda", 1024), ("nbody", 1024), ("cr3bp", 4), ("ks", 256)]


def run(system: str, D: int, spec: DataSpec) -> dict:
    total, data = timed_generation(make_system(system, D), spec)  # the bring-up's data section times the same
    m = data.meta
    return {
        "system": system,
        "D": D,
        "n_trajectories": spec.n_trajectories,
        "n_obs": spec.n_obs,
        "total_s": round(total, 1),
        "trajectories_s": round(m["generation_wall_s"], 1),
        "lyapunov_s": round(m["lyapunov"]["wall_s"], 1),
        "ground_truth_s": round(m["ground_truth"]["wall_s"], 1),
        "lambda1": m["lyapunov"]["lambda1"],
        "lambda1_std": m["lyapunov"]["lambda1_std"],
        "ground_truth_obs": m["ground_truth"]["horizon_obs"],
        "ground_truth_time": m["ground_truth"]["horizon_time"],
        "invariant_drift": m["reference_invariant_drift"],
        "rejected": m["initial_conditions"]["rejected"],
        "drawn": m["initial_conditions"]["drawn"],
        "diagnostics": {k: v for k, v in m["diagnostics"].items() if not isinstance(v, list | dict)}
        | ({"energy_balance": m["diagnostics"]["energy_balance"]["relative_imbalance"]} if system == "ks" else {}),
        "reference": m["reference"],
        "device": jax.devices()[0].device_kind,
        "jax": jax.__version__,
        "sympscale": sympscale.__version__,
        "cpu_count": __import__("os").cpu_count(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--system")
    ap.add_argument("--D", type=int)
    ap.add_argument("--n-trajectories", type=int, default=50)
    ap.add_argument("--n-obs", type=int, default=1200)
    a = ap.parse_args()
    grid = [(a.system, a.D)] if a.system else LARGEST
    spec = DataSpec(n_trajectories=a.n_trajectories, n_obs=a.n_obs)
    for system, D in grid:
        print(json.dumps(run(system, D, spec)), flush=True)


if __name__ == "__main__":
    main()
