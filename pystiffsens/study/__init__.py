"""Stiffness studies: sweeps over a stiffness grid, decay-exponent fits, comparisons and reports.

* :func:`sweep` — gradients for solvers x sensitivities over a stiffness grid, a tidy frame
  (:mod:`~pystiffsens.study.schema`), resumable through ``out_dir`` (:mod:`~pystiffsens.study.resume`).
* :func:`fit_decay` — the exponent ``p`` of ``|grad| ~ stiffness^p`` per parameter entry.
* :func:`compare` — solvers and sensitivity methods side by side.
* :func:`report` — CSVs, figures and ``summary.md`` in a directory.
* :mod:`~pystiffsens.study.demo` — the README's study (``pystiffsens demo``).
"""

from .compare import compare
from .fit import fit_decay
from .report import report
from .resume import read_gradients
from .sweep import sweep

__all__ = ["compare", "fit_decay", "read_gradients", "report", "sweep"]
