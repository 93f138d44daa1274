"""Slurm helpers: a preview of the sbatch script the `slurm_gpu` preset submits, and node-array scripts.

    python -m sympscale.launcher.slurm node-array --nodes 4 --gpus-per-node 8 --platform rocm \\
        -- system=toda,fput D=64,256 model=symp,gru seed=1-10 > sweep.sbatch && sbatch sweep.sbatch

A node array gives each node a whole machine; every array task runs the `local_devices` launcher over its
share of the grid (`hydra.launcher.shard=${SLURM_ARRAY_TASK_ID}/<nodes>`: a task resubmitted alone,
`sbatch --array=3`, runs share 3 again and no other), one process per GPU (`--platform cpu`: CPU worker slots, no
GPU request). All tasks use the same sweep dir, so a rerun of the array resumes where it stopped.
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
    if launcher.get("additional_parameters"):  # submitit's own argument: raw sbatch options, e.g. requeue: true
        params["additional_parameters"] = dict(launcher["additional_parameters"])
    params["array_parallelism"] = launcher.get("array_parallelism", 256)
    return _make_sbatch_string(command=command, folder=folder, map_count=n_jobs, **params)


def node_array_script(
    overrides: list[str],
    *,
    nodes: int,
    gpus_per_node: int | None = None,
    platform: str = "cuda",
    partition: str | None = None,
    account: str | None = None,
    time: str = "24:00:00",
    sweep_dir: str = "outputs/${name}",
    python: str = "python",
) -> str:
    """An sbatch script: `nodes` array tasks, each a whole node running local_devices over its shard.

    `gpus_per_node` defaults to 8 on cuda / rocm nodes; `platform="cpu"` requests no GPU (a CPU partition's
    sbatch rejects any GPU request: "Invalid generic resource (gres) specification").
    """
    if platform not in ("cuda", "rocm", "cpu"):
        raise ValueError(f"platform={platform!r}: node arrays are for cuda, rocm or cpu nodes")
    if gpus_per_node is None:
        gpus_per_node = 0 if platform == "cpu" else 8
    if nodes < 1:
        raise ValueError("need nodes >= 1")
    if platform == "cpu" and gpus_per_node:
        raise ValueError("platform=cpu jobs use no GPU: leave gpus_per_node unset (or 0)")
    if platform != "cpu" and gpus_per_node < 1:
        raise ValueError(f"platform={platform} needs gpus_per_node >= 1")
    gres = [f"#SBATCH --gpus-per-node={gpus_per_node}"] if gpus_per_node else []
    gres += [f"#SBATCH --partition={partition}"] if partition else []
    gres += [f"#SBATCH --account={account}"] if account else []
    args = " ".join(shlex.quote(o) for o in overrides)
    mask = {
        "cuda": "# Slurm sets CUDA_VISIBLE_DEVICES for the allocation; local_devices honours it",
        "rocm": "# ROCm: Slurm sets ROCR_VISIBLE_DEVICES; each job gets ROCR_VISIBLE_DEVICES=k, HIP_VISIBLE_DEVICES=0",
        "cpu": "# CPU: hydra.launcher.cpu_workers jobs at a time (default: the node's cores // 2)",
    }[platform]
    lines = [
        "#!/bin/bash",
        "#SBATCH --job-name=sympscale-sweep",
        f"#SBATCH --array=0-{nodes - 1}",
        "#SBATCH --nodes=1",
        "#SBATCH --exclusive",
        f"#SBATCH --time={time}",
        "#SBATCH --output=slurm-%A_%a.out",
        *gres,
        "set -euo pipefail",
        mask,
        f"{shlex.quote(python)} -m sympscale.train -m {args} \\",
        # the share of this task out of `nodes`, however it was submitted (resubmit one with --array=i)
        f"    hydra.launcher.platform={platform} hydra.launcher.shard=${{SLURM_ARRAY_TASK_ID}}/{nodes} \\",
        f"    {shlex.quote(f'hydra.sweep.dir={sweep_dir}')}",
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
    na.add_argument("--gpus-per-node", type=int, help="default: 8 (cuda, rocm), none (cpu)")
    na.add_argument("--platform", choices=("cuda", "rocm", "cpu"), default="cuda")
    na.add_argument("--partition")
    na.add_argument("--account")
    na.add_argument("--time", default="24:00:00")
    na.add_argument("--sweep-dir", default="outputs/${name}")
    na.add_argument("--python", default="python", help="the interpreter the tasks run (default: python on PATH)")
    na.add_argument("overrides", nargs="*", help="the sweep's overrides (after --)")
    a = p.parse_args(argv)
    try:
        script = node_array_script(
            a.overrides,
            nodes=a.nodes,
            gpus_per_node=a.gpus_per_node,
            platform=a.platform,
            partition=a.partition,
            account=a.account,
            time=a.time,
            sweep_dir=a.sweep_dir,
            python=a.python,
        )
    except ValueError as e:
        p.error(str(e))
    sys.stdout.write(script)
    return 0


if __name__ == "__main__":
    sys.exit(main())
