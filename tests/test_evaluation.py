"""The evaluation metrics are registered functions of one scored rollout; the energy has one name for every system."""

import numpy as np
import pytest

from sympscale.evaluation import Rollout, conservation
from sympscale.registry import METRICS
from sympscale.systems import SYSTEMS, make_system


def rollout(residuals, energy):
    mse = np.full((2, 100), 0.01)
    test = np.random.default_rng(0).normal(size=(2, 101, 4))
    return Rollout(mse, residuals, None, test, np.zeros(4), np.ones(4), 100, 100, 2.0, 0.1, 0.5, energy)


def test_every_metric_reads_the_rollout():
    assert set(METRICS) == {"error", "boundedness", "conservation", "valid_prediction_time"}
    out = {}
    for entry in METRICS.values():
        out.update(entry.make(rollout({"E": np.zeros((2, 101)), "Lz": np.ones((2, 101))}, "E")))
    assert out["last100_mse"] == pytest.approx(0.01) and out["steps_to_mse_1"] == 100.0 and out["bounded"]
    assert out["vpt_lyapunov"]["0.3"] == pytest.approx(100 * 0.5 * 0.1)  # never crosses: the full horizon


def test_the_energy_residual_is_the_systems_energy_invariant():
    got = conservation(rollout({"C": np.full((2, 101), 3e-3), "x": np.zeros((2, 101))}, "C"))
    assert got["energy_invariant"] == "C" and got["energy_residual"] == 3e-3
    assert conservation(rollout({"mean": np.zeros((2, 101))}, None))["energy_residual"] is None


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_every_system_names_its_energy_among_its_invariants(name):
    D = {"cr3bp": 4, "ks": 16, "nbody": 8}.get(name, 8)
    system = make_system(name, D)
    names = set(system.invariants(np.ones(D)))
    if name == "ks":  # dissipative: no energy is conserved
        assert system.energy is None
    else:
        assert system.energy in names, (system.energy, names)
