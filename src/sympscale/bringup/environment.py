"""The software and hardware a bring-up report was made on."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess

import jax
import jaxlib


def describe() -> dict:
    """What every job records (`sympscale.job.environment`), plus the stack under it and the date."""
    from sympscale.job import environment

    dev = jax.devices()[0]
    return {
        **environment(),
        "platform_version": getattr(dev.client, "platform_version", None),
        "driver": _driver(),
        "jaxlib": jaxlib.__version__,
        "date": dt.date.today().isoformat(),
    }


def _driver() -> str | None:
    """The GPU driver version (nvidia-smi's first GPU; rocm-smi's "Driver version" line), None when neither answers."""
    tools = (
        (["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], _first_line),
        (["rocm-smi", "--showdriverversion"], _rocm_driver),
    )
    for cmd, parse in tools:
        if shutil.which(cmd[0]):
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                continue
            if r.returncode == 0 and parse(r.stdout):
                return parse(r.stdout)
    return None


def _first_line(text: str) -> str | None:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else None


def _rocm_driver(text: str) -> str | None:
    """ "Driver version: 6.8.5" from rocm-smi's report (between banner lines)."""
    for line in text.splitlines():
        if "driver version" in line.lower() and ":" in line:
            return line.split(":", 1)[1].strip() or None
    return None
