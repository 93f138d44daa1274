"""Which grid points this node runs, when a grid is split over several nodes (e.g. a Slurm job array).

Shares follow the bundles: the grid in bundle-major order (each configuration's seeds together, configurations in
the order they first appear), cut into n contiguous parts. Where every part can hold whole configurations (at
least n of them), the cuts fall between configurations, each configuration in the part that holds the middle of
its jobs (near-equal in jobs: the user's 8 configurations x 10 seeds on 3 nodes are 3, 2 and 3 configurations;
cut mid-configuration, a node would run a 4- and a 6-seed bundle of one configuration, each taking about a full
bundle's time on a GPU, where the step is latency-bound). With fewer configurations than nodes, the parts are of
near-equal size, cutting configurations; so too where jobs run one per process (`bundle=1`), which have no
bundle to keep whole. Cutting by job index instead would scatter every configuration's seeds
over the nodes and shrink its bundles.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Hashable, Sequence


def parse_shard(shard: str | None, env: dict | None = None) -> tuple[int, int] | None:
    """None (run everything), 'i/n' (0-based shard i of n), or 'slurm' (from the job-array variables)."""
    if shard in (None, "", "none"):
        return None
    env = os.environ if env is None else env
    if shard == "slurm":
        return _slurm_shard(env)
    try:
        i, n = (int(v) for v in str(shard).split("/"))
    except ValueError:
        raise ValueError(f"shard={shard!r}: expected 'i/n' (e.g. 0/4), 'slurm' or null") from None
    if not 0 <= i < n:
        raise ValueError(f"shard={shard!r}: need 0 <= i < n")
    return i, n


def _slurm_shard(env) -> tuple[int, int]:
    """The share of a job array numbered 0 to n-1 (or 1 to n). Any other array (a task resubmitted alone,
    `--array=3`, or `--array=3,5`) cannot say how many shares the grid has: refused, where reading it as a whole
    would run the other tasks' jobs beside them (or none at all). A lone task of `--array=0` or `--array=1` reads as
    the one share of one: the generated node-array script passes `i/n` instead."""
    try:
        task, first, last, count = (int(env[f"SLURM_ARRAY_TASK_{k}"]) for k in ("ID", "MIN", "MAX", "COUNT"))
    except KeyError as e:
        raise ValueError(f"shard=slurm but {e.args[0]} is not set: is this a Slurm job array task?") from None
    if first not in (0, 1) or last - first + 1 != count:
        raise ValueError(
            f"shard=slurm but this task ({task}) belongs to an array {first}-{last} of {count} task(s), not one "
            f"numbered 0 to n-1 or 1 to n (a task resubmitted alone?); valid: such an array, or shard=<i>/<n> with "
            f"this task's share i (0 to n-1) and the grid's number of shares n"
        )
    return task - first, count


def shard_positions(keys: Sequence[Hashable], shard: tuple[int, int] | None, *, whole: bool = True) -> set[int]:
    """The positions (in grid order) of the jobs node `shard` = (i, n) runs, given each job's configuration key
    with its seed left out (`bundles.seed_free`); every position when `shard` is None. `whole=False` (jobs that run
    one per process, `bundle=1`): parts of near-equal size in jobs, configurations cut where that balances them."""
    if shard is None:
        return set(range(len(keys)))
    first: dict = {}
    for k in keys:
        first.setdefault(k, len(first))
    order = sorted(range(len(keys)), key=lambda j: (first[keys[j]], j))  # bundle-major, stable
    i, n = shard
    parts = _whole_configurations([keys[j] for j in order], n) if whole else None
    if parts is not None:
        return {j for j in order if parts[keys[j]] == i}
    return set(order[i * len(keys) // n : (i + 1) * len(keys) // n])


def _whole_configurations(ordered: list, n: int) -> dict | None:
    """configuration -> its part, each in the part that holds the middle of its jobs (`ordered`: the keys in
    bundle-major order); None where some part would get no configuration."""
    part, start = {}, 0
    for k, count in Counter(ordered).items():  # in first-appearance order
        part[k] = min(n - 1, (2 * start + count) * n // (2 * len(ordered)))
        start += count
    return part if len(set(part.values())) == n else None
