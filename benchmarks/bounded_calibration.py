"""The bounded rule against the truth, on the real datasets: old rule and new side by side in one run.

    python benchmarks/bounded_calibration.py                      # FPUT and Toda at D = 16 and 64 (default data)
    python benchmarks/bounded_calibration.py --cells fput:16 --starts 5 --extra-test 0   # the split's 10 only

For each dataset (`train=default` data: 50 trajectories and `data.extra_test` = 90 more, all 100 test trajectories
scored; `data_seed=0`, generated into --cache if absent), the test trajectories' first states are perturbed by a
relative 1e-8 (`--starts` independent perturbations each) and integrated with the dataset's own reference: an
independent truth of the same invariant measure, decorrelated from the test trajectory long before the scoring
window (steps 901-1000). Each perturbed truth is scored as a rollout by the old rule (every rollout finite and
last-100 MSE < 2 x climatology) and the new one (`evaluation.boundedness`), with three rollouts that must fail:
collapsed onto the mean, frozen at its state at step 900, and the perturbed truth with 1.3x its amplitude about the
mean. The test trajectories start at observation EVAL_START, as the job's (`eval.start`). The same rollouts also
give the distributions of the two long-term statistics reported beside VPT (`evaluation.invariant_measure`'s
marginal W1 ratio and `evaluation.system_measure`'s observable: FPUT's normal-mode energies, Toda's Lax spectrum).
Prints markdown tables for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

import sympscale
from sympscale.data import DataSpec, load_or_generate
from sympscale.evaluation import (
    DEFAULT_BOUNDED,
    Rollout,
    boundedness,
    climatology_mse,
    companions,
    invariant_measure,
    system_measure,
)
from sympscale.systems import make_system

HORIZON, LAST, EVAL_START = 1000, 100, 100
KINDS = ("truth", "collapsed", "frozen", "amplitude 1.3x")


def scored(test, rollout, mean, std, system, calibration) -> Rollout:
    """A Rollout of `rollout` (n, T, D) against `test`, as the evaluation scores one."""
    mse = np.mean(((rollout[:, 1 : HORIZON + 1] - test[:, 1 : HORIZON + 1]) / std) ** 2, axis=-1)
    tail = rollout[:, HORIZON - LAST : HORIZON + 1]
    observable = (system.observable, system.measure_observable) if system.observable else None
    return Rollout(
        mse, {}, None, test, mean, std, tail, HORIZON, LAST, DEFAULT_BOUNDED, None, 1.0, None, observable, calibration
    )


def old_rule(r: Rollout) -> bool:
    return bool(np.isfinite(r.mse).all() and np.all(r.last_mse < 2.0 * climatology_mse(r.test, r.mean, r.std)))


def cell(system_name: str, D: int, starts: int, cache: str, extra_test: int) -> dict:
    system = make_system(system_name, D)
    spec = DataSpec(extra_test=extra_test)
    data = load_or_generate(system, spec, data_seed=0, cache_dir=cache, log=lambda *_: None)
    test, mean, std = data.test[:, EVAL_START:], data.mean, data.std
    run = jax.jit(system.trajectories, static_argnums=1)
    rng = np.random.default_rng(1)  # not the companions' stream (seed 0)
    calibration = companions(system, test, HORIZON, LAST)  # the rule's own independent truths, as the job's
    counts = {k: [0, 0] for k in KINDS}
    stats = {k: {"measure_ratio": [], "observable": []} for k in KINDS}
    t0 = time.perf_counter()
    x0 = np.concatenate([test[:, 0] * (1 + 1e-8 * rng.standard_normal(test[:, 0].shape)) for _ in range(starts)])
    others = np.asarray(run(jnp.asarray(x0), test.shape[1])).reshape(starts, *test.shape)  # one program
    for other in others:
        rollouts = {
            "truth": other,
            "collapsed": np.broadcast_to(mean, other.shape).copy(),
            "frozen": np.repeat(other[:, 900:901], other.shape[1], axis=1),
            "amplitude 1.3x": mean + 1.3 * (other - mean),
        }
        for name, roll in rollouts.items():
            r = scored(test, roll, mean, std, system, calibration)
            counts[name][0] += boundedness(r)["bounded"] is True
            counts[name][1] += old_rule(r)
            stats[name]["measure_ratio"].append(invariant_measure(r)["measure_ratio"])
            obs = system_measure(r)
            stats[name]["observable"].append(obs.get("observable_ratio") or obs.get("observable_distance"))
    probe = boundedness(scored(test, other, mean, std, system, calibration))
    probe_obs = system_measure(scored(test, other, mean, std, system, calibration))
    return {
        "system": system_name,
        "D": D,
        "runs": starts,
        "trajectories": test.shape[0],
        "counts": counts,
        "threshold": probe["bounded_threshold"],
        "band": probe["bounded_truth_band"],
        "detects": probe["bounded_detects_amplitude_1_3"],
        "stats": stats,
        "observable": probe_obs.get("observable"),
        "observable_conserved": probe_obs.get("observable_conserved"),
        "wall_s": time.perf_counter() - t0,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", default="fput:16,fput:64,toda:16,toda:64")
    p.add_argument("--starts", type=int, default=100, help="perturbed truths per test trajectory")
    p.add_argument("--cache", default="outputs/cache")
    p.add_argument("--extra-test", type=int, default=90, help="data.extra_test (config default 90)")
    a = p.parse_args()
    print(
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}, jax {jax.__version__}, "
        f"sympscale {sympscale.__version__}, {jax.devices()[0].platform}"
    )
    print("\n| system | D | rule | truth passes | collapsed passes | frozen passes | 1.3x amplitude passes |")
    print("|---|---|---|---|---|---|---|")
    notes, cells = [], []
    for spec in a.cells.split(","):
        name, D = spec.split(":")
        c = cell(name, int(D), a.starts, a.cache, a.extra_test)
        cells.append(c)
        for k, rule in ((0, "new"), (1, "old")):
            row = " | ".join(f"{c['counts'][n][k]}/{c['runs']}" for n in KINDS)
            print(f"| {name} | {D} | {rule} | {row} |")
        th = ", ".join(f"{k} {v:.3f} (band {c['band'][k]:.3f})" for k, v in c["threshold"].items())
        notes.append(
            f"{name} D={D}, {c['trajectories']} test trajectories: thresholds {th}; detects 1.3x: {c['detects']}; {c['wall_s']:.0f} s"
        )
    print("\n" + "\n".join(f"- {n}" for n in notes))
    print_statistics(cells)


def _spread(v: list) -> str:
    v = np.asarray(v, dtype=float)
    return f"{np.median(v):.2f} [{np.percentile(v, 5):.2f}, {np.percentile(v, 95):.2f}]"


def print_statistics(cells: list[dict]) -> None:
    """Median [5th, 95th percentile] of each long-term statistic per rollout kind; for a ratio, how often the
    independent truth scores <= 1."""
    print("\n| system | D | statistic | truth | truth <= 1 | collapsed | frozen | 1.3x amplitude |")
    print("|---|---|---|---|---|---|---|---|")
    for c in cells:
        for key in ("measure_ratio", "observable"):
            label = (
                key
                if key == "measure_ratio"
                else (
                    f"{c['observable']} {'distance (conserved by the truth)' if c['observable_conserved'] else 'ratio'}"
                )
            )
            if key == "observable" and c["observable"] is None:
                continue
            truth = np.asarray(c["stats"]["truth"][key], dtype=float)
            row = " | ".join(_spread(c["stats"][k][key]) for k in KINDS[1:])
            within = f"{np.mean(truth <= 1):.0%}" if not c["observable_conserved"] or key == "measure_ratio" else "–"
            print(f"| {c['system']} | {c['D']} | {label} | {_spread(truth)} | {within} | {row} |")


if __name__ == "__main__":
    main()
