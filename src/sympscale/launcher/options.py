"""Checks of the `hydra.launcher.*` options, before anything is written or started.

Pure: no Hydra, no file system. The sweeper calls it to refuse a bad sweep before it writes anything; the
launcher calls it again at the start of `launch` (defence in depth): no option may make the launcher wait
forever (zero worker slots) or do something other than what was asked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from sympscale.launcher.devices import PLATFORMS
from sympscale.launcher.sharding import parse_shard

BOOLEANS = ("resume", "rerun_stale", "fail_fast", "dry_run")
MAX_RETRIES = 100  # a failure that repeats forever must not keep the launcher busy forever
MAX_BUNDLE = 256  # seeds in one process: beyond this a typo, not a plan


def launcher_option_errors(options: Mapping) -> list[str]:
    """One line per bad option, starting with the key: `key=value is invalid; valid: ...`. Empty when all are valid.

    Keys absent from `options` are not checked (their defaults are valid). Callers add the `hydra.launcher.`
    prefix when they print a line.
    """
    errors: list[str] = []

    def bad(key: str, valid: str) -> None:
        errors.append(f"{key}={options[key]!r} is invalid; valid: {valid}")

    if "platform" in options and options["platform"] not in PLATFORMS:
        bad("platform", " | ".join(PLATFORMS))
    if "devices" in options and options["devices"] is not None:
        devices = options["devices"]
        if isinstance(devices, str | bytes | Mapping) or not hasattr(devices, "__iter__"):
            bad("devices", "null or a non-empty list of device ids, e.g. [0,1]")
        elif not list(devices) or not all(isinstance(d, str | int) and not isinstance(d, bool) for d in devices):
            bad("devices", "null or a non-empty list of device ids, e.g. [0,1]")
        elif any(not str(d).strip() for d in devices):
            bad("devices", "device ids must not be empty strings")
    if "cpu_workers" in options and options["cpu_workers"] is not None and not _int_at_least(options["cpu_workers"], 1):
        bad("cpu_workers", "null (half the cores) or an integer >= 1")
    if "jobs_per_device" in options and not _int_at_least(options["jobs_per_device"], 1):
        bad("jobs_per_device", "an integer >= 1")
    if "max_retries" in options and not (
        _int_at_least(options["max_retries"], 0) and options["max_retries"] <= MAX_RETRIES
    ):
        bad("max_retries", f"an integer in 0..{MAX_RETRIES}")
    if "bundle" in options and not (
        options["bundle"] == "auto" or (_int_at_least(options["bundle"], 1) and options["bundle"] <= MAX_BUNDLE)
    ):
        bad("bundle", f"auto or an integer in 1..{MAX_BUNDLE} (seeds per process; 1: one process per job)")
    if "progress_every" in options:
        p = options["progress_every"]
        if isinstance(p, bool) or not isinstance(p, int | float) or not math.isfinite(p) or p <= 0:
            bad("progress_every", "a finite number of seconds > 0")
    if "shard" in options:
        shard = options["shard"]
        if shard is not None and not isinstance(shard, str):
            bad("shard", "null, 'slurm' or 'i/n' with 0 <= i < n")
        else:
            try:
                parse_shard(shard)
            except ValueError as e:  # its message names the value and what is valid
                errors.append(str(e))
    for key in BOOLEANS:
        if key in options and not isinstance(options[key], bool):
            bad(key, "true | false")
    return errors


def _int_at_least(value, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low
