"""Predicted training cost of each preset, with and without its horizon curriculum.

    python benchmarks/curriculum_cost.py

Cost unit: free-running model steps per training sample, summed over training (steps x mean horizon); one
training step of horizon h costs ~h forward + h backward model steps, so the ratio is the compute ratio.
Reads the presets through Hydra exactly as a run composes them (per-model recipes applied). Prints markdown.
"""

from __future__ import annotations

from hydra import compose, initialize_config_dir

from sympscale.curriculum import horizon_schedule, mean_horizon
from sympscale.recipe import effective_train
from sympscale.train import config_dir


def row(preset: str, model: str) -> str:
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"train={preset}", f"model={model}"])
    tr = effective_train(cfg.train, model)
    sched = horizon_schedule(
        tr["curriculum"],
        horizon=tr["horizon"],
        steps=tr["steps"],
        start=tr["horizon_start"],
        ramp_fraction=tr["ramp_fraction"],
    )
    mean = mean_horizon(sched, tr["steps"])
    before, after = tr["steps"] * tr["horizon"], tr["steps"] * mean
    stages = " → ".join(str(h) for _, h in sched)
    return (
        f"| {preset} | {model} | {tr['steps']:,} | {tr['horizon']} | {stages} (ramp {tr['ramp_fraction']:g}) | "
        f"{mean:.1f} | {before:,.0f} | {after:,.0f} | {before / after:.1f}x |"
    )


def main() -> None:
    print(
        "| preset | model | steps | final horizon | curriculum stages | mean horizon | cost constant | cost curriculum | saving |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for preset in ("smoke", "default", "paper"):
        for model in ("symp", "gru"):
            print(row(preset, model))


if __name__ == "__main__":
    main()
