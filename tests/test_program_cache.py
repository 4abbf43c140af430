"""The on-disk cache of traced programs: keys that cover what a program depends on, loads that skip tracing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pystiffsens as pss
from pystiffsens import _compilation_cache, _program_cache, sensitivity
from pystiffsens.problems.scalar import dahlquist

CPU = jax.devices("cpu")[0]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(_compilation_cache.DIR_VARIABLE, str(tmp_path))
    monkeypatch.delenv(_compilation_cache.DISABLE_VARIABLE, raising=False)
    return tmp_path / "programs"


def _counting(traces):
    """A jitted function that counts how often Python traces it."""

    def fn(x):
        traces.append(1)
        return {"y": jnp.cumsum(jnp.sin(x)) * 2.0}

    return jax.jit(fn)


def test_a_stored_program_is_loaded_instead_of_traced(cache):
    x = [jnp.linspace(0.0, 1.0, 5)]
    identity = ("test", pss.problems.get("dahlquist"), 3)
    traces = []
    first = _program_cache.compile_cached(_counting(traces), x, identity, CPU)
    assert len(traces) == 1 and len(list(cache.glob("*" + _program_cache.SUFFIX))) == 1
    second = _program_cache.compile_cached(_counting(traces), x, identity, CPU)  # a new function: no in-memory trace
    assert len(traces) == 1
    np.testing.assert_array_equal(second(*x)["y"], first(*x)["y"])


def test_programs_without_a_reliable_key_are_traced_every_time(cache):
    x = [jnp.ones(3)]
    own = pss.Problem(lambda t, y, p: -p["lam"] * y, y0=[1.0], tspan=(0.0, 1.0), params={"lam": 1.0})
    traces = []
    for _ in range(2):
        _program_cache.compile_cached(_counting(traces), x, ("test", own), CPU)
    assert len(traces) == 2 and not cache.exists()


def test_turning_the_cache_off_stores_nothing(cache, monkeypatch):
    monkeypatch.setenv(_compilation_cache.DISABLE_VARIABLE, "1")
    assert _program_cache.program_key(("test", 1), [jnp.ones(3)], CPU) is None
    _program_cache.compile_cached(_counting([]), [jnp.ones(3)], ("test", 1), CPU)
    assert not cache.exists()


def test_keys_follow_data_settings_and_shapes_and_nothing_else(cache):
    x = [jnp.ones(7)]
    settings = pss.Options(rtol=1e-6, atol=1e-8, max_steps=1000)
    algorithm = sensitivity.get("InterpolatingAdjoint")

    def key(problem=None, algorithm=algorithm, settings=settings, args=x):
        problem = problem if problem is not None else pss.problems.get("robertson")
        return _program_cache.program_key(("test", problem, algorithm, settings), args, CPU)

    base = key()
    assert base is not None and key() == base  # two builds of the same built-in
    changed = [
        key(problem=pss.problems.get("robertson", t_end=10.0)),
        key(problem=pss.problems.get("robertson").replace(y0=[1.0, 0.0, 1e-9])),
        key(problem=pss.problems.get("robertson", k1=0.05)),
        key(algorithm=sensitivity.InterpolatingAdjoint(quadrature_error_control=False)),
        key(algorithm=sensitivity.get("BacksolveAdjoint")),
        key(settings=pss.Options(rtol=1e-7, atol=1e-8, max_steps=1000)),
        key(args=[jnp.ones(8)]),
        key(problem=dahlquist(lam=2.0)),
    ]
    assert base not in changed and len(set(changed)) == len(changed)


def test_a_damaged_entry_is_a_miss_and_is_rewritten(cache):
    x = [jnp.ones(4)]
    identity = ("test", "damaged")
    path = cache / f"{_program_cache.program_key(identity, x, CPU)}{_program_cache.SUFFIX}"
    cache.mkdir(parents=True)
    path.write_bytes(b"not a program")
    traces = []
    out = _program_cache.compile_cached(_counting(traces), x, identity, CPU)
    assert len(traces) == 1
    np.testing.assert_allclose(out(*x)["y"], np.cumsum(np.sin(np.ones(4))) * 2.0, rtol=0, atol=0)
    assert path.read_bytes() != b"not a program"


def test_a_loaded_sweep_batch_gives_the_gradients_it_gave_when_traced(cache, monkeypatch):
    problem = pss.problems.get("robertson", t_end=1.0)
    grid = np.geomspace(3e5, 3e9, 3)
    backend, solver = pss.backends.get("jax"), pss.solvers.get("Rodas5P")
    options = pss.Options(rtol=1e-6, atol=1e-8, max_steps=10_000).for_method(solver)
    choice = pss.backends.Choice(sensitivity.get("InterpolatingAdjoint"))

    def gradients():
        backend.programs.clear()  # no program kept in memory: load it from disk, or trace it
        batch = backend.gradient_batch(problem, grid, solver, choice, options)()
        return np.array([[r.loss, *r.grad.values()] for r in batch.results], dtype=float)

    traced = gradients()
    assert len(list(cache.glob("*" + _program_cache.SUFFIX))) == 1
    loaded = gradients()
    monkeypatch.setenv(_compilation_cache.DISABLE_VARIABLE, "1")
    np.testing.assert_array_equal(loaded, traced)
    np.testing.assert_array_equal(gradients(), traced)


def test_a_program_that_cannot_be_exported_is_compiled_as_usual(cache):
    """A host callback has no serialisation guarantee: nothing is stored and the result is the plain one."""

    def fn(x):
        return jax.pure_callback(lambda v: np.asarray(v) * 3.0, jax.ShapeDtypeStruct(x.shape, x.dtype), x)

    x = [jnp.arange(3.0)]
    compiled = _program_cache.compile_cached(jax.jit(fn), x, ("test", "callback"), CPU)
    np.testing.assert_array_equal(compiled(*x), [0.0, 3.0, 6.0])
    assert not list(cache.glob("*" + _program_cache.SUFFIX))
