"""Hamiltonian (and one dissipative) systems, each registered in `sympscale.registry.SYSTEMS` by its own module.

A system is a frozen dataclass: its fields (all but D) are its options and its config schema.
"""

from __future__ import annotations

from collections.abc import Sequence

from sympscale.registry import SYSTEMS, UnknownName, import_all
from sympscale.systems.base import HamiltonianSystem, InvalidSystemError, System
from sympscale.systems.cr3bp import CR3BP
from sympscale.systems.fput import FPUT
from sympscale.systems.ks import KS
from sympscale.systems.nbody import NBody
from sympscale.systems.toda import Toda

import_all(__name__, __path__)  # each system module registers itself


def make_system(name: str, D: int, **params) -> System:
    """Build a system by name; unknown names and impossible D raise InvalidSystemError naming valid values."""
    try:
        entry = SYSTEMS[name]
    except UnknownName as e:
        raise InvalidSystemError(str(e)) from None
    params = {k: tuple(v) if isinstance(v, Sequence) and not isinstance(v, str) else v for k, v in params.items()}
    return entry.make(D=D, **params)


def check_D(name: str, D: int) -> str | None:
    """None when D is valid for the named system, else a message saying which D are valid."""
    if name not in SYSTEMS:
        return SYSTEMS.unknown(name)
    return SYSTEMS[name].options.check_D(D)


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
