"""Configuration and per-step settings of the docker flavors (attrs classes, no docker import).

One settings class serves both the ``docker`` image builder and the ``docker`` step
operator: settings are keyed by flavor name, and both flavors are called ``docker``, so a
step's ``settings={"docker": {...}}`` carries what goes into the image and how the
container runs.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, TypeVar, cast

import attrs

__all__ = [
    "ContainerRegistryConfig",
    "DockerBuilderConfig",
    "DockerOperatorConfig",
    "DockerSettings",
    "default_parent_image",
    "structure_settings",
]

_T = TypeVar("_T")

# When the engine stops answering, the operator's polls report the job's last known state
# this many times, this far apart, before giving up: a restarted engine (whose containers
# keep running with live-restore) or a dropped socket must not fail a job that runs for
# hours, and an engine that is really gone is reported within half a minute.
ENGINE_RETRIES = 6
ENGINE_RETRY_SECONDS = 5.0


def default_parent_image() -> str:
    """``python:X.Y-slim`` for the interpreter the client runs on."""
    return f"python:{sys.version_info.major}.{sys.version_info.minor}-slim"


@attrs.frozen
class DockerSettings:
    """Per-step settings for the ``docker`` image builder and step operator.

    What goes into the image:

    :param parent_image: the image to start from; default ``python:X.Y-slim`` matching
        the client's Python.  Ignored when ``dockerfile`` is set.
    :param dockerfile: a Dockerfile (relative to the code root) to build first; the
        stepframe layers go on top of the image it makes.  Its build context is the code
        root, filtered like the image's own.
    :param pull_parent: pull the parent image even when the engine already has it (to
        follow a moving tag); by default a local copy is used as it is.
    :param apt_packages: Debian packages to install (``apt-get``) before anything else.
    :param requirements: pip requirement lines for the step's own dependencies.
    :param requirements_file: a requirements file (relative to the code root), installed
        after ``requirements``.
    :param environment: variables baked into the image, and passed to the container by
        the ``docker`` operator.
    :param build_args: ``ARG`` values for the build (the user ``dockerfile`` sees them).
    :param extra_files: files or folders to copy in, source (relative to the code root)
        to absolute destination in the image.
    :param dockerignore: an ignore file to filter the code with instead of the code
        root's ``.dockerignore`` (or, when there is none, ``.gitignore``).
    :param platform: the target platform of the build.
    :param network_mode: the network builds (``RUN`` steps) and containers use.
    :param image_name: the repository name below the registry; default the code root's
        folder name.
    :param stepframe_packages: distributions of stepframe to install in the image; default
        ``stepframe-core`` and every installed plugin except this builder (which goes in
        when an installed plugin requires it, as stepframe-aws does).

    How the ``docker`` operator runs the container:

    :param gpus: GPUs to request: 0 none, -1 all, N that many (device requests).
    :param mem_limit: memory limit (``"4g"``), or None for none.
    :param cpus: CPU limit (``1.5``), or None for none.
    :param volumes: extra bind mounts, ``"/host/path:/container/path[:ro]"``.
    :param user: ``uid[:gid]`` to run as; default the client's own when a local artifact
        store is mounted, so the files the step writes belong to the user.
    :param stop_timeout: seconds a cancelled container gets after SIGTERM before SIGKILL.
    """

    parent_image: str | None = None
    dockerfile: str | None = None
    pull_parent: bool = False
    apt_packages: list[str] = attrs.field(factory=list)
    requirements: list[str] = attrs.field(factory=list)
    requirements_file: str | None = None
    environment: dict[str, str] = attrs.field(factory=dict)
    build_args: dict[str, str] = attrs.field(factory=dict)
    extra_files: dict[str, str] = attrs.field(factory=dict)
    dockerignore: str | None = None
    platform: str = "linux/amd64"
    network_mode: str = "host"
    image_name: str | None = None
    stepframe_packages: list[str] | None = None
    gpus: int = 0
    mem_limit: str | None = None
    cpus: float | None = None
    volumes: list[str] = attrs.field(factory=list)
    user: str | None = None
    stop_timeout: int = 10


@attrs.frozen
class DockerBuilderConfig:
    """Configuration of a ``docker`` image builder component.

    :param docker_host: the engine to talk to (``unix:///var/run/docker.sock``,
        ``tcp://127.0.0.1:2375``); default ``DOCKER_HOST`` or the local socket.
    :param parent_image: default parent image for every step (a step's settings win).
    :param platform: default target platform.
    :param network_mode: default network for ``RUN`` steps.
    :param pull_parent: default for pulling the parent image every time.
    :param no_cache: build without the engine's layer cache (every step runs again);
        an image the registry already has is still not rebuilt.
    """

    docker_host: str | None = None
    parent_image: str | None = None
    platform: str | None = None
    network_mode: str | None = None
    pull_parent: bool | None = None
    no_cache: bool = False


@attrs.frozen
class DockerOperatorConfig:
    """Configuration of a ``docker`` step operator component.

    Fields named like a `DockerSettings` field are defaults for every step it runs.

    :param docker_host: the engine to run containers on; default ``DOCKER_HOST`` or the
        local socket.
    :param engine_retries: how many polls in a row may find the engine not answering (a
        restart, a dropped socket) before the step fails with `EngineUnavailableError`;
        meanwhile the job is shown in its last known state.
    :param engine_retry_seconds: the wait between those polls.
    """

    docker_host: str | None = None
    engine_retries: int = attrs.field(default=ENGINE_RETRIES, validator=attrs.validators.ge(0))
    engine_retry_seconds: float = attrs.field(
        default=ENGINE_RETRY_SECONDS, validator=attrs.validators.gt(0)
    )
    network_mode: str | None = None
    mem_limit: str | None = None
    cpus: float | None = None
    gpus: int | None = None
    environment: dict[str, str] | None = None


@attrs.frozen
class ContainerRegistryConfig:
    """Configuration of a ``default`` container registry component.

    :param uri: where images go: ``HOST[:PORT][/NAMESPACE]`` (``127.0.0.1:5000/ml``).
        Credentials are the engine's own (``docker login HOST``).
    """

    uri: str


def structure_settings(raw: Any, where: str, defaults: Mapping[str, Any] | None = None) -> Any:
    """``raw`` (a mapping, a `DockerSettings` or None) as `DockerSettings`, strictly.

    :param defaults: values used where ``raw`` says nothing (component defaults).
    :raises ConfigError: naming the key that is wrong.
    """
    if isinstance(raw, DockerSettings):
        return raw
    data: dict[str, Any] = {k: v for k, v in (defaults or {}).items() if v is not None}
    if raw is not None:
        if not isinstance(raw, Mapping):
            from stepframe import ConfigError

            raise ConfigError(f"{where}: expected a table of settings, got {type(raw).__name__}")
        data.update(raw)
    return structure(data, DockerSettings, where)


def structure(data: Mapping[str, Any], cls: type[_T], where: str) -> _T:
    """Strict cattrs structuring (a string is not a list, an int not a str) with errors
    that name the key."""
    import typing

    import cattrs
    from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError

    from stepframe import ConfigError

    converter = cattrs.Converter(forbid_extra_keys=True)

    def strict_scalar(value: Any, kind: type) -> Any:
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if type(value) is not kind:
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__} {value!r}")
        return value

    def strict_list(value: Any, kind: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"expected a list, got {type(value).__name__} {value!r}")
        (item,) = typing.get_args(kind) or (Any,)
        return [converter.structure(v, item) for v in value]

    def strict_dict(value: Any, kind: Any) -> Any:
        if not isinstance(value, Mapping):
            raise TypeError(f"expected a table, got {type(value).__name__} {value!r}")
        key, item = typing.get_args(kind) or (Any, Any)
        return {converter.structure(k, key): converter.structure(v, item) for k, v in value.items()}

    for scalar in (str, int, float, bool):
        converter.register_structure_hook(scalar, strict_scalar)

    def origin_is(kind: type) -> Any:
        return lambda t: bool(typing.get_origin(t) == kind)  # type: ignore[comparison-overlap]

    converter.register_structure_hook_func(origin_is(list), strict_list)
    converter.register_structure_hook_func(origin_is(dict), strict_dict)
    try:
        return converter.structure(dict(data), cls)
    except ForbiddenExtraKeysError as error:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(error.extra_fields))}; "
            f"known: {', '.join(f.name for f in attrs.fields(cast(Any, cls)))}"
        ) from None
    except ClassValidationError as error:
        for inner in error.exceptions:
            if isinstance(inner, ForbiddenExtraKeysError):
                raise ConfigError(
                    f"{where}: unknown key(s) {', '.join(sorted(inner.extra_fields))}; known: "
                    f"{', '.join(f.name for f in attrs.fields(cast(Any, cls)))}"
                ) from None
        problems = [line.replace("@ $", f"at {where}", 1) for line in cattrs.transform_error(error)]
        raise ConfigError("; ".join(problems) or f"{where}: {error}") from None
