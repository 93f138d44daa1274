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
    assert ok["ready"] and "1 warning" in ok["summary"]
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

    gpu = {"device": "gpu:H200", "budget": 100 * 2**30}
    gib = 2**30
    ok = {"memory": "remat", "fits": True, "peak": 10 * gib, "measured_peak": 10.5 * gib, "step_s": 1.0}
    assert _strategy_status(ok, gpu)[0] == "pass"
    low = {**ok, "measured_peak": 12 * gib}
    assert _strategy_status(low, gpu) == ("warn", _strategy_status(low, gpu)[1])
    assert "10 % below" in _strategy_status(low, gpu)[1]
    assert _strategy_status(low, {**gpu, "device": "cpu:cpu"})[0] == "pass"  # RSS is not the program's peak
    too_big = {"memory": "none", "fits": False, "peak": 150 * gib, "run_error": "RESOURCE_EXHAUSTED"}
    assert _strategy_status(too_big, gpu) == ("pass", "predicted 150.000 GiB > the budget 100.000 GiB: does not fit")
    broke = {"memory": "blocked", "fits": True, "peak": 5 * gib, "run_error": "XlaRuntimeError: INTERNAL"}
    status, detail = _strategy_status(broke, gpu)
    assert status == "warn" and "predicted to fit, but the measured step failed: XlaRuntimeError" in detail


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
