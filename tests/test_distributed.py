"""Sweeps on a real Dask cluster (two worker processes) against the in-process sweep."""

import contextlib
import os
import time
import warnings

import numpy as np
import pandas as pd
import pytest

import pystiffsens as pss
from pystiffsens.study import resume
from pystiffsens.study.distributed import TASK_FAILURE, client_from_options
from pystiffsens.study.schema import IDENTITY_COLUMNS

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")

# A task waiting on a worker that never comes back waits forever (as any Dask computation
# does); in CI that must fail the test, not stall the suite.
pytestmark = pytest.mark.timeout(300)

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


# Workers that die. These tests kill worker processes, so each opens a cluster of its own and
# leaves the module's ``client`` alone.


@contextlib.contextmanager
def _killable_client(n_workers, allowed_failures=3):
    """A client of a new cluster of ``n_workers`` single-threaded processes (restarted by their
    nannies when they die) whose scheduler gives a task up after ``allowed_failures`` + 1 deaths."""
    with dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures}):
        with distributed.LocalCluster(n_workers=n_workers, processes=True, threads_per_worker=1,
                                      dashboard_address=":0") as cluster:  # a free port: the module's cluster may hold 8787
            with distributed.Client(cluster) as client:
                yield client


def _problem_killing_its_worker(task, switch, *, once):
    """Dahlquist whose rhs ends its worker process (``os._exit``) while the file ``switch`` exists,
    when traced inside the Dask task whose key contains ``task`` (``SOLVER-SENSITIVITY-CHUNK``,
    the sensitivity by its full name) and nowhere else. With ``once`` the rhs deletes ``switch``
    before dying, so only the first attempt dies. Each death is a line of ``switch.deaths``."""

    def rhs(t, y, p):
        try:
            key = str(distributed.get_worker().get_current_task())
        except ValueError:  # not on a worker: building the problem, or an in-process sweep
            key = ""
        if task in key and switch.exists():
            if once:
                try:
                    switch.unlink()
                except FileNotFoundError:  # another attempt took the switch first
                    return -p["lam"] * y
            with open(switch.with_suffix(".deaths"), "a") as log:
                log.write(f"{key} {os.getpid()}\n")
            # A moment first: a worker reports a finished task in batches, and a process that ended at
            # once could take the report of its previous task with it, which the scheduler would then
            # count as one more task that this death interrupted.
            time.sleep(0.5)
            os._exit(1)
        return -p["lam"] * y

    return pss.Problem(rhs, y0=[1.0], tspan=(0.0, 1.0), params={"lam": 10.0}, stiffness="lam", name="killing")


def _sweep_killing(problem, **options):
    return pss.sweep(problem, GRID, SOLVERS, ["forward"], dt=0.5, progress=False, chunk_size=2, **options)


def _deaths(switch):
    path = switch.with_suffix(".deaths")
    return path.read_text().splitlines() if path.exists() else []


def _stored_rows(out_dir):
    """The checkpoint's rows as written (``read_gradients`` would drop exact duplicates)."""
    return pd.read_csv(out_dir / resume.CHECKPOINT_NAME)


def _assert_each_row_once(frame, expected):
    assert not frame.duplicated(list(IDENTITY_COLUMNS)).any()
    assert len(frame) == len(expected)
    rows = set(zip(frame["solver"], frame["stiffness"], strict=True))
    assert rows == set(zip(expected["solver"], expected["stiffness"], strict=True))


def test_a_task_whose_worker_dies_is_rerun_and_gives_each_row_once(tmp_path):
    switch = tmp_path / "kill"
    switch.touch()
    # The first of two chunks of ImplicitEuler: rerun after its worker died, its rows usually come back
    # after the second chunk's, so the frame's order is restored, not just kept.
    problem = _problem_killing_its_worker("ImplicitEuler-ForwardDiffSensitivity-0", switch, once=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # one fixed step is far from exact by design
        expected = pss.sweep(problem, GRID, SOLVERS, ["forward"], dt=0.5, progress=False)
    with _killable_client(n_workers=2) as client, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = _sweep_killing(problem, scheduler=client, out_dir=tmp_path / "out")
    assert len(_deaths(switch)) == 1 and not switch.exists()  # one worker did die in that task
    assert not [w for w in caught if "Dask task" in str(w.message)]  # its rerun succeeded
    pd.testing.assert_frame_equal(frame[VALUES], expected[VALUES], rtol=1e-12)  # same rows, same order
    assert (frame["status"] == "Success").all()
    _assert_each_row_once(frame, expected)
    _assert_each_row_once(_stored_rows(tmp_path / "out"), expected)


def test_a_task_whose_workers_keep_dying_gives_failure_rows_that_a_rerun_computes(tmp_path):
    switch = tmp_path / "kill"
    switch.touch()
    # The last task: one worker runs the tasks in the order they were submitted (the sweep gives
    # them decreasing priorities), so when it dies the others are done and this task is the only
    # one it was running (a task that a dying worker holds counts that death too). On a loaded
    # host chunk 0 once failed with chunk 1 (CI at 08903c7): chunk 1 had started first (the
    # priorities tied then), or chunk 0's report of its end died with the process (the rhs now
    # waits before it ends the process).
    problem = _problem_killing_its_worker("Trapezoid-ForwardDiffSensitivity-1", switch, once=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = pss.sweep(problem, GRID, SOLVERS, ["forward"], dt=0.5, progress=False)
    out_dir = tmp_path / "out"
    with _killable_client(n_workers=1, allowed_failures=1) as client:
        with pytest.warns(RuntimeWarning, match=r"Trapezoid/ForwardDiffSensitivity at stiffness \[1000\.0, 10000\.0\] failed \(KilledWorker"):
            frame = _sweep_killing(problem, scheduler=client, out_dir=out_dir)
        assert len(_deaths(switch)) == 2  # the first attempt and the one rerun allowed
        assert list(frame["solver"]) == list(expected["solver"])
        assert list(frame["stiffness"]) == list(expected["stiffness"])
        _assert_each_row_once(frame, expected)
        killed = (frame["solver"] == "Trapezoid") & frame["stiffness"].isin(GRID[2:]).to_numpy()
        failed = frame[killed]
        assert (failed["status"] == TASK_FAILURE).all()
        assert failed["grad"].isna().all() and failed["loss"].isna().all()
        pd.testing.assert_frame_equal(frame[~killed][VALUES], expected[~killed][VALUES], rtol=1e-12)
        stored = _stored_rows(out_dir)
        _assert_each_row_once(stored, expected[~killed])  # the failed rows are not checkpointed

        switch.unlink()  # the workers survive from now on
        rerun = _sweep_killing(problem, scheduler=client, out_dir=out_dir)
    pd.testing.assert_frame_equal(rerun[VALUES], expected[VALUES], rtol=1e-12)
    # Only the failed rows were computed again; the others were read back with their times.
    np.testing.assert_array_equal(rerun[~killed]["wall_time_s"], frame[~killed]["wall_time_s"])
    assert len(_deaths(switch)) == 2
    _assert_each_row_once(_stored_rows(out_dir), expected)
