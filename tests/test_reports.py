"""Reports that show what matters (issue 25, items 4, 5, 6 and 8): the stiffness knob first and
left-out entries named, compile time kept out of the cost column, clear errors, and a demo
whose warnings and figures explain themselves."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import pystiffsens as pss
from pystiffsens.cli import main
from pystiffsens.problem import Problem
from pystiffsens.results import flatten_params
from pystiffsens.study import compare, demo, fit_decay, plots, report, resume
from pystiffsens.study.fit import rank_entries
from pystiffsens.study.schema import COUNTER_COLUMNS, GRADIENT_COLUMNS
from pystiffsens.theory import plot_stability

REPO = Path(__file__).resolve().parents[1]
GRID = np.logspace(1, 4, 4)


def gradient_frame(sizes: dict[str, float], *, exponents=None, problem="toy", solvers=("ImplicitEuler",),
                   dt=np.nan, wall_time_s=1e-3, compile_time_s=0.5) -> pd.DataFrame:
    """A gradient frame with grad = -size * (stiffness / 10)**p per entry (p from ``exponents``,
    default 0), exact gradients equal to it, one row per solver, stiffness value and entry."""
    exponents = exponents or {}
    rows = []
    for solver in solvers:
        for s in GRID:
            for param, size in sizes.items():
                grad = -size * (s / 10.0) ** exponents.get(param, 0.0)
                rows.append(dict(
                    problem=problem, problem_id="sha256:" + "0" * 12, backend="jax", device="cpu", rtol=1e-6,
                    atol=1e-8, dt=dt, max_steps=100_000, solver=solver, sensitivity="ForwardDiffSensitivity",
                    stiffness=s, param=param, grad=grad, abs_grad=abs(grad), exact_grad=grad, loss=1.0,
                    status="Success", **{name: 4 for name in COUNTER_COLUMNS}, wall_time_s=wall_time_s,
                    compile_time_s=compile_time_s,
                ))
    return flagged(pd.DataFrame(rows, columns=list(GRADIENT_COLUMNS)))


def flagged(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with rel_error_exact and far_from_exact recomputed from its gradients."""
    frame = frame.copy()
    frame["rel_error_exact"] = resume.rel_error_exact(frame)
    frame["far_from_exact"] = resume.far_from_exact(frame["rel_error_exact"].to_numpy())
    return frame


def network_problem() -> Problem:
    """61 parameter entries, the stiffness knob ``lam`` last: a 6 x 10 weight matrix, then lam."""
    return Problem(lambda t, y, p: -p["lam"] * y + 0.0 * jnp.sum(p["W"]), y0=[1.0], tspan=(0.0, 1.0),
                   params={"W": np.zeros((6, 10)), "lam": 1.0}, stiffness="lam", name="network")


def network_frame() -> pd.DataFrame:
    """The rows of :func:`network_problem`: row 0 of W has zero gradients, the other W entries
    constant ones that grow along the matrix, and lam the smallest gradient, decaying as s^-2."""
    sizes = {f"W[{i},{j}]": 0.0 if i == 0 else 1.0 + 10 * i + j for i in range(6) for j in range(10)}
    return gradient_frame({**sizes, "lam": 0.5}, exponents={"lam": -2.0}, problem="network",
                          solvers=("ImplicitEuler", "FBDF"))


@pytest.fixture
def figures(monkeypatch):
    """The figures a report saves, by file name (still written to disk)."""
    saved = {}
    original = plots._save

    def save(fig, path):
        saved[Path(path).name] = fig
        return original(fig, path)

    monkeypatch.setattr(plots, "_save", save)
    return saved


def panel_titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes if ax.get_visible()]


# --- item 4: the knob first, the others ranked, zero entries left out and named -----------------


def test_rank_entries_puts_the_knob_first_then_largest_then_steepest():
    frame = gradient_frame({"a": 1.0, "b": 5.0, "c": 5.0, "lam": 0.1, "z": 0.0}, exponents={"b": -1.0, "c": -2.0})
    fits = fit_decay(frame)
    ranking = rank_entries(frame, fits, knob=("lam",))
    # b and c have the same largest |grad| (at the smallest stiffness): c decays faster
    assert ranking.shown_order == ("lam", "c", "b", "a") and ranking.knob == ("lam",)
    assert ranking.zero == ("z",) and ranking.n_entries == 5
    assert rank_entries(frame, fits).shown_order == ("c", "b", "a", "lam")
    assert rank_entries(frame, fits, knob=("z",)).shown_order[0] == "z"  # the knob is shown even at zero


def test_report_of_61_entries_shows_the_knob_first_and_says_what_it_leaves_out(tmp_path, figures):
    frame = network_frame()
    paths = report(frame, tmp_path, problems=[network_problem()])
    titles = panel_titles(figures["gradients_network.png"])
    assert titles == ["lam (stiffness knob)", "W[5,9]", "W[5,8]", "W[5,7]", "W[5,6]", "W[5,5]"]
    summary = paths["summary"].read_text()
    section = summary.split("### network")[1].split("## Gradients far")[0]
    table = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| entry")]
    assert table[0].startswith("| lam | ImplicitEuler") and table[1].startswith("| lam | FBDF")
    assert len(table) == 30 and not any(line.startswith("| W[0,") for line in table)
    assert "the stiffness knob's (lam) first" in section
    assert "Left out of the table: 10 entries whose gradient is zero in every successful row (W[...] (10)); " \
           "36 entries ranked lower with 72 fits (W[...] (36))." in section
    assert "The figure shows 6 of 61 parameter entries" in section
    assert "Left out of the figure: 10 entries whose gradient is zero in every successful row (W[...] (10)); " \
           "45 entries ranked lower (W[...] (45))." in section


def test_report_finds_the_knob_of_a_built_in_problem_by_name(tmp_path, figures):
    problem = pss.problems.get("stiff_neural_ode")
    names = list(flatten_params(problem.params))
    sizes = {name: 1.0 + i for i, name in enumerate(names)}
    frame = gradient_frame({**sizes, "lam_fast": 1e-3}, exponents={"lam_fast": -2.0}, problem="stiff_neural_ode")
    report(frame, tmp_path)
    assert panel_titles(figures["gradients_stiff_neural_ode.png"])[0] == "lam_fast (stiffness knob)"


def test_knob_entries_of_named_and_callable_knobs():
    assert pss.problems.get("dahlquist").knob_entries() == ("lam",)
    assert pss.problems.get("hires").knob_entries() == ("k[9]",)  # the y6*y8 rate
    fast = np.flatnonzero(pss.problems.chemistry.POLLUTION_RATES > 1e3)
    assert pss.problems.get("pollution").knob_entries() == tuple(f"k[{i}]" for i in fast)
    no_knob = Problem(lambda t, y, p: -p["a"] * y, y0=[1.0], tspan=(0.0, 1.0), params={"a": 1.0})
    assert no_knob.knob_entries() == ()


def test_report_of_a_custom_problem_says_how_to_name_its_knob(tmp_path):
    summary = report(network_frame(), tmp_path)["summary"].read_text()
    assert "The stiffness knob of `network` is not known here" in summary
    assert "problems=[problem]" in summary
    with pytest.raises(ValueError, match="problems= holds 'network'; give the pss.Problem objects"):
        report(network_frame(), tmp_path, problems=["network"])


# --- item 5: the cost column is the compiled run only --------------------------------------------


def test_compile_time_stays_out_of_the_cost_column(tmp_path):
    cheap_to_run = gradient_frame({"lam": 1.0}, solvers=("Rodas5P",), wall_time_s=1e-3, compile_time_s=50.0)
    cheap_to_compile = gradient_frame({"lam": 1.0}, solvers=("KenCarp4",), wall_time_s=4e-3, compile_time_s=0.25)
    frame = pd.concat([cheap_to_run, cheap_to_compile], ignore_index=True)
    table = compare(frame)
    assert list(table["median_wall_time_s"]) == [1e-3, 4e-3]
    assert list(table["median_compile_time_s"]) == [50.0, 0.25]
    summary = report(frame, tmp_path)["summary"].read_text()
    header = next(line for line in summary.splitlines() if line.startswith("| problem | solver | sensitivity | p"))
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    rows = {line.split(" | ")[1]: [c.strip() for c in line.strip("|").split("|")]
            for line in summary.splitlines() if line.startswith("| toy | ")}
    time, compile_ = columns.index("time per value [s]"), columns.index("compile [s]")
    assert (rows["Rodas5P"][time], rows["Rodas5P"][compile_]) == ("0.001", "50")
    assert (rows["KenCarp4"][time], rows["KenCarp4"][compile_]) == ("0.004", "0.25")


# --- item 6: errors and warnings ----------------------------------------------------------------


@pytest.mark.filterwarnings("error")
def test_report_of_only_failed_solves_raises_no_warning(tmp_path):
    frame = gradient_frame({"lam": 1.0, "omega": 2.0}, solvers=("ImplicitEuler", "FBDF"))
    frame[["status", "grad", "abs_grad"]] = ["Unstable", np.nan, np.nan]
    paths = report(flagged(frame), tmp_path)
    fits = pd.read_csv(paths["fits"])
    assert fits["exponent"].isna().all()
    assert "| toy | ImplicitEuler | ForwardDiffSensitivity | n/a | n/a |" in paths["summary"].read_text()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc exists on Linux only")
def test_report_to_an_existing_unwritable_directory_names_it(tmp_path):
    locked = Path("/proc/self")  # a directory even root cannot create files in
    with pytest.raises(ValueError, match=re.escape(f"out_dir '{locked}' is not writable")):
        report(gradient_frame({"lam": 1.0}), locked)


def _dahlquist(rhs=None, **changes) -> Problem:
    settings = dict(y0=[1.0], tspan=(0.0, 1.0), params={"lam": 2.0})
    return Problem(rhs or (lambda t, y, p: -p["lam"] * y), **{**settings, **changes})


@pytest.mark.parametrize("rhs, dtype", [
    (lambda t, y, p: -p["lam"] * y * (1.0 + 0.0j), "complex128"),
    (lambda t, y, p: jnp.array([1]), "int"),
])
def test_rhs_of_complex_or_integer_values_is_refused(rhs, dtype):
    with pytest.raises(ValueError, match=rf"rhs\(t, y, p\) returns {dtype}\S* values; it must return real floating-point"):
        _dahlquist(rhs)


@pytest.mark.parametrize("params, keys", [
    ({1: 2.0, "lam": 2.0}, "[1, 'lam']"),
    ({"lam": 2.0, "net": {"w": 1.0, 0: 1.0}}, "['w', 0]"),
])
def test_params_with_keys_of_mixed_types_are_refused_naming_the_keys(params, keys):
    message = f"params cannot be flattened as a pytree (a dict has keys of different types, {keys}, which JAX cannot sort)"
    with pytest.raises(ValueError, match=re.escape(message) + ".*keys of one type, e.g. strings"):
        _dahlquist(params=params)


def test_params_with_an_integer_key_are_a_valid_pytree():
    problem = _dahlquist(lambda t, y, p: -p[1] * y, params={1: 2.0})
    result = pss.gradient(problem, "Rodas5P", "forward", rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(result.grad[1], -np.exp(-2.0), rtol=1e-6)  # d/dlam exp(-lam T), T = 1
    assert list(result.flat_grad()) == ["1"]


# --- item 8: the demo's warning, styles, the stability plot, problems, ResNet figures ---------------


def test_demo_warns_once_that_coarse_fixed_steps_are_expected(tmp_path):
    case = demo.DemoCase("dahlquist", {}, (1e1, 1e3), dt=1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = demo.run(tmp_path, cases=(case,), n_stiffness=3, adaptive=(), fixed=("ImplicitEuler",),
                         sensitivities=("forward",), progress=False)
    far = [str(w.message) for w in caught if "far from the closed-form gradient" in str(w.message)]
    assert len(far) == 1, far
    assert far[0].startswith("3 of 3 gradient rows are far from the closed-form gradient")
    assert "All of them come from the fixed-step references (ImplicitEuler)" in far[0]
    assert "expected, not a malfunction" in far[0]
    assert "All of them are fixed-step rows whose step dt is longer than 1/stiffness" in paths["summary"].read_text()


def test_far_rows_not_from_coarse_steps_are_not_called_expected(tmp_path):
    frame = gradient_frame({"lam": 1.0}, solvers=("Rodas5P",))
    frame["grad"] = frame["abs_grad"] = 4.0 * frame["exact_grad"].abs()  # wrong sign and size, adaptive steps
    frame = flagged(frame)
    with pytest.warns(RuntimeWarning) as caught:
        demo.warn_far_from_exact(frame)
    message = str(caught[0].message)
    assert "expected" not in message and "The other 4 are not explained that way: toy Rodas5P/ForwardDiffSensitivity" in message
    assert "fixed-step rows whose step" not in report(frame, tmp_path)["summary"].read_text()


def test_coinciding_lines_have_distinct_markers_and_styles(tmp_path, figures):
    # ImplicitEuler and BDF2 take the same single step: identical rows
    frame = gradient_frame({"lam": 1.0}, exponents={"lam": -2.0}, solvers=("ImplicitEuler", "BDF2"), dt=1.0)
    adjoint = frame.assign(sensitivity="InterpolatingAdjoint", grad=2 * frame["grad"], abs_grad=2 * frame["abs_grad"])
    report(flagged(pd.concat([frame, adjoint], ignore_index=True)), tmp_path)
    ax = figures["gradients_toy.png"].axes[0]
    lines = {line.get_label(): line for line in ax.get_lines() if "/" in line.get_label()}
    assert sorted(lines) == [
        "BDF2 / ForwardDiffSensitivity; on ImplicitEuler / ForwardDiffSensitivity",  # the legend says so
        "BDF2 / InterpolatingAdjoint; on ImplicitEuler / InterpolatingAdjoint",
        "ImplicitEuler / ForwardDiffSensitivity",
        "ImplicitEuler / InterpolatingAdjoint",
    ]
    styles = {label.split(";")[0]: (line.get_marker(), line.get_markersize(), line.get_linestyle(),
                                     line.get_markerfacecolor()) for label, line in lines.items()}
    assert len(set(styles.values())) == 4
    euler, bdf2 = styles["ImplicitEuler / ForwardDiffSensitivity"], styles["BDF2 / ForwardDiffSensitivity"]
    assert euler[0] != bdf2[0] and euler[1] > bdf2[1]  # another marker, larger: visible around BDF2's
    assert styles["BDF2 / InterpolatingAdjoint"][2] != bdf2[2]


def test_stability_plot_bounds_a_stable_methods_only():
    fig = plot_stability(["BDF2", "BDF3"], zmax=1e4, n_points=50)
    labels = [text.get_text() for text in fig.axes[1].get_legend().get_texts()]
    assert labels[0] == "BDF2 (exponent -1.5)"
    assert re.fullmatch(r"BDF3 \(exponent -1\.33; A\(86°\)-stable only\)", labels[1])
    assert "slowest decay of an A-stable method" in labels[2] and "not a bound for BDF3: not A-stable" in labels[2]
    assert "not a bound" not in [text.get_text() for text in plot_stability(["Rodas5P"]).axes[1].get_legend().get_texts()][1]


def test_problems_list_their_options_and_stiffness_knob(capsys):
    assert main(["problems"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(pss.problems.names())
    for name, line in zip(pss.problems.names(), lines):
        assert line.startswith(name) and "stiffness knob" in line
        assert f"Options (defaults): {pss.problems._registry.format_options(pss.problems.options(name))}." in line
        knob = pss.problems.get(name).stiffness
        if isinstance(knob, str):
            assert f"``{knob}``" in line
    assert pss.problems.options("dahlquist") == {"lam": 10.0, "t_end": 1.0}
    message = r"valid options \(defaults\): lam_fast=100.0, lam_slow=1.0, hidden=8, seed=0, t_end=1.0, split=False\. .*stiffness knob: ``lam_fast``"
    with pytest.raises(ValueError, match=r"Unknown option\(s\) \['lam'\] for problem 'stiff_neural_ode'; " + message):
        pss.problems.get("stiff_neural_ode", lam=5.0)


def _slowdown(text: str) -> tuple[str, str]:
    """The ``about N times slower`` figure of ``text`` and the measurement it quotes."""
    text = " ".join(text.split())
    match = re.search(r"about (\d+) times slower.*?(\d+ s against [\d.]+ s for \d+ epochs)", text)
    assert match, text
    return match[1], match[2]


def test_resnet_help_and_readme_quote_one_measured_slowdown(capsys):
    with pytest.raises(SystemExit):
        main(["train-resnet", "--help"])
    help_text = capsys.readouterr().out
    readme = (REPO / "README.md").read_text()
    assert _slowdown(help_text) == _slowdown(readme) == ("75", "387 s against 5.2 s for 500 epochs")


def test_reports_leave_the_users_matplotlib_backend_and_figures_alone(tmp_path):
    """A notebook's backend (here svg) and its open pyplot figures survive importing the report
    modules and writing a report: pystiffsens draws on Figure objects, never through pyplot."""
    path = tmp_path / "frame.csv"
    gradient_frame({"lam": 1.0, "c": 2.0}, exponents={"lam": -2.0}).to_csv(path, index=False)
    code = f"""
        import matplotlib
        matplotlib.use("svg")
        import matplotlib.pyplot as plt
        plt.figure()
        import pandas as pd
        import pystiffsens as pss
        from pystiffsens.resnet import report as resnet_report
        from pystiffsens.study import plots
        pss.report(pd.read_csv({str(path)!r}), {str(tmp_path / 'report')!r})
        pss.theory.plot_stability(["ImplicitEuler"]).savefig({str(tmp_path / 'stability.png')!r})
        print(matplotlib.get_backend(), plt.get_fignums())
        """
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[-2] == "svg [1]"
    assert (tmp_path / "report" / "gradients_toy.png").stat().st_size > 0
