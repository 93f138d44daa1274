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
    """The GPU driver version (nvidia-smi, or rocm-smi), None when neither answers."""
    for cmd in (
        ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
        ["rocm-smi", "--showdriverversion"],
    ):
        if shutil.which(cmd[0]):
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                continue
            if r.returncode == 0 and r.stdout.strip():
                return r.stdout.strip().splitlines()[0].strip()
    return None
