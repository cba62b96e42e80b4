"""The Azurite fixture without Azurite: a developer's run skips the Blob tests, a CI run (or
one that asks for Azurite) fails them -- an inner pytest in a child process, with no
azurite-blob anywhere it looks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

INNER_TEST = """\
def test_needs_azurite(azurite_server):
    pass
"""


@pytest.mark.parametrize(
    ("variables", "outcome"),
    [
        ({}, "1 skipped"),
        ({"CI": "true"}, "1 error"),
        ({"STEPFRAME_REQUIRE_AZURITE": "1"}, "1 error"),
    ],
    ids=["developer", "ci", "required"],
)
def test_a_missing_azurite_skips_except_where_it_is_required(
    tmp_path: Path, variables: dict[str, str], outcome: str
) -> None:
    tests = Path(__file__).parent
    (tmp_path / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {str(tests)!r})\npytest_plugins = ['_azurite']\n"
    )
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("CI", "STEPFRAME_REQUIRE_AZURITE", "STEPFRAME_AZURITE")
    }
    env.update(
        variables,
        STEPFRAME_SERVICES_DIR=str(tmp_path / "no-services"),
        PATH=str(Path(sys.executable).parent),  # python, pytest: no azurite-blob
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert outcome in result.stdout, result.stdout + result.stderr
    assert "azurite-blob not found" in result.stdout
