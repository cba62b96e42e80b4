"""The distributions release in lockstep: one version, and exact pins on each other.

stepframe-core and the first-party plugins (each a pyproject.toml one folder below the
repository root) share one version, and a plugin requires the core and stepframe-docker
at exactly that version: ``stepframe-core>=0.1`` would let any later core pair with a
plugin never tested against it.  The example plugin (examples/plugins/stepframe-policy)
stands for a third-party plugin, which is not released with the core: it keeps its own
version and a range on the core, which must admit the core of this checkout.

``nox -s bump -- X.Y.Z`` (tools/bump_version.py) changes them all; tested here on a copy.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parent.parent
BUMP = ROOT / "tools" / "bump_version.py"
# Folders that hold no distribution of this repository (environments, build output).
NOT_SOURCE = {".git", ".nox", ".venv", "build", "dist", "node_modules", ".stepframe"}
VERSION_LINE = re.compile(r'^__version__ = "([^"]*)"$', re.MULTILINE)


def _pyprojects(root: Path) -> list[Path]:
    found = []
    for folder, subfolders, files in os.walk(root):
        # Pruned, not filtered afterwards: .nox holds whole environments, and the temporary
        # folders of tests running meanwhile, which come and go during a walk.
        subfolders[:] = [name for name in subfolders if name not in NOT_SOURCE]
        if "pyproject.toml" in files:
            found.append(Path(folder) / "pyproject.toml")
    return sorted(found)


def _project(pyproject: Path) -> dict[str, Any]:
    # tomlkit, not tomllib (3.11+): these tests run on Python 3.10 too.
    return tomlkit.parse(pyproject.read_text()).unwrap()


def _version(pyproject: Path) -> str:
    """The version hatchling will build: static, or ``__version__`` of [tool.hatch.version]."""
    config = _project(pyproject)
    if "version" in config["project"]:
        return str(config["project"]["version"])
    source = pyproject.parent / config["tool"]["hatch"]["version"]["path"]
    found = VERSION_LINE.findall(source.read_text())
    assert len(found) == 1, f'{source}: one `__version__ = "..."` line expected, found {found}'
    return str(found[0])


def _lockstep(root: Path) -> dict[str, Path]:
    return {
        _project(path)["project"]["name"]: path
        for path in _pyprojects(root)
        if path.parent.parent == root
    }


def _requirements(pyproject: Path) -> list[Requirement]:
    project = _project(pyproject)["project"]
    texts = list(project.get("dependencies", ()))
    for extra in project.get("optional-dependencies", {}).values():
        texts += extra
    return [Requirement(text) for text in texts]


def _disagreements(root: Path) -> list[str]:
    """Every way the versions and pins under ``root`` break the lockstep, one line each."""
    lockstep = _lockstep(root)
    versions = {name: _version(path) for name, path in lockstep.items()}
    problems = []
    if len(set(versions.values())) != 1:
        problems.append(f"lockstep distributions disagree on their version: {versions}")
    version = versions["stepframe-core"]
    for pyproject in _pyprojects(root):
        name = _project(pyproject)["project"]["name"]
        for requirement in _requirements(pyproject):
            if requirement.name not in lockstep or requirement.name == name:
                continue
            where = f"{pyproject.relative_to(root)}: {requirement}"
            if name in lockstep and requirement.specifier != SpecifierSet(f"=={version}"):
                # A bare `stepframe-core[testing]` in an extra rides along with the pin
                # in `dependencies`; any version range is a loose pin.
                if str(requirement.specifier):
                    problems.append(f"{where} should be =={version}")
            elif name not in lockstep and not requirement.specifier.contains(version, True):
                problems.append(f"{where} does not admit this checkout's {version}")
        if name in lockstep and name != "stepframe-core":
            pinned = {r.name for r in _requirements(pyproject) if str(r.specifier)}
            if "stepframe-core" not in pinned:
                problems.append(f"{pyproject.relative_to(root)}: no pin on stepframe-core")
    return problems


def test_the_first_party_distributions_are_the_ones_expected() -> None:
    # A new plugin distribution joins this list, and so the lockstep, by its folder alone.
    assert set(_lockstep(ROOT)) >= {
        "stepframe-core",
        "stepframe-docker",
        "stepframe-aws",
        "stepframe-gcp",
        "stepframe-azure",
    }
    assert "stepframe-policy" not in _lockstep(ROOT)


def test_versions_and_pins_agree() -> None:
    assert _disagreements(ROOT) == []


def test_the_plugins_pin_the_core_and_docker_exactly() -> None:
    version = _version(ROOT / "stepframe-core" / "pyproject.toml")
    aws = {str(r) for r in _requirements(ROOT / "stepframe-aws" / "pyproject.toml")}
    docker = {str(r) for r in _requirements(ROOT / "stepframe-docker" / "pyproject.toml")}
    assert {f"stepframe-core=={version}", f"stepframe-docker=={version}"} <= aws
    assert f"stepframe-core=={version}" in docker


def test_a_loose_pin_is_found(tmp_path: Path) -> None:
    root = _copy_projects(tmp_path)
    pyproject = root / "stepframe-aws" / "pyproject.toml"
    version = _version(pyproject)
    pyproject.write_text(
        pyproject.read_text().replace(f'"stepframe-core=={version}"', '"stepframe-core>=0.1"')
    )
    assert _disagreements(root) == [
        f"stepframe-aws/pyproject.toml: stepframe-core>=0.1 should be =={version}"
    ]


def _copy_projects(tmp_path: Path) -> Path:
    """The pyproject.toml files and the files their versions live in, under tmp_path."""
    root = tmp_path / "repo"
    for pyproject in _pyprojects(ROOT):
        files = [pyproject]
        hatch_version = _project(pyproject).get("tool", {}).get("hatch", {}).get("version")
        if hatch_version:
            files.append(pyproject.parent / hatch_version["path"])
        for path in files:
            copy = root / path.relative_to(ROOT)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
    return root


def _bump(root: Path, version: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BUMP), "--root", str(root), version],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_bump_rewrites_every_version_and_pin(tmp_path: Path) -> None:
    root = _copy_projects(tmp_path)
    before = {path: path.read_text() for path in root.rglob("*") if path.is_file()}

    result = _bump(root, "7.8.9rc1")

    assert result.returncode == 0, result.stderr
    assert _disagreements(root) == []
    assert {_version(path) for path in _lockstep(root).values()} == {"7.8.9rc1"}
    aws = {str(r) for r in _requirements(root / "stepframe-aws" / "pyproject.toml")}
    assert {"stepframe-core==7.8.9rc1", "stepframe-docker==7.8.9rc1"} <= aws
    # The example plugin is not in the lockstep: untouched.
    for path, text in before.items():
        if "examples" in path.relative_to(root).parts:
            assert path.read_text() == text
    # Nothing but the version strings changed: comments and layout are kept.
    old = _version(ROOT / "stepframe-core" / "pyproject.toml")
    for path, text in before.items():
        assert path.read_text().replace("7.8.9rc1", old) == text, path


@pytest.mark.parametrize("version", ["1.2", "0.2.0"])
def test_bump_twice_is_the_same_as_once(tmp_path: Path, version: str) -> None:
    root = _copy_projects(tmp_path)
    assert _bump(root, version).returncode == 0
    after_once = {path: path.read_text() for path in root.rglob("*") if path.is_file()}
    again = _bump(root, version)
    assert again.returncode == 0
    assert again.stdout == ""
    assert {path: path.read_text() for path in root.rglob("*") if path.is_file()} == after_once


@pytest.mark.parametrize("version", ["", "v1.2.3", "1.2.x", "1.2.3 ", "latest"])
def test_bump_refuses_a_malformed_version_in_one_line(tmp_path: Path, version: str) -> None:
    root = _copy_projects(tmp_path)
    before = {path: path.read_text() for path in root.rglob("*") if path.is_file()}
    result = _bump(root, version)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "like 0.2.0" in result.stderr
    assert {path: path.read_text() for path in root.rglob("*") if path.is_file()} == before
