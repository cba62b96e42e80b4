"""stepframe hook implementations for Docker (entry point ``docker`` in group ``stepframe``).

Flavors: image builder ``docker``, container registry ``default``, step operator
``docker``.  This module imports neither ``docker`` nor the builder: the hooks import
them when a docker component is actually used, so loading the plugin stays cheap.  The
core calls each hook here only for components and jobs of these flavors (hook contract,
second edition), so no hook checks the flavor itself.
"""

from __future__ import annotations

from collections.abc import Callable

from stepframe import (
    Component,
    ComponentKind,
    Credentials,
    Flavor,
    ImageRef,
    ImageRequest,
    JobHandle,
    JobNotFound,
    JobStatus,
    Launch,
    PlannedStep,
    hookimpl,
)
from stepframe_docker._settings import (
    ContainerRegistryConfig,
    DockerBuilderConfig,
    DockerOperatorConfig,
    DockerSettings,
)

__all__ = [
    "build_image",
    "cancel_step",
    "check_step",
    "find_job",
    "poll_step",
    "register_flavors",
    "submit_step",
]

FLAVOR = "docker"
REGISTRY_FLAVOR = "default"


@hookimpl
def register_flavors(register: Callable[[Flavor], None]) -> None:
    register(
        Flavor(
            kind=ComponentKind.IMAGE_BUILDER,
            name=FLAVOR,
            config_class=DockerBuilderConfig,
            settings_class=DockerSettings,
            description="builds content-hashed step images with the Docker engine, pushes them",
        )
    )
    register(
        Flavor(
            kind=ComponentKind.CONTAINER_REGISTRY,
            name=REGISTRY_FLAVOR,
            config_class=ContainerRegistryConfig,
            description="any registry the Docker engine can push to (credentials: docker login)",
        )
    )
    register(
        Flavor(
            kind=ComponentKind.STEP_OPERATOR,
            name=FLAVOR,
            config_class=DockerOperatorConfig,
            settings_class=DockerSettings,
            description="runs each step's image as a container on the Docker engine",
            needs_image=True,
        )
    )


@hookimpl
def check_step(step: PlannedStep, component: Component) -> list[str] | None:
    """The pre-flight: the image's and the container's settings, before anything is built."""
    from stepframe_docker._checks import builder_problems, operator_problems, registry_problems

    if component.kind is ComponentKind.IMAGE_BUILDER:
        return builder_problems(step, component)
    if component.kind is ComponentKind.CONTAINER_REGISTRY:
        return registry_problems(component)
    return operator_problems(step)


@hookimpl
def build_image(request: ImageRequest, builder: Component) -> ImageRef | None:
    from stepframe_docker._builder import build

    return build(request, builder)


@hookimpl
def submit_step(
    launch: Launch, operator: Component, credentials: Credentials | None
) -> JobHandle | None:
    from stepframe_docker._operator import submit

    return submit(launch, operator)


@hookimpl
def poll_step(
    handle: JobHandle, credentials: Credentials | None, cursor: str | None
) -> JobStatus | None:
    from stepframe_docker._operator import poll

    return poll(handle, cursor)


@hookimpl
def cancel_step(handle: JobHandle, credentials: Credentials | None) -> bool | None:
    from stepframe_docker._operator import cancel

    return cancel(handle)


@hookimpl
def find_job(
    launch: Launch, operator: Component, credentials: Credentials | None
) -> JobHandle | JobNotFound | None:
    """The container of a launch whose submit answer was lost, by its name (the job name)."""
    from stepframe_docker._operator import find

    return find(launch, operator)
