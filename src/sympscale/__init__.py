"""SympScale: symplectic vs free-form learned world models on high-dimensional Hamiltonian chaos.

Importing the package turns on float64 in JAX before any array exists: the conservation signal this
study measures lives near 1e-11 and float32 would erase it.
"""

import jax

jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"
