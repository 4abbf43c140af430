"""The CSV checkpoint that lets a long sweep resume: ``out_dir/gradients.csv``.

A sweep with an output directory adds each batch's rows to the checkpoint as soon as the
batch finishes. On a rerun, the rows whose batch key
(:data:`~pystiffsens.study.schema.KEY_COLUMNS`) and stiffness value match are read back
instead of recomputed; only the missing stiffness values are computed. The key holds
:func:`problem_id`, a fingerprint of what the problem computes, so rows of an edited model
are never reused (the sweep warns that it computes them again), and a stiffness value counts
as done only with a row for every parameter entry of the problem; a row of the model whose
parameter entry the problem lacks is refused with the file and line.

The file collects every sweep written to the directory (other problems, solvers,
sensitivities, tolerances or grids) and never loses a row:

* every write holds an exclusive lock (``gradients.csv.lock``, :mod:`filelock`), re-reads the
  file, merges the new rows in by identity (:data:`~pystiffsens.study.schema.IDENTITY_COLUMNS`:
  a new row replaces a stored row of the same batch key, stiffness value and parameter entry,
  and adds to the others), and writes a complete new file renamed over the old one, so two
  sweeps into one directory at once both keep their rows and an interrupted write never
  leaves a truncated file;
* reading validates the file (:func:`read_gradients`): a truncated, tampered or mistyped row
  is refused with an error naming the file and line, and exact duplicates are dropped.

:func:`~pystiffsens.study.report` merges its frame into the same file the same way.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

import filelock
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .. import _warnings, _x64
from ..problem import Problem, SplitRHS
from ..results import flatten_params
from ..returncode import ReturnCode
from .schema import (
    COUNTER_COLUMNS,
    FAR_FROM_EXACT,
    GRADIENT_COLUMNS,
    IDENTITY_COLUMNS,
    KEY_COLUMNS,
    NOT_REPORTED,
    RESULT_COLUMNS,
    SUCCESS,
)

CHECKPOINT_NAME = "gradients.csv"

LOCK_TIMEOUT_S = 600.0
"""How long a write waits for another process's lock on the checkpoint before giving up
(a write holds it only while re-reading and rewriting the file)."""

_FLOAT_KEYS = ("rtol", "atol", "dt")
_TEXT_COLUMNS = ("problem", "problem_id", "backend", "device", "solver", "sensitivity", "param", "status")
_MATCH_RTOL = 1e-12
"""Relative tolerance for matching floats read back from CSV (they round-trip exactly with
pandas; the tolerance only guards against grids rebuilt with a different rounding)."""


@_x64.float64
def problem_id(problem: Problem) -> str:
    """A fingerprint of what a problem computes: ``"sha256:"`` and 12 hex digits.

    Checkpoint rows are keyed by it (:data:`~pystiffsens.study.schema.KEY_COLUMNS`), so rows
    are reused only for the model that made them. It covers

    * the programs of the right-hand side, the loss, the closed-form solution and a callable
      stiffness knob, traced by :func:`traced_program` at the problem's shapes: every
      operation, every literal constant and the values of every array the functions capture
      (closures, globals, constants of nested ``jit``/``cond``/``scan`` programs). Editing a
      coefficient in a function's body, or giving another ``lambda`` loss, changes the id;
      renaming a function or rebuilding the same model does not;
    * the name, time span, initial state, save times, the parameters' tree structure, static
      leaves, shapes, dtypes and values, the stiffness knob's name, and the source text of
      ``implementations`` (the model for other backends).

    The id is the same in every process (no object ids or memory addresses enter it). Limits:
    the derivative rules of ``jax.custom_jvp``/``custom_vjp`` functions and host callbacks
    are identified by their names, not their bodies; a JAX release that prints programs
    differently gives new ids (rows are then computed once more, with a warning).

    Traces each function once per call (milliseconds); :func:`~pystiffsens.study.sweep`
    calls it once per sweep, ``pss.solve`` and ``pss.gradient`` never.
    """
    digest = hashlib.sha256()
    for part in _fingerprint(problem):
        digest.update(part)
        digest.update(b"\0")
    return f"sha256:{digest.hexdigest()[:12]}"  # the prefix keeps CSV readers from parsing it as a number


def traced_program(fn, *args) -> bytes:
    """What ``fn`` computes at the shapes of ``args``, as deterministic bytes.

    The text of ``jax.make_jaxpr(fn)(*args)`` with memory addresses masked, followed by the
    dtype, shape and bytes of every constant the program and its nested programs hold (the
    text names constants but does not show their values).
    """
    closed = jax.make_jaxpr(fn)(*args)
    parts = [_stable_text(str(closed))]
    parts += [_array_bytes(const) for const in _constants(closed)]
    return b"\0".join(parts)


def parameter_entries(problem: Problem) -> list[str]:
    """The names of a problem's scalar parameter entries, as the ``param`` column has them."""
    return list(flatten_params(problem.params))


def _fingerprint(problem: Problem) -> list[bytes]:
    """The parts :func:`problem_id` hashes (see there)."""
    leaves, structure = problem.parameters()
    merge = structure.merge
    p = [jax.ShapeDtypeStruct(np.shape(leaf), jnp.float64) for leaf in leaves]
    t = jax.ShapeDtypeStruct((), jnp.float64)
    y = jax.ShapeDtypeStruct(problem.y0.shape, jnp.float64)
    ts = jax.ShapeDtypeStruct(problem.saveat.shape, jnp.float64)
    ys = jax.ShapeDtypeStruct((ts.shape[0], y.shape[0]), jnp.float64)
    knob = problem.stiffness
    parts = [
        _stable_text(repr((problem.label, problem.tspan, sorted((problem.implementations or {}).items())))),
        _array_bytes(problem.y0),
        _array_bytes(problem.saveat),
        _stable_text(repr((str(structure.treedef), structure.is_param, structure.static, structure.shapes))),
        *(_array_bytes(leaf) for leaf in leaves),
        *(traced_program(lambda t, y, p, fn=fn: fn(t, y, merge(p)), t, y, p) for fn in _rhs_parts(problem.rhs)),
        traced_program(lambda ts, ys, p: problem.loss_fn(ts, ys, merge(p)), ts, ys, p),
    ]
    if problem.exact_solution is not None:
        exact = problem.exact_solution
        parts.append(traced_program(lambda t, p: exact(t, merge(p)), t, p))
    if callable(knob):
        parts.append(traced_program(lambda p, s: structure.leaves_of(knob(merge(p), s)), p, t))
    else:
        parts.append(_stable_text(repr(knob)))
    return parts


def _rhs_parts(rhs) -> tuple:
    """The functions that define a right-hand side: a split one by each part (which term is stiff matters)."""
    return (rhs.stiff, rhs.nonstiff) if isinstance(rhs, SplitRHS) else (rhs,)


_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")


def _stable_text(text: str) -> bytes:
    """``text`` with memory addresses (``0x7f...``, which differ between processes) masked."""
    return _ADDRESS.sub("0x?", text).encode()


def _array_bytes(value) -> bytes:
    array = np.asarray(value)
    return repr((str(array.dtype), array.shape)).encode() + array.tobytes()


def _constants(closed) -> list:
    """The constants of a closed program and of every program nested in its equations, in order."""
    found = list(closed.consts)
    _nested_constants(closed.jaxpr, found)
    return found


def _nested_constants(jaxpr, found: list) -> None:
    for eqn in jaxpr.eqns:
        for value in eqn.params.values():
            for item in value if isinstance(value, (tuple, list)) else (value,):
                if hasattr(item, "consts") and hasattr(item, "jaxpr"):  # a closed program (jit, cond, scan, ...)
                    found.extend(item.consts)
                    _nested_constants(item.jaxpr, found)
                elif hasattr(item, "eqns"):  # an open program
                    _nested_constants(item, found)


class Checkpoint:
    """The rows of ``out_dir/gradients.csv``, read once and extended batch by batch.

    ``lines`` holds the file line of each of ``rows`` (for messages about a damaged row).
    """

    def __init__(self, out_dir):
        self.path = Path(out_dir) / CHECKPOINT_NAME
        with _lock(self.path):
            if self.path.exists():
                self.rows, self.lines = _read_numbered(self.path)
            else:
                self.rows, self.lines = empty_frame(), np.zeros(0, dtype=np.int64)

    def done(self, key: dict, stiffness: np.ndarray, entries: list[str] | None = None) -> pd.DataFrame:
        """Stored rows of batch ``key`` whose stiffness is one of ``stiffness``.

        With ``entries`` (the problem's parameter entries, :func:`parameter_entries`), only
        stiffness values that have a row for every entry count as done; the rows of a value
        that lacks one (a deleted line) are left out, so that value is computed again.
        """
        if self.rows.empty:
            return self.rows
        mask = _key_mask(self.rows, key) & _isin(self.rows["stiffness"].to_numpy(), stiffness)
        rows = self.rows[mask]
        if entries is None or rows.empty:
            return rows
        counts = rows.groupby("stiffness")["param"].transform(lambda params: params.isin(entries).sum())
        return rows[counts.to_numpy() == len(entries)]

    def check_entries(self, problem_id: str, label: str, entries: list[str]) -> None:
        """``ValueError`` naming the file and line of a row of model ``problem_id`` whose ``param`` is not one of ``entries``.

        Rows of one model (one ``problem_id``) have the parameter entries of that model; a row
        with another entry (an edited ``param``, such as ``lam`` renamed ``lamm``) is damage.
        """
        if self.rows.empty:
            return
        ours = (self.rows["problem_id"] == problem_id).to_numpy()
        bad = ours & ~self.rows["param"].isin(entries).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            row = self.rows.iloc[i]
            raise ValueError(_row_message(
                self.path, int(self.lines[i]), row,
                f"param={row['param']!r} is not a parameter entry of problem {label!r} ({problem_id}); its "
                f"entries are {_listing(entries)}",
            ))

    def other_models(self, key: dict, stiffness: np.ndarray) -> pd.DataFrame:
        """Stored rows that would be rows of batch ``key`` at ``stiffness`` but come from another model.

        Same problem name and every other key column, another ``problem_id``: rows of an
        edited model (or of a pystiffsens version that fingerprinted models differently).
        """
        if self.rows.empty or not len(stiffness):
            return self.rows.iloc[:0]
        mask = _key_mask(self.rows, key, ignore=("problem_id",))
        mask &= (self.rows["problem_id"] != key["problem_id"]).to_numpy()
        mask &= _isin(self.rows["stiffness"].to_numpy(), stiffness)
        return self.rows[mask]

    def append(self, rows: pd.DataFrame) -> None:
        """Merge ``rows`` into the file (under its lock, with the rows other processes wrote since)."""
        self.rows = merge_into(self.path, rows)
        self.lines = np.arange(len(self.rows), dtype=np.int64) + 2  # written as they are, after the header


def merge_into(path, rows: pd.DataFrame) -> pd.DataFrame:
    """Merge ``rows`` into the gradient file ``path`` by identity and return everything it now holds.

    Holds the file's lock while reading, merging and atomically rewriting it; a row of
    ``rows`` replaces a stored row with the same identity, every other stored row is kept.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock(path):
        stored = read_gradients(path) if path.exists() else empty_frame()
        merged = merge(stored, rows)
        partial = path.with_name(path.name + ".partial")
        merged.to_csv(partial, index=False)
        os.replace(partial, path)
    return merged


def merge(stored: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """``stored`` with ``rows`` added; a row of ``rows`` replaces a stored row of the same identity."""
    if stored.empty:
        return rows.reset_index(drop=True)
    if rows.empty:
        return stored.reset_index(drop=True)
    both = pd.concat([stored, rows], ignore_index=True)
    return both[~both.duplicated(subset=list(IDENTITY_COLUMNS), keep="last")].reset_index(drop=True)


def prepare_out_dir(out_dir) -> Path:
    """Create ``out_dir`` if needed and check that files can be written in it, before any work.

    ``ValueError`` naming the path when it is a file, lies under a file, or is not writable.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {str(out)!r} is a file, not a directory; give a directory (created if missing).")
    ancestor = out
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"out_dir {str(out)!r} cannot be created: {str(ancestor)!r} is a file, not a directory.")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".pystiffsens-write-check-"):
            pass
    except OSError as error:
        raise ValueError(
            f"out_dir {str(out)!r} is not writable ({error.strerror or error}); give a directory you can write to."
        ) from None
    return out


def missing(done: pd.DataFrame, stiffness: np.ndarray) -> np.ndarray:
    """Boolean mask of the values of ``stiffness`` that have no row in ``done``."""
    return ~_isin(stiffness, done["stiffness"].to_numpy())


def positions(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Index in ``grid`` of each of ``values`` (each must match an entry)."""
    return _matches(values, grid).argmax(axis=1)


def read_gradients(path, *, keep_index: bool = False) -> pd.DataFrame:
    """Read a gradient frame written by a sweep or a report, validated and without duplicates.

    ``ValueError`` naming the file (and, for a bad row, its line) if it is not a gradient frame
    of this version, ends in a truncated line, or has a row with a missing, mistyped or
    out-of-range value, or whose values contradict each other (``abs_grad`` not ``|grad|``, a
    gradient on a failed solve, ``rel_error_exact`` not recomputable from ``grad``), or two
    rows with the same identity but different results. Exact duplicates (same identity and
    results; timings may differ) are dropped, keeping the last, with a ``RuntimeWarning``.
    ``keep_index``: index the rows by their position in the file (line - 2) instead of 0, 1, ...
    """
    path = Path(path)
    with open(path, "rb") as file:
        file.seek(0, os.SEEK_END)
        if file.tell() > 0:
            file.seek(-1, os.SEEK_END)
            if file.read(1) != b"\n":
                raise ValueError(
                    f"{path}: the last line is truncated (no line end); the checkpoint is damaged: delete that "
                    "line (it is recomputed on the next run) or write to a new output directory."
                )
    try:
        frame = pd.read_csv(path, dtype={column: str for column in _TEXT_COLUMNS})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} cannot be read as a gradient frame ({error}); write to a new output directory.") from None
    if not isinstance(frame.index, pd.RangeIndex):  # pandas made an index of a first row with extra fields
        raise ValueError(f"{path}, line 2 has more fields than the header; write to a new output directory.")
    if list(frame.columns) != list(GRADIENT_COLUMNS):
        raise ValueError(
            f"{path} is not a gradient frame of this pystiffsens version (columns {list(frame.columns)}, "
            f"expected {list(GRADIENT_COLUMNS)}); write to a new output directory."
        )
    frame = _deduplicated(_validated(frame, path), path)
    return frame if keep_index else frame.reset_index(drop=True)


def _read_numbered(path) -> tuple[pd.DataFrame, np.ndarray]:
    """:func:`read_gradients` and the file line of each row it returns."""
    frame = read_gradients(path, keep_index=True)
    return frame.reset_index(drop=True), frame.index.to_numpy(dtype=np.int64) + 2


def empty_frame() -> pd.DataFrame:
    return pd.DataFrame({column: [] for column in GRADIENT_COLUMNS})


def rel_error_exact(frame: pd.DataFrame) -> np.ndarray:
    """The ``rel_error_exact`` column of gradient rows (see :data:`~pystiffsens.study.schema.GRADIENT_COLUMNS`).

    The scale of each row is the largest ``|exact_grad|`` over the rows of the same batch key
    and stiffness value (every parameter entry of that solve), floored at the row's ``atol``.
    """
    exact = frame["exact_grad"].to_numpy(dtype=np.float64)
    group = [frame[column] for column in (*KEY_COLUMNS, "stiffness")]
    largest = pd.Series(np.abs(exact), index=frame.index).groupby(group, dropna=False).transform("max").to_numpy()
    scale = np.maximum(np.nan_to_num(largest, nan=0.0), frame["atol"].to_numpy(dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        error = np.abs(frame["grad"].to_numpy(dtype=np.float64) - exact) / scale
    return np.where(np.isfinite(exact), error, np.nan)


def far_from_exact(rel_error: np.ndarray) -> np.ndarray:
    """Which ``rel_error_exact`` values exceed :data:`~pystiffsens.study.schema.FAR_FROM_EXACT`."""
    return np.nan_to_num(np.asarray(rel_error, dtype=np.float64), nan=0.0, posinf=np.inf) > FAR_FROM_EXACT


def _lock(path: Path) -> filelock.FileLock:
    return filelock.FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_S)


_PROBLEM_ID = re.compile(r"sha256:[0-9a-f]{12}")
_INTEGER_COLUMNS = ("max_steps", *COUNTER_COLUMNS)
_FLOAT_COLUMNS = tuple(
    column for column in GRADIENT_COLUMNS if column not in (*_TEXT_COLUMNS, *_INTEGER_COLUMNS, "far_from_exact")
)
_REQUIRED_FLOATS = ("rtol", "atol", "stiffness", "wall_time_s")
"""Float columns that may not be NaN (``dt`` is NaN for adaptive steps; gradients, losses and
exact values are NaN on failures or without a closed form; ``compile_time_s`` for Julia)."""


def _validated(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``frame`` with typed columns; ``ValueError`` naming the first bad row."""

    def refuse(bad, what: str):
        i = int(np.flatnonzero(np.asarray(bad))[0])
        raise ValueError(_row_message(path, i + 2, frame.iloc[i], what))

    typed = {}
    for column in _TEXT_COLUMNS:
        values = frame[column]
        if values.isna().any():
            refuse(values.isna(), f"{column} is missing")
        typed[column] = values
    for column in (*_FLOAT_COLUMNS, *_INTEGER_COLUMNS):
        values = pd.to_numeric(frame[column], errors="coerce").astype(np.float64)
        mistyped = values.isna() & frame[column].notna()
        if mistyped.any():
            refuse(mistyped, f"{column}={_plain(frame[column][mistyped].iloc[0])!r} is not a number")
        typed[column] = values
    for column in _REQUIRED_FLOATS + _INTEGER_COLUMNS:
        if typed[column].isna().any():
            refuse(typed[column].isna(), f"{column} is missing")
    for column in _INTEGER_COLUMNS:
        values = typed[column]
        low = 1 if column == "max_steps" else NOT_REPORTED
        bad = (values != np.round(values)) | (values < low)
        if bad.any():
            refuse(bad, f"{column}={_plain(values[bad].iloc[0])!r} must be an integer >= {low}")
        typed[column] = values.astype(np.int64)
    flags = frame["far_from_exact"].astype(str).str.lower()
    if not flags.isin(["true", "false"]).all():
        bad = ~flags.isin(["true", "false"])
        refuse(bad, f"far_from_exact={_plain(frame['far_from_exact'][bad].iloc[0])!r} must be True or False")
    typed["far_from_exact"] = flags == "true"
    typed = pd.DataFrame(typed)[list(GRADIENT_COLUMNS)]

    status_names = [code.name for code in ReturnCode]
    checks = [
        (~typed["status"].isin(status_names), f"status is not one of {status_names}"),
        (~typed["problem_id"].map(lambda text: bool(_PROBLEM_ID.fullmatch(text))), "problem_id is not sha256: and 12 hex digits"),
        (~(typed["stiffness"] > 0) | ~np.isfinite(typed["stiffness"]), "stiffness must be positive and finite"),
        (~(typed["rtol"] > 0), "rtol must be > 0"),
        (~(typed["atol"] >= 0), "atol must be >= 0"),
        (typed["dt"].notna() & ~(typed["dt"] > 0), "dt must be positive (or empty for adaptive steps)"),
        (~(typed["wall_time_s"] >= 0), "wall_time_s must be >= 0"),
        (~_nan_equal(typed["abs_grad"], typed["grad"].abs()), "abs_grad is not |grad|"),
        ((typed["status"] != SUCCESS) & typed["grad"].notna(), "a failed solve has a gradient (it must be empty)"),
    ]
    for bad, what in checks:
        if np.asarray(bad).any():
            refuse(bad, what)
    recomputed = rel_error_exact(typed)
    stored = typed["rel_error_exact"].to_numpy()
    agree = np.isclose(stored, recomputed, rtol=1e-9, atol=0.0, equal_nan=True) | (np.isinf(stored) & np.isinf(recomputed))
    if not agree.all():
        refuse(~agree, "rel_error_exact does not follow from grad and exact_grad (edited values?)")
    if (typed["far_from_exact"].to_numpy() != far_from_exact(stored)).any():
        refuse(typed["far_from_exact"].to_numpy() != far_from_exact(stored), "far_from_exact does not follow from rel_error_exact")
    return typed


def _deduplicated(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    exact_copy = frame.duplicated(subset=[*IDENTITY_COLUMNS, *RESULT_COLUMNS], keep="last")
    if exact_copy.any():
        _warnings.warn(
            f"{path}: dropped {int(exact_copy.sum())} duplicated row(s) (same batch, stiffness, parameter and "
            f"results as a later row), first at line {int(np.flatnonzero(exact_copy)[0]) + 2}.",
            RuntimeWarning)
        frame = frame[~exact_copy]
    conflict = frame.duplicated(subset=list(IDENTITY_COLUMNS), keep=False)
    if conflict.any():
        lines = [int(i) + 2 for i in frame.index[conflict][:2]]
        row = frame[conflict].iloc[0]
        raise ValueError(
            f"{path}, lines {lines[0]} and {lines[1]} (solver={row['solver']!r}, sensitivity={row['sensitivity']!r}, "
            f"stiffness={_plain(row['stiffness'])!r}, param={row['param']!r}): two rows for the same computation with "
            "different results. The checkpoint is damaged: delete the wrong line or write to a new output directory."
        )
    return frame


def _row_message(path: Path, line: int, row: pd.Series, what: str) -> str:
    """The message refusing the damaged row ``row`` at ``line`` of ``path`` because of ``what``."""
    return (
        f"{path}, line {line} (solver={_plain(row['solver'])!r}, sensitivity={_plain(row['sensitivity'])!r}, "
        f"stiffness={_plain(row['stiffness'])!r}, param={_plain(row['param'])!r}): {what}. The checkpoint is damaged: "
        "fix or delete that line (a deleted row is recomputed on the next run) or write to a new output directory."
    )


def _listing(names: list[str], most: int = 12) -> str:
    """``names`` for a message: all of them, or the first ``most`` and how many in all."""
    if len(names) <= most:
        return repr(list(names))
    return f"{list(names[:most])!r} ... ({len(names)} in all)"


def _plain(value):
    """A NumPy scalar as the Python value it holds (for messages)."""
    return value.item() if isinstance(value, np.generic) else value


def _nan_equal(a: pd.Series, b: pd.Series) -> np.ndarray:
    a, b = a.to_numpy(dtype=np.float64), b.to_numpy(dtype=np.float64)
    return (a == b) | (np.isnan(a) & np.isnan(b))


def _key_mask(frame: pd.DataFrame, key: dict, ignore: tuple[str, ...] = ()) -> np.ndarray:
    """Which rows of ``frame`` have the key columns of ``key`` (floats to :data:`_MATCH_RTOL`), but those in ``ignore``."""
    mask = np.ones(len(frame), dtype=bool)
    for column in KEY_COLUMNS:
        if column in ignore:
            continue
        values = frame[column].to_numpy()
        wanted = key[column]
        if column in _FLOAT_KEYS:
            values = values.astype(np.float64)
            if np.isnan(wanted):
                mask &= np.isnan(values)
            else:
                mask &= np.isclose(values, wanted, rtol=_MATCH_RTOL, atol=0.0)
        else:
            mask &= values == wanted
    return mask


def _isin(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Which ``values`` match some entry of ``reference`` to :data:`_MATCH_RTOL`."""
    return _matches(values, reference).any(axis=1)


def _matches(values, reference) -> np.ndarray:
    """``[i, j]``: whether ``values[i]`` matches ``reference[j]`` to :data:`_MATCH_RTOL`."""
    values = np.asarray(values, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    return np.isclose(values[:, None], reference[None, :], rtol=_MATCH_RTOL, atol=0.0)
