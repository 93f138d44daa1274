"""Learned Hamiltonian H_θ = H_A(x) + T_θ(p) + V_θ(q), integrated by a symplectic splitting (Yoshida-4).

The model acts on canonical coordinates, so each step is exactly a symplectic map of (q, p); normalisation
happens only inside the networks (fixed affine maps, which keep V a function of q and T one of p).

- V(q) = E₀ · MLP((q − μ_q) / σ_q), E₀ the mean kinetic energy ½|p|² of the training split.
- T(p) (`kinetic`): "quadratic" ½ |Lᵀ p|², L lower triangular with softplus diagonal (positive definite,
  identity at init); "mlp" ½ |p|² + E₀ · MLP((p − μ_p) / σ_p) (a learned correction to unit masses, ≈ 0 at init);
  "none" (only with a known part that carries the kinetic energy).
- H_A (`exact`): a known quadratic part ½ xᵀ S x the system declares (CR3BP: ½|p|² + y pₓ − x p_y, the kinetic
  and Coriolis terms that make the rotating-frame Hamiltonian non-separable, SCIENCE §0.1). Its flow exp(t J S)
  is exact, so the step stays explicit and symplectic: the splitting's drift becomes the exact flow of
  H_A + T (one matrix exponential when T is quadratic or absent; T(t/2) ∘ exp(t J S) ∘ T(t/2) for an MLP T).
- `spectral_norm`: every dense layer of the MLPs uses W / σ(W) (Miyato et al. 2018), σ by power iteration
  from a fixed start with the singular vectors held constant in the gradient; each layer is then 1-Lipschitz.
- `method="rk4"` integrates the same H_θ with RK4: structure in the vector field, not in the integrator.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from sympscale.integrators import METHODS, quadratic_flow, rk4_step, split_step
from sympscale.models.base import Context, IncrementRank, ModelOptions, choice_problem
from sympscale.models.nn import (
    ACTIVATIONS,
    F64,
    MLP,
    Array,
    StateCarry,
    mlp_param_count,
    mlp_params,
    spectral_normalise,
)
from sympscale.registry import MODELS

_SOFTPLUS_INV_1 = float(np.log(np.expm1(1.0)))
KINETICS = ("quadratic", "mlp", "none")


@dataclasses.dataclass(frozen=True, eq=False)
class SympModel(StateCarry):
    D: int
    width: int
    depth: int  # hidden layers of the potential MLP (and of an MLP kinetic term)
    dt: float  # observation interval the step covers
    substeps: int = 4  # integrator steps per observation interval
    method: str = "yoshida4"  # a composition method of `integrators.METHODS`, or "rk4"
    activation: str = "softplus"
    kinetic: str = "quadratic"
    spectral_norm: bool = False
    exact: np.ndarray | None = None  # (D, D) symmetric S of a known part H_A = ½ xᵀ S x, or None
    q_mean: np.ndarray | None = None  # (N,) from the training split
    q_std: np.ndarray | None = None
    p_mean: np.ndarray | None = None
    p_std: np.ndarray | None = None
    energy_scale: float = 1.0

    def __post_init__(self):
        if self.method != "rk4" and self.method not in METHODS:
            raise ValueError(f"method={self.method!r} is unknown; valid: rk4, {', '.join(METHODS)}")
        if self.kinetic not in KINETICS:
            raise ValueError(f"kinetic={self.kinetic!r} is unknown; valid: {', '.join(KINETICS)}")
        if self.kinetic == "none" and self.exact is None:
            raise ValueError("kinetic=none needs a system with a known quadratic part (it would leave q frozen)")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation={self.activation!r} is unknown; valid: {', '.join(ACTIVATIONS)}")

    @property
    def name(self) -> str:
        return "rk4" if self.method == "rk4" else "symp"

    @property
    def N(self) -> int:
        return self.D // 2

    @staticmethod
    def count(D: int, width: int, depth: int, kinetic: str = "quadratic") -> int:
        """Exact parameter count without building the model (used to match capacities)."""
        N = D // 2
        mlp_count = mlp_param_count([N] + [width] * depth + [1])
        return mlp_count + {"quadratic": N * (N + 1) // 2, "mlp": mlp_count, "none": 0}[kinetic]

    @property
    def mlp(self) -> MLP:
        """The network of V (and of an MLP kinetic term): N inputs, `depth` hidden layers of `width`, one output."""
        # a small last layer: V ≈ 0 (and T ≈ ½|p|²) at init, near-free motion
        return MLP(features=(self.width,) * self.depth + (1,), activation=self.activation, last_scale=0.01)

    def init(self, key: Array) -> dict:
        params = {"V": mlp_params(self.mlp, key, self.N)}
        if self.kinetic == "quadratic":
            params["T_diag"] = jnp.full((self.N,), _SOFTPLUS_INV_1, dtype=F64)
            params["T_off"] = jnp.zeros((self.N * (self.N - 1) // 2,), dtype=F64)
        elif self.kinetic == "mlp":
            params["T"] = mlp_params(self.mlp, jax.random.fold_in(key, 1), self.N)
        return params

    # ----- the learned Hamiltonian ------------------------------------------------------------------------

    def _networks(self, params) -> dict:
        """Parameters as the networks use them (spectrally normalised layers when asked)."""
        if not self.spectral_norm:
            return params
        return {
            k: {name: spectral_normalise(layer) for name, layer in v.items()} if k in ("V", "T") else v
            for k, v in params.items()
        }

    def _cholesky(self, params) -> Array:
        rows, cols = np.tril_indices(self.N, k=-1)
        L = jnp.zeros((self.N, self.N), dtype=F64).at[rows, cols].set(params["T_off"])
        return L + jnp.diag(jax.nn.softplus(params["T_diag"]))

    def _mass_inverse(self, net) -> Array:
        L = self._cholesky(net)
        return L @ L.T

    def _T(self, net, p: Array) -> Array:
        if self.kinetic == "quadratic":
            u = p @ self._cholesky(net)  # Lᵀ p for each row
            return 0.5 * jnp.sum(u * u, axis=-1)
        if self.kinetic == "mlp":
            z = (p - self.p_mean) / self.p_std
            return 0.5 * jnp.sum(p * p, axis=-1) + self.energy_scale * self.mlp.apply({"params": net["T"]}, z)[..., 0]
        return jnp.zeros(p.shape[:-1], dtype=p.dtype)

    def _V(self, net, q: Array) -> Array:
        z = (q - self.q_mean) / self.q_std
        return self.energy_scale * self.mlp.apply({"params": net["V"]}, z)[..., 0]

    def _H(self, net, x: Array) -> Array:
        q, p = x[..., : self.N], x[..., self.N :]
        H = self._T(net, p) + self._V(net, q)
        if self.exact is not None:
            H = H + 0.5 * jnp.sum((x @ jnp.asarray(self.exact)) * x, axis=-1)
        return H

    def potential(self, params, q: Array) -> Array:
        return self._V(self._networks(params), q)

    def hamiltonian(self, params, x: Array) -> Array:
        return self._H(self._networks(params), x)

    # ----- world-model interface: encode -> step* -> observe ---------------------------------------------

    def step(self, params, x: Array) -> Array:
        """Advance (..., D) states by one observation interval (`substeps` steps of the integrator)."""
        net = self._networks(params)  # normalised once per interval, shared by every force evaluation
        h = self.dt / self.substeps
        if self.method == "rk4":
            n = self.N

            def field(y):
                g = jax.grad(lambda y_: jnp.sum(self._H(net, y_)))(y)
                return jnp.concatenate([g[..., n:], -g[..., :n]], axis=-1)

            for _ in range(self.substeps):
                x = rk4_step(field, x, h)
            return x

        def kick(q, t):
            return -t * jax.grad(lambda q_: jnp.sum(self._V(net, q_)))(q)

        flow_A = self._flow_A(net)
        q, p = x[..., : self.N], x[..., self.N :]
        q, p = split_step(kick, flow_A, q, p, h, method=self.method, steps=self.substeps)
        return jnp.concatenate([q, p], axis=-1)

    def _flow_A(self, net):
        """Exact flow (q, p, t) -> (q, p) of everything but V: the drift of T, with H_A when declared."""

        def grad_T(p):
            return jax.grad(lambda p_: jnp.sum(self._T(net, p_)))(p)

        if self.exact is None:
            return lambda q, p, t: (q + t * grad_T(p), p)
        S = jnp.asarray(self.exact)
        if self.kinetic == "quadratic":  # H_A + T is quadratic: one exponential of the learned matrix
            S = S.at[self.N :, self.N :].add(self._mass_inverse(net))
        maps = {}  # one exponential per distinct stage length t (a Python float), per step

        def linear(x, t):
            if float(t) not in maps:
                maps[float(t)] = quadratic_flow(S, t)
            return x @ maps[float(t)].T

        def flow(q, p, t):
            if self.kinetic == "mlp":
                q = q + (t / 2) * grad_T(p)
            x = linear(jnp.concatenate([q, p], axis=-1), t)
            q, p = x[..., : self.N], x[..., self.N :]
            if self.kinetic == "mlp":
                q = q + (t / 2) * grad_T(p)
            return q, p

        return flow


# ----- options, constructor and registration -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RK4Options(ModelOptions):
    """The learned Hamiltonian of symp integrated with RK4 (ablation: structure in the field, not the integrator)."""

    substeps: int = 4  # integrator steps per observation interval (h = dt_obs / 4)
    activation: str = "softplus"  # smooth, and grows linearly: V keeps confining outside the data
    kinetic: str = (
        "auto"  # quadratic (½|Lᵀp|², learned Cholesky) | mlp (½|p|² + MLP) | none; auto: none where H_A carries ½|p|²
    )
    spectral_norm: bool = False  # W / σ(W) in every layer of the Hamiltonian's MLPs
    exact_part: bool = True  # integrate the system's known quadratic part exactly (cr3bp); false learns it (ablation)


@dataclasses.dataclass(frozen=True)
class SympOptions(RK4Options):
    """Learned Hamiltonian H_A + T(p) + V(q) integrated by a symplectic composition method."""

    method: str = "yoshida4"  # leapfrog | yoshida4 | yoshida6 | yoshida8
    leapfrog_steps: int = 0  # train with leapfrog for this many steps, then `method` (same parameters)


def default_kinetic(exact: np.ndarray | None) -> str:
    """The kinetic term where kinetic=auto: none when the known quadratic part carries ½|p|², else quadratic."""
    return "quadratic" if exact is None else "none"


def make(options: RK4Options, ctx: Context) -> tuple[SympModel, dict]:
    """symp (SympOptions) or rk4 (RK4Options): the model and its sizes."""
    known = ctx.exact if options.exact_part else None
    kinetic = default_kinetic(known) if options.kinetic == "auto" else options.kinetic
    N = ctx.D // 2
    model = SympModel(
        D=ctx.D,
        width=ctx.capacity.width,
        depth=ctx.capacity.depth,
        dt=ctx.dt,
        substeps=options.substeps,
        method=getattr(options, "method", "rk4"),
        activation=options.activation,
        kinetic=kinetic,
        spectral_norm=options.spectral_norm,
        exact=known,
        q_mean=np.asarray(ctx.mean[:N]),
        q_std=np.asarray(ctx.std[:N]),
        p_mean=np.asarray(ctx.mean[N:]),
        p_std=np.asarray(ctx.std[N:]),
        energy_scale=float(0.5 * np.sum(ctx.std[N:] ** 2 + ctx.mean[N:] ** 2)),
    )
    return model, {"width": ctx.capacity.width, "depth": ctx.capacity.depth, "kinetic": kinetic}


def check(options: RK4Options, ctx: Context) -> list[str]:
    """Choices the constructor would refuse, named by their config keys."""
    errors = choice_problem("kinetic", options.kinetic, ("auto", *KINETICS))
    errors += choice_problem("activation", options.activation, tuple(ACTIVATIONS))
    if isinstance(options, SympOptions):
        errors += choice_problem("method", options.method, tuple(METHODS))
    if options.kinetic == "none" and (ctx.exact is None or not options.exact_part):
        errors.append(
            f"model.kinetic=none needs the known quadratic part of a system that has one (cr3bp) to carry ½|p|², "
            f"and this system with exact_part={options.exact_part} has none: use auto, quadratic or mlp"
        )
    return errors


def rank(options: RK4Options, ctx: Context) -> IncrementRank:
    """Each kick -t ∇V(q) = -t W₁ᵀ(...) lies in the row space of V's first layer, so the change of p over an
    interval spans at most min(width, N) directions; q's change goes through the full-rank mass matrix. With a
    known quadratic part the exact flow moves p too, and no bound is claimed (rank N)."""
    N = ctx.D // 2
    known = ctx.exact is not None and options.exact_part
    return IncrementRank(N if known else min(ctx.capacity.width, N), N, "momentum")


MODELS.register("symp", options=SympOptions, make=make, check=check, rank=rank)
MODELS.register("rk4", options=RK4Options, make=make, check=check, rank=rank)
