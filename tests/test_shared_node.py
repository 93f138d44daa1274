"""The GPU path on a shared node (issue 27), the parts a CPU can check: the launching process never starts a JAX
backend, device masks are honoured (an empty one hides every GPU), a platform with no device is refused before
anything is written, and the compilation cache is private to the user.

Fake `nvidia-smi` on PATH stands for a node's GPUs, as in test_bringup.py.
"""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from sympscale.launcher import compile_cache
from sympscale.launcher.devices import MaskError, plan_devices

APP = Path(__file__).parent / "apps" / "fake_study.py"


def _run(cmd: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.fixture
def eight_nvidia_gpus(tmp_path, monkeypatch):
    """A PATH whose `nvidia-smi` lists eight GPUs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "nvidia-smi"
    fake.write_text("#!/bin/sh\nfor i in 0 1 2 3 4 5 6 7; do echo $i; done\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return bin_dir


def test_a_mask_that_hides_every_gpu_means_no_gpu(eight_nvidia_gpus):
    assert plan_devices("auto", env={}).devices == tuple(str(i) for i in range(8))  # detected
    for hidden in ("", "-1", " , "):
        plan = plan_devices("auto", cpu_workers=2, env={"CUDA_VISIBLE_DEVICES": hidden})
        assert plan.platform == "cpu" and plan.devices == ("cpu0", "cpu1"), hidden
        assert plan.source.startswith(f"CUDA_VISIBLE_DEVICES={hidden!r} hides every device"), plan.source
        with pytest.raises(RuntimeError, match=r"platform=cuda but no cuda device .*CUDA_VISIBLE_DEVICES=.*hides"):
            plan_devices("cuda", env={"CUDA_VISIBLE_DEVICES": hidden})
    assert plan_devices("cuda", env={"CUDA_VISIBLE_DEVICES": "3,5"}).devices == ("3", "5")
    assert plan_devices("cuda", devices=["6"], env={"CUDA_VISIBLE_DEVICES": ""}).devices == ("6",)  # explicit wins


def test_an_explicit_device_list_stays_within_the_parents_allocation(eight_nvidia_gpus, tmp_path):
    """Slurm gave this process GPUs 3 and 5: devices=[5] is one of them; devices=[0,1] (GPU 0 and 1 may be another
    user's) is refused in one line before anything is written."""
    assert plan_devices("auto", devices=["5"], env={"CUDA_VISIBLE_DEVICES": "3,5"}).devices == ("5",)
    with pytest.raises(ValueError, match=r"devices=\['0', '1'\] names device\(s\) outside the 3, 5 that "):
        plan_devices("auto", devices=[0, 1], env={"CUDA_VISIBLE_DEVICES": "3,5"})
    sweep = tmp_path / "sweep"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "3,5", "JAX_PLATFORMS": "no_such_platform"}
    cmd = [sys.executable, "-m", "sympscale.train", "-m", "train=smoke", "hydra.launcher.devices=[0,1]"]
    r = _run([*cmd, f"hydra.sweep.dir={sweep}"], env, tmp_path)
    said = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(said) == 1 and "CUDA_VISIBLE_DEVICES='3,5'" in said[0], r.stderr[-2000:]
    assert (
        said[0].startswith("sympscale: hydra.launcher.devices=['0', '1'] names device(s) outside")
        and not sweep.exists()
    )


def test_a_rocm_mask_is_not_overruled_by_the_nvidia_gpus_the_driver_lists(eight_nvidia_gpus):
    for var in ("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES"):
        plan = plan_devices("auto", env={var: "1,2"})
        assert (plan.platform, plan.devices, plan.source) == ("rocm", ("1", "2"), f"parent mask {var}")
    both = plan_devices("auto", env={"ROCR_VISIBLE_DEVICES": "4", "HIP_VISIBLE_DEVICES": "0"})
    assert both.devices == ("4",)  # ROCR's mask names the devices; HIP's counts within it
    with pytest.raises(RuntimeError, match="ROCR_VISIBLE_DEVICES='' hides every device"):
        plan_devices("rocm", env={"ROCR_VISIBLE_DEVICES": ""})


def test_a_hip_mask_under_a_rocr_mask_picks_among_rocrs_devices():
    """Slurm's allocation in ROCR_VISIBLE_DEVICES, narrowed by the user in HIP_VISIBLE_DEVICES (HIP indices count
    within what ROCR exposes): the jobs run on the narrowed devices, not on every device of the allocation."""
    from sympscale.preflight import device_errors

    plan = plan_devices("rocm", env={"ROCR_VISIBLE_DEVICES": "4,5,6,7", "HIP_VISIBLE_DEVICES": "0,1"})
    assert plan.devices == ("4", "5") and plan.source == "parent mask ROCR_VISIBLE_DEVICES and HIP_VISIBLE_DEVICES"
    with pytest.raises(RuntimeError, match="HIP_VISIBLE_DEVICES='' hides every device"):
        plan_devices("rocm", env={"ROCR_VISIBLE_DEVICES": "4,5", "HIP_VISIBLE_DEVICES": ""})
    with pytest.raises(MaskError, match=r"HIP_VISIBLE_DEVICES='2' does not index the 2 device\(s\) of ROCR_VIS"):
        plan_devices("rocm", env={"ROCR_VISIBLE_DEVICES": "4,5", "HIP_VISIBLE_DEVICES": "2"})
    contradictory = {"ROCR_VISIBLE_DEVICES": "4,5", "HIP_VISIBLE_DEVICES": "2"}
    (said,) = device_errors({"platform": "rocm"}, env=contradictory)
    assert said.startswith("HIP_VISIBLE_DEVICES='2' does not index")  # the environment's, said as it is
    hidden = plan_devices("auto", cpu_workers=1, env={"ROCR_VISIBLE_DEVICES": "", "HIP_VISIBLE_DEVICES": "0"})
    assert hidden.platform == "cpu"  # ROCR hides everything: there is nothing for HIP to pick


def test_an_amd_node_is_not_taken_for_an_nvidia_one(monkeypatch):
    """platform=auto on a node whose driver lists AMD GPUs: an explicit device list, and masks set for both
    platforms at once (Slurm may set CUDA_VISIBLE_DEVICES beside ROCR_VISIBLE_DEVICES), give ROCm jobs."""
    from sympscale.launcher import devices

    asked = []
    monkeypatch.setattr(devices, "_nvidia_ids", lambda: asked.append("nvidia") or [])
    monkeypatch.setattr(devices, "_rocm_ids", lambda: asked.append("rocm") or [str(i) for i in range(8)])
    assert plan_devices("auto", devices=["2", "3"], env={}) == devices.DevicePlan("rocm", ("2", "3"), "explicit list")
    both = plan_devices("auto", env={"CUDA_VISIBLE_DEVICES": "0,1", "ROCR_VISIBLE_DEVICES": "0,1"})
    assert (both.platform, both.devices) == ("rocm", ("0", "1"))
    asked.clear()
    assert plan_devices("auto", env={}).platform == "rocm" and sorted(asked) == ["nvidia", "rocm"]  # each once
    monkeypatch.setattr(devices, "_nvidia_ids", lambda: ["0", "1"])  # an NVIDIA node keeps CUDA
    assert plan_devices("auto", devices=["1"], env={}).platform == "cuda"
    assert plan_devices("auto", env={"CUDA_VISIBLE_DEVICES": "1", "ROCR_VISIBLE_DEVICES": "1"}).platform == "cuda"
    monkeypatch.setattr(devices, "_rocm_ids", lambda: [])  # ...even with stale, contradictory ROCm masks
    stale = {"ROCR_VISIBLE_DEVICES": "2,3", "HIP_VISIBLE_DEVICES": "2,3"}
    assert plan_devices("auto", env=stale).devices == ("0", "1")
    assert plan_devices("auto", env={**stale, "CUDA_VISIBLE_DEVICES": "1"}).devices == ("1",)


def test_the_cpu_slots_follow_the_cores_this_process_may_use(monkeypatch):
    """A Slurm allocation (or taskset) of 4 cores on a 128-core node: 2 slots, not 64 processes on 4 cores."""
    monkeypatch.setattr(os, "cpu_count", lambda: 128)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
    assert plan_devices("cpu", env={}).devices == ("cpu0", "cpu1")


def test_a_job_sharing_its_gpu_gets_one_memory_fraction_variable(eight_nvidia_gpus):
    """Current jaxlib refuses to start a GPU when XLA_CLIENT_MEM_FRACTION and XLA_PYTHON_CLIENT_MEM_FRACTION are
    both set: a job gets only the one every jaxlib reads, with the user's own of either name replaced; a user who
    set both for jobs that keep the whole device is told before anything runs."""
    from sympscale.launcher.devices import child_env
    from sympscale.preflight import device_errors

    plan = plan_devices("auto", env={})
    users = {"XLA_CLIENT_MEM_FRACTION": "0.8", "XLA_PYTHON_CLIENT_MEM_FRACTION": "0.8"}
    env = child_env(plan, "3", jobs_per_device=4, base=users)
    assert (env["XLA_PYTHON_CLIENT_MEM_FRACTION"], "XLA_CLIENT_MEM_FRACTION" in env) == ("0.225", False)
    assert env["CUDA_VISIBLE_DEVICES"] == "3" and env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"  # nvidia-smi's numbers
    masked = plan_devices("auto", env={"CUDA_VISIBLE_DEVICES": "3"})  # the parent's numbers, in its own order
    assert "CUDA_DEVICE_ORDER" not in child_env(masked, "3", base={})
    assert child_env(plan, "3", base=users)["XLA_CLIENT_MEM_FRACTION"] == "0.8"  # the user's, untouched
    (said,) = device_errors({"jobs_per_device": 1}, env=users)
    assert said.startswith("XLA_PYTHON_CLIENT_MEM_FRACTION='0.8' and XLA_CLIENT_MEM_FRACTION='0.8' are both set")
    assert device_errors({"jobs_per_device": 2}, env=users) == []  # each job gets the launcher's one variable
    assert device_errors({"platform": "cpu"}, env=users) == []  # no GPU started


def test_a_platform_with_no_device_is_refused_in_one_line_before_anything_is_written(tmp_path):
    sweep = tmp_path / "sweep"
    env = {**os.environ, "PATH": os.path.dirname(sys.executable), "JAX_PLATFORMS": "cpu"}  # no nvidia-smi
    env.pop("CUDA_VISIBLE_DEVICES", None)
    if Path("/proc/driver/nvidia/gpus").is_dir():
        pytest.skip("this machine has an NVIDIA driver: platform=cuda is possible here")
    cmd = [sys.executable, "-m", "sympscale.train", "-m", "train=smoke", "hydra.launcher.platform=cuda"]
    r = _run([*cmd, f"hydra.sweep.dir={sweep}"], env, tmp_path)
    said = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(said) == 1, r.stderr[-2000:]
    assert said[0].startswith("sympscale: hydra.launcher.platform=cuda but no cuda device is available"), said
    assert "platform=cpu" in said[0] and not sweep.exists()


BACKEND_CHECK = """
import itertools, json, sys
from hydra import compose, initialize_config_dir
from jax._src import xla_bridge
from sympscale.preflight import job_errors
from sympscale.train import config_dir

systems = [("fput", 16), ("toda", 16), ("nbody", 16), ("cr3bp", 4), ("ks", 64), ("ks_32pi", 64)]
models = ["symp", "gru", "rk4", "freeform", "oracle"]
problems = {}
with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
    for (system, D), model in itertools.product(systems, models):
        over = [f"system={system}", f"D={D}", f"model={model}", "train=smoke", f"data.cache_dir={sys.argv[1]}"]
        cfg = compose(config_name="config", overrides=over, return_hydra_config=True)
        problems[f"{system}-{model}"] = job_errors(cfg, "hydra.sweep.dir", "hydra.sweep.subdir")
print(json.dumps({"backend": xla_bridge.backends_are_initialized(), "problems": problems}))
"""


def test_validating_every_system_and_model_never_starts_a_jax_backend(tmp_path):
    """What the sweeper runs in the launching process for each job of a grid: were a backend started there, it
    would take its share of every visible GPU before the jobs start (and with this platform, fail)."""
    env = {**os.environ, "JAX_PLATFORMS": "no_such_platform"}
    r = _run([sys.executable, "-c", BACKEND_CHECK, str(tmp_path / "cache")], env, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["backend"] is False
    assert len(out["problems"]) == 30 and all(v == [] for v in out["problems"].values()), out["problems"]


def test_the_compilation_cache_is_private_to_the_user_by_default(tmp_path):
    home = tmp_path / "home"
    folder, why = compile_cache.resolve("auto", {"HOME": str(home)})
    assert folder == home / ".cache" / "sympscale" / "jax-compile" and why == "private to this user"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    folder.chmod(0o775)  # someone opened it to the group: JAX would run what the group plants
    off, why = compile_cache.resolve("auto", {"HOME": str(home)})
    assert off is None and "not private to this user" in why and "775" in why
    assert compile_cache.resolve("auto", {"XDG_CACHE_HOME": str(tmp_path / "xdg")})[0] == (
        tmp_path / "xdg" / "sympscale" / "jax-compile"
    )
    assert compile_cache.resolve(None)[0] is None and compile_cache.resolve("/shared/cache")[0] == Path("/shared/cache")


def test_jobs_never_use_a_cache_in_the_sweep_folder(tmp_path):
    """The old default, `<sweep>/.jax_cache`, is a folder a group shares: what is planted there is never used."""
    sweep = tmp_path / "sweep"
    (sweep / ".jax_cache").mkdir(parents=True)
    (sweep / ".jax_cache" / "jit_step-planted-cache").write_bytes(b"\x7fELF planted")
    env = {**os.environ, "JAX_PLATFORMS": "no_such_platform", "HOME": str(tmp_path / "home")}
    env.pop("XDG_CACHE_HOME", None)
    cmd = [sys.executable, str(APP), "-m", "system=toda", "D=16", "seed=1,2", "hydra.launcher.platform=cpu"]
    r = _run([*cmd, "hydra.launcher.cpu_workers=2", f"hydra.sweep.dir={sweep}"], env, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    private = tmp_path / "home" / ".cache" / "sympscale" / "jax-compile"
    assert f"compilation cache {private} (private to this user)" in r.stdout + r.stderr
    recs = [json.loads(p.read_text()) for p in sweep.glob("*/fake.json")]
    assert len(recs) == 2 and {rec["JAX_COMPILATION_CACHE_DIR"] for rec in recs} == {str(private)}


def test_memory_run_measures_without_any_process_taking_the_device_up_front(monkeypatch, tmp_path):
    """`python -m sympscale.memory --run`: the parent turns preallocation off before its first device operation,
    and its measuring children inherit that (were the parent to take 75 % of a GPU, they would compete for the
    rest)."""
    from sympscale import memory, profiling, train

    train.register()  # the schemas, as importing the entry point does (each test starts from a clean Hydra state)
    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)
    seen = {}
    real_budget = profiling.device_budget

    def budget():
        seen["parent"] = os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE")
        return real_budget()

    def child(cmd, **kw):
        seen["child"] = kw.get("env", os.environ).get("XLA_PYTHON_CLIENT_PREALLOCATE")
        return subprocess.CompletedProcess(cmd, 0, stdout=json.dumps({"measured_peak": 1, "step_s": 0.1}), stderr="")

    monkeypatch.setattr(profiling, "device_budget", budget)
    monkeypatch.setattr(memory.subprocess, "run", child)
    overrides = ["system=toda", "D=8", "train=smoke", f"data.cache_dir={tmp_path}", "capacity.width=8"]
    assert memory.main(["--run", "--strategies", "none", *overrides]) == 0
    assert seen == {"parent": "false", "child": "false"}
    seen.clear()
    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE")
    assert memory.main(["--strategies", "none", *overrides]) == 0  # a prediction alone takes no memory either
    assert seen == {"parent": "false"}


def test_memory_run_measures_only_strategies_predicted_to_fit(monkeypatch, tmp_path, capsys):
    """A strategy predicted above the headroom is not run (a compile and an out-of-memory error saved): what keeps
    the node bring-up's memory section within its budget."""
    from sympscale import memory, profiling, train

    train.register()
    started = []
    monkeypatch.setattr(profiling, "device_budget", lambda: (1 << 10, "a 1 KiB device"))
    monkeypatch.setattr(memory.subprocess, "run", lambda cmd, **kw: started.append(cmd))
    overrides = ["system=toda", "D=8", "train=smoke", f"data.cache_dir={tmp_path}", "capacity.width=8"]
    out = tmp_path / "mem.json"
    assert memory.main(["--run", "--strategies", "none,remat", "--json", str(out), *overrides]) == 0
    rows = json.loads(out.read_text())["strategies"]
    assert started == [] and all(r["run_skipped"].startswith("predicted above 90% of the budget") for r in rows)


# ----- cheap to plan ---------------------------------------------------------------------------------------------


def test_the_dry_run_measures_where_a_job_would_run(tmp_path, eight_nvidia_gpus):
    """The estimate is asked to measure in the environment of a job on the first planned device: a CPU sweep on a
    GPU node on the CPU (it would otherwise time, and take memory on, a GPU the sweep does not use), a sweep on
    GPU 6 on GPU 6 with the job's share of its memory (not on GPU 0, which another user's job may hold)."""
    asked = tmp_path / "estimate.json"
    env = {**os.environ, "FAKE_ESTIMATE": str(asked), "JAX_PLATFORMS": "no_such_platform"}
    cmd = [sys.executable, str(APP), "-m", "system=toda", "D=16", "seed=1,2", "hydra.launcher.dry_run=true"]
    settings = {
        "cpu": ["hydra.launcher.platform=cpu"],
        "gpu": ["hydra.launcher.devices=[6,7]", "hydra.launcher.jobs_per_device=2"],
    }
    said = {}
    for name, extra in settings.items():
        r = _run([*cmd, *extra, f"hydra.sweep.dir={tmp_path / name}"], env, tmp_path)
        assert r.returncode == 0, r.stderr[-3000:]
        said[name] = json.loads(asked.read_text())
    assert said["cpu"]["env"]["JAX_PLATFORMS"] == "cpu" and said["cpu"]["env"]["CUDA_VISIBLE_DEVICES"] == ""
    gpu = said["gpu"]["env"]
    assert (gpu["JAX_PLATFORMS"], gpu["CUDA_VISIBLE_DEVICES"]) == ("cuda", "6")
    assert (gpu["XLA_PYTHON_CLIENT_MEM_FRACTION"], gpu["XLA_CLIENT_MEM_FRACTION"]) == ("0.450", None)  # one name
    assert said["cpu"]["requests"] == said["gpu"]["requests"] == 1
    assert not any(tmp_path.glob("*/*/fake.json"))


def test_the_dry_run_measures_every_configuration_in_one_process(monkeypatch):
    """One `sympscale.estimate` process for the whole grid (Python and JAX start once); a GRU on two systems is one
    program, measured once; each answer goes back to its request, in order."""
    from sympscale import launcher_hook

    started = []

    def run(cmd, *, input, **kw):
        asked = json.loads(input)["requests"]
        started.append(asked)
        answers = [
            {"seconds": 10.0 * r["seeds"], "basis": f"{r['config']['model']['name']} x{r['seeds']}"} for r in asked
        ]
        printed = [json.dumps({"index": i, "estimate": a}) for i, a in enumerate(answers)][::-1]  # any order
        printed[0] = "a library's own words, unflushed: " + printed[0]  # a line that runs into an answer
        return subprocess.CompletedProcess(cmd, 0, stdout="\n".join(["garbled {", *printed]) + "\n", stderr="")

    monkeypatch.setattr(launcher_hook.subprocess, "run", run)
    cfg = {"D": 64, "capacity": {"width": 8}, "train": {"steps": 2}, "data": {}, "bptt_window": None}
    gru_toda, gru_fput = ({**cfg, "system": {"name": s}, "model": {"name": "gru"}} for s in ("toda", "fput"))
    symp_toda = {**cfg, "system": {"name": "toda"}, "model": {"name": "symp"}}
    elsewhere = {**gru_toda, "data": {"cache_dir": "/another/cache"}}  # where the data lives is not work
    recs = launcher_hook.estimate([(gru_toda, 10), (symp_toda, 10), (gru_fput, 10), (gru_toda, 1), (elsewhere, 1)])
    assert len(started) == 1 and len(started[0]) == 3  # the GRU at 10 seeds once; at 1 seed its own program
    assert [r["basis"] for r in recs] == ["gru x10", "symp x10", "gru x10", "gru x1", "gru x1"]
    assert launcher_hook.estimate([]) == [] and len(started) == 1


def test_an_estimate_process_that_dies_keeps_the_estimates_it_printed(monkeypatch):
    """An abort (XLA, the out-of-memory killer) or the time limit loses only the steps not yet measured."""
    from sympscale import launcher_hook

    first = json.dumps({"index": 0, "estimate": {"seconds": 5.0, "basis": "measured"}}) + "\n"
    ends = iter(
        [
            subprocess.CompletedProcess([], -6, stdout=first, stderr="F external/xla/...: Check failed\n"),
            subprocess.TimeoutExpired([], 1200, output=first.encode()),
        ]
    )

    def run(cmd, **kw):
        end = next(ends)
        if isinstance(end, Exception):
            raise end
        return end

    monkeypatch.setattr(launcher_hook.subprocess, "run", run)
    cfg = {"D": 8, "system": {"name": "toda"}, "model": {"name": "symp"}}
    aborted = launcher_hook.estimate([(cfg, 1), (cfg, 2)])
    assert aborted[0] == {"seconds": 5.0, "basis": "measured"}
    assert aborted[1] == {"seconds": None, "basis": "unavailable: F external/xla/...: Check failed"}
    timed_out = launcher_hook.estimate([(cfg, 1), (cfg, 2)])
    assert timed_out[0]["seconds"] == 5.0 and timed_out[1]["basis"].startswith("unavailable: the measured steps took")


def test_the_hook_must_answer_one_estimate_per_request():
    from sympscale.launcher.hook import Hook

    class App:
        @staticmethod
        def estimate(requests, env):
            return [{"seconds": 1.0, "basis": "measured"}]  # one answer for two requests

    with pytest.raises(TypeError, match="one {'seconds'"):
        Hook(App, lambda cfg: None, "an app").estimate([({}, 1), ({}, 2)], {})

    class Before:  # a hook written before the environment was passed: still called, with the requests alone
        @staticmethod
        def estimate(requests):
            return [{"seconds": 1.0, "basis": "measured"} for _ in requests]

    assert (
        Hook(Before, lambda cfg: None, "an app").estimate([({}, 1)], {"CUDA_VISIBLE_DEVICES": "0"})[0]["seconds"] == 1
    )


COUNTED = """
import runpy, sys
from hydra._internal.config_loader_impl import ConfigLoaderImpl

composed, original = [], ConfigLoaderImpl.load_sweep_config
ConfigLoaderImpl.load_sweep_config = lambda self, m, o: composed.append(list(o)) or original(self, m, o)
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    print("COMPOSED", len(composed), file=sys.stderr)
"""


def test_a_sweep_composes_each_job_once_and_its_jobs_share_one_sweep_folder(tmp_path):
    """Validation's configs go to the launcher: 3 jobs, 3 compositions (6 before). A sweep folder named by the time
    (`${now:...}`) is one folder for the launcher and every job, as when each job was composed at launch."""
    env = {**os.environ, "JAX_PLATFORMS": "no_such_platform", "HOME": str(tmp_path / "home")}
    cmd = [sys.executable, "-c", COUNTED, str(APP), "-m", "system=toda", "D=16", "seed=1,2,3"]
    sweep = f"hydra.sweep.dir={tmp_path}/sweep-${{now:%H%M%S%f}}"
    r = _run([*cmd, "hydra.launcher.platform=cpu", "hydra.launcher.cpu_workers=1", sweep], env, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "COMPOSED 3" in r.stderr, r.stderr[-2000:]
    (folder,) = tmp_path.glob("sweep-*")
    assert len(list(folder.glob("*/fake.json"))) == 3 and (folder / ".launcher").is_dir()


class _Loader:  # a config loader that counts its compositions (module level: it is pickled)
    def __init__(self):
        self.composed = []

    def load_sweep_config(self, master, overrides):
        from omegaconf import OmegaConf

        self.composed.append(list(overrides))
        return OmegaConf.create({"hydra": {"job": {"num": 0}}, "seed": overrides[0], "when": "${now:%H%M%S%f}"})

    def other(self):
        return "the loader's own"


def test_the_launcher_takes_the_configs_validation_composed():
    """Composing a job's config costs ~0.1 s: the sweeper hands what it composed to validate to the launcher, once
    each and as Hydra would compose it (validation's HydraConfig froze the hydra node; the resolver cache is the
    master's); anything else is composed afresh."""
    import pickle
    import time

    from hydra.core.utils import setup_globals
    from omegaconf import OmegaConf

    from hydra_plugins.sympscale_sweeper.sympscale_sweeper import ComposedOnce

    setup_globals()  # Hydra's resolvers (`now`), as a Hydra app has them
    loader = _Loader()
    master = OmegaConf.create({"when": "${now:%H%M%S%f}"})
    memo = ComposedOnce(loader)
    kept = memo.compose_and_keep(master, ["seed=1"])
    OmegaConf.set_readonly(kept.hydra, True)
    validated_at = kept.when  # cached in the kept config at validation
    time.sleep(0.01)
    launched_at = master.when  # the master resolves later (the sweep folder, at launch)
    handed = memo.load_sweep_config(master, ["seed=1"])
    assert handed is kept and loader.composed == [["seed=1"]]
    assert handed.when == launched_at != validated_at
    handed.hydra.job.num = 7  # the launcher numbers it
    assert memo.load_sweep_config(master, ["seed=1"]) is not kept and len(loader.composed) == 2  # a second request
    memo.compose_and_keep(master, ["seed=2"])
    assert memo.load_sweep_config(OmegaConf.create({}), ["seed=2"]).seed == "seed=2" and len(loader.composed) == 4
    assert memo.other() == "the loader's own"
    memo.LIMIT = 1
    memo.compose_and_keep(master, ["seed=3"]), memo.compose_and_keep(master, ["seed=4"])
    memo.load_sweep_config(master, ["seed=4"])
    assert loader.composed[-1] == ["seed=4"] and len(loader.composed) == 7  # beyond the limit: composed when asked
    shipped = pickle.loads(pickle.dumps(memo))  # as a Slurm launcher ships it, without the kept configs
    assert shipped._kept == {} and shipped.other() == "the loader's own"
    memo.forget()
    assert memo._kept == {}


def test_the_resolver_cache_a_job_gets_is_the_launchers(caplog):
    """`now` (Hydra's caching resolver) crosses to the job as the launcher resolved it; a resolver whose cached
    values are not JSON is named once and left to the job."""
    import datetime

    from omegaconf import OmegaConf

    from sympscale.launcher import wire

    cfg = OmegaConf.create({})
    OmegaConf.get_cache(cfg)["now"][("%H-%M-%S",)] = "13-11-57"
    OmegaConf.get_cache(cfg)["clock"][("utc",)] = datetime.datetime(2026, 12, 5)
    shipped = json.loads(json.dumps(wire.resolver_cache(cfg)))
    assert wire.cache_entries(shipped) == {"now": {("%H-%M-%S",): "13-11-57"}}
    assert "resolver 'clock': its cached values are not JSON" in caplog.text
