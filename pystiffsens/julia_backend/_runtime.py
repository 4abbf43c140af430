"""Finding Julia, failing fast without it, and loading PyStiffSens through juliacall.

Importing ``juliacall`` where no Julia exists makes juliapkg download one, which hangs
for a long time where the download hosts cannot be reached. So before importing
juliacall this module looks for an existing Julia where juliacall and juliapkg would
find one (juliapkg's ``find_julia``: ``PYTHON_JULIACALL_EXE``/``PYTHON_JULIACALL_BINDIR``,
``PYTHON_JULIAPKG_EXE``, the executable an earlier resolve recorded, juliapkg's own
install prefix, ``julia`` on ``PATH``) and raises :class:`JuliaNotFoundError` at once
when there is none. Letting juliacall download Julia is opt-in:
``PYSTIFFSENS_JULIA_AUTO_INSTALL=yes``.

The Julia packages are declared in ``pystiffsens/juliapkg.json``; juliapkg installs
them into its project on first use (the local ``julia/`` package as a dev dependency).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys

ENV_JULIACALL_EXE = "PYTHON_JULIACALL_EXE"
ENV_JULIACALL_BINDIR = "PYTHON_JULIACALL_BINDIR"
ENV_JULIAPKG_EXE = "PYTHON_JULIAPKG_EXE"
ENV_OFFLINE = "PYTHON_JULIAPKG_OFFLINE"
ENV_AUTO_INSTALL = "PYSTIFFSENS_JULIA_AUTO_INSTALL"
MIN_JULIA = "1.10"
_YES = ("yes", "true", "1")


class JuliaNotFoundError(RuntimeError):
    """``backend="julia"`` was asked for where no usable Julia exists."""


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _YES


def _executable(path: str | None) -> str | None:
    """``path`` (a file or a command name) if it resolves to an executable file."""
    if not path:
        return None
    found = shutil.which(path)
    return os.path.abspath(found) if found else None


def _juliapkg_state() -> dict:
    """juliapkg's paths (project, meta file, install prefix); importing it starts nothing."""
    try:
        from juliapkg.state import STATE
    except ImportError:
        raise JuliaNotFoundError(
            "backend='julia' needs the Python packages juliacall and juliapkg: "
            "pip install 'pystiffsens[julia]'. backend='jax' (the default) needs nothing more."
        ) from None
    return STATE


def _recorded_executable(state: dict) -> str | None:
    """The Julia executable an earlier juliapkg resolve recorded in its meta file."""
    try:
        with open(state["meta"]) as handle:
            return _executable(json.load(handle).get("executable"))
    except (OSError, ValueError, AttributeError):
        return None


def find_julia() -> str:
    """Path of the Julia executable juliacall will use; :class:`JuliaNotFoundError` if there is none.

    An environment variable that names no executable is an error in itself (juliacall
    would reject it too), so it is reported rather than skipped.
    """
    for name in (ENV_JULIACALL_EXE, ENV_JULIAPKG_EXE):
        value = os.environ.get(name)
        if value:
            exe = _executable(value)
            if exe is None:
                raise JuliaNotFoundError(f"{name}={value!r} is not an executable Julia.\n\n" + _advice())
            return exe
    bindir = os.environ.get(ENV_JULIACALL_BINDIR)
    if bindir:
        exe = _executable(os.path.join(bindir, "julia"))
        if exe is None:
            raise JuliaNotFoundError(f"{ENV_JULIACALL_BINDIR}={bindir!r} holds no julia executable.\n\n" + _advice())
        return exe
    state = _juliapkg_state()
    for exe in (
        _recorded_executable(state),
        _executable(os.path.join(state["install"], "bin", "julia")),
        _executable("julia"),
    ):
        if exe is not None:
            return exe
    raise JuliaNotFoundError("backend='julia' found no Julia installation.\n\n" + _advice())


def _advice() -> str:
    return (
        f"The Julia backend needs Julia >= {MIN_JULIA}. Either\n"
        f"  * install it (https://julialang.org/downloads, or juliaup: "
        f"curl -fsSL https://install.julialang.org | sh) so that `julia` is on PATH, plus the "
        f"Python side: pip install 'pystiffsens[julia]';\n"
        f"  * or point juliacall at an existing Julia: export {ENV_JULIAPKG_EXE}=/path/to/bin/julia; "
        f"where there is no network, also export {ENV_OFFLINE}=yes (the Julia packages of "
        f"pystiffsens/juliapkg.json must then already be installed in juliapkg's project);\n"
        f"  * or let juliacall download Julia itself (needs network access): export {ENV_AUTO_INSTALL}=yes.\n"
        f"backend='jax' (the default) needs none of this."
    )


def ensure_julia() -> None:
    """Return quickly if juliacall can start Julia without a download; raise otherwise.

    With ``PYTHON_JULIAPKG_OFFLINE=yes`` juliapkg installs nothing, so the packages must
    have been installed by an earlier, online run.
    """
    if "juliacall" in sys.modules or _flag(ENV_AUTO_INSTALL):
        return
    find_julia()
    if _flag(ENV_OFFLINE):
        state = _juliapkg_state()
        if not os.path.isfile(state["meta"]):
            raise JuliaNotFoundError(
                f"{ENV_OFFLINE} is set but juliapkg never installed the Julia packages of pystiffsens "
                f"into {state['project']}: run once with network access (without {ENV_OFFLINE}), or "
                f"install PyStiffSens (julia/ in the pystiffsens sources) into that project by hand.\n\n"
                + _advice()
            )


@functools.cache
def julia_main():
    """juliacall's ``Main`` module, after :func:`ensure_julia`.

    Julia gets one thread per core unless ``PYTHON_JULIACALL_THREADS`` or
    ``JULIA_NUM_THREADS`` says otherwise (EnsembleThreads uses them), with Julia's
    signal handling on, as juliacall requires for more than one thread.
    """
    ensure_julia()
    if "PYTHON_JULIACALL_THREADS" not in os.environ and "JULIA_NUM_THREADS" not in os.environ:
        os.environ["PYTHON_JULIACALL_THREADS"] = "auto"
        os.environ.setdefault("PYTHON_JULIACALL_HANDLE_SIGNALS", "yes")
    from juliacall import Main

    return Main


@functools.cache
def pystiffsens_module():
    """The Julia module ``PyStiffSens`` (julia/ in the pystiffsens sources)."""
    main = julia_main()
    main.seval("import PyStiffSens")
    return main.PyStiffSens


@functools.cache
def load_cuda() -> None:
    """Load CUDA.jl and DiffEqGPU.jl, which activates PyStiffSens' CUDA extension."""
    julia_main().seval("import CUDA, DiffEqGPU")


def module_for(device: str):
    """PyStiffSens, with the CUDA extension loaded when ``device == "cuda"``."""
    module = pystiffsens_module()
    if device == "cuda":
        load_cuda()
    return module
