"""`analyze` on any sweep folder a user can produce: junk, wrong shapes, NaN, divergence, duplicates, one model.

Fake sweeps are written directly as JSON (no training), with the helper of test_analysis.py. Each excluded
job folder must be listed in summary.md with its reason, and never enter a table, figure or headline.
"""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sympscale.analysis import collect
from sympscale.analysis.checks import reason_kind
from sympscale.analysis.collect import read_job
from sympscale.analysis.figures import all_figures
from sympscale.analysis.report import tables
from sympscale.analysis.stats import median_iqr
from sympscale.analyze import analyze
from test_analysis import GRU, SYMP, write_job

JUNK = bytes(range(256)) * 4  # not UTF-8, not JSON


def _edit_json(path: Path, edit) -> None:
    obj = json.loads(path.read_text())
    edit(obj)
    path.write_text(json.dumps(obj))  # Python's json writes NaN / Infinity literals


def _set_eval(**values):
    return lambda m: m["eval"].update(values)


def _analyze(sweep: Path) -> tuple[dict, str]:
    """Run the analysis; no figure may have failed (a note naming an exception means the figure code broke)."""
    res = analyze(sweep)
    assert not [n for n in res["notes"] if "Error" in n or "Exception" in n], res["notes"]
    return res, (sweep / "summary.md").read_text()


def _good_pairs(root: Path, seeds=(1, 2)) -> None:
    for s in seeds:
        write_job(root, "symp", s, last100=SYMP[s], horizon=5.0)
        write_job(root, "gru", s, last100=GRU[s], horizon=3.0)


# (id, how the folder of a finished gru run is spoiled, the reason it must be excluded with)
CASES = [
    ("metrics-bytes", lambda d: (d / "metrics.json").write_bytes(JUNK), "metrics.json is not valid JSON"),
    ("metrics-empty", lambda d: (d / "metrics.json").write_text(""), "metrics.json is not valid JSON (empty file)"),
    (
        "metrics-list",
        lambda d: (d / "metrics.json").write_text("[]"),
        "metrics.json has the wrong shape: a list, not an object",
    ),
    (
        "eval-null",
        lambda d: (d / "metrics.json").write_text('{"eval": null}'),
        "metrics.json has the wrong shape: eval missing",
    ),
    (
        "eval-list",
        lambda d: (d / "metrics.json").write_text('{"eval": [1]}'),
        "metrics.json has the wrong shape: eval is a list, not an object",
    ),
    (
        "eval-empty",
        lambda d: (d / "metrics.json").write_text('{"eval": {}}'),
        "metrics.json has the wrong shape: eval.last100_mse missing",
    ),
    (
        "mse-string",
        lambda d: _edit_json(d / "metrics.json", _set_eval(last100_mse="small")),
        "metrics.json has the wrong shape: eval.last100_mse is not a number ('small')",
    ),
    (
        "bounded-string",
        lambda d: _edit_json(d / "metrics.json", _set_eval(bounded="yes")),
        "metrics.json has the wrong shape: eval.bounded is not true/false ('yes')",
    ),
    (
        "all-nan",
        lambda d: _edit_json(
            d / "metrics.json", _set_eval(last100_mse=math.nan, bounded=math.nan, steps_to_mse_1=math.nan)
        ),
        "non-finite headline metrics (last100_mse NaN, bounded NaN, steps_to_mse_1 NaN)",
    ),
    (
        "mse-nan-bounded",
        lambda d: _edit_json(d / "metrics.json", _set_eval(last100_mse=math.nan)),
        "non-finite headline metrics (last100_mse NaN)",
    ),
    (
        "mse-inf-bounded",
        lambda d: _edit_json(d / "metrics.json", _set_eval(last100_mse=math.inf)),
        "non-finite headline metrics (last100_mse Infinity)",
    ),
    (
        "config-list",
        lambda d: (d / "config.json").write_text("[1, 2]"),
        "config.json has the wrong shape: a list, not an object",
    ),
    ("config-bytes", lambda d: (d / "config.json").write_bytes(JUNK), "config.json is not valid JSON"),
    ("config-missing", lambda d: (d / "config.json").unlink(), "no config.json"),
    (
        "config-D-string",
        lambda d: _edit_json(d / "config.json", lambda c: c.update(D="16")),
        "config.json has the wrong shape: D is not an integer ('16')",
    ),
    (
        "config-no-model",
        lambda d: _edit_json(d / "config.json", lambda c: c.pop("model")),
        "config.json has the wrong shape: model.name missing",
    ),
    (
        "status-junk-metrics-undated",
        lambda d: ((d / "status.json").write_bytes(JUNK), _edit_json(d / "metrics.json", lambda m: m.pop("status"))),
        "status unknown (status.json is not valid JSON)",
    ),
    (
        "status-missing-metrics-undated",
        lambda d: ((d / "status.json").unlink(), _edit_json(d / "metrics.json", lambda m: m.pop("status"))),
        "status unknown (status.json is missing)",
    ),
    (
        "status-running-old-metrics",
        lambda d: (d / "status.json").write_text('{"status": "running", "updated": 5}'),
        "running",
    ),
    ("status-pending", lambda d: (d / "status.json").write_text('{"status": "pending"}'), "status pending"),
    (
        "failed",
        lambda d: (d / "status.json").write_text(
            '{"status": "failed", "error": "XlaRuntimeError: out of memory\\n  trace"}'
        ),
        "failed: XlaRuntimeError: out of memory",
    ),
    (
        "launcher-saw-it-die",
        lambda d: (
            (d / "status.json").write_text('{"status": "running"}'),
            (d / "launcher.json").write_text('{"status": "failed", "cause": "exit code -9"}'),
        ),
        "failed: exit code -9",
    ),
    (
        "running",
        lambda d: ((d / "status.json").write_text('{"status": "running"}'), (d / "metrics.json").unlink()),
        "running (no metrics.json)",
    ),
    ("done-no-metrics", lambda d: (d / "metrics.json").unlink(), "finished without metrics.json"),
]
# (id, how a finished gru run is made a diverged one, the failure it is counted as: used, never excluded)
DIVERGED = [
    (
        "diverged",
        lambda d: _edit_json(
            d / "metrics.json",
            lambda m: m.update(status="diverged", train={"diverged": True, "divergence": "loss 3e+12 at step 40"}),
        ),
        "diverged: loss 3e+12 at step 40",
    ),
    (
        "diverged-no-reason",
        lambda d: _edit_json(d / "metrics.json", lambda m: m["train"].update(diverged=True)),
        "diverged: no reason recorded",
    ),
    (
        "diverged-status-file",
        lambda d: (d / "status.json").write_text('{"status": "diverged", "error": "loss NaN at step 7"}'),
        "diverged: loss NaN at step 7",
    ),
]


@pytest.mark.parametrize(("spoil", "why"), [c[1:] for c in DIVERGED], ids=[c[0] for c in DIVERGED])
def test_a_diverged_run_is_counted_as_a_failure_never_dropped(tmp_path, spoil, why):
    """README "Metrics": diverged training counts as VPT 0, not bounded, infinite error, in every table."""
    write_job(tmp_path, "gru", 1, last100=10.0, horizon=3.0, vpt=0.5)
    d = tmp_path / "job-gru-1-16"
    _edit_json(d / "metrics.json", lambda m: m.update(dataset={"lyapunov_exponent": 0.1, "dt_obs": 0.5}))
    _edit_json(d / "metrics.json", _set_eval(observable="normal-mode energies", observable_distance=0.1))
    spoil(d)
    row, reason, _ = read_job(d, tmp_path)
    assert reason is None and row["failure"] == why and row["diverged"] is True
    assert (row["vpt_lyap_0.3"], row["bounded"], row["last100_mse"], row["steps_to_mse_1"]) == (0.0, False, math.inf, 0)
    # the system's own statistic: its distance infinite; the ratio stays absent where the truth conserves it
    assert row["observable_distance"] == math.inf and row["observable_ratio"] is None
    assert all(v == math.inf for k, v in row.items() if k.startswith("conservation_"))


@pytest.mark.parametrize(("spoil", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_read_job_gives_the_reason_a_folder_is_excluded(tmp_path, spoil, reason):
    write_job(tmp_path, "gru", 1, last100=10.0)
    d = tmp_path / "job-gru-1-16"
    spoil(d)
    row, got, _ = read_job(d, tmp_path)
    assert got == reason
    assert row["job"] == "job-gru-1-16" and row["job_dir"] == str(d)


def test_read_job_accepts_a_good_run_and_junk_outside_the_headline(tmp_path):
    write_job(tmp_path, "gru", 1, last100=10.0)
    d = tmp_path / "job-gru-1-16"
    _edit_json(d / "metrics.json", lambda m: m.update(params="many", train=None, dataset=[1]))
    _edit_json(d / "metrics.json", _set_eval(vpt_lyapunov="x", conservation=[1, 2], horizon="long"))
    (d / "train_log.jsonl").write_bytes(JUNK)
    row, reason, _ = read_job(d, tmp_path)
    assert reason is None and row["last100_mse"] == 10.0 and row["params"] == "many"  # typed later by collect
    df = collect(tmp_path)
    assert bool(df.loc[0, "ok"]) and pd.isna(df.loc[0, "params"]) and pd.isna(df.loc[0, "vpt_lyap_0.3"])
    assert df.loc[0, "eval_horizon"] is pd.NA and "conservation_0" not in df


def test_junk_sweep_lists_every_excluded_folder_and_uses_only_the_good_runs(tmp_path):
    _good_pairs(tmp_path)
    for seed, (name, spoil, _) in enumerate(CASES, start=10):
        write_job(tmp_path, "gru", seed, last100=1.0)
        spoil(tmp_path / f"job-gru-{seed}-16")
        (tmp_path / f"job-gru-{seed}-16").rename(tmp_path / f"bad-{name}")
    (tmp_path / "job-symp-1-16" / "train_log.jsonl").write_bytes(JUNK)  # a used run with a junk log
    (tmp_path / "notes").mkdir()  # stray folders and files: not job folders, not listed
    (tmp_path / "notes" / "todo.txt").write_text("look at seed 3")
    (tmp_path / "empty").mkdir()
    (tmp_path / "README.txt").write_bytes(JUNK)
    (tmp_path / "multirun.yaml").write_text(": not yaml : [")

    res, summary = _analyze(tmp_path)
    assert (res["rows"], res["ok"]) == (4 + len(CASES), 4)
    assert f"{4 + len(CASES)} job folders: 4 finished and used (2 seeds), {len(CASES)} excluded" in summary
    for name, _, reason in CASES:
        assert f"- `bad-{name}`: {reason}\n" in summary
    assert "notes" not in summary and "`empty`" not in summary
    assert (
        "| metrics.json has the wrong shape | 6 |" in summary and "| diverged | " not in summary.split("## Headline")[0]
    )
    assert (
        "| failed | 2 |" in summary
        and "| status unknown | 2 |" in summary
        and "| non-finite headline metrics | 3 |" in summary
    )
    assert "GRU/Symp last-100 MSE ratio median 15x (IQR 12.5–17.5x, 2 seeds)" in summary
    assert "symp bounded 2/2" in summary and "gru bounded 2/2" in summary
    df = pd.read_parquet(tmp_path / "results.parquet")  # every folder is a row, junk or not
    assert len(df) == 4 + len(CASES) and set(df.loc[df["ok"], "seed"]) == {1, 2}
    assert (tmp_path / "figures" / "reliability_vs_D_fput.png").exists()


def test_nan_metrics_are_excluded_and_no_ratio_is_quoted_from_nan(tmp_path):
    _good_pairs(tmp_path, seeds=(1, 2, 3))
    write_job(tmp_path, "gru", 4, last100=GRU[4], horizon=3.0)
    write_job(tmp_path, "symp", 4, last100=math.nan, horizon=math.nan, bounded=True)  # a NaN-filled run
    res, summary = _analyze(tmp_path)
    assert res["ok"] == 7
    assert "- `job-symp-4-16`: non-finite headline metrics (last100_mse NaN, steps_to_mse_1 NaN)" in summary
    headline = summary.split("## Headline")[1].split("##")[0]
    assert "nan" not in headline.lower() and "symp bounded 3/3" in headline and "gru bounded 4/4" in headline
    assert "ratio median 20x (IQR 15–25x, 3 seeds)" in headline
    ratio = tables(collect(tmp_path))["ratio_gru_symp"].iloc[0]
    assert (ratio["n_pairs"], ratio["median"], ratio["undefined_pairs"]) == (3, 20.0, 0)


def test_a_rollout_that_blew_up_is_a_result_not_an_exclusion(tmp_path):
    """README: a diverged rollout stores NaN/Infinity and finishes done; it counts as unbounded, error inf."""
    _good_pairs(tmp_path, seeds=(1, 2))
    write_job(tmp_path, "symp", 3, last100=3.0, horizon=5.0)
    write_job(tmp_path, "gru", 3, last100=math.nan, bounded=False, horizon=2.0)
    df = collect(tmp_path)
    assert df["ok"].all()
    res, summary = _analyze(tmp_path)
    assert "gru bounded 2/3" in summary
    assert "ratio median 20x (IQR 15–infx, 3 seeds)" in summary  # GRU seed 3 has infinite error: ratio inf
    means = tables(df)["mean_ci"].set_index("model")["last100_mse_mean"]
    assert means["gru"] == math.inf and math.isfinite(means["symp"])  # counted, never dropped from a mean


def test_pairs_where_both_rollouts_blew_up_have_no_ratio(tmp_path):
    _good_pairs(tmp_path, seeds=(1,))
    write_job(tmp_path, "symp", 2, last100=math.inf, bounded=False)
    write_job(tmp_path, "gru", 2, last100=math.nan, bounded=False)
    _, summary = _analyze(tmp_path)
    assert "ratio median 10x (IQR 10–10x, 1 seed); 1 pair with no ratio (both rollouts blew up)" in summary
    assert "| 1 | 10 | 10 | 10 | 0 | 1 |" in summary  # n_pairs, median, q25, q75, unconverged, undefined


def _rerun(root: Path, job: str, copy: str, *, log_every: int, updated: float | None) -> None:
    """A second folder of the same computation: only train.log_every (and the job's name) differ."""
    shutil.copytree(root / job, root / copy)
    _edit_json(root / copy / "config.json", lambda c: (c["train"].update(log_every=log_every), c.update(name=copy)))
    if updated is not None:
        (root / copy / "status.json").write_text(json.dumps({"status": "done", "updated": updated}))


def test_duplicate_computations_are_counted_once(tmp_path):
    _good_pairs(tmp_path, seeds=(1,))
    for job in ("job-symp-1-16", "job-gru-1-16"):
        (tmp_path / job / "status.json").write_text(json.dumps({"status": "done", "updated": 1000.0}))
    _rerun(tmp_path, "job-symp-1-16", "rerun-symp", log_every=7, updated=2000.0)  # newer: kept
    _rerun(tmp_path, "job-gru-1-16", "rerun-gru", log_every=7, updated=500.0)  # older: the duplicate
    res, summary = _analyze(tmp_path)
    assert res["ok"] == 2
    assert "4 job folders: 2 finished and used (1 seed), 2 excluded" in summary
    assert "- `job-symp-1-16`: duplicate of rerun-symp (same computation)" in summary
    assert "- `rerun-gru`: duplicate of job-gru-1-16 (same computation)" in summary
    assert "| duplicate | 2 |" in summary and "1 seed)" in summary and "symp bounded 1/1" in summary


def test_duplicates_without_a_status_time_keep_the_newest_metrics(tmp_path):
    _good_pairs(tmp_path, seeds=(1,))
    _rerun(tmp_path, "job-symp-1-16", "rerun-symp", log_every=3, updated=None)
    os.utime(tmp_path / "job-symp-1-16" / "metrics.json", (3000.0, 3000.0))
    os.utime(tmp_path / "rerun-symp" / "metrics.json", (1000.0, 1000.0))
    df = collect(tmp_path).set_index("job")
    assert df.loc["rerun-symp", "problem"] == "duplicate of job-symp-1-16 (same computation)"
    assert bool(df.loc["job-symp-1-16", "ok"])


def test_a_different_computation_is_not_a_duplicate(tmp_path):
    _good_pairs(tmp_path, seeds=(1,))
    shutil.copytree(tmp_path / "job-symp-1-16", tmp_path / "other-lr")
    _edit_json(tmp_path / "other-lr" / "config.json", lambda c: c["train"].update(lr=0.1))
    assert collect(tmp_path)["ok"].all()


def test_a_running_sweep_where_only_symp_finished(tmp_path):
    for s in (1, 2, 3):
        write_job(tmp_path, "symp", s, last100=SYMP[s], horizon=5.0 + s)
        write_job(tmp_path, "gru", s, status="running")
    (tmp_path / "job-gru-3-16" / "config.json").unlink()  # launched, not yet written its config
    res, summary = _analyze(tmp_path)
    assert res["ok"] == 3 and "| running | 3 |" in summary
    assert (
        "symp bounded 3/3 (95 % CI 0.29–1)." in summary
        and "ratio" not in summary.split("## Headline")[1].split("##")[0]
    )
    for name in ("reliability_vs_D_fput", "steps_to_mse_1_vs_D"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 10_000


def test_one_run_sweep(tmp_path):
    write_job(tmp_path, "gru", 1, last100=4.0, horizon=3.0, D=8)
    res, summary = _analyze(tmp_path)
    assert res["ok"] == 1 and "1 job folder: 1 finished and used (1 seed), 0 excluded" in summary
    assert "Excluded job folders" not in summary and "fput D=8: gru bounded 1/1 (95 % CI 0.025–1)." in summary
    assert (tmp_path / "figures" / "steps_to_mse_1_vs_D.png").exists()


def test_figures_cope_with_one_model_two_windows_and_all_nan_columns(tmp_path):
    for s, window in ((1, "full"), (2, "16")):
        write_job(tmp_path, "symp", s, last100=SYMP[s], horizon=4.0)
        _edit_json(tmp_path / f"job-symp-{s}-16" / "config.json", lambda c, w=window: c["bptt_window"].update(name=w))
    df = collect(tmp_path)
    df["conservation_H"] = math.nan
    paths, notes = all_figures(df, tmp_path / "figs")
    assert {p.name for p in paths} >= {"bptt_ablation.png", "steps_to_mse_1_vs_D.png", "reliability_vs_D_fput.png"}
    assert notes == []
    df["steps_to_mse_1"] = math.nan  # a figure with nothing to draw is skipped with a note
    paths, notes = all_figures(df, tmp_path / "figs2")
    assert notes == ["steps_to_mse_1_vs_D skipped: no steps-to-MSE-1 in any used run"]
    assert "reliability_vs_D_fput.png" in {p.name for p in paths}


def test_a_sweep_with_no_usable_run_still_reports_what_is_there(tmp_path):
    write_job(tmp_path, "symp", 1, status="running")
    write_job(tmp_path, "gru", 1, status="failed")
    res, summary = _analyze(tmp_path)
    assert (res["ok"], res["figures"]) == (0, [])
    assert "No usable runs yet" in summary and "- `job-gru-1-16`: failed: boom" in summary
    assert "no figures: no run is usable yet" in summary


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: (p / "stray").mkdir(), "nothing to analyse: no job folders"),
        (lambda p: None, "nothing to analyse: no job folders"),
        (lambda p: p.rmdir(), "no such sweep folder"),
    ],
    ids=["only-a-stray-folder", "empty", "missing"],
)
def test_cli_exits_2_with_one_line_when_there_is_nothing_to_analyse(tmp_path, make, message):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    make(sweep)
    r = subprocess.run(
        [sys.executable, "-m", "sympscale.analyze", str(sweep)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and message in r.stderr and "Traceback" not in r.stderr


def test_reason_kinds_and_infinite_percentiles():
    assert reason_kind("failed: OOM: more") == "failed"
    assert reason_kind("duplicate of a/b (same computation)") == "duplicate"
    assert reason_kind("running (no metrics.json)") == "running"
    assert reason_kind("metrics.json is not valid JSON (empty file)") == "metrics.json is not valid JSON"
    assert reason_kind("non-finite headline metrics (last100_mse NaN)") == "non-finite headline metrics"
    assert median_iqr([10.0, 20.0, math.inf]) == (20.0, 15.0, math.inf)
    assert median_iqr([math.inf, math.inf]) == (math.inf, math.inf, math.inf)


def test_diverged_runs_are_counted_in_every_table_and_the_headline(tmp_path):
    for s in (1, 2):
        write_job(tmp_path, "symp", s, last100=SYMP[s], horizon=5.0, vpt=1.0)
        write_job(tmp_path, "gru", s, last100=GRU[s], horizon=3.0, vpt=0.5)
    for seed, (_, spoil, _) in enumerate(DIVERGED, start=3):
        write_job(tmp_path, "gru", seed, last100=1.0, horizon=3.0, vpt=0.5)
        write_job(tmp_path, "symp", seed, last100=SYMP[1], horizon=5.0, vpt=1.0)
        spoil(tmp_path / f"job-gru-{seed}-16")
    for d in tmp_path.iterdir():  # a dataset with a λ₁: a diverged run's VPT is 0
        _edit_json(d / "metrics.json", lambda m: m.update(dataset={"lyapunov_exponent": 0.1, "dt_obs": 0.5}))
    res, summary = _analyze(tmp_path)
    assert res["ok"] == 4 + 2 * len(DIVERGED) and "Excluded job folders" not in summary
    headline = summary.split("## Headline")[1].split("##")[0]
    assert "gru bounded 2/5" in headline and "diverged 3/5" in headline
    tabs = tables(collect(tmp_path))
    conv = tabs["convergence"].set_index("model")
    assert conv.loc["gru", "diverged"] == 3 and conv.loc["symp", "diverged"] == 0
    primary = tabs["vpt_difference"].iloc[0]  # the diverged GRU seeds count as VPT 0: mean (2 x 0.5) / 5
    assert (primary["n_pairs"], primary["gru_mean"], primary["symp_mean"]) == (5, pytest.approx(0.2), 1.0)
    assert primary["difference"] == pytest.approx(0.8) and "gru: diverged 3/5" in primary["labels"]
    assert tabs["mean_ci"].set_index("model").loc["gru", "last100_mse_mean"] == math.inf  # never dropped


def test_a_near_regular_cell_is_labelled_and_the_difference_is_also_given_in_time_units(tmp_path):
    for s in (1, 2):
        write_job(tmp_path, "symp", s, last100=SYMP[s], horizon=5.0, vpt=1.0)
        write_job(tmp_path, "gru", s, last100=GRU[s], horizon=3.0, vpt=0.5)
    lam = 0.002  # λ₁ x eval horizon = 0.002 x 0.5 x 300 = 0.3 Lyapunov times: nearly regular
    for d in tmp_path.iterdir():
        _edit_json(d / "metrics.json", lambda m: m.update(dataset={"lyapunov_exponent": lam, "dt_obs": 0.5}))
        steps = 1.0 / (lam * 0.5) if "symp" in d.name else 0.5 / (lam * 0.5)
        _edit_json(d / "metrics.json", _set_eval(vpt_steps={"0.3": steps}))
    primary = tables(collect(tmp_path))["vpt_difference"].iloc[0]
    assert "near-regular (λ₁ x eval horizon 0.3 Lyapunov times)" in primary["labels"]
    assert primary["difference"] == pytest.approx(0.5) and primary["difference_time"] == pytest.approx(0.5 / 0.002)


def test_data_seeds_are_replicates_pooled_in_one_cell_and_paired_on(tmp_path):
    """Every seed its own dataset (data_seed follows the seed): one cell, pairs on the same data."""
    for s in (1, 2, 3):
        for model, v in (("symp", 1.0 + 0.1 * s), ("gru", 0.5)):
            write_job(tmp_path, model, s, last100=SYMP[1], horizon=5.0, vpt=v)
            _edit_json(tmp_path / f"job-{model}-{s}-16" / "config.json", lambda c, s=s: c.update(data_seed=s))
    primary = tables(collect(tmp_path))["vpt_difference"]
    assert len(primary) == 1 and primary.iloc[0]["n_pairs"] == 3
    assert primary.iloc[0]["difference"] == pytest.approx(0.7)
    # three datasets of 4 test trajectories: 12 windows, labelled short of the referee's 100; not "one dataset"
    assert (primary.iloc[0]["datasets"], primary.iloc[0]["test_windows"]) == (3, 12)
    assert "12 test windows (< 100)" in primary.iloc[0]["labels"] and "one dataset" not in primary.iloc[0]["labels"]


def test_a_cell_whose_seeds_share_one_dataset_says_its_interval_covers_model_seeds_only(tmp_path):
    for s in (1, 2):
        write_job(tmp_path, "symp", s, last100=SYMP[s], horizon=5.0, vpt=1.0)
        write_job(tmp_path, "gru", s, last100=GRU[s], horizon=3.0, vpt=0.5)
    for d in tmp_path.iterdir():  # the default: every seed on data_seed 0, 100 test trajectories
        _edit_json(d / "metrics.json", _set_eval(n_trajectories=100))
    primary = tables(collect(tmp_path))["vpt_difference"].iloc[0]
    assert (primary["datasets"], primary["test_windows"]) == (1, 100)
    assert "one dataset: the interval covers model seeds, not data draws" in primary["labels"]
    assert "test windows" not in primary["labels"]


def test_runs_that_differ_in_code_libraries_or_platform_are_never_pooled_without_saying_so(tmp_path):
    """Issue 27: a cell whose runs came from other code, other JAX/flax/optax versions or another platform says so
    in the primary endpoint's labels and in every per-model table."""
    for s in (1, 2):
        write_job(tmp_path, "symp", s, last100=SYMP[s], horizon=5.0, vpt=1.0)
        write_job(tmp_path, "gru", s, last100=GRU[s], horizon=3.0, vpt=0.5)
    libs = {"jax": "0.11.2", "jaxlib": "0.11.2", "flax": "0.12.0", "optax": "0.2.5", "numpy": "2.1.0"}

    def provenance(digest, jax, platform):
        return lambda m: m.update(
            code={"version": "0.1", "source_digest": digest, "libraries": {**libs, "jax": jax}},
            env={**m["env"], "platform": platform},
        )

    for d in tmp_path.iterdir():
        _edit_json(d / "metrics.json", provenance("aaa", "0.11.2", "gpu"))
    same = tables(collect(tmp_path))
    assert "mixed provenance" not in same["vpt_difference"].iloc[0]["labels"]
    _edit_json(tmp_path / "job-gru-2-16" / "metrics.json", provenance("bbb", "0.10.2", "cpu"))
    tabs = tables(collect(tmp_path))
    primary = tabs["vpt_difference"].iloc[0]["labels"]
    assert "mixed provenance: code 2 versions, libraries" in primary and "platform cpu / gpu" in primary, primary
    assert "jax 0.10.2" in primary and "jax 0.11.2" in primary
    gru = tabs["bounded"].set_index("model").loc["gru", "labels"]
    assert (
        gru.startswith("mixed provenance") and "mixed" not in tabs["bounded"].set_index("model").loc["symp", "labels"]
    )
