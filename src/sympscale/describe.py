"""`python -m sympscale.describe`: each job's model size, increment rank and error floor, for the dry run.

Reads {"configs": [<a job's resolved task config>, ...]} as JSON on stdin and prints one JSON line
{"lines": [...]}, one line per config: the potential width the capacity rule gave, the model's parameter count,
its increment rank of the dimension it must cover and, where the job's dataset is already cached, its one-step
MSE floor on the training split (`sympscale.rankfloor`). Nothing is generated or compiled. The launcher's dry run
calls it once for the grid's distinct configurations (`sympscale.launcher_hook.describe`), in a process of its
own: the launcher never imports JAX.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def describe(task_cfg: dict) -> str:
    from omegaconf import OmegaConf

    from sympscale.assembly import assemble, build_system, load_data
    from sympscale.data import cache_problem, dataset_key
    from sympscale.job import JobSpec, capacity_record

    spec = JobSpec.from_config(OmegaConf.create(task_cfg))
    system = build_system(spec)
    data = None
    if cache_problem(Path(spec.cache_dir) / dataset_key(system, spec.data, spec.data_seed)) is None:
        data = load_data(spec, system, log=lambda _: None)
    rec = capacity_record(spec, assemble(spec, system=system, data=data))
    if rec["rank"] is None:
        rank = "no rank bound"
    else:
        floor = rec["rank_floor_mse"]
        floor_s = "floor not known (dataset not cached)" if floor is None else f"floor {floor:.3g}"
        limited = " CAPACITY-LIMITED" if rec["capacity_limited"] else ""
        rank = f"rank {rec['rank']} of {rec['dimension']} ({floor_s}){limited}"
    budget = f", {rec['budget_ratio']:.2f}x budget" if rec["budget"] != 1.0 else ""
    return f"width {rec['width_used']}{budget}, {rec['params']:,} parameters, {rank}; recipe: {spec.recipe_source}"


def main() -> int:
    import sympscale  # noqa: F401  (float64)

    request = json.loads(sys.stdin.read())
    lines = []
    for cfg in request["configs"]:
        try:
            lines.append(describe(cfg))
        except Exception as e:  # noqa: BLE001  (one job's description must not hide the others')
            lines.append(f"not described: {type(e).__name__}: {e}")
    print(json.dumps({"lines": lines}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
