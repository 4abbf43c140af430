"""A custom problem on the Julia backend: its right-hand side (and loss) in Julia source.

The problem is a slow decay y1 fed by a fast component y2 that relaxes at rate ``lam``
towards sin(omega t):

    y1' = -k y1 + y2,    y2' = -lam (y2 - sin(omega t)),    y(0) = (1, 0),

with loss y1(T)^2 and stiffness knob ``lam``. The JAX backend runs the Python ``rhs``; the
Julia backend runs ``JULIA_SOURCE``, the problem's ``implementations["julia"]``, which
defines the same ``rhs(u, p, t)`` (out of place, ``p`` a NamedTuple of the parameters, the
result built with ``state_like`` so it also runs in GPU kernels) and ``loss(ts, ys, p)``
(``ys[i]`` the state at ``ts[i]``).

Run ``python examples/julia_backend_custom_rhs.py``. It needs Julia >= 1.10 and
``pip install 'pystiffsens[julia]'`` (README, "Julia backend"); without Julia it prints
what to install and exits with status 1.
"""

from __future__ import annotations

import sys

import jax.numpy as jnp

import pystiffsens as pss
from pystiffsens.backends.julia import JuliaNotFoundError

JULIA_SOURCE = """
rhs(u, p, t) = state_like(u, -p.k * u[1] + u[2], -p.lam * (u[2] - sin(p.omega * t)))

loss(ts, ys, p) = ys[end][1]^2
"""


def rhs(t, y, p):
    return jnp.stack([-p["k"] * y[0] + y[1], -p["lam"] * (y[1] - jnp.sin(p["omega"] * t))])


def loss(ts, ys, p):
    return ys[-1, 0] ** 2


PROBLEM = pss.Problem(
    rhs,
    y0=[1.0, 0.0],
    tspan=(0.0, 2.0),
    params={"k": 0.5, "lam": 1e3, "omega": 3.0},
    loss=loss,
    stiffness="lam",
    name="driven_decay",
    implementations={"julia": JULIA_SOURCE},
)


def main() -> int:
    settings = dict(rtol=1e-8, atol=1e-10)
    try:
        julia = pss.gradient(PROBLEM, "Rodas5P", "GaussAdjoint", backend="julia", **settings)
    except JuliaNotFoundError as error:
        print(error, file=sys.stderr)
        return 1
    native = pss.gradient(PROBLEM, "Rodas5P", "GaussAdjoint", backend="jax", **settings)
    print(f"{'parameter':>10} {'julia':>14} {'jax':>14}")
    for name, value in julia.flat_grad().items():
        print(f"{name:>10} {value:14.6e} {native.flat_grad()[name]:14.6e}")
    frame = pss.sweep(PROBLEM, [1e1, 1e3, 1e5], "Rodas5P", "GaussAdjoint", backend="julia", progress=False, **settings)
    print(frame[["stiffness", "param", "grad", "status"]].to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
