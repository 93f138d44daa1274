"""A tiny Hydra app for the launcher's fault tests: no training, a SympScale-style job folder, injected faults.
Each job's started.json says whether its process imported JAX (a task that needs none must not pay for it).

Job folders are `<sweep>/<job number>`. Each job appends "<seed> <pid>" to `<sweep>/starts.log`, writes
started.json and a status.json of "running" (as the real pipeline does), sleeps, then finishes "done".
TOY_FAULTS="2:raise,3:exit0,4:hang,5:fill" picks a fault per seed (hang: sleep TOY_HANG seconds, default 60;
fill: finish, then fill the sweep's filesystem with `<sweep>/filler` until it is full);
"flaky" fails the first attempt only; TOY_SLEEP sets the normal work time; TOY_BUNDLE=1 makes the app run seed bundles; TOY_PLANT=<marker> makes every job plant malicious pickles named like
the old launcher's payload and result files in `<sweep>/.launcher/` (unpickling one creates the marker).
"""

import atexit
import json
import os
import pickle
import sys
import time
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig

from sympscale import launcher_hook as LAUNCHER_HOOK  # noqa: F401  (as sympscale.train: SympScale-style job folders)

ConfigStore.instance().store(
    name="toy",
    node={
        "defaults": [{"override hydra/launcher": "local_devices"}, "_self_"],
        "seed": 0,
        "name": "toy",
        "data": {"cache_dir": "cache"},
        "train": {"log_every": 10},
        "hydra": {"sweep": {"dir": "toy_sweep", "subdir": "${hydra.job.num}"}, "job": {"chdir": False}},
    },
)


class Planted:
    """Unpickling this creates a marker file: proof that someone loaded a pickle."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "a"))


def plant(sweep: Path, marker: str) -> None:
    work = sweep / ".launcher"
    work.mkdir(parents=True, exist_ok=True)
    blob = pickle.dumps(Planted(marker))
    for n in range(10):
        for name in (f"{n}.payload", f"{n}.result", f"{n}.result.json", f"{n}.json"):
            (work / name).write_bytes(blob)


def task(cfg):
    return work(cfg.seed, Path(HydraConfig.get().runtime.output_dir), Path(HydraConfig.get().sweep.dir))


def work(seed, out: Path, sweep: Path) -> dict:
    from sympscale.jobdir import JobDir

    with open(sweep / "starts.log", "a") as f:
        f.write(f"{seed} {os.getpid()}\n")
    job = JobDir(out)
    job.write_config({"seed": seed})
    job.set_status("running")
    (out / "started.json").write_text(
        json.dumps(
            {"pid": os.getpid(), "seed": seed, "jax": "jax" in sys.modules, "x64": os.environ.get("JAX_ENABLE_X64")}
        )
    )
    if os.environ.get("TOY_PLANT"):
        plant(sweep, os.environ["TOY_PLANT"])
    faults = dict(f.split(":") for f in os.environ.get("TOY_FAULTS", "").split(",") if f)
    fault = faults.get(str(seed))
    time.sleep(
        float(os.environ.get("TOY_HANG", "60")) if fault == "hang" else float(os.environ.get("TOY_SLEEP", "0.1"))
    )
    if fault == "raise" or (fault == "flaky" and not (out / "flaked").exists()):  # flaky: only the first time
        (out / "flaked").touch()
        raise ValueError(f"injected failure for seed {seed}")
    if fault == "exit0":
        os._exit(0)
    job.write_metrics({"seed": seed})
    job.set_status("done")
    if fault == "fill":
        fill(sweep / "filler")
    return {"seed": seed}


def fill(path: Path) -> None:
    """Write zeros to `path` until its filesystem is full (unbuffered: nothing held back)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (1 << 16, 512, 1):
            try:
                while True:
                    os.write(fd, bytes(size))
            except OSError:
                pass
    finally:
        os.close(fd)


class ToyBundle:
    """TOY_BUNDLE=1: the app runs seed bundles (one process, the members one after another);
    TOY_PREPARE_FAIL=<seed> fails that member's preparation."""

    @staticmethod
    def prepare(cfg):
        if os.environ.get("TOY_PREPARE_FAIL") == str(cfg.seed):
            raise RuntimeError(f"injected preparation failure for seed {cfg.seed}")
        return cfg.seed, Path(HydraConfig.get().runtime.output_dir), Path(HydraConfig.get().sweep.dir)

    @staticmethod
    def run(prepared):
        out = []
        for seed, folder, sweep in prepared:
            try:
                out.append(work(seed, folder, sweep))
            except Exception as e:  # noqa: BLE001  (a member's failure is its own)
                out.append(e)
        return out


if os.environ.get("TOY_BUNDLE"):
    LAUNCHER_BUNDLE_TASK = ToyBundle


def report_modules(path: str) -> None:
    """TOY_PARENT_MODULES=<file>: the launching process writes, as it exits, whether it ever imported JAX."""
    atexit.register(lambda: Path(path).write_text(json.dumps({"jax": "jax" in sys.modules})))


if __name__ == "__main__":
    if os.environ.get("TOY_PARENT_MODULES"):
        report_modules(os.environ["TOY_PARENT_MODULES"])
    hydra.main(config_path=None, config_name="toy", version_base="1.3")(task)()
