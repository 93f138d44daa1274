"""Parameter counts and capacity ratios of every model for every valid (system, D) of the study grid.

    python benchmarks/capacity.py                 # width 64 (default) and 512 (paper), depth 3
    python benchmarks/capacity.py --width 128

Builds each model exactly as a run does (the system's known quadratic part included) and counts the
parameters of its real initial pytree (shapes only, nothing is allocated). Prints a markdown table.
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

import sympscale  # noqa: F401  (float64)
from sympscale.models import MODELS, Capacity, build
from sympscale.systems import SYSTEMS, check_D, make_system

GRID_D = (4, 16, 64, 256, 1024)


def counts(system: str, D: int, capacity: Capacity) -> dict[str, tuple[int, float, dict]]:
    sys_ = make_system(system, D)
    kw = dict(D=D, dt=0.1, mean=np.zeros(D), std=np.ones(D), capacity=capacity, exact=sys_.exact_quadratic())
    out = {}
    for name in MODELS:
        model, info = build(name, **kw, system=sys_)
        shapes = jax.eval_shape(model.init, jax.random.key(0))
        n = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(shapes))
        assert n == info["params"], (system, D, name, n, info["params"])
        out[name] = (n, info["capacity_ratio"], info["sizes"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, nargs="*", default=[64, 512])
    ap.add_argument("--depth", type=int, default=3)
    args = ap.parse_args()
    for width in args.width:
        print(f"\n### width {width}, depth {args.depth}\n")
        print("| system | D | symp | gru (ratio; H, E, K) | rk4 (ratio) | freeform (ratio; w, w₂) |")
        print("|---|---|---|---|---|---|")
        for system in sorted(SYSTEMS):
            for D in GRID_D:
                if check_D(system, D) is not None:
                    continue
                c = counts(system, D, Capacity(width=width, depth=args.depth))
                g, f = c["gru"][2], c["freeform"][2]
                print(
                    f"| {system} | {D} | {c['symp'][0]:,} ({c['symp'][2]['kinetic']}) "
                    f"| {c['gru'][0]:,} ({c['gru'][1]:.5f}; {g['hidden']}, {g['embed']}, {g['decoder_hidden']}) "
                    f"| {c['rk4'][0]:,} ({c['rk4'][1]:.5f}) "
                    f"| {c['freeform'][0]:,} ({c['freeform'][1]:.5f}; {f['width']}, {f['last_width']}) |"
                )


if __name__ == "__main__":
    main()
