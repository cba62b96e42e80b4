"""Planning an image: everything that goes into it, and the tag that hashes it.

Pure with respect to the engine: the caller resolves the parent image to its id first
(`parent_reference` says which image that is), so a plan is made, hashed and tested
without Docker.  It reads the project's files and the installed stepframe distributions
(and may build a wheel of an editable checkout, see `_dists`).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from stepframe import Component, ConfigError, ImageRequest
from stepframe_docker import _context, _dists, _dockerfile, _parity
from stepframe_docker._settings import (
    DockerBuilderConfig,
    DockerSettings,
    default_parent_image,
    structure_settings,
)

__all__ = [
    "LOCAL_REPOSITORY_PREFIX",
    "TAG_LENGTH",
    "BuildPlan",
    "Parent",
    "code_root_of",
    "extra_files",
    "image_hash",
    "image_name",
    "parent_reference",
    "plan",
    "registry_address",
    "settings_for",
]

# Bump when the Dockerfile layout changes, so old tags are not taken for new images.
# 3: images are checked to be of the platform in their tag (an older image tagged
# linux/amd64 may hold an arm64 build made on an Apple-silicon laptop).
LAYOUT_VERSION = "3"
TAG_LENGTH = 40
LOCAL_REPOSITORY_PREFIX = "stepframe-local"


@attrs.frozen
class Parent:
    """The image a plan builds on: what ``FROM`` says, and the id it resolved to."""

    reference: str
    image_id: str


@attrs.frozen
class BuildPlan:
    """Everything that goes into one image, gathered before any building.

    :param expected: the parity check's input (JSON): the client's Python, each stepframe
        distribution's version and content hash, the third-party pins.
    :param constraints: the pip constraints file pinning stepframe's third-party
        dependencies to the client's versions.
    """

    code_root: Path
    repository: str
    registry: str | None
    settings: DockerSettings
    parent: Parent
    dockerfile: str
    parity_script: str
    expected: str
    constraints: bytes
    requirements: bytes
    packages: tuple[_dists.DistributionSource, ...]
    files: tuple[_context.ContextFile, ...]
    extra: tuple[tuple[str, Path], ...]
    context_bytes: int

    @property
    def tag(self) -> str:
        return image_hash(self)[:TAG_LENGTH]


def image_hash(plan: BuildPlan) -> str:
    """sha256 of everything that goes into the image."""
    digest = hashlib.sha256()

    def part(name: str, value: str | bytes) -> None:
        data = value.encode() if isinstance(value, str) else value
        digest.update(f"{name}:{len(data)}:".encode() + data + b"\n")

    part("layout", LAYOUT_VERSION)
    part("parent", plan.parent.image_id)
    part("dockerfile", plan.dockerfile)
    part("parity", plan.parity_script)
    part("expected", plan.expected)  # holds each distribution's content hash
    part("constraints", plan.constraints)
    part("requirements", plan.requirements)
    for name, path in plan.extra:
        part("extra", f"{name} {_context.tree_digest(extra_files(path))}")
    part("code", _context.tree_digest(plan.files))
    part("build_args", json.dumps(plan.settings.build_args, sort_keys=True))
    part("platform", plan.settings.platform)
    return digest.hexdigest()


def extra_files(path: Path) -> list[_context.ContextFile]:
    """The files of one ``extra_files`` source: a folder's, unfiltered, or the file."""
    if path.is_dir():
        return _context.collect(path, _context.IgnoreRules.of())
    info = path.stat()
    return [_context.ContextFile(path.name, path, info.st_size, info.st_mode)]


def registry_address(registry: Component | None) -> str | None:
    """``HOST[:PORT][/NAMESPACE]`` of a container registry component (no scheme)."""
    if registry is None:
        return None
    uri = getattr(registry.config, "uri", None)
    if not isinstance(uri, str) or not uri:
        raise ConfigError(
            f"container registry {registry.name!r} (flavor {registry.flavor!r}) has no uri; "
            f"set one: `stepframe container-registry update {registry.name} --uri HOST:PORT`"
        )
    return re.sub(r"^[a-z]+://", "", uri).rstrip("/")


def image_name(settings: DockerSettings, code_root: Path) -> str:
    """The repository name below the registry: the setting, or the code root's name."""
    name = settings.image_name or code_root.name or "stepframe"
    name = re.sub(r"[^a-z0-9._/-]+", "-", name.lower()).strip("-._/")
    return name or "stepframe"


def _builder_defaults(builder: Component) -> dict[str, Any]:
    config = builder.config
    if not isinstance(config, DockerBuilderConfig):
        return {}
    values = attrs.asdict(config)
    names = {f.name for f in attrs.fields(DockerSettings)}
    return {k: v for k, v in values.items() if k in names and v is not None}


def settings_for(request: ImageRequest, builder: Component) -> DockerSettings:
    """The request's settings over the builder's defaults, validated.

    The request's ``platform`` (what the step operator runs, e.g. SageMaker's
    ``linux/amd64``) wins over the builder's default; a step's own ``platform`` setting
    that differs from it is refused, since the operator could not run that image.
    """
    settings: DockerSettings = structure_settings(
        request.settings, "settings.docker", defaults=_builder_defaults(builder)
    )
    wanted = request.platform
    if wanted is None or settings.platform == wanted:
        return settings
    if _step_sets_platform(request.settings):
        raise ConfigError(
            f"settings docker.platform {settings.platform!r}: this step's operator runs "
            f"images on {wanted} only; remove the setting or set it to {wanted!r}"
        )
    return attrs.evolve(settings, platform=wanted)


def _step_sets_platform(raw: Any) -> bool:
    if isinstance(raw, DockerSettings):
        return True
    return isinstance(raw, Mapping) and raw.get("platform") is not None


def code_root_of(request: ImageRequest) -> Path:
    code_root = Path(request.code_root).resolve()
    if not code_root.is_dir():
        raise ConfigError(f"the code root {code_root} is not a folder")
    return code_root


def parent_reference(request: ImageRequest, settings: DockerSettings) -> str | None:
    """The parent image to resolve, or None when a user Dockerfile makes it."""
    if settings.dockerfile:
        return None
    return request.parent_image or settings.parent_image or default_parent_image()


def _requirements(settings: DockerSettings, request: ImageRequest, code_root: Path) -> bytes:
    lines = [*settings.requirements, *request.requirements]
    if settings.requirements_file:
        path = code_root / settings.requirements_file
        try:
            lines += path.read_text().splitlines()
        except OSError as error:
            raise ConfigError(
                f"settings docker.requirements_file: cannot read {path}: {error.strerror}"
            ) from None
    kept = [line for line in lines if line.strip() and not line.strip().startswith("#")]
    return _dockerfile.requirement_lines(kept)


def _python() -> str:
    return "{}.{}".format(*sys.version_info[:2])


def expected_json(packages: list[_dists.DistributionSource], pins: dict[str, str]) -> str:
    """What the parity check in the image compares against (`_parity.check`)."""
    return json.dumps(
        {
            "python": _python(),
            "distributions": {
                s.name: {"version": s.version, "hash": s.content_hash} for s in packages
            },
            "pins": pins,
        },
        indent=1,
        sort_keys=True,
    )


def plan(request: ImageRequest, builder: Component, parent: Parent) -> BuildPlan:
    """Gather what goes into the image on ``parent`` (no engine), settings validated."""
    settings = settings_for(request, builder)
    code_root = code_root_of(request)
    registry = registry_address(request.target_registry)
    name = image_name(settings, code_root)
    repository = f"{registry}/{name}" if registry else f"{LOCAL_REPOSITORY_PREFIX}/{name}"
    try:
        rules = _context.load_rules(code_root, settings.dockerignore)
    except OSError as error:
        raise ConfigError(f"settings docker.dockerignore: {error}") from None
    files = _context.collect(code_root, rules)
    context_bytes = _context.warn_if_large(files, code_root)
    names = settings.stepframe_packages
    packages = _dists.resolve_packages(
        list(names) if names is not None else _dists.default_packages()
    )
    pins = _dists.constraints(s.name for s in packages)
    extra: list[tuple[str, Path]] = []
    extra_lines: list[tuple[str, str]] = []
    for index, (source, destination) in enumerate(sorted(settings.extra_files.items())):
        path = (code_root / source).resolve()
        if not path.exists():
            raise ConfigError(f"settings docker.extra_files: {path} does not exist")
        context_name = f"extra/{index}"
        extra.append((context_name, path))
        extra_lines.append((context_name + ("/" if path.is_dir() else ""), destination))
    requirements = _requirements(settings, request, code_root)
    environment = {**settings.environment, **request.environment}
    spec = _dockerfile.DockerfileSpec(
        parent=parent.reference,
        apt_packages=tuple(settings.apt_packages),
        has_requirements=bool(requirements),
        wheels=tuple(s.wheel.name for s in packages),
        distributions={s.name: s.content_hash for s in packages},
        environment=environment,
        build_args=tuple(sorted(settings.build_args)),
        extra_files=tuple(extra_lines),
    )
    return BuildPlan(
        code_root=code_root,
        repository=repository,
        registry=registry,
        settings=settings,
        parent=parent,
        dockerfile=_dockerfile.render(spec),
        parity_script=Path(_parity.__file__).read_text(),
        expected=expected_json(packages, pins),
        constraints=_dists.constraints_text(pins),
        requirements=requirements,
        packages=tuple(packages),
        files=tuple(files),
        extra=tuple(extra),
        context_bytes=context_bytes,
    )
