"""Reliability (issue 14): no lost rows, damaged checkpoints refused, dt only where asked, flagged
wrong gradients, clear input errors, and a clean exit on bad --out or Ctrl-C."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import pystiffsens as pss
from pystiffsens.cli import INTERRUPTED, main
from pystiffsens.problem import Problem
from pystiffsens.study import compare, fit_decay, read_gradients, report, sweep
from pystiffsens.study.batch import Batch
from pystiffsens.study.schema import GRADIENT_COLUMNS, IDENTITY_COLUMNS

REPO = Path(__file__).resolve().parents[1]
GRID = "1e2:1e4:3"


def cli_sweep(out, *extra, solvers="ImplicitEuler", dt="1") -> list[str]:
    argv = ["sweep", "--out", str(out), "--no-progress", "--problem", "dahlquist", "--solvers", solvers,
            "--sensitivities", "forward", "--stiffness", GRID]
    return argv + (["--dt", dt] if dt is not None else []) + list(extra)


ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"}


def never_compile(*args, **kwargs):
    raise AssertionError("a batch was compiled although the sweep should have stopped first")


@pytest.fixture(scope="module")
def dahlquist_checkpoint(tmp_path_factory):
    """A real checkpoint: ImplicitEuler forward on dahlquist at 5 stiffness values."""
    out = tmp_path_factory.mktemp("checkpoint")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # single steps are far from the exact gradient
        frame = sweep("dahlquist", np.logspace(1, 3, 5), "ImplicitEuler", "forward", dt=1.0, progress=False, out_dir=out)
    return out / "gradients.csv", frame


def damaged_copy(tmp_path, source: Path, edit) -> Path:
    """``source`` copied into ``tmp_path`` with its lines passed through ``edit``."""
    lines = source.read_text().splitlines(keepends=True)
    target = tmp_path / "gradients.csv"
    target.write_text("".join(edit(lines)))
    return target


def set_field(line: str, column: str, value: str) -> str:
    fields = line.rstrip("\n").split(",")
    fields[GRADIENT_COLUMNS.index(column)] = value
    return ",".join(fields) + "\n"


# --- 1. reruns and concurrent sweeps never drop rows ----------------------------------------------


def test_reruns_with_other_solvers_and_tolerances_keep_every_row(tmp_path, capsys):
    assert main(cli_sweep(tmp_path)) == 0
    first = read_gradients(tmp_path / "gradients.csv")
    assert len(first) == 3
    assert main(cli_sweep(tmp_path, solvers="Trapezoid")) == 0
    assert main(cli_sweep(tmp_path, "--rtol", "1e-9")) == 0
    stored = read_gradients(tmp_path / "gradients.csv")
    assert len(stored) == 9
    assert sorted(zip(stored["solver"], stored["rtol"]))[::3] == [
        ("ImplicitEuler", 1e-9), ("ImplicitEuler", 1e-6), ("Trapezoid", 1e-6)]
    pd.testing.assert_frame_equal(stored.iloc[:3], first, check_exact=True)  # the first rows untouched
    # the report covers the whole directory: one fit per batch
    assert len(pd.read_csv(tmp_path / "fits.csv")) == 3
    assert len(pd.read_csv(tmp_path / "comparison.csv")) == 3
    capsys.readouterr()


def test_report_merges_into_the_checkpoint_instead_of_overwriting_it(tmp_path, dahlquist_checkpoint):
    path, frame = dahlquist_checkpoint
    (tmp_path / "gradients.csv").write_bytes(path.read_bytes())
    paths = report(frame.assign(solver="Trapezoid"), tmp_path)
    stored = read_gradients(paths["gradients"])
    assert len(stored) == 2 * len(frame) and set(stored["solver"]) == {"ImplicitEuler", "Trapezoid"}
    # a row with the same identity replaces the stored one instead of doubling it
    report(frame.assign(loss=frame["loss"] * 0 + 7.0), tmp_path)
    stored = read_gradients(paths["gradients"])
    assert len(stored) == 2 * len(frame)
    assert (stored.loc[stored["solver"] == "ImplicitEuler", "loss"] == 7.0).all()


WRITER = """
    import sys, time
    import numpy as np, pandas as pd
    from pystiffsens.study import resume
    template = pd.read_csv(sys.argv[1])
    checkpoint = resume.Checkpoint(sys.argv[2])      # both writers read the file before either writes
    time.sleep(2.0)
    for i in range(12):
        rows = template.assign(solver=sys.argv[3], stiffness=template["stiffness"] * (i + 2))
        checkpoint.append(rows)
        time.sleep(0.01)
"""


def test_two_processes_writing_one_checkpoint_keep_both_sets_of_rows(tmp_path, dahlquist_checkpoint):
    path, frame = dahlquist_checkpoint
    out = tmp_path / "shared"
    writers = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER), str(path), str(out), solver],
                         cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for solver in ("ImplicitEuler", "Trapezoid")
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=240)
        assert writer.returncode == 0, err
    stored = read_gradients(out / "gradients.csv")
    assert len(stored) == 2 * 12 * len(frame)
    assert stored.groupby("solver").size().to_dict() == {"ImplicitEuler": 12 * len(frame), "Trapezoid": 12 * len(frame)}
    assert not stored.duplicated(subset=list(IDENTITY_COLUMNS)).any()


# --- 2. damaged checkpoints ------------------------------------------------------------------------


def test_duplicated_rows_are_dropped_on_load_and_fit_counts_each_value_once(tmp_path, dahlquist_checkpoint,
                                                                            monkeypatch):
    path, frame = dahlquist_checkpoint
    doubled = damaged_copy(tmp_path, path, lambda lines: lines + lines[1:])
    with pytest.warns(RuntimeWarning, match=r"dropped 5 duplicated row\(s\)"):
        rows = read_gradients(doubled)
    assert len(rows) == 5
    monkeypatch.setattr(Batch, "prepare", never_compile)  # everything is in the checkpoint
    with pytest.warns(RuntimeWarning, match="dropped 5 duplicated"):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*far from the closed-form", category=RuntimeWarning)
            resumed = sweep("dahlquist", np.logspace(1, 3, 5), "ImplicitEuler", "forward", dt=1.0,
                            progress=False, out_dir=tmp_path)
    assert len(resumed) == 5
    assert fit_decay(resumed).iloc[0]["n_points"] == 5
    with pytest.raises(ValueError, match="repeat a stiffness value"):
        fit_decay(pd.concat([frame, frame]))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda lines: lines[:-1] + [lines[-1][: len(lines[-1]) // 2]], r"last line is truncated"),
        (lambda lines: lines[:-1] + [",".join(lines[-1].split(",")[:20]) + "\n"], r"line 6 .*is missing"),
        (lambda lines: [lines[0], set_field(lines[1], "grad", "abc"), *lines[2:]], r"line 2 .*grad='abc' is not a number"),
        (lambda lines: [lines[0], set_field(lines[1], "status", "Sucess"), *lines[2:]], r"line 2 .*status is not one of"),
        (lambda lines: [*lines[:3], set_field(lines[3], "abs_grad", "5.0"), *lines[4:]], r"line 4 .*abs_grad is not \|grad\|"),
        (lambda lines: [lines[0], set_field(lines[1], "n_steps", "1.5"), *lines[2:]], r"n_steps=1.5 must be an integer"),
        (lambda lines: [lines[0], set_field(lines[1], "stiffness", "-10"), *lines[2:]], r"stiffness must be positive"),
        (lambda lines: [lines[0], set_field(lines[1], "problem_id", "sha256:xyz"), *lines[2:]], r"problem_id is not"),
        (lambda lines: [lines[0], set_field(lines[1], "far_from_exact", "maybe"), *lines[2:]], r"must be True or False"),
        (lambda lines: lines + [set_field(lines[2], "loss", "0.5")], r"lines 3 and 7 .*different results"),
        (lambda lines: [*lines[:3], ",".join(["1"] * 60) + "\n", *lines[3:]], r"cannot be read as a gradient frame"),
        (lambda lines: [lines[0], ",".join(["1"] * 60) + "\n", *lines[1:]], r"line 2 has more fields than the header"),
    ],
    ids=["truncated", "short-row", "mistyped", "bad-status", "tampered-abs", "non-integer", "negative",
         "bad-id", "bad-flag", "conflict", "ragged", "ragged-first"],
)
def test_damaged_checkpoints_are_refused_naming_file_and_line(tmp_path, dahlquist_checkpoint, monkeypatch, edit,
                                                              message):
    path, _ = dahlquist_checkpoint
    damaged = damaged_copy(tmp_path, path, edit)
    with pytest.raises(ValueError, match=message) as error:
        read_gradients(damaged)
    assert str(damaged) in str(error.value)
    monkeypatch.setattr(Batch, "prepare", never_compile)  # refused before computing anything
    with pytest.raises(ValueError, match=message):
        sweep("dahlquist", np.logspace(1, 3, 5), "ImplicitEuler", "forward", dt=1.0, progress=False, out_dir=tmp_path)


def test_a_gradient_edited_together_with_abs_grad_is_caught_by_the_exact_error(tmp_path, flag_sweeps):
    frame, _ = flag_sweeps
    path = tmp_path / "gradients.csv"
    frame.to_csv(path, index=False)
    pd.testing.assert_frame_equal(read_gradients(path), frame, check_dtype=False, check_exact=True)
    lines = path.read_text().splitlines(keepends=True)
    grad = float(lines[1].split(",")[GRADIENT_COLUMNS.index("grad")])
    lines[1] = set_field(set_field(lines[1], "grad", repr(2 * grad)), "abs_grad", repr(abs(2 * grad)))
    path.write_text("".join(lines))
    with pytest.raises(ValueError, match=r"line 2 .*rel_error_exact does not follow from grad"):
        read_gradients(path)


# --- 3. dt applies to fixed-step solvers only ------------------------------------------------------


def test_dt_fixes_only_the_fixed_step_solvers_unless_adaptive_is_false():
    grid = [1e2, 1e3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mixed = sweep("dahlquist", grid, ["Rodas5P", "ImplicitEuler"], "forward", dt=0.5, progress=False)
        fixed = sweep("dahlquist", grid, "Rodas5P", "forward", dt=0.5, adaptive=False, progress=False)
    rodas = mixed[mixed["solver"] == "Rodas5P"]
    assert rodas["dt"].isna().all() and (rodas["n_steps"] > 2).all()
    euler = mixed[mixed["solver"] == "ImplicitEuler"]
    assert (euler["dt"] == 0.5).all() and (euler["n_steps"] == 2).all()
    assert (fixed["dt"] == 0.5).all() and (fixed["n_steps"] == 2).all()
    # adaptive steps follow the exact, exponential decay far further than two fixed steps do
    assert (np.abs(rodas["grad"].to_numpy()) < 1e-6 * np.abs(fixed["grad"].to_numpy())).all()


def test_dt_that_no_solver_would_use_needs_an_explicit_choice(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"dt=0.5 applies to the fixed-step solvers .* adaptive=False"):
        sweep("dahlquist", [1e2], "Rodas5P", "forward", dt=0.5)
    with pytest.raises(ValueError, match=r"adaptive=False takes fixed steps of dt: give dt="):
        sweep("dahlquist", [1e2], "Rodas5P", "forward", adaptive=False)
    with pytest.raises(ValueError, match=r"adaptive='no' must be True or False"):
        sweep("dahlquist", [1e2], "ImplicitEuler", "forward", dt=0.5, adaptive="no")
    assert main(cli_sweep(tmp_path, solvers="Rodas5P")) == 2
    assert "applies to the fixed-step solvers" in capsys.readouterr().err
    assert not (tmp_path / "gradients.csv").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert main(cli_sweep(tmp_path, "--no-adaptive", solvers="Rodas5P")) == 0
    stored = read_gradients(tmp_path / "gradients.csv")
    assert (stored["dt"] == 1.0).all() and (stored["n_steps"] == 1).all()
    capsys.readouterr()


# --- 4. gradients far from the exact ones are flagged ----------------------------------------------


def _decay(t, y, p):
    return -p["lam"] * y


def _true_solution(t, p):
    return jnp.exp(-p["lam"] * t) * jnp.ones(1)


def _wrong_solution(t, p):  # a quarter of the true solution: every exact gradient g/4 instead of g
    return 0.25 * jnp.exp(-p["lam"] * t) * jnp.ones(1)


@pytest.fixture(scope="module")
def flag_sweeps():
    """Rodas5P forward on y' = -lam*y, against its true closed form and against a wrong one; the
    frame and the warning messages of the two sweeps."""
    frames, messages = [], []
    for name, exact in (("true", _true_solution), ("wrong", _wrong_solution)):
        problem = Problem(_decay, y0=[1.0], tspan=(0.0, 1.0), params={"lam": 1.0}, stiffness="lam", name=name,
                          exact_solution=exact)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            frames.append(sweep(problem, [0.5, 1.0, 2.0], "Rodas5P", "forward", rtol=1e-9, atol=1e-12, progress=False))
        messages.append([str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)])
    return pd.concat(frames, ignore_index=True), messages


def test_gradients_far_from_exact_are_flagged_warned_and_reported(tmp_path, flag_sweeps):
    frame, (true_warnings, wrong_warnings) = flag_sweeps
    true, wrong = frame[frame["problem"] == "true"], frame[frame["problem"] == "wrong"]
    assert (true["rel_error_exact"] < 1e-6).all() and not true["far_from_exact"].any()
    np.testing.assert_allclose(wrong["rel_error_exact"], 3.0, rtol=1e-6)  # |g - g/4| / |g/4|
    assert wrong["far_from_exact"].all() and (wrong["status"] == "Success").all()  # SciML's words kept
    assert not any("far from the closed-form" in message for message in true_warnings)
    assert any(message.startswith("3 of 3 gradient rows are far from the closed-form gradient")
               and "wrong Rodas5P/ForwardDiffSensitivity: 3 row(s)" in message for message in wrong_warnings)
    table = compare(frame)
    assert list(table["n_far_from_exact"]) == [0, 3]
    summary = report(frame, tmp_path)["summary"].read_text()
    section = summary.split("## Gradients far from the exact ones")[1]
    assert "**3 of 6 rows**" in section and "| wrong | Rodas5P | ForwardDiffSensitivity |" in section
    assert "| true |" not in section


# --- 6. clear errors for bad problems and options --------------------------------------------------


def _rhs(t, y, p):
    return -p["lam"] * y


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(stiffness=lambda p, s: {**p, "lamda": s}), r"\['lamda'\] not in params .*valid names: \['lam'\]"),
        (dict(stiffness=lambda p, s: dict(p)), r"sets no parameter from s"),
        (dict(stiffness=lambda p, s: {**p, "lam": jnp.full(2, s)}), r"sets 'lam' to an array of shape \(2,\)"),
        (dict(stiffness=lambda p, s: s), r"must return the params dict"),
        (dict(loss=lambda ts, ys, p: ys[-1]), r"loss\(ts, ys, p\) must return a scalar, but returns an array of shape \(1,\)"),
        (dict(rhs=lambda t, y, p: -p["k"] * y), r"rhs\(t, y, p\) reads the parameter 'k', which params does not have; valid names: \['lam'\]"),
        (dict(loss=lambda ts, ys, p: p["mu"] * ys[-1, 0]), r"loss\(ts, ys, p\) reads the parameter 'mu'"),
        (dict(rhs=lambda t, y, p: (-p["lam"] * y,)), r"rhs\(t, y, p\) must return one array .* but returns a tuple of 1 items"),
        (dict(rhs=lambda t, y, p: -p["lam"] * jnp.ones(3)), r"rhs returns shape \(3,\) but y0 has shape \(1,\)"),
        (dict(rhs=lambda t, y, p: jnp.dot(jnp.ones(4), y)), r"rhs\(t, y, p\) cannot be evaluated with JAX: TypeError"),
        (dict(params={"lam": "10"}), r"params\['lam'\]='10' must be a real number"),
        (dict(exact_solution=lambda t, p: p["c"] * t), r"exact_solution\(t, p\) reads the parameter 'c'"),
    ],
    ids=["knob-new-key", "knob-no-change", "knob-shape", "knob-not-dict", "vector-loss", "missing-key",
         "loss-missing-key", "tuple-rhs", "rhs-shape", "rhs-type-error", "string-param", "exact-missing-key"],
)
def test_bad_problems_are_refused_at_construction(changes, message):
    arguments = dict(rhs=_rhs, y0=[1.0], tspan=(0.0, 1.0), params={"lam": 1.0}, stiffness="lam")
    with pytest.raises(ValueError, match=message):
        Problem(**{**arguments, **changes})


def test_every_builtin_problem_passes_the_construction_checks():
    for name in pss.problems.names():
        problem = pss.problems.get(name)
        assert problem.with_stiffness(2.0).params.keys() == problem.params.keys()


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(rtol="1e-6"), r"rtol='1e-6' must be a real number \(got str\)"),
        (dict(atol="tiny"), r"atol='tiny' must be a real number"),
        (dict(rtol=True), r"rtol=True must be a real number \(got bool\)"),
        (dict(max_steps=True), r"max_steps=True must be a positive integer"),
    ],
)
def test_options_of_the_wrong_type_are_value_errors(options, message):
    problem = pss.problems.get("dahlquist")
    with pytest.raises(ValueError, match=message):
        pss.solve(problem, "Rodas5P", **options)
    with pytest.raises(ValueError, match=message):
        sweep(problem, [1e2], "Rodas5P", "forward", **options)


def test_arguments_equal_to_accepted_ones_are_still_checked():
    """1000.0 == 1000 and 1 == True: a call that repeats accepted values with another type is not served from
    the caches of resolved arguments."""
    problem = pss.problems.get("dahlquist")
    assert pss.solve(problem, "Rodas5P", max_steps=1000, adaptive=True).success
    assert pss.gradient(problem, "Rodas5P", max_steps=1000, adaptive=True).success
    for options, message in ((dict(max_steps=1000.0, adaptive=True), r"max_steps=1000.0 must be a positive integer"),
                             (dict(max_steps=1000, adaptive=1), r"adaptive=1 must be None, True or False")):
        with pytest.raises(ValueError, match=message):
            pss.solve(problem, "Rodas5P", **options)
        with pytest.raises(ValueError, match=message):
            pss.gradient(problem, "Rodas5P", **options)


# --- 7. the output path is checked first; Ctrl-C exits cleanly -------------------------------------


def test_out_that_is_a_file_or_under_a_file_fails_before_computing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Batch, "prepare", never_compile)
    a_file = tmp_path / "taken"
    a_file.write_text("not a directory")
    assert main(cli_sweep(a_file)) == 2
    assert f"out_dir '{a_file}' is a file, not a directory" in capsys.readouterr().err
    assert main(cli_sweep(a_file / "sub")) == 2
    assert f"'{a_file}' is a file, not a directory" in capsys.readouterr().err
    assert main(["demo", "--out", str(a_file), "--no-progress"]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err
    with pytest.raises(ValueError, match="is a file"):
        sweep("dahlquist", [1e2], "ImplicitEuler", "forward", dt=1.0, out_dir=a_file)
    assert a_file.read_text() == "not a directory"


def _unwritable_dir(tmp_path) -> Path:
    """A directory this process cannot write to: read-only for a normal user; under /sys for root,
    who writes through file permissions."""
    if os.geteuid() != 0:
        locked = tmp_path / "read-only"
        locked.mkdir()
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
        return locked
    candidate = Path("/sys/pystiffsens-test-out")
    try:
        candidate.mkdir()
    except OSError:
        return candidate
    candidate.rmdir()
    pytest.skip("running as root where /sys is writable: no directory to test an unwritable --out with")


def test_unwritable_out_fails_before_computing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Batch, "prepare", never_compile)
    locked = _unwritable_dir(tmp_path)
    try:
        assert main(cli_sweep(locked)) == 2
        err = capsys.readouterr().err
        assert err.startswith("pystiffsens sweep: error: ") and f"out_dir '{locked}' is not writable" in err
    finally:
        if locked.is_relative_to(tmp_path):
            locked.chmod(stat.S_IRWXU)


INTERRUPTIBLE = """
    import faulthandler, signal, sys, time
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test asks for a traceback if it hangs
    # A terminal's Ctrl-C: under pytest-xdist the child was seen starting with SIGINT and SIGQUIT
    # ignored (inherited from the worker, as while C's system() runs in another thread of it).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from pystiffsens.cli import main
    import importlib
    Batch = importlib.import_module("pystiffsens.study.batch").Batch
    real = Batch.prepare

    def slow_trapezoid(batch, problem, stiffness):
        run = real(batch, problem, stiffness)
        if batch.solver.name != "Trapezoid":
            return run
        def forever():
            print("waiting for Ctrl-C", flush=True)
            time.sleep(600)
        return forever

    Batch.prepare = slow_trapezoid
    sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_exits_130_saying_what_was_kept(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-W", "ignore::RuntimeWarning", "-c", textwrap.dedent(INTERRUPTIBLE),
         *cli_sweep(tmp_path, solvers="ImplicitEuler,Trapezoid")],
        cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout.readline().strip() == "waiting for Ctrl-C"
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            status = Path(f"/proc/{process.pid}/status")  # Linux; elsewhere no masks are shown
            lines = status.read_text().splitlines() if status.exists() else []
            masks = [line for line in lines if line.startswith(("SigPnd", "ShdPnd", "SigBlk", "SigIgn"))]
            process.send_signal(signal.SIGUSR1)  # every thread's traceback, to stderr
            time.sleep(2)
            process.kill()
            _, err = process.communicate()
            pytest.fail(f"no exit 120 s after Ctrl-C; signal masks {masks}; stderr:\n{err}")
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == INTERRUPTED, err
    assert "Traceback" not in err
    checkpoint = tmp_path / "gradients.csv"
    assert f"pystiffsens sweep: interrupted. 3 gradient rows are kept in {checkpoint}; rerun the same command" in err
    kept = read_gradients(checkpoint)
    assert list(kept["solver"]) == ["ImplicitEuler"] * 3
