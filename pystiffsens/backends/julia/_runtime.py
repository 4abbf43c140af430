"""Finding Julia, failing fast without it, and loading PyStiffSens through juliacall.

Importing ``juliacall`` where no usable Julia exists makes juliapkg download one, which
hangs for a long time where the download hosts cannot be reached. So before importing
juliacall this module looks for an existing Julia where juliacall and juliapkg would find
one and raises :class:`JuliaNotFoundError` at once when there is none:

* ``PYTHON_JULIACALL_EXE`` or ``PYTHON_JULIACALL_BINDIR``, accepted only together with
  ``PYTHON_JULIACALL_PROJECT`` (juliacall raises for either half alone). juliacall then
  bypasses juliapkg, so the Julia packages must be installed into that project by hand;
* ``PYTHON_JULIAPKG_EXE`` (juliapkg uses it whatever its version);
* the executable an earlier juliapkg resolve recorded, juliapkg's own install prefix and
  ``julia`` on ``PATH``, each only if its version is in the Julia bound juliapkg applies:
  the ``"julia"`` entry of ``pystiffsens/juliapkg.json`` intersected with those of the
  other juliapkg.json files (juliacall's); otherwise juliapkg would install another Julia.

Letting juliacall download Julia is opt-in: ``PYSTIFFSENS_JULIA_AUTO_INSTALL=yes``.

The Julia packages for CPU work are declared in ``pystiffsens/juliapkg.json``: the Julia
package shipped inside this Python package (``pystiffsens/julia``, PyStiffSens, as a dev
dependency). juliapkg installs them into its project on first use. CUDA.jl and DiffEqGPU.jl
are added to juliapkg's project only when ``device="cuda"`` is first asked for
(:func:`ensure_cuda_packages`), so they never constrain the CPU resolve.
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
import shutil
import subprocess
import sys

ENV_JULIACALL_EXE = "PYTHON_JULIACALL_EXE"
ENV_JULIACALL_BINDIR = "PYTHON_JULIACALL_BINDIR"
ENV_JULIACALL_PROJECT = "PYTHON_JULIACALL_PROJECT"
ENV_JULIAPKG_EXE = "PYTHON_JULIAPKG_EXE"
ENV_OFFLINE = "PYTHON_JULIAPKG_OFFLINE"
ENV_AUTO_INSTALL = "PYSTIFFSENS_JULIA_AUTO_INSTALL"
_YES = ("yes", "true", "1")

PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[2]
#: The juliapkg.json that juliapkg finds in the installed pystiffsens package.
JULIAPKG_JSON = PACKAGE_DIR / "juliapkg.json"
#: The Julia package PyStiffSens, shipped as package data of pystiffsens.
JULIA_PACKAGE_DIR = PACKAGE_DIR / "julia"
#: Seconds ``julia --version`` may take before a candidate counts as unusable.
_VERSION_TIMEOUT_S = 10.0

#: Packages that ``device="cuda"`` adds to juliapkg's project: name -> (UUID, compat). The
#: compat entries are those of ``[compat]`` in ``pystiffsens/julia/Project.toml``.
CUDA_PACKAGES = {
    "CUDA": ("052768ef-5323-5732-b1bb-66c8b64840ba", "5, 6"),
    "DiffEqGPU": ("071ae1c0-96b5-11e9-1965-c90190d839ea", "3.16"),
}


class JuliaNotFoundError(RuntimeError):
    """``backend="julia"`` was asked for where no usable Julia (or Julia package set) exists."""


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _YES


def _executable(path: str | None) -> str | None:
    """``path`` (a file or a command name) if it resolves to an executable file."""
    if not path:
        return None
    found = shutil.which(path)
    return os.path.abspath(found) if found else None


@functools.cache
def julia_versions() -> str:
    """The Julia versions pystiffsens supports: the ``"julia"`` entry of its juliapkg.json."""
    return json.loads(JULIAPKG_JSON.read_text())["julia"]


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


def _version_of(exe: str):
    """The ``juliapkg.compat.Version`` that ``exe --version`` reports, or ``None``."""
    from juliapkg.compat import Version

    try:
        words = subprocess.run(
            [exe, "--version"], capture_output=True, text=True, timeout=_VERSION_TIMEOUT_S, check=True
        ).stdout.split()
        if words[:2] == ["julia", "version"]:
            return Version.parse(words[2])
    except (OSError, subprocess.SubprocessError, IndexError, ValueError):
        pass
    return None


def _julia_bound():
    """The Julia versions juliapkg will accept, as a ``juliapkg.compat.Compat``.

    juliapkg intersects the ``"julia"`` entries of every juliapkg.json it finds (ours,
    juliacall's ``^1.10.3``, an OpenSSL-derived bound); where that search fails, ours alone.
    """
    from juliapkg.compat import Compat

    try:
        from juliapkg.deps import find_requirements

        bound, _ = find_requirements()
    except Exception:  # conflicting juliapkg.json files: juliapkg reports those itself
        bound = None
    return bound if bound is not None else Compat.parse(julia_versions())


def _supported(exe: str, bound) -> bool:
    """Whether ``exe`` is a Julia whose version is in ``bound``."""
    version = _version_of(exe)
    return version is not None and version in bound


def juliacall_project() -> str | None:
    """``PYTHON_JULIACALL_PROJECT`` when juliacall is told to bypass juliapkg, else ``None``.

    juliacall accepts ``PYTHON_JULIACALL_EXE`` or ``PYTHON_JULIACALL_BINDIR`` only together
    with ``PYTHON_JULIACALL_PROJECT``, and the project only with one of them; any other
    combination is a :class:`JuliaNotFoundError` here, before juliacall would raise.
    """
    exe_vars = [name for name in (ENV_JULIACALL_EXE, ENV_JULIACALL_BINDIR) if os.environ.get(name)]
    project = os.environ.get(ENV_JULIACALL_PROJECT)
    if not exe_vars and not project:
        return None
    if not project:
        name = exe_vars[0]
        raise JuliaNotFoundError(
            f"{name}={os.environ[name]!r} is set without {ENV_JULIACALL_PROJECT}: juliacall accepts "
            f"{ENV_JULIACALL_EXE}/{ENV_JULIACALL_BINDIR} only together with {ENV_JULIACALL_PROJECT}. Either "
            f"unset {name} and name the Julia with {ENV_JULIAPKG_EXE} (juliapkg then installs the Julia "
            f"packages), or also set {ENV_JULIACALL_PROJECT}.\n\n" + _manual_install_advice()
        )
    if not exe_vars:
        raise JuliaNotFoundError(
            f"{ENV_JULIACALL_PROJECT}={project!r} is set without {ENV_JULIACALL_EXE} or "
            f"{ENV_JULIACALL_BINDIR}: juliacall accepts it only together with one of them.\n\n"
            + _manual_install_advice()
        )
    if not os.path.isdir(project):
        raise JuliaNotFoundError(
            f"{ENV_JULIACALL_PROJECT}={project!r} is not a directory.\n\n" + _manual_install_advice()
        )
    return os.path.abspath(project)


def _manual_install_advice() -> str:
    return (
        f"With {ENV_JULIACALL_PROJECT} set, juliacall bypasses juliapkg, so nothing installs the Julia "
        f"packages: install them into that project by hand, e.g.\n"
        f"  julia --project=\"${ENV_JULIACALL_PROJECT}\" -e 'using Pkg; "
        f"Pkg.develop(path=\"{JULIA_PACKAGE_DIR}\"); Pkg.add(\"PythonCall\")'\n"
        f"(PythonCall at the version juliacall's own juliapkg.json names), and for device='cuda' also "
        f"Pkg.add([\"CUDA\", \"DiffEqGPU\"])."
    )


def find_julia() -> str:
    """Path of the Julia executable juliacall will use; :class:`JuliaNotFoundError` if there is none.

    An environment variable that names no executable is an error in itself (juliacall
    would reject it too), so it is reported rather than skipped.
    """
    if juliacall_project() is not None:
        value = os.environ.get(ENV_JULIACALL_EXE)
        if value:
            exe = _executable(value)
            if exe is None:
                raise JuliaNotFoundError(f"{ENV_JULIACALL_EXE}={value!r} is not an executable Julia.\n\n" + _advice())
            return exe
        bindir = os.environ[ENV_JULIACALL_BINDIR]
        exe = _executable(os.path.join(bindir, "julia"))
        if exe is None:
            raise JuliaNotFoundError(f"{ENV_JULIACALL_BINDIR}={bindir!r} holds no julia executable.\n\n" + _advice())
        return exe
    value = os.environ.get(ENV_JULIAPKG_EXE)
    if value:
        exe = _executable(value)
        if exe is None:
            raise JuliaNotFoundError(f"{ENV_JULIAPKG_EXE}={value!r} is not an executable Julia.\n\n" + _advice())
        return exe
    state = _juliapkg_state()
    candidates = [
        exe
        for exe in (
            _recorded_executable(state),
            _executable(os.path.join(state["install"], "bin", "julia")),
            _executable("julia"),
        )
        if exe is not None
    ]
    bound = _julia_bound() if candidates else None
    for exe in candidates:
        if _supported(exe, bound):
            return exe
    if candidates:
        found = ", ".join(f"{exe} ({_version_of(exe) or 'no version'})" for exe in dict.fromkeys(candidates))
        raise JuliaNotFoundError(
            f"backend='julia' found Julia only outside the supported versions {str(bound)!r}: {found}; "
            "juliapkg would download another one.\n\n" + _advice()
        )
    raise JuliaNotFoundError("backend='julia' found no Julia installation.\n\n" + _advice())


def _advice() -> str:
    return (
        f"The Julia backend needs Julia {julia_versions()} (the versions SciMLSensitivity tests its Zygote "
        f"and Enzyme paths on). Either\n"
        f"  * install it (https://julialang.org/downloads, or juliaup: "
        f"curl -fsSL https://install.julialang.org | sh, then juliaup add 1.11) so that `julia` is on PATH, "
        f"plus the Python side: pip install 'pystiffsens[julia]';\n"
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
    if juliacall_project() is None and _flag(ENV_OFFLINE):
        state = _juliapkg_state()
        if not os.path.isfile(state["meta"]):
            raise JuliaNotFoundError(
                f"{ENV_OFFLINE} is set but juliapkg never installed the Julia packages of pystiffsens "
                f"into {state['project']}: run once with network access (without {ENV_OFFLINE}), or "
                f"install PyStiffSens ({JULIA_PACKAGE_DIR}) into that project by hand.\n\n" + _advice()
            )


def _required_packages() -> set[str]:
    """Names of the Julia packages that juliapkg's deps files (every juliapkg.json) require."""
    from juliapkg.deps import find_requirements

    _, packages = find_requirements()
    return {package.name for package in packages}


def ensure_cuda_packages() -> bool:
    """Add CUDA.jl and DiffEqGPU.jl to juliapkg's project if no juliapkg.json requires them yet.

    Called on the first ``device="cuda"`` request. ``juliapkg.add`` records them in
    juliapkg's own deps file (kept with its project, so later sessions keep them; undo
    with ``juliapkg.rm``) and ``juliapkg.resolve`` installs them, which needs network
    access and takes several minutes. A failed install is undone and raises
    :class:`JuliaNotFoundError`. With ``PYTHON_JULIACALL_PROJECT`` juliapkg is bypassed
    and nothing is installed here. Returns whether packages were installed.
    """
    if juliacall_project() is not None:
        return False
    import juliapkg

    missing = [name for name in CUDA_PACKAGES if name not in _required_packages()]
    if not missing:
        return False
    if _flag(ENV_OFFLINE):
        raise JuliaNotFoundError(
            f"device='cuda' needs the Julia packages {', '.join(missing)}, which are not installed, and "
            f"{ENV_OFFLINE} is set: run once with network access, or use device='cpu'."
        )
    print(
        f"pystiffsens: device='cuda' asked for the first time; installing the Julia packages "
        f"{', '.join(missing)} into juliapkg's project {_juliapkg_state()['project']} (needs network "
        "access; takes several minutes, mostly precompilation).",
        file=sys.stderr,
    )
    for name in missing:
        uuid, version = CUDA_PACKAGES[name]
        juliapkg.add(name, uuid, version=version)
    try:
        juliapkg.resolve()
    except Exception as error:
        for name in missing:
            juliapkg.rm(name)
        raise JuliaNotFoundError(
            f"installing {', '.join(missing)} for device='cuda' failed ({error}); they were removed from "
            "juliapkg's project again, so device='cpu' is unaffected."
        ) from error
    return True


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
    """The Julia module ``PyStiffSens`` (``pystiffsens/julia``)."""
    main = julia_main()
    main.seval("import PyStiffSens")
    return main.PyStiffSens


@functools.cache
def load_cuda() -> None:
    """Install (first time) and load CUDA.jl and DiffEqGPU.jl, which activates PyStiffSens' CUDA extension.

    The install runs before Julia starts when ``device="cuda"`` is the first request of
    the session; when Julia is already running, packages it loaded may have changed
    version underneath it, and a failed import then asks for a restart.
    """
    ensure_julia()
    running = "juliacall" in sys.modules
    installed = ensure_cuda_packages()
    main = julia_main()
    try:
        main.seval("import CUDA, DiffEqGPU")
    except Exception as error:
        if installed and running:
            raise RuntimeError(
                f"CUDA.jl and DiffEqGPU.jl were installed while Julia was already running in this process, "
                f"and loading them failed ({error}). Restart Python and ask for device='cuda' again."
            ) from error
        raise


def module_for(device: str):
    """PyStiffSens, with the CUDA extension loaded when ``device == "cuda"``."""
    if device == "cuda":
        load_cuda()
    return pystiffsens_module()
