"""Which parameters set a problem's stiffness: the spectral radius when one parameter entry is scaled.

A stiffness sweep needs a knob: the rate of the fastest mode. For a built-in problem it is
known; for a real model (an SBML/PEtab model with dozens of rate constants) it is not. This
module finds it by asking, for each scalar parameter entry ``p_i``, how much the spectral
radius ``rho(J)`` of the Jacobian ``J = d rhs / d y`` grows along the problem's solution when
``p_i`` alone is multiplied by ``factor``. The elasticity ``log(rho_i / rho) / log(factor)`` is 1
for a rate that sets the fastest mode (``rho`` grows with it), 0 for a parameter that does not
touch it, and in between for rates that share it.

The states are those of the nominal solution, not re-solved per entry: the question is which
entry sets the fast time scale where the solution actually goes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .. import _x64
from .._params import path_name
from ..api import solve
from .along_solution import rhs_jacobians
from .proxies import SPECTRAL_RADIUS_METHODS, spectral_radius

COLUMNS = ("param", "value", "spectral_radius", "scaled_spectral_radius", "ratio", "elasticity")
"""Columns of :func:`stiffness_by_parameter`, in order."""


def entry_positions(problem) -> list[tuple[str, int, tuple[int, ...]]]:
    """``(name, leaf index, index within the leaf)`` of every scalar parameter entry of ``problem``.

    Names as frames write them (``k1``, ``k[3]``, ``W1[0,1]``, ``net.layers[0].weight[2,0]``),
    leaves in the order of ``problem.parameters()``.
    """
    leaves, structure = problem.parameters()
    tree = structure.merge(leaves)
    paths = [path for (path, _), is_param in zip(jax.tree_util.tree_flatten_with_path(tree)[0], structure.is_param)
             if is_param]
    entries = []
    for leaf, (path, shape) in enumerate(zip(paths, structure.shapes)):
        name = path_name(path)
        for index in np.ndindex(*shape):
            entries.append((f"{name}[{','.join(map(str, index))}]" if shape else name, leaf, index))
    return entries


def _states_along(solution, points: int):
    """At most ``points`` (t, y) of ``solution``'s accepted steps (its saved states without step records)."""
    ts = getattr(solution, "step_ts", None)
    ys = getattr(solution, "step_ys", None)
    if ts is None or ys is None or len(ts) == 0:
        ts, ys = solution.ts, solution.ys
    ts, ys = np.asarray(ts), np.asarray(ys)
    finite = np.isfinite(ts) & np.all(np.isfinite(ys), axis=1)
    ts, ys = ts[finite], ys[finite]
    if ts.size == 0:
        raise ValueError("the solution has no finite state to take Jacobians at; solve the problem successfully first.")
    chosen = np.unique(np.round(np.linspace(0, ts.size - 1, min(points, ts.size))).astype(int))
    return ts[chosen], ys[chosen]


@_x64.float64
def stiffness_by_parameter(
    problem,
    solution=None,
    *,
    factor: float = 10.0,
    points: int = 8,
    entries=None,
    method: str = "eig",
    solver="Rodas5P",
    rtol: float = 1e-6,
    atol: float = 1e-8,
) -> pd.DataFrame:
    """How much stiffer ``problem`` gets when each parameter entry alone is multiplied by ``factor``.

    Parameters
    ----------
    problem : a :class:`~pystiffsens.Problem`.
    solution : its solution from :func:`pystiffsens.solve` (solved here with ``solver``,
        ``rtol``, ``atol`` when omitted).
    factor : the scaling of each entry (> 0, != 1).
    points : how many states of the solution (evenly spaced over its accepted steps, the
        first and the last included) the spectral radius is maximised over.
    entries : names of the entries to test (default: every scalar entry).
    method : spectral radius method, see :func:`~pystiffsens.stiffness.spectral_radius`
        (default ``"eig"``, exact).

    Returns
    -------
    One row per entry, columns :data:`COLUMNS`: its ``value``, the nominal ``spectral_radius``
    (max over the states), the ``scaled_spectral_radius`` with that entry times ``factor``,
    their ``ratio`` and the ``elasticity`` ``log(ratio) / log(factor)``; ordered by elasticity,
    largest first (ties in the problem's parameter order). The first rows are the entries
    to sweep as the stiffness knob.
    """
    factor = float(factor)
    if not (np.isfinite(factor) and factor > 0.0 and factor != 1.0):
        raise ValueError(f"factor={factor!r} must be a positive number other than 1, e.g. 10.")
    if not (isinstance(points, int) and points >= 1):
        raise ValueError(f"points={points!r} must be a positive integer.")
    if method not in SPECTRAL_RADIUS_METHODS:
        raise ValueError(f"method={method!r} is not a spectral radius method; valid: {list(SPECTRAL_RADIUS_METHODS)}.")
    every = entry_positions(problem)
    if entries is not None:
        known = {name for name, _, _ in every}
        unknown = [name for name in entries if name not in known]
        if unknown:
            raise ValueError(f"entries={unknown!r} are not parameter entries of {problem.label!r}; valid: "
                             f"{[name for name, _, _ in every]}.")
        every = [entry for entry in every if entry[0] in set(entries)]
    if solution is None:
        solution = solve(problem, solver, rtol=rtol, atol=atol)
    ts, ys = _states_along(solution, points)
    leaves, structure = problem.parameters()

    def radius(leaves):
        jacobians = rhs_jacobians(problem, ts, ys, structure.merge(leaves))
        return jnp.max(spectral_radius(jacobians, method))

    def scaled(which):
        leaf, flat = which
        return radius([x.reshape(-1).at[flat].multiply(factor).reshape(x.shape) if i == leaf else x
                       for i, x in enumerate(leaves)])

    nominal = float(radius(leaves))
    if every:
        which = (jnp.array([leaf for _, leaf, _ in every]),
                 jnp.array([int(np.ravel_multi_index(index, structure.shapes[leaf])) if index else 0
                            for _, leaf, index in every]))
        # One entry at a time inside one compiled loop: a batch of every scaled Jacobian could be large.
        radii = np.asarray(jax.jit(lambda w: jax.lax.map(lambda pair: _switch(scaled, pair, len(leaves)), w))(which))
    else:
        radii = np.zeros(0)
    values = [float(np.asarray(leaves[leaf]).reshape(-1)[int(np.ravel_multi_index(index, structure.shapes[leaf]))
                                                          if index else 0]) for _, leaf, index in every]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = radii / nominal
        elasticity = np.log(ratio) / np.log(factor)
    frame = pd.DataFrame({"param": [name for name, _, _ in every], "value": values, "spectral_radius": nominal,
                          "scaled_spectral_radius": radii, "ratio": ratio, "elasticity": elasticity},
                         columns=list(COLUMNS))
    return frame.sort_values("elasticity", ascending=False, kind="stable", na_position="last").reset_index(drop=True)


def _switch(scaled, pair, n_leaves: int):
    """``scaled((leaf, flat))`` for a traced leaf index: one branch per leaf (leaves differ in shape)."""
    leaf, flat = pair
    return jax.lax.switch(leaf, [lambda flat, i=i: scaled((i, flat)) for i in range(n_leaves)], flat)
