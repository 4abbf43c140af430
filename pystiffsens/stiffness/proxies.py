"""Stiffness proxies of a Jacobian ``J`` (shape ``(n, n)``) or of a batch (``(..., n, n)``).

Every proxy is a pure ``jax.numpy`` function: it runs under ``jit`` and ``vmap`` and takes
leading batch axes directly. Which ones ``jax.grad`` can go through:

================================  ===========================================================
proxy                             derivative
================================  ===========================================================
``spectral_radius(J, "gelfand")`` yes (smooth wherever ``J^(2^m)`` is not zero), but see below
``spectral_radius(J, "power")``   yes, through the fixed number of iterations
``frobenius(J)``                  yes (except at ``J = 0``)
``singular_ratio(J)``             where the extreme singular values are simple and non-zero
``singular_max(J)``               where the largest singular value is simple
``spectral_radius(J, "eig")``     see below
``stiffness_ratio(J)``            see below
================================  ===========================================================

The eigenvalue-based proxies call ``jnp.linalg.eigvals`` (LAPACK ``geev``; JAX runs it on
the host CPU even on a GPU). JAX differentiates the eigenvalues only through a rule that
assumes they are distinct: where two coincide (a Jordan block, or any defective matrix) the
derivative does not exist, and JAX returns a finite but meaningless number instead of an
error (for ``[[2, 1], [0, 2]]`` it reports 0 for the entry below the diagonal, whose true
derivative is infinite). The maximum and minimum over moduli are also non-smooth where the
ordering switches. Treat them as reporting quantities, not as training penalties; the
Hudson et al. deck makes the same point ("general eigenvalue solvers not easily
differentiable") and penalises the Gelfand spectral radius instead.

The derivative of the Gelfand value is that of ``||J^k||^(1/k)`` for the finite ``k``, which
equals the derivative of the spectral radius in the limit when the dominant eigenvalue is
real and simple, or ``J`` is normal. When a complex-conjugate pair dominates a non-normal
real ``J``, ``||J^k||`` oscillates with the phase ``k * arg(lambda_1)`` and the gradient keeps
an ``O(1)`` error that does not shrink with ``k``: for ``[[1, -8], [0.5, 1]]`` (eigenvalues
``1 +- 2i``) the largest entry of the error is 1.10 at ``k = 2**10`` against gradient entries
up to 1.79. It remains a smooth penalty that tracks the spectral radius, which is how the
deck uses it.

References
----------
J. Hudson, K. Sargsyan, M. D'Elia, H. Najm, *Examining stiffness in ResNets through
interpretation as discretized Neural ODEs*, Sandia LDRD 21-0528 slides, 2022.
I. Gelfand, *Normierte Ringe*, Mat. Sbornik 9 (1941) 3-24 (``rho(J) = lim ||J^k||^(1/k)``).
J. D. Lambert, *Numerical Methods for Ordinary Differential Systems*, Wiley 1991, sec. 6.2
(stiffness ratio from the real parts).
G. H. Golub, C. F. Van Loan, *Matrix Computations*, 4th ed., sec. 7.3 (power method).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from .._validation import choose

SPECTRAL_RADIUS_METHODS = ("gelfand", "power", "eig")
STIFFNESS_RATIO_PARTS = ("modulus", "real")

GELFAND_SQUARINGS = 10
"""Squarings in Gelfand's formula: ``k = 2**10`` as in the Hudson et al. deck."""

POWER_ITERATIONS = 200
"""Default number of power-method iterations."""

_POWER_START_SEED = 0


def _check_square(J) -> jnp.ndarray:
    J = jnp.asarray(J)
    if J.ndim < 2 or J.shape[-1] != J.shape[-2] or J.shape[-1] == 0:
        raise ValueError(f"J has shape {J.shape}; expected square matrices of shape (..., n, n) with n >= 1.")
    if not jnp.issubdtype(J.dtype, jnp.inexact):
        J = J.astype(jnp.float64)
    return J


def _safe_norm(A) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Frobenius norm of ``A``, and the same norm with 0 replaced by 1 (so that dividing by it
    and taking its log stay finite and differentiable). Scaled by ``max |A_ij|`` first, so
    that squaring entries near 1e+200 or 1e-200 neither overflows nor underflows."""
    big = jnp.max(jnp.abs(A))
    positive = big != 0  # NaN entries propagate as NaN rather than count as zero
    big_safe = jnp.where(positive, big, 1.0)
    scaled_sq = jnp.sum(jnp.abs(A / big_safe) ** 2)  # >= 1 unless A = 0
    safe = big_safe * jnp.sqrt(jnp.where(positive, scaled_sq, 1.0))
    return jnp.where(positive, safe, 0.0), safe


def _gelfand_one(squarings: int, J):
    # Invariant: J^(2^i) = exp(log_scale) * A. Normalising A before each squaring keeps it
    # of unit norm, so ||J^(2^m)|| = exp(log_scale) * ||A_m|| never over- or underflows.
    A = J
    log_scale = jnp.zeros((), dtype=jnp.real(J).dtype)
    for _ in range(squarings):
        _, safe = _safe_norm(A)
        A = A / safe
        log_scale = 2.0 * (log_scale + jnp.log(safe))
        A = A @ A
    norm, safe = _safe_norm(A)
    k = 2.0**squarings
    return jnp.where(norm != 0, jnp.exp((log_scale + jnp.log(safe)) / k), 0.0)


def _power_one(iterations: int, J):
    n = J.shape[-1]
    v = jax.random.normal(jax.random.PRNGKey(_POWER_START_SEED), (n,), dtype=jnp.float64).astype(J.dtype)
    v = v / jnp.linalg.norm(v)

    def body(_, v):
        w = J @ v
        _, safe = _safe_norm(w)
        return w / safe

    v = jax.lax.fori_loop(0, iterations, body, v)
    norm, _ = _safe_norm(J @ v)
    return norm


def spectral_radius(
    J, method: str = "gelfand", *, squarings: int = GELFAND_SQUARINGS, iterations: int = POWER_ITERATIONS
):
    """Spectral radius ``max |lambda_i(J)|``.

    Parameters
    ----------
    J : array ``(..., n, n)``.
    method : ``"gelfand"`` — Gelfand's formula ``||J^k||_F^(1/k)`` with ``k = 2**squarings``
        (default ``2**10``), computed by ``squarings`` matrix squarings, each preceded by a
        division by the current Frobenius norm whose logarithm is carried separately. Exact
        in the limit for every matrix, normal or not. For finite ``k`` it is never below the
        spectral radius (``||J^k||_F >= rho(J)^k``) and exceeds it by a factor that behaves
        like ``(C k^(m-1))^(1/k)``, ``m`` the largest Jordan block of a dominant eigenvalue
        and ``C`` a conditioning constant of its eigenvectors: 1.2 % for the 2x2 Jordan
        block ``[[0.5, 100], [0, 0.5]]``. Differentiable.
        ``"power"`` — ``||J v||`` after ``iterations`` steps of ``v <- J v / ||J v||`` from a
        fixed pseudo-random start vector. Converges when one eigenvalue (or one eigenvalue
        of multiplicity > 1 with a full eigenspace) strictly dominates in modulus, slowly
        (like ``1/iterations``) when that eigenvalue is defective; when a complex-conjugate
        pair dominates a real, non-normal ``J`` the estimate oscillates and does not
        converge. Differentiable through the iterations.
        ``"eig"`` — ``max |jnp.linalg.eigvals(J)|``; exact up to rounding, but see the module
        docstring on derivatives.
    squarings, iterations : sizes of the ``"gelfand"`` and ``"power"`` methods.

    Returns
    -------
    array of shape ``J.shape[:-2]``.
    """
    method = choose("spectral radius method", method, SPECTRAL_RADIUS_METHODS)
    J = _check_square(J)
    if method == "eig":
        return jnp.max(jnp.abs(jnp.linalg.eigvals(J)), axis=-1)
    if method == "gelfand":
        if not (isinstance(squarings, int) and squarings >= 1):
            raise ValueError(f"squarings={squarings!r} must be a positive integer (default {GELFAND_SQUARINGS}).")
        return _batched(_gelfand_one, J, squarings)
    if not (isinstance(iterations, int) and iterations >= 1):
        raise ValueError(f"iterations={iterations!r} must be a positive integer (default {POWER_ITERATIONS}).")
    return _batched(_power_one, J, iterations)


@functools.partial(jax.jit, static_argnums=(0, 2))
def _batched(one, J, size):
    # Compiled once per (method, shape, size), so eager calls do not dispatch op by op.
    return jnp.vectorize(functools.partial(one, size), signature="(n,n)->()")(J)


def stiffness_ratio(J, part: str = "modulus"):
    """Stiffness ratio from the eigenvalues of ``J``.

    Parameters
    ----------
    J : array ``(..., n, n)``.
    part : ``"modulus"`` — ``|lambda_1| / |lambda_n|`` with ``|lambda_1| >= ... >= |lambda_n|``,
        the ratio ``r~(J)`` the Hudson et al. deck uses per ResNet layer and sample; ``inf``
        when ``J`` is singular. ``"real"`` — Lambert's ``max |Re lambda| / min |Re lambda|``
        over the eigenvalues with negative real part (the decaying modes; Lambert assumes all
        are); NaN when there are none. Use it for ODEs with conserved quantities, whose zero
        eigenvalues make the modulus ratio infinite.

    Returns
    -------
    array of shape ``J.shape[:-2]``. Computed directly from ``jnp.linalg.eigvals``, which
    costs ``O(n^3)`` per matrix: meant for the small dimensions of layer and ODE Jacobians.
    Not reliably differentiable (module docstring).
    """
    part = choose("stiffness ratio part", part, STIFFNESS_RATIO_PARTS)
    J = _check_square(J)
    lam = jnp.linalg.eigvals(J)
    if part == "modulus":
        mod = jnp.abs(lam)
        return jnp.max(mod, axis=-1) / jnp.min(mod, axis=-1)
    decay = -jnp.real(lam)
    negative = decay > 0
    fastest = jnp.max(jnp.where(negative, decay, -jnp.inf), axis=-1)
    slowest = jnp.min(jnp.where(negative, decay, jnp.inf), axis=-1)
    return jnp.where(jnp.any(negative, axis=-1), fastest / slowest, jnp.nan)


def singular_ratio(J):
    """``sigma_max / sigma_min`` of ``J`` (its 2-norm condition number); ``inf`` if singular.

    Bounds the modulus stiffness ratio from above, since ``sigma_max >= |lambda_1|`` and
    ``|lambda_n| >= sigma_min``. Differentiable (through the SVD) where the largest and smallest
    singular values are simple and ``sigma_min > 0``.
    """
    J = _check_square(J)
    s = jnp.linalg.svd(J, compute_uv=False)
    return s[..., 0] / s[..., -1]


def singular_max(J):
    """Largest singular value ``sigma_max`` (the 2-norm of ``J``), an upper bound of the spectral
    radius; one of the deck's differentiable proxies. Differentiable where ``sigma_max`` is
    simple."""
    J = _check_square(J)
    return jnp.linalg.svd(J, compute_uv=False)[..., 0]


def frobenius(J):
    """Frobenius norm ``sqrt(sum |J_ij|^2)``, an upper bound of the spectral radius.
    Differentiable except at ``J = 0``."""
    J = _check_square(J)
    return jnp.sqrt(jnp.sum(jnp.abs(J) ** 2, axis=(-2, -1)))
