"""Bad input that only Azure can tell, through ``stepframe run`` as a user runs it.

A wrong (well-formed) subscription, resource group or workspace, a compute that does not
exist, a principal without the role: none of them can be known by the offline
pre-flight, so each is found when the step is submitted, after its image is built
(stepframe-docker on the registry at 127.0.0.1:5000; one image, built once for all the
cases).  An expired access token is found before that, when the run authenticates its
connectors (test_azureml_auth_before_build.py).  Each must end the run with one line
naming the setting and the fix, no traceback and no secret.  The AzureML job service
(_azureml_service.py) is told which workspace and computes exist and which token has no
role.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _azureml_service import AzureMLService
from _docker_host import docker_host  # noqa: F401  (the fixture)

from stepframe.testing import StepframeCli

SUBSCRIPTION = "0b1f6471-1bf0-4dda-aec3-777788889999"
WORKSPACE_ID = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/bad-input-rg"
    "/providers/Microsoft.MachineLearningServices/workspaces/bad-input-ws"
)

PIPELINE = """
from stepframe import pipeline, step


@step(operator="azureml", settings={{"azureml": {settings}}})
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
token = "env:BAD_INPUT_TOKEN"

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
resource_group = "{resource_group}"
workspace = "{workspace}"
endpoint = "{service}"
history_endpoint = "{service}"

[stacks.azure]
artifact_store = "local"
image_builder = "docker"
container_registry = "local"
step_operators = ["azureml"]
"""


def token(claims: dict[str, Any]) -> str:
    """An access token as Entra would shape it (unsigned: the operator reads who it names
    and when it expires; the job service checks none of it)."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.signature"


USER = {"oid": "5e5e5e5e-0000-1111-2222-333333333333", "upn": "ada@contoso.com"}


@pytest.fixture
def service() -> Iterator[AzureMLService]:
    started = AzureMLService(run_containers=False).start()
    started.workspaces.add(WORKSPACE_ID)
    started.computes.add("gpu-cluster")
    try:
        yield started
    finally:
        started.stop()


def run(
    tmp_path: Path,
    host: dict[str, str],
    service: AzureMLService,
    access_token: str,
    settings: dict[str, Any] | None = None,
    coordinates: dict[str, str] | None = None,
) -> str:
    """``stepframe run`` of a one-step pipeline on azureml; the failed run's output."""
    cli = StepframeCli(
        tmp_path / "project",
        {"BAD_INPUT_TOKEN": access_token, "STEPFRAME_LOAD_PLUGINS": "azure,docker"},
        timeout=600,
    )
    where = {
        "subscription": SUBSCRIPTION,
        "resource_group": "bad-input-rg",
        "workspace": "bad-input-ws",
        **(coordinates or {}),
    }
    (cli.project / "stepframe.toml").write_text(
        STACK.format(store=tmp_path / "store", service=service.url, **where, **host)
    )
    (cli.project / "pipeline.py").write_text(PIPELINE.format(settings=settings or {}))
    result = cli("run", "pipeline.py")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert access_token not in output
    assert service.jobs == {}
    return output


def the_failure(output: str) -> str:
    """The one line the run ends with for the failed step."""
    [line] = [line for line in output.splitlines() if line.startswith("step 'train' failed: ")]
    return line


@pytest.mark.parametrize(
    ("coordinates", "expected"),
    [
        ({"subscription": "0b1f6471-1bf0-4dda-aec3-000000000000"},
         "step operator 'azureml': subscription_id '0b1f6471-1bf0-4dda-aec3-000000000000' is"
         " no subscription the connector's principal can see"),
        ({"resource_group": "bad-input-rg2"},
         "step operator 'azureml': resource_group 'bad-input-rg2' does not exist in"
         " subscription"),
        ({"workspace": "bad-input-ws2"},
         "step operator 'azureml': workspace 'bad-input-ws2' does not exist in resource group"
         " bad-input-rg"),
    ],
    ids=["subscription", "resource-group", "workspace"],
)  # fmt: skip
def test_a_wrong_workspace_coordinate_ends_the_run_in_one_line(
    tmp_path: Path,
    docker_host: dict[str, str],  # noqa: F811
    service: AzureMLService,
    coordinates: dict[str, str],
    expected: str,
) -> None:
    valid = token({**USER, "exp": int(time.time()) + 3600})

    line = the_failure(run(tmp_path, docker_host, service, valid, coordinates=coordinates))

    assert expected in line
    assert "`stepframe step-operator update azureml --" in line


def test_a_compute_that_does_not_exist_ends_the_run_in_one_line(
    tmp_path: Path,
    docker_host: dict[str, str],  # noqa: F811
    service: AzureMLService,
) -> None:
    valid = token({**USER, "exp": int(time.time()) + 3600})
    settings = {"mode": "cluster", "compute_name": "gpu-clustr"}

    line = the_failure(run(tmp_path, docker_host, service, valid, settings))

    assert "settings.compute_name 'gpu-clustr': AzureML refused it" in line
    assert "`az ml compute list --resource-group bad-input-rg" in line


def test_a_principal_without_the_role_ends_the_run_naming_the_grant(
    tmp_path: Path,
    docker_host: dict[str, str],  # noqa: F811
    service: AzureMLService,
) -> None:
    denied = token({**USER, "exp": int(time.time()) + 3600})
    service.denied_tokens.add(denied)

    line = the_failure(run(tmp_path, docker_host, service, denied))

    assert "user ada@contoso.com (object id 5e5e5e5e-0000-1111-2222-333333333333)" in line
    assert (
        "`az role assignment create --assignee 5e5e5e5e-0000-1111-2222-333333333333 --role "
        f'"AzureML Data Scientist" --scope {WORKSPACE_ID}`' in line
    )
