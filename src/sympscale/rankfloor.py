"""The error floor of a model whose one-step change is confined to a subspace (SCIENCE §13).

A model whose change x_{t+1} - x_t lies in an r-dimensional affine subspace of the coordinates it confines
(`models.IncrementRank`) cannot beat, on the normalised one-step MSE, the variance of the true normalised
changes outside their top r principal components (Eckart–Young): the floor below. A floor above a tenth of the
VPT(0.3) threshold (MSE 0.09) decides the VPT before training starts.
"""

from __future__ import annotations

import numpy as np

FLOOR_MAX = 0.009  # a tenth of the VPT(0.3) threshold's MSE (0.3² = 0.09)


class CapacityFloor(ValueError):
    """A model whose floor on a run's data is above FLOOR_MAX, without capacity.allow_floor: stops the job."""


def normalised_increments(traj: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(n, n_obs, D) trajectories -> (n (n_obs - 1), D) one-step changes in units of the per-coordinate scale."""
    traj = np.asarray(traj, dtype=np.float64)
    return (np.diff(traj, axis=1) / np.asarray(std, dtype=np.float64)).reshape(-1, traj.shape[-1])


def rank_floor_mse(increments: np.ndarray, rank: int, block: str = "state") -> float:
    """The least normalised one-step MSE (mean over all D coordinates) of any model whose changes of the `block`
    coordinates ("state": all; "momentum": the last half) lie in an affine subspace of dimension `rank`."""
    x = np.asarray(increments, dtype=np.float64)
    D = x.shape[-1]
    if block == "momentum":
        x = x[:, D // 2 :]
    elif block != "state":
        raise ValueError(f"block={block!r} is unknown; valid: state, momentum")
    if rank >= x.shape[1]:
        return 0.0
    x = x - x.mean(axis=0)
    eig = np.sort(np.linalg.eigvalsh(x.T @ x / len(x)))[::-1]  # principal variances, largest first
    return float(np.clip(eig[rank:], 0.0, None).sum() / D)
