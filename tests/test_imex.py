"""KenCarp4 as the additive (IMEX) pair it is, on a SplitRHS: coefficients, order, that the
non-stiff part really is explicit, every sensitivity, and the errors around a split."""

import jax.numpy as jnp
import numpy as np
import pytest
from test_tableaux import density, trees

import pystiffsens as pss
from pystiffsens.solvers import ESDIRK
from pystiffsens.solvers.tableaux import KENCARP4, KENCARP4_EXPLICIT, TRBDF2
from pystiffsens.study.resume import problem_id


def _coloured_phi(tree):
    """``Phi(t)`` of every colouring of the vertices below the root by the two halves (A^I or A^E)."""
    out = [np.ones(KENCARP4.stages)]
    for child in tree:
        below = [M @ phi for phi in _coloured_phi(child) for M in (KENCARP4.A, KENCARP4_EXPLICIT.A)]
        out = [o * b for o in out for b in below]
    return out


def _worst(weights, order):
    return max(abs(weights @ phi - 1 / density(t)) for t in trees(order) for phi in _coloured_phi(t))


def test_the_pair_meets_the_coupling_conditions_of_its_orders():
    """Additive RK order conditions (Kennedy & Carpenter 2003, Sect. 3): every bi-coloured tree, shared b."""
    assert max(_worst(KENCARP4.b, q) for q in range(1, 5)) < 1e-14
    assert max(_worst(KENCARP4.b_hat, q) for q in range(1, 4)) < 1e-14
    assert _worst(KENCARP4.b, 5) > 1e-4 and _worst(KENCARP4.b_hat, 4) > 1e-4


def _linear_split(lam=2.0):
    """linear_modes (y1' = -a y1 + c y2, y2' = -lam y2) with the fast mode as the stiff part."""
    problem = pss.problems.get("linear_modes", lam=lam)
    stiff = lambda t, y, p: jnp.stack([0.0 * y[0], -p["lam"] * y[1]])  # noqa: E731
    nonstiff = lambda t, y, p: jnp.stack([-p["a"] * y[0] + p["c"] * y[1], 0.0 * y[1]])  # noqa: E731
    return problem, problem.replace(rhs=pss.SplitRHS(stiff, nonstiff))


def test_imex_is_fourth_order_and_really_explicit_in_the_nonstiff_part():
    plain, split = _linear_split(lam=2.0)
    exact = np.asarray(plain.exact_solution(1.0, plain.params))
    errors = [np.abs(pss.solve(split, "KenCarp4", dt=h).ys[-1] - exact).max() for h in (0.2, 0.1, 0.05)]
    assert np.polyfit(np.log([0.2, 0.1, 0.05]), np.log(errors), 1)[0] == pytest.approx(4.0, abs=0.3)
    # A different method on the split: the slow component (explicit part) differs.
    assert pss.solve(split, "KenCarp4", dt=0.1).ys[-1, 0] != pss.solve(plain, "KenCarp4", dt=0.1).ys[-1, 0]
    # Swap the parts: the fast mode (h lam = 1e3) explicit is unstable; implicit it is damped.
    plain, split = _linear_split(lam=1e4)
    swapped = split.replace(rhs=pss.SplitRHS(split.rhs.nonstiff, split.rhs.stiff))
    assert np.all(np.isfinite(pss.solve(split, "KenCarp4", dt=0.1).ys))
    assert not np.all(np.abs(pss.solve(swapped, "KenCarp4", dt=0.1).ys[-1]) < 1e3)
    # Methods without an explicit half use the sum: the same numbers as on the unsplit problem.
    np.testing.assert_array_equal(pss.solve(split, "Rodas5P").ys, pss.solve(plain, "Rodas5P").ys)


# What a split changes for a sensitivity: the forward map (forward mode and the discrete adjoint
# differentiate the IMEX step) and the forward pass the adjoints read y(t) from (InterpolatingAdjoint;
# GaussAdjoint and BacksolveAdjoint take their forward pass from the same integrate call). Augmented
# systems (ForwardSensitivity, every backward solve) are not split: the implicit half runs them, as
# KenCarp4 runs any unsplit right-hand side (tests/test_sensitivities.py).
IMEX_SENSITIVITIES = ("ForwardDiffSensitivity", "ReverseDiffAdjoint", "InterpolatingAdjoint")


def test_imex_gradients_against_the_exact_gradient():
    _, split = _linear_split(lam=2.0)
    _, exact = split.exact_loss_and_grad()
    results = {}
    for algorithm in IMEX_SENSITIVITIES:
        result = pss.gradient(split, "KenCarp4", algorithm, rtol=1e-9, atol=1e-11, max_steps=pss.memory.INITIAL_SAVED_STEPS)
        assert result.status == pss.ReturnCode.Success, algorithm
        for key, value in exact.items():
            assert result.grad[key] == pytest.approx(float(value), rel=2e-6, abs=1e-9), (algorithm, key)
        results[algorithm] = result.grad
    for key in exact:  # the IMEX map differentiated forward and backward
        np.testing.assert_allclose(results["ReverseDiffAdjoint"][key], results["ForwardDiffSensitivity"][key], rtol=1e-10)


def test_split_errors_name_the_part_and_the_fix():
    plain, _ = _linear_split()
    with pytest.raises(ValueError, match="SplitRHS: nonstiff=3 must be a function"):
        pss.SplitRHS(plain.rhs, 3)
    with pytest.raises(ValueError, match=r"rhs.nonstiff returns shape \(1,\)"):
        plain.replace(rhs=pss.SplitRHS(plain.rhs, lambda t, y, p: y[:1]))
    with pytest.raises(ValueError, match="cannot pair with 'KenCarp4'.*c differs"):
        ESDIRK(KENCARP4, explicit=TRBDF2.__class__(A=np.tril(np.ones((6, 6)), -1) / 6, b=KENCARP4.b,
                                                  c=np.arange(6) / 6, name="bad"))
    # backend='julia' runs a split problem (KenCarp4 on a SplitODEProblem, the others on the sum);
    # only the exponential integrators refuse it there (tests/test_julia_backend.py).
    julia = pss.backends.get("julia")
    split_node = pss.problems.get("stiff_neural_ode", split=True)
    for solver in ("KenCarp4", "Rodas5P"):
        julia.check(split_node, pss.solvers.get(solver), None, pss.Options(), "cpu")
    with pytest.raises(ValueError, match="whose rhs is a SplitRHS, on backend='julia'.*split=False"):
        julia.check(split_node, pss.solvers.get("LawsonEuler"), None, pss.Options(dt=0.1), "cpu")


def test_which_part_is_stiff_is_part_of_the_model_identity():
    plain, split = _linear_split()
    swapped = split.replace(rhs=pss.SplitRHS(split.rhs.nonstiff, split.rhs.stiff))
    assert len({problem_id(plain), problem_id(split), problem_id(swapped)}) == 3
    rebuilt = split.replace(rhs=pss.SplitRHS(split.rhs.stiff, split.rhs.nonstiff))
    assert rebuilt.rhs == split.rhs and problem_id(rebuilt) == problem_id(split)
