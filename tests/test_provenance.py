"""Checkpoint rows tied to the model that made them, and the input checks around sweeps (issue 25).

* ``problem_id`` fingerprints what a problem computes (the traced programs of its functions,
  with the values they capture), so rows of an edited model are never reused;
* rows whose parameter entry the problem lacks are refused with the file and line;
* the CLI refuses ``--option`` on the stiffness knob and explains a negative ``--stiffness``;
* a stiffness knob naming an array parameter is refused when the problem is built.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import threading
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import pystiffsens as pss
from pystiffsens.cli import main
from pystiffsens.problem import Problem
from pystiffsens.study import resume, sweep
from pystiffsens.study.batch import Batch

GRID = np.array([10.0, 100.0])
FIXED_STEP = dict(solvers="ImplicitEuler", sensitivities="forward", dt=0.1, progress=False)

# A user's model file; the test "edits" the coefficient C and keeps every name.
_MODEL_SOURCE = """
import jax.numpy as jnp

def relax(t, y, p):
    return -p["lam"] * (y - jnp.cos(t)) - C * p["k"] * y
"""


def _user_model(coefficient: float) -> Problem:
    """The problem of ``_MODEL_SOURCE`` with ``C`` written as ``coefficient`` in the function's body."""
    namespace: dict = {"__name__": "user_model"}
    exec(compile(_MODEL_SOURCE.replace("C *", f"{coefficient!r} *"), "user_model.py", "exec"), namespace)
    return Problem(namespace["relax"], y0=[1.0], tspan=(0.0, 1.0), params={"lam": 1.0, "k": 0.5},
                   stiffness="lam", name="relax")


def _sweep(problem, out_dir=None):
    return sweep(problem, GRID, FIXED_STEP["solvers"], FIXED_STEP["sensitivities"], dt=FIXED_STEP["dt"],
                 progress=False, out_dir=out_dir)


def _k_grad(frame) -> np.ndarray:
    return frame.loc[frame["param"] == "k", "grad"].to_numpy()


# --- item 1: rows keyed by what the model computes -----------------------------------------------


def test_editing_a_coefficient_in_a_custom_rhs_recomputes_its_rows(tmp_path, monkeypatch):
    original, edited = _user_model(1.0), _user_model(2.0)
    first = _sweep(original, tmp_path)
    with pytest.warns(RuntimeWarning, match=r"different model.*not reused"):
        rerun = _sweep(edited, tmp_path)
    fresh = _sweep(edited)  # no checkpoint: what the edited model computes
    np.testing.assert_allclose(_k_grad(rerun), _k_grad(fresh), rtol=1e-12)
    assert np.all(np.abs(_k_grad(rerun) - _k_grad(first)) > 1e-3)  # not the old model's gradients
    assert rerun["problem_id"].nunique() == 1 and rerun["problem_id"].iloc[0] != first["problem_id"].iloc[0]
    stored = resume.read_gradients(tmp_path / resume.CHECKPOINT_NAME)
    assert set(stored["problem_id"]) == {first["problem_id"].iloc[0], rerun["problem_id"].iloc[0]}  # old rows kept

    def must_not_run(*args):
        raise AssertionError("rows of this very model were recomputed instead of reused")

    monkeypatch.setattr(Batch, "prepare", must_not_run)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to recompute: no warning about the other model's rows
        again = _sweep(_user_model(2.0), tmp_path)  # the same edited model, rebuilt
    pd.testing.assert_frame_equal(again.drop(columns=["wall_time_s", "compile_time_s"]),
                                  rerun.drop(columns=["wall_time_s", "compile_time_s"]), check_exact=True)


def _loss_sum(ts, ys, p):
    return jnp.sum(ys[-1])


def test_different_lambda_losses_get_different_ids():
    base = _user_model(1.0)
    by_lambda = [base.replace(loss=lambda ts, ys, p: jnp.sum(ys[-1])),
                 base.replace(loss=lambda ts, ys, p: jnp.sum(ys[-1] ** 2))]
    ids = [resume.problem_id(problem) for problem in by_lambda]
    assert ids[0] != ids[1]
    # the id follows what the loss computes, not its name
    assert ids[0] == resume.problem_id(base.replace(loss=_loss_sum)) == resume.problem_id(base)


def test_a_rebuilt_model_gets_the_same_id_and_any_change_a_new_one():
    base = _user_model(1.0)
    assert resume.problem_id(base) == resume.problem_id(_user_model(1.0))
    for name in ("dahlquist", "stiff_neural_ode", "hires"):
        assert resume.problem_id(pss.problems.get(name)) == resume.problem_id(pss.problems.get(name))
    changed = [
        _user_model(1.0 + 1e-12),
        base.replace(y0=[2.0]),
        base.replace(tspan=(0.0, 2.0)),
        base.replace(saveat=[0.5, 1.0]),
        base.replace(params={"lam": 1.0, "k": 0.25}),
        base.replace(params={"lam": 1.0, "k": jnp.array([0.5])}, rhs=lambda t, y, p: -p["lam"] * y - p["k"] * y),
        base.replace(stiffness=lambda p, s: {**p, "lam": 2.0 * s}),
        base.replace(implementations={"julia": "rhs(u, p, t) = -p.lam .* u"}),
    ]
    ids = [resume.problem_id(problem) for problem in (base, *changed)]
    assert len(set(ids)) == len(ids)


def _closure_model(values, *, nested: bool) -> Problem:
    a = np.asarray(values)

    @jax.jit
    def inner(y):
        return a * y

    def rhs(t, y, p):
        return -p["lam"] * (inner(y) if nested else a * y)

    return Problem(rhs, y0=[1.0, 1.0], tspan=(0.0, 1.0), params={"lam": 1.0}, stiffness="lam", name="closure")


@pytest.mark.parametrize("nested", [False, True])
def test_captured_array_values_change_the_id(nested):
    one = resume.problem_id(_closure_model([1.0, 2.0], nested=nested))
    assert one == resume.problem_id(_closure_model([1.0, 2.0], nested=nested))
    assert one != resume.problem_id(_closure_model([1.0, 3.0], nested=nested))


_ID_SCRIPT = """
import sys
import threading
import time
import jax.numpy as jnp
import numpy as np
import pystiffsens as pss
from pystiffsens.problem import Problem
from pystiffsens.study import resume

A = np.array([[-1.0, 0.5], [0.0, -2.0]])
custom = Problem(lambda t, y, p: p["lam"] * (A @ y) + jnp.sin(t) * p["w"], y0=[1.0, 0.0], tspan=(0.0, 1.0),
                 params={"lam": 1.0, "w": jnp.array([0.1, 0.2])}, loss=lambda ts, ys, p: jnp.mean(ys ** 2),
                 stiffness="lam", name="custom")
problems = [pss.problems.get("dahlquist"), pss.problems.get("stiff_neural_ode"), pss.problems.get("hires"), custom]
print(" ".join(resume.problem_id(problem) for problem in problems))
"""


def test_problem_id_is_the_same_in_another_process():
    namespace: dict = {"__name__": "id_script"}
    exec(compile(_ID_SCRIPT.replace('print(" ".join', 'ids = (" ".join'), "id_script.py", "exec"), namespace)
    here = namespace["ids"]
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    there = subprocess.run([sys.executable, "-c", _ID_SCRIPT], capture_output=True, text=True, env=env, check=True,
                           timeout=300).stdout.strip()
    assert there == here


def test_the_fingerprint_is_traced_once_per_sweep_and_never_by_solve(monkeypatch):
    problem = pss.problems.get("dahlquist")
    traced = []
    real = resume.traced_program
    monkeypatch.setattr(resume, "traced_program", lambda *args: traced.append(1) or real(*args))
    sweep(problem, GRID, ["ImplicitEuler", "Trapezoid"], "forward", dt=0.5, progress=False)
    functions = 3  # rhs, loss, closed-form solution
    assert len(traced) == functions
    traced.clear()
    for _ in range(2):
        pss.solve(problem, solver="ImplicitEuler", dt=0.5)
        pss.gradient(problem, solver="ImplicitEuler", sensitivity="forward", dt=0.5)
    assert traced == []


# --- item 2: rows must match the problem's parameter entries ---------------------------------------


def _rename_param(path, old: str, new: str, only_line: int | None = None) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    rows = frame.index if only_line is None else [only_line - 2]
    frame.loc[rows, "param"] = frame.loc[rows, "param"].str.replace(old, new, regex=False)
    frame.to_csv(path, index=False)


@pytest.mark.parametrize("only_line", [None, 3])
def test_a_checkpoint_row_with_a_renamed_parameter_is_refused_with_file_and_line(tmp_path, only_line):
    problem = pss.problems.get("dahlquist")
    _sweep(problem, tmp_path)
    path = tmp_path / resume.CHECKPOINT_NAME
    _rename_param(path, "lam", "lamm", only_line)
    line = only_line or 2
    with pytest.raises(ValueError, match=rf"gradients.csv, line {line} .*param='lamm'.*not a parameter entry of "
                                         r"problem 'dahlquist'.*\['lam'\]"):
        _sweep(problem, tmp_path)


def test_a_stiffness_value_missing_a_parameter_row_is_recomputed(tmp_path):
    problem = _user_model(1.0)
    complete = _sweep(problem, tmp_path)
    path = tmp_path / resume.CHECKPOINT_NAME
    stored = pd.read_csv(path, dtype=str, keep_default_na=False)
    stored.drop(index=1).to_csv(path, index=False)  # the k row of the first stiffness value
    resumed = _sweep(problem, tmp_path)
    columns = ["stiffness", "param", "grad"]
    pd.testing.assert_frame_equal(resumed[columns], complete[columns], check_exact=True)
    assert len(resume.read_gradients(path)) == len(complete)


# --- item 3: --option on the stiffness knob -----------------------------------------------------------

_TINY = ["--problem", "dahlquist", "--solvers", "ImplicitEuler", "--sensitivities", "forward", "--dt", "1",
         "--no-progress"]


def test_cli_refuses_an_option_that_sets_the_stiffness_knob(tmp_path, capsys):
    assert main(["sweep", "--out", str(tmp_path), *_TINY, "--stiffness", "1e2:1e4:3", "--option", "lam=5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pystiffsens sweep: error: --option lam=5")
    assert "'lam' is the stiffness knob of problem 'dahlquist'" in err and "--stiffness" in err
    assert not (tmp_path / resume.CHECKPOINT_NAME).exists()


def test_cli_accepts_options_that_are_not_the_knob(tmp_path, capsys, monkeypatch):
    from pystiffsens.study import _cli

    calls = []

    def stop_here(problem, *args, **kwargs):
        calls.append(problem)
        raise ValueError("stop here")

    monkeypatch.setattr(importlib.import_module("pystiffsens.study.sweep"), "sweep", stop_here)
    assert main(["sweep", "--out", str(tmp_path), *_TINY, "--stiffness", "1e2:1e4:3", "--option", "t_end=2"]) == 2
    assert "stop here" in capsys.readouterr().err and calls[0].tspan == (0.0, 2.0)
    assert _cli.knob_options(pss.problems.get("hires"), {"t_end": 2.0}) == []


# --- item 6: knob on an array parameter; a negative --stiffness --------------------------------------


def test_a_stiffness_knob_on_an_array_parameter_is_refused():
    with pytest.raises(ValueError, match=r"stiffness='k' names the parameter 'k' of shape \(3,\).*scalar entry"):
        Problem(lambda t, y, p: -p["k"][0] * y, y0=[1.0], tspan=(0.0, 1.0), params={"k": np.ones(3)}, stiffness="k")
    with pytest.raises(ValueError, match=r"stiffness='net' names the parameter 'net' holding a dict.*scalar entry"):
        Problem(lambda t, y, p: -p["net"]["w"] * y, y0=[1.0], tspan=(0.0, 1.0), params={"net": {"w": 1.0}},
                stiffness="net")
    # a callable knob sets one entry of an array
    Problem(lambda t, y, p: -p["k"][0] * y, y0=[1.0], tspan=(0.0, 1.0), params={"k": np.ones(3)},
            stiffness=lambda p, s: {**p, "k": p["k"].at[0].set(s)})


@pytest.mark.parametrize("flags", [["--stiffness", "-1:1e3:3"], ["--stiffness=-1:1e3:3"]])
def test_cli_negative_stiffness_gets_a_clear_message(tmp_path, capsys, flags):
    assert main(["sweep", "--out", str(tmp_path), *_TINY, *flags]) == 2
    err = capsys.readouterr().err
    assert "--stiffness '-1:1e3:3'" in err and "START=-1 must be positive" in err
    assert "expected one argument" not in err


def test_cli_negative_number_grid_values_parse(tmp_path):
    from pystiffsens.study import _cli

    with pytest.raises(ValueError, match=r"STOP=-3 must be positive"):
        _cli.parse_grid("1:-3:3")
    with pytest.raises(ValueError, match=r"START=1000 must be below STOP=10"):
        _cli.parse_grid("1e3:1e1:3")


def test_no_batch_runs_while_another_compiles(monkeypatch):
    """Each batch's wall_time_s is its own: a sweep never times a run while a compile is under way."""
    events, lock = [], threading.Lock()
    prepare = Batch.prepare

    def logged(kind, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        with lock:
            events.append((kind, start, time.perf_counter()))
        return out

    def timed_prepare(self, problem, stiffness):
        run = logged("compile", prepare, self, problem, stiffness)
        return lambda: logged("run", run)

    monkeypatch.setattr(Batch, "prepare", timed_prepare)
    frame = pss.sweep("dahlquist", [1.0, 10.0], ["ImplicitEuler", "Trapezoid", "BDF2"], "forward", dt=0.1,
                      progress=False)  # three batches: two groups of pss.study.sweep.COMPILE_THREADS = 2
    assert (frame["status"] == "Success").all() and (frame["compile_time_s"] > 0).all()
    runs = [(a, b) for kind, a, b in events if kind == "run"]
    compiles = [(a, b) for kind, a, b in events if kind == "compile"]
    assert len(runs) == len(compiles) == 3
    overlapping = [(run, compile) for run in runs for compile in compiles if run[0] < compile[1] and compile[0] < run[1]]
    assert not overlapping


def test_warnings_point_at_the_callers_line():
    """Warnings raised deep inside pystiffsens (through wrappers such as the float64 one) name the user's line."""
    with pytest.warns(RuntimeWarning, match="below 100 float64 machine epsilons") as caught:
        pss.solve("dahlquist", "Rodas5P", rtol=1e-20, max_steps=10)
    assert {w.filename for w in caught} == {__file__}
    with pytest.warns(RuntimeWarning, match="far from the closed-form gradient") as caught:
        pss.sweep("dahlquist", [10.0, 30.0], "ImplicitEuler", "forward", dt=0.1, progress=False)
    assert {w.filename for w in caught} == {__file__}
