"""The bring-up's sections, in the order they run; each returns its `Check` records.

`Scale` holds the sizes: the node scale is the study's headline configuration (B = 512, D = 256, width 512,
T = 1,000) and its largest datasets; the quick scale (CPU, or `--quick`) runs the same code paths in minutes.
"""

from __future__ import annotations

import dataclasses
import time

import jax

from sympscale import models
from sympscale.bringup import devices, numerics, performance, sweep
from sympscale.bringup.report import SECTIONS, Check
from sympscale.profiling import HEADROOM


@dataclasses.dataclass(frozen=True)
class Scale:
    name: str  # node | quick
    headline: tuple[int, int, int, int]  # D, width, batch, horizon of the memory and speed checks
    gemm_n: int
    datasets: tuple[tuple[str, int], ...]  # (system, D)
    data_size: tuple[int, int]  # n_trajectories, n_obs
    sweep_overrides: tuple[str, ...]
    isolation_max: int | None  # probe at most this many devices (None: all)


NODE = Scale(
    name="node",
    headline=(256, 512, 512, 1000),
    gemm_n=8192,
    datasets=(("fput", 1024), ("toda", 1024), ("nbody", 1024), ("cr3bp", 4), ("ks", 1024)),
    data_size=(50, 1200),
    sweep_overrides=("system=fput", "D=64", "model=symp", "train=smoke"),
    isolation_max=None,
)
QUICK = Scale(
    name="quick",
    headline=(16, 32, 32, 20),
    gemm_n=1024,
    datasets=(("fput", 16), ("toda", 16), ("nbody", 12), ("cr3bp", 4), ("ks", 32)),
    data_size=(6, 200),
    sweep_overrides=(
        "system=fput",
        "D=8",
        "model=symp",
        "train=smoke",
        "train.steps=20",
        "train.horizon_start=8",
        "data.n_trajectories=6",
        "data.n_obs=160",
        "eval.horizon=100",
        "capacity.width=16",
        "capacity.depth=2",
    ),
    isolation_max=2,
)


class Context:
    """What the sections share: the scale, the launcher's device plan, the memory table once measured."""

    def __init__(self, scale: Scale, users_env: dict):
        self.scale = scale
        self.users_env = users_env  # the environment as the user set it: what the mini sweep's jobs get
        self.plan = devices.launcher_plan()
        self.memory: dict | None = None


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def check_devices(ctx: Context) -> list[Check]:
    plan = ctx.plan
    seen, s = _timed(devices.jax_devices)
    listed = devices.inventory(plan.platform)  # the vendor tool's kind and memory, where there is one
    found = {"platform": plan.platform, "devices": list(plan.devices), "source": plan.source, "inventory": listed}
    problem = devices.agreement(plan, seen)
    detail = problem or (
        f"launcher: {len(plan.devices)} {plan.platform} ({plan.source}{_kinds(listed)}); "
        f"JAX: {seen['n']} × {seen['kind']} ({_memory(seen['memory_bytes'])})"
    )
    values = {"launcher": found, "jax": seen}
    return [Check("devices", "launcher and JAX agree", "fail" if problem else "pass", detail, s, values)]


def _kinds(listed: list[dict] | None) -> str:
    if not listed:
        return ""
    kinds = dict.fromkeys(f"{d['kind']}, {_gib(d['memory_bytes'])}" for d in listed)
    return ": " + "; ".join(kinds)


def _memory(limits: list) -> str:
    return ", ".join(dict.fromkeys(_gib(b) for b in limits if b)) or "no device memory limit (CPU)"


def check_isolation(ctx: Context) -> list[Check]:
    ids = ctx.plan.devices[: ctx.scale.isolation_max]
    out = []
    for device in ids:
        probe, s = _timed(lambda device=device: devices.probe_isolation(ctx.plan, device))
        if probe["ok"]:
            detail = f"a job process on {ctx.plan.platform}:{device} sees 1 device ({probe['kind']})"
        elif "error" in probe:
            detail = f"a job process on {ctx.plan.platform}:{device} failed to start JAX: {probe['error']}"
        else:
            detail = (
                f"a job process on {ctx.plan.platform}:{device} sees {probe['n']} {probe['platform']} device(s), "
                f"not one {devices.JAX_PLATFORM[ctx.plan.platform]}: check the mask variables "
                f"(CUDA_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES)"
            )
        out.append(Check("isolation", f"device {device}", "pass" if probe["ok"] else "fail", detail, s, probe))
    return out


def check_numerics(ctx: Context) -> list[Check]:
    device, cpu = jax.devices()[0], jax.devices("cpu")[0]
    same = device.platform == "cpu"
    out = []
    for op in numerics.OPERATIONS:
        try:
            r, s = _timed(lambda op=op: numerics.check(op, device, cpu, quick=ctx.scale.name == "quick"))
        except Exception as e:  # an operation the backend cannot compile or run is this check's finding
            out.append(Check("numerics", op.name, "fail", f"{op.what}: {type(e).__name__}: {_first_line(e)}", 0.0))
            continue
        if not r["float64"]:
            detail = f"{op.what}: the device returned {', '.join(r['dtypes'])}, not float64"
        else:
            detail = f"{op.what}: relative error {r['rel_error']:.1e} vs CPU (tolerance {op.tol:.0e})"
            if r["rel_error"] > op.tol:
                detail += ": do not run the study on this stack until this is understood"
            elif same:
                detail += " (CPU against CPU: the code path, not the hardware)"
        out.append(Check("numerics", op.name, "pass" if r["ok"] else "fail", detail, s, r))
    return out


def headline_overrides(scale: Scale, batch: int) -> list[str]:
    D, width, _, horizon = scale.headline
    return [
        "system=fput",
        f"D={D}",
        "model=symp",
        f"capacity.width={width}",
        f"train.batch_size={batch}",
        f"train.horizon={horizon}",
        f"data.n_obs={max(1200, horizon + 200)}",
    ]


def check_memory(ctx: Context) -> list[Check]:
    """Predicted and measured peak per strategy at the headline config; while nothing runs for want of memory
    (predicted not to fit, or out of memory when measured), the batch is halved. Other failures stop at once."""
    D, width, batch, horizon = ctx.scale.headline
    t0, tables = time.perf_counter(), []
    while True:
        try:
            table = performance.profile_memory(headline_overrides(ctx.scale, batch))
        except Exception as e:
            return [Check("memory", "headline config", "fail", _first_line(e), time.perf_counter() - t0)]
        tables.append({"batch_size": batch, **table})
        runs = [r for r in table["strategies"] if "step_s" in r and _fits_auto(r, table)]
        if runs or batch == 1 or not all(_short_of_memory(r, table) for r in table["strategies"]):
            break
        batch //= 2
    ctx.memory = {**table, "batch_size": batch, "chosen": runs[0] if runs else None, "tried": tables}
    share = (time.perf_counter() - t0) / len(table["strategies"])  # a compile and a measuring process each
    first = tables[0]  # the rows at the headline batch: what a run of that config would meet
    out = [Check("memory", r["memory"], *_strategy_status(r, first), share, r) for r in first["strategies"]]
    where = f"D={D}, width {width}, B={batch}, T={horizon}"
    if not runs:
        out.append(Check("memory", "headline config", "fail", f"no memory strategy runs at {where}", 0.0, ctx.memory))
    elif batch != ctx.scale.headline[2]:
        out.append(Check("memory", "headline config", "warn", f"the largest that fits is {where}", 0.0))
    else:
        out.append(Check("memory", "headline config", "pass", f"{where} fits with {runs[0]['memory']}", 0.0))
    return out


def _fits_auto(row: dict, table: dict) -> bool:
    """Would `train.memory=auto` take this strategy: predicted peak within its headroom of the budget?"""
    peak, budget = row.get("peak"), table.get("budget")
    return peak is None or budget is None or peak <= HEADROOM * budget


def _short_of_memory(row: dict, table: dict) -> bool:
    error = row.get("run_error", "")
    return not _fits_auto(row, table) or "RESOURCE_EXHAUSTED" in error or "out of memory" in error.lower()


def _strategy_status(r: dict, table: dict) -> tuple[str, str]:
    """pass: measured as predicted, or predicted not to fit (and so not expected to run); warn: a step predicted to
    fit that failed, or a prediction well below the measurement."""
    detail = f"predicted {_gib(r.get('peak'))}, measured {_gib(r.get('measured_peak'))} ({r.get('peak_source', '-')})"
    if not _fits_auto(r, table):
        budget = table.get("budget")
        return "pass", f"predicted {_gib(r.get('peak'))} > {HEADROOM:.0%} of the budget {_gib(budget)}: does not fit"
    if "run_error" in r:
        return "warn", f"{detail}; predicted to fit, but the measured step failed: {r['run_error']}"
    if _underestimated(r, table["device"]):
        return "warn", f"{detail}: the prediction is more than 10 % below the measurement"
    return "pass", detail


def _underestimated(row: dict, device: str) -> bool:
    """On an accelerator, is the measured device peak more than 10 % above the compiled prediction?"""
    if device.startswith("cpu") or not row.get("peak") or not row.get("measured_peak"):
        return False  # on CPU the measurement is the whole process's RSS, not comparable
    return row["measured_peak"] > 1.1 * row["peak"]


def check_speed(ctx: Context) -> list[Check]:
    gemm, s = _timed(lambda: performance.gemm_tflops(ctx.scale.gemm_n))
    out = [Check("speed", "float64 GEMM", "pass", f"n={gemm['n']}: {gemm['tflops']:.3f} TFLOP/s", s, gemm)]
    chosen = (ctx.memory or {}).get("chosen")
    if chosen is None:
        out.append(Check("speed", "training step", "skip", "no measured step (see the memory section)", 0.0))
        return out
    D, width, _, horizon = ctx.scale.headline
    batch, opts = ctx.memory["batch_size"], models.options_of("symp")  # the headline runs symp's defaults
    flops = performance.symp_step_flops(
        D,
        width,
        models.Capacity().depth,
        batch,
        horizon,
        substeps=opts.substeps,
        method=opts.method,
        remat=chosen["memory"] != "none",
    )
    tflops = flops / chosen["step_s"] / 1e12
    values = {
        "step_s": chosen["step_s"],
        "memory": chosen["memory"],
        "analytic_flops": flops,
        "tflops": tflops,
        "fraction_of_gemm": tflops / gemm["tflops"],
    }
    detail = (
        f"D={D}, width {width}, B={batch}, T={horizon} ({chosen['memory']}): {chosen['step_s']:.3f} s per step, "
        f"{tflops:.3f} TFLOP/s (analytic count) = {100 * tflops / gemm['tflops']:.1f} % of the GEMM"
    )
    out.append(Check("speed", "training step", "pass", detail, 0.0, values))
    return out


def check_data(ctx: Context) -> list[Check]:
    n_traj, n_obs = ctx.scale.data_size
    out = []
    for system, D in ctx.scale.datasets:
        try:
            r = performance.generation_time(system, D, n_traj, n_obs)
        except Exception as e:
            out.append(Check("data", f"{system} D={D}", "fail", f"generation failed: {_first_line(e)}", 0.0))
            continue
        detail = f"{n_traj} trajectories × {n_obs} observations in {r['seconds']:.1f} s"
        out.append(Check("data", f"{system} D={D}", "pass", detail, r["seconds"], r))
    return out


def check_sweep(ctx: Context) -> list[Check]:
    r = sweep.mini_sweep(ctx.plan, list(ctx.scale.sweep_overrides), ctx.users_env)
    where = f"{len(ctx.plan.devices)} job(s), one per {ctx.plan.platform} device"
    if r["ok"]:
        detail = f"{where}: all done in {r['seconds']:.0f} s"
    else:
        detail = f"{where}: {r.get('done', 0)} done; first problem: {r['error']}"
    return [Check("sweep", "one job per device", "pass" if r["ok"] else "fail", detail, r["seconds"], r)]


RUNNERS = {  # one per report.SECTIONS entry
    "devices": check_devices,
    "isolation": check_isolation,
    "numerics": check_numerics,
    "memory": check_memory,
    "speed": check_speed,
    "data": check_data,
    "sweep": check_sweep,
}


def run_section(section: str, ctx: Context) -> list[Check]:
    """A section's checks; a section that raises is reported as a failed check with its error, and the
    bring-up goes on to the next section."""
    t0 = time.perf_counter()
    try:
        return RUNNERS[section](ctx)
    except Exception as e:
        detail = f"the section stopped with {type(e).__name__}: {_first_line(e)}"
        return [Check(section, "section", "fail", detail, time.perf_counter() - t0)]


def _gib(b) -> str:
    return "-" if b is None else f"{b / 2**30:.3f} GiB"


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


assert tuple(RUNNERS) == SECTIONS, "one runner per section, in the report's order"
