"""Right-hand sides with quadrature variables, and the block linear algebra every stepper shares.

A :class:`QuadratureRHS` describes ``z = (a, q)`` with ``a' = F(t, a)`` and ``q' = G(t, a)``:
the quadrature ``q`` drives nothing, as CVODES's quadrature variables (Hindmarsh et al.,
"SUNDIALS", ACM TOMS 31 (2005); Serban & Hindmarsh, "CVODES", IDETC 2005). The continuous
adjoints use it for the parameter integral ``mu`` (``a = lambda``, ``G = -f_p^T lambda``).

Its Jacobian is block lower-triangular, ``[[A, 0], [B, 0]]`` with ``A = dF/da`` (m x m) and
``B = dG/da``, so every iteration matrix ``I/delta - coef J`` of an implicit method is
``[[I/delta - coef A, 0], [-coef B, I/delta]]`` and

    x_a = (I/delta - coef A)^{-1} r_a,    x_q = delta (r_q + coef B x_a).

Only ``A`` is formed and factorised; ``B x_a`` is one Jacobian-vector product of ``G``
(for the adjoint, of one vector-Jacobian product of ``f`` in ``p``), never a matrix. Newton
iterations run on the implicit block alone and the quadrature stage follows explicitly
from the converged implicit stage. An ordinary right-hand side is the case with no
quadrature (:func:`partition` wraps it), so Rosenbrock, ESDIRK and BDF steppers run one
code path for both.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp

from ..problem import sparsity_of
from ..sparsity import Sparsity, jacobian
from .linear import lu_factor, matrix_product

TANGENT_RULES = ("products", "formed")
"""How an iteration-matrix solve is differentiated (:meth:`Jacobian.shifted`): through products of the
right-hand side, or through the tangent of the formed Jacobian."""

_TANGENT_RULE: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "pystiffsens_iteration_matrix_tangents", default=None
)

REVERSE_PRODUCTS_MAX_SIZE = 8
"""Largest implicit system whose iteration-matrix solves are differentiated through products where no
rule is set (:func:`iteration_matrix_tangents`): in reverse mode and in solves nobody differentiates.

The discrete adjoint (Rodas5P, rtol 1e-8, cold caches; benchmarks/README.md, section 6), products
against the formed Jacobian: on systems of 3 to 8 states (ROBER, HIRES, Boehm) 1.1-1.7x faster warm
and within 11 % on the first call; on 15 to 36 states (POLLU, Zheng, Bachmann, Alkan) 1.2-2.2x slower
on the first call (XLA compiles one reverse pass of the model per stage solve) and within 11 % warm.
On 9 states (Fujita, Brannmark) 1.2-1.4x faster warm and 1.2-1.3x slower on the first call: the
threshold is not sharp.
"""


@contextlib.contextmanager
def iteration_matrix_tangents(rule: str) -> Iterator[None]:
    """Iteration matrices built while tracing this block are differentiated by ``rule``, one of :data:`TANGENT_RULES`.

    Which rule is cheaper depends on the mode of differentiation (:meth:`Jacobian.shifted`), and a
    ``jax.custom_jvp`` cannot tell the modes apart, so the caller says which it traces:
    :class:`~pystiffsens.sensitivity.ForwardDiffSensitivity` (forward mode through the solver)
    traces its solve inside ``iteration_matrix_tangents("products")``. Where no rule is set
    (reverse mode: :class:`~pystiffsens.sensitivity.ReverseDiffAdjoint`; solves nobody
    differentiates) systems of more than :data:`REVERSE_PRODUCTS_MAX_SIZE` unknowns take the formed
    Jacobian's tangent and smaller ones the products. Both rules give the same derivatives (to
    rounding); only their cost differs. Read at trace time: programs traced before (``jax.jit``'s,
    pystiffsens's program caches, whose keys do not see the rule) keep the rule they were traced with,
    so set it before anything is traced and with the caches off (``benchmarks/_common.tangent_rule``).
    """
    if rule not in TANGENT_RULES:
        raise ValueError(f"rule={rule!r} is not an iteration-matrix tangent rule; valid choices: {TANGENT_RULES}.")
    token = _TANGENT_RULE.set(rule)
    try:
        yield
    finally:
        _TANGENT_RULE.reset(token)


class QuadratureRHS:
    """``z' = (F(t, a), G(t, a))`` for ``z = (a, q)``, ``a`` the first ``size`` components.

    Parameters
    ----------
    fn : ``(t, a, args) -> (F, G)``, evaluated together (for the adjoint: one reverse pass).
    size : ``m``, the length of the implicit part ``a``.
    error_control : include ``q`` in the local error test (CVODES's ``errconQ``, off by
        default there and here): the step size then also resolves the integrand of ``q``.
    implicit : optional ``(t, a, args) -> F`` alone, for Newton iterations and the Jacobian
        (default: ``fn(...)[0]``); cheaper to trace when ``G`` costs as much as ``F``.
    sparsity : optional :class:`~pystiffsens.sparsity.Sparsity` of ``dF/da``.
    """

    def __init__(self, fn: Callable, size: int, error_control: bool = False, implicit: Callable | None = None,
                 sparsity: Sparsity | None = None):
        if not (isinstance(size, int) and size >= 1):
            raise ValueError(f"size={size!r} must be a positive integer (the length of the implicit part).")
        self.fn = fn
        self.size = size
        self.error_control = bool(error_control)
        self.implicit = implicit if implicit is not None else (lambda t, a, args: fn(t, a, args)[0])
        self.sparsity = sparsity

    def __call__(self, t, z, args):
        F, G = self.fn(t, z[: self.size], args)
        return jnp.concatenate([F, G])

    def time_reversed(self) -> QuadratureRHS:
        """``z'(s) = -rhs(t_ref - s, z, args)``, still partitioned, taking ``(args, t_ref)`` as its args: ``s``
        runs backward in time from ``t_ref``
        (:func:`pystiffsens.sensitivity.continuous_adjoint.reversed_rhs`)."""
        fn, implicit = self.fn, self.implicit
        return QuadratureRHS(
            lambda s, a, args: jax.tree_util.tree_map(jnp.negative, fn(args[1] - s, a, args[0])),
            self.size,
            self.error_control,
            implicit=lambda s, a, args: -implicit(args[1] - s, a, args[0]),
            sparsity=self.sparsity,
        )

    def error_mask(self, total: int):
        """0/1 weights of the error norm (None: every component), for ``integrate(error_mask=...)``."""
        if self.error_control:
            return None
        return jnp.concatenate([jnp.ones(self.size), jnp.zeros(total - self.size)])


class Partition:
    """A right-hand side viewed as implicit part plus (possibly empty) quadrature.

    Built by :func:`partition`; a plain ``fn`` has an implicit part equal to the whole state
    and evaluates exactly as before.
    """

    def __init__(self, fn):
        self.rhs = fn
        self.quadrature_rhs = fn if isinstance(fn, QuadratureRHS) else None

    @property
    def has_quadrature(self) -> bool:
        return self.quadrature_rhs is not None

    @property
    def sparsity(self) -> Sparsity | None:
        """The sparsity pattern of ``dF/da``, where the right-hand side carries one."""
        return self.quadrature_rhs.sparsity if self.has_quadrature else sparsity_of(self.rhs)

    def residual_sparsity(self, stages: int = 1) -> Sparsity | None:
        """The pattern of the stage equations' Jacobian, ``I - c dF/da`` for each of ``stages`` coupled stages."""
        if self.sparsity is None:
            return None
        return self.sparsity.with_identity if stages == 1 else self.sparsity.with_identity.tiled(stages)

    def implicit(self, z):
        """The implicit part of a full-length vector."""
        return z[: self.quadrature_rhs.size] if self.has_quadrature else z

    def quadrature(self, z):
        """The quadrature part of a full-length vector (empty without quadrature)."""
        return z[self.quadrature_rhs.size :] if self.has_quadrature else z[:0]

    def join(self, a, q):
        """The full vector (or stack of vectors, along the last axis) from its two parts."""
        return jnp.concatenate([a, q], axis=-1) if self.has_quadrature else a

    def f_implicit(self, t, a, args):
        """``F(t, a)``: the right-hand side of the implicit part."""
        return self.quadrature_rhs.implicit(t, a, args) if self.has_quadrature else self.rhs(t, a, args)

    def f_quadrature(self, t, a, args):
        """``G(t, a)``: the right-hand side of the quadrature (empty without quadrature)."""
        return self.quadrature_rhs.fn(t, a, args)[1] if self.has_quadrature else a[:0]

    def f_both(self, t, a, args):
        """``(F(t, a), G(t, a))`` from one evaluation."""
        return self.quadrature_rhs.fn(t, a, args) if self.has_quadrature else (self.rhs(t, a, args), a[:0])

    def error_mask(self, z):
        """0/1 weights of the error norm over ``z`` (None: every component)."""
        return self.quadrature_rhs.error_mask(z.shape[0]) if self.has_quadrature else None

    @property
    def quadrature_evals(self) -> int:
        """Extra RHS evaluations per implicit stage: the explicit quadrature stage."""
        return 1 if self.has_quadrature else 0


def partition(fn) -> Partition:
    """The partition of ``fn``: a :class:`QuadratureRHS` keeps its split, anything else has no quadrature."""
    return fn if isinstance(fn, Partition) else Partition(fn)


class Jacobian:
    """``dF/da`` at ``(t, z)`` (formed, m x m) and ``dG/da`` (as a linear map, built on first use)."""

    def __init__(self, part: Partition, t, z, args):
        self.part = part
        a = part.implicit(z)
        self.matrix = jacobian(lambda aa: part.f_implicit(t, aa, args), a, part.sparsity)
        self._point = (t, a, args)  # where the Jacobian was formed: for dG/da and for the products of shifted()
        self._B = None

    @property
    def size(self) -> int:
        """Columns of the formed Jacobian (the implicit part's length)."""
        return self.matrix.shape[0]

    def apply_B(self, v):
        """``dG/da v`` for a vector ``v``, or row by row for a stack of them (empty without quadrature)."""
        if not self.part.has_quadrature:
            return v[..., :0]
        if self._B is None:
            t, a, args = self._point
            _, self._B = jax.linearize(lambda aa: self.part.f_quadrature(t, aa, args), a)
        return self._B(v) if v.ndim == 1 else jax.vmap(self._B)(v)

    def shifted(self, coef, delta=1.0) -> ShiftedSystem:
        """The factorised iteration matrix ``I/delta - coef J`` (Rosenbrock: ``delta = h gamma``, ``coef = 1``).

        Its solves are differentiated as solves, ``d(A^-1 b) = A^-1 (db - dA x)``, in one of two ways:

        * through the tangent of the formed ``J``: one product of the right-hand side per column
          colour of ``J``, once per step. In reverse mode the transpose of that tangent is one
          batched reverse pass over the colours per Jacobian, shared by every solve with it;
        * through ``x -> x/delta - coef J x``, with ``J x`` a forward-mode product of the right-hand
          side (:func:`~pystiffsens.solvers.linear.matrix_product`): one second-order product per
          solve and tangent, where the formed ``J``'s tangent costs one per colour. In reverse mode
          each solve's product is transposed into a reverse pass of its own (one copy of the model
          per stage solve in the program).

        Forward mode (:func:`iteration_matrix_tangents`) takes the products, and so does reverse
        mode on systems of at most :data:`REVERSE_PRODUCTS_MAX_SIZE` unknowns; larger systems take
        the formed ``J`` (benchmarks/README.md, section 6).
        """
        matrix = jnp.eye(self.size) / delta - coef * self.matrix
        rule = _TANGENT_RULE.get() or ("products" if self.size <= REVERSE_PRODUCTS_MAX_SIZE else "formed")
        if rule == "formed":
            return ShiftedSystem(self, lu_factor(matrix, sparsity=self.part.sparsity), coef, delta)
        t, a, args = self._point
        f_implicit = self.part.f_implicit

        def apply(ops, x):
            t, a, args, coef, delta = ops
            along = lambda v: jax.jvp(lambda aa: f_implicit(t, aa, args), (a,), (v,))[1]  # noqa: E731
            jx = along(x.real) + 1j * along(x.imag) if jnp.iscomplexobj(x) else along(x)
            return x / delta - coef * jx

        operands = (t, a, args, jnp.asarray(coef), jnp.asarray(delta))
        product = matrix_product(apply, operands, jnp.zeros(self.size, matrix.dtype))
        return ShiftedSystem(self, lu_factor(matrix, product, self.part.sparsity), coef, delta)


class ShiftedSystem:
    """``(I/delta - coef J) x = r`` for the full state, by block forward substitution.

    ``lu`` is the LU factorisation of the implicit block ``I/delta - coef A``; it is what
    Newton iterations on the implicit part use.
    """

    def __init__(self, jacobian: Jacobian, lu, coef, delta):
        self.jacobian = jacobian
        self.lu = lu
        self.coef = coef
        self.delta = delta

    def solve_implicit(self, r_a):
        """``x_a = (I/delta - coef A)^{-1} r_a``."""
        return self.lu.solve(r_a)

    def solve_quadrature(self, r_q, B_x_a):
        """``x_q = delta (r_q + coef B x_a)`` given ``B x_a`` (see :meth:`Jacobian.apply_B`)."""
        return self.delta * (r_q + self.coef * B_x_a)

    def solve(self, r):
        """``x`` for a full right-hand side ``r``."""
        part = self.jacobian.part
        x_a = self.solve_implicit(part.implicit(r))
        if not part.has_quadrature:
            return x_a
        return part.join(x_a, self.solve_quadrature(part.quadrature(r), self.jacobian.apply_B(x_a)))
