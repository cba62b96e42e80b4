"""stepframe's step operator conformance kit, run against ``vertex``.

Each test's jobs run for real: an image built by stepframe-docker from the test's code
root and pushed to the registry on 127.0.0.1:5000; google-api-python-client's Vertex AI
client (built from the discovery document it ships) creating CustomJobs on the loopback
test service (_vertex_service.py), which validates every body against the discovery
schema and runs the chief's container spec on the Docker engine; the launch manifests,
inputs and outputs on fake-gcs-server, which the container reaches on the host network.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
from _token_service import TokenService
from _vertex_service import VertexService
from conftest import FakeGcs
from stepframe_gcp import VertexOperatorConfig

import stepframe_docker
from stepframe import (
    Component,
    ComponentKind,
    Credentials,
    ImageRef,
    ImageRequest,
    Plugins,
    ResourceRequest,
)
from stepframe.testing import StepOperatorSuite
from stepframe_docker import ContainerRegistryConfig, DockerBuilderConfig, DockerSettings


class TestVertexOperator(StepOperatorSuite):
    flavor = "vertex"
    plugin_names = ("gcp", "docker")
    supports_find_job = True
    max_job_name_length: ClassVar[int | None] = 128
    # Each job starts a container of a fresh image; the first build installs the google
    # libraries into it.
    job_timeout: ClassVar[float] = 300.0

    @pytest.fixture(autouse=True)
    def _services(
        self,
        docker_host: dict[str, str],
        gcs: FakeGcs,
        vertex_service: VertexService,
        token_service: TokenService,
        tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch,
    ) -> Iterator[None]:
        monkeypatch.setenv("KIT_GCP_TOKEN", "ya29.kit-pipeline")
        # Calls made without a connector's credentials (a cancel from another shell)
        # use Application Default Credentials: a key the loopback token service signs.
        key = tmp_path_factory.mktemp("adc") / "key.json"
        key.write_text(token_service.new_key())
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
        self.host = docker_host
        self.emulator = gcs
        self.service = vertex_service
        stepframe_docker.forget_builds()
        yield
        stepframe_docker.forget_builds()

    def make_operator(self, plugins: Plugins, tmp_path: Path | None = None) -> Component:
        config = VertexOperatorConfig(
            project="test-project",
            region="europe-west4",
            api_endpoint=self.service.url,
            logging_endpoint=self.service.url,
        )
        return Component(ComponentKind.STEP_OPERATOR, "vertex", "vertex", config)

    def stack_config(self, tmp_path: Path | None = None) -> str | None:
        # A whole stack as a user writes it: the gcp connector (a token), the gcs store,
        # the docker builder and the local registry, the vertex operator on the service.
        return f"""
active_stack = "vertex-kit"

[connectors.gcp]
flavor = "gcp"
auth_method = "oauth2-token"
token = "env:KIT_GCP_TOKEN"
project = "test-project"
region = "europe-west4"

[artifact_stores.gcs]
flavor = "gcs"
path = "gs://{self.emulator.create_bucket()}/pipeline"

[image_builders.docker]
flavor = "docker"
parent_image = "{self.host["base_image"]}"

[container_registries.local]
flavor = "default"
uri = "{self.host["registry"]}"

[step_operators.vertex]
flavor = "vertex"
connector = "gcp"
project = "test-project"
region = "europe-west4"
api_endpoint = "{self.service.url}"
logging_endpoint = "{self.service.url}"

[stacks.vertex-kit]
artifact_store = "gcs"
image_builder = "docker"
container_registry = "local"
step_operators = ["vertex"]
"""

    def make_credentials(self, plugins: Plugins, operator: Component) -> Credentials | None:
        return Credentials("gcp", ResourceRequest("generic"), {"access_token": "ya29.kit"})

    def step_settings(self) -> Mapping[str, Any]:
        # The job finds Cloud Storage where Google's clients look for an emulator.
        return {"environment": {"STORAGE_EMULATOR_HOST": self.emulator.url}}

    def artifact_store_uri(self, project_root: Path) -> str:
        return f"gs://{self.emulator.create_bucket()}/kit"

    def job_name_of(self, handle: Any, launch: Any) -> str:
        return str(self.service.jobs[handle.job_id].body["displayName"])

    def make_image(self, plugins: Plugins, code_root: Path) -> ImageRef | None:
        builder = Component(
            ComponentKind.IMAGE_BUILDER,
            "docker",
            "docker",
            DockerBuilderConfig(parent_image=self.host["base_image"]),
        )
        registry = Component(
            ComponentKind.CONTAINER_REGISTRY,
            "local",
            "default",
            ContainerRegistryConfig(self.host["registry"]),
        )
        request = ImageRequest(
            code_root=str(code_root),
            target_registry=registry,
            settings=DockerSettings(parent_image=self.host["base_image"]),
        )
        return plugins.hooks.build_image(request, builder)


class TestVertexLocalMode(TestVertexOperator):
    """The same suite with ``machine_type = "local"``: the CustomJob's container spec runs
    on the Docker engine through stepframe-docker's operator; the test service is never
    asked."""

    # The container is named by the launch's job name, which Docker does not limit to
    # Vertex AI's 128 characters.
    max_job_name_length: ClassVar[int | None] = None

    def step_settings(self) -> Mapping[str, Any]:
        return {**super().step_settings(), "machine_type": "local"}

    def job_name_of(self, handle: Any, launch: Any) -> str:
        return str(handle.data["docker"]["name"])

    @pytest.fixture(autouse=True)
    def _no_vertex_calls(self) -> Iterator[None]:
        yield
        assert [kind for kind, _, _ in self.service.requests] == []
