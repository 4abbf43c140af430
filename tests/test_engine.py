"""The native solvers: convergence order, L-stability, variable order, cost counters, failures."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ADAPTIVE, ALL_SOLVERS, equations

import pystiffsens as pss
from pystiffsens.integrate import integrate

# Observed order with fixed steps on Van der Pol (mu = 1, t in [0, 1]). FBDF with a fixed
# step starts at order 1, so its global error is limited to second order.
EXPECTED_ORDER = {"Rodas4": 4, "Rodas5P": 5, "KenCarp4": 4, "FBDF": 2, "ImplicitEuler": 1, "Trapezoid": 2, "BDF2": 2}


@pytest.fixture(scope="module")
def smooth_problem():
    problem = pss.problems.get("van_der_pol", mu=1.0, t_end=1.0)
    reference = pss.solve(problem, "Rodas5P", rtol=1e-13, atol=1e-13).ys[-1]
    return problem, reference


@pytest.mark.parametrize("solver", ALL_SOLVERS)
def test_observed_convergence_order(solver, smooth_problem):
    problem, reference = smooth_problem
    steps = np.array([0.1, 0.05, 0.025])
    errors = np.array([np.abs(pss.solve(problem, solver, dt=h).ys[-1] - reference).max() for h in steps])
    observed = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert observed == pytest.approx(EXPECTED_ORDER[solver], abs=0.3)


@pytest.mark.parametrize("solver", ALL_SOLVERS)
def test_l_stability_one_step(solver):
    """One step on y' = -lam y with h*lam -> infinity: |y1| -> 0, except the trapezoid rule (-> -1)."""
    values = []
    for lam in (1e4, 1e8):
        problem = pss.problems.get("dahlquist", lam=lam)
        values.append(pss.solve(problem, solver, dt=1.0).ys[-1, 0])
    if solver == "Trapezoid":
        assert values[-1] == pytest.approx(-1.0, abs=1e-6)
    else:
        assert abs(values[-1]) < 1e-6 and abs(values[-1]) < abs(values[0])


def test_fbdf_selects_orders_above_two():
    problem = pss.problems.get("van_der_pol", mu=1.0, t_end=10.0)
    traj = integrate(
        problem.rhs, pss.solvers.get("FBDF"), jnp.asarray(problem.y0), problem.params,
        t0=0.0, stops=jnp.array([10.0]), options=pss.Options(rtol=1e-8, atol=1e-10, max_steps=2000),
        record_states=True,
    )
    orders = np.asarray(traj.states.order[: int(traj.n_steps) + 1])
    assert orders.max() == 5
    assert np.mean(orders > 2) > 0.5


# Counter ceilings on ROBER (t in [0, 1e5], default tolerances), ~30% above what the solvers
# take today, so a regression in step control or work per step fails here (as scipy's
# test_ivp caps nfev/njev/nlu).
COST_CEILINGS = {
    "Rodas4": dict(n_steps=200, n_rejected=10, n_f=1450, n_jac=210, n_lu=210),
    "Rodas5P": dict(n_steps=110, n_rejected=10, n_f=1050, n_jac=120, n_lu=120),
    # KenCarp4's Newton tolerance is OrdinaryDiffEq's kappa (newton.kappa_tolerance): 1110 RHS
    # evaluations instead of 1196 and 142 Jacobians instead of 119 (more stages fall back to full Newton).
    "KenCarp4": dict(n_steps=80, n_rejected=10, n_f=1450, n_jac=185, n_lu=185),
    "FBDF": dict(n_steps=360, n_rejected=20, n_f=750, n_jac=380, n_lu=380),
}


@pytest.mark.parametrize("solver", ADAPTIVE)
def test_cost_counters_capped_on_robertson(solver):
    sol = pss.solve(pss.problems.get("robertson"), solver)
    assert sol.status == pss.ReturnCode.Success
    for name, ceiling in COST_CEILINGS[solver].items():
        assert sol.stats[name] <= ceiling, (name, sol.stats)
    # At least one Jacobian and one LU per attempted step (more when Newton falls back to
    # full Newton), and the RHS is evaluated in every stage.
    attempts = sol.stats["n_steps"] + sol.stats["n_rejected"]
    assert sol.stats["n_jac"] >= attempts and sol.stats["n_lu"] >= attempts
    assert sol.stats["n_f"] >= 2 * attempts


def test_solution_records_every_step():
    problem = pss.problems.get("linear_modes")
    sol = pss.solve(problem, "Rodas5P", saveat=[0.25, 0.5, 1.0])
    assert sol.ts.tolist() == [0.25, 0.5, 1.0]
    assert sol.step_ts[0] == 0.0 and sol.step_ts[-1] == 1.0
    assert len(sol.step_ts) == sol.stats["n_steps"] + 1 == len(sol.step_ys)
    assert set([0.25, 0.5]).issubset(sol.step_ts.tolist())  # saved times are stepped onto exactly
    exact = np.array([problem.exact_solution(t, problem.params) for t in sol.ts])
    np.testing.assert_allclose(sol.ys, exact, rtol=1e-5, atol=1e-8)


# ---------------------------------------------------------------- failures


def _blowup():
    """y' = y^2, y(0) = 1 blows up at t = 1."""
    return pss.Problem(lambda t, y, p: p["a"] * y**2, [1.0], (0.0, 2.0), {"a": 1.0})


@pytest.mark.parametrize("solver", ADAPTIVE)
def test_finite_time_blowup_is_a_status_not_a_number(solver):
    sol = pss.solve(_blowup(), solver)
    assert sol.status in (pss.ReturnCode.DtLessThanMin, pss.ReturnCode.Unstable)
    assert np.all(np.isnan(sol.ys))


def test_newton_failure_with_fixed_steps():
    sol = pss.solve(_blowup(), "ImplicitEuler", dt=0.6)
    assert sol.status == pss.ReturnCode.ConvergenceFailure
    assert np.all(np.isnan(sol.ys))


@pytest.mark.parametrize("solver", ["Rodas5P", "KenCarp4", "ImplicitEuler"])
def test_non_finite_rhs_is_unstable(solver):
    problem = pss.Problem(lambda t, y, p: jnp.where(t > 0.5, jnp.nan, -p["a"] * y), [1.0], (0.0, 1.0), {"a": 1.0})
    sol = pss.solve(problem, solver, dt=0.1 if solver == "ImplicitEuler" else None)
    assert sol.status == pss.ReturnCode.Unstable


def test_max_steps_gives_maxiters():
    sol = pss.solve(pss.problems.get("robertson"), "Rodas5P", max_steps=20)
    assert sol.status == pss.ReturnCode.MaxIters
    assert sol.stats["n_steps"] + sol.stats["n_rejected"] == 20


def test_gradient_of_failed_solve_is_nan():
    result = pss.gradient(pss.problems.get("robertson"), "Rodas5P", "ReverseDiffAdjoint", max_steps=20)
    assert result.status == pss.ReturnCode.MaxIters
    assert np.isnan(result.loss) and all(np.isnan(v).all() for v in result.grad.values())


# ---------------------------------------------------------------- bad input


def test_unknown_solver_lists_valid_names():
    with pytest.raises(ValueError, match=r"Unknown solver 'Rodas6'.*Rodas5P.*KenCarp4.*FBDF"):
        pss.solve(pss.problems.get("dahlquist"), "Rodas6")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(rtol=0.0), r"rtol=0.0 must be > 0"),
        (dict(rtol=-1e-6), r"rtol=-1e-06"),
        (dict(atol=float("nan")), r"atol=nan must be finite"),
        (dict(dt=-0.1), r"dt=-0.1 must be a positive"),
        (dict(max_steps=0), r"max_steps=0"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pss.solve(pss.problems.get("dahlquist"), "Rodas5P", **kwargs)


def test_fixed_step_reference_needs_dt():
    with pytest.raises(ValueError, match=r"'ImplicitEuler' is a fixed-step reference method and needs dt="):
        pss.solve(pss.problems.get("dahlquist"), "ImplicitEuler")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(y0=[np.nan]), r"y0=.*non-finite"),
        (dict(params={"lam": np.inf}), r"params\['lam'\]=inf contains non-finite"),
        (dict(tspan=(1.0, 1.0)), r"tspan=\(1.0, 1.0\) must satisfy t0 < t1"),
        (dict(tspan=(1.0, 0.0)), r"t0 < t1"),
        (dict(y0=[1.0, 2.0]), r"rhs returns shape \(1,\) but y0 has shape \(2,\)"),
        (dict(saveat=[0.5, 0.2]), r"strictly increasing"),
        (dict(stiffness="mu"), r"stiffness='mu' is not a parameter; valid names: \['lam'\]"),
    ],
)
def test_bad_problem(kwargs, match):
    args = dict(rhs=lambda t, y, p: -p["lam"] * y[:1], y0=[1.0], tspan=(0.0, 1.0), params={"lam": 1.0})
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        pss.Problem(**args)


def test_unknown_problem_and_option():
    with pytest.raises(ValueError, match=r"Unknown problem 'robertsn'.*Did you mean 'robertson'"):
        pss.problems.get("robertsn")
    with pytest.raises(ValueError, match=r"Unknown option\(s\) \['lamda'\] for problem 'dahlquist'"):
        pss.problems.get("dahlquist", lamda=3.0)


def test_cuda_absent_gives_clear_error():
    import jax

    try:
        jax.devices("cuda")
        pytest.skip("a CUDA device is present; tests/test_cuda.py covers it")
    except RuntimeError:
        pass
    with pytest.raises(RuntimeError, match=r"No CUDA device is available.*pip install 'pystiffsens\[cuda\]'"):
        pss.solve(pss.problems.get("dahlquist"), "Rodas5P", device="cuda")


@pytest.mark.parametrize("n", [1, 3, 4, 5, 9])
def test_small_lu_by_elimination_and_substitution_equals_lapack(n, monkeypatch):
    """Small systems are factorised by written-out elimination and solved by written-out
    substitution, larger ones by LAPACK (each by its own size threshold); both agree with ``jnp.linalg.solve`` in value, in forward-
    and reverse-mode derivatives (which the LU takes from the solve, not through the factorisation)
    and in the Hessian."""
    from pystiffsens.solvers import linear

    rng = np.random.default_rng(n)
    matrix = jnp.asarray(rng.normal(size=(n, n)) + 2 * np.eye(n))
    b, columns = jnp.asarray(rng.normal(size=n)), jnp.asarray(rng.normal(size=(n, 4)))

    def solves(solve):  # traced anew on each call, so the size threshold is read again
        one_by_one = jax.jit(jax.vmap(lambda c: solve(matrix, c), in_axes=1, out_axes=1))(columns)
        solve_of = jax.jit(solve)
        loss = lambda m, v: jnp.sum(jnp.sin(solve_of(m, v)))  # noqa: E731
        return (one_by_one, solve_of(matrix, columns), solve_of(matrix, b), jax.jacfwd(solve_of)(matrix, b),
                jax.jacfwd(solve_of, argnums=1)(matrix, b), *jax.grad(loss, argnums=(0, 1))(matrix, columns),
                jax.hessian(loss)(matrix, b))

    def factorised(m, v):
        return linear.lu_factor(m).solve(v)

    by_default = solves(factorised)
    monkeypatch.setattr(linear, "SUBSTITUTION_MAX_SIZE", 0)
    monkeypatch.setattr(linear, "ELIMINATION_MAX_SIZE", 0)
    by_lapack = solves(factorised)
    reference = solves(jnp.linalg.solve)
    for got, lapack, want in zip(by_default, by_lapack, reference):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(lapack, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(matrix @ by_default[2], b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rule", [None, "products", "formed"])
@pytest.mark.parametrize("n, coef", [(3, 1.0), (12, 1.0), (12, 0.4 + 0.3j)])
def test_iteration_matrix_solves_differentiate_through_the_rhs_as_through_the_formed_matrix(n, coef, rule):
    """Solves with ``I/delta - coef J`` (``Jacobian.shifted``) take ``dA x`` from the tangent of the formed
    ``J`` or (``iteration_matrix_tangents("products")``, and small systems by default) from a product of
    the right-hand side. Either way forward and reverse derivatives and the Hessian, with respect to
    parameters the right-hand side gets as an argument and to ones it closes over, equal those of a solve
    with the formed matrix (``jnp.linalg.solve``), real and complex (FIRK's conjugate pairs)."""
    import contextlib

    from pystiffsens.solvers.partitioned import (
        REVERSE_PRODUCTS_MAX_SIZE,
        Jacobian,
        iteration_matrix_tangents,
        partition,
    )

    by_products = rule == "products" or (rule is None and n <= REVERSE_PRODUCTS_MAX_SIZE)

    rng = np.random.default_rng(n)
    coupling, y, rhs0 = (jnp.asarray(rng.normal(size=s)) for s in [(n, n), n, n])

    def f(t, y, p):  # nonlinear in y and in both parameters, which enter the Jacobian
        return p["k"] * jnp.tanh(coupling @ y) - p["c"] * y**3 + jnp.sin(t) * y

    def solve_both(params, scale):
        f_closed = lambda t, yy, p: f(t, yy, p) * scale  # noqa: E731  (closes over a traced value)
        delta = 0.1 * params["k"]
        with iteration_matrix_tangents(rule) if rule else contextlib.nullcontext():
            system = Jacobian(partition(f_closed), 0.3, y * params["c"], params).shifted(coef, delta)
        assert (system.lu.product is not None) == by_products
        b = rhs0 * params["k"] + 0j if np.iscomplexobj(coef) else rhs0 * params["k"]
        x = system.solve_implicit(b)
        formed = jnp.eye(n) / delta - coef * jax.jacfwd(lambda yy: f_closed(0.3, yy, params))(y * params["c"])
        return x, jnp.linalg.solve(formed, b)

    def losses(params, scale):
        x, reference = solve_both(params, scale)
        return jnp.stack([jnp.sum(jnp.sin(jnp.abs(x))), jnp.sum(jnp.sin(jnp.abs(reference)))])

    params, scale = {"k": jnp.asarray(1.3), "c": jnp.asarray(0.7)}, jnp.asarray(0.9)
    x, reference = solve_both(params, scale)
    np.testing.assert_allclose(x, reference, rtol=1e-12, atol=1e-12)
    mine = jax.tree_util.tree_leaves(jax.jit(jax.jacfwd(losses, argnums=(0, 1)))(params, scale))
    back = jax.tree_util.tree_leaves(jax.jit(jax.jacrev(losses, argnums=(0, 1)))(params, scale))
    for a, b in zip(mine, back):
        np.testing.assert_allclose(a[0], a[1], rtol=1e-10, atol=1e-12)  # through the rhs = through the matrix
        np.testing.assert_allclose(b[0], b[1], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    hessian = jax.jit(jax.hessian(losses, argnums=(0, 1)))(params, scale)
    for h in jax.tree_util.tree_leaves(hessian):
        np.testing.assert_allclose(h[0], h[1], rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_elimination_pivots_as_getrf(dtype, monkeypatch):
    """Row swaps where the diagonal is zero or small: the same permutation and factors as LAPACK."""
    from pystiffsens.solvers import linear

    matrix = np.array([[0.0, 2.0, 1.0, 0.5], [1e-9, 1.0, 3.0, 0.0], [4.0, 0.0, 1.0, 2.0], [1.0, 5.0, 0.0, 1.0]])
    if dtype is np.complex128:
        matrix = matrix + 0.5j * matrix.T
    matrix = jnp.asarray(matrix.astype(dtype))
    mine = linear.lu_factor(matrix)
    monkeypatch.setattr(linear, "ELIMINATION_MAX_SIZE", 0)
    lapack = linear.lu_factor(matrix)
    if dtype is np.float64:  # complex getrf compares |re| + |im|, the elimination the modulus
        np.testing.assert_array_equal(mine.permutation, lapack.permutation)
        np.testing.assert_allclose(mine.factors, lapack.factors, rtol=1e-14, atol=1e-14)
    b = jnp.arange(1.0, 5.0).astype(dtype)
    np.testing.assert_allclose(matrix @ mine.solve(b), b, rtol=1e-13, atol=1e-13)
    factors = np.asarray(mine.factors)
    lower, upper = np.tril(factors, -1) + np.eye(4), np.triu(factors)
    np.testing.assert_allclose(lower @ upper, np.asarray(matrix)[np.asarray(mine.permutation)], atol=1e-14)


def test_small_factorisation_and_step_rescaling_trace_no_loops_or_dots():
    """What keeps small steps cheap on XLA:CPU (benchmarks/README.md, section 6): a 3 x 3 factorisation
    traces no LAPACK ``lu`` (which brings a ``while`` loop for its permutation), and FBDF's change of
    step size no ``dot_general``; the rescaled differences equal the matrix formula."""
    import importlib

    from pystiffsens.solvers import linear

    bdf = importlib.import_module("pystiffsens.solvers.bdf")  # the name `bdf` in solvers is the stability function
    names = {eqn.primitive.name for eqn in equations(jax.make_jaxpr(linear.lu_factor)(jnp.eye(3)).jaxpr)}
    assert not names & {"lu", "while"}, names
    D = jnp.asarray(np.random.default_rng(0).normal(size=(bdf.MAX_ORDER + 1, 3)))
    order, factor = 3, 0.7
    names = {eqn.primitive.name for eqn in equations(jax.make_jaxpr(bdf._change_D)(D, order, factor).jaxpr)}
    assert "dot_general" not in names
    RU = np.asarray(bdf._compute_R(order, factor)) @ np.asarray(bdf._compute_R(order, 1.0))
    want = np.where(np.arange(bdf.MAX_ORDER + 1)[:, None] <= order, RU.T @ np.asarray(D), np.asarray(D))
    np.testing.assert_allclose(bdf._change_D(D, order, factor), want, rtol=1e-13, atol=1e-13)


def test_small_solves_and_rosenbrock_stages_do_not_divide():
    """XLA:CPU gives each division a kernel of its own (benchmarks/README.md, section 6): a solve with
    small LU factors multiplies by the pivots' reciprocals, formed once per factorisation (its
    solution behind an optimisation barrier), and a Rosenbrock step divides by its step size once,
    not once per stage coupling."""
    from pystiffsens.options import Options
    from pystiffsens.solvers import linear

    def divisions(jaxpr):
        return [eqn for eqn in equations(jaxpr) if eqn.primitive.name == "div"]

    A = jnp.asarray(np.random.default_rng(1).normal(size=(3, 3)))
    lu = linear.lu_factor(A)
    solve = jax.make_jaxpr(lambda lu, b: lu.solve(b))(lu, jnp.ones(3)).jaxpr
    assert divisions(solve) == []
    # ... and the solution is fenced, so that XLA does not copy the products into its readers
    assert "optimization_barrier" in [eqn.primitive.name for eqn in equations(solve)]
    assert len(divisions(jax.make_jaxpr(linear.lu_factor)(A).jaxpr)) == 3  # two columns' multipliers, one reciprocal
    np.testing.assert_allclose(lu.solve(jnp.arange(3.0)), np.linalg.solve(np.asarray(A), np.arange(3.0)), rtol=1e-13)
    problem, solver = pss.problems.get("robertson"), pss.solvers.get("Rodas5P")
    options = Options(rtol=1e-8, atol=1e-10).for_method(solver, 1e5)
    state = solver.init(problem.rhs, 0.0, problem.y0, problem.params, 1e-6)
    attempt = jax.make_jaxpr(lambda h: solver.attempt(problem.rhs, 0.0, h, state, problem.params, options).state)(1e-6)
    assert len(divisions(attempt.jaxpr)) < solver.tableau.stages


@pytest.mark.parametrize("sensitivity", [None, "ReverseDiffAdjoint", "checkpointed", "InterpolatingAdjoint"])
def test_records_noted_in_logs_equal_records_written_beside_the_step(sensitivity, monkeypatch):
    """A loop whose records are large notes its writes in small logs and flushes them between
    inner loops (integrate._Log, benchmarks/README.md section 6); solutions, step records and
    gradients are bit-identical to writing each record beside the step (the other layout)."""
    from pystiffsens import integrate
    from pystiffsens.sensitivity import ReverseDiffAdjoint

    base = pss.problems.get("robertson")
    # A user's rhs, so that no program comes from the disk cache; 100 saved times make ys large too.
    problem = pss.Problem(lambda t, y, p: base.rhs(t, y, p), base.y0, (0.0, 1e3), base.params,
                          saveat=np.geomspace(1e-3, 1e3, 100), loss=lambda ts, ys, p: jnp.sum(ys[:, 1] * ts))
    sens = ReverseDiffAdjoint(checkpoints=4) if sensitivity == "checkpointed" else sensitivity
    if sens is None:
        run = lambda: pss.solve(problem, "Rodas5P", rtol=1e-7, atol=1e-9)
    else:
        run = lambda: pss.gradient(problem, "Rodas5P", sens, rtol=1e-7, atol=1e-9)
    layouts = []
    real = integrate._log_rows
    monkeypatch.setattr(integrate, "_log_rows", lambda *a: layouts.append(real(*a)) or layouts[-1])
    logged = run()
    assert any(rows for rows, _ in layouts), layouts
    monkeypatch.setattr(integrate, "_log_rows", lambda *a: (0, ()))
    pss.backends.default().programs.clear()
    beside = run()
    assert logged.status == beside.status == pss.ReturnCode.Success
    assert logged.stats == beside.stats
    if sens is None:
        for name in ("ys", "step_ts", "step_ys"):
            np.testing.assert_array_equal(getattr(logged, name), getattr(beside, name))
    else:
        # The two layouts are two programs, which XLA may fuse differently: equal to rounding.
        np.testing.assert_allclose(list(logged.flat_grad().values()), list(beside.flat_grad().values()), rtol=1e-12)
        np.testing.assert_allclose(logged.loss, beside.loss, rtol=1e-14)


def test_while_loop_stacks_scalars_and_keeps_their_types():
    """lanes.while_loop (Newton's loop) carries a pytree's scalars as one array per dtype: the result,
    its dtypes, its vmap and its forward derivative are those of lax.while_loop."""
    from jax import lax

    from pystiffsens import lanes

    def body(c):
        x = c["x"] * c["rate"]
        return dict(k=c["k"] + 1, done=c["k"] + 1 >= c["n"], n=c["n"], rate=c["rate"], x=x,
                    norm=jnp.sum(x**2), v=c["v"] + x)

    def run(loop, rate):
        init = dict(k=jnp.asarray(0, jnp.int32), done=jnp.asarray(False), n=jnp.asarray(5), rate=rate,
                    x=jnp.asarray(1.5), norm=jnp.asarray(0.0), v=jnp.zeros(3))
        return loop(lambda c: ~c["done"], body, init)

    want, got = run(lax.while_loop, jnp.asarray(0.9)), run(lanes.while_loop, jnp.asarray(0.9))
    assert jax.tree_util.tree_map(lambda x: (x.dtype, x.shape), got) == jax.tree_util.tree_map(
        lambda x: (x.dtype, x.shape), want)
    jax.tree_util.tree_map(np.testing.assert_array_equal, got, want)
    rates = jnp.array([0.5, 0.9, 1.1])
    jax.tree_util.tree_map(np.testing.assert_array_equal, jax.vmap(lambda r: run(lanes.while_loop, r))(rates),
                           jax.vmap(lambda r: run(lax.while_loop, r))(rates))
    slope = jax.jvp(lambda r: run(lanes.while_loop, r)["norm"], (jnp.asarray(0.9),), (jnp.asarray(1.0),))[1]
    assert slope == jax.jvp(lambda r: run(lax.while_loop, r)["norm"], (jnp.asarray(0.9),), (jnp.asarray(1.0),))[1] != 0


def test_esdirk_newton_stops_at_sciml_kappa():
    """ESDIRK and BDF stop Newton at OrdinaryDiffEq's kappa = 1/100 (newton.kappa_tolerance), not at
    sqrt(rtol): KenCarp4 on ROBER at rtol 1e-8 takes 2363 RHS evaluations (3184 with sqrt(rtol))."""
    from pystiffsens.solvers import newton

    assert float(newton.kappa_tolerance(1e-8)) == newton.KAPPA == 0.01
    sol = pss.solve(pss.problems.get("robertson"), "KenCarp4", rtol=1e-8, atol=1e-10, save_steps=False)
    assert sol.status == pss.ReturnCode.Success
    assert sol.stats["n_f"] <= 2700, sol.stats


def _values_over(jaxpr, limit):
    """(primitive, shape) of every value in ``jaxpr`` and the jaxprs inside it larger than ``limit`` bytes."""
    return [(eqn.primitive.name, var.aval.shape) for eqn in equations(jaxpr) for var in eqn.outvars
            if np.prod(var.aval.shape) * var.aval.dtype.itemsize > limit]


@pytest.mark.parametrize("solver", ["Rodas5P", "Kvaerno5", "FBDF"])
def test_forward_mode_step_loop_holds_no_value_over_the_sequential_threshold(solver):
    """ROBER's forward-mode gradient (3 parameters) keeps every value of its step loop within
    XLA:CPU's sequential-execution threshold: stages and BDF differences travel as vectors, not
    stacked. On the stacked arrays (576 bytes) Rodas5P's compiled gradient took 3.9 ms instead of 1.7 ms
    (benchmarks/README.md, sections 1 and 6)."""
    from pystiffsens.integrate import SEQUENTIAL_BUFFER_BYTES

    problem = pss.problems.get("robertson")
    fn = pss.make_gradient_fn(problem, solver, "ForwardDiffSensitivity", rtol=1e-8, atol=1e-10)
    loops = [e for e in jax.make_jaxpr(fn)(problem.params).jaxpr.eqns if e.primitive.name == "while"]
    assert len(loops) == 1, "expected the integration loop at the top of the gradient program"
    body = loops[0].params["body_jaxpr"].jaxpr
    assert len(body.eqns) > 50, "the step was not found inside the loop body"
    assert _values_over(body, SEQUENTIAL_BUFFER_BYTES) == []


def test_tolerances_float64_cannot_meet_warn_and_meetable_ones_do_not():
    """CVODES and SciML warn about rtol below ~100 machine epsilons; so does pss (once per Options)."""
    with pytest.warns(RuntimeWarning, match=r"rtol=1e-20 is below 100 float64 machine epsilons .* Use rtol >= 1e-13"):
        result = pss.solve("dahlquist", "Rodas5P", rtol=1e-20, atol=1e-22, max_steps=50)
    assert result.status == pss.ReturnCode.MaxIters
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pss.solve("dahlquist", "Rodas5P", rtol=1e-13, atol=1e-15).success


def test_forward_mode_differentiates_iteration_matrices_through_products_and_reverse_mode_through_the_formed_jacobian(
    monkeypatch,
):
    """On a system above ``REVERSE_PRODUCTS_MAX_SIZE`` (POLLU, 20 states), every iteration matrix that
    ForwardDiffSensitivity traces carries its product rule and every one ReverseDiffAdjoint traces does not
    (which is cheaper depends on the mode: ``Jacobian.shifted``)."""
    from pystiffsens.solvers import partitioned

    traced = []
    lu_factor = partitioned.lu_factor
    monkeypatch.setattr(partitioned, "lu_factor",
                        lambda matrix, product=None, sparsity=None: traced.append(product is not None)
                        or lu_factor(matrix, product, sparsity))
    problem = pss.problems.get("pollution")
    assert problem.y0.shape[0] > partitioned.REVERSE_PRODUCTS_MAX_SIZE
    for sensitivity, by_products in [("ForwardDiffSensitivity", True), ("ReverseDiffAdjoint", False)]:
        gradient = pss.make_gradient_fn(problem, "Rodas5P", sensitivity, max_steps=100)
        traced.clear()  # what the memory plan traced (a step nobody differentiates) is not the program's
        jax.eval_shape(gradient, problem.params)
        assert traced and set(traced) == {by_products}, (sensitivity, traced)


def test_an_unknown_iteration_matrix_tangent_rule_is_refused_with_the_choices():
    from pystiffsens.solvers.partitioned import iteration_matrix_tangents

    with pytest.raises(ValueError, match=r"rule='jacobian'.*\('products', 'formed'\)"):
        with iteration_matrix_tangents("jacobian"):
            pass
