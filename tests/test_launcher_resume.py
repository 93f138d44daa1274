"""Resume that never lies: the launcher's hook, code versions per job, stale jobs, and task exceptions rebuilt.

The end-to-end test runs `tests/apps/launcher_toy.py` against a copy of the `sympscale` package (first on
PYTHONPATH), edits a file of the copy between runs, and checks what a resume reports, skips and reruns.
"""

import hashlib
import importlib.util
import inspect
import json
import os
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

from sympscale.launcher import records
from sympscale.launcher.hook import Hook, find_hook
from sympscale.launcher.remote_error import describe, rebuild

APP = Path(__file__).parent / "apps" / "launcher_toy.py"
SRC = Path(__file__).resolve().parents[1] / "src" / "sympscale"
CPU2 = ["hydra.launcher.platform=cpu", "hydra.launcher.cpu_workers=2", "hydra.launcher.progress_every=600"]
RERUN = "rerun them with hydra.launcher.rerun_stale=true"


# ------------------------------------------------------------------------------------------ the hook
def task(cfg):
    return cfg


def test_without_a_hook_every_job_costs_the_same_and_its_key_is_its_config_and_task():
    hook = Hook(None, task)
    assert hook.cost({"D": 64}) == 0.0
    assert hook.job_key({"a": 1, "b": [1, 2]}) == hook.job_key({"b": [1, 2], "a": 1}) != hook.job_key({"a": 2})
    assert Hook(None, test_records_tell_new_finished_and_stale_apart).job_key({"a": 1}) != hook.job_key({"a": 1})
    assert hook.code()["source_digest"] == hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:20]
    assert hook.result(Path("nowhere"), "failed", "why") == ("failed", "why")


def test_the_hook_is_the_task_modules_launcher_hook_and_what_it_returns_is_checked(tmp_path):
    import sympscale.launcher_hook

    module = type(sys)("toy_app_module")
    module.LAUNCHER_HOOK = sympscale.launcher_hook
    exec("def task(cfg):\n    return cfg\n", module.__dict__)
    module.task.__module__ = module.__name__
    sys.modules[module.__name__] = module
    try:
        hook = find_hook(module.task)
        cfg = {"D": 8, "train": {"steps": 10, "horizon": 2, "batch_size": 4}, "capacity": {"width": 3}, "name": "a"}
        assert hook.cost(cfg) == 10 * 2 * 4 * 8 * 3
        assert hook.cost({"D": 8}) == 0.0  # a config without the factors is ordered as 0
        assert hook.job_key(cfg) == hook.job_key({**cfg, "name": "b"})  # the name does not change a result
        assert set(hook.code()) == {"version", "source_digest", "libraries"}
    finally:
        del sys.modules[module.__name__]

    class Bad:
        cost = staticmethod(lambda cfg: "big")
        job_key = staticmethod(lambda cfg: "")
        code = staticmethod(lambda: {"version": "1"})
        result = staticmethod(lambda job_dir, status, cause: "done")

    bad = Hook(Bad(), task, "app.LAUNCHER_HOOK")
    for call, expected in [
        (lambda: bad.cost({}), "app.LAUNCHER_HOOK.cost returned 'big'; expected a finite number"),
        (lambda: bad.job_key({}), "app.LAUNCHER_HOOK.job_key returned ''"),
        (lambda: bad.code(), "app.LAUNCHER_HOOK.code returned {'version': '1'}; expected a mapping with a 'source_"),
        (lambda: bad.result(tmp_path, "done", None), "app.LAUNCHER_HOOK.result returned 'done'"),
    ]:
        with pytest.raises(TypeError) as e:
            call()
        assert expected in str(e.value)

    class NotCallable:
        cost = 3

    with pytest.raises(TypeError, match="LAUNCHER_HOOK.cost is 3, not a function"):
        Hook(NotCallable(), task, "app.LAUNCHER_HOOK")


def test_records_tell_new_finished_and_stale_apart():
    code = {"version": "0.2", "source_digest": "new"}
    done = {"status": "done", "key": "k", "code": {"version": "0.1", "source_digest": "old"}}
    assert records.verdict(None, ("k",), code) == ("new", None)
    assert records.verdict({**done, "status": "failed"}, ("k",), code) == ("new", None)
    assert records.verdict(done, ("other",), code) == ("new", None)
    assert records.verdict({**done, "code": code}, ("k",), code) == ("finished", None)
    state, why = records.verdict(done, ("k",), code)
    assert state == "stale" and "version 0.1" in why and "source old; now new" in why
    assert records.verdict({"status": "done", "key": "legacy"}, ("k", "legacy"), code) == ("stale", records.NO_CODE)
    assert records.verdict(done, ("k",), {}) == ("finished", None)  # no digest now: nothing to compare
    # the libraries it ran on are part of the code (issue 27): another JAX makes a finished result stale
    libs = {"jax": "0.11.2", "jaxlib": "0.11.2", "flax": "0.12.0"}
    now = {**code, "libraries": libs}
    assert records.verdict({**done, "code": now}, ("k",), now) == ("finished", None)
    state, why = records.verdict({**done, "code": {**now, "libraries": {**libs, "jax": "0.10.2"}}}, ("k",), now)
    assert state == "stale" and why == "ran on other libraries (jax 0.10.2 -> 0.11.2)"
    assert records.verdict({**done, "code": code}, ("k",), now) == ("stale", "its library versions were not recorded")


def test_the_package_records_the_libraries_it_ran_on_without_importing_them():
    from importlib import metadata

    from sympscale import provenance

    rec = provenance.record()
    assert set(rec["libraries"]) == {"jax", "jaxlib", "flax", "optax", "numpy"}
    assert rec["libraries"]["jax"] == metadata.version("jax") and rec["libraries"]["numpy"] == metadata.version("numpy")


# ------------------------------------------------------------------------------------------ exceptions
class InjectedError(ValueError):
    pass


def _raise_chained():
    try:
        {}["missing"]
    except KeyError as cause:
        raise InjectedError("the task failed") from cause


def test_a_task_exception_is_rebuilt_from_data_with_its_frames_and_chain():
    try:
        _raise_chained()
    except InjectedError as e:
        desc = json.loads(json.dumps(describe(e)))  # what crosses the process boundary: JSON
    exc = rebuild(desc)
    assert isinstance(exc, ValueError) and type(exc).__name__ == "InjectedError" and str(exc) == "the task failed"
    frames = traceback.extract_tb(exc.__traceback__)
    assert frames[-1].name == "_raise_chained" and frames[-1].filename == __file__
    assert type(exc.__cause__) is KeyError and exc.__cause__.args == ("missing",)
    text = "".join(traceback.format_exception(exc))
    assert "The above exception was the direct cause" in text and "in _raise_chained" in text

    class Unprintable(Exception):
        def __str__(self):
            raise RuntimeError("no")

    # a builtin that cannot be made from its message (bytes in its arguments): a stand-in of the same name
    odd = rebuild(describe(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad")))
    assert type(odd).__name__ == "UnicodeDecodeError" and "can't decode byte 0xff" in str(odd)
    assert "__str__ failed" in str(rebuild(describe(Unprintable())))


# ------------------------------------------------------------------------------------------ end to end
def _copy_package(tmp_path) -> Path:
    root = tmp_path / "pkg"
    shutil.copytree(SRC, root / "sympscale", ignore=shutil.ignore_patterns("__pycache__", ".*"))
    return root


def _toy(tmp_path, pkg: Path, *args):
    env = {**os.environ, "JAX_PLATFORMS": "no_such_platform", "PYTHONPATH": str(pkg)}
    cmd = [sys.executable, str(APP), "-m", *CPU2, *args, f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    r = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout + r.stderr


def _jobs(tmp_path) -> dict:
    rows = json.loads((tmp_path / "sweep" / "launcher_summary.json").read_text())["jobs"]
    return {j["idx"]: j for j in rows}


def _record(tmp_path, n) -> dict:
    return json.loads((tmp_path / "sweep" / str(n) / "launcher.json").read_text())


def _starts(tmp_path) -> list[str]:
    return sorted(line.split()[0] for line in (tmp_path / "sweep" / "starts.log").read_text().splitlines())


def _digest(pkg: Path) -> str:
    from sympscale import provenance

    return provenance.source_digest.__wrapped__(pkg / "sympscale")  # uncached: the copy changes


@pytest.mark.slow
def test_a_resume_lists_skips_and_on_request_reruns_the_jobs_older_code_computed(tmp_path):
    pkg = _copy_package(tmp_path)
    old = _digest(pkg)
    _toy(tmp_path, pkg, "seed=1")
    assert _record(tmp_path, 0)["code"]["source_digest"] == old  # the code of the copy, not of the checkout

    with open(pkg / "sympscale" / "evaluation.py", "a") as f:  # a fix in the evaluation
        f.write("\n# a fix\n")
    new = _digest(pkg)
    assert new != old
    out = _toy(tmp_path, pkg, "seed=1,2")
    lines = [line for line in out.splitlines() if "stale" in line and "local_devices:" in line]
    assert len(lines) == 1, out[-3000:]
    assert "1 finished job is stale (0: ran other code" in lines[0] and f"source {old}; now {new}" in lines[0]
    assert RERUN in lines[0]
    jobs = _jobs(tmp_path)
    assert jobs[0]["status"] == "skipped" and jobs[0]["cause"].startswith("stale: ran other code")
    assert jobs[1]["status"] == "done"
    assert _starts(tmp_path) == ["1", "2"]  # the stale job did not run; its old result stays
    assert _record(tmp_path, 0)["code"]["source_digest"] == old and _record(tmp_path, 1)["code"]["source_digest"] == new

    out = _toy(tmp_path, pkg, "seed=1,2", "hydra.launcher.rerun_stale=true")
    assert "1 finished job is stale (0: " in out and "rerunning them" in out
    assert [j["status"] for j in _jobs(tmp_path).values()] == ["done", "skipped"]
    assert _starts(tmp_path) == ["1", "1", "2"]
    assert _record(tmp_path, 0)["code"]["source_digest"] == new

    out = _toy(tmp_path, pkg, "seed=1,2")  # nothing stale any more
    assert "stale" not in out and [j["status"] for j in _jobs(tmp_path).values()] == ["skipped", "skipped"]
    assert _record(tmp_path, 1)["value"] == {"seed": 2}  # a skipped job returns the value it returned then

    # a job finished by the launcher before code versions were recorded: its key was sha256(config id, task, source)
    spec = importlib.util.spec_from_file_location("launcher_toy_for_source", APP)
    toy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(toy)
    rec = _record(tmp_path, 1)
    legacy = "\0".join([rec["key"], "__main__.task", inspect.getsource(toy.task)])
    rec["key"] = hashlib.sha256(legacy.encode()).hexdigest()[:20]
    del rec["code"]
    (tmp_path / "sweep" / "1" / "launcher.json").write_text(json.dumps(rec))
    out = _toy(tmp_path, pkg, "seed=1,2")
    assert f"1 finished job is stale (1: {records.NO_CODE})" in out and RERUN in out
    assert _jobs(tmp_path)[1]["status"] == "skipped" and _starts(tmp_path) == ["1", "1", "2"]


def test_a_failed_jobs_exception_reaches_hydra_with_the_tasks_traceback(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "no_such_platform", "TOY_FAULTS": "2:raise"}
    cmd = [sys.executable, str(APP), "-m", *CPU2, "seed=1,2", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    r = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    err = r.stderr
    assert "ValueError: injected failure for seed 2" in err, err[-3000:]
    assert f'File "{APP}"' in err and "in task" in err, err[-3000:]  # the task's own frame, file and function
    assert "job #1 (seed=2) failed" in err and "launcher.log" in err  # the launcher's context, as a note
