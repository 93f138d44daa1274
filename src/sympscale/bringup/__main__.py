"""`python -m sympscale.bringup [--quick] [--out DIR] [--only SECTION,...]`: run the checks, write the report.

Writes DIR/report.json and DIR/report.md (a previous report is kept under its date) and prints the verdict:
exit 0 when ready, 1 when a check failed, 2 for a bad command line.

    python -m sympscale.bringup                 # on the GPU node: the headline configuration
    python -m sympscale.bringup --quick         # the reduced sizes (what a CPU-only machine runs anyway)
    python -m sympscale.bringup --only devices,isolation,numerics
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from sympscale.bringup.report import SECTIONS  # no JAX: the environment is prepared before JAX starts


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, no usage block
        print(f"sympscale.bringup: {message}", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m sympscale.bringup", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="reduced sizes (a CPU-only machine runs these anyway)")
    p.add_argument("--out", default="bringup", help="folder of report.json and report.md (default: bringup)")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"sections to run, of: {','.join(SECTIONS)}")
    return p


def _sections(only: str) -> list[str]:
    chosen = [s.strip() for s in only.split(",") if s.strip()]
    bad = [s for s in chosen if s not in SECTIONS]
    if bad or not chosen:
        print(
            f"sympscale.bringup: --only={only!r}: unknown section(s) {bad}; valid: {','.join(SECTIONS)}",
            file=sys.stderr,
        )
        raise SystemExit(2)
    if "speed" in chosen and "memory" not in chosen:  # the step speed is the memory section's measured step
        chosen.insert(chosen.index("speed"), "memory")
    return [s for s in SECTIONS if s in chosen]


def _out_dir(out: str) -> Path:
    path = Path(out)
    if path.exists() and not path.is_dir():
        print(f"sympscale.bringup: --out={out!r} is a file, not a folder", file=sys.stderr)
        raise SystemExit(2)
    return path


def _prepare_jax_env() -> dict:
    """Before JAX starts: no preallocation here or in the measuring processes (they share the devices with this
    one) and the CPU backend next to the accelerator (the numerics' reference). Returns the environment as the
    user set it, which the mini sweep's jobs get (they run as a sweep would)."""
    import jax  # imported (by `sympscale`), not started: both settings apply when the first backend starts

    users = dict(os.environ)
    os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    platforms = jax.config.jax_platforms
    if platforms and "cpu" not in platforms.split(","):
        jax.config.update("jax_platforms", f"{platforms},cpu")
    return users


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    sections, out_dir = _sections(a.only), _out_dir(a.out)
    users_env = _prepare_jax_env()
    started = time.time()
    from sympscale.bringup import report
    from sympscale.bringup.checks import NODE, QUICK, Context, run_section
    from sympscale.bringup.environment import describe

    env = describe()
    accelerator = env["platform"] != "cpu"
    scale = NODE if accelerator and not a.quick else QUICK
    mode = "cpu" if not accelerator else scale.name
    print(f"bring-up ({mode} mode) on {env['device']} × {env['n_devices']}: {', '.join(sections)}", flush=True)
    from sympscale.launcher.devices import MaskError

    try:
        ctx, checks = Context(scale, users_env), []
    except MaskError as e:
        print(f"sympscale.bringup: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    for section in sections:
        t0 = time.perf_counter()
        found = run_section(section, ctx)
        checks += found
        worst = max((c.status for c in found), key=report.STATUSES_BY_SEVERITY.index, default="skip")
        print(f"  {section:<10} {worst:<5} {time.perf_counter() - t0:7.1f} s", flush=True)
    not_run = [s for s in report.SECTIONS if s not in sections]
    rep = report.build(checks, mode=mode, environment=env, started=started, not_run=not_run)
    kept = report.write(rep, out_dir)
    for path in kept:
        print(f"the previous report was kept as {path}")
    print(report.console(rep, [str(out_dir / "report.json"), str(out_dir / "report.md")]))
    return 0 if rep["verdict"]["ready"] else 1


if __name__ == "__main__":
    sys.exit(main())
