"""Reading an SBML document with libsbml and refusing what changes the semantics of its core.

Only SBML Level 2 (any version) and Level 3 (versions 1 and 2) are read; Level 1 is refused.
Packages are refused unless they only annotate the model (``layout``, ``render``, ``groups``):
``comp``, ``fbc``, ``qual``, ``distrib``, ``arrays``, ``multi``, ``spatial`` and the others
change or extend what the core elements mean (SBML L3V2 core, Sect. 1.3).
Function definitions are inlined by libsbml's ``expandFunctionDefinitions`` converter.
"""

from __future__ import annotations

import os
from pathlib import Path

import libsbml

from .errors import not_supported

#: Packages that carry no simulation semantics (diagram layout and rendering, grouping).
ANNOTATION_PACKAGES = ("layout", "render", "groups")
#: libsbml's internal plugin for the math that L3V2 core added (min, max, rem, quotient, implies, rateOf).
_CORE_PLUGINS = ("l3v2extendedmath",)


def read(path_or_text) -> tuple[libsbml.SBMLDocument, str]:
    """``(document, source)`` for a path to an SBML file or SBML text (a string starting with ``<``).

    ``source`` is the path, or ``'<string>'``; it is named in every error about the model.
    Function definitions are already inlined in the returned document.
    """
    if isinstance(path_or_text, str) and path_or_text.lstrip().startswith("<"):
        source = "<string>"
        doc = libsbml.readSBMLFromString(path_or_text)
    elif isinstance(path_or_text, (str, os.PathLike)):
        source = str(path_or_text)
        if not Path(source).is_file():
            raise ValueError(
                f"sbml.load: {source!r} is not a file; pass a path to an SBML file or SBML text starting with '<'."
            )
        doc = libsbml.readSBMLFromFile(source)
    else:
        raise ValueError(
            f"sbml.load: {path_or_text!r} must be a path (str or os.PathLike) to an SBML file "
            "or SBML text starting with '<'."
        )
    fatal = [
        doc.getError(i) for i in range(doc.getNumErrors()) if doc.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR
    ]
    if fatal or doc.getModel() is None:
        details = "; ".join(f"line {e.getLine()}: {e.getShortMessage()}: {e.getMessage().strip()}" for e in fatal[:3])
        raise ValueError(f"{source}: not a readable SBML model ({details or 'the document has no <model>'}).")
    if doc.getLevel() < 2:
        raise not_supported(
            f"SBML Level {doc.getLevel()}",
            f"document level {doc.getLevel()} version {doc.getVersion()}",
            source,
            "convert it to Level 2 or 3 (libsbml's SBMLDocument.setLevelAndVersion).",
        )
    for i in range(doc.getNumPlugins()):
        package = doc.getPlugin(i).getPackageName()
        if package not in ANNOTATION_PACKAGES + _CORE_PLUGINS:
            raise not_supported(
                f"the SBML package {package!r}",
                f"model {doc.getModel().getId()!r}",
                source,
                f"only packages without simulation semantics are read: {list(ANNOTATION_PACKAGES)}.",
            )
    _expand_function_definitions(doc, source)
    return doc, source


def _expand_function_definitions(doc: libsbml.SBMLDocument, source: str) -> None:
    """Inline every function definition (libsbml's ``expandFunctionDefinitions`` converter)."""
    if doc.getModel().getNumFunctionDefinitions() == 0:
        return
    properties = libsbml.ConversionProperties()
    properties.addOption("expandFunctionDefinitions", True)
    status = doc.convert(properties)
    if status != libsbml.LIBSBML_OPERATION_SUCCESS:
        raise ValueError(
            f"{source}: libsbml could not inline the function definitions (expandFunctionDefinitions returned "
            f"{libsbml.OperationReturnValue_toString(status)}); check them for recursion or missing arguments."
        )
