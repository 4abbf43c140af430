"""The CSV checkpoint that lets a long sweep resume: ``out_dir/gradients.csv``.

A sweep with an output directory appends each batch's rows to the checkpoint as soon as the
batch finishes (by writing a complete new file and renaming it over the old one, so an
interrupted write never leaves a truncated file). On a rerun, the rows whose batch key
(:data:`~pystiffsens.study.schema.KEY_COLUMNS`) and stiffness value match are read back
instead of recomputed; only the missing stiffness values are computed.

The file may also hold rows of other sweeps written to the same directory (another problem,
tolerance or grid): a sweep returns only its own rows, and
:func:`~pystiffsens.study.report` rewrites ``gradients.csv`` with the frame it reports.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..problem import Problem
from .schema import GRADIENT_COLUMNS, KEY_COLUMNS

CHECKPOINT_NAME = "gradients.csv"

_FLOAT_KEYS = ("rtol", "atol", "dt")
_TEXT_COLUMNS = ("problem", "problem_id", "backend", "device", "solver", "sensitivity", "param", "status")
_MATCH_RTOL = 1e-12
"""Relative tolerance for matching floats read back from CSV (they round-trip exactly with
pandas; the tolerance only guards against grids rebuilt with a different rounding)."""


def problem_id(problem: Problem) -> str:
    """A fingerprint of a problem's data: ``"sha256:"`` and 12 hex digits.

    Covers the name, time span, initial state, save times, parameter values and the
    qualified names of the right-hand side, loss, closed-form solution and stiffness knob.
    Changes to the body of those functions are not detected: use a new output directory
    (or a new problem name) after editing them.
    """
    digest = hashlib.sha256()

    def add(value) -> None:
        digest.update(repr(value).encode())
        digest.update(b"\0")

    def qualname(fn) -> str:
        return "" if fn is None else f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"

    add(problem.label)
    add(problem.tspan)
    add(np.asarray(problem.y0).tobytes())
    add(np.asarray(problem.saveat).tobytes())
    for name in sorted(problem.params):
        value = np.asarray(problem.params[name], dtype=np.float64)
        add((name, value.shape, value.tobytes()))
    add(qualname(problem.rhs))
    add(qualname(problem.loss_fn))
    add(qualname(problem.exact_solution))
    add(problem.stiffness if isinstance(problem.stiffness, str) else qualname(problem.stiffness))
    return f"sha256:{digest.hexdigest()[:12]}"  # the prefix keeps CSV readers from parsing it as a number


class Checkpoint:
    """The rows of ``out_dir/gradients.csv``, read once and extended batch by batch."""

    def __init__(self, out_dir):
        self.path = Path(out_dir) / CHECKPOINT_NAME
        self.rows = read_gradients(self.path) if self.path.exists() else empty_frame()

    def done(self, key: dict, stiffness: np.ndarray) -> pd.DataFrame:
        """Stored rows of batch ``key`` whose stiffness is one of ``stiffness``."""
        if self.rows.empty:
            return self.rows
        mask = _key_mask(self.rows, key) & _isin(self.rows["stiffness"].to_numpy(), stiffness)
        return self.rows[mask]

    def append(self, rows: pd.DataFrame) -> None:
        """Add ``rows`` and rewrite the file atomically."""
        self.rows = pd.concat([self.rows, rows], ignore_index=True) if len(self.rows) else rows
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        self.rows.to_csv(partial, index=False)
        os.replace(partial, self.path)


def missing(done: pd.DataFrame, stiffness: np.ndarray) -> np.ndarray:
    """Boolean mask of the values of ``stiffness`` that have no row in ``done``."""
    return ~_isin(stiffness, done["stiffness"].to_numpy())


def positions(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Index in ``grid`` of each of ``values`` (each must match an entry)."""
    return _matches(values, grid).argmax(axis=1)


def read_gradients(path) -> pd.DataFrame:
    """Read a gradient frame written by a sweep or a report; ``ValueError`` if it is not one."""
    frame = pd.read_csv(path, dtype={column: str for column in _TEXT_COLUMNS})
    if list(frame.columns) != list(GRADIENT_COLUMNS):
        raise ValueError(
            f"{path} is not a gradient frame of this pystiffsens version (columns {list(frame.columns)}, "
            f"expected {list(GRADIENT_COLUMNS)}); write to a new output directory."
        )
    return frame


def empty_frame() -> pd.DataFrame:
    return pd.DataFrame({column: [] for column in GRADIENT_COLUMNS})


def _key_mask(frame: pd.DataFrame, key: dict) -> np.ndarray:
    mask = np.ones(len(frame), dtype=bool)
    for column in KEY_COLUMNS:
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
