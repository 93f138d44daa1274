"""SympScale: symplectic vs free-form learned world models on high-dimensional Hamiltonian chaos.

Importing the package turns on float64 in JAX before any array exists: the conservation signal this
study measures lives near 1e-11 and float32 would erase it. It does so without importing JAX (the launcher,
its children for non-JAX tasks and the analysis never load it): JAX reads JAX_ENABLE_X64 when it is imported,
and a JAX already imported is switched directly. The variable set here is SympScale's, not the user's:
`without_own_x64` takes it out of the environments the launcher gives other programs' jobs.
"""

import os
import sys

X64_VAR = "JAX_ENABLE_X64"
_SET_HERE, _USERS = False, os.environ.get(X64_VAR)

if "jax" in sys.modules:
    sys.modules["jax"].config.update("jax_enable_x64", True)
else:  # even over a user's JAX_ENABLE_X64=0: this study is float64 or nothing
    os.environ[X64_VAR], _SET_HERE = "1", True


def without_own_x64(env: dict) -> dict:
    """`env` with JAX_ENABLE_X64 as the user had it before this import set it (absent when they had none)."""
    if not _SET_HERE or env.get(X64_VAR) != "1":
        return env
    env = {k: v for k, v in env.items() if k != X64_VAR}
    return env if _USERS is None else {**env, X64_VAR: _USERS}


__version__ = "0.1.0"
