"""stepframe's step operator conformance kit, run against ``sagemaker`` in local mode.

Each test's jobs run for real: an image built by stepframe-docker from the test's code
root, run by the SageMaker SDK's local mode through Docker Compose, with the launch
manifests, inputs and outputs on moto's S3 (a bucket per test; moto is reset after each).
Submit, poll (logs from a byte cursor), cancel (the runner's process group and the
job's containers), failures with the remote traceback and handles that survive JSON are
all checked through the plugin's hooks, the way the core calls them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import stepframe_docker
from stepframe import Component, ComponentKind, ImageRef, ImageRequest, Plugins
from stepframe.testing import StepOperatorSuite
from stepframe_aws._sagemaker.config import SageMakerOperatorConfig
from stepframe_docker import ContainerRegistryConfig, DockerBuilderConfig, DockerSettings

ROLE = "arn:aws:iam::123456789012:role/stepframe-sagemaker"


class TestSageMakerLocalMode(StepOperatorSuite):
    flavor = "sagemaker"
    plugin_names = ("aws", "docker")
    max_job_name_length = 63
    # The SDK's import (~3 s) and Compose come before the step's first line.
    job_timeout = 180.0
    # test_sagemaker_local_e2e.py runs a whole pipeline (through the CLI, as a user
    # would); the kit's own pipeline run would build and run a second image for nothing.
    supports_pipeline_run = False

    registry_uri = ""
    base_image_name = ""
    bucket = ""
    endpoint = ""

    @pytest.fixture(autouse=True)
    def _local_mode(self, local_mode_host: dict[str, str], aws_environment: str) -> Iterator[None]:
        import boto3

        self.registry_uri = local_mode_host["registry"]
        self.base_image_name = local_mode_host["base_image"]
        self.endpoint = aws_environment
        self.bucket = f"sf-kit-{uuid.uuid4().hex[:8]}"
        boto3.client("s3").create_bucket(Bucket=self.bucket)
        stepframe_docker.forget_builds()
        yield
        stepframe_docker.forget_builds()

    def make_operator(self, plugins: Plugins, tmp_path: Path | None = None) -> Component:
        config = SageMakerOperatorConfig(execution_role=ROLE, instance_type="local")
        return Component(ComponentKind.STEP_OPERATOR, "sagemaker", "sagemaker", config)

    def step_settings(self) -> Mapping[str, Any]:
        # The job reaches moto's S3 on the host network (the SDK passes the session's
        # endpoint as AWS_ENDPOINT_URL_S3 as well).
        return {"environment": {"AWS_ENDPOINT_URL": self.endpoint}}

    def artifact_store_uri(self, project_root: Path) -> str:
        return f"s3://{self.bucket}/kit"

    def make_image(self, plugins: Plugins, code_root: Path) -> ImageRef | None:
        builder = Component(
            ComponentKind.IMAGE_BUILDER,
            "docker",
            "docker",
            DockerBuilderConfig(parent_image=self.base_image_name),
        )
        registry = Component(
            ComponentKind.CONTAINER_REGISTRY,
            "local",
            "default",
            ContainerRegistryConfig(self.registry_uri),
        )
        request = ImageRequest(
            code_root=str(code_root),
            target_registry=registry,
            settings=DockerSettings(parent_image=self.base_image_name),
        )
        return plugins.hooks.build_image(request, builder)
