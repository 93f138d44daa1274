"""Slurm helpers: a preview of the sbatch script the `slurm_gpu` preset submits, and node-array scripts.

    python -m sympscale.launcher.slurm node-array --nodes 4 --gpus-per-node 8 --platform rocm \\
        -- system=toda,fput D=64,256 model=symp,gru seed=1-10 > sweep.sbatch && sbatch sweep.sbatch

A node array gives each node a whole machine; every array task runs the `local_devices` launcher over its
share of the grid (`hydra.launcher.shard=slurm`: shard index and count from the job-array variables), one
process per GPU. All tasks use the same sweep dir, so a rerun of the array resumes where it stopped.
"""

from __future__ import annotations

import argparse
import shlex
import sys

# submitit option names for the keys of the `slurm_gpu` preset that are not plain sbatch names
_RENAME = {"timeout_min": "time", "tasks_per_node": "ntasks_per_node", "name": "job_name"}
_NOT_SBATCH = {
    "submitit_folder",
    "max_num_timeout",
    "array_parallelism",
    "_target_",
    "additional_parameters",
    "srun_args",
    "stderr_to_stdout",
    "use_srun",
    "mem_gb",
}


def submitit_sbatch_preview(launcher: dict, command: str, folder: str, n_jobs: int = 1) -> str:
    """The sbatch text submitit writes for an array of `n_jobs` tasks of the `slurm_gpu` preset (needs submitit)."""
    from submitit.slurm.slurm import _make_sbatch_string

    params = {_RENAME.get(k, k): v for k, v in launcher.items() if k not in _NOT_SBATCH and v is not None}
    if launcher.get("mem_gb"):
        params["mem"] = f"{launcher['mem_gb']}GB"
    params.update(launcher.get("additional_parameters") or {})
    params["array_parallelism"] = launcher.get("array_parallelism", 256)
    return _make_sbatch_string(command=command, folder=folder, map_count=n_jobs, **params)


def node_array_script(
    overrides: list[str],
    *,
    nodes: int,
    gpus_per_node: int = 8,
    platform: str = "cuda",
    partition: str | None = None,
    account: str | None = None,
    time: str = "24:00:00",
    sweep_dir: str = "outputs/${name}",
    python: str = "python",
) -> str:
    """An sbatch script: `nodes` array tasks, each a whole node running local_devices over its shard."""
    if nodes < 1 or gpus_per_node < 1:
        raise ValueError("need nodes >= 1 and gpus_per_node >= 1")
    if platform not in ("cuda", "rocm"):
        raise ValueError(f"platform={platform!r}: node arrays are for cuda or rocm nodes")
    gres = [f"#SBATCH --partition={partition}"] if partition else []
    gres += [f"#SBATCH --account={account}"] if account else []
    args = " ".join(shlex.quote(o) for o in overrides)
    mask = (
        "# Slurm sets CUDA_VISIBLE_DEVICES for the allocation; local_devices honours it"
        if platform == "cuda"
        else "# ROCm: Slurm sets ROCR_VISIBLE_DEVICES; each job gets ROCR_VISIBLE_DEVICES=k, HIP_VISIBLE_DEVICES=0"
    )
    lines = [
        "#!/bin/bash",
        "#SBATCH --job-name=sympscale-sweep",
        f"#SBATCH --array=0-{nodes - 1}",
        "#SBATCH --nodes=1",
        "#SBATCH --exclusive",
        f"#SBATCH --gpus-per-node={gpus_per_node}",
        f"#SBATCH --time={time}",
        "#SBATCH --output=slurm-%A_%a.out",
        *gres,
        "set -euo pipefail",
        mask,
        f"{python} -m sympscale.train -m {args} \\",
        f"    hydra.launcher.platform={platform} hydra.launcher.shard=slurm \\",
        f"    'hydra.sweep.dir={sweep_dir}'",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m sympscale.launcher.slurm",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    na = sub.add_parser("node-array", help="print an sbatch script that spreads a grid over whole nodes")
    na.add_argument("--nodes", type=int, required=True)
    na.add_argument("--gpus-per-node", type=int, default=8)
    na.add_argument("--platform", choices=("cuda", "rocm"), default="cuda")
    na.add_argument("--partition")
    na.add_argument("--account")
    na.add_argument("--time", default="24:00:00")
    na.add_argument("--sweep-dir", default="outputs/${name}")
    na.add_argument("overrides", nargs="*", help="the sweep's overrides (after --)")
    a = p.parse_args(argv)
    sys.stdout.write(
        node_array_script(
            a.overrides,
            nodes=a.nodes,
            gpus_per_node=a.gpus_per_node,
            platform=a.platform,
            partition=a.partition,
            account=a.account,
            time=a.time,
            sweep_dir=a.sweep_dir,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
