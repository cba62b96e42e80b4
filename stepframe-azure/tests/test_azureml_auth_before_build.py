"""An expired access token ends ``stepframe run`` before the step's image is built.

The run asks every connector its steps use right after the pre-flight, so the token's
expiry is reported in one line (exit status 2) without the image build (stepframe-docker,
pushing to the registry on 127.0.0.1:5000) that used to come first.  The proof that
nothing was built: the registry has no repository in this test's own namespace.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _azureml_service import AzureMLService
from _docker_host import docker_host  # noqa: F401  (the fixture)

from stepframe.testing import StepframeCli

SUBSCRIPTION = "0b1f6471-1bf0-4dda-aec3-777788889999"
WORKSPACE_ID = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/auth-first-rg"
    "/providers/Microsoft.MachineLearningServices/workspaces/auth-first-ws"
)

PIPELINE = """
from stepframe import pipeline, step


@step(operator="azureml")
def train() -> int:
    return 1


@pipeline
def fit():
    train()
"""

STACK = """
active_stack = "azure"

[connectors.azure]
flavor = "azure"
auth_method = "access-token"
token = "env:AUTH_FIRST_TOKEN"

[artifact_stores.local]
flavor = "local"
path = "{store}"

[image_builders.docker]
flavor = "docker"
parent_image = "{base_image}"

[container_registries.local]
flavor = "default"
uri = "{registry}"

[step_operators.azureml]
flavor = "azureml"
connector = "azure"
subscription_id = "{subscription}"
resource_group = "auth-first-rg"
workspace = "auth-first-ws"
endpoint = "{service}"
history_endpoint = "{service}"

[stacks.azure]
artifact_store = "local"
image_builder = "docker"
container_registry = "local"
step_operators = ["azureml"]
"""

USER = {"oid": "5e5e5e5e-0000-1111-2222-333333333333", "upn": "ada@contoso.com"}


def token(claims: dict[str, Any]) -> str:
    """An access token as Entra would shape it (unsigned: the connector reads who it names
    and when it expires)."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.signature"


def repositories_under(registry_host: str, namespace: str) -> list[str]:
    """The registry's repositories under ``namespace/``: its catalog, read from the first
    name after ``namespace`` in order (every name under it sorts right there)."""
    url = f"http://{registry_host}/v2/_catalog?n=100&last={namespace}"
    with urllib.request.urlopen(url, timeout=10) as answer:
        names = json.load(answer)["repositories"] or []
    return [name for name in names if name.startswith(f"{namespace}/")]


@pytest.fixture
def service() -> Iterator[AzureMLService]:
    started = AzureMLService(run_containers=False).start()
    started.workspaces.add(WORKSPACE_ID)
    try:
        yield started
    finally:
        started.stop()


def test_an_expired_token_ends_the_run_before_the_image_is_built(
    tmp_path: Path,
    docker_host: dict[str, str],  # noqa: F811
    service: AzureMLService,
) -> None:
    expired = token({**USER, "exp": int(time.time()) - 600})
    registry_host, _, _ = docker_host["registry"].partition("/")
    namespace = f"sftest-auth-first-{uuid.uuid4().hex[:8]}"
    cli = StepframeCli(
        tmp_path / "project",
        {"AUTH_FIRST_TOKEN": expired},
        plugins="azure,docker",
        timeout=600,
    )
    (cli.project / "stepframe.toml").write_text(
        STACK.format(
            store=tmp_path / "store",
            base_image=docker_host["base_image"],
            registry=f"{registry_host}/{namespace}",
            subscription=SUBSCRIPTION,
            service=service.url,
        )
    )
    (cli.project / "pipeline.py").write_text(PIPELINE)

    result = cli("run", "pipeline.py")

    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    [line] = result.stderr.splitlines()
    assert line.startswith(
        "stepframe: error: connector 'azure' (access-token, user ada@contoso.com"
    )
    assert "the token expired" in line
    assert '`export AUTH_FIRST_TOKEN="$(az account get-access-token' in line
    assert "Traceback" not in output
    assert expired not in output
    # Nothing built, pushed, submitted or recorded.
    assert repositories_under(registry_host, namespace) == []
    assert service.requests == []
    assert service.jobs == {}
    assert not (cli.project / ".stepframe" / "runs.db").exists()
