"""Sweeps on a real Dask cluster (two worker processes) against the in-process sweep."""

import warnings

import numpy as np
import pandas as pd
import pytest

import pystiffsens as pss
from pystiffsens.study import resume
from pystiffsens.study.distributed import TASK_FAILURE, client_from_options

distributed = pytest.importorskip("distributed")

GRID = [1e1, 1e2, 1e3, 1e4]
SOLVERS = ["ImplicitEuler", "Trapezoid"]
VALUES = ["solver", "sensitivity", "stiffness", "param", "grad", "exact_grad", "loss", "status", "n_steps", "n_f"]


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            yield client


def _sweep(grid=GRID, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # one fixed step is far from exact by design
        return pss.sweep("dahlquist", grid, SOLVERS, ["forward"], dt=0.5, progress=False, **options)


@pytest.fixture(scope="module")
def in_process():
    return _sweep()


def test_cluster_frame_equals_in_process_frame(client, in_process):
    on_cluster = _sweep(scheduler=client)
    pd.testing.assert_frame_equal(on_cluster[VALUES], in_process[VALUES])
    assert list(on_cluster.columns) == list(in_process.columns)
    chunked = _sweep(scheduler=client, chunk_size=1)  # one task per stiffness value, same rows and order
    pd.testing.assert_frame_equal(chunked[VALUES], in_process[VALUES], rtol=1e-12)


def test_cluster_sweep_resumes_from_the_client_checkpoint(client, in_process, tmp_path):
    first = _sweep(GRID[:2], scheduler=client, out_dir=tmp_path)
    resumed = _sweep(scheduler=client, out_dir=tmp_path, chunk_size=1)
    pd.testing.assert_frame_equal(resumed[VALUES], in_process[VALUES], rtol=1e-12)
    # The rows of the first run are read back, not recomputed (their measured times are kept).
    again = resumed[resumed["stiffness"].isin(GRID[:2])].reset_index(drop=True)
    np.testing.assert_array_equal(again["wall_time_s"], first["wall_time_s"])
    stored = resume.read_gradients(tmp_path / resume.CHECKPOINT_NAME)
    assert len(stored) == len(in_process)
    assert not stored.duplicated(["solver", "sensitivity", "stiffness", "param"]).any()


def _problem_failing_on_workers(solver):
    """Dahlquist whose rhs raises when traced inside a Dask task of ``solver`` (and nowhere else)."""

    def rhs(t, y, p):
        try:
            key = str(distributed.get_worker().get_current_task())
        except ValueError:  # not on a worker: building the problem, or an in-process sweep
            key = ""
        if solver in key:
            raise RuntimeError("injected failure")
        return -p["lam"] * y

    return pss.Problem(rhs, y0=[1.0], tspan=(0.0, 1.0), params={"lam": 10.0}, stiffness="lam", name="failing")


def test_a_task_that_raises_gives_status_rows_and_is_not_checkpointed(client, tmp_path):
    problem = _problem_failing_on_workers("Trapezoid")
    with pytest.warns(RuntimeWarning, match="injected failure"):
        frame = pss.sweep(problem, GRID, SOLVERS, ["forward"], dt=0.5, progress=False, scheduler=client,
                          out_dir=tmp_path, chunk_size=2)
    assert list(frame["solver"]) == ["ImplicitEuler"] * 4 + ["Trapezoid"] * 4
    assert list(frame["stiffness"]) == GRID * 2
    failed = frame[frame["solver"] == "Trapezoid"]
    assert (failed["status"] == TASK_FAILURE).all() and failed["grad"].isna().all() and failed["loss"].isna().all()
    healthy = frame[frame["solver"] == "ImplicitEuler"]
    assert (healthy["status"] == "Success").all()
    np.testing.assert_allclose(healthy["grad"], -((1 + 0.5 * np.array(GRID)) ** -3))  # d/dlam (1 + lam dt)^-2
    stored = resume.read_gradients(tmp_path / resume.CHECKPOINT_NAME)
    assert set(stored["solver"]) == {"ImplicitEuler"}  # a rerun computes the failed rows again


def test_options_of_the_command_line():
    with client_from_options(None, None) as none:
        assert none is None
    with pytest.raises(ValueError, match="not both"):
        with client_from_options("tcp://127.0.0.1:1", 2):
            pass
    with pytest.raises(ValueError, match="chunk_size=0"):
        _sweep(scheduler="tcp://127.0.0.1:1", chunk_size=0)
    with pytest.raises(ValueError, match="scheduler=3"):
        _sweep(scheduler=3)
