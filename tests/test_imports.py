"""``import stepframe`` stays cheap: no cloud SDKs, no numpy, no rich.

Checked in a fresh interpreter, since this test process may have imported anything.
Loading every installed plugin is held to the same rule: a plugin module only defines
hookimpls and imports its heavy libraries inside them (DESIGN.md, "Plugins and their
loading").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("boto3", "botocore", "docker", "sagemaker", "numpy", "rich")


def _modules_after(code: str) -> set[str]:
    """The top-level names in ``sys.modules`` after running ``code`` in a new interpreter."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPFRAME_")}
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    last_line = result.stdout.strip().splitlines()[-1]
    return {name.partition(".")[0] for name in json.loads(last_line)}


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("import stepframe", id="import stepframe"),
        pytest.param("import stepframe._cli.main", id="import the CLI"),
        pytest.param(
            "from stepframe._plugins.manager import load_plugins\n"
            "assert load_plugins().infos, 'no plugins loaded'",
            id="load every installed plugin",
        ),
    ],
)
def test_no_heavy_imports(code: str) -> None:
    modules = _modules_after(code)
    assert "stepframe" in modules
    assert not modules & set(HEAVY), f"imported {sorted(modules & set(HEAVY))}"


def test_the_check_would_see_a_heavy_import() -> None:
    # Guard against a check that can never fail.
    pytest.importorskip("numpy")
    assert "numpy" in _modules_after("import stepframe\nimport numpy")
