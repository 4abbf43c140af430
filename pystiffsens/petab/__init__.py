"""PEtab v1 problems on SBML models: their negative log-likelihood and its gradient through ``pss.solve``.

``pystiffsens.petab.load(yaml_path)`` reads a PEtab v1 problem (PEtab-dev/PEtab,
``doc/v1/documentation_data_format.rst``) with the ``petab`` library and its SBML model with
:mod:`pystiffsens.sbml`, and returns a :class:`PetabProblem`: ``.nominal``, ``.nllh(x)``,
``.gradient(x, sensitivity=...)``, ``.evaluate(x, gradient=True)`` (both, with every
simulation's status, an :class:`Evaluation`) and ``.problem(condition_id)`` (a plain ``pss.Problem``).
``pystiffsens petab MODEL.yaml --out DIR`` writes its report (:mod:`.report`).

Modules: :mod:`.tables` (reading, mapping, refusals), :mod:`.formulas` (observables and noise),
:mod:`.likelihood` (the noise models), :mod:`.preequilibration`, :mod:`.problem`, :mod:`.report`.

python-libsbml, petab and sympy are optional dependencies (``pip install 'pystiffsens[petab]'``):
``load`` and ``PetabProblem`` import them on first use, so that the command line works without
them and says what to install.
"""

REQUIREMENTS = "python-libsbml, petab and sympy (pip install 'pystiffsens[petab]')"

__all__ = ["Evaluation", "PetabProblem", "load"]


def __getattr__(name: str):
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from . import problem
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(f"pystiffsens.petab needs {REQUIREMENTS}; {error.name!r} is not installed.",
                                  name=error.name) from error
    return getattr(problem, name)
