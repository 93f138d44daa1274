"""Everything that can be wrong with a command line, found before anything is computed or written.

`python -m sympscale.train ...` calls `command_errors(argv)` before handing the command to Hydra, and the
sweeper calls `job_errors` for every job of a grid. Each problem is one line that names the key, the bad
value and what would be valid; the entrypoint prints them and exits with status 2. Nothing here writes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from sympscale import identity
from sympscale.validation import config_errors

MAX_JOBS = 10_000  # one command's grid; split larger studies into several sweeps
NAME_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=,-]*$")
FOLDER_NAME_MAX = 255  # bytes in one path component on Linux file systems
IF_CHANGED = ("stop", "move_aside")
ACTION_FLAGS = ("help", "hydra_help", "cfg", "info", "shell_completion")


class PreflightError(ValueError):
    """A problem found before any compute: one line per problem."""


def command_errors(argv: list[str], primary_dir: str) -> list[str]:
    """Problems with a whole command line (run or multirun); [] when Hydra may take it."""
    from hydra._internal.utils import get_args_parser

    args = get_args_parser().parse_args(argv)
    if any(getattr(args, flag, None) for flag in ACTION_FLAGS):
        return []  # help and introspection write nothing
    loader = make_loader(primary_dir, args.config_dir)
    if isinstance(loader, str):
        return [loader]
    errors = duplicate_errors(args.overrides) or group_choice_errors(loader, args.overrides)
    if errors:
        return errors
    try:
        cfg = loader.load_configuration("config", args.overrides, run_mode=RunMode.MULTIRUN)
    except Exception as e:  # Hydra's and OmegaConf's composition errors
        return [composition_error(e, args.overrides)]
    errors = added_key_errors(args.overrides, cfg)
    if errors:
        return errors
    if args.multirun or cfg.hydra.mode == RunMode.MULTIRUN:
        return launcher_errors(cfg)  # the sweeper checks each job of the grid
    try:
        cfg = loader.load_configuration("config", args.overrides, run_mode=RunMode.RUN)
    except Exception as e:
        return [composition_error(e, args.overrides)]
    return job_errors(cfg, "hydra.run.dir", None)


def make_loader(primary_dir: str, extra_dir: str | None):
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.core.config_search_path import SearchPathQuery

    search_path = create_config_search_path(primary_dir)
    if extra_dir is not None:
        path = os.path.abspath(extra_dir)
        if not os.path.isdir(path):
            return f"--config-dir={extra_dir!r} is not a directory"
        search_path.prepend(provider="command-line", path=f"file://{path}", anchor=SearchPathQuery(provider="schema"))
    return ConfigLoaderImpl(config_search_path=search_path)


def group_choice_errors(loader: Any, overrides: list[str]) -> list[str]:
    """`system=nbody3`, `bptt_window=-4`, `system=base_fput` (a schema, not an option): the valid choices named."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as e:
        return [f"cannot parse the command line: {str(e).strip().splitlines()[0]}"]
    errors = []
    for ov in parsed:
        group = ov.key_or_group
        if ov.is_delete() or ov.package is not None or not loader.repository.group_exists(group):
            continue
        options = [o for o in loader.get_group_options(group) if not o.startswith("base_")]
        values = list(ov.sweep_string_iterator()) if ov.is_sweep_override() else [ov.get_value_element_as_str()]
        for value in (v.strip("'\"") for v in values):  # numeric choices arrive quoted (sympscale.seeds)
            if value not in options:
                errors.append(f"{group}={value!r} is not an option of {group}; valid: {', '.join(sorted(options))}")
    return errors


def duplicate_errors(overrides: list[str]) -> list[str]:
    """`D=8 D=16`: Hydra keeps the last; a command line that says two things is refused instead."""
    seen: dict[str, str] = {}
    for ov in overrides:
        key = ov.lstrip("+~").split("=")[0]
        if key in seen:
            return [f"{key} is given twice ({seen[key]} and {ov}): give it once (a comma list sweeps values, with -m)"]
        seen[key] = ov
    return []


def composition_error(e: Exception, overrides: list[str]) -> str:
    """One line from a composition exception: Hydra's first line and, where it wraps one, the cause's."""
    lines = [_first_line(e)]
    if e.__cause__ is not None and _first_line(e.__cause__) not in lines[0]:
        lines.append(_first_line(e.__cause__))
    text = ": ".join(lines)
    if text.startswith("Ambiguous value"):
        text += " (a comma list sweeps its values: add -m)"
    if "not in struct" in text or "not in '" in text:
        text += "; the valid keys: python -m sympscale.train --cfg job"
    return text


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0].rstrip(".") if text else type(e).__name__


def added_key_errors(overrides: list[str], cfg: DictConfig) -> list[str]:
    """`+key=value` may only add entries where the schema is open (per-model recipes); a typo must not pass."""
    errors = []
    for ov in overrides:
        if not ov.startswith("+") or "=" not in ov:
            continue
        key = ov.lstrip("+").split("=")[0]
        if not key.startswith(("train.recipes.", "hydra.")):
            parent = key.rsplit(".", 1)[0] if "." in key else ""
            node = OmegaConf.select(cfg, parent) if parent else cfg
            valid = (
                ", ".join(sorted(k for k in node if k not in ("hydra", key.rsplit(".", 1)[-1])))
                if isinstance(node, DictConfig)
                else "none"
            )
            errors.append(f"{ov}: {key!r} is not a setting of this tool; valid keys here: {valid}")
    return errors


def launcher_errors(cfg: DictConfig) -> list[str]:
    """The local_devices launcher's options (a setting that makes it wait forever must not pass)."""
    launcher = OmegaConf.select(cfg, "hydra.launcher")
    if launcher is None or "local_devices" not in str(launcher.get("_target_", "")):
        return []
    from sympscale.launcher.options import launcher_option_errors

    options = {k: v for k, v in OmegaConf.to_container(launcher, resolve=False).items() if k != "_target_"}
    errors = [e if e.startswith("hydra.launcher.") else f"hydra.launcher.{e}" for e in launcher_option_errors(options)]
    return errors or device_errors(options)


def device_errors(options: dict, env: dict | None = None) -> list[str]:
    """A platform with no device to run on (`platform=cuda` on a machine without CUDA, or every device hidden by
    the parent's mask), masks that contradict each other, or GPU jobs that could not start their GPU (both
    memory-fraction variables set, which current jaxlib refuses), refused before anything is written."""
    from sympscale.launcher.devices import MEM_FRACTION_VARS, MaskError, plan_devices

    env = dict(os.environ if env is None else env)
    try:
        plan = plan_devices(options.get("platform", "auto"), options.get("devices"), options.get("cpu_workers"), env)
    except MaskError as e:  # the environment's, not a launcher setting
        return [str(e)]
    except (RuntimeError, ValueError) as e:
        return [f"hydra.launcher.{e}"]
    shared = options.get("jobs_per_device", 1) > 1  # then each job gets one variable, the launcher's
    if plan.platform != "cpu" and not shared and all(env.get(v) for v in MEM_FRACTION_VARS):
        both = " and ".join(f"{v}={env[v]!r}" for v in MEM_FRACTION_VARS)
        return [f"{both} are both set: jaxlib refuses to start a GPU with both; unset one (they mean the same)"]
    return []


def job_errors(cfg: DictConfig, dir_key: str, subdir_key: str | None) -> list[str]:
    """Every problem with one composed job: its values, its size on this machine, and its folder."""
    errors = config_errors(cfg)
    errors += [e for e in (name_error(cfg.name), if_changed_error(cfg)) if e]
    errors += size_errors(cfg) + cache_dir_errors(str(cfg.data.cache_dir))
    if errors:
        return errors
    folder = job_folder(cfg, dir_key, subdir_key)
    return folder_errors(folder, cfg) if isinstance(folder, Path) else [folder]


def name_error(name: Any) -> str | None:
    """`name` is a folder under outputs/: relative, no `..`, plain characters."""
    text = str(name)
    parts = text.split("/")
    if text.startswith("/") or not all(NAME_PART.match(p) and p not in (".", "..") for p in parts):
        return (
            f"name={text!r} must be a folder name under outputs/: letters, digits and ._+=,- , optionally nested "
            f"with '/', not absolute and without '..' (for another place use hydra.sweep.dir=...)"
        )
    root = os.path.realpath("outputs")
    if not os.path.realpath(os.path.join("outputs", text)).startswith(root + os.sep):
        return (
            f"name={text!r} leads out of outputs/ through a symbolic link (for another place use hydra.sweep.dir=...)"
        )
    return None


def if_changed_error(cfg: DictConfig) -> str | None:
    value = cfg.get("if_changed", "stop")
    if value not in IF_CHANGED:
        return f"if_changed={value!r} is unknown; valid: {', '.join(IF_CHANGED)}"
    return None


def size_errors(cfg: DictConfig) -> list[str]:
    """The dataset of one job must fit in this machine's memory (generation holds it twice)."""
    n_obs, D = int(cfg.data.n_obs), int(cfg.D)
    n_traj = int(cfg.data.n_trajectories) + int(cfg.data.get("extra_test", 0))
    need = 2 * n_traj * n_obs * D * 8
    have = physical_memory()
    if have and need > have:
        largest = max(1, have // (2 * n_traj * n_obs * 8))
        return [
            f"D={D}: the dataset ({n_traj} x {n_obs} x {D} float64, held twice while it is generated: "
            f"{need / 2**30:.1f} GiB) does not fit this machine's memory ({have / 2**30:.1f} GiB); "
            f"valid here: D <= {largest}, or fewer data.n_trajectories / data.extra_test / data.n_obs"
        ]
    return []


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def cache_dir_errors(path: str) -> list[str]:
    """The dataset cache must be a folder this user can create or write (checked without creating it)."""
    p = Path(path).expanduser().absolute()
    probe = p
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return [f"data.cache_dir={path!r}: {probe} is not a folder; give a folder the dataset cache can live in"]
    if not os.access(probe, os.W_OK | os.X_OK):
        return [f"data.cache_dir={path!r}: {probe} is not writable by this user; give a writable folder"]
    return []


def job_folder(cfg: DictConfig, dir_key: str, subdir_key: str | None) -> Path | str:
    """The folder a job will write, resolved as Hydra will; or the line saying why it cannot exist."""
    HydraConfig.instance().set_config(cfg)
    try:
        root = Path(str(OmegaConf.select(cfg, dir_key)))
        folder = root / str(OmegaConf.select(cfg, subdir_key)) if subdir_key else root
    except Exception as e:
        return f"{dir_key}: cannot be resolved ({str(e).strip().splitlines()[0]})"
    for part in folder.parts:
        if len(part.encode()) > FOLDER_NAME_MAX:
            return (
                f"the job folder name {part[:60]!r}... is {len(part.encode())} bytes (limit {FOLDER_NAME_MAX}): "
                f"shorten the overriding values ({' '.join(o[:40] for o in cfg.hydra.overrides.task)})"
            )
    return folder


def folder_errors(folder: Path, cfg: DictConfig) -> list[str]:
    """A folder holding a finished run of a different computation is never silently overwritten (one whose
    config.json is damaged moves aside by itself: `identity.claim`)."""
    for parent in (folder, *folder.parents):
        if parent.exists() and not parent.is_dir():
            return [f"the job folder {folder} cannot be made: {parent} is a file (check name= and hydra.*.dir=)"]
    if cfg.get("if_changed", "stop") == "move_aside" or not identity.finished_config(folder):
        return []
    task = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    try:
        new = OmegaConf.to_container(task, resolve=True)
    except Exception as e:
        return [f"the job config cannot be resolved: {_first_line(e)}"]
    why = identity.conflict(folder, new)
    if why is None:
        return []
    return [
        f"{why}: choose another name=... or hydra.sweep.dir=..., or pass if_changed=move_aside to move the old result into a subfolder"
    ]
