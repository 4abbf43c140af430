"""Sweeps, decay fits, comparisons, reports and resuming (pystiffsens.study)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import pystiffsens as pss
from pystiffsens.backends.julia import JuliaNotFoundError, api
from pystiffsens.problem import Problem
from pystiffsens.results import GradientResult
from pystiffsens.returncode import ReturnCode
from pystiffsens.study import compare, demo, fit_decay, read_gradients, report, resume, sweep
from pystiffsens.study.batch import Batch
from pystiffsens.study.compare import COMPARE_COLUMNS
from pystiffsens.study.fit import FIT_COLUMNS
from pystiffsens.study.schema import COUNTER_COLUMNS, GRADIENT_COLUMNS, KEY_COLUMNS

TIMING = ["wall_time_s", "compile_time_s"]


def synthetic_frame(exponents, *, noise=0.0, seed=0, stiffness=np.logspace(1, 6, 11), problem="toy",
                    solvers=("ImplicitEuler",), sensitivities=("ForwardDiffSensitivity",), dt=np.nan):
    """A gradient frame with |grad| = 3 * stiffness**p * 10**(noise * N(0, 1)) for each param: p."""
    rng = np.random.default_rng(seed)
    rows = []
    for solver in solvers:
        for sensitivity in sensitivities:
            for s in stiffness:
                for param, p in exponents.items():
                    grad = -3.0 * s**p * 10 ** (noise * rng.standard_normal())
                    rows.append(
                        dict(problem=problem, problem_id="sha256:" + "0" * 12, backend="jax", device="cpu", rtol=1e-6, atol=1e-8,
                             dt=dt, max_steps=100_000, solver=solver, sensitivity=sensitivity, stiffness=s, param=param,
                             grad=grad, abs_grad=abs(grad), exact_grad=-3.0 * s**p, loss=1.0, status="Success",
                             **{name: 4 for name in COUNTER_COLUMNS}, wall_time_s=1e-3, compile_time_s=0.5)
                    )
    return with_flags(pd.DataFrame(rows, columns=list(GRADIENT_COLUMNS)))


def with_flags(frame):
    """``frame`` with rel_error_exact and far_from_exact recomputed from its gradients."""
    frame = frame.copy()
    frame["rel_error_exact"] = resume.rel_error_exact(frame)
    frame["far_from_exact"] = resume.far_from_exact(frame["rel_error_exact"].to_numpy())
    return frame


# --- fits, comparison and report on synthetic frames -------------------------------------------


def test_fit_recovers_exact_exponent_without_noise():
    fits = fit_decay(synthetic_frame({"a": -2.0, "b": -0.5}))
    assert list(fits.columns) == list(FIT_COLUMNS)
    assert list(fits["param"]) == ["a", "b"]
    np.testing.assert_allclose(fits["exponent"], [-2.0, -0.5], atol=1e-10)
    np.testing.assert_allclose(fits["intercept"], np.log10(3.0), atol=1e-10)
    np.testing.assert_allclose(fits["exact_exponent"], [-2.0, -0.5], atol=1e-10)
    np.testing.assert_allclose(fits["r2"], 1.0)
    assert (fits["n_points"] == 11).all() and (fits["n_failed"] == 0).all()
    np.testing.assert_allclose(fits["theory_exponent"], -2.0)  # ImplicitEuler: |R'(z)| ~ |z|^-2


def test_fit_with_noise_brackets_known_exponent():
    fits = fit_decay(synthetic_frame({"a": -1.5}, noise=0.1, seed=3, stiffness=np.logspace(1, 7, 25)))
    row = fits.iloc[0]
    assert 0 < row["exponent_se"] < 0.05
    assert row["exponent_ci_lower"] < -1.5 < row["exponent_ci_upper"]
    assert abs(row["exponent"] + 1.5) < 4 * row["exponent_se"]
    assert 0.9 < row["r2"] < 1.0


def test_fit_leaves_out_failed_and_zero_rows_and_restricts_range():
    frame = synthetic_frame({"a": -2.0})
    frame.loc[0, ["status", "grad", "abs_grad"]] = ["MaxIters", np.nan, np.nan]
    frame.loc[1, ["grad", "abs_grad"]] = 0.0
    row = fit_decay(frame).iloc[0]
    assert (row["n_failed"], row["n_zero"], row["n_points"]) == (1, 1, 9)
    assert row["stiffness_min"] == pytest.approx(frame.loc[2, "stiffness"])
    assert row["exponent"] == pytest.approx(-2.0)
    ranged = fit_decay(frame, min_stiffness=1e3, max_stiffness=1e5).iloc[0]
    assert (ranged["stiffness_min"], ranged["stiffness_max"], ranged["n_points"]) == (1e3, 1e5, 5)
    too_few = fit_decay(frame, min_stiffness=1e5).iloc[0]
    assert too_few["n_points"] == 3 and np.isfinite(too_few["exponent"])
    two = fit_decay(frame, min_stiffness=2e5).iloc[0]
    assert two["n_points"] == 2 and np.isnan(two["exponent"]) and np.isnan(two["exponent_se"])


def test_fit_theory_is_nan_for_variable_order_bdf_and_groups_by_dt():
    frame = pd.concat([synthetic_frame({"a": -1.0}, solvers=("FBDF",)),
                       synthetic_frame({"a": -1.0}, solvers=("FBDF",), dt=0.1)])
    fits = fit_decay(frame)
    assert len(fits) == 2 and fits["theory_exponent"].isna().all() and fits["theory_n_step_exponent"].isna().all()


def test_fit_n_step_theory_for_fixed_step_rows():
    frame = pd.concat([synthetic_frame({"a": -1.0}, solvers=("ImplicitEuler", "Trapezoid"), dt=0.25),
                       synthetic_frame({"a": -1.0}, solvers=("ImplicitEuler",))], ignore_index=True)
    fits = fit_decay(frame)  # synthetic solves take 4 steps
    # after n implicit-Euler steps dy_n/dz ~ z^-(n+1); the trapezoidal rule keeps z^-2
    assert list(fits["theory_n_step_exponent"].fillna(0.0)) == [-5.0, -2.0, 0.0]
    frame.loc[frame.index[0], "n_steps"] = 5  # unequal step counts: no single n
    assert np.isnan(fit_decay(frame)["theory_n_step_exponent"].iloc[0])


def test_fit_rejects_bad_input():
    with pytest.raises(ValueError, match="min_stiffness=10.0 exceeds max_stiffness=1.0"):
        fit_decay(synthetic_frame({"a": -1.0}), min_stiffness=10.0, max_stiffness=1.0)
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['exact_grad'\]"):
        fit_decay(synthetic_frame({"a": -1.0}).drop(columns="exact_grad"))


def test_compare_lists_steepest_exponent_cost_and_failures():
    frame = pd.concat([
        synthetic_frame({"slow": 0.0, "fast": -2.0}, solvers=("Rodas5P", "KenCarp4"),
                        sensitivities=("ForwardDiffSensitivity", "InterpolatingAdjoint")),
    ], ignore_index=True)
    failed = (frame["solver"] == "KenCarp4") & (frame["stiffness"] == frame["stiffness"].max())
    frame.loc[failed, ["status", "grad", "abs_grad"]] = ["Unstable", np.nan, np.nan]
    frame.loc[frame["solver"] == "Rodas5P", "wall_time_s"] = 2e-3
    table = compare(frame)
    assert list(table.columns) == list(COMPARE_COLUMNS)
    assert list(zip(table["solver"], table["sensitivity"])) == [
        ("Rodas5P", "ForwardDiffSensitivity"), ("Rodas5P", "InterpolatingAdjoint"),
        ("KenCarp4", "ForwardDiffSensitivity"), ("KenCarp4", "InterpolatingAdjoint"),
    ]
    np.testing.assert_allclose(table["exponent"], -2.0)
    assert (table["exponent_param"] == "fast").all()
    assert list(table["n_failures"]) == [0, 0, 1, 1] and (table["n_values"] == 11).all()
    assert list(table["median_wall_time_s"]) == [2e-3, 2e-3, 1e-3, 1e-3]
    assert (table["median_n_steps"] == 4).all()


def test_report_writes_files_that_round_trip(tmp_path):
    frame = pd.concat([synthetic_frame({"lam": -2.0, "w[0]": 0.1}, solvers=("ImplicitEuler", "FBDF")),
                       synthetic_frame({"k": -1.0}, problem="other", dt=0.5)], ignore_index=True)
    frame.loc[2, ["status", "grad", "abs_grad"]] = ["MaxIters", np.nan, np.nan]
    frame.loc[frame["problem"] == "other", ["status", "grad", "abs_grad"]] = ["ConvergenceFailure", np.nan, np.nan]
    frame = with_flags(frame)
    paths = report(frame, tmp_path / "out")
    expected = {"gradients.csv", "gradients.csv.lock", "fits.csv", "comparison.csv", "gradients_toy.png",
                "gradients_other.png", "comparison.png", "summary.md"}
    assert {p.name for p in (tmp_path / "out").iterdir()} == expected
    fits = fit_decay(frame)
    pd.testing.assert_frame_equal(pd.read_csv(paths["gradients"]), frame, check_dtype=False, check_exact=True)
    pd.testing.assert_frame_equal(pd.read_csv(paths["fits"]), fits, check_dtype=False, check_exact=True)
    pd.testing.assert_frame_equal(pd.read_csv(paths["comparison"]), compare(frame, fits),
                                  check_dtype=False, check_exact=True)
    pd.testing.assert_frame_equal(read_gradients(paths["gradients"]), frame, check_dtype=False, check_exact=True)
    summary = paths["summary"].read_text()
    for name in ("comparison.png", "gradients_toy.png", "gradients_other.png"):
        assert f"]({name})" in summary
    # fitted exponents next to the theory exponents: ImplicitEuler has -2, FBDF none
    assert "| lam | ImplicitEuler | ForwardDiffSensitivity | -2.0" in summary
    ie_row = next(line for line in summary.splitlines() if line.startswith("| lam | ImplicitEuler"))
    fbdf_row = next(line for line in summary.splitlines() if line.startswith("| lam | FBDF"))
    assert ie_row.split(" | ")[7] == "-2" and fbdf_row.split(" | ")[7] == "n/a"
    assert ie_row.split(" | ")[8] == "n/a"  # adaptive rows (dt NaN) have no n-step theory
    assert "| other | ImplicitEuler | ForwardDiffSensitivity | n/a | n/a |" in summary  # nothing to fit
    assert "| 0/11 |" in summary and "| 11/11 |" in summary


def test_report_rejects_non_gradient_frames(tmp_path):
    with pytest.raises(ValueError, match="lacks the column"):
        report(pd.DataFrame({"grad": [1.0]}), tmp_path)
    with pytest.raises(ValueError, match="frame is empty"):
        report(synthetic_frame({"a": -1.0}).iloc[:0], tmp_path)


# --- checkpoint logic ---------------------------------------------------------------------------


def _key(frame, **changes):
    return {**{column: frame[column].iloc[0] for column in KEY_COLUMNS}, **changes}


def test_checkpoint_matches_key_and_stiffness(tmp_path):
    frame = synthetic_frame({"a": -1.0}, stiffness=np.array([10.0, 100.0]))
    checkpoint = resume.Checkpoint(tmp_path)
    checkpoint.append(frame)
    reread = resume.Checkpoint(tmp_path)
    pd.testing.assert_frame_equal(reread.rows, frame, check_dtype=False, check_exact=True)
    grid = np.array([10.0, 100.0, 1000.0])
    done = reread.done(_key(frame), grid)
    assert len(done) == 2
    assert list(resume.missing(done, grid)) == [False, False, True]
    assert reread.done(_key(frame, rtol=1e-7), grid).empty
    assert reread.done(_key(frame, dt=0.1), grid).empty
    assert reread.done(_key(frame, solver="Trapezoid"), grid).empty
    assert reread.done(_key(frame, problem_id="sha256:" + "1" * 12), grid).empty
    assert not (tmp_path / "gradients.csv.partial").exists()


def test_checkpoint_rejects_foreign_csv(tmp_path):
    pd.DataFrame({"x": [1]}).to_csv(tmp_path / "gradients.csv", index=False)
    with pytest.raises(ValueError, match="is not a gradient frame"):
        resume.Checkpoint(tmp_path)


def test_problem_id_tracks_problem_data():
    base = pss.problems.get("dahlquist")
    assert resume.problem_id(base) == resume.problem_id(pss.problems.get("dahlquist"))
    assert resume.problem_id(base) != resume.problem_id(pss.problems.get("dahlquist", t_end=2.0))
    assert resume.problem_id(base) != resume.problem_id(pss.problems.get("dahlquist", lam=5.0))


# --- sweeps through the engine (tiny: dahlquist, a single fixed step) ----------------------------

DAHLQUIST_GRID = np.logspace(2, 6, 5)


def test_sweep_frame_schema_and_single_step_exponent():
    frame = sweep("dahlquist", DAHLQUIST_GRID, "ImplicitEuler", "forward", dt=1.0, progress=False)
    assert list(frame.columns) == list(GRADIENT_COLUMNS)
    assert len(frame) == DAHLQUIST_GRID.size  # one parameter, lam
    assert (frame["status"] == "Success").all()
    assert (frame["sensitivity"] == "ForwardDiffSensitivity").all() and (frame["param"] == "lam").all()
    np.testing.assert_array_equal(frame["stiffness"], DAHLQUIST_GRID)
    assert frame["dt"].eq(1.0).all() and frame["problem"].eq("dahlquist").all()
    # one implicit Euler step: y1 = 1/(1 + lam), dy1/dlam = -1/(1 + lam)^2
    np.testing.assert_allclose(frame["grad"], -1.0 / (1.0 + DAHLQUIST_GRID) ** 2, rtol=1e-10)
    np.testing.assert_allclose(frame["exact_grad"], -np.exp(-DAHLQUIST_GRID))
    assert (frame["n_steps"] == 1).all() and (frame["backward_n_steps"] == -1).all()
    assert (frame["wall_time_s"] > 0).all() and (frame["compile_time_s"] > 0).all()
    for column in ("n_steps", "n_rejected", "n_f", "n_jac", "n_lu", "max_steps"):
        assert frame[column].dtype == np.int64
    fit = fit_decay(frame).iloc[0]
    assert abs(fit["exponent"] + 2.0) < 0.05
    assert fit["theory_exponent"] == -2.0 and fit["theory_n_step_exponent"] == -2.0


def _decaying(t, y, p):
    # finite for lam <= 1e4, NaN beyond: the lanes above 1e4 must fail alone
    return -p["lam"] * y + jnp.where(p["lam"] > 1e4, jnp.nan, 0.0)


def test_failed_stiffness_values_do_not_spoil_the_others():
    problem = Problem(_decaying, y0=[1.0], tspan=(0.0, 1.0), params={"lam": 1.0}, stiffness="lam", name="fails")
    frame = sweep(problem, DAHLQUIST_GRID, "ImplicitEuler", "forward", dt=1.0, progress=False)
    good = frame["stiffness"] <= 1e4
    assert (frame.loc[good, "status"] == "Success").all()
    assert (frame.loc[~good, "status"] != "Success").all() and frame.loc[~good, "grad"].isna().all()
    np.testing.assert_allclose(frame.loc[good, "grad"], -1.0 / (1.0 + DAHLQUIST_GRID[:3]) ** 2, rtol=1e-10)
    assert frame["exact_grad"].isna().all()
    assert fit_decay(frame).iloc[0]["n_failed"] == 2


def test_interrupted_sweep_resumes_to_the_uninterrupted_frame(tmp_path, monkeypatch):
    solvers = ["ImplicitEuler", "Trapezoid"]
    args = ("dahlquist", DAHLQUIST_GRID, solvers, "forward")
    uninterrupted = sweep(*args, dt=1.0, progress=False)

    real_prepare = Batch.prepare
    calls = []

    def interrupt_trapezoid(batch, problem, stiffness):
        if batch.solver.name == "Trapezoid":
            raise KeyboardInterrupt
        return real_prepare(batch, problem, stiffness)

    monkeypatch.setattr(Batch, "prepare", interrupt_trapezoid)
    with pytest.raises(KeyboardInterrupt):
        sweep(*args, dt=1.0, progress=False, out_dir=tmp_path)
    partial = read_gradients(tmp_path / "gradients.csv")
    assert list(partial["solver"].unique()) == ["ImplicitEuler"]

    def record(batch, problem, stiffness):
        calls.append(batch.solver.name)
        return real_prepare(batch, problem, stiffness)

    monkeypatch.setattr(Batch, "prepare", record)
    resumed = sweep(*args, dt=1.0, progress=False, out_dir=tmp_path)
    assert calls == ["Trapezoid"]
    pd.testing.assert_frame_equal(resumed.drop(columns=TIMING), uninterrupted.drop(columns=TIMING),
                                  check_dtype=False, check_exact=True)
    on_disk = read_gradients(tmp_path / "gradients.csv")
    pd.testing.assert_frame_equal(on_disk.drop(columns=TIMING), uninterrupted.drop(columns=TIMING),
                                  check_dtype=False, check_exact=True)


def test_sweep_rejects_bad_options_before_computing():
    with pytest.raises(ValueError, match="Unknown solver 'Rodas9'"):
        sweep("dahlquist", DAHLQUIST_GRID, ["ImplicitEuler", "Rodas9"], "forward", dt=1.0)
    with pytest.raises(ValueError, match="needs dt="):
        sweep("dahlquist", DAHLQUIST_GRID, "ImplicitEuler", "forward")
    with pytest.raises(ValueError, match="Unknown sensitivity"):
        sweep("dahlquist", DAHLQUIST_GRID, "Rodas5P", "sideways")
    with pytest.raises(ValueError, match="names the same method twice"):
        sweep("dahlquist", DAHLQUIST_GRID, "Rodas5P", ["forward", "ForwardDiffSensitivity"])
    with pytest.raises(ValueError, match="positive finite"):
        sweep("dahlquist", [10.0, -1.0], "Rodas5P", "forward")
    with pytest.raises(ValueError, match="repeated values"):
        sweep("dahlquist", [10.0, 10.0], "Rodas5P", "forward")
    with pytest.raises(ValueError, match="Unknown problem 'dalquist'"):
        sweep("dalquist", DAHLQUIST_GRID, "Rodas5P", "forward")
    with pytest.raises(ValueError, match="Unknown device 'tpu'"):
        sweep("dahlquist", DAHLQUIST_GRID, "Rodas5P", "forward", device="tpu")


def _fake_ensemble(problem, stiffness_values, solver, sensitivity, options, *, device):
    """Stands in for the Julia ensemble: one implicit-Euler step's gradient per value."""
    assert options.dt == 1.0 and solver.julia == "ImplicitEuler"
    return [
        GradientResult(loss=1.0 / (1.0 + s), grad={"lam": np.asarray(-1.0 / (1.0 + s) ** 2)}, status=ReturnCode.Success,
                       stats={"n_steps": 1, "n_rejected": 0, "n_f": 2, "n_jac": 1, "n_lu": 1}, solver=solver.name,
                       sensitivity=sensitivity, backend="julia", device=device)
        for s in stiffness_values
    ]


def test_julia_backend_batches_go_through_the_ensemble(monkeypatch):
    monkeypatch.setattr(api, "gradient_ensemble", _fake_ensemble)
    frame = sweep("dahlquist", DAHLQUIST_GRID, "ImplicitEuler", ["QuadratureAdjoint", "forward"], dt=1.0,
                  backend="julia", progress=False)
    assert list(frame["sensitivity"].unique()) == ["QuadratureAdjoint", "ForwardDiffSensitivity"]
    assert (frame["backend"] == "julia").all() and frame["compile_time_s"].isna().all()
    np.testing.assert_allclose(frame["grad"], np.tile(-1.0 / (1.0 + DAHLQUIST_GRID) ** 2, 2))
    assert (frame["backward_n_steps"] == -1).all()


def test_julia_errors_propagate_and_record_nothing(tmp_path, monkeypatch):
    def no_julia(*args, **kwargs):
        raise JuliaNotFoundError("no Julia here")

    monkeypatch.setattr(api, "gradient_ensemble", no_julia)
    with pytest.raises(JuliaNotFoundError, match="no Julia here"):
        sweep("dahlquist", DAHLQUIST_GRID, "ImplicitEuler", "forward", dt=1.0, backend="julia", out_dir=tmp_path)
    assert not (tmp_path / "gradients.csv").exists()
    with pytest.raises(ValueError, match="Unknown sensitivity 'QuadratureAdjont'"):
        sweep("dahlquist", DAHLQUIST_GRID, "Rodas5P", "QuadratureAdjont", backend="julia")


@pytest.mark.skipif(any(d.platform == "gpu" for d in jax.devices()), reason="a GPU is present")
def test_cuda_reaches_the_engine_which_reports_the_missing_gpu(tmp_path):
    with pytest.raises(RuntimeError, match="No CUDA device"):
        sweep("dahlquist", DAHLQUIST_GRID, "ImplicitEuler", "forward", dt=1.0, device="cuda", out_dir=tmp_path)
    assert not (tmp_path / "gradients.csv").exists()


def test_demo_writes_a_report_that_parses(tmp_path):
    case = demo.DemoCase("dahlquist", {}, (1e2, 1e4), dt=1.0)
    paths = demo.run(tmp_path, cases=(case,), n_stiffness=3, adaptive=(), fixed=("ImplicitEuler",),
                     sensitivities=("forward",), progress=False)
    for name in ("gradients.csv", "fits.csv", "comparison.csv", "comparison.png", "gradients_dahlquist.png", "summary.md"):
        assert (tmp_path / name).stat().st_size > 0
    assert list(read_gradients(paths["gradients"]).columns) == list(GRADIENT_COLUMNS)
    assert list(pd.read_csv(paths["fits"]).columns) == list(FIT_COLUMNS)
    assert len(pd.read_csv(paths["comparison"])) == 1
    assert "ImplicitEuler" in paths["summary"].read_text()
