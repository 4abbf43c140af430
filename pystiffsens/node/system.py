"""The stiff system the neural ODE learns, and its training trajectories.

A linear chain ``A -> B -> C`` with a fast intermediate, the pattern of ROBER's ``y2``
(Hairer & Wanner II, Sect. IV.1), plus a slow nonlinear back-reaction ``C + C -> A`` that
the network has to learn:

    y1' = -k y1 + r y3^2
    y2' =  k y1 - lam y2
    y3' =  lam y2 - r y3^2

with the slow rate ``k = 1``, the back-reaction rate ``r = 0.5`` and the fast rate ``lam``,
the stiffness knob (the stiffness ratio of the linear part is ``lam / k``). After a
transient of length ``1/lam`` the intermediate sits at its quasi-steady value
``y2 ~ k y1 / lam``: it is small, like ROBER's ``y2``, and its sensitivity to ``lam`` is
``dy2/dlam ~ -k y1 / lam^2``, so the fast rate's gradient vanishes like ``lam^-2`` in the
ODE itself; every A-stable solver reproduces that (Fronk & Petzold, arXiv:2508.01519, 2025).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from ..api import solve
from ..problem import Problem

SLOW_RATE = 1.0
BACK_RATE = 0.5
N_STATES = 3


def true_rhs(t, y, p):
    """The data-generating right-hand side; ``p`` has ``k``, ``lam`` and ``r``."""
    slow = p["k"] * y[0]
    fast = p["lam"] * y[1]
    back = p["r"] * y[2] ** 2
    return jnp.stack([-slow + back, slow - fast, fast - back])


def initial_states(n_trajectories: int, seed: int) -> np.ndarray:
    """``n_trajectories`` initial states ``(y1, 0, y3)`` with ``y1`` in [0.5, 1.5] and ``y3`` in [0, 0.5].

    The intermediate starts at 0, so every trajectory opens with the fast transient.
    """
    rng = np.random.default_rng(seed)
    y1 = rng.uniform(0.5, 1.5, n_trajectories)
    y3 = rng.uniform(0.0, 0.5, n_trajectories)
    return np.stack([y1, np.zeros(n_trajectories), y3], axis=1)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Trajectories of :func:`true_rhs` at one stiffness ``lam``.

    ``ts``: the save times (shared); ``y0s``: initial states, shape ``(n_trajectories, 3)``;
    ``ys``: states at ``ts``, shape ``(n_trajectories, len(ts), 3)``.
    """

    stiffness: float
    ts: np.ndarray
    y0s: np.ndarray
    ys: np.ndarray

    @property
    def state_range(self) -> np.ndarray:
        """Each state's range ``max - min`` over all trajectories and times (initial states included)."""
        everything = np.concatenate([self.y0s[:, None, :], self.ys], axis=1).reshape(-1, N_STATES)
        return everything.max(axis=0) - everything.min(axis=0)


def make_dataset(stiffness: float, *, n_trajectories: int = 8, n_save: int = 10, t_end: float = 2.0, seed: int = 0) -> Dataset:
    """Solve :func:`true_rhs` with Rodas5P at ``rtol=1e-10``, ``atol=1e-12`` from :func:`initial_states`.

    The states are saved at ``n_save`` equally spaced times in ``(0, t_end]``.
    """
    if not (np.isfinite(stiffness) and stiffness > 0):
        raise ValueError(f"stiffness={stiffness!r} must be a positive finite fast rate.")
    ts = np.linspace(0.0, t_end, n_save + 1)[1:]
    y0s = initial_states(n_trajectories, seed)
    params = {"k": SLOW_RATE, "lam": float(stiffness), "r": BACK_RATE}
    ys = []
    problem = Problem(true_rhs, y0=y0s[0], tspan=(0.0, t_end), params=params, saveat=ts, name="node_chain")
    for y0 in y0s:
        sol = solve(problem, "Rodas5P", y0=y0, rtol=1e-10, atol=1e-12, save_steps=False)
        if not sol.success:
            raise RuntimeError(f"the reference solve at stiffness {stiffness:g} failed with status {sol.status.name}.")
        ys.append(sol.ys)
    return Dataset(stiffness=float(stiffness), ts=ts, y0s=y0s, ys=np.stack(ys))
