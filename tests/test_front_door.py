"""The front door: pss.solve as a differentiable JAX function, pytree parameters, saveat from t0, cached programs."""

import functools
import pathlib
import subprocess
import sys
import textwrap
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import FIXED_DT

import pystiffsens as pss
from pystiffsens import _params, memory

# The custom VJP of pss.solve is one rule for every solver; what differs between steppers is what
# is differentiated inside a step: Rosenbrock's linear solves, a multistep method's controls and
# history (FBDF), Newton's iteration (ImplicitEuler, fixed steps), complex LU (RadauIIA5) and the
# matrix exponential (LawsonEuler). Every sensitivity runs through pss.solve with a one-step and a
# multistep method (whose solver state is more than y); the other steppers with each kind of rule, a
# custom JVP (forward mode) and a custom VJP with a backward solve. Each case compiles a program of
# its own, and the two halves of every rule are the same functions pss.gradient calls, which
# tests/test_sensitivities.py runs with every stepper family and every sensitivity.
GRAD_THROUGH_SOLVE = [(solver, sensitivity) for solver in ["Rodas5P", "FBDF"] for sensitivity in pss.sensitivity.names()] + [
    (solver, sensitivity) for solver in ["ImplicitEuler", "RadauIIA5", "LawsonEuler"]
    for sensitivity in ["ForwardDiffSensitivity", "InterpolatingAdjoint"]]
# max_steps at the first automatic record length: one length per program, so each compiles once (the ladder
# of lengths is tested in test_grad_through_solve_uses_longer_records_when_needed).
OPTIONS = dict(rtol=1e-8, atol=1e-10, max_steps=memory.INITIAL_SAVED_STEPS)


def _options(solver):
    return {**OPTIONS, "dt": FIXED_DT.get(solver)}


def _flat(tree):
    return np.concatenate([np.ravel(tree[k]) for k in sorted(tree)])


# ---------------------------------------------------------------- jax.grad through pss.solve


@pytest.mark.parametrize("solver, sensitivity", GRAD_THROUGH_SOLVE)
def test_grad_through_solve_equals_gradient(solver, sensitivity):
    """jax.grad of the problem's own loss through pss.solve is pss.gradient, for every sensitivity."""
    problem = pss.problems.get("linear_modes", lam=2.0)
    options = _options(solver)

    def loss(params):
        sol = pss.solve(problem, solver, sensitivity=sensitivity, params=params, **options)
        return problem.loss_fn(sol.ts, sol.ys, params)

    value, grad = jax.jit(jax.value_and_grad(loss))(problem.params)
    reference = pss.gradient(problem, solver, sensitivity, **options)
    assert reference.success
    assert float(value) == pytest.approx(reference.loss, rel=1e-12)
    np.testing.assert_allclose(_flat(grad), _flat(reference.grad), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("sensitivity", ["ForwardDiffSensitivity", "ForwardSensitivity"])
def test_forward_mode_rules_support_jvp_and_jacfwd(sensitivity):
    problem = pss.problems.get("robertson", t_end=10.0)

    def ys(params, y0):
        return pss.solve(problem, "Rodas5P", sensitivity=sensitivity, params=params, y0=y0, **OPTIONS).ys[-1]

    jac_params = jax.jit(jax.jacfwd(ys))(problem.params, problem.y0)
    jac_reverse = jax.jit(jax.jacrev(ys))(problem.params, problem.y0)
    for name in problem.params:
        np.testing.assert_allclose(jac_params[name], jac_reverse[name], rtol=1e-10, atol=1e-20)
    tangent = {"k1": 1.0, "k2": 0.0, "k3": 0.0}
    _, along_k1 = jax.jit(lambda t: jax.jvp(lambda p: ys(p, problem.y0), (problem.params,), (t,)))(tangent)
    np.testing.assert_allclose(along_k1, jac_params["k1"], rtol=1e-10)
    # y0 tangents: the columns d y(T) / d y0, against central differences of the solve.
    jac_y0 = jax.jit(jax.jacfwd(ys, argnums=1))(problem.params, problem.y0)
    step = 1e-6
    column = (ys(problem.params, problem.y0 + jnp.array([step, 0, 0])) -
              ys(problem.params, problem.y0 - jnp.array([step, 0, 0]))) / (2 * step)
    np.testing.assert_allclose(jac_y0[:, 0], column, rtol=1e-5, atol=1e-9)


def _van_der_pol_y0_loss(y0, sensitivity):
    problem = pss.problems.get("van_der_pol", mu=10.0, t_end=1.0)
    sol = pss.solve(problem, "Rodas5P", sensitivity=sensitivity, y0=y0, saveat=[0.5, 1.0], **OPTIONS)
    return jnp.sum(sol.ys ** 2)


@functools.cache
def _van_der_pol_y0_reference():
    """Forward mode's y0 gradient, computed once for the adjoints below."""
    return jax.grad(_van_der_pol_y0_loss)(pss.problems.get("van_der_pol").y0, "ForwardDiffSensitivity")


@pytest.mark.parametrize("sensitivity", ["ForwardDiffSensitivity", "ForwardSensitivity"])
def test_forward_mode_rules_carry_a_tangent_only_for_the_perturbed_leaves(monkeypatch, sensitivity):
    """A parameter leaf that is a constant of the differentiated function gets no sensitivity column.

    jax.grad with respect to k1 alone gives the sensitivities one column (not three) and the
    derivative that differentiating every parameter gives; with the parameters held, y0 alone
    (no column of the parameters at all).
    """
    problem = pss.problems.get("robertson", t_end=10.0)
    algorithm = type(pss.sensitivity.get(sensitivity))
    columns = []
    original = algorithm.forward

    def recording(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        columns.append(out.residual[0].shape[-1])  # S_theta: K x n x columns
        return out

    monkeypatch.setattr(algorithm, "forward", recording)

    def final(params, y0=problem.y0):
        return pss.solve(problem, "Rodas5P", sensitivity=sensitivity, params=params, y0=y0, **OPTIONS).ys[-1, 1]

    along_k1 = jax.grad(lambda k1: final({**problem.params, "k1": k1}))(problem.params["k1"])
    along_y0 = jax.grad(lambda y0: final(problem.params, y0))(problem.y0)
    every, every_y0 = jax.grad(final, argnums=(0, 1))(problem.params, problem.y0)
    assert columns == [1, 0, 3]
    # ForwardSensitivity integrates the columns with the state as one system, whose steps round differently with
    # another number of columns: its derivatives then agree to the tolerances, forward mode's to rounding.
    tolerance = 1e-12 if sensitivity == "ForwardDiffSensitivity" else 1e-5
    assert abs(float(along_k1)) > 1e-6
    assert float(along_k1) == pytest.approx(float(every["k1"]), rel=tolerance, abs=0)
    np.testing.assert_allclose(along_y0, every_y0, rtol=tolerance, atol=0)


# The y0 cotangent of a continuous adjoint is lambda(t0): GaussAdjoint's is InterpolatingAdjoint's.
@pytest.mark.parametrize("sensitivity", ["ReverseDiffAdjoint", "InterpolatingAdjoint"])
def test_initial_state_cotangents_match_forward_mode(sensitivity):
    y0 = pss.problems.get("van_der_pol").y0
    tolerance = 1e-10 if sensitivity == "ReverseDiffAdjoint" else 1e-5  # continuous adjoints: O(tol) apart
    np.testing.assert_allclose(jax.grad(_van_der_pol_y0_loss)(y0, sensitivity), _van_der_pol_y0_reference(),
                               rtol=tolerance)


def test_adjoints_refuse_jvp_and_time_derivatives_clearly():
    problem = pss.problems.get("dahlquist")
    solve = lambda p: pss.solve(problem, "Rodas5P", sensitivity="InterpolatingAdjoint", params=p).ys
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jvp(solve, (problem.params,), ({"lam": 1.0},))
    with pytest.raises(ValueError, match="differentiable in params and y0 only; .*saveat"):
        jax.grad(lambda t: pss.solve(problem, "Rodas5P", sensitivity="forward", saveat=t[None]).ys.sum())(0.5)
    with pytest.raises(ValueError, match="differentiable in params and y0 only; .*saveat"):
        jax.grad(lambda t: pss.solve(problem, "Rodas5P", sensitivity="adjoint", saveat=t[None]).ys.sum())(0.5)


def test_jit_and_vmap_pass_through_solve_and_match_single_calls():
    problem = pss.problems.get("robertson", t_end=10.0)
    k2 = jnp.array([3e5, 3e7, 3e9])
    batched = jax.jit(jax.vmap(lambda k: pss.solve(problem, "Rodas5P", params={**problem.params, "k2": k},
                                                       **OPTIONS)))(k2)
    assert isinstance(batched, pss.Solution) and batched.ys.shape == (3, 1, 3)
    for i, k in enumerate(k2):
        single = pss.solve(problem, "Rodas5P", params={**problem.params, "k2": k}, **OPTIONS)
        np.testing.assert_allclose(batched.ys[i], single.ys, rtol=1e-12)
        assert int(batched.status[i]) == single.status and int(batched.stats["n_steps"][i]) == single.stats["n_steps"]
    grads = jax.vmap(jax.grad(lambda k: pss.solve(problem, "Rodas5P", params={**problem.params, "k2": k},
                                                   sensitivity="ReverseDiffAdjoint", **OPTIONS).ys[-1, 1]))(k2)
    assert grads.shape == (3,) and np.all(np.isfinite(grads))


def test_a_failed_solve_gives_nan_states_status_and_nan_derivatives():
    problem = pss.problems.get("robertson")
    for sensitivity in ("ForwardDiffSensitivity", "ReverseDiffAdjoint"):
        def loss(params):
            sol = pss.solve(problem, "Rodas5P", params=params, sensitivity=sensitivity, max_steps=20)
            return sol.ys[-1, 0], sol.status

        (value, status), grad = jax.value_and_grad(loss, has_aux=True)(problem.params)
        assert int(status) == pss.ReturnCode.MaxIters and np.isnan(value)
        assert all(np.isnan(g) for g in jax.tree_util.tree_leaves(grad))


def test_saveat_may_start_at_t0():
    problem = pss.problems.get("dahlquist", lam=3.0)
    ts = jnp.linspace(0.0, 1.0, 5)
    sol = pss.solve(problem, "Rodas5P", saveat=ts, rtol=1e-10, atol=1e-12)
    assert sol.success
    np.testing.assert_allclose(sol.ys[:, 0], np.exp(-3.0 * np.asarray(ts)), rtol=1e-8)
    assert sol.ys[0, 0] == 1.0
    # Its derivative with respect to y0 at t0 is 1, and every sensitivity agrees.
    for sensitivity in ("ForwardDiffSensitivity", "ReverseDiffAdjoint", "InterpolatingAdjoint"):
        grad = jax.jit(jax.grad(lambda y0: pss.solve(problem, "Rodas5P", y0=y0, saveat=ts, sensitivity=sensitivity,
                                                      rtol=1e-10, atol=1e-12, max_steps=1024).ys[:, 0].sum()))(problem.y0)
        np.testing.assert_allclose(grad, [np.exp(-3.0 * np.asarray(ts)).sum()], rtol=1e-6)
    only_t0 = pss.solve(problem, "Rodas5P", saveat=[0.0])
    assert only_t0.success and only_t0.ys[0, 0] == 1.0 and only_t0.stats["n_steps"] == 0
    result = pss.gradient(problem.replace(saveat=ts), "Rodas5P", "InterpolatingAdjoint", rtol=1e-10, atol=1e-12)
    exact = pss.gradient(problem.replace(saveat=ts), "Rodas5P", "ForwardDiffSensitivity", rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(result.grad["lam"], exact.grad["lam"], rtol=1e-6)


# ---------------------------------------------------------------- parameters as any pytree


def _nested_problem():
    """Two decays with their rates in a nested dict and a list."""
    def rhs(t, y, p):
        return -jnp.stack([p["rates"]["fast"][0], p["rates"]["slow"]]) * y * p["scale"][1]

    params = {"rates": {"fast": jnp.array([30.0]), "slow": 1.0}, "scale": [2.0, 1.0]}
    return pss.Problem(rhs, y0=[1.0, 1.0], tspan=(0.0, 1.0), params=params, name="nested")


def test_nested_parameters_and_their_names():
    problem = _nested_problem()
    result = pss.gradient(problem, "Rodas5P", "ReverseDiffAdjoint", rtol=1e-10, atol=1e-12)
    assert set(result.flat_grad()) == {"rates.fast[0]", "rates.slow", "scale[0]", "scale[1]"}
    assert result.grad["scale"][0] == 0.0  # the loss does not read it
    expected = -np.exp(-1.0)  # d/d slow of exp(-slow), the slow mode's share of sum(y(1))
    assert float(result.grad["rates"]["slow"]) == pytest.approx(expected, rel=1e-7)
    through_solve = jax.grad(lambda p: pss.solve(problem, "Rodas5P", params=p, rtol=1e-10, atol=1e-12,
                                                 max_steps=1024).ys.sum())(problem.params)
    np.testing.assert_allclose(through_solve["rates"]["fast"], result.grad["rates"]["fast"], rtol=1e-9)


def test_equinox_neural_ode_trains_with_optax_through_solve(monkeypatch):
    """A stiff linear part plus an equinox MLP, trained for a few Adam steps through pss.solve
    (with the training loop of examples/neural_ode_equinox.py)."""
    import equinox as eqx  # the test extra installs it

    monkeypatch.syspath_prepend(str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
    from neural_ode_equinox import fit

    class Field(eqx.Module):
        net: eqx.nn.MLP
        log_rate: jax.Array

        def __call__(self, y):
            return -jnp.exp(self.log_rate) * y + self.net(y)

    model = Field(eqx.nn.MLP(2, 2, 8, 1, activation=jnp.tanh, key=jax.random.PRNGKey(0)), jnp.array([0.0, 3.0]))
    ts = jnp.linspace(0.0, 1.0, 6)
    target = jnp.stack([jnp.exp(-ts), 0.5 * jnp.exp(-ts)], axis=1)
    problem = pss.Problem(lambda t, y, m: m(y), y0=[1.0, 0.5], tspan=(0.0, 1.0), params=model, saveat=ts)
    assert problem.parameters()[1].size == 2 + 2 * 8 + 8 + 8 * 2 + 2  # every float array, not the activation

    def loss(m):
        sol = pss.solve(problem, "Rodas5P", params=m, sensitivity="adjoint", rtol=1e-6, atol=1e-8, max_steps=1000)
        return jnp.mean((sol.ys - target) ** 2)

    trained, losses = fit(loss, model, epochs=5, learning_rate=1e-2)
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    # The same gradient as pss.gradient of that loss.
    grad = eqx.filter_jit(eqx.filter_grad(loss))(trained)
    reference = pss.gradient(problem.replace(loss=lambda ts, ys, m: jnp.mean((ys - target) ** 2)), "Rodas5P",
                             "adjoint", params=trained, rtol=1e-6, atol=1e-8, max_steps=1000)
    np.testing.assert_allclose(grad.log_rate, reference.grad.log_rate, rtol=1e-9)


def test_params_of_another_structure_and_bad_leaves_are_refused():
    problem = pss.problems.get("dahlquist")
    with pytest.raises(ValueError, match=r"params has extra, which the problem has not \(against problem "
                                         r"'dahlquist'\); give params of the problem's structure"):
        pss.solve(problem, "Rodas5P", params={"lam": 1.0, "extra": 2.0})
    decay = lambda t, y, p: -y  # noqa: E731  (reads no parameter)
    many = pss.Problem(decay, problem.y0, problem.tspan, {f"k{i}": 1.0 for i in range(400)})
    with pytest.raises(ValueError, match=r"params lacks k0, k1, k10, k100, k101 and 395 more; has lam, which the problem has not") as error:
        pss.solve(many, "Rodas5P", params={"lam": 1.0})
    assert len(str(error.value)) < 300  # names the difference, not the whole pytree
    with pytest.raises(ValueError, match=r"params has k1 \(3,\) instead of \(2,\)"):
        pss.solve(pss.Problem(decay, problem.y0, problem.tspan, {"k1": np.ones(2)}), "Rodas5P",
                  params={"k1": np.ones(3)})
    with pytest.raises(ValueError, match=r"params\['lam'\] is complex"):
        pss.solve(problem, "Rodas5P", params={"lam": 1.0 + 2j})
    with pytest.raises(ValueError, match=r"params\['lam'\]=.*non-finite"):
        pss.solve(problem, "Rodas5P", params={"lam": np.nan})
    with pytest.raises(ValueError, match="cannot be flattened as a pytree .*keys of one type"):
        pss.Problem(lambda t, y, p: -p["a"] * y, [1.0], (0.0, 1.0), {"a": 1.0, 2: 3.0})


def test_given_parameters_reach_the_program_without_a_jax_conversion_per_leaf(monkeypatch):
    """Float64 JAX arrays pass as they are, NumPy arrays and Python numbers stay NumPy arrays for the compiled
    program's call: ``jnp.asarray`` of each leaf made ``pss.solve`` 1.8x its program on a 10-parameter SBML model."""
    problem = pss.problems.get("robertson", t_end=10.0)
    as_jax = {"k1": jnp.asarray(0.05), "k2": jnp.asarray(2e7), "k3": jnp.asarray(1e4)}
    as_numpy = {"k1": np.array(0.05), "k2": np.float64(2e7), "k3": 1e4}
    leaves, _ = _params.split(as_jax, host=True)
    assert all(leaf is as_jax[name] for leaf, name in zip(leaves, ("k1", "k2", "k3")))
    leaves, _ = _params.split(as_numpy, host=True)
    assert all(type(leaf) is np.ndarray and leaf.dtype == np.float64 for leaf in leaves)
    expected = [pss.solve(problem, "Rodas5P", params=as_jax).ys, pss.gradient(problem, "Rodas5P", params=as_jax).grad]
    conversions = []
    asarray = jnp.asarray
    monkeypatch.setattr(jnp, "asarray", lambda *args, **kwargs: conversions.append(args) or asarray(*args, **kwargs))
    for params in (as_jax, as_numpy):
        assert np.array_equal(pss.solve(problem, "Rodas5P", params=params).ys, expected[0])
        grad = pss.gradient(problem, "Rodas5P", params=params).grad
        assert all(float(grad[name]) == float(expected[1][name]) for name in grad)
    assert conversions == []


def test_float32_inputs_are_promoted_with_one_warning():
    code = """
        import warnings, numpy as np, pystiffsens as pss
        problem = pss.problems.get("dahlquist")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            a = pss.solve(problem, "Rodas5P", params={"lam": np.float32(10.0)}, save_steps=False)
            b = pss.solve(problem, "Rodas5P", y0=np.ones(1, np.float32), save_steps=False)
        print(len([w for w in caught if "float32" in str(w.message)]), a.ys.dtype, b.ys.dtype)
        """
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "float64", "float64"]


def test_global_float64_can_be_left_alone():
    code = """
        import jax, jax.numpy as jnp, pystiffsens as pss
        print(jnp.ones(1).dtype)
        sol = pss.solve("dahlquist", "Rodas5P", rtol=1e-10, atol=1e-12)
        print(sol.ys.dtype, abs(sol.ys[-1, 0] - 4.5399929762484854e-05) < 1e-12)
        print(pss.gradient("dahlquist", "Rodas5P").grad["lam"].dtype)
        try:
            jax.grad(lambda lam: pss.solve("dahlquist", params={"lam": lam}).ys[-1, 0])(10.0)
        except RuntimeError as error:
            print("refused" if "enable_x64" in str(error) else error)
        with jax.enable_x64(True):
            print(jax.grad(lambda lam: pss.solve("dahlquist", params={"lam": lam}).ys[-1, 0])(10.0).dtype)
        """
    env = {"PYSTIFFSENS_NO_GLOBAL_X64": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True,
                         env=env)
    assert out.stdout.split() == ["float32", "float64", "True", "float64", "refused", "float64"]


@pytest.mark.parametrize("keep", [False, True])
def test_cpu_dispatch_is_synchronous_unless_kept(keep):
    """``import pystiffsens`` turns off JAX's asynchronous dispatch on CPU (pystiffsens._cpu_dispatch);
    PYSTIFFSENS_CPU_ASYNC_DISPATCH=1 keeps JAX's default."""
    code = """
        import jax, pystiffsens as pss
        print(jax.config.values["jax_cpu_enable_async_dispatch"], pss.solve("dahlquist", "Rodas5P").status.name)
        """
    env = {"PATH": "/usr/bin:/bin", **({"PYSTIFFSENS_CPU_ASYNC_DISPATCH": "1"} if keep else {})}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True,
                         env=env)
    assert out.stdout.split() == [str(keep), "Success"]


# ---------------------------------------------------------------- cached plans and programs


def test_a_second_call_with_new_values_traces_nothing():
    calls = []

    def rhs(t, y, p):
        calls.append(1)  # Python runs this only while JAX traces
        return -p["lam"] * y + p["c"]

    problem = pss.Problem(rhs, y0=[1.0], tspan=(0.0, 1.0), params={"lam": 5.0, "c": 1.0})
    first = [pss.solve(problem, "Rodas5P"), pss.gradient(problem, "Rodas5P", "ReverseDiffAdjoint"),
             pss.gradient(problem, "KenCarp4", "forward")]
    traced = len(calls)
    again = [pss.solve(problem, "Rodas5P", params={"lam": 7.0, "c": 2.0}, y0=[3.0], saveat=[0.5], rtol=1e-7),
             pss.gradient(problem.replace(params={"lam": 9.0, "c": 0.5}), "Rodas5P", "ReverseDiffAdjoint"),
             pss.gradient(problem, "KenCarp4", "forward", atol=1e-9)]
    assert len(calls) == traced
    assert all(result.success for result in first + again)
    assert again[0].ys[0, 0] == pytest.approx(2.0 / 7.0 + (3.0 - 2.0 / 7.0) * np.exp(-3.5), rel=1e-5)


def _own_problem(lam=5.0):
    """A problem with an rhs of its own: its plans and programs are made here, never reused or loaded from disk."""
    return pss.Problem(lambda t, y, p: -p["lam"] * y, y0=[1.0, 2.0], tspan=(0.0, 1.0), params={"lam": lam})


def test_a_repeated_call_reuses_its_plan_and_still_checks_the_memory_limit(monkeypatch):
    backend = pss.backends.default()
    problem = _own_problem()
    first = [pss.solve(problem, "Rodas5P"), pss.gradient(problem, "Rodas5P", "ReverseDiffAdjoint")]
    made = []
    with monkeypatch.context() as patched:
        patched.setattr(backend.programs, "get", lambda *args, **kwargs: made.append(args))
        again = [pss.solve(problem, "Rodas5P", params={"lam": 7.0}),
                 pss.gradient(problem, "Rodas5P", "ReverseDiffAdjoint", params={"lam": 7.0})]
    assert made == []  # nothing resolved or looked up again
    assert again[0].ys[-1, 0] == pytest.approx(np.exp(-7.0), rel=1e-5) and first[0].ys[-1, 0] != again[0].ys[-1, 0]
    assert again[1].grad["lam"] == pytest.approx(-3.0 * np.exp(-7.0), rel=1e-5)  # d/dlam of e^-lam + 2 e^-lam
    monkeypatch.setenv(memory.ENV_VAR, "1kB")  # the limit in force is compared on every call
    with pytest.raises(ValueError, match=r"'ReverseDiffAdjoint' would need an estimated .* limit of 1 kB"):
        pss.gradient(problem, "Rodas5P", "ReverseDiffAdjoint")
    with pytest.raises(ValueError, match=r"save_steps=True needs a step buffer"):
        pss.solve(problem, "Rodas5P")
    assert pss.solve(problem, "Rodas5P", save_steps=False).success  # no records: nothing to check


def test_a_repeated_call_skips_resolving_its_arguments_and_sees_what_changed(monkeypatch):
    backend = pss.backends.default()
    prepared = []
    for name in ("prepare_solve", "prepare_gradient"):
        original = getattr(type(backend), name)
        monkeypatch.setattr(type(backend), name, lambda self, *a, _f=original, _n=name, **k: (
            prepared.append(_n), _f(self, *a, **k))[1])
    problem = _own_problem()
    for _ in range(3):
        pss.solve(problem, "Rodas5P", params={"lam": 6.0})
        pss.gradient(problem, "Rodas5P", "ReverseDiffAdjoint")
    assert prepared == ["prepare_solve", "prepare_gradient"]  # resolved once, then reused
    pss.gradient(problem, "Rodas5P", "ReverseDiffAdjoint", rtol=1e-7)  # another argument
    pss.gradient(_own_problem(), "Rodas5P", "ReverseDiffAdjoint")  # another problem object
    monkeypatch.setenv(memory.ENV_VAR, "20GB")  # the automatic choice reads the memory limit
    pss.gradient(problem, "Rodas5P", "ReverseDiffAdjoint")
    assert prepared[2:] == ["prepare_gradient"] * 3
    pss.solve(problem, "Rodas5P", saveat=[0.5, 1.0])  # saveat makes a new problem: resolved every call
    pss.solve(problem, "Rodas5P", saveat=[0.5, 1.0])
    assert prepared[5:] == ["prepare_solve"] * 2

    @jax.jit
    def traced(lam):  # a problem holding tracers is never kept
        return pss.solve(problem.replace(params={"lam": lam}), "Rodas5P").ys

    kept = dict(pss.api._PREPARED)
    assert float(traced(7.0)[-1, 0]) == pytest.approx(np.exp(-7.0), rel=1e-5)
    assert pss.api._PREPARED == kept


def test_a_prepared_call_compiles_again_after_the_programs_are_cleared(monkeypatch):
    backend = pss.backends.default()
    problem = _own_problem()
    first = pss.gradient(problem, "Rodas5P", "InterpolatingAdjoint")
    backend.programs.clear()
    made = []
    original = backend.programs.get
    monkeypatch.setattr(backend.programs, "get", lambda *a, **k: (made.append(a[0]), original(*a, **k))[1])
    again = pss.gradient(problem, "Rodas5P", "InterpolatingAdjoint")
    assert len(made) == 1 and again.grad["lam"] == first.grad["lam"]


def test_a_repeated_call_starts_at_the_record_length_the_last_one_needed(monkeypatch):
    monkeypatch.setattr(memory, "INITIAL_SAVED_STEPS", 16)
    rober = pss.problems.get("robertson", t_end=10.0)
    problem = rober.replace(rhs=lambda t, y, p: rober.rhs(t, y, p))  # a function of its own: a plan of its own
    kwargs = dict(rtol=1e-8, atol=1e-10)
    first = pss.gradient(problem, "Rodas5P", "ReverseDiffAdjoint", **kwargs)
    assert first.success and first.stats["n_steps"] > 16
    plan = next(plan for plan in pss.backends.default().programs._plans.values()
                if plan.lengths[0] == 16 and plan.start > 0)
    needed = plan.lengths[plan.start]
    assert needed > first.stats["n_steps"] and plan.lengths[plan.start - 1] <= first.stats["n_steps"]
    refused = plan.programs[0]._replace(compiled=lambda *args: pytest.fail("ran the short records again"))
    plan.programs[0] = refused
    again = pss.gradient(problem, "Rodas5P", "ReverseDiffAdjoint", **kwargs)
    np.testing.assert_array_equal(_flat(again.grad), _flat(first.grad))


def test_a_repeated_call_works_out_its_record_lengths_once(monkeypatch):
    """A prepared call without new params or y0 keeps the record lengths of its first call; a changed memory
    setting, or new params, gives lengths worked out again."""
    problem = pss.problems.get("linear_modes", lam=2.0)
    backend = pss.backends.default()
    worked_out = []
    original = backend.record_lengths
    monkeypatch.setattr(backend, "record_lengths", lambda *a, **k: worked_out.append(original(*a, **k)) or worked_out[-1])
    first = [pss.solve(problem, "Rodas5P", **OPTIONS).ys for _ in range(3)]
    assert len(worked_out) == 1 and worked_out[0][0] == memory.INITIAL_SAVED_STEPS
    monkeypatch.setattr(memory, "INITIAL_SAVED_STEPS", 64)
    np.testing.assert_array_equal(pss.solve(problem, "Rodas5P", **OPTIONS).ys, first[0])
    assert len(worked_out) == 2 and worked_out[1][0] == 64
    pss.solve(problem, "Rodas5P", params=problem.params, **OPTIONS)
    pss.gradient(problem, "Rodas5P", "InterpolatingAdjoint", **OPTIONS)
    pss.gradient(problem, "Rodas5P", "InterpolatingAdjoint", **OPTIONS)
    assert len(worked_out) == 4


def _long_branch(name, first, max_steps):
    """The sensitivity the long branch of a program with these record lengths runs, and its record length:
    checkpoints every ``first`` steps or fewer (sensitivity.rules.branches)."""
    short, cap = memory.program_lengths(first, max_steps)
    return pss.sensitivity.get(name).checkpointed(-(-cap // short)), cap


def _steps(problem, **options):
    """Accepted steps of a Rodas5P solve (a solve program compiles faster than a gradient's)."""
    return pss.solve(problem, "Rodas5P", save_steps=False, **options).stats["n_steps"]


def test_make_gradient_fn_records_follow_the_solve(monkeypatch):
    """With max_saved_steps=None the program holds two record lengths and uses the longer only when needed; the
    longer checkpoints, so that the program's memory does not grow with max_steps. In a batch, lanes that need
    different numbers of checkpoint segments each get their own gradient (against per-step records:
    test_scaling.test_checkpointed_continuous_adjoints)."""
    problem = pss.problems.get("robertson", t_end=10.0)
    options = dict(rtol=1e-7, atol=1e-10, max_steps=50_000)
    first = _steps(problem, **options) // 4
    monkeypatch.setattr(memory, "INITIAL_SAVED_STEPS", first)
    fn = pss.make_gradient_fn(problem, "Rodas5P", "InterpolatingAdjoint", **options)
    program = pss.jit(jax.vmap(lambda k1: fn({**problem.params, "k1": k1})))
    k1 = jnp.asarray([problem.params["k1"], 4 * problem.params["k1"]])
    compiled = program.lower(k1).compile()
    out = compiled(k1)
    assert np.all(np.asarray(out["status"]) == pss.ReturnCode.Success) and not np.any(out["buffer_full"])
    algorithm, cap = _long_branch("InterpolatingAdjoint", first, options["max_steps"])
    every = -(-cap // algorithm.checkpoints)
    assert len({-(-int(n) // every) for n in np.asarray(out["stats"]["n_steps"])}) == 2  # segments per lane
    for lane, value in enumerate(np.asarray(k1)):
        params = {**problem.params, "k1": value}
        reference = pss.gradient(problem, "Rodas5P", algorithm, params=params, max_saved_steps=cap, **options)
        np.testing.assert_allclose(_flat({k: v[lane] for k, v in out["grad"].items()}), _flat(reference.grad),
                                   rtol=1e-10)
    dense_records = cap * fn.shapes.dense * 2  # two lanes of max_steps records, as the long branch held before
    assert compiled.memory_analysis().temp_size_in_bytes < dense_records / 20


def test_grad_through_solve_uses_longer_records_when_needed(monkeypatch):
    """Under jax.grad, pss.solve's backward rule holds the record lengths as lax.cond branches; the longer checkpoints."""
    problem = pss.problems.get("robertson", t_end=10.0)
    options = dict(rtol=1e-7, atol=1e-10, max_steps=50_000)
    first = _steps(problem, **options) // 4
    monkeypatch.setattr(memory, "INITIAL_SAVED_STEPS", first)
    algorithm, cap = _long_branch("GaussAdjoint", first, options["max_steps"])
    reference = pss.gradient(problem, "Rodas5P", algorithm, max_saved_steps=cap, **options)

    def loss(params):
        sol = pss.solve(problem, "Rodas5P", sensitivity="GaussAdjoint", params=params, **options)
        return problem.loss_fn(sol.ts, sol.ys, params)

    jaxpr = jax.make_jaxpr(jax.grad(loss))(problem.params)
    assert "cond" in str(jaxpr)
    np.testing.assert_allclose(_flat(jax.jit(jax.grad(loss))(problem.params)), _flat(reference.grad), rtol=1e-10)
    exact = pss.gradient(problem, "Rodas5P", "ForwardDiffSensitivity", **options)  # the checkpointed Gauss quadrature
    np.testing.assert_allclose(_flat(reference.grad), _flat(exact.grad), rtol=1e-5)


@pytest.mark.parametrize("first, max_steps", [(1024, 1000), (1024, 10**5), (300, 5000), (1, 1), (5000, 5000),
                                              (1024, 1025), (2000, 1000)])
def test_record_lengths_are_aligned_and_reach_max_steps(first, max_steps):
    for lengths in (memory.saved_step_lengths(first, max_steps), memory.program_lengths(first, max_steps)):
        assert all(n % memory.RECORD_ALIGNMENT == 0 for n in lengths)
        assert list(lengths) == sorted(set(lengths)) and lengths[0] >= min(first, max_steps)
        assert max_steps <= lengths[-1] < max_steps + memory.RECORD_ALIGNMENT


def test_records_longer_than_max_steps_stop_the_solve_with_maxiters():
    """An aligned record length above max_steps never fills: the step budget ends the solve first."""
    problem = pss.problems.get("robertson", t_end=1e5)
    fn = pss.make_gradient_fn(problem, "Rodas5P", "InterpolatingAdjoint", rtol=1e-8, atol=1e-10, max_steps=100)
    out = pss.jit(fn)(problem.params)
    assert int(out["status"]) == pss.ReturnCode.MaxIters and not bool(out["buffer_full"])
    assert np.all(np.isnan(_flat(out["grad"])))
    result = pss.gradient(problem, "Rodas5P", "InterpolatingAdjoint", rtol=1e-8, atol=1e-10, max_steps=100)
    assert result.status == pss.ReturnCode.MaxIters and np.all(np.isnan(_flat(result.grad)))


# ---------------------------------------------------------------- one catalog: a method of your own


def _sdirk2():
    """Alexander's two-stage L-stable SDIRK of order 2 (SIAM J. Numer. Anal. 14, 1977), fixed steps."""
    gamma = 1.0 - 1.0 / np.sqrt(2.0)
    return pss.solvers.ButcherTableau(
        A=[[gamma, 0.0], [1.0 - gamma, gamma]], b=[1.0 - gamma, gamma], c=[gamma, 1.0], b_error=[0.0, 0.0],
        dense=[[1.0 - gamma, 0.0], [gamma, 0.0]], order=2, embedded_order=0, name="SDIRK2test",
        reference="R. Alexander, SIAM J. Numer. Anal. 14 (1977) 1006-1021.",
    )


@pytest.fixture
def sdirk2():
    """The method, registered under its name for the test."""
    method = pss.solvers.register(pss.solvers.ESDIRK(_sdirk2()))
    yield method
    pss.solvers.CATALOG.unregister(method.name)


def test_a_method_defined_here_works_through_solve_gradient_sweep_and_theory(sdirk2):
    method = sdirk2
    problem = pss.problems.get("dahlquist", lam=2.0)
    sol = pss.solve(problem, method, dt=0.01, rtol=1e-10, atol=1e-12)
    assert sol.solver == "SDIRK2test" and sol.ys[-1, 0] == pytest.approx(np.exp(-2.0), rel=1e-4)
    for sensitivity in ("ForwardDiffSensitivity", "ReverseDiffAdjoint"):
        result = pss.gradient(problem, method, sensitivity, dt=0.01)
        assert result.grad["lam"] == pytest.approx(-np.exp(-2.0), rel=1e-3)
    assert pss.theory.decay_exponent(method) == -2.0
    assert pss.theory.stability_function(method).limit_at_infinity == pytest.approx(0.0, abs=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # one step of a stiff problem is far from exact
        frame = pss.sweep("dahlquist", [1e1, 1e2, 1e3], [method, "ImplicitEuler"], "forward", dt=1.0, progress=False)
    assert list(frame["solver"].unique()) == ["SDIRK2test", "ImplicitEuler"]
    fits = pss.fit_decay(frame).set_index("solver")
    assert fits.loc["SDIRK2test", "theory_exponent"] == -2.0 == fits.loc["ImplicitEuler", "theory_exponent"]
    assert fits.loc["SDIRK2test", "theory_n_step_exponent"] == pss.theory.n_step_decay_exponent(method, 1)
    # Registered, it is found by any spelling of its name, like a built-in, and the name is taken.
    assert pss.solvers.get("sdirk2TEST") is method and "SDIRK2test" in pss.solvers.names()
    assert pss.solve(problem, "sdirk2test", dt=0.01).ys[-1, 0] == sol.ys[-1, 0]
    with pytest.raises(ValueError, match="already registered"):
        pss.solvers.register(pss.solvers.ESDIRK(_sdirk2()))


def test_every_fact_is_carried_by_the_method():
    for solver in pss.solvers.CATALOG:
        assert solver.name in pss.solvers.names() and isinstance(solver.adaptive, bool)
        # An OrdinaryDiffEq counterpart or None (tests/test_julia_backend.py: solvers.jl says why)
        assert solver.julia is None or isinstance(solver.julia, str)
    assert [s.name for s in pss.solvers.CATALOG if s.julia is None] == []
    assert [s.name for s in pss.solvers.CATALOG if s.julia_gpu] == ["Rodas4", "Rodas5P"]
    assert pss.solvers.fixed_step_names() == ["ImplicitEuler", "Trapezoid", "BDF2", "LawsonEuler", "ETDRK4"]
    shapes = memory.Shapes(n=3, P=3, n_stops=1, state=24, dense=120, saved_steps=100)
    for algorithm in pss.sensitivity.CATALOG:
        assert memory.total(algorithm, shapes) > 0  # each estimates its own memory
    with pytest.raises(ValueError, match="variable-order BDF"):
        pss.theory.decay_exponent("FBDF")


def test_no_import_cycles():
    """No module of the package imports, directly or through others, a module that imports it back."""
    import ast
    import pathlib

    root = pathlib.Path(pss.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = (path, parts[-1] == "__init__")
    graph = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rsplit(".", 1)[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package
                for _ in range(node.level - 1):
                    base = base.rsplit(".", 1)[0]
                source = (base + ("." + node.module if node.module else "")) if node.level else (node.module or "")
                for alias in node.names:
                    for candidate in (f"{source}.{alias.name}", source):
                        if candidate in modules:
                            targets.add(candidate)
                            break
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names if alias.name in modules)
        # A module importing its own package's __init__ (or a parent's) is the package being
        # initialised, not a cycle of modules.
        graph[name] = {t for t in targets if not name.startswith(t + ".")}

    def cycle_from(start):
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    return path
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
        return None

    cycles = [cycle_from(name) for name in graph]
    assert not any(cycles), next(c for c in cycles if c)
