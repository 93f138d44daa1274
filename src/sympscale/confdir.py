"""Where the app's configs live: conf/ of a source checkout (editable install) or the copy inside the wheel.

Light on purpose (no JAX, no Hydra): a job's process resolves the tuned-recipe interpolation through it.
"""

from __future__ import annotations

from pathlib import Path


def config_dir() -> str:
    """conf/ of a source checkout (editable install) or the copy shipped inside the wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parents[1] / "conf", here / "conf"):
        if (candidate / "config.yaml").exists():
            return str(candidate)
    raise FileNotFoundError(f"no conf/config.yaml next to {here}")
