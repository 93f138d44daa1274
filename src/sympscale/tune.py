"""`python -m sympscale.tune <sweep dir>`: the winners of an `experiment=tune` sweep, written as recipe files.

For each cell (preset, system, D, model) of the sweep, every grid point (learning rate x final curriculum
horizon, `train.lr_factor` x `train.horizon_factor` around the preset's recipe) is scored by its seeds' best
validation VPT, mean over seeds (a diverged seed scores 0: a failure counts, it is never dropped). A departure
from the preset's recipe must beat it by more than noise: among the points within 5 % of the best score, the one
nearest the grid's centre wins (then the higher score, then the lower one-step MSE). The winner becomes `<recipes>/<preset>/<system>_D<D>_<model>.yaml`, which
every later run of that cell trains with (`train.recipe=auto`, `sympscale.recipe`). A winner on the grid's edge
is flagged in the file and in the printed summary: the grid should then be widened in that direction.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from sympscale.recipe import recipe_path

CELL = ["train_preset", "system", "D", "model_name"]
# validation VPT differences below this (relative) are noise: the convergence rule's plateau tolerance, and ~2x the
# validation score's own spread at the default preset (80 windows)
TOLERANCE = 0.05
POINT = ["lr_factor", "horizon_factor", "lr", "train_horizon"]


def grid_scores(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (cell, grid point) of the finished runs: seeds, diverged seeds, mean best validation VPT (steps;
    diverged: 0) and mean best validation one-step MSE."""
    done = df[df["status"].isin(["done", "diverged"])].copy()
    diverged = done["status"] == "diverged"
    done["score"] = pd.to_numeric(done["val_vpt_best_steps"], errors="coerce").where(~diverged, 0.0).fillna(0.0)
    done["one_step"] = pd.to_numeric(done["val_one_step_best"], errors="coerce").where(~diverged, math.inf)
    done["diverged"] = diverged
    g = done.groupby(CELL + POINT, dropna=False)
    return g.agg(
        seeds=("seed", "count"),
        diverged=("diverged", "sum"),
        val_vpt_steps=("score", "mean"),
        val_one_step_mse=("one_step", "mean"),
    ).reset_index()


def winner(points: pd.DataFrame) -> tuple[pd.Series, list[str]]:
    """The chosen grid point of one cell and the edges of the grid it sits on.

    A departure from the preset's recipe must beat it by more than noise: among the points whose mean validation
    VPT is within TOLERANCE of the best, the one nearest the grid's centre (the preset's recipe: the fewest
    doublings of lr and horizon away from it) wins, then the higher VPT, then the lower one-step MSE.
    """
    top = points["val_vpt_steps"].max()
    near = points[points["val_vpt_steps"] >= (1.0 - TOLERANCE) * top].copy()
    near["away"] = np.abs(np.log2(near["lr_factor"].astype(float))) + np.abs(
        np.log2(near["horizon_factor"].astype(float))
    )
    ranked = near.sort_values(
        ["away", "val_vpt_steps", "val_one_step_mse"], ascending=[True, False, True], kind="stable"
    )
    best = ranked.iloc[0]
    edges = []
    for col, what in (("lr_factor", "learning rate"), ("horizon_factor", "final horizon")):
        values = sorted(points[col].unique())
        if len(values) > 1 and best[col] == values[0]:
            edges.append(f"{what}: the smallest of the grid")
        elif len(values) > 1 and best[col] == values[-1]:
            edges.append(f"{what}: the largest of the grid")
    return best, edges


def recipe_record(cell: dict, points: pd.DataFrame, best: pd.Series, edges: list[str], sweep: str, steps) -> dict:
    grid = [
        {
            "lr": float(r.lr),
            "horizon": int(r.train_horizon),
            "seeds": int(r.seeds),
            "diverged": int(r.diverged),
            "val_vpt_steps": round(float(r.val_vpt_steps), 3),
            "val_one_step_mse": float(r.val_one_step_mse),
        }
        for r in points.sort_values(["lr", "train_horizon"]).itertuples()
    ]
    seeds = int(points["seeds"].max())
    source = (
        f"{sweep} (experiment=tune, {len(points)} grid points x {seeds} seeds, {steps} steps each), "
        f"{time.strftime('%Y-%m-%d')}"
    )
    return {
        "values": {"lr": float(best["lr"]), "horizon": int(best["train_horizon"])},
        "source": source,
        "edge": edges,
        "cell": {k: (int(v) if k == "D" else str(v)) for k, v in cell.items()},
        "score": {"val_vpt_steps": float(best["val_vpt_steps"]), "val_one_step_mse": float(best["val_one_step_mse"])},
        "rule": f"best mean validation VPT over seeds (diverged: 0); within {TOLERANCE:.0%} of it, the point nearest "
        f"the preset's recipe",
        "grid": grid,
    }


def tune(sweep_dir: str | Path, out: str | Path, *, echo=print) -> list[Path]:
    """Write one recipe file per cell of the tuning sweep in `sweep_dir` under `out`; returns their paths."""
    from sympscale.analysis.collect import collect

    df = collect(sweep_dir)
    if df.empty or "val_vpt_best_steps" not in df:
        raise SystemExit(f"sympscale: {sweep_dir} holds no finished tuning runs")
    scores = grid_scores(df)
    written = []
    for key, points in scores.groupby(CELL):
        cell = dict(zip(CELL, key, strict=True))
        if len(points) < 2:
            echo(f"{cell}: a single grid point, nothing to choose; no recipe written")
            continue
        best, edges = winner(points)
        steps = int(pd.to_numeric(df["train_steps"], errors="coerce").max())
        record = recipe_record(cell, points, best, edges, str(sweep_dir), steps)
        path = recipe_path(out, cell["train_preset"], cell["system"], int(cell["D"]), cell["model_name"])
        path.parent.mkdir(parents=True, exist_ok=True)
        header = (
            f"# Tuned recipe of {cell['system']} D={cell['D']} {cell['model_name']} at train={cell['train_preset']}"
        )
        path.write_text(
            f"{header}: written by `python -m sympscale.tune {sweep_dir}`\n" + yaml.safe_dump(record, sort_keys=False)
        )
        flag = f"  EDGE: {'; '.join(edges)}" if edges else ""
        echo(
            f"{cell['system']} D={cell['D']} {cell['model_name']}: lr {best['lr']:g}, horizon {int(best['train_horizon'])} "
            f"(validation VPT {best['val_vpt_steps']:.1f} steps, one-step {best['val_one_step_mse']:.3g}){flag} -> {path}"
        )
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    from sympscale.confdir import config_dir

    ap = argparse.ArgumentParser(prog="python -m sympscale.tune", description=__doc__.splitlines()[0])
    ap.add_argument("sweep_dir", help="the folder of an experiment=tune sweep (outputs/tune)")
    ap.add_argument("--out", default=None, help="recipes folder (default: the project's conf/recipes)")
    args = ap.parse_args(argv)
    if not Path(args.sweep_dir).is_dir():
        print(f"sympscale: no such sweep folder: {args.sweep_dir}", file=sys.stderr)
        return 2
    tune(args.sweep_dir, args.out or Path(config_dir()) / "recipes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
