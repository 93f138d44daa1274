"""Registry of Hamiltonian systems: one module per system, one entry here."""

from __future__ import annotations

from sympscale.systems.base import HamiltonianSystem, InvalidSystemError
from sympscale.systems.fput import FPUT
from sympscale.systems.toda import Toda

SYSTEMS: dict[str, type[HamiltonianSystem]] = {"fput": FPUT, "toda": Toda}


def make_system(name: str, D: int, **params) -> HamiltonianSystem:
    """Build a system by name; unknown names and impossible D raise InvalidSystemError naming valid values."""
    if name not in SYSTEMS:
        raise InvalidSystemError(f"unknown system {name!r}; valid systems: {', '.join(sorted(SYSTEMS))}")
    return SYSTEMS[name](D=D, **params)


def check_D(name: str, D: int) -> str | None:
    """None when D is valid for the named system, else a message saying which D are valid."""
    if name not in SYSTEMS:
        return f"unknown system {name!r}; valid systems: {', '.join(sorted(SYSTEMS))}"
    return SYSTEMS[name].check_D(D)


__all__ = ["FPUT", "SYSTEMS", "HamiltonianSystem", "InvalidSystemError", "Toda", "check_D", "make_system"]
