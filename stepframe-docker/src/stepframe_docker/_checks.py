"""The docker flavors' pre-flight: a step's settings checked before anything is built.

The core calls ``check_step`` for every step before the first one runs: for the image
builder of steps whose operator needs an image, and for the ``docker`` operator's steps.
What is checked here is what would otherwise fail minutes later, after the upstream steps
ran: a Dockerfile, requirements file, ignore file or extra file that is not there, a
malformed volume, user, memory limit or platform.  The builder and the operator check
again when they get there (the files may change meanwhile).  No docker import: nothing
here talks to the engine.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import attrs

from stepframe import Component, ConfigError, PlannedStep
from stepframe_docker._settings import DockerBuilderConfig, DockerSettings, structure_settings

__all__ = ["builder_problems", "operator_problems", "registry_problems"]

_PLATFORM = re.compile(r"[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?")
_MEMORY = re.compile(r"\d+[bkmgBKMG]?")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?")
_VOLUME_MODES = ("ro", "rw", "z", "Z")


def _settings(raw: Any, where: str, defaults: dict[str, Any] | None = None) -> DockerSettings | str:
    try:
        settings: DockerSettings = structure_settings(raw, where, defaults=defaults)
    except ConfigError as error:
        return str(error)
    return settings


def _builder_defaults(builder: Component) -> dict[str, Any]:
    config = builder.config
    if not isinstance(config, DockerBuilderConfig):
        return {}
    names = {field.name for field in attrs.fields(DockerSettings)}
    return {k: v for k, v in attrs.asdict(config).items() if k in names and v is not None}


def _readable_file(code_root: Path, name: str, where: str) -> str | None:
    path = code_root / name
    if not path.is_file():
        return f"{where}: {path} does not exist (paths are relative to the code root)"
    return None


def builder_problems(step: PlannedStep, builder: Component) -> list[str]:
    """What the ``docker`` builder would refuse about the image of ``step``."""
    where = "settings.docker"
    settings = _settings(
        step.settings_by_flavor.get("docker"), where, defaults=_builder_defaults(builder)
    )
    if isinstance(settings, str):
        return [settings]
    code_root = Path(step.code_root)
    problems = []
    if settings.dockerfile:
        problems.append(_readable_file(code_root, settings.dockerfile, f"{where}.dockerfile"))
    if settings.requirements_file:
        problems.append(
            _readable_file(code_root, settings.requirements_file, f"{where}.requirements_file")
        )
    if settings.dockerignore:
        problems.append(_readable_file(code_root, settings.dockerignore, f"{where}.dockerignore"))
    for source, destination in sorted(settings.extra_files.items()):
        path = code_root / source
        if not path.exists():
            problems.append(f"{where}.extra_files: {path} does not exist")
        if not destination.startswith("/"):
            problems.append(
                f"{where}.extra_files[{source!r}]: the destination {destination!r} must be "
                "an absolute path in the image"
            )
    if not _PLATFORM.fullmatch(settings.platform):
        problems.append(
            f"{where}.platform {settings.platform!r} is not OS/ARCH (linux/amd64, linux/arm64)"
        )
    return [problem for problem in problems if problem]


def operator_problems(step: PlannedStep) -> list[str]:
    """What the ``docker`` operator would refuse about running ``step``'s container."""
    where = "settings.docker"
    settings = _settings(step.settings, where)
    if isinstance(settings, str):
        return [settings]
    problems = []
    for volume in settings.volumes:
        parts = volume.split(":")
        if not 2 <= len(parts) <= 3 or not all(part.startswith("/") for part in parts[:2]):
            problems.append(f"{where}.volumes: {volume!r} is not /host/path:/container/path[:ro]")
        elif len(parts) == 3 and parts[2] not in _VOLUME_MODES:
            problems.append(f"{where}.volumes: {volume!r} ends in an unknown mode {parts[2]!r}")
    if settings.user is not None and not _USER.fullmatch(settings.user):
        problems.append(f"{where}.user {settings.user!r} is not user[:group] (a name or an id)")
    if settings.mem_limit is not None and not _MEMORY.fullmatch(settings.mem_limit):
        problems.append(
            f"{where}.mem_limit {settings.mem_limit!r} is not a size such as 512m or 4g"
        )
    if settings.cpus is not None and settings.cpus <= 0:
        problems.append(f"{where}.cpus must be more than 0, got {settings.cpus}")
    if settings.gpus < -1:
        problems.append(f"{where}.gpus must be -1 (all), 0 or a count, got {settings.gpus}")
    if settings.stop_timeout < 0:
        problems.append(f"{where}.stop_timeout must be 0 or more, got {settings.stop_timeout}")
    return problems


def registry_problems(registry: Component) -> list[str]:
    """A ``default`` registry needs an address to push to."""
    uri = getattr(registry.config, "uri", None)
    if not isinstance(uri, str) or not uri.strip() or " " in uri:
        return [
            f"container registry {registry.name!r} has no usable uri ({uri!r}); set one: "
            f"`stepframe container-registry update {registry.name} --uri HOST:PORT`"
        ]
    return []
