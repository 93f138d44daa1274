"""SympScale: symplectic vs free-form learned world models on high-dimensional Hamiltonian chaos.

Importing the package turns on float64 in JAX before any array exists: the conservation signal this
study measures lives near 1e-11 and float32 would erase it.

It also turns off XLA's CPU fusion emitters (unless XLA_FLAGS already says otherwise): with them, small
loop bodies such as the tangent map of a D = 16 lattice compiled for 15 s and ran ~10x slower
(measured with JAX 0.10.2; see BENCHMARKS.md). The flag only affects the CPU backend.
"""

import os

_FLAG = "--xla_cpu_use_fusion_emitters"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}=false".strip()

import jax  # noqa: E402  (XLA_FLAGS must be set before the backend starts)

jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"
