"""Exponential integrators with the Jacobian of the step as linear part: Lawson Euler and ETDRK4.

Linearisation. Each step writes ``y' = f(t, y)`` as ``y' = L y + N(t, y)`` with
``L = df/dy(t_n, y_n)`` fixed for the step and ``N(t, y) = f(t, y) - L y``, as exponential
Rosenbrock methods do (Hochbruck, Ostermann & Schweitzer, SIAM J. Numer. Anal. 47 (2009) 786).
For ``y' = L(p) y + N(t, y, p)`` with a small ``dN/dy`` this is that split up to a term the
method treats as part of ``N``. On a :class:`~pystiffsens.SplitRHS` the linear part is the
Jacobian of its ``stiff`` part instead, so a problem written as ``SplitRHS(lambda t, y, p: L(p) @ y,
N)`` is stepped with exactly ``L = L(p)`` and ``N`` (the integrating-factor setting of Fronk &
Petzold, arXiv:2412.01181). On a linear
homogeneous problem ``y' = M(p) y`` the remainder ``N`` vanishes, both methods give
``y1 = e^(h M) y0``, the exact flow, and differentiating the step gives the exact sensitivity:
Dahlquist's equation has ``R(z) = e^z`` (:class:`~.stability.ExponentialStability`), whose
derivative decays as the exact one does, with no ``|z|^-2`` of a rational ``R``. ETDRK4 is also
exact for a constant forcing ``y' = M y + g``; Lawson Euler is not.

Methods as data: an explicit exponential Runge–Kutta method (Hochbruck & Ostermann, Acta
Numer. 19 (2010) 209, Sect. 2.3),

    U_i = e^(c_i hL) y0 + h sum_j a_ij(hL) N_j,    y1 = e^(hL) y0 + h sum_i b_i(hL) N_i,
    N_i = N(t + c_i h, U_i),

with ``a_ij`` and ``b_i`` linear combinations of ``phi_k(c z)`` (:class:`ExponentialTableau`),
computed from one matrix exponential per step (:mod:`.phi`).

* ``LawsonEuler``: integrating-factor Euler ``y1 = e^(hL) (y0 + h N(t0, y0))``, ``b_1 = e^z``
  (Lawson, SIAM J. Numer. Anal. 4 (1967) 372), order 1.
* ``ETDRK4``: Cox & Matthews, J. Comput. Phys. 176 (2002) 430, eqs. (26)–(29), order 4 (for
  smooth, non-stiff problems; on stiff parabolic problems its order can drop, Hochbruck &
  Ostermann 2010, Sect. 2.3).

Both are fixed-step methods (no error estimate; ``dt`` needed). Cost per step: one Jacobian,
``s`` right-hand sides, one exponential of a ``(K + 1) m`` square matrix (``K`` the highest
phi-function, 0 for Lawson Euler and 3 for ETDRK4, one more with quadrature variables), counted
as one LU factorisation (the Padé denominator).

Quadrature variables (:mod:`.partitioned`). The linear part is the full Jacobian
``[[A, 0], [B, 0]]`` of ``z = (a, q)``, so the whole vector is integrated by the method and a
linear augmented system is integrated exactly. Only ``A`` is formed: the blocks of the
phi-functions are ``phi_k(hL) v = (phi_k(hA) v_a, v_q / k! + h B phi_(k+1)(hA) v_a)``, stage
values of ``q`` are never needed (nothing depends on ``q``), and the quadrature part of ``y1``
(and of each dense-output value) costs one product with ``B``.

Dense output. Lawson Euler: the line through ``y0`` and ``y1`` (order 1, its own). ETDRK4: the
cubic through ``y0``, ``y1`` and the method's continuous extension at ``theta = 1/4, 1/2``,
``y(theta h) = e^(theta hL) y0 + h sum_i b_i(theta, hL) N_i`` with ``phi_k(z)`` in ``b_i``
replaced by ``theta^k phi_k(theta z)``: ``b_i(z) = sum_k beta_ik phi_k(z)`` integrates
``e^((h - s)L)`` against a polynomial in ``s``, and ``h theta^k phi_k(theta hL)`` is the same
integral up to ``theta h``. Third order, as the classical dense output of RK4, which it reduces
to at ``L = 0``. Values, not slopes, so a
stiff component does not enter through ``h f``.

Rounding. In Lawson Euler the remainder enters with the weight ``e^(hL)``, so a stiff mode's
parameter gradient keeps its relative accuracy however small ``e^z`` is (checked to ``z = -300``).
In ETDRK4 it enters with weights ``b_i(hL) ~ 1/z``: for ``y' = lam*y`` the gradient ``h e^z`` is
a sum of terms of that size which cancel, so reverse mode is accurate only to rounding of those
terms: measured at ``h = 1``, ``y0 = 1``, relative error 4e-11 at ``z = -20``, 0.5% at ``z = -40``
(``e^z = 4e-18``), and 0 instead of ``e^-100`` at ``z = -100``. Forward mode happens to cancel
term by term on Dahlquist's equation (the tangents of ``f`` and of ``L y`` are computed alike) but
carries the same floor in general. Sweeps of the gradient decay far into the stiff range are
therefore best run with Lawson Euler, as Fronk & Petzold (arXiv:2412.01181) do.

Julia: OrdinaryDiffEq's ``LawsonEuler(krylov = true)`` and ``ETDRK4(krylov = true)`` take the
Jacobian of each step as their linear part, as these do, with Krylov phi-functions (exact up
to 30 states); ForwardSensitivity differentiates them there (``pystiffsens/julia/README.md``).
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp

from ..problem import SplitRHS
from .base import AbstractSolver, Attempt, OneStepState
from .partitioned import Jacobian, partition
from .phi import check_fraction, phi_functions
from .stability import ExponentialStability

Term = tuple[float, int, float]
"""``(coefficient, k, c)``: the term ``coefficient * phi_k(c z)`` of a weight."""

CONSISTENCY_TOL = 1e-14


@dataclasses.dataclass(frozen=True, eq=False)
class ExponentialTableau:
    """An explicit exponential Runge–Kutta method (see the module docstring for the step).

    Attributes
    ----------
    name, order, reference : the method's name, classical order and primary source.
    c : stage nodes, ``c[0] = 0``; the others ``1/2^j`` (the scalings :mod:`.phi` computes).
    a : ``a[i]`` holds the weights ``a_ij`` of stage ``i`` for ``j < i``, each a tuple of
        :data:`Term`.
    b : the weights ``b_i`` of the step, each a tuple of :data:`Term`.
    dense_nodes : interior ``theta`` at which the continuous extension is evaluated for the dense
        output (needs every term of ``b`` to be ``phi_k(z)`` with ``k >= 1``); empty: linear.
    """

    name: str
    order: int
    c: tuple[float, ...]
    a: tuple[tuple[tuple[Term, ...], ...], ...]
    b: tuple[tuple[Term, ...], ...]
    dense_nodes: tuple[float, ...]
    reference: str

    def __post_init__(self):
        s = len(self.c)
        if s == 0 or self.c[0] != 0.0:
            raise ValueError(f"{self.name}: c={self.c!r} must start with 0 (the first stage is y0).")
        if len(self.a) != s or any(len(row) != i for i, row in enumerate(self.a)) or len(self.b) != s:
            raise ValueError(f"{self.name}: a needs rows of lengths 0..{s - 1} and b {s} weights, one per node of c.")
        # Classical consistency (z = 0, where phi_k(0) = 1/k!): the method reduces to an explicit RK method.
        for i, row in enumerate(self.a):
            if abs(sum(map(_at_zero, row)) - self.c[i]) > CONSISTENCY_TOL:
                raise ValueError(f"{self.name}: the weights of stage {i} sum to {sum(map(_at_zero, row))!r} at "
                                 f"z = 0, not c[{i}] = {self.c[i]!r}.")
        if abs(sum(map(_at_zero, self.b)) - 1.0) > CONSISTENCY_TOL:
            raise ValueError(f"{self.name}: the weights b sum to {sum(map(_at_zero, self.b))!r} at z = 0, not 1.")
        if not all(lo < hi for lo, hi in zip((0.0, *self.dense_nodes), (*self.dense_nodes, 1.0))):
            raise ValueError(f"{self.name}: dense_nodes={self.dense_nodes!r} must increase strictly inside (0, 1).")
        if self.dense_nodes and any(k < 1 or c != 1.0 for weight in self.b for _, k, c in weight):
            raise ValueError(f"{self.name}: a continuous extension (dense_nodes) needs every term of b to be "
                             "phi_k(z) with k >= 1.")
        for fraction in self.fractions:
            check_fraction(fraction)

    @property
    def stages(self) -> int:
        return len(self.c)

    @property
    def max_k(self) -> int:
        """The highest phi-function the weights use."""
        return max(k for row in (*self.a, self.b) for weight in row for _, k, _ in weight)

    @property
    def points(self) -> tuple[float, ...]:
        """Where the step evaluates its continuous extension: the dense nodes, then ``theta = 1``."""
        return (*self.dense_nodes, 1.0)

    @property
    def fractions(self) -> set[float]:
        """Every scaling ``c`` of ``phi_k(c z)`` the step needs."""
        out = {c for c in self.c if c > 0.0} | set(self.points)
        out |= {c for row in self.a for weight in row for _, _, c in weight}
        return out | {theta * c for theta in self.points for weight in self.b for _, _, c in weight}


def _at_zero(weight: tuple[Term, ...]) -> float:
    """The weight at ``z = 0``: ``sum coefficient / k!``."""
    return sum(coef / math.factorial(k) for coef, k, _ in weight)


class ExponentialRK(AbstractSolver):
    """An explicit exponential Runge–Kutta method (:class:`ExponentialTableau`), fixed steps only.

    ``aliases``, ``julia`` and ``julia_gpu`` as in :class:`~.base.AbstractSolver`.
    """

    adaptive = False
    splits = True  # the stiff part of a SplitRHS gives the linear part

    def __init__(self, tableau: ExponentialTableau, *, aliases=(), julia: str | None = None,
                 julia_gpu: str | None = None):
        self.tableau = tableau
        self._names(tableau.name, aliases, julia, julia_gpu)
        self.order = tableau.order

    def stability(self) -> ExponentialStability:
        """``R(z) = e^z``: the step is exact on ``y' = lam*y``."""
        return ExponentialStability(self.name)

    def init(self, fn, t0, y0, args, h0):
        return OneStepState(y0)

    def y_of(self, state):
        return state.y

    def attempt(self, fn, t, h, state, args, tol):
        tab = self.tableau
        y = state.y
        part = partition(fn)
        # L from the stiff part of a split (L(p) itself when that part is L(p) y), else from the whole.
        jacobian = Jacobian(partition(fn.stiff) if isinstance(fn, SplitRHS) else part, t, y, args)
        A = jacobian.matrix
        phis = phi_functions(h * A, tab.max_k + int(part.has_quadrature), tab.fractions)
        y_a = part.implicit(y)
        U, N, G = [], [], []
        for i in range(tab.stages):
            u = y_a if tab.c[i] == 0.0 else phis[tab.c[i]][0] @ y_a
            for j, weight in enumerate(tab.a[i]):
                u = u + h * _apply(phis, weight, N[j])
            F_i, G_i = part.f_both(t + tab.c[i] * h, u, args)
            U.append(u)
            N.append(F_i - A @ u)
            G.append(G_i)
        values = [_extension(tab, phis, theta, h, y_a, N) for theta in tab.points]
        if part.has_quadrature:
            values = self._with_quadrature(tab, phis, jacobian, part, h, y, U, N, G, values)
        y_new = values[-1]
        return Attempt(
            state=OneStepState(y_new),
            error=jnp.zeros_like(y_new),
            dense=jnp.stack([y, *values]),
            converged=jnp.all(jnp.isfinite(y_new)),
            n_f=tab.stages,
            n_jac=1,
            n_lu=1,
        )

    @staticmethod
    def _with_quadrature(tab, phis, jacobian, part, h, y, U, N, G, values):
        """Each value of ``a`` joined with its quadrature part.

        ``q(theta) = q0 + h sum_i w_i G_i + B v`` with ``w_i = b_i(theta, 0)`` and
        ``v = theta h phi_1(theta hA) a0 - h sum_i w_i U_i + h sum_i sum coef theta^k (theta c h)
        phi_(k+1)(theta c hA) N_i``: the blocks of the module docstring with ``N_q = G - B U``.
        """
        q0 = part.quadrature(y)
        y_a = part.implicit(y)
        quadratures, to_B = [], []
        for theta in tab.points:
            weights = [sum(coef * theta**k / math.factorial(k) for coef, k, _ in weight) for weight in tab.b]
            v = theta * h * (phis[theta][1] @ y_a)
            for w, weight, u, n in zip(weights, tab.b, U, N):
                v = v - h * w * u
                for coef, k, c in weight:
                    v = v + h * coef * theta**k * (theta * c * h) * (phis[theta * c][k + 1] @ n)
            quadratures.append(q0 + h * sum(w * g for w, g in zip(weights, G)))
            to_B.append(v)
        B_v = jacobian.apply_B(jnp.stack(to_B))
        return [part.join(a, q + bv) for a, q, bv in zip(values, quadratures, B_v)]

    def interpolate(self, dense, theta):
        """The polynomial through ``y0`` (``theta = 0``), the dense nodes' values and ``y1`` (Lagrange form)."""
        nodes = (0.0, *self.tableau.points)
        basis = []
        for j, x_j in enumerate(nodes):
            term = jnp.ones_like(theta)
            for i, x_i in enumerate(nodes):
                if i != j:
                    term = term * (theta - x_i) / (x_j - x_i)
            basis.append(term)
        return jnp.stack(basis) @ dense


def _apply(phis, weight, v, theta=1.0):
    """``sum coef theta^k phi_k(theta c hA) v`` over the terms of ``weight``."""
    return sum(coef * theta**k * (phis[theta * c][k] @ v) for coef, k, c in weight)


def _extension(tab, phis, theta, h, y_a, N):
    """``e^(theta hA) a0 + h sum_i b_i(theta, hA) N_i``: the implicit part of the continuous extension at
    ``theta`` (of ``y1`` at ``theta = 1``)."""
    out = phis[theta][0] @ y_a
    for weight, n in zip(tab.b, N):
        out = out + h * _apply(phis, weight, n, theta)
    return out


LAWSON_EULER = ExponentialTableau(
    name="LawsonEuler",
    order=1,
    c=(0.0,),
    a=((),),
    b=(((1.0, 0, 1.0),),),
    dense_nodes=(),
    reference=(
        "J. D. Lawson, Generalized Runge-Kutta processes for stable systems with large Lipschitz constants, "
        "SIAM J. Numer. Anal. 4 (1967) 372-380."
    ),
)

# Cox & Matthews (2002), eqs. (26)-(29), in phi-functions (Hochbruck & Ostermann 2010, Sect. 2.3):
# a_21 = a_32 = phi_1(z/2)/2, a_41 = phi_1(z/2)(e^(z/2) - 1)/2 = phi_1(z) - phi_1(z/2), a_43 = phi_1(z/2);
# b_1 = phi_1 - 3 phi_2 + 4 phi_3, b_2 = b_3 = 2 phi_2 - 4 phi_3, b_4 = 4 phi_3 - phi_2.
ETDRK4 = ExponentialTableau(
    name="ETDRK4",
    order=4,
    c=(0.0, 0.5, 0.5, 1.0),
    a=(
        (),
        (((0.5, 1, 0.5),),),
        ((), ((0.5, 1, 0.5),)),
        (((1.0, 1, 1.0), (-1.0, 1, 0.5)), (), ((1.0, 1, 0.5),)),
    ),
    b=(
        ((1.0, 1, 1.0), (-3.0, 2, 1.0), (4.0, 3, 1.0)),
        ((2.0, 2, 1.0), (-4.0, 3, 1.0)),
        ((2.0, 2, 1.0), (-4.0, 3, 1.0)),
        ((-1.0, 2, 1.0), (4.0, 3, 1.0)),
    ),
    dense_nodes=(0.25, 0.5),
    reference=(
        "S. M. Cox, P. C. Matthews, Exponential time differencing for stiff systems, J. Comput. Phys. 176 (2002) "
        "430-455, eqs. (26)-(29)."
    ),
)
