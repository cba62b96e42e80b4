"""Smoke test of whatever plugins are installed: each imports, and `stepframe plugins` lists
every one of them without a warning.

Every nox combination session runs it, so it checks exactly the distributions that
combination installed (the core alone, the core with the example plugin, ...).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from importlib import metadata

import pytest

from stepframe._plugins.manager import core_requirement

ENTRY_POINTS = sorted(metadata.entry_points(group="stepframe"), key=lambda ep: ep.name)


def _distribution(entry_point: metadata.EntryPoint) -> str | None:
    return entry_point.dist.metadata["Name"] if entry_point.dist is not None else None


def test_the_core_plugins_are_installed() -> None:
    core = {ep.name for ep in ENTRY_POINTS if _distribution(ep) == "stepframe-core"}
    assert core == {"inprocess", "local", "local-artifact-store"}


@pytest.mark.parametrize(
    "entry_point", ENTRY_POINTS, ids=[f"{_distribution(ep)}:{ep.name}" for ep in ENTRY_POINTS]
)
def test_each_installed_plugin_imports(entry_point: metadata.EntryPoint) -> None:
    module = importlib.import_module(entry_point.module)
    assert module is not None


def test_stepframe_plugins_lists_every_installed_plugin_without_warnings() -> None:
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
    listed = {info["name"]: info for info in json.loads(result.stdout)}
    for entry_point in ENTRY_POINTS:
        info = listed.get(entry_point.name)
        assert info is not None, f"{entry_point.name} is installed but not listed: {listed}"
        assert info["distribution"] == _distribution(entry_point)
        assert info["version"] == entry_point.dist.version if entry_point.dist else True
        assert info["hooks"], f"{entry_point.name} implements no hooks"


def test_every_plugin_distribution_says_which_core_it_needs() -> None:
    """Its Requires-Dist on stepframe-core, which version-skew warnings are based on."""
    plugin_distributions = {
        ep.dist.metadata["Name"]: ep.dist
        for ep in ENTRY_POINTS
        if ep.dist is not None and ep.dist.metadata["Name"] != "stepframe-core"
    }
    for name, dist in plugin_distributions.items():
        assert core_requirement(dist.requires or ()) is not None, (
            f"{name} does not require a stepframe-core version (dependencies = "
            '["stepframe-core>=..."] in its pyproject.toml)'
        )
