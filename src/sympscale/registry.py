"""Registries: one per extension point (systems, models, integrators, evaluation metrics).

An entry is a name, an options dataclass and a constructor. The options dataclass is the config group's schema:
its fields and defaults are the keys a YAML file or the command line may set, and the entry point turns it into
Hydra's structured-config node (`sympscale.config`), so no schema is written twice. Validation, method labels,
the analysis and the figures iterate the registries instead of naming systems or models.

    SYSTEMS.register("toy", options=Toy, make=Toy)   # adding a system: one module, this line, one YAML file
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable, Iterator, Mapping
from typing import Any


class UnknownName(ValueError):
    """A name that no entry of a registry has."""


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    options: type  # a dataclass: the config group's keys and defaults
    make: Callable[..., Any]  # the constructor
    check: Callable[..., list[str]] | None = None  # problems with a set of options before anything is built
    doc: str = ""
    rank: Callable[..., Any] | None = None  # models: (options, context) -> IncrementRank (None: no bound claimed)

    def defaults(self) -> dict[str, Any]:
        """The options' default values (fields without a default are left out)."""
        out = {}
        for f in dataclasses.fields(self.options):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
        return out


class Registry(Mapping[str, Entry]):
    """Named entries of one kind, in registration order."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(
        self, name: str, *, options: type, make: Callable[..., Any], check=None, doc: str = "", rank=None
    ) -> Entry:
        if not dataclasses.is_dataclass(options):
            raise TypeError(f"{self.kind} {name!r}: options must be a dataclass, got {options!r}")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        entry = Entry(name, options, make, check, doc or (options.__doc__ or "").strip().split("\n")[0], rank)
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove an entry (tests that register a toy entry clean up after themselves)."""
        self._entries.pop(name, None)

    def __getitem__(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownName(self.unknown(name)) from None

    def unknown(self, name: Any) -> str:
        return f"unknown {self.kind} {name!r}; valid: {', '.join(self._entries)}"

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind}: {', '.join(self._entries)})"


def import_all(package: str, path) -> None:
    """Import every module of a package: each registers what it declares (a new module needs no other edit)."""
    for module in pkgutil.iter_modules(path):
        importlib.import_module(f"{package}.{module.name}")


SYSTEMS = Registry("system")  # sympscale.systems.*: a System dataclass is its own options
MODELS = Registry("model")  # sympscale.models.*: <Name>Options(ModelOptions) and make(options, Context)
INTEGRATORS = Registry("integrator")  # sympscale.integrators.composition: the splitting methods' coefficients
METRICS = Registry("metric")  # sympscale.evaluation: the rollout metrics every run reports
