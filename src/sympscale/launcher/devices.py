"""Find the node's accelerators without importing JAX, and build each job's device environment.

NVIDIA: one job sees `CUDA_VISIBLE_DEVICES=k`. ROCm: `ROCR_VISIBLE_DEVICES=k` and `HIP_VISIBLE_DEVICES=0`
(HIP indices count within what ROCR exposes). A mask the parent already has (Slurm sets one) is honoured: its
entries are the devices, and a mask that hides every device (empty, or `-1`) means that platform has none. With
`platform=auto` the masks decide before detection does: a mask set only for ROCm is not overruled by NVIDIA GPUs
the driver lists. CPU: a number of worker slots, each job forced onto the CPU backend.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

from sympscale import without_own_x64

PLATFORMS = ("auto", "cuda", "rocm", "cpu")
MEM_FRACTION_VARS = ("XLA_CLIENT_MEM_FRACTION", "XLA_PYTHON_CLIENT_MEM_FRACTION")
MASK_VARS = {"cuda": ("CUDA_VISIBLE_DEVICES",), "rocm": ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")}


@dataclasses.dataclass(frozen=True)
class DevicePlan:
    platform: str  # cuda | rocm | cpu
    devices: tuple[str, ...]  # device ids as the child's mask variable spells them ("cpu0", ... for CPU)
    source: str  # how they were found, for the log


def _mask(var: str, env: dict) -> list[str] | None:
    value = env.get(var)
    if value is None:
        return None
    return [d.strip() for d in value.split(",") if d.strip() and d.strip() != "-1"]


def parent_mask(platform: str, env: dict) -> tuple[str, list[str]] | None:
    """(variable, its devices) of the first mask the parent set for `platform` ([] when it hides every device),
    or None when it set none."""
    for var in MASK_VARS[platform]:
        mask = _mask(var, env)
        if mask is not None:
            return var, mask
    return None


def _nvidia_ids() -> list[str]:
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if out.returncode == 0:
                return [line.strip() for line in out.stdout.splitlines() if line.strip()]
        except (OSError, subprocess.TimeoutExpired):
            pass
    gpus = Path("/proc/driver/nvidia/gpus")
    return [str(i) for i in range(len(list(gpus.iterdir())))] if gpus.is_dir() else []


def _rocm_ids() -> list[str]:
    """GPU agents of the ROCm kernel driver (nodes with SIMD units), in ROCR's enumeration order."""
    nodes = Path("/sys/class/kfd/kfd/topology/nodes")
    if not nodes.is_dir():
        return []
    n = 0
    for node in sorted(nodes.iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else 1 << 30):
        props = node / "properties"
        if props.exists() and any(
            line.startswith("simd_count") and int(line.split()[1]) > 0 for line in props.read_text().splitlines()
        ):
            n += 1
    return [str(i) for i in range(n)]


def plan_devices(
    platform: str = "auto",
    devices: list | None = None,
    cpu_workers: int | None = None,
    env: dict | None = None,
) -> DevicePlan:
    """Decide which devices jobs are spread over. Explicit `devices` win, then a parent mask, then detection."""
    env = dict(os.environ if env is None else env)
    if platform not in PLATFORMS:
        raise ValueError(f"platform={platform!r} is unknown; valid: {', '.join(PLATFORMS)}")
    if platform == "cpu":
        n = cpu_workers or max(1, (os.cpu_count() or 1) // 2)
        ids = [str(d) for d in devices] if devices else [f"cpu{i}" for i in range(n)]
        return DevicePlan("cpu", tuple(ids), "explicit list" if devices else f"{n} CPU worker slot(s)")
    candidates = ("cuda", "rocm") if platform == "auto" else (platform,)
    if devices:
        return DevicePlan(candidates[0], tuple(str(d) for d in devices), "explicit list")
    masks = {p: parent_mask(p, env) for p in candidates}
    hidden = [f"{m[0]}={env[m[0]]!r}" for m in masks.values() if m is not None and not m[1]]
    if platform == "auto" and any(m and m[1] for m in masks.values()):  # a mask names the platform
        candidates = tuple(p for p in candidates if masks[p] and masks[p][1])
    for plat in candidates:
        if masks[plat] is not None:
            if masks[plat][1]:
                return DevicePlan(plat, tuple(masks[plat][1]), f"parent mask {masks[plat][0]}")
            continue  # the parent hides every device of this platform
        found = _nvidia_ids() if plat == "cuda" else _rocm_ids()
        if found:
            return DevicePlan(plat, tuple(found), "detected")
    why = f"{' and '.join(hidden)} hide{'s' if len(hidden) == 1 else ''} every device" if hidden else ""
    if platform != "auto":
        raise RuntimeError(
            f"platform={platform} but no {platform} device is available "
            f"({why or 'no mask variable set, nothing detected'}); set hydra.launcher.devices=[...] or platform=cpu"
        )
    cpu = plan_devices("cpu", None, cpu_workers, env)
    return dataclasses.replace(cpu, source=f"{why}: {cpu.source}" if why else cpu.source)


def child_env(plan: DevicePlan, device: str, *, jobs_per_device: int = 1, base: dict | None = None) -> dict:
    """Environment of a job that must see exactly `device` (a SympScale job turns float64 on itself: the launcher
    passes on only the user's own JAX_ENABLE_X64)."""
    env = without_own_x64(dict(os.environ if base is None else base))
    for var in ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL"):
        env.pop(var, None)
    if plan.platform == "cuda":
        env["CUDA_VISIBLE_DEVICES"] = device
        env["JAX_PLATFORMS"] = "cuda"
    elif plan.platform == "rocm":
        env["ROCR_VISIBLE_DEVICES"] = device
        env["HIP_VISIBLE_DEVICES"] = "0"
        env["JAX_PLATFORMS"] = "rocm"
    else:
        env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU job must not grab a GPU it happens to see
        env["JAX_PLATFORMS"] = "cpu"
    if plan.platform != "cpu" and jobs_per_device > 1:
        # JAX preallocates 75 % of device memory per process by default; share the device instead (current JAX
        # reads XLA_CLIENT_MEM_FRACTION, earlier versions the deprecated XLA_PYTHON_CLIENT_MEM_FRACTION)
        for var in MEM_FRACTION_VARS:
            env[var] = f"{0.9 / jobs_per_device:.3f}"
    env["SYMPSCALE_DEVICE"] = f"{plan.platform}:{device}"
    return env
