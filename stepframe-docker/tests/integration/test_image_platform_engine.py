"""The image's platform on the real engine (amd64 here, with no emulation of others).

The legacy builder takes ``--platform`` for an image with no parent (``FROM scratch``),
but quietly builds on a parent of another platform, and takes a cached layer of another
platform as a hit.  So the builder checks the parent before building and the image after,
and an arm64 laptop building for SageMaker (linux/amd64) is told so instead of pushing
an image that fails only on SageMaker.  Here the roles are swapped: this amd64 engine is
asked for linux/arm64.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from stepframe import ImageRequest
from stepframe_docker import DockerBuildError, ParentImageError, _builder, _plan, plugin
from stepframe_docker._engine import inspect_image

if TYPE_CHECKING:
    import docker


def _tags(engine: docker.DockerClient, repository: str) -> list[str]:
    return [tag for image in engine.images.list(name=repository) for tag in image.tags]


def test_the_platform_reaches_the_build_even_past_the_layer_cache(
    engine: docker.DockerClient, build: Any, code: Callable[..., Path]
) -> None:
    root = code(**{"base.Dockerfile": "FROM scratch\nCOPY steps.py /steps.py\n"})
    settings = {"dockerfile": "base.Dockerfile", "stepframe_packages": []}
    # The engine's own platform first: the arm64 build then finds its layer in the cache.
    for platform in ("linux/amd64", "linux/arm64"):
        request = ImageRequest(code_root=str(root), settings=settings, platform=platform)
        resolved = _plan.settings_for(request, build.component())
        parent = _builder.resolve_parent(engine, request, resolved)
        built = _builder.image_platform(inspect_image(engine, parent.image_id))
        assert built == platform


def test_a_parent_image_of_another_platform_is_refused_before_building(
    engine: docker.DockerClient, build: Any, code: Callable[..., Path]
) -> None:
    root = code()
    request = ImageRequest(
        code_root=str(root),
        target_registry=build.registry_component(),
        settings={"stepframe_packages": []},
        platform="linux/arm64",
    )
    with pytest.raises(ParentImageError) as raised:
        plugin.build_image(request=request, builder=build.component())
    assert str(raised.value) == (
        f"the parent image {build.base_image!r} on the Docker engine is linux/amd64, but "
        "the image must be built for linux/arm64: get that variant (`docker pull "
        f"--platform linux/arm64 {build.base_image}`) or set settings docker.parent_image "
        "to a linux/arm64 image"
    )
    assert _tags(engine, f"{build.registry}/{root.name}") == []


@pytest.mark.parametrize("cached", [False, True], ids=["fresh", "cached"])
def test_an_image_built_for_another_platform_is_refused_and_untagged(
    engine: docker.DockerClient, build: Any, code: Callable[..., Path], cached: bool
) -> None:
    # A RUN step of this test's own, built afresh; or first built (and tagged) for the
    # engine's own platform, so that the linux/arm64 build finds it in the layer cache:
    # the builder then builds it again without the cache, and only then gives up.
    root = code()
    dockerfile = root / "base.Dockerfile"
    dockerfile.write_text(f"FROM {build.base_image}\nRUN echo {root.name}\n")
    settings = {"dockerfile": "base.Dockerfile", "stepframe_packages": []}
    if cached:
        own = ImageRequest(code_root=str(root), settings=settings, platform="linux/amd64")
        _builder.resolve_parent(engine, own, _plan.settings_for(own, build.component()))
    request = ImageRequest(
        code_root=str(root),
        target_registry=build.registry_component(),
        settings=settings,
        platform="linux/arm64",
    )
    with pytest.raises(DockerBuildError) as raised:
        plugin.build_image(request=request, builder=build.component())
    message = str(raised.value)
    assert message.startswith(f"building the Dockerfile {dockerfile}: ")
    assert (
        "the engine built a linux/amd64 image, but linux/arm64 was asked for (this step's "
        "operator runs images on that platform only): this Docker engine cannot build "
        "linux/arm64 images." in message
    )
    assert "tonistiigi/binfmt --install arm64" in message
    assert "\n" not in message
    # Nothing is left under a tag that promises linux/arm64, nor pushed.
    assert _tags(engine, f"{_plan.LOCAL_REPOSITORY_PREFIX}/{root.name}-base") == []
    assert _tags(engine, f"{build.registry}/{root.name}") == []
