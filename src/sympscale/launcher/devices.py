"""Find the node's accelerators without importing JAX, and build each job's device environment.

NVIDIA: one job sees `CUDA_VISIBLE_DEVICES=k` (numbered in PCI bus order, as `nvidia-smi` numbers them). ROCm:
`ROCR_VISIBLE_DEVICES=k` and `HIP_VISIBLE_DEVICES=0` (HIP indices count within what ROCR exposes). A mask the
parent already has (Slurm sets one) is honoured: its entries are the devices (a HIP mask under a ROCR mask picks
among ROCR's), and a mask that hides every device (empty, or `-1`) means that platform has none. With
`platform=auto` the masks decide before detection does: a mask set only for ROCm is not overruled by NVIDIA GPUs
the driver lists; where masks name both platforms (Slurm may set CUDA_VISIBLE_DEVICES and ROCR_VISIBLE_DEVICES
together) or neither, the platform whose devices are detected comes first, an explicit `devices` list included.
CPU: a number of worker slots (half the cores this process may use), each job forced onto the CPU backend.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import subprocess
from pathlib import Path

from sympscale import without_own_x64

PLATFORMS = ("auto", "cuda", "rocm", "cpu")
# The memory share of a job: every jaxlib reads XLA_PYTHON_CLIENT_MEM_FRACTION; those since late 2024 also read
# XLA_CLIENT_MEM_FRACTION, and refuse to start a GPU when both are set. A job that shares its device gets the
# first, and neither from the parent.
MEM_FRACTION_VARS = ("XLA_PYTHON_CLIENT_MEM_FRACTION", "XLA_CLIENT_MEM_FRACTION")
MASK_VARS = {"cuda": ("CUDA_VISIBLE_DEVICES",), "rocm": ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")}


class MaskError(ValueError):
    """The parent's device masks contradict each other (said in one line that names them)."""


@dataclasses.dataclass(frozen=True)
class DevicePlan:
    platform: str  # cuda | rocm | cpu
    devices: tuple[str, ...]  # device ids as the child's mask variable spells them ("cpu0", ... for CPU)
    source: str  # how they were found, for the log
    masked: bool = False  # the ids are the parent's mask's, in its own numbering (else the driver's or the user's)


def _mask(var: str, env: dict) -> list[str] | None:
    value = env.get(var)
    if value is None:
        return None
    return [d.strip() for d in value.split(",") if d.strip() and d.strip() != "-1"]


def parent_mask(platform: str, env: dict) -> tuple[tuple[str, ...], list[str]] | None:
    """(the variables that set it, its devices) of the mask the parent set for `platform` ([] when it hides every
    device), or None when it set none. ROCm: HIP_VISIBLE_DEVICES under ROCR_VISIBLE_DEVICES counts within ROCR's
    devices."""
    masks = [((var,), m) for var in MASK_VARS[platform] if (m := _mask(var, env)) is not None]
    if len(masks) == 2 and masks[0][1]:  # ROCR (exposing devices), then HIP
        (_, rocr), (_, hip) = masks
        if not all(i.isdigit() and int(i) < len(rocr) for i in hip):
            raise MaskError(
                f"HIP_VISIBLE_DEVICES={env['HIP_VISIBLE_DEVICES']!r} does not index the "
                f"{len(rocr)} device(s) of ROCR_VISIBLE_DEVICES={env['ROCR_VISIBLE_DEVICES']!r}; valid: indices 0 to "
                f"{len(rocr) - 1}, or set one of the two"
            )
        return MASK_VARS["rocm"], [rocr[int(i)] for i in hip]
    return masks[0] if masks else None


def _shown(variables: tuple[str, ...], env: dict) -> str:
    """A mask as the user set it: VAR='value' (each variable of a composed mask)."""
    return " and ".join(f"{var}={env[var]!r}" for var in variables)


def usable_cores() -> int:
    """The cores this process may run on (a Slurm allocation or `taskset` restricts them), else the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


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
        return _cpu_plan(devices, cpu_workers)
    masks, contradictions = _parent_masks(("cuda", "rocm") if platform == "auto" else (platform,), env)
    detected = functools.cache(lambda plat: _nvidia_ids() if plat == "cuda" else _rocm_ids())  # each driver once
    candidates = _auto_order(masks, detected) if platform == "auto" else (platform,)
    if devices:
        if candidates[0] in contradictions:
            raise contradictions[candidates[0]]
        return _explicit(candidates[0], [str(d) for d in devices], masks.get(candidates[0]), env)
    for plat in candidates:
        if plat in contradictions and (platform != "auto" or detected(plat)):
            raise contradictions[plat]
        plan = _masked_or_detected(plat, masks[plat], detected)
        if plan is not None:
            return plan
    return _no_gpu(platform, masks, cpu_workers, env)


def _cpu_plan(devices: list | None, cpu_workers: int | None) -> DevicePlan:
    """CPU worker slots: the explicit list, else `cpu_workers`, else half the cores this process may use."""
    n = cpu_workers or max(1, usable_cores() // 2)
    ids = [str(d) for d in devices] if devices else [f"cpu{i}" for i in range(n)]
    return DevicePlan("cpu", tuple(ids), "explicit list" if devices else f"{n} CPU worker slot(s)")


def _parent_masks(platforms: tuple[str, ...], env: dict) -> tuple[dict, dict]:
    """({platform: its parent mask or None}, {platform: the MaskError of its contradictory masks}): a platform's
    contradiction matters only where that platform is used."""
    masks, contradictions = {}, {}
    for p in platforms:
        try:
            masks[p] = parent_mask(p, env)
        except MaskError as e:
            masks[p], contradictions[p] = None, e
    return masks, contradictions


def _masked_or_detected(plat: str, mask, detected) -> DevicePlan | None:
    """The devices a parent's mask gives `plat`, else those detected; None where the mask hides every device or
    none is detected."""
    if mask is not None:
        return DevicePlan(plat, tuple(mask[1]), f"parent mask {' and '.join(mask[0])}", True) if mask[1] else None
    ids = detected(plat)
    return DevicePlan(plat, tuple(ids), "detected") if ids else None


def _no_gpu(platform: str, masks: dict, cpu_workers: int | None, env: dict) -> DevicePlan:
    """No GPU to plan on: `auto` falls back to CPU slots, saying which masks hid the GPUs; a named platform is
    refused."""
    hidden = [_shown(m[0], env) for m in masks.values() if m is not None and not m[1]]
    why = f"{' and '.join(hidden)} hide{'s' if len(hidden) == 1 else ''} every device" if hidden else ""
    if platform != "auto":
        raise RuntimeError(
            f"platform={platform} but no {platform} device is available "
            f"({why or 'no mask variable set, nothing detected'}); set hydra.launcher.devices=[...] or platform=cpu"
        )
    cpu = _cpu_plan(None, cpu_workers)
    return dataclasses.replace(cpu, source=f"{why}: {cpu.source}" if why else cpu.source)


def _explicit(
    platform: str, devices: list[str], mask: tuple[tuple[str, ...], list[str]] | None, env: dict
) -> DevicePlan:
    """An explicit device list, within the devices the parent's mask gives this process where it gives some (a
    Slurm allocation: a device outside it may be another user's). A mask that hides every device is overruled."""
    if mask is not None and mask[1] and not set(devices) <= set(mask[1]):
        raise ValueError(
            f"devices={devices} names device(s) outside the {', '.join(mask[1])} that {_shown(mask[0], env)} gives "
            f"this process (another user's, perhaps); valid: some of {', '.join(mask[1])}, or unset the mask"
        )
    return DevicePlan(platform, tuple(devices), "explicit list")


def _auto_order(masks: dict, detected) -> tuple[str, ...]:
    """platform=auto: the GPU platforms in the order to try. A platform named by a parent mask alone; where masks
    name both or neither, the platforms whose devices are detected first (`detected(p)`: their ids)."""
    named = [p for p in ("cuda", "rocm") if masks[p] and masks[p][1]]
    if len(named) == 1:
        return tuple(named)
    pool = named or ["cuda", "rocm"]
    seen = [p for p in pool if (masks[p] is None or masks[p][1]) and detected(p)]
    return tuple(seen + [p for p in pool if p not in seen])


def child_env(plan: DevicePlan, device: str, *, jobs_per_device: int = 1, base: dict | None = None) -> dict:
    """Environment of a job that must see exactly `device` (a SympScale job turns float64 on itself: the launcher
    passes on only the user's own JAX_ENABLE_X64)."""
    env = without_own_x64(dict(os.environ if base is None else base))
    for var in ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL"):
        env.pop(var, None)
    if plan.platform == "cuda":
        env["CUDA_VISIBLE_DEVICES"] = device
        if not plan.masked:  # ids as nvidia-smi numbers them (a parent's mask keeps its own order)
            env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # CUDA's own order puts the fastest first
        env["JAX_PLATFORMS"] = "cuda"
    elif plan.platform == "rocm":
        env["ROCR_VISIBLE_DEVICES"] = device
        env["HIP_VISIBLE_DEVICES"] = "0"
        env["JAX_PLATFORMS"] = "rocm"
    else:
        env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU job must not grab a GPU it happens to see
        env["JAX_PLATFORMS"] = "cpu"
    if plan.platform != "cpu" and jobs_per_device > 1:
        # JAX preallocates 75 % of device memory per process by default; share the device instead (one variable)
        for var in MEM_FRACTION_VARS:
            env.pop(var, None)
        env[MEM_FRACTION_VARS[0]] = f"{0.9 / jobs_per_device:.3f}"
    env["SYMPSCALE_DEVICE"] = f"{plan.platform}:{device}"
    return env
