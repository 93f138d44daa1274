"""Seeds per hour with and without seed bundles, on the same grid, side by side in one run.

    python benchmarks/bundling.py                  # the smoke grid and the default preset (CPU sizes)
    python benchmarks/bundling.py --grids smoke    # one of them

Each grid runs twice as the user runs it (`python -m sympscale.train -m ...`, the local_devices launcher), in
fresh sweep folders (each with its own compilation cache), on one dataset generated beforehand:
`hydra.launcher.bundle=1` (one process per seed) and `bundle=<n>` (the grid's seeds in bundles). Reported: wall
time end to end, seeds per hour, and the steady training cost per seed-step from the jobs' logs (time between
the first and the last logged step, divided by the steps and, in a bundle, shared by its seeds).
Prints a markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRIDS = {  # name: (overrides, seeds, bundle size)
    "smoke": (["system=fput", "D=16", "model=symp", "train=smoke"], "1-10", 10),
    "default-600-steps": (["system=fput", "D=16", "model=symp", "train=default", "train.steps=600"], "1-4", 4),
}


def sweep(overrides: list[str], seeds: str, bundle: int, root: Path, cache: Path) -> dict:
    folder = root / f"bundle{bundle}"
    cmd = [
        sys.executable,
        "-m",
        "sympscale.train",
        "-m",
        *overrides,
        f"seed={seeds}",
        f"hydra.sweep.dir={folder}",
        f"hydra.launcher.bundle={bundle}",
        "hydra.launcher.progress_every=3600",
    ]
    env = {**os.environ, "SYMPSCALE_CACHE_DIR": str(cache)}
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return {"wall_s": wall, **_step_cost(folder)}


def generate(overrides: list[str], cache: Path) -> None:
    from hydra import compose, initialize_config_dir

    from sympscale.assembly import build_system, load_data
    from sympscale.job import JobSpec
    from sympscale.train import config_dir, register

    register()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        spec = JobSpec.from_config(compose(config_name="config", overrides=[*overrides, f"data.cache_dir={cache}"]))
    load_data(spec, build_system(spec), log=lambda m: None)


def _step_cost(folder: Path) -> dict:
    """Seconds per seed-step of steady training, from each job's train_log (a bundle's seeds share its time)."""
    per_seed, n = [], 0
    for log in sorted(folder.glob("*/train_log.jsonl")):
        recs = [json.loads(line) for line in log.read_text().splitlines()]
        steps = [r for r in recs if "loss" in r and "grad_norm" in r]
        metrics = json.loads((log.parent / "metrics.json").read_text())
        size = (metrics["train"].get("bundle") or {}).get("size", 1)
        if len(steps) >= 2:
            a, b = steps[1], steps[-1]  # from the second record: the first includes the compile
            per_seed.append((b["wall_s"] - a["wall_s"]) / (b["step"] - a["step"]) / size)
        n += 1
    return {"seeds": n, "seed_step_ms": 1e3 * sum(per_seed) / len(per_seed) if per_seed else float("nan")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grids", default=",".join(GRIDS), help=f"comma-separated: {', '.join(GRIDS)}")
    a = p.parse_args()
    import jax

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp), Path(tmp) / "cache"
        for name in a.grids.split(","):
            overrides, seeds, size = GRIDS[name]
            generate(overrides, cache)  # the dataset first (both runs read it): generation is not what is compared
            one = sweep(overrides, seeds, 1, root / name, cache)
            many = sweep(overrides, seeds, size, root / name, cache)
            rows.append((name, seeds, size, one, many))
            print(name, one, many, file=sys.stderr, flush=True)
    print(
        f"{platform.node()}: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"device {jax.devices()[0].device_kind}, jax {jax.__version__}, {datetime.date.today()}\n"
    )
    print(
        "| grid | seeds | bundle | wall, one process per seed | wall, bundled | speed-up end to end "
        "| seeds/hour 1 → bundled | ms per seed-step, 1 → bundled |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, seeds, size, one, many in rows:
        print(
            f"| {name} | {seeds} | {size} | {one['wall_s']:.1f} s | {many['wall_s']:.1f} s "
            f"| **{one['wall_s'] / many['wall_s']:.2f}x** | {3600 * one['seeds'] / one['wall_s']:.0f} → "
            f"{3600 * many['seeds'] / many['wall_s']:.0f} | {one['seed_step_ms']:.1f} → {many['seed_step_ms']:.1f} |"
        )


if __name__ == "__main__":
    main()
