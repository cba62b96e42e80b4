"""The README's first command, end to end: the quickstart through the real ``stepframe`` CLI.

Each test runs in a fresh project folder (the working directory decides where
``.stepframe/`` goes), with the installed ``stepframe`` script in a subprocess, exactly
as a user would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "examples" / "quickstart" / "pipeline.py"
STEPS = ("load_data", "split", "fit_scaler", "train", "evaluate")


def _stepframe_command() -> list[str]:
    """The ``stepframe`` script of the environment running the tests."""
    script = Path(sys.executable).with_name("stepframe")
    if script.is_file():
        return [str(script)]
    found = shutil.which("stepframe")
    if found is None:
        pytest.fail("the `stepframe` command is not installed next to this Python or on PATH")
    return [found]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPFRAME_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def stepframe(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_stepframe_command(), *args],
        cwd=cwd,
        env=_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """Run the quickstart once in a new project: (project dir, run id, stdout)."""
    project = tmp_path_factory.mktemp("project")
    result = stepframe("run", str(QUICKSTART), cwd=project)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    started = re.search(r"^run (\S+) of pipeline 'quickstart'", result.stdout, re.MULTILINE)
    assert started, result.stdout
    return project, started.group(1), result.stdout


def test_quickstart_prints_its_metric(quickstart_run: tuple[Path, str, str]) -> None:
    _, run_id, stdout = quickstart_run
    metric = re.search(r"^evaluate \| test RMSE (\d+\.\d+), R\^2 (-?\d+\.\d+)$", stdout, re.M)
    assert metric, stdout
    rmse, r2 = float(metric.group(1)), float(metric.group(2))
    # The data is linear with noise of standard deviation 15: a model that learned
    # anything gets close to that.
    assert 10 < rmse < 25
    assert r2 > 0.95
    assert f"run {run_id} succeeded" in stdout
    # The local operator's step streams its own print()s back, prefixed by step name.
    assert "train | epoch 0:" in stdout


def test_quickstart_run_is_recorded_in_the_project(quickstart_run: tuple[Path, str, str]) -> None:
    project, run_id, _ = quickstart_run
    assert (project / ".stepframe" / "runs.db").is_file()

    listed = stepframe("runs", "list", cwd=project)
    assert listed.returncode == 0, listed.stderr
    row = next((line for line in listed.stdout.splitlines() if line.startswith(run_id)), None)
    assert row is not None, listed.stdout
    assert row.split()[1:3] == ["quickstart", "succeeded"]

    shown = stepframe("runs", "show", run_id, "--json", cwd=project)
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["run"]["status"] == "succeeded"
    steps = {s["step"]: s for s in document["steps"]}
    assert set(steps) == set(STEPS)
    assert all(s["status"] == "succeeded" for s in steps.values())
    assert steps["train"]["operator"] == "local"
    assert steps["load_data"]["operator"] == "inprocess"
    outputs = {(a["step"], a["output"]) for a in document["artifacts"]}
    assert ("evaluate", "output") in outputs


def test_quickstart_keeps_its_state_in_the_project(quickstart_run: tuple[Path, str, str]) -> None:
    # Artifacts go under the project the command ran in, never next to the example.
    project, run_id, _ = quickstart_run
    shown = stepframe("runs", "show", run_id, "--json", cwd=project)
    artifacts = json.loads(shown.stdout)["artifacts"]
    assert artifacts
    store = (project / ".stepframe" / "artifacts").resolve().as_uri() + "/"
    for artifact in artifacts:
        assert artifact["uri"].startswith(store), artifact["uri"]
        assert artifact["sha256"] and artifact["size"] > 0
