"""Which grid points this node runs, when a grid is split over several nodes (e.g. a Slurm job array).

Shares follow the bundles: the grid in bundle-major order (each configuration's seeds together, configurations in
the order they first appear), cut into n contiguous parts of near-equal size. A configuration's seeds then run on
one node as one bundle wherever the counts allow (the user's 8 configurations x 10 seeds on 8 nodes: one each);
cutting by job index instead would scatter every configuration's seeds over the nodes and shrink its bundles.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence


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


def shard_positions(keys: Sequence[Hashable], shard: tuple[int, int] | None) -> set[int]:
    """The positions (in grid order) of the jobs node `shard` = (i, n) runs, given each job's configuration key
    with its seed left out (`bundles.seed_free`); every position when `shard` is None."""
    if shard is None:
        return set(range(len(keys)))
    first: dict = {}
    for k in keys:
        first.setdefault(k, len(first))
    order = sorted(range(len(keys)), key=lambda j: (first[keys[j]], j))  # bundle-major, stable
    i, n = shard
    return set(order[i * len(keys) // n : (i + 1) * len(keys) // n])
