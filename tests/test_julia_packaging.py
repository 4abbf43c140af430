"""A built wheel ships the Julia package PyStiffSens, and juliapkg finds it where pip installs it.

juliapkg reads every ``juliapkg.json`` it finds in ``sys.path`` and resolves each
``"path"`` relative to that file, so a path that leaves the installed ``pystiffsens``
package breaks juliacall for the whole environment (issue #11, item 2). This builds a
wheel from a copy of the sources (no build isolation: setuptools and wheel come from the
test extra), unpacks it as pip would into site-packages, and checks the layout with
juliapkg's own requirement search. It takes a few seconds and needs no network.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
JULIA_DIR = ROOT / "pystiffsens" / "julia"
#: Files of the Julia package that belong in the wheel: sources, tests, Project.toml and its
#: README; never a Manifest.toml that a local `julia --project` run leaves behind.
SHIPPED = sorted(
    [p for p in JULIA_DIR.rglob("*.jl")] + [JULIA_DIR / "Project.toml", JULIA_DIR / "README.md"]
)


@pytest.fixture(scope="module")
def site_packages(tmp_path_factory) -> tuple[pathlib.Path, list[str]]:
    """(the unpacked wheel, its file names), built from a copy of the sources."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "pystiffsens", source / "pystiffsens", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    # a stray manifest from a local Julia run must stay out of the wheel
    (source / "pystiffsens" / "julia" / "Manifest.toml").write_text("# local resolve\n")
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
        check=False, capture_output=True, text=True, timeout=180, cwd=source,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = out.glob("pystiffsens-*.whl")
    site = tmp_path_factory.mktemp("site-packages")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(site)
    return site, names


def test_the_wheel_holds_every_file_of_the_julia_package_and_no_manifest(site_packages):
    _, names = site_packages
    shipped = {f"pystiffsens/julia/{p.relative_to(JULIA_DIR).as_posix()}" for p in SHIPPED}
    in_wheel = {n for n in names if n.startswith("pystiffsens/julia/")}
    assert in_wheel == shipped
    assert "pystiffsens/juliapkg.json" in names
    assert not any("Manifest.toml" in n for n in names)


def test_juliapkg_json_path_resolves_to_the_installed_julia_package(site_packages):
    site, _ = site_packages
    spec_file = site / "pystiffsens" / "juliapkg.json"
    local = json.loads(spec_file.read_text())["packages"]["PyStiffSens"]
    package = (spec_file.parent / local["path"]).resolve()
    assert package == (site / "pystiffsens" / "julia").resolve()
    assert package.is_relative_to(site.resolve())
    project = (package / "Project.toml").read_text()
    assert f'uuid = "{local["uuid"]}"' in project and 'name = "PyStiffSens"' in project
    module = (package / "src" / "PyStiffSens.jl").read_text()
    included = re.findall(r'^include\("([^"]+)"\)', module, flags=re.MULTILINE)
    assert included and all((package / "src" / name).is_file() for name in included)
    assert (package / "ext" / "PyStiffSensCUDAExt.jl").is_file()


def test_juliapkg_finds_the_installed_package_in_site_packages(site_packages, monkeypatch, tmp_path):
    deps = pytest.importorskip("juliapkg.deps")
    from juliapkg.state import STATE

    site, _ = site_packages
    # only the unpacked wheel: no editable finder of this checkout, no user-added packages
    monkeypatch.setattr(sys, "path", [str(site)])
    monkeypatch.setattr(deps, "editable_deps_files", lambda: [])
    monkeypatch.setitem(STATE, "deps", str(tmp_path / "pyjuliapkg" / "juliapkg.json"))
    _, packages = deps.find_requirements()
    (local,) = [p for p in packages if p.name == "PyStiffSens"]
    assert local.dev and pathlib.Path(local.path).resolve() == (site / "pystiffsens" / "julia").resolve()
    assert not {"CUDA", "DiffEqGPU"} & {p.name for p in packages}


def test_the_wheel_holds_the_julia_backend_at_its_new_place(site_packages):
    _, names = site_packages
    modules = {n for n in names if n.startswith("pystiffsens/backends/julia/") and n.endswith(".py")}
    expected = {f"pystiffsens/backends/julia/{name}.py"
                for name in ("__init__", "_runtime", "api", "backend", "convert", "names")}
    assert expected <= modules
    assert not any(n.startswith("pystiffsens/julia_backend/") for n in names)


def test_the_installed_backend_finds_juliapkg_json_and_the_julia_package(site_packages):
    """``_runtime`` locates both from its own file (``parents[2]``), so they must sit where it looks."""
    site, _ = site_packages
    code = (
        "import json, pystiffsens\n"
        "from pystiffsens.backends.julia import _runtime as r\n"
        "print(json.dumps([pystiffsens.__file__, str(r.JULIAPKG_JSON), str(r.JULIA_PACKAGE_DIR), r.julia_versions()]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site), "PYSTIFFSENS_NO_COMPILATION_CACHE": "1", "JAX_PLATFORMS": "cpu"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env,
                         cwd=site, check=False)
    assert run.returncode == 0, run.stderr
    package_file, juliapkg_json, julia_dir, versions = json.loads(run.stdout.strip().splitlines()[-1])
    installed = (site / "pystiffsens").resolve()
    assert pathlib.Path(package_file).resolve().parent == installed
    assert pathlib.Path(juliapkg_json) == installed / "juliapkg.json" and pathlib.Path(juliapkg_json).is_file()
    assert pathlib.Path(julia_dir) == installed / "julia" and (pathlib.Path(julia_dir) / "Project.toml").is_file()
    assert versions == json.loads((installed / "juliapkg.json").read_text())["julia"]

