"""Which devices the node has, as the launcher finds them and as JAX sees them; and whether a job process given
one device by the launcher sees exactly that one."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from sympscale.launcher.devices import DevicePlan, child_env, plan_devices

# what a job process reports: how many devices JAX gives it, their platform and kind
_PROBE = (
    "import json, jax; d = jax.devices(); "
    "print(json.dumps({'n': len(d), 'platform': d[0].platform, 'kind': d[0].device_kind}))"
)
JAX_PLATFORM = {"cuda": "gpu", "rocm": "gpu", "cpu": "cpu"}  # launcher platform -> jax Device.platform


def launcher_plan() -> DevicePlan:
    return plan_devices("auto")


def inventory(platform: str, timeout: float = 30.0) -> list[dict] | None:
    """Kind and memory of each GPU as the vendor's tool reports them (nvidia-smi; rocm-smi --json), None where
    there is no such tool or it does not answer."""
    cmd = {
        "cuda": ["nvidia-smi", "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"],
        "rocm": ["rocm-smi", "--showproductname", "--showmeminfo", "vram", "--json"],
    }.get(platform)
    if cmd is None or not shutil.which(cmd[0]):
        return None
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return None
    return _nvidia_rows(r.stdout) if platform == "cuda" else _rocm_rows(r.stdout)


def _nvidia_rows(text: str) -> list[dict]:
    rows = []
    for line in text.strip().splitlines():
        index, name, mib = (part.strip() for part in line.rsplit(",", 2)) if line.count(",") >= 2 else (line, "", "")
        try:
            memory = int(float(mib)) * 2**20
        except ValueError:  # "[N/A]"
            memory = None
        rows.append({"index": index, "kind": name or None, "memory_bytes": memory})
    return rows


def _rocm_rows(text: str) -> list[dict] | None:
    try:
        cards = json.loads(text)
    except ValueError:
        return None
    rows = []
    for card, info in sorted(cards.items()):
        if not card.startswith("card"):
            continue
        total = info.get("VRAM Total Memory (B)")
        rows.append(
            {
                "index": card.removeprefix("card"),
                "kind": _first_of(info, "Card Series", "Card series", "Device Name", "Card SKU"),
                "memory_bytes": int(total) if total else None,
            }
        )
    return rows


def _first_of(info: dict, *keys: str):
    """The first of `keys` that rocm-smi filled in (its JSON names changed across ROCm releases)."""
    return next((info[k] for k in keys if info.get(k)), None)


def jax_devices() -> dict:
    """What JAX in this process sees: default platform, count, kind and per-device memory limit (bytes)."""
    import jax

    devs = jax.devices()
    memory = []
    for d in devs:
        stats = d.memory_stats() if hasattr(d, "memory_stats") else None
        memory.append(int(stats["bytes_limit"]) if stats and stats.get("bytes_limit") else None)
    return {"platform": devs[0].platform, "n": len(devs), "kind": devs[0].device_kind, "memory_bytes": memory}


def agreement(plan: DevicePlan, seen: dict) -> str | None:
    """None when the launcher's plan and JAX's devices agree; else what differs."""
    want = JAX_PLATFORM[plan.platform]
    if seen["platform"] != want:
        return (
            f"the launcher plans {len(plan.devices)} {plan.platform} device(s) ({plan.source}) but JAX's default "
            f"platform is {seen['platform']!r}"
            + (" (is the GPU build of jaxlib installed?)" if want == "gpu" else " (set hydra.launcher.platform)")
        )
    if plan.platform != "cpu" and len(plan.devices) != seen["n"]:
        return (
            f"the launcher finds {len(plan.devices)} {plan.platform} device(s) ({plan.source}), JAX sees "
            f"{seen['n']}: set hydra.launcher.devices=[...] to the devices JAX lists"
        )
    return None


def probe_isolation(plan: DevicePlan, device: str, timeout: float = 300.0) -> dict:
    """Start a fresh process with the launcher's environment for `device`; what it sees, and whether that is one
    device of the planned platform."""
    env = child_env(plan, device)
    try:
        r = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"device": device, "ok": False, "error": f"no answer in {timeout:.0f} s"}
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
        return {"device": device, "ok": False, "error": last}
    try:
        seen = json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"device": device, "ok": False, "error": f"no device report on stdout: {r.stdout.strip()[-200:]!r}"}
    ok = seen["n"] == 1 and seen["platform"] == JAX_PLATFORM[plan.platform]
    return {"device": device, "ok": ok, **seen}
