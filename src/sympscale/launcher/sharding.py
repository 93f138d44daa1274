"""Which grid points this node runs, when a grid is split over several nodes (e.g. a Slurm job array)."""

from __future__ import annotations

import os


def parse_shard(shard: str | None, env: dict | None = None) -> tuple[int, int] | None:
    """None (run everything), 'i/n' (0-based shard i of n), or 'slurm' (from the job-array variables)."""
    if shard in (None, "", "none"):
        return None
    env = os.environ if env is None else env
    if shard == "slurm":
        try:
            task = int(env["SLURM_ARRAY_TASK_ID"])
            first = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
            count = int(env["SLURM_ARRAY_TASK_COUNT"])
        except KeyError as e:
            raise ValueError(f"shard=slurm but {e.args[0]} is not set: is this a Slurm job array task?") from None
        return task - first, count
    try:
        i, n = (int(v) for v in str(shard).split("/"))
    except ValueError:
        raise ValueError(f"shard={shard!r}: expected 'i/n' (e.g. 0/4), 'slurm' or null") from None
    if not 0 <= i < n:
        raise ValueError(f"shard={shard!r}: need 0 <= i < n")
    return i, n


def in_shard(idx: int, shard: tuple[int, int] | None) -> bool:
    return shard is None or idx % shard[1] == shard[0]
