"""Slurm presets, tested without a cluster: the sbatch text they submit and the shards node arrays run."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sympscale.launcher.slurm import node_array_script, submitit_sbatch_preview
from sympscale.train import config_dir

APP = Path(__file__).parent / "apps" / "fake_study.py"


def slurm_gpu_launcher() -> dict:
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["hydra/launcher=slurm_gpu"], return_hydra_config=True)
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(cfg)
    return OmegaConf.to_container(cfg.hydra.launcher, resolve=True)


def test_submitit_preset_sbatch_text():
    launcher = slurm_gpu_launcher()
    assert launcher["_target_"].endswith("SlurmLauncher") and launcher["gpus_per_node"] == 1
    text = submitit_sbatch_preview(launcher, "python -m submitit.core._submit /x", "/tmp/sweep/.submitit/%j", n_jobs=80)
    for line in [
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=64GB",
        "#SBATCH --time=720",
        "#SBATCH --job-name=sympscale",
        "#SBATCH --array=0-79%64",  # the 80-job grid, at most 64 tasks at once
        "#SBATCH --signal=USR2@120",  # submitit's preemption / time-out signal -> checkpoint() -> requeue
        "#SBATCH --requeue",  # requeueable even where a site sets JobRequeue=0
        "export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0",
    ]:
        assert line in text, f"{line!r} missing from:\n{text}"
    # the compilation cache is the user's own (JAX runs what it finds there), never the shared sweep folder
    assert 'export JAX_COMPILATION_CACHE_DIR="$HOME/.cache/sympscale/jax-compile"' in text
    assert 'mkdir -p -m 700 "$JAX_COMPILATION_CACHE_DIR"' in text and ".jax_cache" not in text


def test_submitit_launcher_requeues_through_its_checkpoint_hook():
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
    from submitit.helpers import DelayedSubmission

    launcher = SlurmLauncher(**{k: v for k, v in slurm_gpu_launcher().items() if k != "_target_"})
    assert isinstance(launcher.checkpoint("job args"), DelayedSubmission)


def test_node_array_script():
    text = node_array_script(
        ["system=toda,fput", "seed=1-10"], nodes=4, gpus_per_node=8, platform="rocm", partition="mi300x"
    )
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    for line in [
        "#SBATCH --array=0-3",
        "#SBATCH --exclusive",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --partition=mi300x",
    ]:
        assert line in lines
    assert "python -m sympscale.train -m system=toda,fput seed=1-10 \\" in lines
    assert "hydra.launcher.platform=rocm hydra.launcher.shard=${SLURM_ARRAY_TASK_ID}/4" in text  # resubmittable
    with pytest.raises(ValueError):
        node_array_script([], nodes=0)


def test_node_array_cli_prints_the_script():
    out = subprocess.run(
        [sys.executable, "-m", "sympscale.launcher.slurm", "node-array", "--nodes", "2", "--", "seed=1-3"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "#SBATCH --array=0-1" in out and "seed=1-3" in out


@pytest.mark.slow
def test_slurm_array_shards_partition_the_users_grid(tmp_path):
    """Each array task's dry run lists its share; together they are the grid, with no overlap, each configuration's
    seeds on one task. With `bundle=1` (no bundle to keep whole) the shares are near-equal in jobs."""
    shares = []
    for task, bundle in ((0, "auto"), (1, "auto"), (2, "auto"), (0, "1")):  # the task can run bundles
        env = {
            **os.environ,
            "JAX_PLATFORMS": "no_such_platform",
            "SLURM_ARRAY_TASK_ID": str(task),
            "SLURM_ARRAY_TASK_MIN": "0",
            "SLURM_ARRAY_TASK_MAX": "2",
            "SLURM_ARRAY_TASK_COUNT": "3",
            "FAKE_ESTIMATE": str(tmp_path / f"estimate{task}.json"),  # the share's listing, not its measurement
            "FAKE_BUNDLES": "1",
        }
        r = subprocess.run(
            [
                sys.executable,
                str(APP),
                "-m",
                "system=toda,fput",
                "D=64,256",
                "model=symp,gru",
                "seed=1-10",
                "hydra.launcher.shard=slurm",
                "hydra.launcher.dry_run=true",
                "hydra.launcher.platform=cpu",
                f"hydra.launcher.bundle={bundle}",
                f"hydra.sweep.dir={tmp_path}",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        shares.append({int(m) for m in re.findall(r"^\s+(\d+)\s+queued", r.stdout, re.M)})
    *bundled, single = shares
    assert sorted(set().union(*bundled)) == list(range(80))
    assert sorted(len(s) for s in bundled) == [20, 30, 30]  # whole configurations: 3, 2 and 3 of the 8
    assert single == set(range(26))  # a third of the 80 jobs, cutting the third configuration (seeds 1-6 of 10)
