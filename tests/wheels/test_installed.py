"""One plugin installed alone from the wheel folder, as a user would: what came with it.

`nox -s wheels` runs this in a fresh virtual environment where it installed only
STEPFRAME_WHEELS_TARGET: the third-party dependencies from the package index first, then
the target with ``pip install --no-index --find-links DIST`` (pip's ``--report`` in
STEPFRAME_WHEELS_REPORT), so every first-party distribution can only have come from the
folder.  The plugin's conformance-kit tests run in the same pytest process.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from importlib import metadata
from pathlib import Path

import pytest

DIST = Path(os.environ.get("STEPFRAME_DIST_DIR", "dist")).resolve()
TARGET = os.environ.get("STEPFRAME_WHEELS_TARGET", "")
CORE_PLUGINS = {"inprocess", "local", "local-artifact-store"}
# What installing each plugin alone must bring: first-party distributions, and the
# plugins `stepframe plugins` then lists.
EXPECTED: dict[str, tuple[set[str], set[str]]] = {
    "stepframe-aws": (
        {"stepframe-core", "stepframe-docker", "stepframe-aws"},
        CORE_PLUGINS | {"docker", "aws"},
    ),
    "stepframe-docker": ({"stepframe-core", "stepframe-docker"}, CORE_PLUGINS | {"docker"}),
    "stepframe-policy": ({"stepframe-core", "stepframe-policy"}, CORE_PLUGINS | {"policy"}),
    "stepframe-gcp": (
        {"stepframe-core", "stepframe-docker", "stepframe-gcp"},
        CORE_PLUGINS | {"docker", "gcp"},
    ),
    "stepframe-azure": (
        {"stepframe-core", "stepframe-docker", "stepframe-azure"},
        CORE_PLUGINS | {"docker", "azure"},
    ),
}
IMPORT_NAMES = {
    "stepframe-core": "stepframe",
    "stepframe-docker": "stepframe_docker",
    "stepframe-aws": "stepframe_aws",
    "stepframe-policy": "stepframe_policy",
    "stepframe-gcp": "stepframe_gcp",
    "stepframe-azure": "stepframe_azure",
}


@pytest.fixture(scope="module")
def expected() -> tuple[set[str], set[str]]:
    assert TARGET in EXPECTED, f"STEPFRAME_WHEELS_TARGET={TARGET!r}: one of {sorted(EXPECTED)}"
    return EXPECTED[TARGET]


def _installed_first_party() -> dict[str, metadata.Distribution]:
    return {
        dist.metadata["Name"]: dist
        for dist in metadata.distributions()
        if dist.metadata["Name"].startswith("stepframe-")
    }


def test_the_first_party_installs_came_from_the_wheel_folder_only(
    expected: tuple[set[str], set[str]],
) -> None:
    """pip's report of the --no-index install: exactly the first-party closure, all wheels
    from the folder; the third-party dependencies were all there already."""
    report = json.loads(Path(os.environ["STEPFRAME_WHEELS_REPORT"]).read_text())
    sources = {
        item["metadata"]["name"]: urllib.parse.urlparse(item["download_info"]["url"])
        for item in report["install"]
    }
    assert set(sources) == expected[0]
    for name, url in sources.items():
        path = Path(urllib.request.url2pathname(url.path))
        assert url.scheme == "file" and path.parent == DIST, (name, url)
        assert path.suffix == ".whl", (name, path)


def test_the_target_brought_the_core_and_its_plugins_at_one_version(
    expected: tuple[set[str], set[str]],
) -> None:
    installed = _installed_first_party()
    assert set(installed) == expected[0]
    lockstep = {d.version for n, d in installed.items() if n != "stepframe-policy"}
    assert len(lockstep) == 1, {n: d.version for n, d in installed.items()}


def test_the_packages_import_from_this_environment_not_the_checkout(
    expected: tuple[set[str], set[str]],
) -> None:
    for name in expected[0]:
        module = importlib.import_module(IMPORT_NAMES[name])
        assert Path(str(module.__file__)).resolve().is_relative_to(Path(sys.prefix).resolve())


def test_stepframe_plugins_lists_exactly_the_expected_plugins(
    expected: tuple[set[str], set[str]],
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPFRAME_")}
    result = subprocess.run(
        [sys.executable, "-m", "stepframe", "plugins", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
    assert {plugin["name"] for plugin in json.loads(result.stdout)} == expected[1]


# The commands each first-party distribution declares (entry point group
# `stepframe.commands`), which `stepframe --help` lists from the wheel's metadata alone.
DECLARED_COMMANDS = {"stepframe-docker": {"image"}}


def test_help_lists_the_declared_commands_and_they_run(
    expected: tuple[set[str], set[str]],
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPFRAME_")}

    def stepframe(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stepframe", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    listed = stepframe("--help")
    assert listed.returncode == 0, listed.stderr
    for distribution in expected[0]:
        for command in DECLARED_COMMANDS.get(distribution, ()):
            lines = [line for line in listed.stdout.splitlines() if line.split()[:1] == [command]]
            assert lines and f"From {distribution}" in lines[0], listed.stdout
            ran = stepframe(command, "--help")
            assert ran.returncode == 0, ran.stderr
