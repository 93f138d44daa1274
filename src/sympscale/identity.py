"""What a job computes, apart from where and how often it reports: the identity of a run.

Two job configs that differ only in settings that cannot change a result (where the sweep lands, where the
dataset cache lives, how often the log and the checkpoint are written, Hydra's own bookkeeping) are the same
computation: they share a job folder, a finished job stays finished, and the analysis counts them once.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

# dotted keys of the task config that never change what a job computes
NON_COMPUTATIONAL = ("name", "data.cache_dir", "train.log_every", "train.checkpoint_every", "if_changed")
# Hydra's runtime record and the model's registered option defaults (read by the analysis's method labels), kept
# beside the task config in config.json
BOOKKEEPING = ("hydra", "_hydra", "_model_defaults")


def computation(cfg: Mapping) -> dict:
    """The task config (a plain, resolved mapping) without the keys that do not change the result. A tuned recipe
    (`train.tuned`) counts by its values, and only where it applies (`train.recipe=auto`): rewriting a recipe file's
    record of its sweep, or one a run does not use, leaves the run's identity alone."""
    out = copy.deepcopy({k: v for k, v in dict(cfg).items() if k not in BOOKKEEPING})
    train = out.get("train")
    if isinstance(train, dict) and "tuned" in train:
        tuned = train["tuned"] if isinstance(train["tuned"], dict) else {}
        train["tuned"] = {"values": tuned.get("values")} if train.get("recipe", "auto") == "auto" and tuned else {}
    for dotted in NON_COMPUTATIONAL:
        *parents, leaf = dotted.split(".")
        node = out
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return out


def digest(cfg: Mapping) -> str:
    """A short stable hash of `computation(cfg)`."""
    text = json.dumps(computation(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def differences(old: Mapping, new: Mapping, limit: int = 6) -> list[str]:
    """The dotted keys whose values differ between two computations ('key: old -> new'), at most `limit`."""
    out: list[str] = []

    def walk(a, b, prefix):
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b), key=str):
                walk(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix[:-1]}: {a!r} -> {b!r}")

    walk(computation(old), computation(new), "")
    return out[:limit] + ([f"... and {len(out) - limit} more"] if len(out) > limit else [])


class FolderConflict(ValueError):
    """A job folder holds a finished run of a different computation."""


RESULT_FILES = ("config.json", "metrics.json", "status.json", "train_log.jsonl", "params.npz", "checkpoint.npz")


def finished_config(folder: str | os.PathLike) -> dict | None:
    """The config of the finished run in `folder`; {} when it finished but its config.json cannot be read (it may
    hold any computation); None when no run finished there."""
    folder = Path(folder)
    if not (folder / "metrics.json").exists():
        return None
    try:
        old = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return old if isinstance(old, dict) else {}


def conflict(folder: str | os.PathLike, cfg: Mapping) -> str | None:
    """Why `folder` cannot take `cfg`'s run without replacing another computation's finished result, or None."""
    old = finished_config(folder)
    if old is None or (old and digest(old) == digest(cfg)):
        return None
    if not old:
        return f"{folder} holds a finished run whose config.json cannot be read (it may be any computation)"
    return f"{folder} holds a finished run of a different computation ({'; '.join(differences(old, cfg))})"


def claim(folder: str | os.PathLike, cfg: Mapping, if_changed: str = "stop") -> tuple[Path, str] | None:
    """Make `folder` safe to write `cfg`'s run into: a finished run of another computation stops the job
    (FolderConflict) or, with if_changed="move_aside", moves into a subfolder; one whose config.json is damaged
    (it may be any computation) always moves aside. Returns (the subfolder, why) when a run moved."""
    folder = Path(folder)
    why = conflict(folder, cfg)
    if why is None:
        return None
    unreadable = finished_config(folder) == {}
    if if_changed != "move_aside" and not unreadable:
        raise FolderConflict(f"{why}: choose another name=... or hydra.sweep.dir=..., or pass if_changed=move_aside")
    aside = folder / time.strftime(f"{'damaged-config' if unreadable else 'replaced'}-%Y%m%dT%H%M%S")
    aside.mkdir()
    for name in RESULT_FILES:
        if (folder / name).exists():
            os.replace(folder / name, aside / name)
    return aside, why
