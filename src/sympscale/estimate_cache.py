"""The dry run's measured steps, kept per user (`~/.cache/sympscale/estimates`, 0700, one JSON file each).

A measurement is keyed by its step (`estimate.step_key`) and by everything else its time depends on (`machine`:
the device, its software and memory budget, the host's CPU and usable cores, the XLA/JAX settings, the source
digest and library versions). A later dry run within `KEEP_DAYS` reuses it, its basis saying when it was
measured; a damaged or foreign file is measured again, a failure is never kept. Remove the folder to measure
everything again.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path

from sympscale.estimate import step_key

KEEP_DAYS = 7  # a kept measurement is reused this long (the device may have been busy when it was made)


def paths(requests: list[dict]) -> list:
    """Where each request's measurement is kept (None: not kept, e.g. no private folder, a malformed request)."""
    from sympscale.launcher import compile_cache

    try:
        folder, _ = compile_cache.private_dir("estimates")
    except (OSError, RuntimeError):  # no home folder (a container's uid without a passwd entry)
        folder = None
    if folder is None:
        return [None] * len(requests)
    host = machine()
    out = []
    for r in requests:
        try:
            out.append(folder / f"{_key(r, host)}.json")
        except Exception:  # noqa: BLE001 (measured, not kept; `estimate` says what is wrong with it)
            out.append(None)
    return out


def machine() -> dict:
    """What a step's time depends on besides the step: the device and its software, the host, the settings."""
    import os
    import platform

    import jax

    from sympscale import provenance
    from sympscale.launcher.devices import usable_cores
    from sympscale.profiling import device_budget

    dev = jax.devices()[0]
    try:
        cpu = next(x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    return {
        "device": [dev.platform, getattr(dev, "device_kind", ""), getattr(dev.client, "platform_version", "")],
        "host": [platform.machine(), cpu, usable_cores()],
        "budget": device_budget()[0],
        "settings": {k: v for k, v in os.environ.items() if k.startswith(("XLA_", "JAX_"))},
        "code": provenance.record(),
    }


def _key(request: dict, host: dict) -> str:
    what = {"step": step_key(request["config"], int(request["seeds"])), "machine": host}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:24]


def kept(path) -> dict | None:
    """A kept measurement, its basis saying when it was made; None where there is none (or it is damaged)."""
    from sympscale.launcher.jsonfile import read_json

    if path is None or not path.exists():
        return None
    rec, problem = read_json(path)
    if problem or not isinstance(rec, dict) or not isinstance(rec.get("estimate"), dict):
        return None
    answer = dict(rec["estimate"])
    if not all(isinstance(answer.get(k), int | float) for k in ("seconds", "step_s")):
        return None
    try:
        age = datetime.datetime.now().astimezone() - datetime.datetime.fromisoformat(str(rec.get("measured")))
    except (TypeError, ValueError):
        return None
    if not datetime.timedelta(0) <= age <= datetime.timedelta(days=KEEP_DAYS):
        return None
    answer["basis"] = f"{answer.get('basis', '')} (measured {rec.get('measured', '?')}, kept in {path.parent})"
    return answer


def keep(path, answer: dict) -> None:
    from sympscale.launcher.jsonfile import write_json

    if answer.get("seconds") is None:
        return
    measured = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    try:
        write_json(path, {"estimate": answer, "measured": measured})
    except OSError:  # a full or read-only disk: the estimate stands, it is just not kept
        pass
