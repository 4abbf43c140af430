"""Continuous adjoints with the parameter integral as a quadrature (issue #10 item 2)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import FIXED_DT, equations

import pystiffsens as pss


def _vector(grad):
    return np.concatenate([np.ravel(grad[k]) for k in sorted(grad)])


def _mlp_problem(hidden, lam=50.0):
    key1, key2 = jax.random.split(jax.random.PRNGKey(1))
    params = {
        "lam": lam,
        "W1": 0.3 * jax.random.normal(key1, (hidden, 3)),
        "b1": jnp.zeros(hidden),
        "W2": 0.3 * jax.random.normal(key2, (3, hidden)),
    }

    def rhs(t, y, p):
        return -p["lam"] * jnp.array([0.0, 1.0, 0.01]) * y + p["W2"] @ jnp.tanh(p["W1"] @ y + p["b1"])

    return pss.Problem(rhs, [1.0, 0.5, -0.5], (0.0, 1.0), params)


# InterpolatingAdjoint and BacksolveAdjoint (the same partitioned machinery with a 2n implicit
# block) with many parameters, on a Rosenbrock, a multistep and a Newton-based (ESDIRK, fixed
# steps) stepper, against the same reference; tests/test_sensitivities.py runs every stepper
# family (KenCarp4's explicit first stage on a partitioned right-hand side included) against
# exact sensitivities.
FAMILY_SOLVERS = ("Rodas5P", "FBDF", "ImplicitEuler")


@pytest.mark.parametrize("solver", FAMILY_SOLVERS)
def test_quadrature_adjoint_matches_reverse_diff(solver):
    problem = _mlp_problem(hidden=4, lam=2.0)
    kwargs = dict(rtol=1e-9, atol=1e-11, dt=FIXED_DT.get(solver))
    reference = pss.gradient(problem, solver, "ReverseDiffAdjoint", **kwargs)
    assert reference.status == pss.ReturnCode.Success
    # Fixed steps: continuous and discrete gradients differ at the order of the method.
    rtol = {"ImplicitEuler": 2e-2}.get(solver, 1e-6)
    atol = 1e-8 if solver not in FIXED_DT else 1e-5
    for algorithm in ["InterpolatingAdjoint", "BacksolveAdjoint"]:
        result = pss.gradient(problem, solver, algorithm, **kwargs)
        assert result.status == pss.ReturnCode.Success, algorithm
        np.testing.assert_allclose(_vector(result.grad), _vector(reference.grad), rtol=rtol, atol=atol, err_msg=algorithm)


def _lu_sizes(jaxpr):
    return [eqn.invars[0].aval.shape[-1] for eqn in equations(jaxpr) if eqn.primitive.name == "lu"]


@pytest.mark.parametrize("solver", ["Rodas5P", "KenCarp4", "FBDF"])
@pytest.mark.parametrize("algorithm", ["InterpolatingAdjoint", "BacksolveAdjoint"])
def test_backward_implicit_system_has_the_size_of_the_state_adjoint(algorithm, solver, monkeypatch):
    """Every LU factorisation in the whole gradient program is n x n (2n for BacksolveAdjoint), never n + P."""
    from pystiffsens.solvers import linear

    monkeypatch.setattr(linear, "ELIMINATION_MAX_SIZE", 0)  # every factorisation an `lu` equation, small ones too
    problem = _mlp_problem(hidden=8)
    fn = pss.make_gradient_fn(problem, solver, algorithm, max_steps=pss.memory.INITIAL_SAVED_STEPS)  # one record length
    sizes = _lu_sizes(jax.make_jaxpr(fn)(problem.params).jaxpr)
    n = 3
    assert sizes, "no LU factorisation found: the jaxpr walk is broken"
    assert max(sizes) == (2 * n if algorithm == "BacksolveAdjoint" else n), sorted(set(sizes))


def test_quadrature_error_control_option():
    problem = _mlp_problem(hidden=4)
    reference = pss.gradient(problem, "Rodas5P", "ReverseDiffAdjoint", rtol=1e-8, atol=1e-10)
    for flag in (False, True):
        alg = pss.sensitivity.InterpolatingAdjoint(quadrature_error_control=flag)
        result = pss.gradient(problem, "Rodas5P", alg, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(_vector(result.grad), _vector(reference.grad), rtol=1e-5, atol=1e-8)
    with pytest.raises(ValueError, match="quadrature_error_control=1"):
        pss.sensitivity.InterpolatingAdjoint(quadrature_error_control=1)


def test_medium_parameter_count_against_reverse_diff():
    problem = _mlp_problem(hidden=64)  # 3 * 64 + 64 + 64 * 3 + 1 = 449 parameters
    assert sum(np.size(v) for v in jax.tree_util.tree_leaves(problem.params)) == 449
    interp = pss.gradient(problem, "Rodas5P", "InterpolatingAdjoint", rtol=1e-8, atol=1e-10)
    reverse = pss.gradient(problem, "Rodas5P", "ReverseDiffAdjoint", rtol=1e-8, atol=1e-10)
    assert interp.status == pss.ReturnCode.Success
    g, r = _vector(interp.grad), _vector(reverse.grad)
    np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-6 * np.max(np.abs(r)))


def test_backward_solve_goes_on_across_saved_times_with_its_step_size():
    """Across 500 saved times a smooth problem takes one forward step per interval; the backward solve, which jumps
    at each, starts every interval with the step size it had (restarting from a first-step estimate took two
    steps per interval: 1000 against 501, benchmarks/README.md section 8) and keeps the forward-mode gradient."""
    problem = pss.Problem(lambda t, y, p: -p["k"] * y + jnp.sin(t), np.array([1.0, 2.0]), (0.0, 10.0),
                          {"k": np.array([1.0, 3.0])}, saveat=np.linspace(0.02, 10.0, 500),
                          loss=lambda ts, ys, p: jnp.sum(ys ** 2))
    kwargs = dict(rtol=1e-8, atol=1e-10, max_steps=1024)
    exact = pss.gradient(problem, "Rodas5P", "ForwardDiffSensitivity", **kwargs)
    result = pss.gradient(problem, "Rodas5P", "InterpolatingAdjoint", **kwargs)
    assert result.success and result.stats["n_steps"] == 501
    assert result.stats["backward_n_steps"] <= 1.1 * result.stats["n_steps"]
    np.testing.assert_allclose(result.grad["k"], exact.grad["k"], rtol=1e-8)
