"""Sweeps on a Dask cluster: one task per (solver, sensitivity, stiffness chunk).

``pss.sweep(..., scheduler=...)`` and ``pystiffsens sweep --scheduler tcp://HOST:PORT`` (or
``--workers N`` for a cluster of N processes on this machine) hand the batches of a sweep
to `dask.distributed <https://distributed.dask.org>`_ instead of running them in this
process. Each task compiles and runs one (solver, sensitivity) pair over one chunk of the
stiffness values that the checkpoint does not hold yet, exactly as an in-process batch
(:func:`~pystiffsens.study.batch.compile_batch`), and returns its results. Everything else
stays in the process that called ``sweep`` (the *client*): the checkpoint is read and
written there only, a chunk's rows are merged into it as soon as the chunk's task finishes,
and the returned frame has the rows and the order of an in-process sweep.

Failures: Dask reruns a task whose worker died (up to ``distributed.scheduler.allowed-failures``
times, 3 by default; ``retries`` does not apply to deaths) and, with ``retries``, a task that
raised. A task that still fails gives rows with status :data:`TASK_FAILURE`, NaN loss and
gradients, and a ``RuntimeWarning`` with the error; those rows are returned but not
checkpointed, so a rerun with the same ``out_dir`` computes them again. No row is lost or
duplicated (``tests/test_distributed.py`` kills workers to check it). Dask counts a death
against every task the dying worker held, so a healthy chunk queued behind a task that keeps
killing its worker may end as ``Failure`` rows too; the rerun computes those as well.

The same code runs on any Dask cluster: a ``dask scheduler`` with ``dask worker`` processes
on several machines, ``dask_jobqueue.SLURMCluster`` or ``dask_kubernetes``'s ``KubeCluster``;
the workers need the same pystiffsens (and problem code) installed.
"""

from __future__ import annotations

import contextlib
import pickle
import uuid
from collections.abc import Iterator

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import _warnings
from ..backends.base import BatchResult
from ..problem import Problem
from ..returncode import ReturnCode
from . import resume
from .batch import Batch
from .rows import batch_rows, failed_batch

TASK_FAILURE = ReturnCode.Failure.name
"""Status of the rows of a task that raised or whose workers kept dying; a solve that fails
numerically has its own ReturnCode instead."""

INSTALL_HINT = "Dask sweeps need dask.distributed: pip install 'pystiffsens[dask]'."


def run_batches(
    scheduler,
    problem: Problem,
    grid: np.ndarray,
    batches: list[Batch],
    exact: dict[str, np.ndarray],
    checkpoint,
    *,
    chunk_size: int | None = None,
    retries: int = 1,
    progress: bool = True,
) -> list[pd.DataFrame]:
    """The frames of ``batches`` computed on the Dask cluster ``scheduler``, in batch order.

    Parameters
    ----------
    scheduler : a ``distributed.Client``, or what ``distributed.Client`` accepts (a scheduler
        address ``"tcp://HOST:PORT"``, a cluster object), in which case a client is opened
        and closed here.
    batches : one :class:`~pystiffsens.study.batch.Batch` per (solver, sensitivity) pair.
    exact : flat parameter name -> closed-form gradient over ``grid``.
    checkpoint : a :class:`~pystiffsens.study.resume.Checkpoint` or ``None``.
    chunk_size : stiffness values per task (default: all missing values of a pair in one task,
        which compiles each pair once, as in process).
    retries : extra attempts for a task that raised.
    """
    chunk_size = _check_chunk_size(chunk_size)
    distributed = _import_distributed()
    with _client(distributed, scheduler) as client:
        problem_bytes = _dumps(problem)
        token = uuid.uuid4().hex[:8]
        tasks = {}  # future -> (batch index, stiffness indices), until its rows are collected
        for index, batch in enumerate(batches):
            key = batch.key
            for number, chunk in enumerate(_chunks(np.flatnonzero(batch.todo), chunk_size)):
                future = client.submit(
                    compute_chunk, problem_bytes, grid[chunk], batch.without_rows(),
                    key=f"pystiffsens-{token}-{key['solver']}-{key['sensitivity']}-{number}",
                    retries=retries, pure=False,
                    # Tasks submitted within Dask's FIFO window tie on priority and would run in
                    # any order; this runs them in submission order.
                    priority=-len(tasks),
                )
                tasks[future] = (index, chunk)
        computed: list[list[pd.DataFrame]] = [[] for _ in batches]
        try:
            with tqdm(total=len(tasks), desc=f"sweep {problem.label} on dask", unit="task",
                      disable=not progress) as bar:
                for future in distributed.as_completed(list(tasks)):
                    # Dropping the future frees its result on the worker, so that a worker dying
                    # later does not make the cluster compute it again.
                    index, chunk = tasks.pop(future)
                    key = batches[index].key
                    exact_chunk = {name: values[chunk] for name, values in exact.items()}
                    if future.status == "finished":
                        rows = batch_rows(key, grid[chunk], future.result(), exact_chunk)
                        if checkpoint is not None:
                            checkpoint.append(rows)
                    else:
                        rows = failure_rows(key, problem, grid[chunk], exact_chunk, _error_text(future))
                    computed[index].append(rows)
                    bar.update()
        finally:  # on an error or interrupt, stop what has not run yet
            client.cancel([future for future in tasks if not future.done()])
    frames = []
    for batch, chunks in zip(batches, computed, strict=True):
        rows = pd.concat([frame for frame in (batch.done, *chunks) if len(frame)], ignore_index=True)
        position = resume.positions(rows["stiffness"].to_numpy(), grid)
        frames.append(rows.iloc[np.argsort(position, kind="stable")].reset_index(drop=True))
    return frames


def compute_chunk(problem_bytes: bytes, stiffness: np.ndarray, batch: Batch) -> BatchResult:
    """The task run on a worker: one batch over ``stiffness``.

    The problem travels pickled and is unpickled here, after this module's import has
    switched JAX to float64 (unpickling its arrays earlier would make them float32).
    """
    problem = pickle.loads(problem_bytes)
    return batch.prepare(problem, stiffness)()


def failure_rows(key: dict, problem: Problem, stiffness: np.ndarray, exact: dict[str, np.ndarray],
                 error: str) -> pd.DataFrame:
    """Rows with status :data:`TASK_FAILURE` and NaN results for a chunk whose task failed."""
    _warnings.warn(
        f"the Dask task for {key['solver']}/{key['sensitivity']} at stiffness {list(map(float, stiffness))} "
        f"failed ({error}); its rows have status {TASK_FAILURE!r} and are not checkpointed, so a rerun "
        "computes them again.",
        RuntimeWarning)
    rows = batch_rows(key, stiffness, failed_batch(key, problem, stiffness), exact)
    rows["status"] = TASK_FAILURE
    return rows


@contextlib.contextmanager
def client_from_options(address: str | None = None, workers: int | None = None) -> Iterator:
    """The ``--scheduler ADDRESS`` / ``--workers N`` options of ``pystiffsens sweep`` as a client.

    Yields ``None`` when neither is given (an in-process sweep), a client of the scheduler at
    ``address``, or a client of a new local cluster of ``workers`` single-threaded processes,
    closed (with the cluster) on exit.
    """
    if address is not None and workers is not None:
        raise ValueError(f"give --scheduler ({address!r}) or --workers ({workers}), not both.")
    if address is None and workers is None:
        yield None
        return
    distributed = _import_distributed()
    if workers is not None:
        if workers < 1:
            raise ValueError(f"--workers {workers} must be at least 1.")
        with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True) as cluster:
            with distributed.Client(cluster) as client:
                yield client
    else:
        with distributed.Client(address) as client:
            yield client


@contextlib.contextmanager
def _client(distributed, scheduler) -> Iterator:
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    if not isinstance(scheduler, str) and not hasattr(scheduler, "scheduler_address"):
        raise ValueError(
            f"scheduler={scheduler!r} must be a distributed.Client, a Dask cluster or a scheduler address "
            "such as 'tcp://127.0.0.1:8786'."
        )
    with distributed.Client(scheduler) as client:
        yield client


def _import_distributed():
    try:
        import distributed
    except ImportError as error:
        raise RuntimeError(INSTALL_HINT) from error
    return distributed


def _dumps(problem: Problem) -> bytes:
    import cloudpickle  # a dependency of distributed: pickles lambdas and closures by value

    return cloudpickle.dumps(problem)


def _check_chunk_size(chunk_size) -> int | None:
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size!r} must be a positive integer or None (one task per pair).")
    return int(chunk_size)


def _chunks(indices: np.ndarray, chunk_size: int | None) -> list[np.ndarray]:
    if indices.size == 0:
        return []
    if chunk_size is None:
        return [indices]
    return [indices[start:start + chunk_size] for start in range(0, indices.size, chunk_size)]


def _error_text(future) -> str:
    try:
        error = future.exception()
    except Exception as reason:  # a cancelled future has no exception to give
        return f"{future.status}: {reason}"
    return f"{type(error).__name__}: {error}"
