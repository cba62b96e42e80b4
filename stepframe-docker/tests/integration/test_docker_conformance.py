"""stepframe's conformance kit (stepframe.testing) run against the docker flavors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import stepframe_docker
from stepframe import Component, ComponentKind, ImageRef, ImageRequest, Plugins
from stepframe.testing import ImageBuilderSuite, StepOperatorSuite
from stepframe_docker import ContainerRegistryConfig, DockerBuilderConfig


class _Docker:
    """The engine, registry and base image from conftest.py, for the suites' hooks."""

    registry_uri = ""
    base_image_name = ""

    @pytest.fixture(autouse=True)
    def _docker(self, registry: str, base_image: str) -> Iterator[None]:
        self.registry_uri = registry
        self.base_image_name = base_image
        stepframe_docker.forget_builds()
        yield
        stepframe_docker.forget_builds()

    def _builder(self) -> Component:
        config = DockerBuilderConfig(parent_image=self.base_image_name)
        return Component(ComponentKind.IMAGE_BUILDER, "docker", "docker", config)

    def _registry(self) -> Component:
        config = ContainerRegistryConfig(self.registry_uri)
        return Component(ComponentKind.CONTAINER_REGISTRY, "local", "default", config)


class TestDockerImageBuilder(_Docker, ImageBuilderSuite):
    flavor = "docker"
    plugin_names = ("docker",)

    def make_builder(self, plugins: Plugins) -> Component:
        return self._builder()

    def make_request(self, code_root: Path, **changes: Any) -> ImageRequest:
        return ImageRequest(code_root=str(code_root), target_registry=self._registry(), **changes)

    def count_builds(self, plugins: Plugins, builder: Component) -> int | None:
        return sum(report.action == "built" for report in stepframe_docker.build_reports())


class TestDockerStepOperator(_Docker, StepOperatorSuite):
    flavor = "docker"
    plugin_names = ("docker",)
    sleep_seconds = 4.0
    supports_find_job = True  # by the container's name, the launch's job name

    def make_image(self, plugins: Plugins, code_root: Path) -> ImageRef | None:
        request = ImageRequest(code_root=str(code_root), target_registry=self._registry())
        return plugins.hooks.build_image(request, self._builder())

    def stack_config(self, tmp_path: Path | None = None) -> str | None:
        return f"""\
active_stack = "containers"

[image_builders.docker]
flavor = "docker"
parent_image = "{self.base_image_name}"

[container_registries.local]
flavor = "default"
uri = "{self.registry_uri}"

[step_operators.docker]
flavor = "docker"

[stacks.containers]
image_builder = "docker"
container_registry = "local"
step_operators = ["docker"]
"""
