"""The CPU training step of the no-argument run and the Lyapunov estimate, before and after two changes.

    python benchmarks/step_cost.py

1. Consecutive substeps of the symplectic step share their boundary kick (Yoshida-4, 4 substeps: 13 force
   evaluations per observation instead of 16). "unmerged" rebuilds the old step: one `split_step` per substep.
2. XLA's CPU fusion emitters: off for the whole process (`XLA_FLAGS=--xla_cpu_use_fusion_emitters=false`, what
   `import sympscale` used to set) or off only in the Lyapunov estimate's program (what the package does now).

Each variant runs in a fresh process (XLA_FLAGS is read once). Training step: the default config's gradient step
(composed as `python -m sympscale.train` composes it; shapes only, random batch) and the same at horizon 10 with
per-step remat, median of 20 calls after the compile. Lyapunov: FPUT D = 16, 8 states, 200 intervals, compile included. Prints a markdown table.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import time

VARIANTS = {  # name: (process-wide XLA flag, merged boundary kicks)
    "before: flag process-wide, unmerged kicks": ("--xla_cpu_use_fusion_emitters=false", False),
    "flag process-wide, merged kicks": ("--xla_cpu_use_fusion_emitters=false", True),
    "after: flag in the Lyapunov program only, merged kicks": ("", True),
}


def _unmerged(model):
    """The same model stepping one `split_step` per substep (each substep with its own two boundary kicks)."""
    import dataclasses

    import jax.numpy as jnp

    from sympscale.integrators import split_step

    class Unmerged(type(model)):
        def step(self, params, x):
            net = self._networks(params)
            h = self.dt / self.substeps

            def kick(q, t):
                import jax

                return -t * jax.grad(lambda q_: jnp.sum(self._V(net, q_)))(q)

            flow_A, q, p = self._flow_A(net), x[..., : self.N], x[..., self.N :]
            for _ in range(self.substeps):
                q, p = split_step(kick, flow_A, q, p, h, method=self.method)
            return jnp.concatenate([q, p], axis=-1)

    return Unmerged(**{f.name: getattr(model, f.name) for f in dataclasses.fields(model)})


def one(merged: bool) -> dict:
    import dataclasses

    import jax
    from hydra import compose, initialize_config_dir

    from sympscale import diagnostics
    from sympscale.assembly import assemble
    from sympscale.job import JobSpec
    from sympscale.profiling import measure_step
    from sympscale.systems import make_system
    from sympscale.train import config_dir, register

    register()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        spec = JobSpec.from_config(compose(config_name="config"))
    run = assemble(spec)
    if not merged:
        run = dataclasses.replace(run, model=_unmerged(run.model))
    step = measure_step(run, run.train.memory, repeats=20)
    long = measure_step(run.with_train(dataclasses.replace(run.train, horizon=10)), "remat", repeats=20)
    system = make_system("fput", 16)
    x0 = system.sample_initial(jax.random.key(0), 8)
    t0 = time.perf_counter()
    lyap = diagnostics.lyapunov_exponent(system, x0, 200, transient=50)
    return {
        "step_ms": 1e3 * step["step_s"],
        "first_step_s": step["first_call_s"],
        "h10_ms": 1e3 * long["step_s"],
        "lyapunov_s": time.perf_counter() - t0,
        "lambda1": lyap["lambda1"],
        "config": f"{spec.system} D={spec.D} {spec.model} width {spec.capacity.width} B={run.train.batch_size} "
        f"horizon {run.train.horizon} memory {run.train.memory}",
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        print(json.dumps(one(sys.argv[2] == "merged")))
        return
    import jax

    rows = []
    for name, (flag, merged) in VARIANTS.items():
        env = {**os.environ, "XLA_FLAGS": flag}
        arg = "merged" if merged else "unmerged"
        out = subprocess.run([sys.executable, __file__, "--one", arg], env=env, capture_output=True, text=True)
        if out.returncode:
            sys.exit(f"{name}: {out.stderr.strip().splitlines()[-1]}")
        rows.append((name, json.loads(out.stdout.strip().splitlines()[-1])))
    print(
        f"{rows[0][1]['config']}; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"jax {jax.__version__}, {datetime.date.today()}\n"
    )
    print(
        "| variant | training step ms | first step s (compile) | step ms, horizon 10, remat "
        "| Lyapunov FPUT D=16, 200 intervals, s | λ₁ |"
    )
    print("|---|---|---|---|---|---|")
    for name, r in rows:
        print(
            f"| {name} | {r['step_ms']:.1f} | {r['first_step_s']:.1f} | {r['h10_ms']:.1f} | {r['lyapunov_s']:.1f} "
            f"| {r['lambda1']:.6f} |"
        )


if __name__ == "__main__":
    main()
