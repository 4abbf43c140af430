"""The package surface: a light import, lazy layers, the compilation cache, names accepted by solve/gradient."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pystiffsens as pss
from pystiffsens import _compilation_cache
from pystiffsens.returncode import ReturnCode

HEAVY = ("pandas", "statsmodels", "optax", "matplotlib", "scipy.optimize")


def _python(code: str, **env) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON object, returned here."""
    environment = {**os.environ, **env}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=environment, timeout=300
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_leaves_heavy_layers_unloaded_until_used(tmp_path):
    found = _python(
        f"""
        import json, sys
        import pystiffsens as pss
        before = [name for name in {HEAVY!r} if name in sys.modules]
        sweep, fit = pss.sweep, pss.fit_decay
        after = {{name: name in sys.modules for name in ("pandas", "statsmodels")}}
        print(json.dumps({{
            "before": before, "after": after,
            "sweep": sweep.__module__, "fit": fit.__module__,
            "theory": pss.theory.decay_exponent("ImplicitEuler"),
            "resnet": pss.resnet.__name__, "stiffness": pss.stiffness.__name__,
        }}))
        """,
        PYSTIFFSENS_CACHE_DIR=str(tmp_path),
    )
    assert found["before"] == []
    assert found["after"] == {"pandas": True, "statsmodels": True}
    assert found["sweep"] == "pystiffsens.study.sweep"
    assert found["fit"] == "pystiffsens.study.fit"
    assert found["theory"] == -2
    assert (found["resnet"], found["stiffness"]) == ("pystiffsens.resnet", "pystiffsens.stiffness")


def test_lazy_names_are_listed_and_unknown_names_raise():
    assert {"sweep", "fit_decay", "compare", "report", "study", "theory", "resnet", "stiffness"} <= set(dir(pss))
    for name in pss.__all__:
        assert getattr(pss, name) is not None
    assert pss.sweep is pss.study.sweep
    with pytest.raises(AttributeError, match="no_such_name"):
        pss.no_such_name  # noqa: B018


def test_compilation_cache_is_on_by_default_and_can_be_turned_off(tmp_path):
    code = """
        import json, jax, pystiffsens
        print(json.dumps({"dir": jax.config.jax_compilation_cache_dir}))
        """
    assert _python(code, PYSTIFFSENS_CACHE_DIR=str(tmp_path / "c"))["dir"] == str(tmp_path / "c" / "jax")
    assert _python(code, PYSTIFFSENS_CACHE_DIR=str(tmp_path / "c"), PYSTIFFSENS_NO_COMPILATION_CACHE="1")["dir"] is None
    mine = str(tmp_path / "mine")  # a directory the user gave JAX is kept
    assert _python(code, PYSTIFFSENS_CACHE_DIR=str(tmp_path / "c"), JAX_COMPILATION_CACHE_DIR=mine)["dir"] == mine


def test_default_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv(_compilation_cache.DIR_VARIABLE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert _compilation_cache.cache_dir() == tmp_path / "pystiffsens" / "jax"
    assert _compilation_cache.programs_dir() == tmp_path / "pystiffsens" / "programs"


def test_a_second_process_loads_a_gradient_from_the_cache(tmp_path):
    """The cache key is the program, so it must hit for gradients closing over a problem's rhs; the
    traced program of a built-in problem is stored once and loaded by the next process."""
    code = """
        import json, jax, pystiffsens as pss
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)  # however fast it compiles
        events = []
        jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
        res = pss.gradient("prothero_robinson", "ImplicitEuler", "forward", dt=0.05)
        print(json.dumps({"hits": events.count("/jax/compilation_cache/cache_hits"), "grad": res.grad["lam"].item()}))
        """
    env = {"PYSTIFFSENS_CACHE_DIR": str(tmp_path)}
    first = _python(code, **env)
    stored = sorted((tmp_path / "programs").glob("*.jaxexport"))  # the traced program, for the next process
    second = _python(code, **env)
    assert first["hits"] == 0 and second["hits"] >= 1 and len(stored) == 1
    assert second["grad"] == first["grad"]
    assert sorted((tmp_path / "programs").glob("*.jaxexport")) == stored


def test_return_code_prints_its_sciml_name():
    assert str(ReturnCode.Success) == "Success"
    assert f"{ReturnCode.MaxIters}" == "MaxIters"
    assert ReturnCode.Success == 0  # still an integer inside jitted code


def test_solve_and_gradient_accept_a_built_in_name():
    problem = pss.problems.get("dahlquist")
    by_name = pss.solve("dahlquist", "ImplicitEuler", dt=0.1)
    by_object = pss.solve(problem, "ImplicitEuler", dt=0.1)
    np.testing.assert_array_equal(by_name.ys, by_object.ys)
    assert str(by_name.status) == "Success"
    grad_by_name = pss.gradient("dahlquist", "ImplicitEuler", "forward", dt=0.1)
    grad_by_object = pss.gradient(problem, "ImplicitEuler", "forward", dt=0.1)
    assert grad_by_name.grad.keys() == grad_by_object.grad.keys()
    for name in grad_by_name.grad:
        np.testing.assert_array_equal(grad_by_name.grad[name], grad_by_object.grad[name])
    with pytest.raises(ValueError, match="robertson"):
        pss.solve("no_such_problem", "Rodas5P")
