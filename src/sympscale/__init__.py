"""SympScale: symplectic vs free-form learned world models on high-dimensional Hamiltonian chaos.

Importing the package turns on float64 in JAX before any array exists: the conservation signal this
study measures lives near 1e-11 and float32 would erase it. It does so without importing JAX (the launcher,
its children for non-JAX tasks and the analysis never load it): JAX reads JAX_ENABLE_X64 when it is imported,
and a JAX already imported is switched directly.
"""

import os
import sys

if "jax" in sys.modules:
    sys.modules["jax"].config.update("jax_enable_x64", True)
else:
    os.environ["JAX_ENABLE_X64"] = "1"

__version__ = "0.1.0"
