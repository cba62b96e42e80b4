"""Every first-party distribution is in every list that enumerates them.

A new plugin distribution (a folder with a pyproject.toml one level below the repository
root, as stepframe-gcp and stepframe-azure joined) must be built and installed alone by
`nox -s wheels`, installed by the plugin combinations, measured for coverage with a floor,
and have its public names pinned.  Those lists are written out by hand, so this test reads
them (from the files, without running nox) and names the distribution a list lacks.
"""

from __future__ import annotations

import ast
import configparser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = "stepframe-core"


def _distributions() -> dict[str, str]:
    """Distribution name (its folder) -> its import package (the one below ``src``)."""
    found = {}
    for pyproject in sorted(ROOT.glob("*/pyproject.toml")):
        packages = [init.parent.name for init in pyproject.parent.glob("src/*/__init__.py")]
        assert len(packages) == 1, f"{pyproject.parent.name}: one package under src/ expected"
        found[pyproject.parent.name] = packages[0]
    return found


DISTRIBUTIONS = _distributions()
PLUGINS = sorted(name for name in DISTRIBUTIONS if name != CORE)


def _assigned(path: Path, name: str) -> ast.expr:
    """The value assigned to the module-level ``name`` in ``path``."""
    for node in ast.parse(path.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            value = getattr(node, "value", None)
            assert isinstance(value, ast.expr), f"{path.name}: {name} has no value"
            return value
    raise AssertionError(f"{path.relative_to(ROOT)} assigns no {name}")


def _keys(path: Path, name: str) -> set[str]:
    value = _assigned(path, name)
    assert isinstance(value, ast.Dict), f"{path.name}: {name} is not a dict literal"
    return {str(key.value) for key in value.keys if isinstance(key, ast.Constant)}


def _strings(path: Path, name: str, key: str) -> set[str]:
    value = _assigned(path, name)
    assert isinstance(value, ast.Dict)
    for k, v in zip(value.keys, value.values):
        if isinstance(k, ast.Constant) and k.value == key:
            return {str(e.value) for e in ast.walk(v) if isinstance(e, ast.Constant)}
    raise AssertionError(f"{path.name}: {name} has no {key!r}")


def test_the_repository_has_the_distributions_expected() -> None:
    assert {CORE, "stepframe-docker", "stepframe-aws", "stepframe-gcp"} <= set(DISTRIBUTIONS)


def test_nox_builds_installs_and_measures_every_distribution() -> None:
    noxfile = ROOT / "noxfile.py"
    short = {name.removeprefix("stepframe-") for name in PLUGINS}
    packages = set(DISTRIBUTIONS.values())
    assert set(DISTRIBUTIONS) - _keys(noxfile, "RELEASED") == set()
    assert set(PLUGINS) - _keys(noxfile, "WHEEL_CHECKS") == set()
    assert short - _keys(noxfile, "PLUGIN_DISTRIBUTIONS") == set()
    assert short - _strings(noxfile, "COMBINATIONS", "everything_plugins") == set()
    assert packages - _keys(noxfile, "COVERAGE_FLOORS") == set()


def test_coverage_measures_every_package() -> None:
    settings = configparser.ConfigParser()
    settings.read(ROOT / ".coveragerc")
    measured = set(settings["run"]["source_pkgs"].split())
    assert set(DISTRIBUTIONS.values()) - measured == set()


@pytest.mark.parametrize(
    ("path", "name", "key"),
    [
        ("tests/wheels/test_installed.py", "EXPECTED", "distribution"),
        ("tests/wheels/test_installed.py", "IMPORT_NAMES", "distribution"),
        ("tests/wheels/test_sdists.py", "PACKAGES", "wheel name"),
        ("tests/test_public_api.py", "PUBLIC_NAMES", "package"),
    ],
)
def test_the_tests_that_list_distributions_list_every_one(path: str, name: str, key: str) -> None:
    wanted = {
        "distribution": set(PLUGINS) if name == "EXPECTED" else set(DISTRIBUTIONS),
        "wheel name": {dist.replace("-", "_") for dist in DISTRIBUTIONS},
        "package": set(DISTRIBUTIONS.values()),
    }[key]
    assert wanted - _keys(ROOT / path, name) == set(), f"{path}: {name}"
