"""λ₁ by renormalised tangent maps and the ground-truth horizon: exact on a linear map, physical on the systems."""

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sympscale.data import DataSpec, load_or_generate
from sympscale.diagnostics import ground_truth_horizon, lyapunov_exponent
from sympscale.systems import make_system
from sympscale.systems.base import System


@dataclasses.dataclass(frozen=True)
class Saddle(System):
    """x' = A x with eigenvalues (0.3, −0.5, 0, 0): λ₁ = 0.3 exactly; the 'fine' reference adds 1e-9 per interval."""

    dt_obs: float = 0.5
    name: ClassVar[str] = "saddle"

    @classmethod
    def check_D(cls, D):
        return None if D == 4 else "D=4 only"

    def _matrix(self):
        R = jnp.array([[1.0, 0.3, 0.0, 0.2], [0.0, 1.0, 0.1, 0.0], [0.0, 0.0, 1.0, 0.4], [0.0, 0.0, 0.0, 1.0]])
        return R @ jnp.diag(jnp.array([0.3, -0.5, 0.0, 0.0])) @ jnp.linalg.inv(R)

    def interval(self, x, fine=False):
        y = self.step_with(x, self.dt_obs)
        return y + 1e-9 if fine else y

    def step_with(self, x, h, *, method="yoshida4"):  # a linear flow: exact at any step
        return x @ jax.scipy.linalg.expm(self._matrix() * h).T

    def invariants(self, x):
        return {"zero": 0.0 * x[..., 0]}

    def invariant_scales(self, x):
        return {"zero": 1.0 + 0.0 * x[..., 0]}

    def sample_initial(self, key, n):
        return jax.random.normal(key, (n, 4), dtype=jnp.float64)


def test_lyapunov_exact_on_a_linear_map():
    s = Saddle(D=4)
    out = lyapunov_exponent(s, s.sample_initial(jax.random.key(0), 3), 300, transient=100)
    assert out["lambda1"] == pytest.approx(0.3, abs=1e-6) and out["lambda1_std"] < 1e-6
    assert out["time"] == pytest.approx(200 * 0.5)


def test_ground_truth_horizon_where_references_part():
    s = Saddle(D=4)
    x0 = s.sample_initial(jax.random.key(1), 2)
    traj = np.asarray(s.trajectories(x0, 400))
    gt = ground_truth_horizon(s, traj, np.ones(4))
    # a discrepancy of 1e-9 per interval, amplified by e^{0.3 t}, passes 0.05 near t = ln(0.05 · 0.3 / 1e-9) / 0.3
    assert 0 < gt["horizon_obs"] < 399 and not gt["whole_dataset_valid"]
    assert 40 < gt["horizon_time"] < 70
    assert gt["horizon_time"] == pytest.approx(gt["horizon_obs"] * 0.5)


def test_chaotic_lattice_parts_integrable_one_does_not(tmp_path):
    spec = DataSpec(n_trajectories=6, n_obs=600, lyapunov_trajectories=2, ground_truth_trajectories=2)
    fput = load_or_generate(make_system("fput", 16), spec, data_seed=0, cache_dir=tmp_path, log=lambda m: None)
    toda = load_or_generate(make_system("toda", 16), spec, data_seed=0, cache_dir=tmp_path, log=lambda m: None)
    assert 0.05 < fput.meta["lyapunov"]["lambda1"] < 0.2  # β-FPUT at ε = 1: T_λ ≈ 10 (SCIENCE §12)
    assert fput.meta["ground_truth"]["horizon_obs"] < 599  # chaos: two references part inside the dataset
    assert toda.meta["lyapunov"]["lambda1"] < 0.02  # integrable: finite-time bias only
    assert toda.meta["ground_truth"]["whole_dataset_valid"]
    assert toda.meta["diagnostics"]["isospectral_drift"] <= 1e-10
