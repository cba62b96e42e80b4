"""The ``azure-blob`` store through the command line, on Azurite: ``stepframe run`` keeps a
pipeline's artifacts in the container, and a wrong account, container or path stops the
run with one line naming it and the fix (exit 2, no traceback, no secret)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _azurite import KEY, Azurite

PIPELINE = """\
from stepframe import pipeline, step


@step
def numbers() -> list[int]:
    return [1, 2, 3]


@step
def total(values: list[int]) -> int:
    return sum(values)


@pipeline
def summing():
    total(numbers())
"""


def _run(project: Path, path: str, connection_string: str) -> subprocess.CompletedProcess[str]:
    (project / "stepframe.toml").write_text(
        f"""\
active_stack = "azure"

[artifact_stores.blob]
flavor = "azure-blob"
path = "{path}"

[stacks.azure]
artifact_store = "blob"
"""
    )
    (project / "pipeline.py").write_text(PIPELINE)
    env = {
        **os.environ,
        "AZURE_STORAGE_CONNECTION_STRING": connection_string,
        "STEPFRAME_LOAD_PLUGINS": "azure",
    }
    return subprocess.run(
        [sys.executable, "-m", "stepframe", "run", "pipeline.py"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_a_pipeline_keeps_its_artifacts_in_the_container(tmp_path: Path, azurite: Azurite) -> None:
    container = azurite.create_container()
    # The portal's https form of the path: the config keeps its az:// form.
    path = f"https://devstoreaccount1.blob.core.windows.net/{container}/team"
    result = _run(tmp_path, path, azurite.connection_string())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "succeeded: 2 succeeded" in result.stdout
    names = [b.name for b in azurite.service().get_container_client(container).list_blobs()]
    assert "team/.stepframe-artifact-store" in names
    assert any("/total/" in name for name in names), names


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("container", "storage account 'devstoreaccount1' has no container 'no-such-container'"),
        ("account", "there is no storage account 'wrongaccount'"),
        ("path", "'Bad_Container' is not a blob container name"),
    ],
)
def test_a_wrong_account_container_or_path_is_one_line(
    tmp_path: Path, azurite: Azurite, where: str, expected: str
) -> None:
    account = "wrongaccount" if where == "account" else "devstoreaccount1"
    path = {
        "container": "az://devstoreaccount1/no-such-container/team",
        "account": "az://wrongaccount/artifacts/team",
        "path": "az://devstoreaccount1/Bad_Container",
    }[where]
    endpoint = f"http://127.0.0.1:{azurite.port}/{account}"
    result = _run(tmp_path, path, azurite.connection_string(endpoint, account))
    assert result.returncode == 2, result.stdout + result.stderr
    # A config error comes under the core's "invalid configuration:" heading, one line per
    # problem.
    lines = [
        line
        for line in result.stderr.strip().splitlines()
        if line != "stepframe: error: invalid configuration:"
    ]
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "create it" in lines[0] or "write az://" in lines[0] or "lowercase" in lines[0]
    assert "Traceback" not in result.stderr
    assert KEY not in result.stderr + result.stdout
