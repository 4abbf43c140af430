"""The ``pystiffsens sweep / demo / problems`` command line, end to end on tiny sweeps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import pystiffsens as pss
from pystiffsens.cli import main
from pystiffsens.study.batch import Batch
from pystiffsens.study.schema import GRADIENT_COLUMNS

TINY = {"--problem": "dahlquist", "--solvers": "ImplicitEuler", "--sensitivities": "forward",
        "--stiffness": "1e2:1e4:3", "--dt": "1"}


def sweep_argv(out, **overrides) -> list[str]:
    flags = {**TINY, **{f"--{k.replace('_', '-')}": v for k, v in overrides.items()}}
    argv = ["sweep", "--out", str(out), "--no-progress"]
    for flag, value in flags.items():
        argv += [flag, value]
    return argv


def test_problems_lists_every_builtin_with_its_knob(capsys):
    assert main(["problems"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == pss.problems.names()
    assert all("stiffness knob" in line for line in lines)


@pytest.mark.parametrize(
    "override, message",
    [
        ({"problem": "dalquist"}, "Unknown problem 'dalquist'. Valid choices: dahlquist"),
        ({"stiffness": "1e1-1e6-11"}, "--stiffness '1e1-1e6-11' is malformed: START:STOP:NUM"),
        ({"stiffness": "1e6:1e1:11"}, "0 < START < STOP"),
        ({"solvers": "ImplicitEuler,Rodas9"}, "Unknown solver 'Rodas9'"),
        ({"sensitivities": "sideways"}, "Unknown sensitivity 'sideways'"),
        ({"option": "t_end"}, "--option 't_end' must look like NAME=VALUE"),
        ({"option": "colour=2"}, "Unknown option(s) ['colour'] for problem 'dahlquist'"),
    ],
)
def test_bad_flags_exit_2_with_a_clear_message(tmp_path, capsys, override, message):
    assert main(sweep_argv(tmp_path, **override)) == 2
    err = capsys.readouterr().err
    assert err.startswith("pystiffsens sweep: error: ") and message in err
    assert not (tmp_path / "gradients.csv").exists()


def test_flags_of_the_wrong_type_are_argparse_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(sweep_argv(tmp_path, backend="fortran"))
    assert exit_info.value.code == 2
    assert "invalid choice: 'fortran'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(sweep_argv(tmp_path, rtol="tight"))
    assert exit_info.value.code == 2
    assert "invalid float value: 'tight'" in capsys.readouterr().err


def test_sweep_writes_the_report_and_a_rerun_resumes(tmp_path, capsys, monkeypatch):
    argv = sweep_argv(tmp_path)
    assert main(argv) == 0
    assert f"Report: {tmp_path / 'summary.md'}" in capsys.readouterr().out
    for name in ("gradients.csv", "fits.csv", "comparison.csv", "gradients_dahlquist.png", "comparison.png", "summary.md"):
        assert (tmp_path / name).stat().st_size > 0
    frame = pd.read_csv(tmp_path / "gradients.csv")
    assert list(frame.columns) == list(GRADIENT_COLUMNS)
    np.testing.assert_allclose(frame["stiffness"], [1e2, 1e3, 1e4])
    assert (frame["status"] == "Success").all() and (frame["solver"] == "ImplicitEuler").all()
    fits = pd.read_csv(tmp_path / "fits.csv")
    assert len(fits) == 1 and abs(fits.loc[0, "exponent"] + 2.0) < 0.05

    def must_not_run(*args):
        raise AssertionError("a complete sweep was recomputed instead of resumed")

    monkeypatch.setattr(Batch, "prepare", must_not_run)
    assert main(argv) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "gradients.csv"), frame, check_exact=True)
