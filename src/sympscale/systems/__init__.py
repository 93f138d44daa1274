"""Registry of Hamiltonian systems: one module per system, one entry here."""

from __future__ import annotations

from collections.abc import Sequence

from sympscale.systems.base import HamiltonianSystem, InvalidSystemError, System
from sympscale.systems.cr3bp import CR3BP
from sympscale.systems.fput import FPUT
from sympscale.systems.ks import KS
from sympscale.systems.nbody import NBody
from sympscale.systems.toda import Toda

SYSTEMS: dict[str, type[System]] = {"fput": FPUT, "toda": Toda, "nbody": NBody, "cr3bp": CR3BP, "ks": KS}


def make_system(name: str, D: int, **params) -> System:
    """Build a system by name; unknown names and impossible D raise InvalidSystemError naming valid values."""
    if name not in SYSTEMS:
        raise InvalidSystemError(f"unknown system {name!r}; valid systems: {', '.join(sorted(SYSTEMS))}")
    params = {k: tuple(v) if isinstance(v, Sequence) and not isinstance(v, str) else v for k, v in params.items()}
    return SYSTEMS[name](D=D, **params)


def check_D(name: str, D: int) -> str | None:
    """None when D is valid for the named system, else a message saying which D are valid."""
    if name not in SYSTEMS:
        return f"unknown system {name!r}; valid systems: {', '.join(sorted(SYSTEMS))}"
    return SYSTEMS[name].check_D(D)


__all__ = [
    "CR3BP",
    "FPUT",
    "KS",
    "NBody",
    "SYSTEMS",
    "HamiltonianSystem",
    "InvalidSystemError",
    "System",
    "Toda",
    "check_D",
    "make_system",
]
