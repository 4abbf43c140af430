"""Checkpoints of a training run: parameters, optimiser state and the history so far.

A checkpoint is a pickle of plain NumPy data (no JAX arrays) written atomically, so an
interrupted run leaves either the previous checkpoint or the new one. It records a
``fingerprint`` of the run (variant, stiffness, configuration); resuming from a checkpoint
of a different run raises ``ValueError`` instead of continuing the wrong training.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import jax
import numpy as np


def _to_numpy(tree):
    return jax.tree_util.tree_map(np.asarray, tree)


def save(path, *, fingerprint: dict, epoch: int, raw: dict, opt_state, rows: list[dict]) -> None:
    """Write the state after ``epoch`` completed epochs to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "fingerprint": fingerprint,
        "epoch": int(epoch),
        "raw": _to_numpy(raw),
        "opt_state": _to_numpy(opt_state),
        "rows": list(rows),
    }
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        pickle.dump(payload, handle)
    os.replace(tmp, path)


def load(path, fingerprint: dict) -> dict | None:
    """The checkpoint at ``path``, or ``None`` if there is none.

    Raises ``ValueError`` when it belongs to another run (its fingerprint differs).
    """
    path = Path(path)
    if not path.exists():
        return None
    with open(path, "rb") as handle:
        payload = pickle.load(handle)
    if payload.get("fingerprint") != fingerprint:
        raise ValueError(
            f"checkpoint {path} belongs to another run: it has {payload.get('fingerprint')!r}, "
            f"this run is {fingerprint!r}; delete it or use another output directory."
        )
    return payload
