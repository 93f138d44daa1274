"""`python -m sympscale.bringup`: the CPU mode end to end, the report's schema, and the verdict's logic."""

import json
import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from sympscale.bringup import __main__ as bringup
from sympscale.bringup import devices, numerics, report
from sympscale.bringup.report import SECTIONS, Check
from sympscale.launcher.devices import DevicePlan

CHECK_KEYS = {"section", "name", "status", "detail", "seconds", "values"}


def assert_schema(rep: dict, sections) -> None:
    assert rep["schema_version"] == report.SCHEMA_VERSION
    assert {"platform", "device", "n_devices", "jax", "jaxlib", "x64", "date"} <= set(rep["environment"])
    assert set(rep["verdict"]) >= {"ready", "summary", "first_fix", *report.STATUSES}
    assert all(set(c) == CHECK_KEYS and c["status"] in report.STATUSES for c in rep["checks"])
    seen = list(dict.fromkeys(c["section"] for c in rep["checks"]))
    assert seen == list(sections)  # every section reported, in the order they run
    json.dumps(rep)  # JSON all the way down


@pytest.mark.slow
def test_cpu_mode_end_to_end(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    r = subprocess.run(
        [sys.executable, "-m", "sympscale.bringup", "--out", "bringup"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rep = json.loads((tmp_path / "bringup" / "report.json").read_text())
    assert_schema(rep, SECTIONS)
    assert rep["mode"] == "cpu" and rep["environment"]["platform"] == "cpu"
    assert rep["verdict"]["ready"] and rep["verdict"]["first_fix"] is None, rep["verdict"]
    by = {(c["section"], c["name"]): c for c in rep["checks"]}
    # every float64 operation ran and returned float64; its error and tolerance are on the page
    for op in numerics.OPERATIONS:
        c = by[("numerics", op.name)]
        assert c["status"] == "pass" and c["values"]["float64"] and c["values"]["tol"] == op.tol
        assert c["values"]["rel_error"] <= op.tol
    # memory: each strategy predicted and measured; speed: the step against the GEMM ceiling
    for strategy in ("none", "remat", "blocked"):
        v = by[("memory", strategy)]["values"]
        assert v["peak"] > 0 and v["measured_peak"] > 0 and v["step_s"] > 0
    step = by[("speed", "training step")]["values"]
    assert step["analytic_flops"] > 0 and 0 < step["fraction_of_gemm"]
    assert by[("speed", "float64 GEMM")]["values"]["tflops"] > 0
    assert {n for s, n in by if s == "data"} == {"fput D=16", "toda D=16", "nbody D=12", "cr3bp D=4", "ks D=32"}
    sweep = by[("sweep", "one job per device")]["values"]
    assert sweep["ok"] and sweep["done"] == sweep["n"] >= 1 and all(j["status"] == "done" for j in sweep["jobs"])
    md = (tmp_path / "bringup" / "report.md").read_text()
    assert rep["verdict"]["summary"] in md and all(f"## {s}" in md for s in SECTIONS)
    assert r.stdout.strip().splitlines()[-2].startswith("ready: every check passed")


def test_a_forced_mismatch_fails_naming_the_operation(tmp_path, monkeypatch, capsys):
    real, calls = numerics.run_on, []

    def device_differs(fn, args, device):
        out = real(fn, args, device)
        calls.append(fn)
        if fn is jnp.linalg.cholesky and calls.count(fn) == 1:  # the device's run of this one operation
            out = [o + 1e-9 * np.abs(o).max() for o in out]
        return out

    monkeypatch.setattr(numerics, "run_on", device_differs)
    kept = ("float64 arithmetic", "fft", "cholesky", "expm")  # the others still pass beside the failing one
    monkeypatch.setattr(numerics, "OPERATIONS", tuple(op for op in numerics.OPERATIONS if op.name in kept))
    assert bringup.main(["--quick", "--only", "numerics", "--out", str(tmp_path / "b")]) == 1
    rep = json.loads((tmp_path / "b" / "report.json").read_text())
    assert_schema(rep, ["numerics"])
    assert not rep["verdict"]["ready"] and rep["verdict"]["first_fix"].startswith("numerics/cholesky:")
    assert "relative error 1.0e-09" in rep["verdict"]["first_fix"]
    failed = [c["name"] for c in rep["checks"] if c["status"] == "fail"]
    assert failed == ["cholesky"]
    assert "first thing to fix: numerics/cholesky" in capsys.readouterr().out


def test_float32_from_the_device_fails_whatever_its_error():
    out64 = [np.linspace(0, 1, 5)]
    result = numerics.compare([out64[0].astype(np.float32)], out64)
    assert not result["float64"] and result["rel_error"] < 1e-6


def test_the_first_failure_in_run_order_is_the_first_thing_to_fix():
    checks = [
        Check("devices", "agree", "pass", "fine"),
        Check("isolation", "device 3", "fail", "sees 8 devices"),
        Check("numerics", "fft", "fail", "relative error 1e-3"),
        Check("memory", "none", "warn", "prediction low"),
    ]
    v = report.verdict(checks)
    assert not v["ready"] and v["first_fix"] == "isolation/device 3: sees 8 devices"
    assert (v["fail"], v["warn"], v["pass"]) == (2, 1, 1)
    ok = report.verdict([c for c in checks if c.status != "fail"])
    assert ok["ready"] and ok["summary"] == "ready: every check passed (1 warning(s))"
    with pytest.raises(ValueError, match="status='maybe'"):
        Check("devices", "x", "maybe", "")


def test_launcher_and_jax_disagreeing_is_named():
    eight = DevicePlan("cuda", tuple(str(i) for i in range(8)), "detected")
    assert devices.agreement(eight, {"platform": "gpu", "n": 8}) is None
    assert "JAX sees 7" in devices.agreement(eight, {"platform": "gpu", "n": 7})
    assert "jaxlib" in devices.agreement(eight, {"platform": "cpu", "n": 1})
    assert devices.agreement(DevicePlan("cpu", ("cpu0",), "slots"), {"platform": "cpu", "n": 1}) is None


def test_isolation_probe_sees_one_device():
    probe = devices.probe_isolation(DevicePlan("cpu", ("cpu0",), "slots"), "cpu0")
    assert probe["ok"] and probe["n"] == 1 and probe["platform"] == "cpu"
    # a CUDA job environment on a machine without CUDA: JAX cannot start there, and the probe says so
    probe = devices.probe_isolation(DevicePlan("cuda", ("0",), "explicit list"), "0")
    assert not probe["ok"] and probe["error"]


def test_a_lone_report_md_is_kept_too(tmp_path):
    out = tmp_path / "b"
    out.mkdir()
    (out / "report.md").write_text("notes of my own")
    kept = report.write(report.build([], mode="cpu", environment={}, started=1.0e9), out)
    assert len(kept) == 1 and open(kept[0]).read() == "notes of my own"


def test_a_partial_bringup_says_what_did_not_run():
    v = report.verdict([Check("devices", "a", "pass", "")], not_run=["memory", "speed"])
    assert v["ready"] and v["summary"] == "ready: every check passed (not run: memory, speed)"
    v = report.verdict([Check("speed", "step", "skip", "no step")])
    assert v["summary"] == "ready: every check passed (1 skipped)"


def test_a_previous_report_is_kept_not_replaced(tmp_path):
    out = tmp_path / "b"
    first = report.build([Check("devices", "a", "pass", "one")], mode="cpu", environment={}, started=1.0e9)
    assert report.write(first, out) == []
    second = report.build([Check("devices", "a", "fail", "two")], mode="cpu", environment={}, started=2.0e9)
    kept = report.write(second, out)
    assert len(kept) == 2 and all(os.path.exists(p) for p in kept)
    assert json.loads(open(kept[0]).read())["checks"][0]["detail"] == "one"
    assert json.loads((out / "report.json").read_text())["checks"][0]["detail"] == "two"


@pytest.mark.parametrize(
    "args, fragment", [(["--only", "nope"], "--only='nope'"), (["--bogus"], "unrecognized arguments: --bogus")]
)
def test_bad_command_line_is_one_line_and_exit_2(tmp_path, args, fragment):
    r = subprocess.run(
        [sys.executable, "-m", "sympscale.bringup", *args], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1 and fragment in lines[0], r.stderr
    assert "Traceback" not in r.stderr and not list(tmp_path.iterdir())


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "f").write_text("mine")
    with pytest.raises(SystemExit) as e:
        bringup.main(["--out", str(tmp_path / "f")])
    assert e.value.code == 2 and "is a file" in capsys.readouterr().err
    assert (tmp_path / "f").read_text() == "mine"


def test_a_sweep_job_that_did_not_finish_is_named():
    from subprocess import CompletedProcess

    from sympscale.bringup.sweep import _outcome

    row = {"device": "0", "seconds": 3.0}
    jobs = [
        {**row, "overrides": ["seed=1"], "status": "done", "cause": None},
        {**row, "overrides": ["seed=2"], "status": "failed", "cause": "non-finite training loss"},
    ]
    out = _outcome(CompletedProcess([], 1, "", "1 of 2 jobs failed"), jobs, 2)
    assert not out["ok"] and out["done"] == 1
    assert out["error"] == "['seed=2']: failed (non-finite training loss)"
    assert _outcome(CompletedProcess([], 0, "", ""), jobs[:1], 1)["ok"]
    assert _outcome(CompletedProcess([], 2, "", "sympscale: bad"), [], 1)["error"] == "sympscale: bad"


def test_memory_rows_say_what_they_found():
    from sympscale.bringup.checks import _strategy_status

    gib = 2**30
    gpu = {"device": "gpu:H200", "budget": 100 * gib}
    ok = {"memory": "remat", "fits": True, "peak": 10 * gib, "measured_peak": 10.5 * gib, "step_s": 1.0}
    assert _strategy_status(ok, gpu)[0] == "pass"
    low = {**ok, "measured_peak": 12 * gib}
    status, detail = _strategy_status(low, gpu)
    assert status == "warn" and "more than 10 % below" in detail
    assert _strategy_status(low, {**gpu, "device": "cpu:cpu"})[0] == "pass"  # RSS is not the program's peak
    too_big = {"memory": "none", "fits": True, "peak": 95 * gib, "run_error": "RESOURCE_EXHAUSTED"}  # > 90 %
    assert _strategy_status(too_big, gpu) == (
        "pass",
        "predicted 95.000 GiB > 90% of the budget 100.000 GiB: does not fit",
    )
    broke = {"memory": "blocked", "fits": True, "peak": 5 * gib, "run_error": "XlaRuntimeError: INTERNAL"}
    status, detail = _strategy_status(broke, gpu)
    assert status == "warn" and "predicted to fit, but the measured step failed: XlaRuntimeError" in detail


def _table(*rows, budget=100 * 2**30):
    return {"device": "gpu:H200", "budget": budget, "strategies": list(rows)}


def test_the_batch_is_halved_only_for_want_of_memory(monkeypatch):
    from sympscale.bringup import checks, performance

    gib, asked = 2**30, []

    def table_at(overrides):
        batch = int(next(o for o in overrides if o.startswith("train.batch_size=")).split("=")[1])
        asked.append(batch)
        peak = batch / 512 * 200 * gib  # fits under 90 GiB from B=128 on
        row = {"memory": "remat", "peak": peak, "fits": peak <= 100 * gib}
        if peak <= 90 * gib:
            row.update(step_s=0.5, measured_peak=peak)
        else:
            row["run_error"] = "XlaRuntimeError: RESOURCE_EXHAUSTED: out of memory"
        return _table(row)

    monkeypatch.setattr(performance, "profile_memory", table_at)
    ctx = checks.Context(checks.NODE, {})
    out = checks.check_memory(ctx)
    assert asked == [512, 256, 128] and ctx.memory["batch_size"] == 128
    assert out[-1].status == "warn" and "the largest that fits is D=256, width 512, B=128" in out[-1].detail
    assert out[0].values["peak"] == 200 * gib  # the rows report the headline batch

    asked.clear()
    broken = _table({"memory": "remat", "peak": gib, "fits": True, "run_error": "XlaRuntimeError: INTERNAL"})
    monkeypatch.setattr(performance, "profile_memory", lambda overrides: asked.append(1) or broken)
    out = checks.check_memory(checks.Context(checks.NODE, {}))
    assert asked == [1], "a failure that is not memory must not be retried at smaller batches"
    assert out[-1].status == "fail" and "no memory strategy runs at D=256, width 512, B=512" in out[-1].detail


def test_a_section_that_raises_is_a_failed_check_and_the_rest_run(monkeypatch):
    from sympscale.bringup import checks

    def broken(ctx):
        raise MemoryError("GEMM: RESOURCE_EXHAUSTED")

    monkeypatch.setitem(checks.RUNNERS, "speed", broken)
    (c,) = checks.run_section("speed", checks.Context(checks.QUICK, {}))
    assert (c.section, c.status) == ("speed", "fail") and "MemoryError: GEMM: RESOURCE_EXHAUSTED" in c.detail


def test_symp_step_flops_against_a_hand_count():
    from sympscale.bringup.performance import symp_step_flops

    D, w, depth, B, T = 8, 16, 3, 2, 5  # N = 4
    forward_mlp = 2 * (4 * 16 + 2 * 16 * 16 + 16)
    # leapfrog: kick, drift, kick = 2 kicks (MLP forward + input gradient) and 1 drift (4 N^2) per substep
    per_state = 2 * 2 * forward_mlp + 1 * 4 * 4 * 4
    forward = B * T * 1 * per_state
    assert symp_step_flops(D, w, depth, B, T, substeps=1, method="leapfrog", remat=False) == 3 * forward
    assert symp_step_flops(D, w, depth, B, T, substeps=1, method="leapfrog", remat=True) == 4 * forward
    # Yoshida-4, 2 substeps: 3 drifts per substep, 2·3 + 1 = 7 kicks (the substeps share their boundary kick)
    y4 = symp_step_flops(D, w, depth, B, T, substeps=2, method="yoshida4", remat=False)
    assert y4 == 3 * B * T * (7 * 2 * forward_mlp + 6 * 4 * 16)
    # leapfrog, 3 substeps: 4 kicks, 3 drifts
    lf = symp_step_flops(D, w, depth, B, T, substeps=3, method="leapfrog", remat=False)
    assert lf == 3 * B * T * (4 * 2 * forward_mlp + 3 * 4 * 16)


def test_compare_counts_every_leaf():
    x = np.linspace(0.0, 1.0, 5)
    z = x + 1j * x[::-1]
    assert numerics.compare([z], [z]) == {"rel_error": 0.0, "dtypes": ["complex128"], "float64": True}
    assert not numerics.compare([z.astype(np.complex64)], [z])["float64"]
    assert numerics.compare([z + 1e-6j], [z])["rel_error"] > 1e-7  # the imaginary part is compared
    assert not numerics.compare([np.arange(3)], [np.arange(3)])["float64"]  # nothing floating to compare
    # iteration counts and flags beside float64 states (the projection): equal, or an error of inf
    flags = [x, np.array([3, 4]), np.array([True, True])]
    assert numerics.compare(flags, flags) == {"rel_error": 0.0, "dtypes": ["bool", "float64", "int64"], "float64": True}
    assert numerics.compare([x, np.array([3, 5]), flags[2]], flags)["rel_error"] == np.inf
    assert not numerics.compare([], [])["float64"]
    nan = np.array([1.0, np.nan])
    assert numerics.compare([nan], [nan])["rel_error"] == 0.0
    assert numerics.compare([nan], [np.array([1.0, 2.0])])["rel_error"] == np.inf


def test_vendor_inventory_is_read_from_nvidia_smi(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho '0, NVIDIA H200, 143771'\necho '1, NVIDIA H200, 143771'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    rows = devices.inventory("cuda")
    assert rows == [{"index": str(i), "kind": "NVIDIA H200", "memory_bytes": 143771 * 2**20} for i in (0, 1)]
    assert devices.inventory("cpu") is None
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert devices.inventory("cuda") is None


def test_vendor_inventory_is_read_from_rocm_smi_json():
    text = json.dumps(
        {
            "card0": {"Card series": "AMD Instinct MI300X", "VRAM Total Memory (B)": "205822885888"},
            "card1": {"Card series": "AMD Instinct MI300X", "VRAM Total Memory (B)": "205822885888"},
            "system": {"Driver version": "6.8.5"},
        }
    )
    rows = devices._rocm_rows(text)
    assert [r["index"] for r in rows] == ["0", "1"] and rows[0]["memory_bytes"] == 205822885888
    assert devices._rocm_rows("not json") is None


def test_driver_and_inventory_parsing_of_vendor_output():
    from sympscale.bringup.environment import _rocm_driver

    banner = (
        "\n========= ROCm System Management Interface =========\nDriver version: 6.8.5\n=== End of ROCm SMI Log ===\n"
    )
    assert _rocm_driver(banner) == "6.8.5" and _rocm_driver("=== nothing ===") is None
    rows = devices._nvidia_rows("0, NVIDIA H200, [N/A]\n")
    assert rows == [{"index": "0", "kind": "NVIDIA H200", "memory_bytes": None}]
    new_keys = json.dumps({"card0": {"Card Series": "AMD Instinct MI300X", "VRAM Total Memory (B)": "1"}})
    assert devices._rocm_rows(new_keys)[0]["kind"] == "AMD Instinct MI300X"
