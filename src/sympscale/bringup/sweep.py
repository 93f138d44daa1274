"""A one-job-per-device mini sweep through the real launcher (`python -m sympscale.train -m`), at smoke scale."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sympscale.bringup.process import run_group
from sympscale.launcher.devices import DevicePlan

SUMMARY = "launcher_summary.json"


def mini_sweep(plan: DevicePlan, overrides: list[str], env: dict, timeout: float = 3600.0) -> dict:
    """One job per planned device (seeds 1..n) in a temporary sweep folder, launched with `env` (the user's
    environment: the jobs run as a sweep's would); every job's final status."""
    n = len(plan.devices)
    with tempfile.TemporaryDirectory(prefix="sympscale-bringup-") as tmp:
        sweep = Path(tmp) / "sweep"
        args = [
            "-m",
            f"seed=1-{n}",
            *overrides,
            f"hydra.launcher.platform={plan.platform}",
            f"hydra.launcher.devices=[{','.join(plan.devices)}]",
            f"hydra.sweep.dir={sweep}",
        ]
        env = {**env, "SYMPSCALE_CACHE_DIR": str(Path(tmp) / "cache")}
        t0 = time.perf_counter()
        try:
            r = run_group([sys.executable, "-m", "sympscale.train", *args], env=env, cwd=tmp, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {
                "ok": False,
                "n": n,
                "done": 0,
                "seconds": timeout,
                "jobs": [],
                "error": f"the sweep did not finish in {timeout:.0f} s",
            }
        jobs = json.loads((sweep / SUMMARY).read_text())["jobs"] if (sweep / SUMMARY).exists() else []
        return {**_outcome(r, jobs, n), "seconds": time.perf_counter() - t0}


def _outcome(r: subprocess.CompletedProcess, jobs: list[dict], n: int) -> dict:
    """ok when the sweep exited 0 with all n jobs done; else the first job that was not, or the sweep's last line."""
    done = sum(j["status"] == "done" for j in jobs)
    ok = r.returncode == 0 and done == n
    bad = [j for j in jobs if j["status"] != "done"]
    error = None
    if not ok:
        last = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
        error = f"{bad[0]['overrides']}: {bad[0]['status']} ({bad[0]['cause']})" if bad else last
    rows = [{k: j[k] for k in ("overrides", "status", "device", "seconds", "cause")} for j in jobs]
    return {"ok": ok, "n": n, "done": done, "jobs": rows, "error": error}
