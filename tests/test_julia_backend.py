"""The Julia backend: what can be checked without Julia, and parity with JAX where Julia exists.

Without Julia this checks that every Julia file parses (tree-sitter-julia), that
Project.toml and juliapkg.json name the right packages with their General-registry
UUIDs, that the Julia tables are keyed by the Julia names the solver catalog gives
(``solver.julia``, ``solver.julia_gpu``) and the SciMLSensitivity names Python sends, that
the built-in problems (parameters, defaults, knobs, rate constants) match the Python ones,
tree-sitter queries of the solve, gradient and GPU code for the defects of issue #11 and
for ``saveat`` starting at ``t0``, the conversions of problems and results, the calls into
Julia through the public API (``pss.solve``/``pss.gradient``/``pss.sweep`` with
``backend="julia"``) against a stand-in for the Julia module, the refusals that come
before Julia is looked for, the automatic sensitivity choice, the environment-variable,
Julia-version and lazy CUDA-install logic of ``_runtime``, and that a missing Julia fails
fast with the right advice. Only the tests that read Julia sources need tree-sitter
(marker ``needs_tree_sitter``); the rest run without it. The parity tests (marker
``julia``) need a Julia runtime and skip without one. Building a wheel:
tests/test_julia_packaging.py.
"""

from __future__ import annotations

import inspect
import json
import pathlib
import re
import shutil
import stat
import sys
import time

import jax.numpy as jnp
import numpy as np
import pytest

import pystiffsens as pss
from pystiffsens.backends.julia import JuliaBackend, JuliaNotFoundError, _runtime, api, convert, find_julia, names
from pystiffsens.options import Options
from pystiffsens.problems import _registry, chemistry
from pystiffsens.returncode import ReturnCode

try:
    import tree_sitter as ts
    import tree_sitter_julia as tsj
except ImportError:
    ts = tsj = None
try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = None

needs_tree_sitter = pytest.mark.skipif(
    ts is None, reason="tree-sitter and tree-sitter-julia not installed (pip install 'pystiffsens[test]')"
)
needs_tomllib = pytest.mark.skipif(tomllib is None, reason="tomllib needs Python >= 3.11")

ROOT = pathlib.Path(__file__).resolve().parents[1]
JULIA_DIR = ROOT / "pystiffsens" / "julia"
JULIAPKG_JSON = ROOT / "pystiffsens" / "juliapkg.json"
JULIA_FILES = sorted(JULIA_DIR.rglob("*.jl"))
SOURCE_FILES = sorted((JULIA_DIR / "src").glob("*.jl")) + sorted((JULIA_DIR / "ext").glob("*.jl"))

# UUIDs in the General registry, each read from the `uuid` line of the package's own
# Project.toml (snapshots of the upstream repositories, 2026):
GENERAL_REGISTRY_UUIDS = {
    # SciML/OrdinaryDiffEq.jl, lib/<name>/Project.toml (OrdinaryDiffEq 7.7.0, commit b211787:
    # BDF 2.4.4, ExponentialRK 2.3.0, FIRK 2.8.0, Rosenbrock 2.6.6, SDIRK 2.9.1)
    "OrdinaryDiffEqBDF": "6ad6398a-0878-4a85-9266-38940aa047c8",
    "OrdinaryDiffEqExponentialRK": "e0540318-69ee-4070-8777-9e2de6de23de",
    "OrdinaryDiffEqFIRK": "5960d6e9-dd7a-4743-88e7-cf307b64f125",
    "OrdinaryDiffEqRosenbrock": "43230ef6-c299-4910-a778-202eb28ce4ce",
    "OrdinaryDiffEqSDIRK": "2d112036-d095-4a1e-ab9a-08536f3ecdbf",
    # SciML/SciMLBase.jl Project.toml (3.49.2, commit b501faa)
    "SciMLBase": "0bca4576-84f4-4d90-8ffe-ffa030f20462",
    # SciML/SciMLSensitivity.jl Project.toml (7.112.3, commit efb2fdb)
    "SciMLSensitivity": "1ed8b502-d754-442c-8d5d-10ac956f44a1",
    # FluxML/Zygote.jl Project.toml (0.7.12)
    "Zygote": "e88e6eb3-aa80-5325-afca-941959d7151f",
    # JuliaDiff/ForwardDiff.jl Project.toml
    "ForwardDiff": "f6369f11-7733-5829-9624-2563aa707210",
    # JuliaArrays/StaticArrays.jl Project.toml (1.9.16)
    "StaticArrays": "90137ffa-7385-5640-81b9-e52037218182",
    # JuliaGPU/CUDA.jl Project.toml
    "CUDA": "052768ef-5323-5732-b1bb-66c8b64840ba",
    # SciML/DiffEqGPU.jl Project.toml (3.17.0, commit 1e5fe6e)
    "DiffEqGPU": "071ae1c0-96b5-11e9-1965-c90190d839ea",
    # the Test standard library (as listed in OrdinaryDiffEq's [extras])
    "Test": "8dfed614-e22c-5e08-85e1-65c5234f0b40",
}

NO_JULIA = "Julia runtime not available (no julia executable; see README 'Julia backend')"


def _julia_available() -> bool:
    try:
        _runtime.ensure_julia()
    except JuliaNotFoundError:
        return False
    return True


JULIA = _julia_available()


def needs_julia(test):
    """Mark ``test`` as a Julia test and skip it where no Julia runtime exists."""
    return pytest.mark.julia(pytest.mark.skipif(not JULIA, reason=NO_JULIA)(test))


# --- reading Julia sources with tree-sitter -------------------------------------

_PARSER = None if ts is None else ts.Parser(ts.Language(tsj.language()))


def _tree(path: pathlib.Path):
    return _PARSER.parse(path.read_bytes()).root_node


def _walk(node):
    yield node
    for child in node.children:
        yield from _walk(child)


def _error_nodes(root) -> list:
    return [(n.type, n.start_point) for n in _walk(root) if n.type == "ERROR" or n.is_missing]


def _const_value(path: pathlib.Path, name: str):
    """The right-hand side node of ``const name = ...`` in ``path``."""
    for node in _walk(_tree(path)):
        if node.type == "const_statement":
            assignment = node.named_children[0]
            if assignment.named_children[0].text.decode() == name:
                return assignment.named_children[-1]
    raise AssertionError(f"no `const {name}` in {path}")


def _string(node) -> str:
    assert node.type == "string_literal", node.type
    return node.text.decode().strip('"')


def _dict_entries(path: pathlib.Path, name: str) -> dict:
    """``const name = Dict(...)(key => value, ...)`` as {key string: value node}."""
    arguments = _const_value(path, name).named_children[-1]
    pairs = [n for n in arguments.named_children if n.type == "binary_expression"]
    return {_string(pair.named_children[0]): pair.named_children[-1] for pair in pairs}


def _string_tuple(path: pathlib.Path, name: str) -> tuple:
    return tuple(_string(n) for n in _const_value(path, name).named_children)


def _number_vector(path: pathlib.Path, name: str) -> np.ndarray:
    return np.array([float(n.text.decode()) for n in _const_value(path, name).named_children])


def _keyword_defaults(path: pathlib.Path, function: str) -> dict:
    """Keyword arguments of the Julia function ``function``: name -> default (None if required)."""
    for node in _walk(_tree(path)):
        if node.type == "call_expression" and node.named_children[0].text.decode() == function:
            arguments = node.named_children[1]
            if b";" not in arguments.text:
                continue
            out = {}
            for arg in arguments.named_children:
                if arg.type == "named_argument":
                    value = arg.named_children[-1]
                    out[arg.named_children[0].text.decode()] = (
                        value.text.decode() == "true" if value.type == "boolean_literal" else float(value.text.decode())
                    )
                elif arg.type == "identifier":
                    out[arg.text.decode()] = None
            return out
    raise AssertionError(f"no keyword method of {function} in {path}")


# --- Julia sources ----------------------------------------------------------------


def test_the_julia_package_has_its_files():
    found = {p.relative_to(JULIA_DIR).as_posix() for p in JULIA_FILES}
    assert {"src/PyStiffSens.jl", "src/problems.jl", "src/solvers.jl", "src/sensitivities.jl",
            "ext/PyStiffSensCUDAExt.jl", "test/runtests.jl"} <= found


@needs_tree_sitter
@pytest.mark.parametrize("path", JULIA_FILES, ids=lambda p: p.relative_to(JULIA_DIR).as_posix())
def test_julia_file_parses_without_errors(path):
    assert _error_nodes(_tree(path)) == []


@needs_tree_sitter
def test_the_parse_check_catches_broken_julia():
    broken = _PARSER.parse(b"function f(x)\n    y = (x +\nend\n").root_node
    assert _error_nodes(broken)


@needs_tree_sitter
def test_every_included_file_exists_and_every_source_file_is_included():
    module = JULIA_DIR / "src" / "PyStiffSens.jl"
    included = {
        _string(n.named_children[1].named_children[0])
        for n in _walk(_tree(module))
        if n.type == "call_expression" and n.named_children[0].text == b"include"
    }
    assert included == {p.name for p in (JULIA_DIR / "src").glob("*.jl")} - {"PyStiffSens.jl"}


# --- Project.toml and juliapkg.json ------------------------------------------------


def _project() -> dict:
    return tomllib.loads((JULIA_DIR / "Project.toml").read_text())


def _juliapkg_spec() -> dict:
    return json.loads(JULIAPKG_JSON.read_text())


@needs_tomllib
def test_project_toml_uuids_are_those_of_the_general_registry():
    project = _project()
    for section in ("deps", "weakdeps", "extras"):
        for package, uuid in project[section].items():
            assert GENERAL_REGISTRY_UUIDS[package] == uuid, (section, package)


@needs_tomllib
def test_project_toml_names_the_solver_and_sensitivity_stack():
    project = _project()
    assert project["name"] == "PyStiffSens"
    assert {"OrdinaryDiffEqRosenbrock", "OrdinaryDiffEqSDIRK", "OrdinaryDiffEqFIRK", "OrdinaryDiffEqBDF",
            "OrdinaryDiffEqExponentialRK", "SciMLBase", "SciMLSensitivity", "Zygote", "StaticArrays"} <= set(project["deps"])
    assert set(project["weakdeps"]) == {"CUDA", "DiffEqGPU"}
    assert project["extensions"] == {"PyStiffSensCUDAExt": ["CUDA", "DiffEqGPU"]}
    assert (JULIA_DIR / "ext" / "PyStiffSensCUDAExt.jl").is_file()


@needs_tomllib
def test_project_toml_bounds_every_dependency():
    project = _project()
    declared = set(project["deps"]) | set(project["weakdeps"]) | set(project["extras"])
    assert set(project["compat"]) == declared | {"julia"}
    assert project["compat"]["julia"] == "1.10"


# OrdinaryDiffEq v7 (2026-04) moved every solver sublibrary from 1.x to 2.0.0 ("Cascade major
# version bump across all sublibs", commit 660919b) on SciMLBase 3; the newest versions read
# (OrdinaryDiffEq.jl b211787, SciMLBase.jl b501faa) must be admitted, the last v6-era ones (the
# versions just before that commit; SciMLBase 2.154.0 before 3.0.0) not.
# SciMLSensitivity admits LinearSolve 5, which the newest sublibraries need, from 7.116.1 on
# (SciMLSensitivity.jl #1555); the floor is the 7.119 line this package was read against.
ADMITTED_VERSIONS = {
    "OrdinaryDiffEqBDF": (["2.0.0", "2.4.4"], ["1.26.0", "3.0.0"]),
    "OrdinaryDiffEqExponentialRK": (["2.0.0", "2.3.0"], ["1.15.0", "3.0.0"]),
    "OrdinaryDiffEqFIRK": (["2.0.0", "2.8.0"], ["1.26.0", "3.0.0"]),
    "OrdinaryDiffEqRosenbrock": (["2.0.0", "2.6.6"], ["1.31.1", "3.0.0"]),
    "OrdinaryDiffEqSDIRK": (["2.0.0", "2.9.1"], ["1.13.0", "3.0.0"]),
    "SciMLBase": (["3.0.0", "3.49.2"], ["2.154.0", "4.0.0"]),
    "SciMLSensitivity": (["7.119.0", "7.119.10"], ["7.112.3", "7.116.1", "8.0.0"]),
}


@needs_tomllib
def test_compat_admits_the_ordinarydiffeq_v7_versions_read_and_not_the_v6_ones():
    from juliapkg.compat import Compat, Version

    compat = _project()["compat"]
    for package, (admitted, refused) in ADMITTED_VERSIONS.items():
        bound = Compat.parse(compat[package])
        assert all(Version.parse(v) in bound for v in admitted), (package, compat[package])
        assert not any(Version.parse(v) in bound for v in refused), (package, compat[package])


@needs_tomllib
def test_juliapkg_json_declares_only_the_julia_package_inside_the_python_package():
    spec = _juliapkg_spec()
    assert set(spec["packages"]) == {"PyStiffSens"}
    local = spec["packages"]["PyStiffSens"]
    assert local["uuid"] == _project()["uuid"]
    assert local["dev"] is True
    # relative to juliapkg.json itself, so it resolves inside site-packages as well
    assert (JULIAPKG_JSON.parent / local["path"]).resolve() == JULIA_DIR
    assert JULIA_DIR.parent == JULIAPKG_JSON.parent


# SciMLSensitivity tests its Zygote and Enzyme paths on Julia < 1.12 only (its
# test/Core1/adjoint_shapes.jl, test/Core4/ensembles.jl: `if VERSION >= v"1.12"` skip).
SUPPORTED_JULIA = ["1.10.0", "1.10.10", "1.11.0", "1.11.7"]
UNSUPPORTED_JULIA = ["1.9.4", "1.12.0", "1.13.1", "2.0.0"]


def test_juliapkg_json_bounds_julia_to_the_versions_scimlsensitivity_supports():
    from juliapkg.compat import Compat, Version

    bound = Compat.parse(_juliapkg_spec()["julia"])
    assert all(Version.parse(v) in bound for v in SUPPORTED_JULIA)
    assert not any(Version.parse(v) in bound for v in UNSUPPORTED_JULIA)
    assert _runtime.julia_versions() == _juliapkg_spec()["julia"]


@pytest.fixture
def juliapkg_deps_of_this_checkout(monkeypatch, tmp_path):
    """juliapkg's requirement search, with its own deps file (a user's added packages) empty."""
    deps = pytest.importorskip("juliapkg.deps")
    from juliapkg.state import STATE

    monkeypatch.setitem(STATE, "deps", str(tmp_path / "pyjuliapkg" / "juliapkg.json"))
    return deps


def test_juliapkg_finds_our_juliapkg_json_and_the_cpu_resolve_has_no_gpu_packages(juliapkg_deps_of_this_checkout):
    compat, packages = juliapkg_deps_of_this_checkout.find_requirements()
    by_name = {p.name: p for p in packages}
    assert by_name["PyStiffSens"].dev and pathlib.Path(by_name["PyStiffSens"].path).resolve() == JULIA_DIR
    assert not {"CUDA", "DiffEqGPU"} & set(by_name)
    from juliapkg.compat import Version

    assert Version.parse("1.12.0") not in compat  # our bound takes part in juliapkg's Julia choice


@needs_tomllib
def test_cuda_packages_added_on_demand_are_the_weak_dependencies_of_the_extension():
    project = _project()
    assert set(_runtime.CUDA_PACKAGES) == set(project["weakdeps"]) == set(project["extensions"]["PyStiffSensCUDAExt"])
    for name, (uuid, version) in _runtime.CUDA_PACKAGES.items():
        assert uuid == project["weakdeps"][name] == GENERAL_REGISTRY_UUIDS[name]
        assert version == project["compat"][name]
    assert not set(_runtime.CUDA_PACKAGES) & set(project["deps"])


# --- the Julia tables are keyed by the Julia names Python sends -------------------

SOLVERS_JL = JULIA_DIR / "src" / "solvers.jl"
DEVICES_JL = JULIA_DIR / "src" / "devices.jl"
SENSITIVITIES_JL = JULIA_DIR / "src" / "sensitivities.jl"
MODULE_JL = JULIA_DIR / "src" / "PyStiffSens.jl"
CUDA_EXT = JULIA_DIR / "ext" / "PyStiffSensCUDAExt.jl"


def _imported(path: pathlib.Path, package: str) -> set[str]:
    """The names of ``using <package>: a, b, ...`` statements in ``path`` (``package`` a regex; a
    statement continues on the next line after a trailing comma)."""
    found = re.findall(rf"^using ({package}):((?:,\n|[^\n])*)", path.read_text(), flags=re.MULTILINE)
    return {name.strip() for _, names_ in found for name in names_.split(",")} - {""}


def test_the_catalog_names_the_julia_counterparts():
    assert {s.name: s.julia for s in names.solvers() if s.julia != s.name} == {"BDF2": "ABDF2"}
    assert {s.name: s.julia_gpu for s in names.gpu_solvers()} == {"Rodas4": "GPURodas4", "Rodas5P": "GPURodas5P"}
    assert JuliaBackend().solver_names() == [s.name for s in names.solvers()]
    assert set(JuliaBackend().solver_names()) >= {"Rodas4", "Rodas5P", "KenCarp4", "FBDF", "ImplicitEuler",
                                                   "Trapezoid", "BDF2"}


@needs_tree_sitter
def test_the_solver_table_is_keyed_by_the_ordinarydiffeq_names_of_the_catalog():
    entries = _dict_entries(SOLVERS_JL, "SOLVERS")
    assert set(entries) == {solver.julia for solver in names.solvers()}
    for name, constructor in entries.items():  # each key is the constructor it builds
        assert constructor.text.decode() == f"() -> {name}({CONSTRUCTOR_KEYWORDS.get(name, '')})"
    assert set(entries) <= _imported(MODULE_JL, r"OrdinaryDiffEq\w+")
    assert "BDF2" not in entries and "ABDF2" in entries


# The only constructors called with a keyword: OrdinaryDiffEq's exponential integrators default to
# `krylov = false`, which needs a SplitODEProblem with a constant linear operator (header of
# src/solvers.jl); with `krylov = true` they take the Jacobian each step, as pystiffsens's do.
CONSTRUCTOR_KEYWORDS = {"LawsonEuler": "krylov = true", "ETDRK4": "krylov = true"}


# The OrdinaryDiffEq v7 sublibrary that exports each constructor pystiffsens names (the `export`
# lists of lib/<sublibrary>/src/<sublibrary>.jl, OrdinaryDiffEq.jl b211787; NEWS.md: "`KenCarp*`/
# `TRBDF2` -> OrdinaryDiffEqSDIRK, ... `RadauIIA*` -> OrdinaryDiffEqFIRK"; LawsonEuler and ETDRK4:
# lib/OrdinaryDiffEqExponentialRK/src/OrdinaryDiffEqExponentialRK.jl).
SUBLIBRARY = {
    "Rodas4": "OrdinaryDiffEqRosenbrock",
    "Rodas5P": "OrdinaryDiffEqRosenbrock",
    "Rosenbrock23": "OrdinaryDiffEqRosenbrock",
    "KenCarp4": "OrdinaryDiffEqSDIRK",
    "TRBDF2": "OrdinaryDiffEqSDIRK",
    "Kvaerno5": "OrdinaryDiffEqSDIRK",
    "ImplicitEuler": "OrdinaryDiffEqSDIRK",
    "Trapezoid": "OrdinaryDiffEqSDIRK",
    "RadauIIA5": "OrdinaryDiffEqFIRK",
    "FBDF": "OrdinaryDiffEqBDF",
    "ABDF2": "OrdinaryDiffEqBDF",
    "LawsonEuler": "OrdinaryDiffEqExponentialRK",
    "ETDRK4": "OrdinaryDiffEqExponentialRK",
}


def _loaded(root) -> dict[str, set[str]]:
    """The packages loaded under ``root`` with ``using``/``import``: package -> the names taken from it."""
    out: dict[str, set[str]] = {}
    for node in _walk(root):
        if node.type not in ("using_statement", "import_statement"):
            continue
        for child in node.named_children:
            if child.type == "selected_import":
                package, *taken = child.named_children
                out.setdefault(package.text.decode(), set()).update(
                    t.named_children[0].text.decode() if t.type == "import_alias" else t.text.decode() for t in taken
                )
            elif child.type in ("identifier", "scoped_identifier"):
                out.setdefault(child.text.decode().split(".")[0], set())
    return out


@needs_tree_sitter
def test_the_loaded_packages_query_reads_every_form():
    root = _PARSER.parse(b"using A: b, c\nusing B\nimport C: d\nusing D, E\nusing F: F as G\nimport H.I\n").root_node
    assert _loaded(root) == {"A": {"b", "c"}, "B": set(), "C": {"d"}, "D": set(), "E": set(), "F": {"F"}, "H": set()}


@needs_tree_sitter
@needs_tomllib
def test_every_loaded_package_is_declared_with_its_general_registry_uuid_and_every_dependency_is_loaded():
    project = _project()
    deps, weakdeps = set(project["deps"]), set(project["weakdeps"])
    test_env = deps | set(project["targets"]["test"])
    allowed = {"src": deps, "ext": deps | weakdeps | {"PyStiffSens"}, "test": test_env | {"PyStiffSens"}}
    used = set()
    for path in JULIA_FILES:
        packages = set(_loaded(_tree(path)))
        assert packages <= allowed[path.relative_to(JULIA_DIR).parts[0]], path.name
        for package in packages - {"PyStiffSens"}:
            assert GENERAL_REGISTRY_UUIDS[package] == {**project["deps"], **project["weakdeps"],
                                                       **project["extras"]}[package], package
        if path.parent.name != "test":
            used |= packages
    assert deps <= used  # no dependency that nothing loads
    assert set(project["extensions"]["PyStiffSensCUDAExt"]) <= set(_loaded(_tree(CUDA_EXT)))


@needs_tree_sitter
@needs_tomllib
def test_every_julia_name_of_the_catalog_is_built_from_the_sublibrary_that_exports_it():
    entries = _dict_entries(SOLVERS_JL, "SOLVERS")
    loaded = _loaded(_tree(MODULE_JL))
    deps = _project()["deps"]
    for solver in names.solvers():
        name = solver.julia
        assert name in entries, name
        package = SUBLIBRARY[name]
        assert name in loaded.get(package, set()), (name, package)
        assert deps[package] == GENERAL_REGISTRY_UUIDS[package]
    # an OrdinaryDiffEq constructor is imported only from the sublibrary that exports it
    for package, taken in loaded.items():
        if package.startswith("OrdinaryDiffEq"):
            assert all(SUBLIBRARY[name] == package for name in taken), package


@needs_tree_sitter
def test_every_catalog_method_without_a_julia_name_is_explained_in_the_solver_table():
    header = "\n".join(n.text.decode() for n in _walk(_tree(SOLVERS_JL)) if n.type == "line_comment")
    entries = _dict_entries(SOLVERS_JL, "SOLVERS")
    for solver in pss.solvers.CATALOG:
        if solver.julia is None:
            assert solver.name not in entries
            assert re.search(rf"\b{re.escape(solver.name)}\b", header), solver.name


# Keywords OrdinaryDiffEq v7 removed or retyped (NEWS.md, "OrdinaryDiffEq v7"): the step-controller
# settings moved onto controller objects (`controller = PIController(...)`), `alias_u0`/`alias_du0`
# onto `ODEAliasSpecifier`, `chunk_size`/`diff_type`/`standardtag` onto the ADTypes object of
# `autodiff`, `precs` into `linsolve`. `verbose` has its own test above.
REMOVED_IN_V7 = {"gamma", "beta1", "beta2", "qmin", "qmax", "qsteady_min", "qsteady_max", "qoldinit", "alias_u0",
                 "alias_du0", "chunk_size", "diff_type", "standardtag", "precs"}


@needs_tree_sitter
@pytest.mark.parametrize("path", JULIA_FILES, ids=lambda p: p.relative_to(JULIA_DIR).as_posix())
def test_no_keyword_that_ordinarydiffeq_v7_removed_and_no_bool_autodiff_for_its_constructors(path):
    root = _tree(path)
    keywords = {
        n.named_children[0].text.decode() for n in _walk(root) if n.type in ("named_argument", "named_field")
    }
    assert not keywords & REMOVED_IN_V7
    # OrdinaryDiffEqCore's `_fixup_ad(::Bool)` throws (src/misc_utils.jl); DiffEqGPU's kernels,
    # which are not OrdinaryDiffEq's, still take a Bool or a Val
    constructors = set(SUBLIBRARY) & set().union(*_loaded(_tree(MODULE_JL)).values())
    for name in constructors:
        for call in _calls(root, name):
            value = _keyword(call, "autodiff")
            assert value is None or value.type != "boolean_literal", (name, call.text)


# RecursiveArrayTools 4 (OrdinaryDiffEq v7 NEWS.md): a solution is an AbstractArray of scalars, so
# `sol[i]`, `length(sol)`, `first(sol)`, ... no longer mean time steps; `sol.u[i]`, `sol.t` do.
SOLUTION_NAMES = {"sol", "sim", "primal"}
TIMESTEP_FUNCTIONS = {"length", "first", "last", "eachindex", "iterate", "map"}


def _timestep_indexing(root) -> list[str]:
    """Uses of a solution as a collection of time steps (``sol[i]``, ``length(sol)``) under ``root``."""
    found = []
    for node in _walk(root):
        if node.type == "index_expression" and node.named_children[0].text.decode() in SOLUTION_NAMES:
            found.append(node.text.decode())
        if node.type == "call_expression" and node.named_children[0].text.decode() in TIMESTEP_FUNCTIONS:
            arguments = node.named_children[1].named_children
            if any(a.type == "identifier" and a.text.decode() in SOLUTION_NAMES for a in arguments):
                found.append(node.text.decode())
    return found


@needs_tree_sitter
@pytest.mark.parametrize("path", SOURCE_FILES, ids=lambda p: p.relative_to(JULIA_DIR).as_posix())
def test_solutions_are_read_through_u_and_t_as_recursivearraytools_4_requires(path):
    assert _timestep_indexing(_tree(path)) == []


@needs_tree_sitter
def test_the_v7_queries_see_what_they_look_for():
    root = _PARSER.parse(b"f() = Rodas5P(; autodiff = false)\nsolve(p, a; qmax = 10.0)\n").root_node
    assert _keyword(_calls(root, "Rodas5P")[0], "autodiff").type == "boolean_literal"
    assert {n.named_children[0].text.decode() for n in _walk(root) if n.type == "named_argument"} & REMOVED_IN_V7
    root = _PARSER.parse(b"a = sol[1]\nb = length(sim)\nc = sol.u[1]\nd = length(sol.t)\n").root_node
    assert _timestep_indexing(root) == ["sol[1]", "length(sim)"]


@needs_tree_sitter
def test_fixed_or_adaptive_steps_are_decided_in_python_not_in_julia():
    # no table of fixed-step methods on the Julia side: a dt means fixed steps
    for path in SOURCE_FILES:
        assert "FIXED_STEP_SOLVERS" not in _identifiers(_tree(path)), path.name
    assert _signature(_function(SOLVERS_JL, "check_step")) == "check_step(dt)"
    kwargs = _function(JULIA_DIR / "src" / "solve.jl", "solve_kwargs")
    fields = _named_fields(kwargs)
    assert fields["adaptive"] == "false" and fields["dt"] == "Float64(dt)"
    assert "dt === nothing" in kwargs.text.decode()


@needs_tree_sitter
def test_sensitivity_tables_match_and_map_one_to_one_onto_scimlsensitivity_types():
    entries = _dict_entries(SENSITIVITIES_JL, "SENSITIVITIES")
    assert set(entries) == set(names.sensitivity_names())
    assert set(names.sensitivity_names()) | set(names.UNSUPPORTED_SENSITIVITIES) == (
        set(pss.sensitivity.names()) | set(names.JULIA_ONLY)
    )
    for name, constructor in entries.items():
        assert constructor.text.decode().endswith(f"-> {name}()")
        assert name in _imported(MODULE_JL, "SciMLSensitivity")
    backend_names, aliases = JuliaBackend().sensitivity_names()
    assert backend_names == names.sensitivity_names()
    assert aliases == pss.sensitivity.CATALOG.aliases()


def _joined_strings(node) -> str:
    """The string literals under ``node`` joined, e.g. of ``"a " * "b"``."""
    return "".join(_string(n) for n in _walk(node) if n.type == "string_literal")


@needs_tree_sitter
def test_unsupported_sensitivities_are_refused_on_both_sides_with_the_same_reason():
    refused = {name: _joined_strings(node) for name, node in _dict_entries(SENSITIVITIES_JL, "UNSUPPORTED_SENSITIVITIES").items()}
    assert refused == names.UNSUPPORTED_SENSITIVITIES
    assert set(refused) == {"ReverseDiffAdjoint"}
    assert not set(refused) & set(_dict_entries(SENSITIVITIES_JL, "SENSITIVITIES"))


def _resolved_strings(path: pathlib.Path, node) -> str:
    """The text of a string value node, or of the ``const`` string an identifier names."""
    if node.type == "identifier":
        node = _const_value(path, node.text.decode())
    return _joined_strings(node)


def _pair_entries(path: pathlib.Path, name: str) -> dict:
    """``const name = Dict(...)((a, b) => value, ...)`` as {(a, b): value text}."""
    arguments = _const_value(path, name).named_children[-1]
    out = {}
    for pair in (n for n in arguments.named_children if n.type == "binary_expression"):
        key = pair.named_children[0]
        assert key.type == "tuple_expression", key.text
        out[tuple(_string(k) for k in key.named_children)] = _resolved_strings(path, pair.named_children[-1])
    return out


@needs_tree_sitter
def test_unsupported_solver_and_sensitivity_pairs_are_the_same_on_both_sides():
    julia = _pair_entries(SENSITIVITIES_JL, "UNSUPPORTED_COMBINATIONS")
    assert julia == names.UNSUPPORTED_COMBINATIONS
    solvers = set(_dict_entries(SOLVERS_JL, "SOLVERS"))
    sensitivities = set(_dict_entries(SENSITIVITIES_JL, "SENSITIVITIES"))
    assert all(solver in solvers and sensitivity in sensitivities for solver, sensitivity in julia)
    # what was decided for the exponential integrators (README, "verified only by reading")
    for solver in ("LawsonEuler", "ETDRK4"):
        assert {s for (j, s) in julia if j == solver} == {
            "ForwardDiffSensitivity", "BacksolveAdjoint", "InterpolatingAdjoint", "QuadratureAdjoint", "GaussAdjoint"}
        assert names.sensitivities_for(solver) == ["ForwardSensitivity", "ZygoteAdjoint"]
        assert "expv!/phiv!" in julia[solver, "ForwardDiffSensitivity"]
        assert "isdtchangeable = false" in julia[solver, "GaussAdjoint"]
    # the Julia side refuses them itself, before solving
    for function in ("gradient_problem", "gradient_ensemble"):
        path = JULIA_DIR / "src" / ("gradient.jl" if function == "gradient_problem" else "ensemble.jl")
        assert _calls(_function(path, function), "check_combination"), function


@needs_tree_sitter
def test_split_problems_run_imex_only_with_the_imex_solvers_and_are_refused_by_the_exponential_ones():
    assert _string_tuple(SOLVERS_JL, "IMEX_SOLVERS") == names.IMEX_SOLVERS == ("KenCarp4",)
    refused = {name: _resolved_strings(SOLVERS_JL, node)
               for name, node in _dict_entries(SOLVERS_JL, "SPLIT_UNSUPPORTED").items()}
    assert refused == names.SPLIT_UNSUPPORTED
    assert set(refused) == {"LawsonEuler", "ETDRK4"} and "f.f1" in refused["ETDRK4"]
    # every method that splits on backend='jax' either splits on Julia too or is refused there:
    # none quietly solves the sum of a SplitRHS where jax would not
    splitting = {solver.julia for solver in names.solvers() if solver.splits}
    assert splitting == set(names.IMEX_SOLVERS) | set(names.SPLIT_UNSUPPORTED)
    assert not set(names.IMEX_SOLVERS) & set(names.SPLIT_UNSUPPORTED)


@needs_tree_sitter
def test_odeproblem_gives_imex_solvers_the_stiff_part_as_f1_and_the_others_the_sum():
    function = _function(JULIA_DIR / "src" / "problem.jl", "odeproblem")
    text = function.text.decode()
    (split,) = _calls(function, "SplitODEProblem{true}")
    first, second, *rest = [a.text.decode() for a in split.named_children[1].named_children]
    # OrdinaryDiffEq's KenCarp4 solves f1 implicitly and f2 explicitly (nlsolve_f,
    # lib/OrdinaryDiffEqCore/src/integrators/integrator_utils.jl; generic_imex_perform_step.jl)
    assert (first, second) == ("InPlaceRHS(RHS(stiff, prob.layout))", "InPlaceRHS(RHS(nonstiff, prob.layout))")
    assert rest == ["prob.u0", "prob.tspan", "prob.p"]
    assert "stiff, nonstiff = prob.parts" in text and "solver in IMEX_SOLVERS" in text
    assert _calls(function, "check_split")
    (plain,) = _calls(function, "ODEProblem{true}")
    assert plain.named_children[1].named_children[0].text.decode() == "InPlaceRHS(RHS(prob.rhs, prob.layout))"
    # every CPU computation builds the problem for its solver
    for path in ("solve.jl", "gradient.jl", "ensemble.jl"):
        calls = _calls(_tree(JULIA_DIR / "src" / path), "odeproblem")
        assert calls, path
        assert all(len(c.named_children[1].named_children) == 2 for c in calls), path
    assert "SplitODEProblem" in _imported(MODULE_JL, "SciMLBase")


@needs_tree_sitter
def test_the_split_builtins_have_their_parts_on_the_julia_side():
    path = JULIA_DIR / "src" / "problems.jl"
    parts = {}
    for name, call in _dict_entries(path, "BUILTINS").items():
        args = call.named_children[-1].named_children
        parts[name] = args[4].text.decode() if len(args) > 4 else None
    split = {name for name in pss.problems.names() if "split" in pss.problems.options(name)}
    assert {name for name, value in parts.items() if value is not None} == split == {"stiff_neural_ode"}
    assert parts["stiff_neural_ode"] == "(stiff_neural_ode_stiff, stiff_neural_ode_nonstiff)"
    assert _keyword_defaults(path, "stiff_neural_ode")["split"] is False
    assert _calls(_function(JULIA_DIR / "src" / "interop.jl", "problem_from_arrays"), "StiffProblem")


@needs_tree_sitter
def test_custom_sources_in_two_parts_use_the_names_python_checks_for():
    interop = JULIA_DIR / "src" / "interop.jl"
    text = _function(interop, "custom_problem").text.decode()
    for name in convert.SPLIT_PARTS:
        assert f":{name}" in text, name
        assert f":{name}" in _tree(interop).text.decode()
    assert "SumRHS(stiff, nonstiff)" in text and "parts = (stiff, nonstiff)" in text
    assert convert.SPLIT_PARTS == ("rhs_stiff", "rhs_nonstiff")


def test_reverse_diff_adjoint_is_refused_before_julia_starts(monkeypatch):
    monkeypatch.setattr(_runtime, "ensure_julia", lambda: pytest.fail("looked for Julia"))
    monkeypatch.setattr(_runtime, "module_for", lambda device: pytest.fail("started Julia"))
    problem = pss.problems.get("dahlquist")
    solver, options = pss.solvers.get("KenCarp4"), Options()
    with pytest.raises(ValueError, match="ReverseDiffAdjoint.*not supported by backend='julia'.*ForwardDiff.*backend='jax'"):
        JuliaBackend().sensitivity("ReverseDiffAdjoint", problem, solver, options)
    with pytest.raises(ValueError, match="not supported by backend='julia'"):
        JuliaBackend().sensitivity(pss.sensitivity.ReverseDiffAdjoint(), problem, solver, options)
    with pytest.raises(ValueError, match="ReverseDiffAdjoint.*backend='jax'"):
        pss.gradient(problem, "Rodas5P", "ReverseDiffAdjoint", backend="julia")


@needs_tree_sitter
def test_device_tables_are_keyed_by_the_diffeqgpu_kernels_of_the_catalog():
    assert _string_tuple(DEVICES_JL, "DEVICES") == names.DEVICES == JuliaBackend.devices
    kernels = tuple(solver.julia_gpu for solver in names.gpu_solvers())
    assert kernels == ("GPURodas4", "GPURodas5P")
    assert _string_tuple(DEVICES_JL, "GPU_SOLVERS") == kernels
    assert _string_tuple(DEVICES_JL, "GPU_SENSITIVITIES") == names.GPU_SENSITIVITIES
    entries = _dict_entries(CUDA_EXT, "KERNELS")
    assert set(entries) == set(kernels)
    for name, constructor in entries.items():
        assert constructor.text.decode() == f"autodiff -> {name}(; autodiff = autodiff)"
    assert set(kernels) <= _imported(CUDA_EXT, "DiffEqGPU")


def _builtins() -> dict:
    """name -> (knob node, [parameter names]) of the Julia BUILTINS table."""
    out = {}
    for name, call in _dict_entries(JULIA_DIR / "src" / "problems.jl", "BUILTINS").items():
        args = call.named_children[-1].named_children
        out[name] = (args[2], [n.text.decode().lstrip(":") for n in args[3].named_children])
    return out


@needs_tree_sitter
def test_every_python_builtin_has_a_julia_twin_with_the_same_parameters_and_knob():
    builtins = _builtins()
    assert set(builtins) == set(pss.problems.names())
    for name, (knob, params) in builtins.items():
        problem = pss.problems.get(name)
        # the same names; the order is the one Python sends with the flat vector (a Problem
        # keeps its dict params in pytree order, sorted by name), which Julia takes as given
        assert sorted(params) == sorted(problem.params), name
        if isinstance(problem.stiffness, str):
            assert knob.type == "quote_expression" and knob.text.decode() == f":{problem.stiffness}", name
        else:
            assert knob.type == "identifier" and knob.text.decode() == f"{name}_knob", name
    interop = (JULIA_DIR / "src" / "interop.jl").read_text()
    assert "Set(keys(lay)) == Set(entry.param_names)" in interop


# The MLP weights of stiff_neural_ode are drawn in Python from a JAX PRNG key (options
# `hidden`, `seed`) and passed to Julia as the required keywords W1, b1, W2, b2. Its `split`
# is an option on both sides (Python: a SplitRHS; Julia: the problem in two parts).
PYTHON_ONLY_OPTIONS = {"stiff_neural_ode": {"hidden", "seed"}}
JULIA_ONLY_KEYWORDS = {"stiff_neural_ode": {"W1", "b1", "W2", "b2"}}


@needs_tree_sitter
@pytest.mark.parametrize("name", pss.problems.names())
def test_julia_factory_defaults_equal_the_python_ones(name):
    julia = _keyword_defaults(JULIA_DIR / "src" / "problems.jl", name)
    python = {k: p.default for k, p in inspect.signature(_registry._FACTORIES[name]).parameters.items()}
    for option in PYTHON_ONLY_OPTIONS.get(name, set()):
        python.pop(option)
    required = {k for k, v in julia.items() if v is None}
    assert required == JULIA_ONLY_KEYWORDS.get(name, set())
    assert {k: v for k, v in julia.items() if v is not None} == python


@needs_tree_sitter
def test_rate_constants_equal_the_python_ones():
    path = JULIA_DIR / "src" / "problems.jl"
    np.testing.assert_array_equal(_number_vector(path, "HIRES_RATES"), chemistry.HIRES_RATES)
    np.testing.assert_array_equal(_number_vector(path, "POLLUTION_RATES"), chemistry.POLLUTION_RATES)


# --- issue #11: the solve, gradient and GPU code, read with tree-sitter ------------



def _identifiers(root) -> set[str]:
    """Names used as code under ``root`` (comments and docstrings hold none)."""
    return {n.text.decode() for n in _walk(root) if n.type == "identifier"}


def _function(path: pathlib.Path, name: str):
    """The ``function name(...)`` definition in ``path`` (``name`` may be qualified, ``Module.f``)."""
    for node in _walk(_tree(path)):
        if node.type == "function_definition":
            signature = next(c for c in node.named_children if c.type == "signature")
            if signature.text.split(b"(")[0].decode().strip() in (name, name.split(".")[-1]):
                return node
    raise AssertionError(f"no function {name} in {path}")


def _calls(root, callee: str) -> list:
    return [n for n in _walk(root) if n.type == "call_expression" and n.named_children[0].text.decode() == callee]


def _keyword(call, name: str):
    """The value node of keyword ``name`` in ``call`` (``None`` if it is not passed)."""
    for arg in _walk(call.named_children[1]):
        if arg.type in ("named_argument", "named_field") and arg.named_children[0].text.decode() == name:
            return arg.named_children[-1]
    return None


def _signature(function) -> str:
    """The signature text of a ``function ... end`` node, e.g. ``check_step(dt)``."""
    return next(c for c in function.named_children if c.type == "signature").text.decode()


def _named_fields(root) -> dict:
    """``name = value`` fields of the named tuples under ``root``: name -> value text."""
    return {n.named_children[0].text.decode(): n.named_children[-1].text.decode()
            for n in _walk(root) if n.type == "named_field"}


def _assignments(root) -> dict:
    """``name = value`` assignments under ``root``: name -> value node."""
    return {
        n.named_children[0].text.decode(): n.named_children[-1]
        for n in _walk(root)
        if n.type == "assignment" and n.named_children[0].type == "identifier"
    }


@needs_tree_sitter
def test_the_queries_see_what_they_look_for():
    snippet = _PARSER.parse(
        b"function f(p)\n    kw = (a = 1, verbose = false)\n    solve(p; trajectories = length(x), kw...)\nend\n"
    )
    root = snippet.root_node
    assert "verbose" in _identifiers(root)
    assert _keyword(_calls(root, "solve")[0], "trajectories").text == b"length(x)"
    assert _keyword(_calls(root, "solve")[0], "save_start") is None
    assert _assignments(root)["kw"].type == "tuple_expression"


@needs_tree_sitter
@pytest.mark.parametrize("path", SOURCE_FILES, ids=lambda p: p.relative_to(JULIA_DIR).as_posix())
def test_no_solve_passes_verbose_which_diffeqbase_7_rejects_as_a_bool(path):
    # lib/DiffEqBase/src/verbosity.jl: `_process_verbose_param(verbose::Bool)` throws
    assert "verbose" not in _identifiers(_tree(path))


PROBLEM_JL = JULIA_DIR / "src" / "problem.jl"


@needs_tree_sitter
def test_cpu_solves_save_t0_and_t1_exactly_when_saveat_holds_them():
    # BacksolveAdjoint passes its own `save_start = true, save_end = true` on unless told
    # otherwise (SciMLSensitivity src/concrete_solve.jl), which would put u0 in front of ys
    # and u(t1) after it; OrdinaryDiffEq saves t0 only through save_start.
    fields = _named_fields(_function(JULIA_DIR / "src" / "solve.jl", "solve_kwargs"))
    assert fields["save_start"] == "saves_start(prob)"
    assert fields["save_end"] == "saves_end(prob)"
    assert fields["saveat"] == fields["tstops"] == "prob.saveat"
    source = PROBLEM_JL.read_text()
    assert "saves_start(prob::StiffProblem) = first(prob.saveat) == prob.tspan[1]" in source
    assert "saves_end(prob::StiffProblem) = last(prob.saveat) == prob.tspan[2]" in source


@needs_tree_sitter
def test_the_julia_problem_accepts_saveat_from_t0():
    check = next(n for n in _walk(_tree(PROBLEM_JL)) if n.type == "binary_expression" and b"first(times)" in n.text
                 and b"&&" in n.text and b"||" not in n.text)
    assert b"first(times) >= t0" in check.text and b"last(times) <= t1" in check.text
    assert b"issorted(times; lt = <=)" in check.text  # strictly increasing


@needs_tree_sitter
def test_gpu_kernels_are_launched_without_t0_and_get_u0_in_front():
    # DiffEqGPU src/solve.jl: a trajectory is cut after its last time != t0, and a launch in
    # which one has none raises; so t0 never goes into the kernel.
    kwargs = _function(CUDA_EXT, "kernel_kwargs")
    assert _assignments(kwargs)["saveat"].text == b"kernel_saveat(prob)"
    assert _named_fields(kwargs)["saveat"] == "saveat"
    assert "saves_start" in _identifiers(_function(CUDA_EXT, "kernel_saveat"))
    saved = _function(CUDA_EXT, "saved_states")
    assert "saves_start" in _identifiers(saved) and b"vcat([u0]" in saved.text
    assert _calls(_function(CUDA_EXT, "kernel_solve"), "saved_states")


@needs_tree_sitter
@pytest.mark.parametrize("name", ["solve.jl", "gradient.jl", "ensemble.jl"])
def test_every_cpu_solve_gets_the_solve_kwargs(name):
    root = _tree(JULIA_DIR / "src" / name)
    calls = _calls(root, "solve")
    assert calls
    for call in calls:
        splats = [n.text.decode() for n in _walk(call.named_children[1]) if n.type == "splat_expression"]
        assert splats and all(s == "kwargs..." or s.startswith("solve_kwargs(") for s in splats), call.text
    for function in (n for n in root.named_children if n.type == "function_definition"):  # closures share kwargs
        if any(s.text.decode() == "kwargs..." for s in _walk(function) if s.type == "splat_expression"):
            signature = next(c for c in function.named_children if c.type == "signature")
            assigned = _assignments(function).get("kwargs")
            assert (assigned is not None and assigned.text.startswith(b"solve_kwargs(")) or "kwargs" in _identifiers(
                signature
            ), function.text[:80]


@needs_tree_sitter
def test_every_gpu_kernel_launch_holds_at_least_two_trajectories():
    # DiffEqGPU src/solve.jl: `trajectories == 1` goes to EnsembleSerial with the kernel algorithm
    minimum = _const_value(CUDA_EXT, "MIN_TRAJECTORIES")
    assert int(minimum.text) >= 2
    launches = _calls(_tree(CUDA_EXT), "solve")
    assert launches
    kernel_solve = _function(CUDA_EXT, "kernel_solve")
    for call in launches:
        count = _keyword(call, "trajectories")
        assert count is not None and count.type == "call_expression" and count.named_children[0].text == b"length"
        launched = _assignments(kernel_solve)[count.named_children[1].named_children[0].text.decode()]
        assert "MIN_TRAJECTORIES" in _identifiers(launched)
    for name in ("PyStiffSens.gpu_solve", "PyStiffSens.gpu_gradient_ensemble"):
        assert _calls(_function(CUDA_EXT, name), "kernel_solve"), name


@needs_tree_sitter
@pytest.mark.parametrize("path", SOURCE_FILES, ids=lambda p: p.relative_to(JULIA_DIR).as_posix())
def test_no_code_takes_successful_retcode_for_success(path):
    # SciMLBase src/retcodes.jl: successful_retcode(Terminated) is true
    assert "successful_retcode" not in _identifiers(_tree(path))


def _comparisons(root) -> set[str]:
    return {
        n.text.decode()
        for n in _walk(root)
        if n.type == "binary_expression" and b"==" in n.text and b"&&" not in n.text
    }


@needs_tree_sitter
def test_gradients_require_retcode_success_and_gpu_ones_every_saveat_time():
    primal = _function(JULIA_DIR / "src" / "gradient.jl", "gradient_from_primal")
    assert {"primal.retcode == ReturnCode.Success", "result.val.retcode == ReturnCode.Success"} <= _comparisons(primal)
    reached = _function(CUDA_EXT, "reached_saveat")
    assert {"sol.retcode == ReturnCode.Success", "length(sol.t) == length(prob.saveat)"} <= _comparisons(reached)
    assert _calls(_function(CUDA_EXT, "member_gradient"), "reached_saveat")


# --- Problem -> Julia call arguments -----------------------------------------------


@pytest.mark.parametrize("name", pss.problems.names())
def test_builtin_problem_converts_to_its_name_and_flat_parameters(name):
    problem = pss.problems.get(name)
    args = convert.problem_args(problem)
    assert args.name == name and args.source is None
    np.testing.assert_array_equal(args.y0, problem.y0)
    assert args.tspan == problem.tspan
    np.testing.assert_array_equal(args.saveat, problem.saveat)
    assert args.param_names == tuple(problem.params)
    # juliacall turns Python tuples of str/int into Julia tuples of String/Int
    assert all(type(n) is str for n in args.param_names)
    assert all(type(s) is tuple and all(type(d) is int for d in s) for s in args.param_shapes)
    assert args.params.dtype == np.float64 and args.params.ndim == 1
    back = convert.unflatten(args.params, args.param_names, args.param_shapes)
    for key, value in problem.params.items():
        np.testing.assert_array_equal(back[key], np.asarray(value))


def test_matrix_parameters_are_flattened_column_major():
    problem = pss.problems.get("stiff_neural_ode", hidden=3)
    args = convert.problem_args(problem)
    start = args.param_names.index("W1")
    offset = sum(int(np.prod(s)) for s in args.param_shapes[:start])
    W1 = np.asarray(problem.params["W1"])
    assert args.param_shapes[start] == (3, 2)
    np.testing.assert_array_equal(args.params[offset : offset + 6], W1.ravel(order="F"))
    np.testing.assert_array_equal(args.params[offset : offset + 3], W1[:, 0])


def test_stiffness_rows_follow_the_python_knob():
    problem = pss.problems.get("hires")
    args = convert.problem_args(problem)
    rows = convert.stiffness_params(problem, args, [1.0, 10.0])
    assert rows.shape == (2, 12)
    np.testing.assert_allclose(rows[:, 9], [280.0, 2800.0])
    np.testing.assert_array_equal(rows[:, :9], np.tile(chemistry.HIRES_RATES[:9], (2, 1)))


JULIA_RHS = "rhs(u, p, t) = state_like(u, -p.lam * u[1])\n"


def _custom(**changes):
    base = dict(
        rhs=lambda t, y, p: -p["lam"] * y, y0=[1.0], tspan=(0.0, 1.0), params={"lam": 2.0},
        stiffness="lam", name="decay", implementations={"julia": JULIA_RHS},
    )
    return pss.Problem(**(base | changes))


def test_custom_problem_passes_its_julia_source():
    args = convert.problem_args(_custom())
    assert args.source == JULIA_RHS and args.name == "decay"
    np.testing.assert_array_equal(args.params, [2.0])


def test_a_builtin_with_julia_source_runs_that_source():
    problem = pss.problems.get("dahlquist").replace(implementations={"julia": JULIA_RHS})
    args = convert.problem_args(problem)
    assert args.source == JULIA_RHS and args.name == problem.label


def test_custom_problem_without_julia_source_is_rejected():
    with pytest.raises(ValueError, match=r"implementations=\{'julia': source\}"):
        convert.problem_args(_custom(implementations=None))
    with pytest.raises(ValueError, match=r"implementations=\{'julia': source\}"):
        convert.problem_args(_custom(implementations={"cuda_c": "..."}))


def test_the_split_neural_ode_converts_to_its_name_in_two_parts():
    split = convert.problem_args(pss.problems.get("stiff_neural_ode", split=True))
    plain = convert.problem_args(pss.problems.get("stiff_neural_ode"))
    assert (split.name, split.source, split.split) == ("stiff_neural_ode", None, True)
    assert (plain.name, plain.source, plain.split) == ("stiff_neural_ode", None, False)
    assert split.param_names == plain.param_names and split.param_shapes == plain.param_shapes
    np.testing.assert_array_equal(split.params, plain.params)
    # every other built-in is unsplit
    assert not any(convert.problem_args(pss.problems.get(n)).split for n in pss.problems.names())


JULIA_PARTS = (
    "rhs_stiff(u, p, t) = state_like(u, -p.lam * u[1])\n"
    "function rhs_nonstiff(u, p, t)\n    return state_like(u, sin(t))\nend\n"
)


def _split_custom(source=JULIA_PARTS, **changes):
    rhs = pss.SplitRHS(lambda t, y, p: -p["lam"] * y, lambda t, y, p: jnp.sin(t) + 0 * y)
    return _custom(rhs=rhs, implementations=None if source is None else {"julia": source}, **changes)


def test_a_custom_split_problem_passes_its_two_parts():
    args = convert.problem_args(_split_custom())
    assert args.split and args.source == JULIA_PARTS and args.name == "decay"


@pytest.mark.parametrize("source", [JULIA_RHS, "rhs_stiff(u, p, t) = u\n", None],
                         ids=["only rhs", "one part", "no source"])
def test_a_custom_split_problem_needs_both_parts_in_julia(source):
    with pytest.raises(ValueError, match=r"`rhs_stiff\(u, p, t\)` and `rhs_nonstiff\(u, p, t\)`"):
        convert.problem_args(_split_custom(source))


def test_an_unsplit_custom_problem_still_needs_rhs():
    with pytest.raises(ValueError, match=r"implementations\['julia'\].*rhs\(u, p, t\)"):
        convert.problem_args(_custom(implementations={"julia": JULIA_PARTS}))


def test_julia_source_must_define_rhs():
    with pytest.raises(ValueError, match=r"implementations\['julia'\].*rhs"):
        convert.problem_args(_custom(implementations={"julia": "f(u, p, t) = u"}))


def test_custom_loss_needs_a_julia_loss():
    loss = lambda ts, ys, p: ys[-1, 0] ** 2  # noqa: E731
    with pytest.raises(ValueError, match="loss"):
        convert.problem_args(_custom(loss=loss))
    source = JULIA_RHS + "function loss(ts, ys, p)\n    return ys[end][1]^2\nend\n"
    assert convert.problem_args(_custom(loss=loss, implementations={"julia": source})).source == source


def test_builtin_with_a_replaced_loss_is_rejected():
    problem = pss.problems.get("dahlquist").replace(loss=lambda ts, ys, p: ys[-1, 0] ** 2)
    with pytest.raises(ValueError, match="default loss"):
        convert.problem_args(problem)


def _list_params_problem():
    return pss.Problem(lambda t, y, p: -p[0] * y, y0=[1.0], tspan=(0.0, 1.0), params=[2.0],
                       stiffness=lambda p, s: [s], name="listed", implementations={"julia": JULIA_RHS})


def _nested_params_problem():
    return _custom(params={"lam": 2.0, "net": {"w": 1.0}}, rhs=lambda t, y, p: -p["lam"] * p["net"]["w"] * y)


@pytest.mark.parametrize(
    "make, match",
    [(_list_params_problem, "params must be a dict.*'listed' has params of type list"),
     (_nested_params_problem, "params must be a dict.*parameter 'net' of problem 'decay' is a dict")],
    ids=["list", "nested dict"],
)
def test_params_that_are_not_a_dict_of_named_arrays_are_refused_before_julia(monkeypatch, make, match):
    monkeypatch.setattr(_runtime, "ensure_julia", lambda: pytest.fail("looked for Julia"))
    monkeypatch.setattr(_runtime, "module_for", lambda device: pytest.fail("started Julia"))
    problem = make()
    with pytest.raises(ValueError, match=match):
        convert.problem_args(problem)
    with pytest.raises(ValueError, match=match):
        pss.gradient(problem, "Rodas5P", "GaussAdjoint", backend="julia")
    with pytest.raises(ValueError, match=match):
        pss.solve(problem, backend="julia")
    with pytest.raises(ValueError, match=match):
        pss.sweep(problem, [1.0, 2.0], "Rodas5P", "GaussAdjoint", backend="julia", progress=False)


def test_saveat_from_t0_converts_as_given():
    args = convert.problem_args(_custom(saveat=[0.0, 0.5, 1.0]))
    np.testing.assert_array_equal(args.saveat, [0.0, 0.5, 1.0])
    assert args.saveat.dtype == np.float64 and args.tspan == (0.0, 1.0)
    only_t0 = convert.problem_args(_custom(saveat=[0.0]))
    np.testing.assert_array_equal(only_t0.saveat, [0.0])


# --- Julia results -> Solution / GradientResult -----------------------------------

STATS = {"n_steps": 12, "n_rejected": 1, "n_f": 80, "n_jac": 12, "n_lu": 13}


@pytest.mark.parametrize(
    "word, code",
    [("Success", ReturnCode.Success), ("MaxIters", ReturnCode.MaxIters), ("DtLessThanMin", ReturnCode.DtLessThanMin),
     ("Unstable", ReturnCode.Unstable), ("ConvergenceFailure", ReturnCode.ConvergenceFailure),
     ("Failure", ReturnCode.Failure)],
)
def test_shared_retcodes_map_by_name(word, code):
    assert convert.status_from_retcode(word) == (code, {})


@pytest.mark.parametrize("word", ["Terminated", "DtNaN", "InitialFailure"])
def test_other_retcodes_are_unstable_and_keep_the_word(word):
    assert convert.status_from_retcode(word) == (ReturnCode.Unstable, {"julia_retcode": word})


def test_solution_from_a_julia_dictionary():
    args = convert.problem_args(_custom().replace(saveat=[0.5, 1.0]))
    raw = {"retcode": "Success", "ts": [0.5, 1.0], "ys": [[0.36], [0.13]], "stats": STATS}
    sol = convert.to_solution(raw, args, "Rodas5P", "cpu")
    assert sol.success and sol.backend == "julia" and sol.solver == "Rodas5P"
    np.testing.assert_array_equal(sol.ys, [[0.36], [0.13]])
    assert sol.stats == STATS


def test_solution_saved_from_t0_starts_with_y0():
    args = convert.problem_args(_custom(saveat=[0.0, 0.5, 1.0]))
    raw = {"retcode": "Success", "ts": [0.0, 0.5, 1.0], "ys": [[1.0], [0.36], [0.13]], "stats": STATS}
    sol = convert.to_solution(raw, args, "Rodas5P", "cpu")
    assert sol.success
    np.testing.assert_array_equal(sol.ts, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(sol.ys, [[1.0], [0.36], [0.13]])


def test_solution_saved_from_t0_that_failed_after_t0_keeps_y0():
    args = convert.problem_args(_custom(saveat=[0.0, 0.5, 1.0]))
    raw = {"retcode": "MaxIters", "ts": [0.0], "ys": [[1.0]], "stats": STATS}
    sol = convert.to_solution(raw, args, "Rodas5P", "cpu")
    assert sol.status == ReturnCode.MaxIters and sol.ys[0, 0] == 1.0 and np.isnan(sol.ys[1:]).all()


def test_a_julia_solution_without_the_t0_state_is_an_error():
    """A Julia side that dropped t0 (save_start = false) would shift every state against saveat."""
    args = convert.problem_args(_custom(saveat=[0.0, 0.5, 1.0]))
    raw = {"retcode": "Success", "ts": [0.5, 1.0], "ys": [[0.36], [0.13]], "stats": STATS}
    with pytest.raises(ValueError, match="not at a prefix of saveat"):
        convert.to_solution(raw, args, "Rodas5P", "cpu")


def test_failed_solution_is_nan_past_the_failure():
    args = convert.problem_args(_custom().replace(saveat=[0.25, 0.5, 1.0]))
    raw = {"retcode": "MaxIters", "ts": np.array([0.25]), "ys": np.array([[0.6]]), "stats": STATS}
    sol = convert.to_solution(raw, args, "FBDF", "cpu")
    assert sol.status == ReturnCode.MaxIters
    np.testing.assert_array_equal(sol.ts, [0.25, 0.5, 1.0])
    assert sol.ys[0, 0] == 0.6 and np.isnan(sol.ys[1:]).all()


def test_gpu_solution_without_counters_has_no_stats():
    args = convert.problem_args(_custom())
    raw = {"retcode": "Success", "ts": [1.0], "ys": [[0.13]], "stats": {}}
    assert convert.to_solution(raw, args, "Rodas4", "cuda").stats == {}


def test_gradient_from_a_julia_dictionary_reshapes_column_major():
    problem = pss.problems.get("stiff_neural_ode", hidden=2)
    args = convert.problem_args(problem)
    flat = np.arange(args.params.size, dtype=float)
    raw = {"retcode": "Success", "loss": 1.5, "grad": flat, "stats": STATS, "error": None, "gradient_time_s": 0.25}
    result = convert.to_gradient_result(raw, args, "Rodas5P", "GaussAdjoint", "cpu")
    assert result.success and result.loss == 1.5 and result.backend == "julia"
    assert args.param_names == tuple(problem.params)
    offset = 0
    for name, shape in zip(args.param_names, args.param_shapes):
        size = int(np.prod(shape, dtype=int))
        np.testing.assert_array_equal(result.grad[name], flat[offset : offset + size].reshape(shape, order="F"))
        offset += size
    assert result.grad["lam_slow"].shape == () and result.grad["W1"].shape == (2, 2)
    start = sum(int(np.prod(s, dtype=int)) for s in args.param_shapes[: args.param_names.index("W1")])
    np.testing.assert_array_equal(result.grad["W1"], [[start, start + 2], [start + 1, start + 3]])
    assert result.extra == {"gradient_time_s": 0.25}
    assert result.stats == STATS


def test_failed_gradient_is_nan_and_keeps_the_julia_error():
    args = convert.problem_args(_custom())
    raw = {"retcode": "Failure", "loss": 0.3, "grad": [0.1], "stats": STATS,
           "error": "MethodError: no method matching ...", "gradient_time_s": 0.0}
    result = convert.to_gradient_result(raw, args, "Rodas5P", "ZygoteAdjoint", "cpu")
    assert result.status == ReturnCode.Failure and "julia_retcode" not in result.extra
    assert np.isnan(result.loss) and np.isnan(result.grad["lam"])
    assert result.extra["julia_error"].startswith("MethodError")


def test_gradient_of_the_wrong_length_is_an_error():
    args = convert.problem_args(_custom())
    raw = {"retcode": "Success", "loss": 0.3, "grad": [0.1, 0.2], "stats": {}, "error": None, "gradient_time_s": 0.0}
    with pytest.raises(ValueError, match="expected 1 parameter entries"):
        convert.to_gradient_result(raw, args, "Rodas5P", "GaussAdjoint", "cpu")


# --- the calls into Julia, with a stand-in for the PyStiffSens module --------------


class FakePyStiffSens:
    """Records the calls api.py makes and answers like pystiffsens/julia/src/results.jl.

    Solutions decay as ``y0 * exp(-(t - t0))`` and are saved at ``saveat`` (so a first time
    ``t0`` gives ``y0``, as PyStiffSens does); every gradient entry is 0.25.
    """

    def __init__(self):
        self.calls = []
        self.devices = []
        self.problem = None

    def _record(self, name, args, kwargs=None):
        self.calls.append((name, args, kwargs or {}))

    def _keep(self, args):
        y0, t0, _, saveat, _, _, p = args[-7:]
        self.problem = dict(y0=np.asarray(y0), t0=float(t0), saveat=np.asarray(saveat), n=np.asarray(p).size)

    def problem_from_arrays(self, *args, split):
        self._record("problem_from_arrays", args, {"split": split})
        self._keep(args)
        return "<problem_from_arrays>"

    def custom_module(self, *args):
        self._record("custom_module", args)
        return "<custom_module>"

    def custom_problem(self, *args, split):
        self._record("custom_problem", args, {"split": split})
        self._keep(args)
        return "<custom_problem>"

    def solve_problem(self, *args, **kwargs):
        self._record("solve_problem", args, kwargs)
        ts = self.problem["saveat"]
        ys = self.problem["y0"][None, :] * np.exp(-(ts - self.problem["t0"]))[:, None]
        return {"retcode": "Success", "ts": ts, "ys": ys, "stats": STATS}

    def _gradient(self, n):
        return {"retcode": "Success", "loss": 0.5, "grad": np.full(n, 0.25), "stats": STATS, "error": None,
                "gradient_time_s": 0.0}

    def gradient_problem(self, *args, **kwargs):
        self._record("gradient_problem", args, kwargs)
        return self._gradient(self.problem["n"])

    def gradient_ensemble(self, prob, rows, *args, **kwargs):
        self._record("gradient_ensemble", (prob, rows, *args), kwargs)
        return [self._gradient(np.shape(rows)[1]) for _ in rows]

    def runs(self) -> list:
        """(function, solver, sensitivity or None, keywords) of the solve and gradient calls."""
        out = []
        for name, args, kwargs in self.calls:
            if name in ("solve_problem", "gradient_problem"):
                out.append((name, args[1], args[2] if len(args) > 2 else None, kwargs))
            elif name == "gradient_ensemble":
                out.append((name, args[2], args[3], kwargs))
        return out


@pytest.fixture
def fake_julia(monkeypatch):
    fake = FakePyStiffSens()
    monkeypatch.setattr(_runtime, "ensure_julia", lambda: pytest.fail("looked for Julia past the stand-in"))

    def module_for(device):
        fake.devices.append(device)
        return fake

    monkeypatch.setattr(_runtime, "module_for", module_for)
    return fake


def test_gradient_calls_julia_with_the_builtin_and_the_settings(fake_julia):
    result = pss.gradient("dahlquist", "rodas5p", "adjoint", rtol=1e-7, atol=1e-9, device="CPU", backend="julia")
    (build, build_args, _), (run, run_args, settings) = fake_julia.calls
    assert build == "problem_from_arrays" and build_args[0] == "dahlquist"
    assert build_args[5:7] == (("lam",), ((),))
    assert run == "gradient_problem" and run_args == ("<problem_from_arrays>", "Rodas5P", "InterpolatingAdjoint")
    assert settings == dict(rtol=1e-7, atol=1e-9, dt=None, max_steps=100_000, device="cpu")
    assert result.loss == 0.5 and result.sensitivity == "InterpolatingAdjoint"
    assert result.backend == "julia" and result.solver == "Rodas5P" and result.device == "cpu"
    assert "sensitivity_choice" not in result.extra


@pytest.mark.parametrize("solver", pss.solvers.names())
def test_julia_gets_the_ordinarydiffeq_name_and_a_dt_exactly_for_fixed_steps(fake_julia, solver):
    method = pss.solvers.get(solver)
    dt = None if method.adaptive else 0.01
    if method.julia is None:  # no OrdinaryDiffEq counterpart yet: refused before Julia
        with pytest.raises(ValueError, match=rf"solver='{solver}' has no OrdinaryDiffEq counterpart.*backend='jax'"):
            pss.solve("dahlquist", solver, dt=dt, backend="julia")
        assert fake_julia.calls == []
        return
    sol = pss.solve("dahlquist", solver, dt=dt, backend="julia")
    ((run, sent, _, settings),) = fake_julia.runs()
    assert run == "solve_problem" and sent == method.julia
    assert settings["dt"] == dt
    assert sol.solver == solver and sol.backend == "julia"


def test_an_adaptive_method_takes_fixed_steps_when_given_dt(fake_julia):
    pss.solve("dahlquist", "Rodas5P", dt=0.01, backend="julia")
    pss.solve("dahlquist", "Rodas5P", dt=0.01, adaptive=False, backend="julia")
    assert [run[3]["dt"] for run in fake_julia.runs()] == [0.01, 0.01]


def test_a_sweep_gives_dt_to_its_fixed_step_methods_only(fake_julia):
    frame = pss.sweep(_custom(), [1.0, 10.0], ["Rodas5P", "BDF2"], "GaussAdjoint", dt=0.01, backend="julia",
                      progress=False)
    sent = {solver: settings["dt"] for _, solver, _, settings in fake_julia.runs()}
    assert sent == {"Rodas5P": None, "ABDF2": 0.01}
    assert set(frame["solver"]) == {"Rodas5P", "BDF2"} and set(frame["backend"]) == {"julia"}


def test_cuda_sends_the_diffeqgpu_kernel(fake_julia):
    pss.gradient("robertson", "Rodas5P", "ForwardDiffSensitivity", device="cuda", backend="julia")
    pss.solve("robertson", "Rodas4", device="CUDA", backend="julia")
    problem, options = pss.problems.get("robertson"), Options()
    api.gradient(problem, pss.solvers.get("Rodas4"), "ForwardDiffSensitivity", options, device="cuda")
    runs = fake_julia.runs()
    assert [(run, solver) for run, solver, _, _ in runs] == [
        ("gradient_problem", "GPURodas5P"), ("solve_problem", "GPURodas4"), ("gradient_problem", "GPURodas4")]
    assert {settings["device"] for *_, settings in runs} == {"cuda"}
    assert fake_julia.devices == ["cuda", "cuda", "cuda"]


def test_custom_source_is_evaluated_in_its_own_call_before_the_problem_is_built(fake_julia):
    pss.gradient(_custom(), "Rodas5P", "GaussAdjoint", backend="julia")
    assert [name for name, _, _ in fake_julia.calls] == ["custom_module", "custom_problem", "gradient_problem"]
    assert fake_julia.calls[0][1] == (JULIA_RHS,)
    assert fake_julia.calls[1][1][:2] == ("<custom_module>", "decay")
    assert fake_julia.calls[2][1][0] == "<custom_problem>"


def test_a_sweep_sends_one_parameter_row_per_stiffness_value(fake_julia):
    frame = pss.sweep(_custom(), [1.0, 10.0, 100.0], "FBDF", "GaussAdjoint", backend="julia", progress=False)
    ((run, solver, sensitivity, settings),) = fake_julia.runs()
    assert (run, solver, sensitivity, settings["device"]) == ("gradient_ensemble", "FBDF", "GaussAdjoint", "cpu")
    rows = fake_julia.calls[-1][1][1]
    np.testing.assert_array_equal(rows, [[1.0], [10.0], [100.0]])
    assert len(frame) == 3 and set(frame["backend"]) == {"julia"} and (frame["grad"] == 0.25).all()


def test_the_ensemble_api_takes_resolved_objects(fake_julia):
    problem = pss.problems.get("hires")
    solver = pss.solvers.get("KenCarp4")
    options = Options(rtol=1e-7).for_method(solver)
    results = api.gradient_ensemble(problem, [1.0, 10.0], solver, "GaussAdjoint", options)
    rows = fake_julia.calls[-1][1][1]
    np.testing.assert_allclose(rows[:, 9], [280.0, 2800.0])
    assert len(results) == 2 and all(r.backend == "julia" and r.solver == "KenCarp4" for r in results)
    assert fake_julia.runs()[0][3] == dict(rtol=1e-7, atol=1e-8, dt=None, max_steps=100_000, device="cpu")


def test_saveat_from_t0_reaches_julia_and_comes_back_with_y0_first(fake_julia):
    problem = pss.problems.get("robertson")
    sol = pss.solve(problem, saveat=[0.0, 1.0, problem.tspan[1]], backend="julia")
    np.testing.assert_array_equal(fake_julia.problem["saveat"], [0.0, 1.0, problem.tspan[1]])
    np.testing.assert_array_equal(sol.ts, [0.0, 1.0, problem.tspan[1]])
    np.testing.assert_array_equal(sol.ys[0], problem.y0)
    assert sol.success
    result = pss.gradient(_custom(saveat=[0.0, 1.0]), "Rodas5P", "BacksolveAdjoint", backend="julia")
    np.testing.assert_array_equal(fake_julia.problem["saveat"], [0.0, 1.0])
    assert result.success


# --- the automatic sensitivity choice (SciMLSensitivity's) --------------------------


def _sized(n_params: int) -> pss.Problem:
    """A one-state problem with ``n_params`` parameter entries (lam and a vector w of the rest)."""
    return _custom(params={"lam": 2.0, "w": np.zeros(n_params - 1)})


@pytest.mark.parametrize(
    "problem, expected, rule",
    [(lambda: pss.problems.get("dahlquist"), "ForwardDiffSensitivity", "auto: 1 states + 1 parameters <= 100"),
     (lambda: _sized(99), "ForwardDiffSensitivity", "auto: 1 states + 99 parameters <= 100"),
     (lambda: _sized(100), "GaussAdjoint", "auto: 1 states + 100 parameters > 100"),
     (lambda: pss.problems.get("stiff_neural_ode", hidden=32), "GaussAdjoint", "auto: 2 states + 164 parameters > 100")],
    ids=["dahlquist", "100 in all", "101 in all", "stiff_neural_ode hidden=32"],
)
@pytest.mark.parametrize("sensitivity", [None, "auto"])
def test_the_automatic_choice_is_forward_mode_up_to_100_states_and_parameters_then_gauss(
        fake_julia, problem, expected, rule, sensitivity):
    result = pss.gradient(problem(), "Rodas5P", sensitivity, backend="julia")
    ((run, solver, sent, _),) = fake_julia.runs()
    assert (run, solver, sent) == ("gradient_problem", "Rodas5P", expected)
    assert result.sensitivity == expected and result.extra["sensitivity_choice"] == rule


def test_the_large_neural_ode_reaches_julia_with_gauss_adjoint_instead_of_being_refused(fake_julia):
    problem = pss.problems.get("stiff_neural_ode", hidden=32)
    result = pss.gradient(problem, backend="julia")
    assert result.sensitivity == "GaussAdjoint" and result.success
    assert set(result.grad) == set(problem.params)
    frame = pss.sweep(problem, [10.0, 100.0], "Rodas5P", "auto", backend="julia", progress=False)
    assert fake_julia.runs()[-1][:3] == ("gradient_ensemble", "Rodas5P", "GaussAdjoint")
    assert set(frame["sensitivity"]) == {"GaussAdjoint"}


def test_the_automatic_choice_on_cuda_is_forward_mode_whatever_the_size(fake_julia):
    result = pss.gradient(pss.problems.get("stiff_neural_ode", hidden=32), "Rodas5P", device="cuda", backend="julia")
    assert fake_julia.runs()[0][1:3] == ("GPURodas5P", "ForwardDiffSensitivity")
    assert result.extra["sensitivity_choice"].startswith("auto: device='cuda'")


# --- method checks happen before Julia starts --------------------------------------


@pytest.fixture
def julia_must_not_start(monkeypatch):
    monkeypatch.setattr(_runtime, "ensure_julia", lambda: pytest.fail("looked for Julia"))
    monkeypatch.setattr(_runtime, "module_for", lambda device: pytest.fail("started Julia"))


@pytest.mark.usefixtures("julia_must_not_start")
@pytest.mark.parametrize(
    "solver, sensitivity, kwargs, match",
    [
        ("Rodas9", "GaussAdjoint", {}, "Unknown solver"),
        ("Rodas5P", "EnzymeAdjoint", {}, "Unknown sensitivity"),
        ("BDF2", "GaussAdjoint", {}, "fixed-step reference method and needs dt"),
        ("KenCarp4", "ForwardDiffSensitivity", {"device": "cuda"}, "no DiffEqGPU kernel"),
        ("Rodas4", "GaussAdjoint", {"device": "cuda"}, "cannot run inside a DiffEqGPU kernel"),
        ("Rodas4", None, {"device": "tpu"}, "Unknown device"),
        ("Rodas5P", "GaussAdjoint", {"rtol": -1.0}, "rtol"),
    ],
)
def test_invalid_combinations_raise_value_error_before_julia(solver, sensitivity, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pss.gradient("dahlquist", solver, sensitivity, backend="julia", **kwargs)


@pytest.mark.usefixtures("julia_must_not_start")
def test_a_sweep_refuses_before_julia():
    with pytest.raises(ValueError, match="no DiffEqGPU kernel"):
        pss.sweep("dahlquist", [1.0, 2.0], "FBDF", "ForwardDiffSensitivity", device="cuda", backend="julia",
                  progress=False)
    with pytest.raises(ValueError, match="cannot run inside a DiffEqGPU kernel"):
        pss.sweep("dahlquist", [1.0, 2.0], "Rodas5P", "GaussAdjoint", device="cuda", backend="julia", progress=False)


@pytest.mark.usefixtures("julia_must_not_start")
@pytest.mark.parametrize("algorithm, setting", [
    (pss.sensitivity.GaussAdjoint(n_points=8), "n_points=8"),
    (pss.sensitivity.InterpolatingAdjoint(quadrature_error_control=False), "quadrature_error_control=False"),
    (pss.sensitivity.BacksolveAdjoint(quadrature_error_control=False), "quadrature_error_control=False"),
])
def test_sensitivity_options_julia_cannot_pass_on_are_refused(algorithm, setting):
    with pytest.raises(ValueError, match=rf"sets {setting}, which backend='julia' cannot pass on"):
        pss.gradient("dahlquist", "Rodas5P", algorithm, backend="julia")


@pytest.mark.usefixtures("julia_must_not_start")
def test_sensitivity_objects_with_default_options_are_accepted():
    backend = pss.backends.get("julia")
    problem, options = pss.problems.get("dahlquist"), Options()
    solver = backend.solver("Rodas5P")
    for algorithm in (pss.sensitivity.GaussAdjoint(), pss.sensitivity.InterpolatingAdjoint()):
        assert backend.sensitivity(algorithm, problem, solver, options).algorithm == algorithm


@pytest.mark.usefixtures("julia_must_not_start")
def test_native_only_overrides_are_refused_before_julia():
    with pytest.raises(ValueError, match="problem.replace"):
        pss.gradient("dahlquist", "Rodas5P", "GaussAdjoint", params={"lam": 3.0}, backend="julia")
    with pytest.raises(ValueError, match="problem.replace"):
        pss.solve("dahlquist", y0=[2.0], backend="julia")


def test_a_solver_object_without_an_ordinarydiffeq_counterpart_is_refused():
    custom = pss.solvers.ESDIRK(pss.solvers.tableaux.KENCARP4)  # the tableau, without a Julia name
    assert custom.julia is None
    with pytest.raises(ValueError, match="no OrdinaryDiffEq counterpart"):
        JuliaBackend().solver(custom)


# --- split problems and the exponential integrators --------------------------------


@pytest.mark.parametrize("solver", ["KenCarp4", "Rodas5P", "TRBDF2"])
def test_a_split_builtin_reaches_julia_in_two_parts(fake_julia, solver):
    # Julia builds a SplitODEProblem for KenCarp4 and solves the sum with the others
    pss.gradient(pss.problems.get("stiff_neural_ode", split=True), solver, "GaussAdjoint", backend="julia")
    (build, build_args, build_kwargs), (run, run_args, _) = fake_julia.calls
    assert (build, build_args[0], build_kwargs) == ("problem_from_arrays", "stiff_neural_ode", {"split": True})
    assert run == "gradient_problem" and run_args[1:] == (solver, "GaussAdjoint")


def test_an_unsplit_builtin_reaches_julia_as_one_right_hand_side(fake_julia):
    pss.solve(pss.problems.get("stiff_neural_ode"), "KenCarp4", backend="julia")
    assert fake_julia.calls[0][2] == {"split": False}


def test_a_custom_split_problem_reaches_julia_with_its_parts(fake_julia):
    pss.gradient(_split_custom(), "KenCarp4", "InterpolatingAdjoint", backend="julia")
    (module, module_args, _), (build, _, build_kwargs), _ = fake_julia.calls
    assert (module, module_args) == ("custom_module", (JULIA_PARTS,))
    assert (build, build_kwargs) == ("custom_problem", {"split": True})


@pytest.mark.parametrize("sensitivity", names.sensitivity_names())
def test_kencarp4_on_a_split_problem_takes_every_sensitivity(fake_julia, sensitivity):
    # read in SciMLSensitivity: each keeps the SplitFunction for the forward solve and rebuilds
    # only the augmented (plain) systems from its sum (README, "verified only by reading")
    result = pss.gradient(pss.problems.get("stiff_neural_ode", split=True), "KenCarp4", sensitivity, backend="julia")
    assert result.sensitivity == sensitivity and fake_julia.runs()[0][1:3] == ("KenCarp4", sensitivity)


@pytest.mark.usefixtures("julia_must_not_start")
@pytest.mark.parametrize("solver", ["LawsonEuler", "ETDRK4"])
def test_the_exponential_integrators_refuse_a_split_problem_before_julia(solver):
    problem = pss.problems.get("stiff_neural_ode", split=True)
    match = (rf"solver='{solver}' cannot run problem 'stiff_neural_ode', whose rhs is a SplitRHS, on "
             r"backend='julia': .*A = f\.f1\.f.*Jacobian of the stiff part.*split=False")
    with pytest.raises(ValueError, match=match):
        pss.solve(problem, solver, dt=0.01, backend="julia")
    with pytest.raises(ValueError, match=match):
        pss.gradient(problem, solver, "ForwardSensitivity", dt=0.01, backend="julia")
    with pytest.raises(ValueError, match=match):
        pss.sweep(problem, [1.0, 2.0], solver, "ForwardSensitivity", dt=0.01, backend="julia", progress=False)


@pytest.mark.usefixtures("julia_must_not_start")
@pytest.mark.parametrize("solver", ["LawsonEuler", "ETDRK4"])
@pytest.mark.parametrize("sensitivity, why", [
    ("ForwardDiffSensitivity", r"expv!/phiv!.*BLAS floats only.*dual numbers"),
    ("BacksolveAdjoint", r"backward solve.*positive dt.*isdtchangeable = false.*away from t0"),
    ("InterpolatingAdjoint", r"backward solve.*isdtchangeable = false"),
    ("QuadratureAdjoint", r"backward solve.*isdtchangeable = false"),
    ("GaussAdjoint", r"backward solve.*isdtchangeable = false"),
])
def test_the_exponential_integrators_refuse_the_sensitivities_that_cannot_run_them(solver, sensitivity, why):
    match = (rf"solver='{solver}' with sensitivity='{sensitivity}' is not supported by backend='julia': .*{why}.*"
             rf"With {solver} use ForwardSensitivity, ZygoteAdjoint, or backend='jax'")
    with pytest.raises(ValueError, match=match):
        pss.gradient("dahlquist", solver, sensitivity, dt=0.01, backend="julia")
    with pytest.raises(ValueError, match=match):
        pss.sweep("dahlquist", [1.0, 2.0], solver, sensitivity, dt=0.01, backend="julia", progress=False)


@pytest.mark.parametrize("solver", ["LawsonEuler", "ETDRK4"])
def test_the_exponential_integrators_reach_julia_with_a_dt_and_forward_sensitivities(fake_julia, solver):
    pss.solve("linear_modes", solver, dt=0.01, backend="julia")
    result = pss.gradient("linear_modes", solver, "ForwardSensitivity", dt=0.01, backend="julia")
    runs = fake_julia.runs()
    assert [(r[0], r[1], r[2], r[3]["dt"]) for r in runs] == [
        ("solve_problem", solver, None, 0.01), ("gradient_problem", solver, "ForwardSensitivity", 0.01)]
    assert result.success and result.solver == solver
    assert [call[2] for call in fake_julia.calls if call[0] == "problem_from_arrays"] == [{"split": False}] * 2


@pytest.mark.parametrize("solver", ["LawsonEuler", "ETDRK4"])
@pytest.mark.parametrize("problem, size", [(lambda: pss.problems.get("dahlquist"), "<="),
                                           (lambda: pss.problems.get("stiff_neural_ode", hidden=32), ">")])
def test_the_automatic_choice_for_an_exponential_integrator_is_one_that_runs_it(fake_julia, solver, problem, size):
    result = pss.gradient(problem(), solver, None, dt=0.01, backend="julia")
    assert fake_julia.runs()[0][1:3] == (solver, "ForwardSensitivity")
    rule = result.extra["sensitivity_choice"]
    assert rule.startswith("auto: ") and f" {size} 100, but " in rule
    assert rule.endswith(f"cannot run {solver} on backend='julia': ForwardSensitivity")


# --- missing Julia ------------------------------------------------------------------


@pytest.fixture
def no_julia(monkeypatch, tmp_path):
    """An environment with no Julia anywhere juliacall/juliapkg would look."""
    for name in (_runtime.ENV_JULIACALL_EXE, _runtime.ENV_JULIACALL_BINDIR, _runtime.ENV_JULIACALL_PROJECT,
                 _runtime.ENV_JULIAPKG_EXE, _runtime.ENV_OFFLINE, _runtime.ENV_AUTO_INSTALL):
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    from juliapkg.state import STATE

    monkeypatch.setitem(STATE, "meta", str(tmp_path / "project" / "pyjuliapkg" / "meta.json"))
    monkeypatch.setitem(STATE, "install", str(tmp_path / "project" / "pyjuliapkg" / "install"))
    monkeypatch.setitem(STATE, "project", str(tmp_path / "project"))
    monkeypatch.setitem(STATE, "deps", str(tmp_path / "project" / "pyjuliapkg" / "juliapkg.json"))
    monkeypatch.delitem(sys.modules, "juliacall", raising=False)
    return empty


def _fake_julia(directory: pathlib.Path, version: str = "1.10.0") -> pathlib.Path:
    exe = directory / "julia"
    exe.write_text(f"#!/bin/sh\necho 'julia version {version}'\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


@pytest.mark.usefixtures("no_julia")
def test_missing_julia_fails_fast_with_advice_and_without_importing_juliacall():
    start = time.perf_counter()
    with pytest.raises(JuliaNotFoundError) as caught:
        pss.gradient("dahlquist", "Rodas5P", "GaussAdjoint", backend="julia")
    assert time.perf_counter() - start < 2.0
    message = str(caught.value)
    for needle in ("Julia 1.10 - 1.11", "julialang.org", "pip install 'pystiffsens[julia]'", "PYTHON_JULIAPKG_EXE",
                   "PYTHON_JULIAPKG_OFFLINE", "PYSTIFFSENS_JULIA_AUTO_INSTALL", "backend='jax'"):
        assert needle in message
    assert "juliacall" not in sys.modules


@pytest.mark.usefixtures("no_julia")
def test_missing_julia_fails_fast_through_the_public_api():
    start = time.perf_counter()
    with pytest.raises(JuliaNotFoundError):
        pss.solve(pss.problems.get("dahlquist"), backend="julia")
    with pytest.raises(JuliaNotFoundError):
        pss.sweep("dahlquist", [1.0, 2.0], "Rodas5P", "GaussAdjoint", backend="julia", progress=False)
    assert time.perf_counter() - start < 2.0


def test_an_exe_variable_naming_no_executable_is_reported(no_julia, monkeypatch, tmp_path):
    monkeypatch.setenv(_runtime.ENV_JULIAPKG_EXE, str(tmp_path / "nowhere" / "julia"))
    with pytest.raises(JuliaNotFoundError, match="PYTHON_JULIAPKG_EXE=.*is not an executable"):
        _runtime.ensure_julia()


def test_julia_on_path_is_found(no_julia):
    exe = _fake_julia(no_julia)
    assert find_julia() == str(exe)


def test_julia_recorded_by_an_earlier_resolve_is_found(no_julia, tmp_path):
    from juliapkg.state import STATE

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    exe = _fake_julia(elsewhere)
    meta = pathlib.Path(STATE["meta"])
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"executable": str(exe)}))
    assert find_julia() == str(exe)


def test_offline_without_installed_packages_fails_fast(no_julia, monkeypatch):
    _fake_julia(no_julia)
    monkeypatch.setenv(_runtime.ENV_OFFLINE, "yes")
    with pytest.raises(JuliaNotFoundError, match="never installed"):
        _runtime.ensure_julia()


def test_auto_install_opt_in_skips_the_check(no_julia, monkeypatch):
    monkeypatch.setenv(_runtime.ENV_AUTO_INSTALL, "yes")
    _runtime.ensure_julia()


# --- the Julia version bound (juliapkg.json "julia") -------------------------------


@pytest.mark.parametrize("version", SUPPORTED_JULIA)
def test_julia_on_path_in_the_supported_versions_is_used(no_julia, version):
    exe = _fake_julia(no_julia, version)
    assert find_julia() == str(exe)


@pytest.mark.parametrize("version", ["1.12.0", "1.9.4"])
def test_julia_outside_the_supported_versions_fails_fast_instead_of_a_download(no_julia, version):
    _fake_julia(no_julia, version)
    start = time.perf_counter()
    expected = f"outside the supported versions '1.10.*1.11'.*{version}"
    with pytest.raises(JuliaNotFoundError, match=expected):
        _runtime.ensure_julia()
    assert time.perf_counter() - start < 2.0


def test_the_bound_is_juliapkgs_intersection_with_juliacalls(no_julia, monkeypatch, tmp_path):
    """juliacall's own juliapkg.json asks for ^1.10.3; juliapkg intersects it with ours."""
    other = tmp_path / "site" / "juliacall"
    other.mkdir(parents=True)
    (other / "juliapkg.json").write_text(json.dumps({"julia": "^1.10.3", "packages": {}}))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    _fake_julia(no_julia, "1.10.2")
    with pytest.raises(JuliaNotFoundError, match=r"outside the supported versions '1\.10\.3.*1\.10\.2"):
        _runtime.find_julia()


def test_an_unsupported_recorded_julia_gives_way_to_a_supported_one_on_path(no_julia, tmp_path):
    from juliapkg.state import STATE

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    meta = pathlib.Path(STATE["meta"])
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"executable": str(_fake_julia(elsewhere, "1.12.1"))}))
    on_path = _fake_julia(no_julia, "1.11.3")
    assert find_julia() == str(on_path)


def test_an_explicit_juliapkg_exe_is_taken_as_it_is(no_julia, monkeypatch, tmp_path):
    """juliapkg uses PYTHON_JULIAPKG_EXE whatever its version (with a warning), so no download follows."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    exe = _fake_julia(elsewhere, "1.12.0")
    monkeypatch.setenv(_runtime.ENV_JULIAPKG_EXE, str(exe))
    assert find_julia() == str(exe)


# --- PYTHON_JULIACALL_EXE / _BINDIR only together with PYTHON_JULIACALL_PROJECT -----


@pytest.mark.parametrize("variable", ["PYTHON_JULIACALL_EXE", "PYTHON_JULIACALL_BINDIR"])
def test_a_juliacall_executable_without_a_project_is_refused(no_julia, monkeypatch, tmp_path, variable):
    exe = _fake_julia(tmp_path)
    monkeypatch.setenv(variable, str(exe if variable.endswith("EXE") else tmp_path))
    with pytest.raises(JuliaNotFoundError) as caught:
        _runtime.ensure_julia()
    message = str(caught.value)
    assert f"{variable}=" in message and "without PYTHON_JULIACALL_PROJECT" in message
    assert "PYTHON_JULIAPKG_EXE" in message and "by hand" in message and str(_runtime.JULIA_PACKAGE_DIR) in message


def test_a_juliacall_project_without_an_executable_is_refused(no_julia, monkeypatch, tmp_path):
    monkeypatch.setenv(_runtime.ENV_JULIACALL_PROJECT, str(tmp_path))
    expected = "PYTHON_JULIACALL_PROJECT=.*without PYTHON_JULIACALL_EXE"
    with pytest.raises(JuliaNotFoundError, match=expected):
        _runtime.ensure_julia()


def test_a_juliacall_project_that_does_not_exist_is_refused(no_julia, monkeypatch, tmp_path):
    monkeypatch.setenv(_runtime.ENV_JULIACALL_EXE, str(_fake_julia(tmp_path)))
    monkeypatch.setenv(_runtime.ENV_JULIACALL_PROJECT, str(tmp_path / "nowhere"))
    with pytest.raises(JuliaNotFoundError, match="is not a directory"):
        _runtime.ensure_julia()


@pytest.mark.parametrize("variable", ["PYTHON_JULIACALL_EXE", "PYTHON_JULIACALL_BINDIR"])
def test_a_juliacall_executable_with_a_project_bypasses_juliapkg(no_julia, monkeypatch, tmp_path, variable):
    exe = _fake_julia(tmp_path, "1.12.0")  # juliacall does not check the version: no bound here
    monkeypatch.setenv(variable, str(exe if variable.endswith("EXE") else tmp_path))
    monkeypatch.setenv(_runtime.ENV_JULIACALL_PROJECT, str(tmp_path))
    monkeypatch.setenv(_runtime.ENV_OFFLINE, "yes")  # juliapkg's meta file is not needed then
    _runtime.ensure_julia()
    assert find_julia() == str(exe)
    assert _runtime.juliacall_project() == str(tmp_path)


# --- CUDA.jl and DiffEqGPU.jl are installed on the first device="cuda" -------------


class FakeJuliapkg:
    """Records juliapkg.add / rm / resolve; ``resolve`` raises ``fail`` when set."""

    def __init__(self, fail=None):
        self.calls, self.fail = [], fail

    def add(self, name, uuid, **kwargs):
        self.calls.append(("add", name, uuid, kwargs))

    def rm(self, name):
        self.calls.append(("rm", name))

    def resolve(self):
        self.calls.append(("resolve",))
        if self.fail:
            raise self.fail


@pytest.fixture
def fake_juliapkg(no_julia, monkeypatch):
    import juliapkg

    fake = FakeJuliapkg()
    for verb in ("add", "rm", "resolve"):
        monkeypatch.setattr(juliapkg, verb, getattr(fake, verb))
    return fake


def test_first_cuda_request_adds_cuda_and_diffeqgpu_and_resolves(fake_juliapkg, capsys):
    assert _runtime.ensure_cuda_packages() is True
    added = {call[1]: (call[2], call[3]["version"]) for call in fake_juliapkg.calls if call[0] == "add"}
    assert added == _runtime.CUDA_PACKAGES
    assert fake_juliapkg.calls[-1] == ("resolve",)
    message = capsys.readouterr().err
    assert "device='cuda'" in message and "CUDA, DiffEqGPU" in message and "network" in message


def test_cuda_packages_already_required_are_not_added_again(fake_juliapkg, monkeypatch):
    monkeypatch.setattr(_runtime, "_required_packages", lambda: {"PyStiffSens", "CUDA", "DiffEqGPU"})
    assert _runtime.ensure_cuda_packages() is False
    assert fake_juliapkg.calls == []


def test_a_failed_cuda_install_is_undone(fake_juliapkg):
    fake_juliapkg.fail = RuntimeError("no network")
    with pytest.raises(JuliaNotFoundError, match="no network.*device='cpu' is unaffected"):
        _runtime.ensure_cuda_packages()
    assert [c for c in fake_juliapkg.calls if c[0] == "rm"] == [("rm", "CUDA"), ("rm", "DiffEqGPU")]


def test_cuda_install_offline_is_refused(fake_juliapkg, monkeypatch):
    monkeypatch.setenv(_runtime.ENV_OFFLINE, "yes")
    with pytest.raises(JuliaNotFoundError, match="PYTHON_JULIAPKG_OFFLINE"):
        _runtime.ensure_cuda_packages()
    assert fake_juliapkg.calls == []


def test_cuda_install_is_left_to_the_user_when_juliapkg_is_bypassed(fake_juliapkg, monkeypatch, tmp_path):
    monkeypatch.setenv(_runtime.ENV_JULIACALL_EXE, str(_fake_julia(tmp_path)))
    monkeypatch.setenv(_runtime.ENV_JULIACALL_PROJECT, str(tmp_path))
    assert _runtime.ensure_cuda_packages() is False
    assert fake_juliapkg.calls == []


class FakeMain:
    def __init__(self, events):
        self.events = events

    def seval(self, code):
        self.events.append(("seval", code))


@pytest.mark.parametrize("device, cuda", [("cpu", False), ("cuda", True)])
def test_only_device_cuda_installs_and_imports_the_gpu_packages(fake_juliapkg, monkeypatch, device, cuda):
    events = []
    monkeypatch.setattr(_runtime, "ensure_julia", lambda: None)
    monkeypatch.setattr(_runtime, "ensure_cuda_packages", lambda: events.append(("install",)) or True)
    monkeypatch.setattr(_runtime, "julia_main", lambda: events.append(("start julia",)) or FakeMain(events))
    monkeypatch.setattr(_runtime, "pystiffsens_module", lambda: "<PyStiffSens>")
    _runtime.load_cuda.cache_clear()
    try:
        assert _runtime.module_for(device) == "<PyStiffSens>"
    finally:
        _runtime.load_cuda.cache_clear()
    expected = [("install",), ("start julia",), ("seval", "import CUDA, DiffEqGPU")] if cuda else []
    assert events == expected


# --- parity with the JAX backend (needs Julia) ------------------------------------

TOLERANCES = dict(rtol=1e-8, atol=1e-10)


def _julia_ensemble(problem, stiffness, solver, sensitivity, device="cpu", **options):
    """``api.gradient_ensemble`` with resolved objects, as a sweep batch calls it."""
    method = pss.solvers.get(solver)
    resolved = Options(**options).for_method(method, problem.tspan[1] - problem.tspan[0])
    return api.gradient_ensemble(problem, stiffness, method, sensitivity, resolved, device=device)


def _close(julia, jax, rel=1e-4):
    julia, jax = np.asarray(julia, dtype=float), np.asarray(jax, dtype=float)
    np.testing.assert_allclose(julia, jax, rtol=rel, atol=rel * max(np.max(np.abs(jax)), 1e-300))


@needs_julia
@pytest.mark.parametrize("name", pss.problems.names())
def test_solutions_agree(name):
    problem = pss.problems.get(name)
    julia = pss.solve(problem, "Rodas5P", backend="julia", **TOLERANCES)
    jax = pss.solve(problem, "Rodas5P", backend="jax", **TOLERANCES)
    assert julia.status == jax.status == ReturnCode.Success
    _close(julia.ys, jax.ys)


@needs_julia
@pytest.mark.parametrize("name", pss.problems.names())
def test_gradients_agree(name):
    problem = pss.problems.get(name)
    julia = pss.gradient(problem, "Rodas5P", "ForwardDiffSensitivity", backend="julia", **TOLERANCES)
    jax = pss.gradient(problem, "Rodas5P", "ForwardDiffSensitivity", backend="jax", **TOLERANCES)
    assert julia.status == jax.status == ReturnCode.Success
    _close(julia.loss, jax.loss)
    _close(list(julia.flat_grad().values()), list(jax.flat_grad().values()), rel=1e-3)


@needs_julia
@pytest.mark.parametrize(
    "sensitivity",
    [s for s in names.sensitivity_names() if s != "ZygoteAdjoint"],
)
def test_every_sensitivity_matches_the_exact_gradient(sensitivity):
    problem = pss.problems.get("prothero_robinson", lam=10.0)
    result = pss.gradient(problem, "Rodas5P", sensitivity, backend="julia", **TOLERANCES)
    loss, grad = problem.exact_loss_and_grad()
    assert result.success
    _close(result.loss, loss, rel=1e-6)
    for key in grad:
        _close(result.grad[key], grad[key], rel=1e-3)


@needs_julia
def test_zygote_adjoint_reports_its_failure_instead_of_raising():
    result = pss.gradient(pss.problems.get("dahlquist"), "Rodas5P", "ZygoteAdjoint", backend="julia")
    assert result.status == ReturnCode.Failure
    assert result.extra["julia_error"] and np.isnan(result.loss)


@needs_julia
def test_fixed_step_bdf2_takes_the_same_steps():
    problem = pss.problems.get("linear_modes")
    julia = pss.solve(problem, "BDF2", dt=1e-2, backend="julia", **TOLERANCES)
    jax = pss.solve(problem, "BDF2", dt=1e-2, backend="jax", **TOLERANCES)
    _close(julia.ys, jax.ys, rel=1e-6)


@needs_julia
def test_ensemble_agrees_with_jax_one_value_at_a_time():
    problem = pss.problems.get("dahlquist")
    stiffness = [1.0, 100.0, 1e4]
    results = _julia_ensemble(problem, stiffness, "KenCarp4", "GaussAdjoint", **TOLERANCES)
    for s, result in zip(stiffness, results):
        jax = pss.gradient(problem.with_stiffness(s), "KenCarp4", "GaussAdjoint", backend="jax", **TOLERANCES)
        assert result.success
        _close(result.grad["lam"], jax.grad["lam"], rel=1e-3)


@needs_julia
def test_custom_julia_rhs_agrees_with_its_python_twin():
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        from julia_backend_custom_rhs import PROBLEM
    finally:
        sys.path.pop(0)
    julia = pss.gradient(PROBLEM, "Rodas5P", "InterpolatingAdjoint", backend="julia", **TOLERANCES)
    jax = pss.gradient(PROBLEM, "Rodas5P", "InterpolatingAdjoint", backend="jax", **TOLERANCES)
    _close(julia.loss, jax.loss)
    _close(list(julia.flat_grad().values()), list(jax.flat_grad().values()), rel=1e-3)


@needs_julia
@pytest.mark.cuda
@pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="no NVIDIA GPU (nvidia-smi not found)")
def test_gpu_kernel_gradients_agree_with_cpu():
    problem = pss.problems.get("robertson")
    stiffness = [3e6, 3e7]
    settings = dict(solver="Rodas5P", sensitivity="ForwardDiffSensitivity", **TOLERANCES)
    gpu = _julia_ensemble(problem, stiffness, device="cuda", **settings)
    cpu = _julia_ensemble(problem, stiffness, device="cpu", **settings)
    for g, c in zip(gpu, cpu):
        _close(list(g.flat_grad().values()), list(c.flat_grad().values()), rel=1e-3)


@needs_julia
@pytest.mark.cuda
@pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="no NVIDIA GPU (nvidia-smi not found)")
def test_a_single_gpu_gradient_and_a_one_value_ensemble_run_in_a_kernel():
    """One trajectory alone would fall back to EnsembleSerial, which has no kernel solve."""
    problem = pss.problems.get("robertson")
    settings = dict(solver="Rodas5P", sensitivity="ForwardDiffSensitivity", backend="julia", **TOLERANCES)
    gpu = pss.gradient(problem, device="cuda", **settings)
    (one,) = _julia_ensemble(problem, [float(problem.params["k2"])], "Rodas5P", "ForwardDiffSensitivity",
                             device="cuda", **TOLERANCES)
    cpu = pss.gradient(problem, device="cpu", **settings)
    assert gpu.success and one.success
    for result in (gpu, one):
        _close(list(result.flat_grad().values()), list(cpu.flat_grad().values()), rel=1e-3)


@needs_julia
@pytest.mark.cuda
@pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="no NVIDIA GPU (nvidia-smi not found)")
@pytest.mark.parametrize("saveat", [[0.0, 1.0, 1e3], [0.0]], ids=["t0 and later", "t0 alone"])
def test_gpu_kernels_save_y0_first_when_saveat_starts_at_t0(saveat):
    problem = pss.problems.get("robertson").replace(saveat=saveat)
    gpu = pss.solve(problem, "Rodas5P", device="cuda", backend="julia", **TOLERANCES)
    cpu = pss.solve(problem, "Rodas5P", device="cpu", backend="julia", **TOLERANCES)
    assert gpu.success and cpu.success
    np.testing.assert_array_equal(gpu.ys[0], problem.y0)
    _close(gpu.ys, cpu.ys, rel=1e-4)


@needs_julia
@pytest.mark.parametrize("sensitivity", [s for s in names.sensitivity_names() if s != "ZygoteAdjoint"])
def test_saveat_from_t0_agrees_with_jax(sensitivity):
    """A loss of every saved state, the first being y0: each sensealg must line ys up with saveat."""
    problem = pss.problems.get("prothero_robinson", lam=10.0).replace(
        saveat=[0.0, 0.5, 1.0], loss=lambda ts, ys, p: ys[0, 0] + 2.0 * ys[1, 0] + ys[2, 0] ** 2,
        implementations={"julia": "rhs(u, p, t) = state_like(u, -p.lam * (u[1] - sin(p.omega * t)) + "
                                  "p.omega * cos(p.omega * t))\nloss(ts, ys, p) = ys[1][1] + 2 * ys[2][1] + ys[3][1]^2\n"},
    )
    julia = pss.gradient(problem, "Rodas5P", sensitivity, backend="julia", **TOLERANCES)
    jax = pss.gradient(problem, "Rodas5P", "ForwardDiffSensitivity", backend="jax", **TOLERANCES)
    assert julia.success and jax.success
    _close(julia.loss, jax.loss, rel=1e-6)
    _close(list(julia.flat_grad().values()), list(jax.flat_grad().values()), rel=1e-3)
    sol = pss.solve(problem, "Rodas5P", backend="julia", **TOLERANCES)
    np.testing.assert_array_equal(sol.ys[0], problem.y0)


@needs_julia
@pytest.mark.parametrize("sensitivity", ["ForwardDiffSensitivity", "ForwardSensitivity", "GaussAdjoint",
                                         "InterpolatingAdjoint", "BacksolveAdjoint"])
def test_kencarp4_imex_on_the_split_neural_ode_agrees_with_jax(sensitivity):
    problem = pss.problems.get("stiff_neural_ode", split=True)
    julia = pss.gradient(problem, "KenCarp4", sensitivity, backend="julia", **TOLERANCES)
    jax = pss.gradient(problem, "KenCarp4", sensitivity, backend="jax", **TOLERANCES)
    assert julia.status == jax.status == ReturnCode.Success
    _close(julia.loss, jax.loss, rel=1e-5)
    _close(list(julia.flat_grad().values()), list(jax.flat_grad().values()), rel=1e-3)


@needs_julia
@pytest.mark.parametrize("solver", ["LawsonEuler", "ETDRK4"])
def test_the_exponential_integrators_are_exact_on_a_linear_problem_on_both_backends(solver):
    # y' = A y: with L the Jacobian each step both backends step exactly, and so does the forward
    # sensitivity system (linear too); 64 steps of the binary dt reach t_end exactly
    problem, dt = pss.problems.get("linear_modes"), 1 / 64
    loss, grad = problem.exact_loss_and_grad()
    for backend in ("julia", "jax"):
        sol = pss.solve(problem, solver, dt=dt, backend=backend)
        _close(sol.ys[-1], problem.exact_solution(problem.tspan[1], problem.params), rel=1e-9)
    result = pss.gradient(problem, solver, "ForwardSensitivity", dt=dt, backend="julia")
    assert result.success
    _close(result.loss, loss, rel=1e-9)
    for key in grad:
        _close(result.grad[key], grad[key], rel=1e-7)
