"""Training-horizon curricula: the free-running horizon grows from a short start to the final `horizon`.

Why: a free-running loss through many Lyapunov times from a random initialisation has exploding,
uninformative gradients (Metz et al. 2021, "Gradients are not all you need"); the one-step loss is well
conditioned but leaves the model untested on its own predictions (exposure bias). The curriculum starts at
`start` steps and doubles the horizon in equal stages over the first `ramp_fraction` of training, then trains at
the final horizon: the model is accurate locally before it is asked to stay accurate on its own outputs.

A schedule is a tuple of stages (first_step, horizon), first_step increasing from 0, horizon non-decreasing and
ending at the final horizon. Each distinct horizon compiles one training step, so stages double (≈ log₂ T
compiles) rather than grow by one. A truncated-BPTT window k keeps its meaning at every stage: gradients stop
through the carried state every k steps of the current horizon (no cut while the horizon is ≤ k).
"""

from __future__ import annotations

CURRICULA = ("geometric", "constant")


def horizon_schedule(
    kind: str, *, horizon: int, steps: int, start: int = 1, ramp_fraction: float = 0.5
) -> tuple[tuple[int, int], ...]:
    """Stages (first_step, horizon) of a curriculum over `steps` training steps ending at `horizon`.

    geometric: horizons start, 2·start, 4·start, … capped at `horizon`; the stages below the final one share the
    first ramp_fraction·steps equally, the final horizon trains for the rest. constant: the final horizon
    throughout.
    """
    if kind not in CURRICULA:
        raise ValueError(f"curriculum={kind!r} is unknown; valid: {', '.join(CURRICULA)}")
    if horizon < 1 or steps < 1:
        raise ValueError(f"horizon={horizon} and steps={steps} must be >= 1")
    if kind == "constant" or start >= horizon:
        return ((0, horizon),)
    if not 1 <= start or not 0.0 <= ramp_fraction <= 1.0:
        raise ValueError(f"curriculum start={start} must be >= 1 and ramp_fraction={ramp_fraction} in [0, 1]")
    ramp = [start]
    while ramp[-1] * 2 < horizon:
        ramp.append(ramp[-1] * 2)
    final_from = min(int(round(ramp_fraction * steps)), steps - 1)  # at least one step at the final horizon
    stages = {i * final_from // len(ramp): h for i, h in enumerate(ramp)}  # a later stage wins a shared step
    stages[final_from] = horizon
    return tuple(sorted(stages.items()))


def horizon_at(schedule: tuple[tuple[int, int], ...], step: int) -> int:
    """The training horizon in force at `step`."""
    current = schedule[0][1]
    for first, h in schedule:
        if step >= first:
            current = h
    return current


def mean_horizon(schedule: tuple[tuple[int, int], ...], steps: int) -> float:
    """Average free-running steps per training step: the curriculum's cost relative to one-step training."""
    bounds = [first for first, _ in schedule[1:]] + [steps]
    return sum((end - first) * h for (first, h), end in zip(schedule, bounds, strict=True)) / steps
