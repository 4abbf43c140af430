"""One stepper for every diagonally implicit Runge–Kutta method given as a :class:`ButcherTableau`.

Stages are solved one after another by the simplified Newton iteration of
:mod:`.newton` with the exact Jacobian at the start of the step (Hairer & Wanner II,
Sect. IV.8); one LU factorisation per distinct diagonal coefficient. An explicit first
stage (ESDIRK) costs one RHS evaluation. The embedded error estimate is filtered through
``(I - h gamma J)^-1`` (Hairer & Wanner II, Sect. IV.8, eq. (8.20); as OrdinaryDiffEq's
``smooth_est``) so it stays bounded on stiff components. For a right-hand side with quadrature variables
(:mod:`.partitioned`) Newton runs on the implicit block only and each stage's quadrature
part follows explicitly, ``h k_q = h G(t_i, a_i)``, from the converged implicit stage.

An ESDIRK built with an ``explicit`` tableau is an additive Runge–Kutta pair (Kennedy &
Carpenter, Appl. Numer. Math. 44 (2003) 139–181, eq. (2)): on a :class:`~pystiffsens.SplitRHS`
each stage ``Y_i = y + h sum_j (A^E_ij f_N(Y_j) + A_ij f_S(Y_j))`` takes the non-stiff part
``f_N`` explicitly and the stiff part ``f_S`` implicitly, Newton and the error filter use the
Jacobian of ``f_S`` alone, and both halves share ``b``, ``b_error`` and the dense output. On
any other right-hand side (an unsplit problem, the sensitivities' augmented systems) it runs
the implicit half alone, exactly as without ``explicit``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ..problem import SplitRHS
from .base import Attempt, OneStepState, RungeKuttaSolver, weighted_sum
from .newton import kappa_tolerance, solve_implicit
from .partitioned import Jacobian, partition
from .tableaux import ButcherTableau

NEWTON_MAXITER = 7


class ESDIRK(RungeKuttaSolver):
    """A (E)SDIRK method defined by its tableau (KenCarp4, implicit Euler, trapezoid)."""

    def __init__(self, tableau: ButcherTableau, *, explicit: ButcherTableau | None = None, **names):
        if not tableau.diagonally_implicit:
            raise ValueError(
                f"tableau {tableau.name!r} is fully implicit (A is not lower triangular), so ESDIRK cannot solve its "
                "stages one after another; use pystiffsens.solvers.FIRK (or pass the tableau itself as the solver)."
            )
        if tableau.b_error_explicit != 0.0:
            raise ValueError(
                f"tableau {tableau.name!r} has b_error_explicit={tableau.b_error_explicit!r}, which ESDIRK does not use; "
                "with an explicit first stage add it to b_error[0], else use pystiffsens.solvers.FIRK."
            )
        super().__init__(tableau, **names)
        self.adaptive = tableau.adaptive
        if explicit is not None:
            _check_pair(tableau, explicit)
        #: The explicit half of an additive (IMEX) pair, used on a SplitRHS; None for a plain ESDIRK.
        self.explicit = explicit
        self.splits = explicit is not None

    def attempt(self, fn, t, h, state, args, tol):
        tab = self.tableau
        # An additive pair on a SplitRHS: Newton on the stiff part, the non-stiff part explicit.
        explicit = self.explicit if self.splits and isinstance(fn, SplitRHS) else None
        implicit_fn = fn.stiff if explicit is not None else fn
        y = state.y
        part = partition(implicit_fn)
        scale = part.implicit(tol.atol + tol.rtol * jnp.abs(y))
        newton_tol = kappa_tolerance(tol.rtol)
        systems = _shifted_systems(tab, Jacobian(part, t, y, args), h)
        hk = []  # h * k_i of the implicit half (the whole right-hand side unless split)
        hk_explicit = []  # h * f_nonstiff(Y_i), for a split only
        converged = jnp.array(True)
        n_f, n_extra_jac = 0, 0
        for i in range(tab.stages):
            base = y
            for j in range(i):
                if tab.A[i, j] != 0.0:
                    base = base + tab.A[i, j] * hk[j]
                if explicit is not None and explicit.A[i, j] != 0.0:
                    base = base + explicit.A[i, j] * hk_explicit[j]
            d = float(tab.A[i, i])
            t_i = t + tab.c[i] * h
            z = base
            if d == 0.0:
                hk.append(h * implicit_fn(t_i, base, args))
                n_f += 1
            else:
                previous = hk[-1] + hk_explicit[-1] if hk_explicit else hk[-1] if hk else None
                guess = part.implicit(base if previous is None else base + d * previous)
                base_a = part.implicit(base)

                def G(z, base=base_a, d=d, t_i=t_i):
                    return z - base - h * d * part.f_implicit(t_i, z, args)

                z, newton = solve_implicit(G, guess, systems[d].lu, scale, newton_tol, NEWTON_MAXITER,
                                           part.residual_sparsity())
                converged = converged & newton.converged
                n_f += newton.n_iter + part.quadrature_evals
                n_extra_jac += newton.n_jac
                hk.append(part.join((z - base_a) / d, h * part.f_quadrature(t_i, z, args)))
            if explicit is not None:
                hk_explicit.append(h * fn.nonstiff(t_i, z, args))
                n_f += 1
        if explicit is not None:
            hk = [k + k_explicit for k, k_explicit in zip(hk, hk_explicit)]
        y_new = y + weighted_sum(tab.b.tolist(), hk)
        error = weighted_sum(tab.b_error.tolist(), hk)
        if self.adaptive:
            error = systems[max(systems)].solve(error)
        return Attempt(
            state=OneStepState(y_new),
            error=error,
            dense=(y, *hk),
            converged=converged & jnp.all(jnp.isfinite(y_new)),
            n_f=n_f,
            n_jac=1 + n_extra_jac,
            n_lu=len(systems) + n_extra_jac,
        )


def _shifted_systems(tableau: ButcherTableau, jacobian: Jacobian, h) -> dict:
    """The factorised ``I - h d J`` for each distinct nonzero diagonal coefficient ``d``, by ``d``."""
    return {d: jacobian.shifted(h * d) for d in sorted({float(d) for d in np.diag(tableau.A) if d != 0.0})}


def _check_pair(implicit: ButcherTableau, explicit: ButcherTableau) -> None:
    """An additive pair: a strictly lower-triangular explicit half sharing the nodes, weights and dense output."""
    problems = []
    if explicit.A.shape != implicit.A.shape:
        problems.append(f"{explicit.A.shape[0]} stages instead of {implicit.stages}")
    elif not np.allclose(np.triu(explicit.A), 0.0):
        problems.append("its A is not strictly lower triangular")
    else:
        for field in ("c", "b", "b_error", "dense"):
            if np.shape(getattr(explicit, field)) != np.shape(getattr(implicit, field)) or not np.allclose(
                getattr(explicit, field), getattr(implicit, field), atol=1e-14
            ):
                problems.append(f"its {field} differs")
    if problems:
        raise ValueError(
            f"explicit={explicit.name!r} cannot pair with {implicit.name!r}: {'; '.join(problems)}. The explicit half "
            "of an additive pair is strictly lower triangular and shares c, b, b_error and dense with the implicit half."
        )
