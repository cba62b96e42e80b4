"""What the built sdists and wheels hold: what a build and a user need, and nothing else.

An sdist holds the package (with ``py.typed``), the README its metadata points to, the
licence, ``pyproject.toml``, ``PKG-INFO`` and the ``.gitignore`` hatchling always copies
(a build from the sdist applies it); no tests, fixtures or caches.  `nox -s wheels`
builds each wheel from its sdist, which shows the sdist is enough to build from.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from pathlib import Path

import pytest

DIST = Path(os.environ.get("STEPFRAME_DIST_DIR", "dist"))
# Distribution -> its import package.
PACKAGES = {
    "stepframe_core": "stepframe",
    "stepframe_docker": "stepframe_docker",
    "stepframe_aws": "stepframe_aws",
    "stepframe_policy": "stepframe_policy",
    "stepframe_gcp": "stepframe_gcp",
    "stepframe_azure": "stepframe_azure",
}
SDIST_TOP_LEVEL = {"PKG-INFO", "pyproject.toml", "README.md", "LICENSE", ".gitignore"}


def _one(pattern: str) -> Path:
    found = sorted(DIST.glob(pattern))
    assert len(found) == 1, f"one {pattern} expected in {DIST}, found {found}"
    return found[0]


def _is_package_file(path: str) -> bool:
    parts = path.split("/")
    return (
        "__pycache__" not in parts
        and "tests" not in parts
        and (path.endswith(".py") or parts[-1] == "py.typed")
    )


@pytest.mark.parametrize("distribution", sorted(PACKAGES))
def test_the_sdist_holds_the_package_readme_and_licence_only(distribution: str) -> None:
    sdist = _one(f"{distribution}-*.tar.gz")
    prefix = sdist.name.removesuffix(".tar.gz") + "/"
    package = PACKAGES[distribution]
    with tarfile.open(sdist) as archive:
        members = [m.name.removeprefix(prefix) for m in archive.getmembers() if m.isfile()]

    unexpected = [
        m
        for m in members
        if m not in SDIST_TOP_LEVEL
        and not (m.startswith(f"src/{package}/") and _is_package_file(m))
    ]
    assert unexpected == []
    assert SDIST_TOP_LEVEL | {f"src/{package}/__init__.py", f"src/{package}/py.typed"} <= set(
        members
    )


@pytest.mark.parametrize("distribution", sorted(PACKAGES))
def test_the_wheel_holds_the_package_licence_and_metadata_only(distribution: str) -> None:
    wheel = _one(f"{distribution}-*-py3-none-any.whl")
    package = PACKAGES[distribution]
    info = "-".join(wheel.name.split("-")[:2]) + ".dist-info"
    with zipfile.ZipFile(wheel) as archive:
        members = archive.namelist()
        metadata = archive.read(f"{info}/METADATA").decode()

    unexpected = [
        m
        for m in members
        if not m.startswith(f"{info}/")
        and not (m.startswith(f"{package}/") and _is_package_file(m))
    ]
    assert unexpected == []
    assert {f"{package}/py.typed", f"{info}/licenses/LICENSE", f"{info}/entry_points.txt"} <= set(
        members
    )
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
