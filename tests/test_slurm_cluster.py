"""A real Slurm: the `slurm_gpu` preset's sweep, two interruptions mid-training, and a node-array script.

Opt-in: `SYMPSCALE_SLURM_TEST=1 python -m pytest -q tests/test_slurm_cluster.py` (CI sets it). As root, the
test starts a single-node cluster with tests/slurm/start_cluster.sh (installs Debian's slurm-wlm and munge when
missing); otherwise it uses a Slurm that already answers (`sinfo`), or skips. Partition:
SYMPSCALE_SLURM_PARTITION (default cpu). Jobs run on the CPU (JAX_PLATFORMS=cpu).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from sympscale.launcher.slurm import submitit_sbatch_preview

ROOT = Path(__file__).resolve().parents[1]
START = ROOT / "tests" / "slurm" / "start_cluster.sh"
PARTITION = os.environ.get("SYMPSCALE_SLURM_PARTITION", "cpu")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("SYMPSCALE_SLURM_TEST") != "1",
        reason="real-Slurm test is opt-in: SYMPSCALE_SLURM_TEST=1 (as root it starts a local cluster)",
    ),
]

TINY = [
    "train=smoke",
    "D=8",
    "data.n_trajectories=6",
    "data.n_obs=160",
    "eval.horizon=100",
    "capacity.width=16",
    "capacity.depth=2",
]
# the slurm_gpu preset on a CPU partition: no GPU request (sbatch: "Invalid generic resource (gres)
# specification"), 1 CPU (8 exceed the node: the job would pend forever), 1 GB (64 GB: "Memory specification can
# not be satisfied")
CPU_PRESET = [
    "hydra/launcher=slurm_gpu",
    f"hydra.launcher.partition={PARTITION}",
    "hydra.launcher.gpus_per_node=null",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=30",
]
STEPS, CKPT_EVERY, LOG_EVERY = 400, 20, 10


def _run(cmd: list[str], env: dict, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r


@pytest.fixture(scope="module")
def slurm(tmp_path_factory) -> dict:
    """The environment the jobs are submitted with, once a Slurm answers on the CPU partition."""
    env = dict(os.environ)
    if os.geteuid() == 0:
        r = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, f"{START} failed:\n{r.stdout}\n{r.stderr}"
        m = re.search(r"^export SLURM_CONF=(\S+)$", r.stdout, re.M)
        assert m, r.stdout
        env["SLURM_CONF"] = m.group(1)
        print(r.stderr.strip())
    elif not (shutil.which("sbatch") and shutil.which("sinfo")):
        pytest.skip("not root (cannot start a cluster) and no Slurm client (sbatch, sinfo) on PATH")
    else:
        r = subprocess.run(["sinfo", "-h", "-p", PARTITION, "-o", "%T"], env=env, capture_output=True, text=True)
        if r.returncode != 0 or not r.stdout.strip():
            pytest.skip(f"not root, and no running Slurm has partition {PARTITION!r}: {r.stderr.strip()}")
    env["JAX_PLATFORMS"] = "cpu"
    env["SYMPSCALE_CACHE_DIR"] = str(tmp_path_factory.mktemp("dataset_cache"))  # both tests share the data
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """Shared by the module's sweeps: the node array reuses the first sweep's JAX compilation cache."""
    return tmp_path_factory.mktemp("slurm_sweeps")


def _squeue(env: dict, job: str) -> dict[str, tuple[str, str]]:
    """{array task id: (state, reason)} of the tasks of `job` Slurm still holds (pending or running)."""
    r = _run(["squeue", "-h", "-r", "-j", job, "-o", "%i|%T|%r"], env, check=False)
    rows = (line.split("|") for line in r.stdout.splitlines() if line.count("|") == 2)
    return {i: (state, reason) for i, state, reason in rows}


def _job_show(env: dict, job: str) -> list[dict]:
    """`scontrol show job` records (kept MinJobAge seconds after the end; sacct needs accounting, not set up)."""
    r = _run(["scontrol", "-o", "show", "job", job], env)
    return [dict(kv.split("=", 1) for kv in line.split() if "=" in kv) for line in r.stdout.splitlines() if line]


def _loss_steps(job_dir: Path) -> list[int]:
    log = job_dir / "train_log.jsonl"
    if not log.exists():
        return []
    recs = []
    for line in log.read_text().splitlines():
        try:
            recs.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written
            pass
    return [r["step"] for r in recs if "loss" in r]


def _release_if_held(env: dict, slurm_id: str) -> None:
    """A requeued job waits ~2 min (Reason=BeginTime) before it is eligible again; start it now."""
    state = _squeue(env, slurm_id).get(slurm_id)
    if state and state[0] == "PENDING" and state[1] == "BeginTime":
        _run(["scontrol", "update", f"JobId={slurm_id}", "StartTime=now"], env, check=False)


def _launcher_config(overrides: list[str]) -> dict:
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from sympscale.train import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return OmegaConf.to_container(cfg.hydra.launcher, resolve=True)


def _sbatch_lines(script: str) -> list[str]:
    return [line for line in script.splitlines() if line.startswith("#SBATCH") or line.startswith("export JAX")]


def _cancel_arrays(env: dict, sweep: Path, grace: float = 60) -> None:
    """Cancel what this sweep submitted and Slurm still runs (a failed test must not leave jobs behind). Tasks get
    `grace` seconds to end first: submitit's launcher returns once every result file is written, while the task's
    process may still be exiting (slowly on a loaded machine), and cancelling it then records a finished job as
    CANCELLED."""
    folder = sweep / ".submitit"
    for d in folder.iterdir() if folder.is_dir() else ():
        if not d.name.isdigit():
            continue
        deadline = time.monotonic() + grace
        while _squeue(env, d.name) and time.monotonic() < deadline:
            time.sleep(0.5)
        if _squeue(env, d.name):
            _run(["scancel", d.name], env, check=False)


def _expected_steps() -> list[int]:
    return [*range(0, STEPS, LOG_EVERY), STEPS - 1]


def test_submitit_sweep_interrupted_mid_training_resumes_and_finishes_once(slurm, workdir, tmp_path):
    """Two 400-step jobs through `hydra/launcher=slurm_gpu`; each is interrupted once mid-training:
    seed=1 by `scontrol requeue` (what an admin or a node failure does), seed=2 by the preemption / time-out
    signal (USR2: submitit calls the launcher's checkpoint() hook and requeues the job itself). Both resume from
    their checkpoint.npz and finish exactly once."""
    sweep = workdir / "submitit"
    overrides = [*CPU_PRESET, *TINY, f"train.steps={STEPS}", f"train.checkpoint_every={CKPT_EVERY}"]
    overrides += [f"train.log_every={LOG_EVERY}", "seed=1,2", f"hydra.sweep.dir={sweep}"]
    out = open(tmp_path / "sweep.out", "w")  # noqa: SIM115  (closed in finally)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sympscale.train", "-m", *overrides],
        env=slurm,
        cwd=tmp_path,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    interrupt = {1: "requeue", 2: "usr2"}
    done: dict[int, dict] = {}  # seed -> {slurm id, steps logged before the interruption}
    try:
        while proc.poll() is None and time.monotonic() - t0 < 420:
            for job_dir in sweep.glob("*seed=*"):
                seed = int(re.search(r"seed=(\d+)", job_dir.name).group(1))
                if seed in done or not (job_dir / "checkpoint.npz").exists():
                    continue
                steps = _loss_steps(job_dir)
                if not steps or steps[-1] < 2 * CKPT_EVERY:
                    continue
                slurm_id = str(OmegaConf.load(job_dir / ".hydra" / "hydra.yaml").hydra.job.id)
                if interrupt[seed] == "requeue":
                    _run(["scontrol", "requeue", slurm_id], slurm)
                else:
                    _run(["scancel", "--signal=USR2", slurm_id], slurm)
                done[seed] = {"id": slurm_id, "before": steps, "at": time.monotonic() - t0}
            for rec in done.values():
                _release_if_held(slurm, rec["id"])
            time.sleep(0.5)
        rc = proc.wait(timeout=max(1, 420 - (time.monotonic() - t0)))
    finally:
        if proc.poll() is None:
            proc.kill()
        out.close()
        _cancel_arrays(slurm, sweep)
    log = (tmp_path / "sweep.out").read_text()
    print(f"sweep: {time.monotonic() - t0:.0f}s, interrupted {done}")
    assert rc == 0, log[-4000:]
    assert set(done) == {1, 2}, f"a job finished before it could be interrupted: {done}\n{log[-3000:]}"

    array_id = done[1]["id"].split("_")[0]
    submission = (sweep / ".submitit" / array_id / f"{array_id}_submission.sh").read_text()
    assert "#SBATCH --requeue" in submission, submission  # the test cluster has JobRequeue=0
    # tests/test_slurm.py checks the preset through submitit_sbatch_preview: it must be what was submitted
    preview = submitit_sbatch_preview(
        _launcher_config([o for o in overrides if not o.startswith("seed=")]), "x", str(sweep / ".submitit" / "%j"), 2
    )
    assert _sbatch_lines(preview) == _sbatch_lines(submission), (preview, submission)
    dirs = sorted(d for d in sweep.iterdir() if d.is_dir() and not d.name.startswith("."))
    assert len(dirs) == 2, dirs
    for job_dir in dirs:
        seed = int(re.search(r"seed=(\d+)", job_dir.name).group(1))
        m = json.loads((job_dir / "metrics.json").read_text())
        assert m["status"] == "done" and m["seed"] == seed
        assert json.loads((job_dir / "status.json").read_text())["status"] == "done"
        assert not (job_dir / "checkpoint.npz").exists()
        resumed = m["train"]["resumed_from_step"]
        assert resumed > 0 and resumed % CKPT_EVERY == 0, (seed, resumed)
        assert m["train"]["steps_trained"] == STEPS
        # each logged step once: the resumed run trimmed what it redid
        assert _loss_steps(job_dir) == _expected_steps(), _loss_steps(job_dir)
        # the job's output (submitit appends across restarts): two starts, one resume, one completion
        slurm_id = done[seed]["id"]
        job_log = (sweep / ".submitit" / slurm_id / f"{slurm_id}_0_log.out").read_text()
        submitit_lines = [line for line in job_log.splitlines() if line.startswith("submitit ")]
        assert sum("Starting with JobEnvironment" in line for line in submitit_lines) == 2, job_log[-3000:]
        assert sum("Job completed successfully" in line for line in submitit_lines) == 1, job_log[-3000:]
        assert re.findall(r"resuming from the checkpoint at step (\d+)", job_log) == [str(resumed)], job_log
        if interrupt[seed] == "usr2":
            assert any(f"Requeued job {slurm_id}" in line for line in submitit_lines), job_log[-3000:]
        assert resumed < STEPS
    records = _job_show(slurm, array_id)
    assert sorted(r["JobState"] for r in records) == ["COMPLETED", "COMPLETED"], records
    assert sorted(int(r["Restarts"]) for r in records) == [1, 1], records
    assert not _squeue(slurm, array_id)


def test_node_array_script_runs_each_grid_point_once(slurm, workdir, tmp_path):
    """`python -m sympscale.launcher.slurm node-array --nodes 2 --platform cpu` submitted with sbatch: each array
    task runs its shard through local_devices; together every grid point, each once."""
    sweep = tmp_path / "sweep"
    grid = [*TINY, "train.steps=10", "train.log_every=5", "seed=1-3"]
    grid += [f"hydra.launcher.compilation_cache={workdir / 'submitit' / '.jax_cache'}"]
    script = _run(
        [
            sys.executable,
            "-m",
            "sympscale.launcher.slurm",
            "node-array",
            "--nodes",
            "2",
            "--platform",
            "cpu",
            "--partition",
            PARTITION,
            "--time",
            "30:00",
            "--python",
            sys.executable,
            "--sweep-dir",
            str(sweep),
            "--",
            *grid,
        ],
        slurm,
    ).stdout
    assert "--gpus-per-node" not in script
    (tmp_path / "sweep.sbatch").write_text(script)
    t0 = time.monotonic()
    array_id = _run(["sbatch", "--parsable", f"--chdir={tmp_path}", str(tmp_path / "sweep.sbatch")], slurm)
    array_id = array_id.stdout.strip().split(";")[0]
    while _squeue(slurm, array_id) and time.monotonic() - t0 < 420:
        time.sleep(1)
    outs = {i: tmp_path / f"slurm-{array_id}_{i}.out" for i in (0, 1)}
    text = {i: p.read_text() if p.exists() else "(no output)" for i, p in outs.items()}
    print(f"node array: {time.monotonic() - t0:.0f}s")
    if _squeue(slurm, array_id):
        _run(["scancel", array_id], slurm, check=False)
        pytest.fail(f"the node array was still queued after {time.monotonic() - t0:.0f}s: {text}")
    records = _job_show(slurm, array_id)
    assert sorted((r["JobState"], r["ExitCode"]) for r in records) == [("COMPLETED", "0:0")] * 2, (records, text)

    started = {}
    for i, t in text.items():
        assert f"[shard {i}/2]" in t, t[-3000:]
        for ref in re.findall(r"^\[launcher\] done\s+#([\d,]+)", t, re.M):  # #k, or a seed bundle's #k,l
            for idx in ref.split(","):
                assert idx not in started, f"grid point #{idx} ran in task {started[idx]} and {i}"
                started[idx] = i
    # shares follow bundles (`sharding.shard_positions`): the grid's 3 seeds of one configuration cut in two
    # contiguous parts, #0 on task 0 and #1, #2 together on task 1 (by job index it was k mod 2: no bundle whole)
    assert started == {"0": 0, "1": 1, "2": 1}, (started, text)
    dirs = sorted(d for d in sweep.iterdir() if d.is_dir() and not d.name.startswith("."))
    assert [re.search(r"seed=(\d+)", d.name).group(1) for d in dirs] == ["1", "2", "3"], dirs
    for d in dirs:
        assert json.loads((d / "metrics.json").read_text())["status"] == "done"
        assert json.loads((d / "status.json").read_text())["status"] == "done"
        assert _loss_steps(d) == [0, 5, 9]
