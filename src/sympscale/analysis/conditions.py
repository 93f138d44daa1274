"""What distinguishes a run's method and setting, derived from its config rather than listed by hand.

A method is a model with the options it changes from its registered defaults and its projection. The defaults are
read from the run's own config.json (`_model_defaults`, written by the job), so the analysis reads outputs only and
never imports the models (nor JAX); runs written before that record existed fall back to the registry.

A setting is every other option of the computation (`sympscale.identity.computation`) in which the sweep's runs of
a system differ, but the seed: the training horizon, the learning rate, the BPTT window, a physical parameter... Runs are pooled and paired only within one (system, D, method, setting): two runs that
differ in anything but the seed are never averaged together.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from sympscale.identity import computation

# keys with their own columns in every table (`stats.GROUP`), and the replicates: the seed and the data seed (a
# new draw of the same data distribution; pairs match on it, `stats.PAIR_KEYS`)
OWN_COLUMNS = ("system.name", "D", "seed", "data_seed", "bptt_window.name", "bptt_window.window")


def model_label(model: Mapping, defaults: Mapping | None = None) -> str:
    """The method a run belongs to: symp, symp+multi, symp(kinetic=mlp, substeps=8)+single, gru, ...

    `defaults`: the model's registered option defaults as the run recorded them (None: look them up)."""
    name, projection = model.get("name"), model.get("projection") or "none"
    defaults = registered_defaults(name) if defaults is None else defaults
    changed = [
        f"{k}={model[k]}"
        for k, v in defaults.items()
        if k not in ("name", "projection") and k in model and model[k] != v
    ]
    label = f"{name}({', '.join(changed)})" if changed else str(name)
    return label if projection == "none" else f"{label}+{projection}"


def registered_defaults(name) -> dict:
    """A model's option defaults from the registry (for runs that did not record them: imports the models)."""
    if not isinstance(name, str):
        return {}
    import sympscale.models  # noqa: F401  (the built-in models register themselves)
    from sympscale.registry import MODELS

    return MODELS[name].defaults() if name in MODELS else {}


def _flat(node, prefix: str = "") -> dict[str, str]:
    """Dotted key -> the value as JSON text (leaves only)."""
    if isinstance(node, Mapping):
        out: dict[str, str] = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: json.dumps(node, sort_keys=True, default=str)}


def _settings(cfg: Mapping) -> dict[str, str]:
    """The computation's options that are not the system's name, D, the seed or the model's."""
    flat = _flat(computation(cfg))
    # a cell's tuned recipe belongs to its model (as train.recipes.<model> does): shown as lr, horizon schedule
    # and recipe source, never a setting that would keep a tuned GRU from pairing with a tuned symp model
    return {k: v for k, v in flat.items() if k not in OWN_COLUMNS and not k.startswith(("model.", "train.tuned."))}


def setting_labels(configs: list[Mapping | None]) -> list[str | None]:
    """Per run: 'key=value, ...' of the settings in which runs of its system differ ('' when none; None: no config)."""
    flats = [_settings(c) if isinstance(c, Mapping) else None for c in configs]
    systems = [str(_system(c)) for c in configs]
    varying: dict[str, set[str]] = {}
    for system in set(systems):
        group = [f for f, s in zip(flats, systems, strict=True) if f is not None and s == system]
        keys = set().union(*group) if group else set()
        varying[system] = {k for k in keys if len({f.get(k, "<absent>") for f in group}) > 1}
    return [
        None if f is None else ", ".join(f"{k}={_show(f.get(k, '<absent>'))}" for k in sorted(varying[s]))
        for f, s in zip(flats, systems, strict=True)
    ]


def _system(cfg) -> object:
    system = cfg.get("system") if isinstance(cfg, Mapping) else None
    return system.get("name") if isinstance(system, Mapping) else None


def _show(text: str) -> str:
    return text[1:-1] if text.startswith('"') and text.endswith('"') else text
