"""The symplectic model's options: kinetic terms, spectral normalisation, and a known exact quadratic part."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sympscale.models import Capacity, SympModel, build, param_count
from sympscale.models.nn import spectral_normalise
from sympscale.systems import make_system

CR3BP = make_system("cr3bp", 4)
CR3BP_S = CR3BP.exact_quadratic()


def stats(D, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=D) * 0.1, 0.5 + rng.random(D)


def perturbed(model, key):
    """Parameters with every leaf randomised: no structure can hide behind a zero-initialised term."""
    params = model.init(key)
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(99), len(leaves))
    leaves = [x + 0.2 * jax.random.normal(k, x.shape, dtype=jnp.float64) for x, k in zip(leaves, keys, strict=True)]
    return jax.tree_util.tree_unflatten(tree, leaves)


VARIANTS = [
    ("quadratic", None, False),
    ("mlp", None, False),
    ("quadratic", None, True),
    ("none", CR3BP_S, False),
    ("quadratic", CR3BP_S, False),
    ("mlp", CR3BP_S, True),
]


@pytest.mark.parametrize("kinetic, exact, sn", VARIANTS)
def test_every_variant_is_symplectic_with_exact_counts(kinetic, exact, sn):
    D = 4 if exact is not None else 8
    mean, std = stats(D)
    options = {"kinetic": kinetic, "spectral_norm": sn}
    model, info = build(
        "symp", D=D, dt=0.3, mean=mean, std=std, capacity=Capacity(width=12, depth=2), options=options, exact=exact
    )
    params = perturbed(model, jax.random.key(1))
    assert param_count(params) == info["params"] == SympModel.count(D, 12, 2, kinetic)
    x = jax.random.normal(jax.random.key(3), (D,), dtype=jnp.float64) * 0.5 + jnp.asarray(mean)
    M = jax.jacfwd(lambda y: model.step(params, y))(x)
    n = D // 2
    J = jnp.block([[jnp.zeros((n, n)), jnp.eye(n)], [-jnp.eye(n), jnp.zeros((n, n))]])
    np.testing.assert_allclose(np.asarray(M.T @ J @ M), np.asarray(J), atol=1e-12)
    # and the map is not trivially linear or the identity: the learned parts act
    assert float(jnp.max(jnp.abs(M - jnp.eye(D)))) > 1e-3


def test_cr3bp_defaults_to_the_exact_part_with_learned_potential_only():
    model, info = build(
        "symp", D=4, dt=0.1, mean=np.zeros(4), std=np.ones(4), capacity=Capacity(width=16, depth=2), exact=CR3BP_S
    )
    assert model.kinetic == "none" and info["capacity_ratio"] == 1.0
    assert set(model.init(jax.random.key(0))) == {"V"}


class TrueCR3BP(SympModel):
    """The model's machinery with the true potential in place of the MLP: exact split + Yoshida-4."""

    def _V(self, net, q):
        return CR3BP.potential(q)


def test_exact_rotation_split_is_fourth_order_and_keeps_jacobi():
    """With the true V, the exact-drift-and-rotation split integrates the CR3BP at order 4, no Jacobi drift."""
    s = CR3BP
    x0 = s.sample_initial(jax.random.key(3), 2)
    base = TrueCR3BP(
        D=4, width=1, depth=1, dt=s.dt_obs, kinetic="none", exact=CR3BP_S, q_mean=np.zeros(2), q_std=np.ones(2)
    )
    ref = s.interval(x0)
    errs = []
    for sub in (4, 8, 16):
        m = dataclasses.replace(base, substeps=sub)
        errs.append(float(jnp.max(jnp.abs(m.step(None, x0) - ref))))
    orders = np.log2(np.asarray(errs[:-1]) / np.asarray(errs[1:]))
    assert np.all(orders > 3.6), (errs, orders)

    def body(x, _):
        x = base.step(None, x)
        return x, s.jacobi(x)

    # orbits the dataset filter accepts (no close approach over 1,000 observations), 4,000 steps of h = 0.025
    traj = s.trajectories(s.sample_initial(jax.random.key(4), 6), 1001)
    rejected = np.any(np.stack([np.asarray(v) for v in s.accept(traj).values()]), axis=0)
    x0 = traj[~rejected, 0][:3]
    rk4 = dataclasses.replace(base, method="rk4")
    dC = {}
    for m in (base, rk4):
        _, X = jax.lax.scan(lambda x, _, m=m: (m.step(None, x),) * 2, x0, None, length=4000)
        dC[m.method] = np.abs(np.asarray(s.jacobi(X)) - np.asarray(s.jacobi(x0)))  # (T, n)
    # fixed steps err at each perigee (r ≥ 0.05, speed ~6: 2e-3 in C); the symplectic split returns afterwards,
    # RK4 keeps what it lost (measured medians 1.4e-6 vs 1.7e-3 over 10,000 intervals)
    yosh, rk = dC["yoshida4"], dC["rk4"]
    assert np.median(yosh) < 1e-5 and np.median(yosh) < 0.01 * np.median(rk), (np.median(yosh), np.median(rk))
    assert np.max(yosh[-1]) < 1e-4 < np.max(rk[-1])
    assert float(jnp.max(jnp.abs(base.hamiltonian(None, x0) + s.jacobi(x0) / 2))) < 1e-12  # H = −C/2 exactly


def test_spectral_normalisation_gives_unit_spectral_norm():
    w = jax.random.normal(jax.random.key(0), (24, 40), dtype=jnp.float64) * (3.0 / np.sqrt(24))
    layer = {"kernel": w, "bias": jnp.linspace(-1.0, 1.0, 40, dtype=jnp.float64)}
    w = spectral_normalise(layer)["kernel"]
    # 20 power iterations: σ is estimated from below, to ~1e-4 here (σ₂/σ₁ = 0.92, a hard case)
    assert 1.0 <= float(np.linalg.svd(np.asarray(w), compute_uv=False)[0]) < 1.001
    np.testing.assert_array_equal(np.asarray(spectral_normalise(layer)["bias"]), np.asarray(layer["bias"]))


def test_spectral_norm_reaches_every_layer_of_the_models_networks():
    options = {"kinetic": "mlp", "spectral_norm": True}
    kw = dict(D=8, dt=0.5, mean=np.zeros(8), std=np.ones(8), capacity=Capacity(width=16, depth=2), options=options)
    model, _ = build("symp", **kw)
    net = model._networks(perturbed(model, jax.random.key(0)))
    kernels = [layer["kernel"] for k in ("V", "T") for layer in net[k].values()]
    assert len(kernels) == 6  # 3 layers each in V and T
    for w in kernels:
        assert 0.999 < float(np.linalg.svd(np.asarray(w), compute_uv=False)[0]) < 1.02


@pytest.mark.parametrize(
    "bad, match",
    [({"kinetic": "none"}, "kinetic=none"), ({"kinetic": "cubic"}, "kinetic"), ({"method": "euler"}, "method")],
)
def test_bad_options_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        build("symp", D=8, dt=0.5, mean=np.zeros(8), std=np.ones(8), capacity=Capacity(width=8, depth=1), options=bad)


def test_exact_part_can_be_ablated_and_the_capacity_target_stays_the_systems():
    kw = dict(D=4, dt=0.1, mean=np.zeros(4), std=np.ones(4), capacity=Capacity(width=16, depth=2), exact=CR3BP_S)
    model, info = build("symp", **kw, options={"exact_part": False})
    assert model.exact is None and model.kinetic == "quadratic"
    assert info["symp_params"] == build("symp", **kw)[1]["params"] == info["params"] - 3  # + the 2x2 Cholesky
