#!/usr/bin/env bash
# The wheels a GPU node without internet needs beside its image's JAX stack (jax, flax, optax, numpy, scipy, pandas,
# PyYAML): hydra-core and omegaconf, and antlr4-python3-runtime built here (its registry entry is a source archive).
# All are pure Python (py3-none-any). Run where the package registry can be reached; carry DIR to the node:
#
#     bash benchmarks/gpu_wheels.sh .gpu-wheels     # then, on the node: bash benchmarks/gpu_session.sh OUT .gpu-wheels
set -euo pipefail
DIR=${1:-.gpu-wheels}
mkdir -p "$DIR"
python -m pip download -q --no-deps --only-binary=:all: -d "$DIR" hydra-core==1.3.8 omegaconf==2.3.1
python -m pip wheel -q --no-deps -w "$DIR" antlr4-python3-runtime==4.9.3
ls -l "$DIR"
