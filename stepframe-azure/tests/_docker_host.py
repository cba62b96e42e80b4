"""The Docker engine, the registry on 127.0.0.1:5000 and the base image, for tests whose
jobs run in containers (local mode, the AzureML test service's end-to-end runs).

Import the fixture into a test module: ``from _docker_host import docker_host``;
`build_step_image` is a kit suite's ``make_image`` on them.  Without
the services the tests skip, unless ``STEPFRAME_REQUIRE_DOCKER=1`` (CI) makes them fail.

stepframe-gcp's conftest.py keeps a copy (its cleanup also removes the Vertex test
service's containers): the only home both could import is public API (`stepframe.testing`
or `stepframe_docker`), and what this fixture knows (the registry on 127.0.0.1:5000, the
base image and `.ci/services.sh` of this repository's CI) is of no use to a plugin's users.
"""

from __future__ import annotations

import contextlib
import os
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from stepframe import Component, ComponentKind, ImageRef, ImageRequest, Plugins

__all__ = ["BASE_IMAGE", "REGISTRY", "build_step_image", "docker_host"]

REGISTRY = os.environ.get("STEPFRAME_TEST_REGISTRY", "127.0.0.1:5000")
BASE_IMAGE = os.environ.get("STEPFRAME_TEST_BASE_IMAGE", "stepframe-test-base:bookworm")
REQUIRE_DOCKER = os.environ.get("STEPFRAME_REQUIRE_DOCKER") == "1"


def _unavailable(what: str) -> None:
    how = "start them with `bash .ci/services.sh` (engine, registry on 127.0.0.1:5000, base image)"
    if REQUIRE_DOCKER:
        pytest.fail(f"STEPFRAME_REQUIRE_DOCKER=1 but {what}; {how}", pytrace=False)
    pytest.skip(f"{what} (set STEPFRAME_REQUIRE_DOCKER=1 to fail instead)")


@pytest.fixture(scope="session")
def docker_host() -> Iterator[dict[str, str]]:
    """``{"registry": URI, "base_image": NAME}``: a registry namespace of this session,
    whose images' local tags are removed at the end."""
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as error:
        _unavailable(f"no Docker engine answers ({error})")
    try:
        urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=5).close()
    except OSError as error:
        _unavailable(f"no container registry answers on {REGISTRY} ({error})")
    from docker.errors import ImageNotFound

    try:
        client.images.get(BASE_IMAGE)
    except ImageNotFound:
        _unavailable(f"the base image {BASE_IMAGE} does not exist")
    namespace = f"sftest-azure-{uuid.uuid4().hex[:8]}"
    yield {"registry": f"{REGISTRY}/{namespace}", "base_image": BASE_IMAGE}
    for image in client.images.list():
        for name in [*image.tags, *image.attrs.get("RepoDigests", [])]:
            if f"/{namespace}/" in name:
                with contextlib.suppress(Exception):
                    client.images.remove(name, noprune=True)


def build_step_image(plugins: Plugins, host: dict[str, str], code_root: Path) -> ImageRef | None:
    """The step image of ``code_root``, built by the docker builder on ``host``'s base
    image and pushed to its registry (what a kit's ``make_image`` returns)."""
    from stepframe_docker import ContainerRegistryConfig, DockerBuilderConfig, DockerSettings

    builder = Component(
        ComponentKind.IMAGE_BUILDER,
        "docker",
        "docker",
        DockerBuilderConfig(parent_image=host["base_image"]),
    )
    registry = Component(
        ComponentKind.CONTAINER_REGISTRY,
        "local",
        "default",
        ContainerRegistryConfig(host["registry"]),
    )
    request = ImageRequest(
        code_root=str(code_root),
        target_registry=registry,
        settings=DockerSettings(parent_image=host["base_image"]),
    )
    return plugins.hooks.build_image(request, builder)
