"""Engine scaling: batched lanes equal single calls, planned memory, checkpoints, the automatic sensitivity, step recording.

No timings here (they are in benchmarks/): these tests check that the scaling machinery
computes the same numbers and refuses what would not fit.
"""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import equations

import pystiffsens as pss
from pystiffsens import memory, programs
from pystiffsens.backends.native import inputs
from pystiffsens.integrate import integrate
from pystiffsens.sensitivity import ReverseDiffAdjoint

LAMBDAS = jnp.array([1.0, 20.0, 400.0])  # lanes with different numbers of steps


def _flat(tree):
    return np.concatenate([np.ravel(tree[k]) for k in sorted(tree)])


def _batch(problem, grid, solver, sensitivity, **options):
    """The JAX backend's batch of gradients over ``grid`` (what a sweep runs), computed."""
    backend, solver = pss.backends.get("jax"), pss.solvers.get(solver)
    choice = pss.backends.Choice(pss.sensitivity.get(sensitivity))
    return backend.gradient_batch(problem, grid, solver, choice, pss.Options(**options).for_method(solver))()


def _shapes(problem, solver, saved_steps):
    """The memory-relevant sizes of ``problem`` with ``solver`` and records of ``saved_steps``."""
    inp = inputs(problem)
    spec = programs.Spec(problem.rhs, inp.structure, pss.solvers.get(solver))
    return pss.backends.get("jax").programs.shapes(spec, inp, saved_steps)


def _batched_and_single(problem, solver, algorithm, values, **kwargs):
    fn = pss.make_gradient_fn(problem, solver, algorithm, **kwargs)
    batched = pss.jit(jax.vmap(lambda s: fn(problem.set_stiffness(problem.params, s))))(values)
    single = pss.jit(fn)
    singles = [single(problem.set_stiffness(problem.params, s)) for s in values]
    return batched, singles


@pytest.mark.parametrize(
    "solver, algorithm",
    [
        ("Rodas5P", name)
        for name in pss.sensitivity.names()
        # ForwardSensitivity: a forward loop over an augmented state, as ForwardDiffSensitivity's;
        # BacksolveAdjoint: a backward loop as InterpolatingAdjoint's, with the state in it.
        if name not in ("ForwardSensitivity", "BacksolveAdjoint")
    ]
    + [("FBDF", "ReverseDiffAdjoint"), ("ImplicitEuler", "InterpolatingAdjoint")],
)
def test_batched_lanes_equal_single_calls(solver, algorithm):
    """Every lane of a vmapped batch (each taking its own number of steps) equals its single call to 1e-10."""
    problem = pss.problems.get("linear_modes", lam=2.0)
    dt = 1e-2 if solver == "ImplicitEuler" else None
    # max_steps at the first automatic record length: one length per program, half the code to compile
    # (batches over the ladder of lengths are in test_batch_reruns_the_lanes_whose_buffers_filled and
    # tests/test_front_door.py).
    batched, singles = _batched_and_single(problem, solver, algorithm, LAMBDAS, rtol=1e-8, atol=1e-10, dt=dt,
                                           max_steps=memory.INITIAL_SAVED_STEPS)
    steps = [int(s["stats"]["n_steps"]) for s in singles]
    if dt is None:
        assert len(set(steps)) > 1, steps  # the lanes really differ
    assert int(singles[0]["status"]) == pss.ReturnCode.Success
    for i, single in enumerate(singles):
        assert int(batched["status"][i]) == int(single["status"])
        assert int(batched["stats"]["n_steps"][i]) == steps[i]
        lane = {k: np.asarray(v[i]) for k, v in batched["grad"].items()}
        np.testing.assert_allclose(_flat(lane), _flat(single["grad"]), rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(float(batched["loss"][i]), float(single["loss"]), rtol=1e-12)


def test_vmapped_loop_does_not_select_its_step_buffers():
    """Under vmap the loop predicate is unbatched, so no per-iteration select touches a max_saved_steps buffer."""
    problem = pss.problems.get("linear_modes")
    solver = pss.solvers.get("Rodas5P")

    def run(lam):
        params = {**problem.params, "lam": lam}
        return integrate(problem.rhs, solver, jnp.asarray(problem.y0), params, t0=0.0, stops=jnp.array([1.0]),
                         options=pss.Options(rtol=1e-6, atol=1e-8, max_steps=50_000), saved_steps=777,
                         record_states=True, record_dense=True).step_t

    text = str(jax.make_jaxpr(jax.vmap(run))(LAMBDAS))
    buffer_lines = [line for line in text.splitlines() if "select_n" in line and ",778" in line or "select_n" in line and ",777" in line]
    assert not buffer_lines, buffer_lines[:3]
    assert "custom_vmap_call" in text


def test_a_recording_loop_traces_its_solver_step_once(monkeypatch):
    """The step's record shapes, the branch that skips it and the loop body share one trace of the step
    (integrate._Loop.traced_advance): tracing a step is most of the Python time of a program."""
    problem = pss.problems.get("linear_modes")
    solver = pss.solvers.get("Rodas5P")
    traces = []
    attempt = type(solver).attempt
    monkeypatch.setattr(type(solver), "attempt", lambda self, *a, **k: traces.append(1) or attempt(self, *a, **k))

    def run(lam):
        params = {**problem.params, "lam": lam}
        return integrate(problem.rhs, solver, jnp.asarray(problem.y0), params, t0=0.0, stops=jnp.array([1.0]),
                         options=pss.Options(rtol=1e-6, atol=1e-8), saved_steps=200, record_states=True,
                         record_dense=True).ys

    jaxpr = jax.make_jaxpr(jax.vmap(run))(LAMBDAS)
    assert len(traces) == 1
    assert any(eqn.primitive.name == "cond" for eqn in equations(jaxpr.jaxpr))  # the step is in its own branch
    batched = jax.jit(jax.vmap(run))(LAMBDAS)
    for i, lam in enumerate(LAMBDAS):
        np.testing.assert_array_equal(batched[i], jax.jit(run)(lam))


def test_every_lane_batches_a_loop_carry_and_leaves_tangents_alone():
    from pystiffsens.lanes import every_lane

    lanes = jax.vmap(lambda x: every_lane((x, jnp.asarray(2.0), jnp.asarray(3))))(jnp.arange(3.0))
    assert [np.shape(leaf) for leaf in lanes] == [(3,), (3,), (3,)]
    np.testing.assert_array_equal(lanes[1], 2.0)
    assert every_lane((1.5,)) == (1.5,)
    # ForwardDiffSensitivity's forward pass in a batch: jacfwd over the solve, whose own lanes are tangents and
    # whose aux (the trajectory) must stay unbatched over them. (A rule that batched tangents as well gave the
    # while loop a carry with the lanes twice, which XLA refused.)
    problem = pss.problems.get("linear_modes")

    def ys(params):
        traj = integrate(problem.rhs, pss.solvers.get("FBDF"), jnp.asarray(problem.y0), params, t0=0.0,
                         stops=jnp.array([1.0]), options=pss.Options())
        return traj.ys, traj.status

    jacobian = lambda lam: jax.jacfwd(ys, has_aux=True)({**problem.params, "lam": lam})
    jac, status = jax.vmap(jacobian)(LAMBDAS)
    assert np.all(status == pss.ReturnCode.Success)
    for i, lam in enumerate(LAMBDAS):
        np.testing.assert_allclose(jac["lam"][i], jacobian(lam)[0]["lam"], rtol=1e-10, atol=1e-14)


def _parallel_tasks(compiled) -> int:
    """Operations XLA:CPU's parallel task assigner split across threads in a compiled program."""
    return compiled.as_text().count('outer_dimension_partitions":["')  # an empty list splits nothing


def test_pss_jit_turns_off_xla_cpu_parallel_task_assignment():
    """A per-lane gather from a large buffer inside a loop: split by plain jax.jit, not by pss.jit."""

    def lane(buffer, start):
        return jax.lax.fori_loop(0, 100, lambda i, acc: acc + buffer[(start + i) % buffer.shape[0]], 0.0)

    args = (jnp.ones((32, 4096)), jnp.arange(32))
    batched = jax.vmap(lane)
    assert _parallel_tasks(jax.jit(batched).lower(*args).compile()) > 0  # the pass is there to turn off
    assert _parallel_tasks(pss.jit(batched).lower(*args).compile()) == 0


def _entry_computation(compiled) -> str:
    """The HLO text of a compiled program's entry computation (the code outside its loops)."""
    text = compiled.as_text()
    return text[text.index("\nENTRY "):].split("\n}\n")[0]


def test_fast_compile_leaves_loop_invariants_in_the_loop(monkeypatch):
    """PYSTIFFSENS_FAST_COMPILE leaves out XLA's while-loop invariant code motion (pystiffsens._xla): an invariant of
    the loop body stays in the body, where the default options, like plain jax.jit, hoist it out."""
    from pystiffsens import _xla

    def repeated_sine(p):
        return jax.lax.fori_loop(0, 10, lambda i, acc: acc + jnp.sin(p), 0.0)

    hoisted = '/sin"'  # the source name XLA keeps in the metadata of the operation that computes the sine
    for value, outside in [("0", True), ("1", False)]:
        monkeypatch.setenv(_xla.FAST_COMPILE_VARIABLE, value)
        compiled = pss.jit(repeated_sine).lower(1.0).compile()
        assert (hoisted in _entry_computation(compiled)) == outside, value
        assert float(compiled(1.0)) == pytest.approx(10 * np.sin(1.0), rel=1e-15)


def test_programs_compiled_for_another_backend_get_none_of_the_cpu_options(monkeypatch):
    from pystiffsens import _xla

    assert _xla.compiler_options()  # measured on the CPU, where this suite runs
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert _xla.compiler_options() == {}


def test_fast_compile_adds_its_options_only_when_switched_on(monkeypatch):
    from pystiffsens import _xla

    fast = _xla.FAST_COMPILE_OPTIONS
    if not _xla.supported(fast):
        pytest.skip(f"this XLA (jax {jax.__version__}) knows none of {fast}")
    passes = ",".join(_xla.DISABLED_PASSES + _xla.FAST_COMPILE_DISABLED_PASSES)
    for value, expected in [("1", {**fast, "xla_disable_hlo_passes": passes}), ("0", _xla.COMPILER_OPTIONS),
                            ("", _xla.COMPILER_OPTIONS)]:
        monkeypatch.setenv(_xla.FAST_COMPILE_VARIABLE, value)
        assert _xla.compiler_options() == expected, value
        assert _xla.compiler_options(fast=value == "1") == expected, value


def test_fast_and_default_options_give_the_same_gradients(monkeypatch):
    """The suite compiles with PYSTIFFSENS_FAST_COMPILE=1 (conftest); users by default without it."""
    from pystiffsens import _xla

    problem = pss.problems.get("robertson", t_end=10.0)
    fn = pss.make_gradient_fn(problem, "Rodas5P", "ReverseDiffAdjoint", rtol=1e-7, atol=1e-10, max_steps=1024)
    # XLA's default emitters, which the suite's XLA_FLAGS replace (conftest).
    monkeypatch.setattr(_xla, "COMPILER_OPTIONS", {**_xla.COMPILER_OPTIONS, "xla_cpu_use_fusion_emitters": True})
    out = {}
    for value in ("1", "0"):
        monkeypatch.setenv(_xla.FAST_COMPILE_VARIABLE, value)
        out[value] = pss.jit(fn)(problem.params)
    assert int(out["1"]["status"]) == int(out["0"]["status"]) == pss.ReturnCode.Success
    assert {k: int(v) for k, v in out["1"]["stats"].items()} == {k: int(v) for k, v in out["0"]["stats"].items()}
    np.testing.assert_allclose(_flat(out["1"]["grad"]), _flat(out["0"]["grad"]), rtol=1e-9, atol=0)


def test_options_the_running_xla_does_not_know_are_left_out(monkeypatch):
    from pystiffsens import _xla

    unknown = {"xla_cpu_no_such_option_in_any_xla": True}
    assert _xla.supported({**_xla.COMPILER_OPTIONS, **unknown}) == _xla.COMPILER_OPTIONS
    monkeypatch.setattr(_xla, "COMPILER_OPTIONS", {**_xla.COMPILER_OPTIONS, **unknown})
    assert float(pss.jit(lambda x: 2.0 * x)(1.5)) == 3.0


@pytest.mark.parametrize("program_cache", ["on", "off"])
def test_sweep_batches_and_gradients_compile_with_pss_options(monkeypatch, program_cache):
    """The sweep batch and pss.gradient compile through pss.jit (their step-buffer gathers are not split),
    whether their traced program comes from the program cache or not."""
    from pystiffsens import _compilation_cache, _xla

    if program_cache == "off":
        monkeypatch.setenv(_compilation_cache.DISABLE_VARIABLE, "1")
    backend = pss.backends.get("jax")
    problem = pss.problems.get("linear_modes")

    def parallel_tasks(max_steps, gradient_steps=None):
        """Split operations in the batch program and in the gradient program."""
        backend.programs.clear()  # compile here, not reuse
        options = dict(rtol=1e-6, atol=1e-8, max_steps=max_steps, max_saved_steps=max_steps)
        _batch(problem, np.linspace(1.0, 400.0, 32), "Rodas5P", "InterpolatingAdjoint", **options)
        steps = gradient_steps or max_steps
        pss.gradient(problem, "Rodas5P", "InterpolatingAdjoint", **{**options, "max_steps": steps,
                                                                      "max_saved_steps": steps})
        compiled = backend.programs.compiled()
        assert len(compiled) == 2
        return [_parallel_tasks(program) for program in compiled]

    assert parallel_tasks(10_000, gradient_steps=40_000) == [0, 0]
    if program_cache == "off":  # the same programs either way, so once: without the options both are split
        with monkeypatch.context() as plain:
            plain.setattr(_xla, "COMPILER_OPTIONS", {})
            # New lengths, so compiled here. The gradient's dense output is one buffer per row, whose
            # gathers the assigner splits from about 40 000 steps (the batch's from fewer).
            assert min(parallel_tasks(10_001, gradient_steps=40_001)) > 0


def test_no_step_buffers_unless_recording_and_full_buffers_stop_with_maxiters():
    problem = pss.problems.get("robertson", t_end=10.0)
    solver = pss.solvers.get("Rodas5P")
    options = pss.Options(rtol=1e-6, atol=1e-8, max_steps=10**9)
    kwargs = dict(t0=0.0, stops=jnp.array([10.0]), options=options)
    plain = integrate(problem.rhs, solver, jnp.asarray(problem.y0), problem.params, **kwargs)
    assert plain.step_t is None and plain.states is None and plain.dense is None
    assert plain.status == pss.ReturnCode.Success
    n = int(plain.n_steps)
    short = integrate(problem.rhs, solver, jnp.asarray(problem.y0), problem.params, record_states=True,
                      saved_steps=n - 1, **kwargs)
    assert short.status == pss.ReturnCode.MaxIters and int(short.n_steps) == n - 1
    assert bool(short.buffer_full)
    enough = integrate(problem.rhs, solver, jnp.asarray(problem.y0), problem.params, record_states=True,
                       saved_steps=n, **kwargs)
    assert enough.status == pss.ReturnCode.Success and not bool(enough.buffer_full)
    np.testing.assert_array_equal(enough.ys, plain.ys)
    # Out of attempts is no full buffer: longer buffers would not help.
    budget = integrate(problem.rhs, solver, jnp.asarray(problem.y0), problem.params, record_states=True,
                       **{**kwargs, "options": pss.Options(rtol=1e-6, atol=1e-8, max_steps=n // 2)},
                       saved_steps=n // 2)
    assert budget.status == pss.ReturnCode.MaxIters and not bool(budget.buffer_full)


def test_accumulate_sums_a_function_of_the_accepted_steps_without_recording():
    """integrate(accumulate=...) (GaussAdjoint's quadrature): accepted steps only, nothing recorded."""
    problem = pss.problems.get("robertson", t_end=10.0)
    solver = pss.solvers.get("Rodas5P")
    kwargs = dict(t0=0.0, stops=jnp.array([2.0, 10.0]), options=pss.Options(rtol=1e-6, atol=1e-8))

    def count_and_span(step, accepted):  # (1, h) for an accepted step, zero otherwise
        return jnp.where(accepted, jnp.stack([jnp.ones(()), step["h"]]), 0.0)

    traj = integrate(problem.rhs, solver, jnp.asarray(problem.y0), problem.params,
                     accumulate=(count_and_span, jnp.zeros(2)), **kwargs)
    assert traj.status == pss.ReturnCode.Success and traj.stats["n_rejected"] > 0
    assert traj.step_t is None and traj.dense is None
    assert int(traj.accumulated[0]) == int(traj.n_steps)
    assert float(traj.accumulated[1]) == pytest.approx(10.0, rel=1e-12)
    plain = integrate(problem.rhs, solver, jnp.asarray(problem.y0), problem.params, **kwargs)
    assert plain.accumulated is None
    np.testing.assert_array_equal(traj.ys, plain.ys)


# The two kinds of records: per-step states (ReverseDiffAdjoint) and the forward dense output
# (InterpolatingAdjoint; GaussAdjoint records the same through the same code).
@pytest.mark.parametrize("sensitivity", ["ReverseDiffAdjoint", "InterpolatingAdjoint"])
def test_automatic_step_buffers_grow_to_the_solve(monkeypatch, sensitivity):
    problem = pss.problems.get("robertson", t_end=10.0)
    kwargs = dict(rtol=1e-7, atol=1e-10, max_steps=5000)
    reference = pss.gradient(problem, "Rodas5P", sensitivity, max_saved_steps=5000, **kwargs)
    n_steps = reference.stats["n_steps"]
    assert reference.success and n_steps > 16
    # Records of a quarter of the steps fill; one growth (x8) holds the solve: two compiles.
    first = n_steps // 4
    monkeypatch.setattr(memory, "INITIAL_SAVED_STEPS", first)
    grown = pss.gradient(problem, "Rodas5P", sensitivity, **kwargs)
    assert grown.status == pss.ReturnCode.Success
    np.testing.assert_allclose(_flat(grown.grad), _flat(reference.grad), rtol=1e-12, atol=0)
    assert grown.stats == reference.stats
    fixed = pss.gradient(problem, "Rodas5P", sensitivity, max_saved_steps=first, **kwargs)
    assert fixed.status == pss.ReturnCode.MaxIters and np.isnan(fixed.loss)


def test_batch_reruns_the_lanes_whose_buffers_filled(monkeypatch):
    # ReverseDiffAdjoint: a lone rerun lane compiles as an unbatched program whose rounding
    # differs; the discrete adjoint gives the same gradient anyway, while a continuous
    # adjoint's backward step control may then take another step (~1e-9 relative at rtol 1e-7).
    problem = pss.problems.get("robertson", t_end=10.0)
    grid = np.array([1e4, 1e6, 1e8])
    single = pss.jit(pss.make_gradient_fn(problem, "Rodas5P", "ReverseDiffAdjoint", rtol=1e-7, atol=1e-10,
                                          max_steps=50_000, max_saved_steps=4096))  # one record length
    singles = [jax.device_get(single(problem.set_stiffness(problem.params, s))) for s in grid]
    n_steps = [int(out["stats"]["n_steps"]) for out in singles]
    assert min(n_steps) < max(n_steps)
    monkeypatch.setattr(memory, "INITIAL_SAVED_STEPS", (min(n_steps) + max(n_steps)) // 2)
    batch = _batch(problem, grid, "Rodas5P", "ReverseDiffAdjoint", rtol=1e-7, atol=1e-10, max_steps=50_000)
    for out, lane in zip(singles, batch.results):
        assert lane.status == pss.ReturnCode.Success
        np.testing.assert_allclose(_flat(lane.grad), _flat(out["grad"]), rtol=1e-10, atol=0)
        assert lane.stats == {name: int(value) for name, value in out["stats"].items()}


# ---------------------------------------------------------------- checkpoints


# One one-step and one multistep method (whose controls, orders and scaled history, take the
# recorded path); with one segment, a few, and more checkpoints than needed (each count is a
# compile, so the one-step method gets the two ends and the multistep method the middle);
# test_checkpointed_reverse_diff_in_a_batch adds a batch.
@pytest.mark.parametrize("solver, counts", [("Rodas5P", (1, 40)), ("FBDF", (7,))])
def test_checkpointed_reverse_diff_equals_per_step_records(solver, counts):
    problem = pss.problems.get("robertson", t_end=10.0)
    kwargs = dict(rtol=1e-7, atol=1e-10, max_steps=400)
    reference = pss.gradient(problem, solver, "ReverseDiffAdjoint", **kwargs)
    assert reference.success
    for checkpoints in counts:
        result = pss.gradient(problem, solver, ReverseDiffAdjoint(checkpoints=checkpoints), **kwargs)
        assert result.status == pss.ReturnCode.Success
        np.testing.assert_allclose(_flat(result.grad), _flat(reference.grad), rtol=1e-10, atol=0)
        assert result.stats == reference.stats


def test_checkpointed_reverse_diff_in_a_batch():
    problem = pss.problems.get("linear_modes", lam=2.0)
    batched, singles = _batched_and_single(problem, "Rodas5P", ReverseDiffAdjoint(checkpoints=5), LAMBDAS,
                                           rtol=1e-8, atol=1e-10, max_steps=300)
    reference = pss.make_gradient_fn(problem, "Rodas5P", "ReverseDiffAdjoint", rtol=1e-8, atol=1e-10, max_steps=300)
    for i, s in enumerate(LAMBDAS):
        expected = pss.jit(reference)(problem.set_stiffness(problem.params, s))["grad"]
        lane = {k: np.asarray(v[i]) for k, v in batched["grad"].items()}
        np.testing.assert_allclose(_flat(lane), _flat(expected), rtol=1e-10)


def _saved_and_t0_problem():
    """ROBER to t = 10 with 25 saved times, the first at t0, and a loss on all of them."""
    base = pss.problems.get("robertson", t_end=10.0)
    saveat = np.concatenate([[0.0], np.geomspace(1e-4, 10.0, 24)])
    return pss.Problem(base.rhs, base.y0, (0.0, 10.0), base.params, saveat=saveat,
                       loss=lambda ts, ys, p: jnp.sum(ys[:, 0] * ys[:, 1]) + jnp.sum(ys[-1]))


def test_checkpointed_continuous_adjoints():
    """One checkpoint segment gives the per-step records' gradient to rounding. With a segment per step every saved
    time is a segment boundary, where its jump must be applied exactly once: the gradient is then the forward-mode
    one to the tolerances, with respect to the parameters and y0 (the jump at t0 included). (GaussAdjoint, which
    builds its quadrature on each segment's records: test_front_door.test_grad_through_solve_uses_longer_records.)"""
    problem = _saved_and_t0_problem()
    kwargs = dict(rtol=1e-9, atol=1e-12, max_steps=600, max_saved_steps=512)
    per_step = pss.gradient(problem, "Rodas5P", "InterpolatingAdjoint", **kwargs)
    assert per_step.success and per_step.stats["n_steps"] < 512
    one = pss.gradient(problem, "Rodas5P", pss.sensitivity.InterpolatingAdjoint(checkpoints=1), **kwargs)
    np.testing.assert_allclose(_flat(one.grad), _flat(per_step.grad), rtol=1e-13)

    def loss(params, y0, sensitivity):
        sol = pss.solve(problem, "Rodas5P", sensitivity=sensitivity, params=params, y0=y0, **kwargs)
        return problem.loss_fn(sol.ts, sol.ys, params)

    every_step = pss.sensitivity.InterpolatingAdjoint(checkpoints=512)
    grads = jax.jit(jax.grad(lambda p, y: loss(p, y, every_step), (0, 1)))(problem.params, problem.y0)
    exact = jax.jit(jax.grad(lambda p, y: loss(p, y, "ForwardDiffSensitivity"), (0, 1)))(problem.params, problem.y0)
    np.testing.assert_allclose(grads[1], exact[1], rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(_flat(grads[0]), _flat(exact[0]), rtol=1e-5)
    assert not np.allclose(_flat(grads[0]), _flat(per_step.grad), rtol=1e-12, atol=0)  # it stopped at every segment


def test_checkpointed_algorithms():
    """What the long branch of a compiled program runs (sensitivity.rules.branches)."""
    assert ReverseDiffAdjoint().checkpointed(7) == ReverseDiffAdjoint(checkpoints=7)
    assert ReverseDiffAdjoint(checkpoints=3).checkpointed(7) == ReverseDiffAdjoint(checkpoints=3)
    interpolating = pss.sensitivity.InterpolatingAdjoint(quadrature_error_control=False)
    assert interpolating.checkpointed(7) == pss.sensitivity.InterpolatingAdjoint(False, checkpoints=7)
    assert pss.sensitivity.GaussAdjoint(n_points=3).checkpointed(2) == pss.sensitivity.GaussAdjoint(3, checkpoints=2)
    for name in ("ForwardDiffSensitivity", "ForwardSensitivity", "BacksolveAdjoint"):
        assert pss.sensitivity.get(name).checkpointed(7) == pss.sensitivity.get(name)
    shapes = memory.Shapes(n=3, P=3, n_stops=1, state=200, dense=300, saved_steps=100_352)
    for name in ("InterpolatingAdjoint", "GaussAdjoint", "ReverseDiffAdjoint"):
        algorithm = pss.sensitivity.get(name)
        assert memory.total(algorithm.checkpointed(98), shapes) < memory.total(algorithm, shapes) / 20


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
@pytest.mark.parametrize("name", ["ReverseDiffAdjoint", "InterpolatingAdjoint", "GaussAdjoint"])
def test_bad_checkpoints(bad, name):
    with pytest.raises(ValueError, match=r"checkpoints=.* must be None .* or a positive integer"):
        type(pss.sensitivity.get(name))(checkpoints=bad)


# ---------------------------------------------------------------- memory plan


def _dense_problem(n):
    """n states, n + n^2 parameters (a rate per state and a coupling matrix)."""
    return pss.Problem(lambda t, y, p: -p["k"] * y + 0.01 * jnp.tanh(p["A"] @ y), np.ones(n), (0.0, 1.0),
                       {"k": np.linspace(1.0, 100.0, n), "A": 0.1 * np.eye(n)})


def test_memory_guard_raises_before_running_and_names_what_fits():
    problem = _dense_problem(60)  # 3660 parameters: the augmented forward system has 219 660 states
    with pytest.raises(ValueError) as info:
        pss.gradient(problem, "Rodas5P", "ForwardSensitivity", memory_limit="20GB")
    message = str(info.value)
    assert "sensitivity='ForwardSensitivity' would need an estimated" in message
    assert " TB " in message and "60 states, 3660 parameters" in message
    assert "memory limit of 20 GB (memory_limit=)" in message
    fits = message.split("Sensitivities that fit:")[1]
    assert "ReverseDiffAdjoint" in fits and "GaussAdjoint" in fits and "ForwardSensitivity" not in fits
    with pytest.raises(ValueError, match=r"'ForwardSensitivity' would need"):
        pss.make_gradient_fn(problem, "Rodas5P", "ForwardSensitivity", memory_limit="20GB")


def test_memory_guard_counts_step_records_and_batches(monkeypatch):
    problem = pss.problems.get("robertson")
    shapes = _shapes(problem, "Rodas5P", 100_000)
    need = memory.total(ReverseDiffAdjoint(), shapes)
    assert need > 100_001 * 3 * 8  # at least the recorded states
    monkeypatch.setenv(memory.ENV_VAR, str(need // 2))
    with pytest.raises(ValueError, match=r"'ReverseDiffAdjoint' would need .*\$PYSTIFFSENS_MEMORY_LIMIT.*"
                       r"ReverseDiffAdjoint\(checkpoints=317\)"):
        pss.gradient(problem, "Rodas5P", "ReverseDiffAdjoint", max_saved_steps=100_000)
    # Fewer saved steps fit, and so do the automatic buffers (sized to the solve) and
    # forward mode (no per-step records at all).
    assert pss.gradient(problem, "Rodas5P", "ReverseDiffAdjoint", max_saved_steps=1000).success
    assert pss.gradient(problem, "Rodas5P", "ReverseDiffAdjoint").success
    assert pss.gradient(problem, "Rodas5P", "ForwardDiffSensitivity", max_steps=10**9).success
    monkeypatch.setenv(memory.ENV_VAR, str(need * 3))
    with pytest.raises(ValueError, match=r"batch of 4"):
        pss.make_gradient_fn(problem, "Rodas5P", "ReverseDiffAdjoint", batch_size=4, max_saved_steps=100_000)
    # With records that follow the solve, a program's long branch checkpoints: its memory does not grow with max_steps.
    pss.make_gradient_fn(problem, "Rodas5P", "ReverseDiffAdjoint", batch_size=4, max_steps=100_000)


def test_compiled_plan_is_checked_too():
    class Analysis:
        temp_size_in_bytes, argument_size_in_bytes, output_size_in_bytes = 5 * 10**9, 0, 0

    class Compiled:
        def memory_analysis(self):
            return Analysis()

    shapes = memory.Shapes(n=3, P=3, n_stops=1, state=24, dense=120, saved_steps=10)
    planned = memory.compiled_bytes(Compiled())
    assert planned == 5 * 10**9
    memory.check_program(1000, planned, ReverseDiffAdjoint(), shapes, memory_limit="6GB")
    with pytest.raises(ValueError, match=r"would need \(as XLA plans it\) 5 GB .*limit of 1 GB"):
        memory.check_program(1000, planned, ReverseDiffAdjoint(), shapes, memory_limit=10**9)


@pytest.mark.parametrize("value, expected", [("8GB", 8 * 10**9), ("512 MiB", 512 * 2**20), (2e9, 2 * 10**9), ("1e6", 10**6)])
def test_parse_size(value, expected):
    assert memory.parse_size(value) == expected


@pytest.mark.parametrize("bad", ["8 parsecs", -1, 0, "", float("nan"), True])
def test_parse_size_rejects(bad):
    with pytest.raises(ValueError, match=r"memory limit .* must be a positive number of bytes"):
        memory.parse_size(bad)


# ---------------------------------------------------------------- automatic sensitivity


def test_default_sensitivity_is_forward_mode_for_few_parameters():
    result = pss.gradient(pss.problems.get("robertson", t_end=10.0), "Rodas5P")
    assert result.sensitivity == "ForwardDiffSensitivity"
    assert result.extra["sensitivity_choice"] == "auto: 3 states + 3 parameters <= 100"
    explicit = pss.gradient(pss.problems.get("robertson", t_end=10.0), "Rodas5P", "ForwardDiffSensitivity")
    np.testing.assert_array_equal(_flat(result.grad), _flat(explicit.grad))
    assert "sensitivity_choice" not in explicit.extra


def test_default_sensitivity_is_an_adjoint_for_many_parameters():
    problem = _dense_problem(10)  # 10 states + 110 parameters
    auto = pss.gradient(problem, "Rodas5P", "auto")
    assert auto.sensitivity == "ReverseDiffAdjoint" and auto.success
    assert auto.extra["sensitivity_choice"] == "auto: 10 states + 110 parameters > 100"
    forward = pss.gradient(problem, "Rodas5P", "ForwardDiffSensitivity")
    np.testing.assert_allclose(_flat(auto.grad), _flat(forward.grad), rtol=1e-10, atol=1e-15)
    assert pss.make_gradient_fn(problem, "Rodas5P").sensitivity == "ReverseDiffAdjoint"
    assert pss.make_gradient_fn(pss.problems.get("dahlquist"), "Rodas5P").sensitivity == "ForwardDiffSensitivity"


def test_default_adjoint_checkpoints_when_records_do_not_fit():
    problem = _dense_problem(10)
    solver = pss.solvers.get("Rodas5P")
    choice = pss.backends.get("jax").sensitivity(None, problem, solver, pss.Options(), memory_limit="5MB")
    assert isinstance(choice.algorithm, ReverseDiffAdjoint) and choice.algorithm.checkpoints == 317
    assert choice.rule.endswith("per-step records over the memory limit")


# ---------------------------------------------------------------- failures and recording


def test_non_finite_loss_is_unstable_with_nan_gradient():
    problem = pss.Problem(lambda t, y, p: -p["a"] * y, [1.0], (0.0, 1.0), {"a": 1.0},
                          loss=lambda ts, ys, p: jnp.log(-ys[-1, 0]))
    for sensitivity in ("ForwardDiffSensitivity", "ReverseDiffAdjoint"):
        result = pss.gradient(problem, "Rodas5P", sensitivity)
        assert result.status == pss.ReturnCode.Unstable
        assert np.isnan(result.loss) and np.isnan(result.grad["a"])


def test_solve_records_steps_only_when_asked(monkeypatch):
    problem = pss.problems.get("robertson", t_end=10.0)
    monkeypatch.setattr(pss.memory, "INITIAL_SAVED_STEPS", 4)  # force the buffer to grow twice
    full = pss.solve(problem, "FBDF", rtol=1e-8, atol=1e-10)
    assert full.stats["n_steps"] > 32
    assert len(full.step_ts) == len(full.step_ys) == full.stats["n_steps"] + 1
    assert full.step_ts[0] == 0.0 and full.step_ts[-1] == 10.0 and np.all(np.diff(full.step_ts) > 0)
    np.testing.assert_allclose(full.step_ys[-1], full.ys[-1], rtol=0, atol=0)
    bare = pss.solve(problem, "FBDF", rtol=1e-8, atol=1e-10, save_steps=False)
    assert bare.step_ts is None and bare.step_ys is None
    np.testing.assert_array_equal(bare.ys, full.ys)
    assert bare.stats == full.stats


def test_solve_step_buffer_over_the_limit_raises():
    with pytest.raises(ValueError, match=r"save_steps=True needs a step buffer of .* Pass save_steps=False"):
        pss.solve(pss.problems.get("robertson"), "Rodas5P", memory_limit="1kB")
    assert pss.solve(pss.problems.get("robertson"), "Rodas5P", memory_limit="1kB", save_steps=False).success
