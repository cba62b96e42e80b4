"""stepframe's step operator conformance kit, run against ``azureml``.

Each test's jobs run for real: an image built by stepframe-docker from the test's code
root and pushed to the registry on 127.0.0.1:5000; azure-mgmt-machinelearningservices'
client creating command jobs on the loopback AzureML job service (_azureml_service.py),
which judges every body by AzureML's generated REST models and runs the job's container
on the Docker engine (host network); the launch manifests, inputs and outputs in the
``azure-blob`` store on Azurite, which the container reaches through the
``AZURE_STORAGE_CONNECTION_STRING`` the step's settings give it (the emulator's published
development account).  Calls made without a connector's credentials (the kit's cancel
from another shell) take azure-identity's default chain: a service principal of the
loopback Entra ID (_token_service.py) through ``AZURE_CLIENT_*``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
from _azureml_service import AzureMLService
from _azurite import ACCOUNT, Azurite
from _docker_host import build_step_image, docker_host  # noqa: F401  (the fixture)
from _token_service import AzureService
from stepframe_azure._azureml.config import AzureMLOperatorConfig
from stepframe_azure._connector.config import MANAGEMENT_SCOPE

import stepframe_docker
from stepframe import (
    Component,
    ComponentKind,
    Credentials,
    ImageRef,
    Plugins,
    ResourceRequest,
)
from stepframe.testing import StepOperatorSuite

SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"


class TestAzureMLOperator(StepOperatorSuite):
    flavor = "azureml"
    plugin_names = ("azure", "docker")
    supports_find_job = True
    # AzureML's job names: ^[a-zA-Z0-9][a-zA-Z0-9\-_]{0,254}$.
    max_job_name_length: ClassVar[int | None] = 255
    # Each job starts a container of a fresh image; the first build installs the azure
    # libraries into it.
    job_timeout: ClassVar[float] = 300.0

    @pytest.fixture(autouse=True)
    def _services(
        self,
        docker_host: dict[str, str],  # noqa: F811
        azurite: Azurite,
        azureml_service: AzureMLService,
        azure: AzureService,
        monkeypatch: pytest.MonkeyPatch,
    ) -> Iterator[None]:
        tenant = azure.new_tenant()
        principal = azure.new_application(tenant, secret="kit-secret")
        monkeypatch.setenv("AZURE_TENANT_ID", tenant)
        monkeypatch.setenv("AZURE_CLIENT_ID", principal.client_id)
        monkeypatch.setenv("AZURE_CLIENT_SECRET", "kit-secret")
        monkeypatch.setenv("KIT_AZURE_TOKEN", "kit-pipeline-token")
        self.host = docker_host
        self.azurite = azurite
        self.service = azureml_service
        stepframe_docker.forget_builds()
        yield
        stepframe_docker.forget_builds()

    def operator_config(self) -> AzureMLOperatorConfig:
        return AzureMLOperatorConfig(
            subscription_id=SUBSCRIPTION,
            resource_group="kit-rg",
            workspace="kit-workspace",
            endpoint=self.service.url,
            history_endpoint=self.service.url,
        )

    def make_operator(self, plugins: Plugins, tmp_path: Path | None = None) -> Component:
        return Component(ComponentKind.STEP_OPERATOR, "azureml", "azureml", self.operator_config())

    def stack_config(self, tmp_path: Path | None = None) -> str | None:
        # A whole stack as a user writes it: the azure connector (a token), the azure-blob
        # store on Azurite, the docker builder and the local registry, the azureml
        # operator on the job service.
        return f"""
active_stack = "azureml-kit"

[connectors.azure]
flavor = "azure"
auth_method = "access-token"
token = "env:KIT_AZURE_TOKEN"

[artifact_stores.blob]
flavor = "azure-blob"
path = "az://{ACCOUNT}/{self.azurite.create_container()}/pipeline"

[image_builders.docker]
flavor = "docker"
parent_image = "{self.host["base_image"]}"

[container_registries.local]
flavor = "default"
uri = "{self.host["registry"]}"

[step_operators.azureml]
flavor = "azureml"
connector = "azure"
subscription_id = "{SUBSCRIPTION}"
resource_group = "kit-rg"
workspace = "kit-workspace"
endpoint = "{self.service.url}"
history_endpoint = "{self.service.url}"

[stacks.azureml-kit]
artifact_store = "blob"
image_builder = "docker"
container_registry = "local"
step_operators = ["azureml"]
"""

    def make_credentials(self, plugins: Plugins, operator: Component) -> Credentials | None:
        return Credentials(
            "azure",
            ResourceRequest("generic"),
            {"access_token": "kit-token", "scope": MANAGEMENT_SCOPE},
        )

    def step_settings(self) -> Mapping[str, Any]:
        # The job finds Azurite the way the store does here: the connection string.
        return {
            "environment": {"AZURE_STORAGE_CONNECTION_STRING": self.azurite.connection_string()}
        }

    def artifact_store_uri(self, project_root: Path) -> str:
        return f"az://{ACCOUNT}/{self.azurite.create_container()}/kit"

    def make_image(self, plugins: Plugins, code_root: Path) -> ImageRef | None:
        return build_step_image(plugins, self.host, code_root)
