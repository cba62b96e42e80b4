"""The ``docker`` image builder: content-hashed tags, build only what changed, push, digest.

The tag is a hash of everything that goes into the image.  If the registry already has
it, nothing is built or pushed; identical requests within one process are answered
once.  Otherwise the engine builds the generated Dockerfile (see `_dockerfile`), where
the layer order makes a code-only change rebuild and push one thin layer.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from stepframe import Component, ConfigError, ImageRef, ImageRequest
from stepframe_docker import _context, _dists, _dockerfile
from stepframe_docker._engine import (
    client_for,
    engine_error,
    inspect_distribution,
    inspect_image,
)
from stepframe_docker._errors import (
    DockerBuildError,
    ImageBuildStepError,
    ParentImageError,
    ParityError,
    RegistryError,
)
from stepframe_docker._settings import (
    DockerBuilderConfig,
    DockerSettings,
    default_parent_image,
    structure_settings,
)

if TYPE_CHECKING:
    import docker

__all__ = [
    "BuildReport",
    "build",
    "build_reports",
    "forget_builds",
    "image_hash",
    "plan",
    "registry_address",
]

# Bump when the Dockerfile layout changes, so old tags are not taken for new images.
LAYOUT_VERSION = "1"
TAG_LENGTH = 40
# How many output lines of a failing build step to show.
FAILED_STEP_LINES = 25
LOCAL_REPOSITORY_PREFIX = "stepframe-local"


@attrs.define
class BuildReport:
    """What one `build_image` call did; `build_reports` lists them for this process.

    :param action: ``"built"``, ``"in-registry"`` (the tag was there: nothing built or
        pushed), ``"in-process"`` (an identical request was answered before), or
        ``"local"`` (no registry; the engine already had the tag).
    :param steps: Dockerfile steps run; ``cached_steps`` of them came from the cache.
    :param pushed_bytes: bytes of the layers the push uploaded (not those the registry had).
    """

    uri: str
    digest: str | None
    action: str
    seconds: float = 0.0
    build_seconds: float = 0.0
    push_seconds: float = 0.0
    steps: int = 0
    cached_steps: int = 0
    context_bytes: int = 0
    pushed_bytes: int = 0
    pushed_layers: int = 0
    existing_layers: int = 0


_reports: list[BuildReport] = []
_done: dict[str, ImageRef] = {}
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def build_reports() -> list[BuildReport]:
    """Every build request answered in this process, oldest first."""
    return list(_reports)


def forget_builds() -> None:
    """Forget this process's answers, so the next request asks the registry again."""
    _done.clear()
    _reports.clear()


@attrs.frozen
class BuildPlan:
    """Everything that goes into one image, gathered before any hashing or building."""

    code_root: Path
    repository: str
    registry: str | None
    settings: DockerSettings
    parent: str
    parent_id: str
    dockerfile: str
    parity: str
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
    part("parent", plan.parent_id)
    part("dockerfile", plan.dockerfile)
    part("parity", plan.parity)
    part("requirements", plan.requirements)
    for source in plan.packages:
        part("package", f"{source.name}=={source.version} {source.wheel_digest or 'index'}")
    for name, path in plan.extra:
        part("extra", f"{name} {_context.tree_digest(_extra_files(path))}")
    part("code", _context.tree_digest(plan.files))
    part("build_args", json.dumps(plan.settings.build_args, sort_keys=True))
    part("platform", plan.settings.platform)
    return digest.hexdigest()


def _extra_files(path: Path) -> list[_context.ContextFile]:
    if path.is_dir():
        return _context.collect(path, _context.IgnoreRules.of())
    info = path.stat()
    return [_context.ContextFile(path.name, path, info.st_size, info.st_mode)]


def _registry_address(registry: Component | None) -> str | None:
    if registry is None:
        return None
    config = registry.config
    uri = getattr(config, "uri", None)
    if not isinstance(uri, str) or not uri:
        raise ConfigError(
            f"container registry {registry.name!r} (flavor {registry.flavor!r}) has no uri; "
            f"set one: `stepframe container-registry update {registry.name} --uri HOST:PORT`"
        )
    uri = re.sub(r"^[a-z]+://", "", uri).rstrip("/")
    return uri


def _image_name(settings: DockerSettings, code_root: Path) -> str:
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


def _docker_host(component: Component) -> str | None:
    return getattr(component.config, "docker_host", None)


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


def _parent_id(client: docker.DockerClient, parent: str, pull: bool) -> str:
    """The parent image's id, pulling it if the engine does not have it (or ``pull``)."""
    from docker.errors import APIError, ImageNotFound

    if not pull:
        try:
            return str(inspect_image(client, parent)["Id"])
        except ImageNotFound:
            pass
        except APIError as error:
            raise ParentImageError(f"cannot inspect parent image {parent!r}: {error}") from None
    repository, tag = _split_reference(parent)
    try:
        client.api.pull(repository, tag=tag)
        return str(inspect_image(client, parent)["Id"])
    except (APIError, ImageNotFound) as error:
        explanation = getattr(error, "explanation", None) or str(error)
        raise ParentImageError(
            f"the parent image {parent!r} is not on the Docker engine and cannot be pulled: "
            f"{explanation}. Pull or build it first, or set settings docker.parent_image "
            "(or the image builder's parent_image) to an image you have"
        ) from None


def _split_reference(reference: str) -> tuple[str, str | None]:
    if "@" in reference:
        repository, digest = reference.split("@", 1)
        return repository, digest
    last = reference.rsplit("/", 1)[-1]
    if ":" in last:
        repository, tag = reference.rsplit(":", 1)
        return repository, tag
    return reference, "latest"


def plan(request: ImageRequest, builder: Component) -> BuildPlan:
    """Gather what goes into the image (no building), with the settings validated."""
    settings: DockerSettings = structure_settings(
        request.settings, "settings.docker", defaults=_builder_defaults(builder)
    )
    code_root = Path(request.code_root).resolve()
    if not code_root.is_dir():
        raise ConfigError(f"the code root {code_root} is not a folder")
    registry = _registry_address(request.target_registry)
    name = _image_name(settings, code_root)
    repository = f"{registry}/{name}" if registry else f"{LOCAL_REPOSITORY_PREFIX}/{name}"
    client = client_for(_docker_host(builder))
    if settings.dockerfile:
        parent = parent_id = _build_user_dockerfile(client, settings, code_root, name)
    else:
        parent = request.parent_image or settings.parent_image or default_parent_image()
        parent_id = _parent_id(client, parent, settings.pull_parent)
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
        parent=parent,
        apt_packages=tuple(settings.apt_packages),
        has_requirements=bool(requirements),
        wheels=tuple(s.wheel.name for s in packages if s.wheel is not None),
        pinned=tuple(s.requirement for s in packages if s.wheel is None),
        environment=environment,
        build_args=tuple(sorted(settings.build_args)),
        extra_files=tuple(extra_lines),
    )
    python = "{}.{}".format(*sys.version_info[:2])
    return BuildPlan(
        code_root=code_root,
        repository=repository,
        registry=registry,
        settings=settings,
        parent=parent,
        parent_id=parent_id,
        dockerfile=_dockerfile.render(spec),
        parity=_dockerfile.parity_script(python, {s.name: s.version for s in packages}),
        requirements=requirements,
        packages=tuple(packages),
        files=tuple(files),
        extra=tuple(extra),
        context_bytes=context_bytes,
    )


def _build_user_dockerfile(
    client: docker.DockerClient, settings: DockerSettings, code_root: Path, name: str
) -> str:
    """Build the user's Dockerfile (context: the filtered code root); its image id."""
    path = code_root / str(settings.dockerfile)
    if not path.is_file():
        raise ConfigError(f"settings docker.dockerfile: {path} does not exist")
    files = _context.collect(code_root, _context.load_rules(code_root, settings.dockerignore))
    with tempfile.TemporaryFile() as stream:
        with _context.open_archive(stream) as archive:
            _context.add_tree(archive, files, ".")
            _context.add_bytes(archive, ".stepframe-user.Dockerfile", path.read_bytes())
        stream.seek(0)
        image_id, _ = _run_build(
            client,
            stream,
            dockerfile=".stepframe-user.Dockerfile",
            tag=f"{LOCAL_REPOSITORY_PREFIX}/{name}-base:latest",
            settings=settings,
            what=f"the Dockerfile {path}",
        )
    return image_id


def build(request: ImageRequest, builder: Component) -> ImageRef:
    """The `build_image` hook's work for the ``docker`` flavor."""
    started = time.monotonic()
    the_plan = plan(request, builder)
    tag = the_plan.tag
    reference = f"{the_plan.repository}:{tag}"
    with _lock_for(reference):
        done = _done.get(reference)
        if done is not None:
            _reports.append(
                BuildReport(done.uri, done.digest, "in-process", time.monotonic() - started)
            )
            return done
        client = client_for(_docker_host(builder))
        auth = _auth_config(request)
        if the_plan.registry is not None:
            if request.prepare_repository is not None:
                request.prepare_repository(the_plan.repository)
            digest = _registry_digest(client, the_plan.registry, reference, auth)
            if digest is not None:
                ref = ImageRef(reference, digest)
                _done[reference] = ref
                _reports.append(
                    BuildReport(ref.uri, digest, "in-registry", time.monotonic() - started)
                )
                return ref
        elif _local_image(client, reference):
            ref = ImageRef(reference, None)
            _done[reference] = ref
            _reports.append(BuildReport(reference, None, "local", time.monotonic() - started))
            return ref
        report = BuildReport(reference, None, "built", context_bytes=the_plan.context_bytes)
        build_started = time.monotonic()
        _build(client, the_plan, reference, report, no_cache=_no_cache(builder))
        report.build_seconds = time.monotonic() - build_started
        digest = None
        if the_plan.registry is not None:
            push_started = time.monotonic()
            digest = _push(client, the_plan.registry, the_plan.repository, tag, report, auth)
            report.push_seconds = time.monotonic() - push_started
        ref = ImageRef(reference, digest)
        report.digest = digest
        report.seconds = time.monotonic() - started
        _done[reference] = ref
        _reports.append(report)
        return ref


def _auth_config(request: ImageRequest) -> dict[str, str] | None:
    """The registry login from the registry's connector; None to use the engine's own."""
    credentials = request.registry_credentials
    if credentials is None:
        return None
    values = credentials.fresh().values
    auth = {"username": values["username"], "password": values["password"]}
    if values.get("registry"):
        auth["serveraddress"] = values["registry"]
    return auth


def _no_cache(builder: Component) -> bool:
    return bool(getattr(builder.config, "no_cache", False))


def _lock_for(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def _local_image(client: docker.DockerClient, reference: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        inspect_image(client, reference)
    except ImageNotFound:
        return False
    return True


def _registry_digest(
    client: docker.DockerClient,
    registry: str,
    reference: str,
    auth: dict[str, str] | None = None,
) -> str | None:
    """The digest the registry has for ``reference``, or None when it lacks the tag."""
    from docker.errors import APIError, NotFound

    try:
        data = inspect_distribution(client, reference, auth)
    except NotFound:
        return None
    except APIError as error:
        text = str(getattr(error, "explanation", None) or error)
        if re.search(r"manifest unknown|not found|name unknown", text, re.IGNORECASE):
            return None
        raise _registry_error(registry, text) from None
    return str(data["Descriptor"]["digest"])


def _registry_error(registry: str, text: str) -> RegistryError:
    # "no basic auth credentials": the engine has no login for a registry that wants one.
    if re.search(
        r"unauthorized|authentication required|denied|no basic auth credentials",
        text,
        re.IGNORECASE,
    ):
        return RegistryError(
            f"the container registry {registry} refused access ({text}); log in with "
            f"`docker login {registry.split('/')[0]}` or check the registry's connector"
        )
    return RegistryError(
        f"the container registry {registry} is unreachable ({text}); check that it runs and "
        "that the stack's container registry uri is right"
    )


def _context_archive(the_plan: BuildPlan, stream: Any) -> None:
    with _context.open_archive(stream) as archive:
        _context.add_bytes(archive, "Dockerfile", the_plan.dockerfile.encode())
        if the_plan.requirements:
            _context.add_bytes(archive, _dockerfile.REQUIREMENTS_PATH, the_plan.requirements)
        _context.add_bytes(archive, "stepframe/parity.py", the_plan.parity.encode())
        for source in the_plan.packages:
            if source.wheel is not None:
                info = source.wheel.stat()
                wheel = _context.ContextFile(source.wheel.name, source.wheel, info.st_size, 0o644)
                _context.add_tree(archive, [wheel], "stepframe/wheels")
        for name, path in the_plan.extra:
            if path.is_dir():
                _context.add_tree(archive, _extra_files(path), name)
            else:
                info = path.stat()
                _context.add_bytes(archive, name, path.read_bytes(), info.st_mode & 0o777)
        _context.add_tree(archive, the_plan.files, _dockerfile.CODE_PREFIX)


def _build(
    client: docker.DockerClient,
    the_plan: BuildPlan,
    reference: str,
    report: BuildReport,
    *,
    no_cache: bool = False,
) -> None:
    with tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024) as stream:
        _context_archive(the_plan, stream)
        stream.seek(0)
        _, stats = _run_build(
            client,
            stream,
            dockerfile="Dockerfile",
            tag=reference,
            settings=the_plan.settings,
            what=f"the image for {the_plan.code_root}",
            no_cache=no_cache,
        )
    report.steps, report.cached_steps = stats


_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")


def _run_build(
    client: docker.DockerClient,
    stream: Any,
    *,
    dockerfile: str,
    tag: str,
    settings: DockerSettings,
    what: str,
    no_cache: bool = False,
) -> tuple[str, tuple[int, int]]:
    """Run one build; return the image id and (steps, cached steps).

    :raises ImageBuildStepError: naming the failing step with its last output lines.
    """
    from docker.errors import APIError

    kwargs: dict[str, Any] = {
        "fileobj": stream,
        "custom_context": True,
        "dockerfile": dockerfile,
        "tag": tag,
        "rm": True,
        "forcerm": True,
        "decode": True,
        "network_mode": settings.network_mode,
        "buildargs": dict(settings.build_args),
        "nocache": no_cache,
    }
    if settings.platform:
        kwargs["platform"] = settings.platform
    step = ""
    output: list[str] = []
    steps = cached = 0
    image_id: str | None = None
    try:
        for chunk in _chunks(client.api.build(**kwargs)):
            if "error" in chunk or "errorDetail" in chunk:
                detail = chunk.get("errorDetail") or {}
                message = str(detail.get("message") or chunk.get("error") or "").strip()
                raise _step_error(what, step, output, message)
            aux = chunk.get("aux")
            if isinstance(aux, Mapping) and "ID" in aux:
                image_id = str(aux["ID"])
            text = chunk.get("stream")
            if not isinstance(text, str):
                continue
            for line in text.splitlines():
                match = _STEP.match(line.strip())
                if match:
                    step = line.strip()
                    steps += 1
                    output = []
                elif line.strip() == "---> Using cache":
                    cached += 1
                elif line.strip():
                    output.append(line.rstrip())
                    del output[:-200]
                found = re.match(r"^Successfully built ([0-9a-f]+)$", line.strip())
                if found and image_id is None:
                    image_id = found.group(1)
    except APIError as error:
        text = str(getattr(error, "explanation", None) or error)
        if "platform" in text.lower():
            raise DockerBuildError(
                f"building {what}: the engine refused platform {settings.platform!r} ({text}); "
                "set settings docker.platform to one the engine supports"
            ) from None
        raise DockerBuildError(f"building {what}: the engine refused the build: {text}") from None
    except (ConnectionError, OSError) as error:
        raise engine_error(error, None) from None
    if image_id is None:
        raise DockerBuildError(f"building {what}: the engine reported no image id")
    if not image_id.startswith("sha256:"):
        image_id = str(inspect_image(client, tag)["Id"])
    return image_id, (steps, cached)


def _chunks(stream: Iterable[Any]) -> Iterator[dict[str, Any]]:
    for chunk in stream:
        if isinstance(chunk, dict):
            yield chunk


def _step_error(what: str, step: str, output: list[str], message: str) -> DockerBuildError:
    last = tuple(output[-FAILED_STEP_LINES:])
    if _dockerfile.PARITY_MARKER in message or any(
        _dockerfile.PARITY_MARKER in line for line in last
    ):
        found = [line for line in last if _dockerfile.PARITY_MARKER in line]
        detail = found[-1] if found else message
        return ParityError(
            f"the image for {what.removeprefix('the image for ')} does not match the client: "
            f"{detail.split('failed: ', 1)[-1]}. Use a parent image with the client's Python "
            "(settings docker.parent_image) and install stepframe the same way as here"
        )
    shown = "\n".join(f"    {line}" for line in last) or "    (no output)"
    return ImageBuildStepError(
        f"building {what} failed at {step or 'the start'}:\n{shown}\n  {message}",
        step,
        last,
    )


def _push(
    client: docker.DockerClient,
    registry: str,
    repository: str,
    tag: str,
    report: BuildReport,
    auth: dict[str, str] | None = None,
) -> str:
    """Push ``repository:tag``; return the digest the registry gives it."""
    from docker.errors import APIError

    sizes: dict[str, int] = {}
    pushed: set[str] = set()
    existing: set[str] = set()
    digest: str | None = None
    try:
        pushing = client.api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth)
        for chunk in _chunks(pushing):
            if "error" in chunk or "errorDetail" in chunk:
                detail = chunk.get("errorDetail") or {}
                raise _registry_error(registry, str(detail.get("message") or chunk.get("error")))
            layer = chunk.get("id")
            status = str(chunk.get("status", ""))
            progress = chunk.get("progressDetail") or {}
            if layer and isinstance(progress, Mapping) and progress.get("total"):
                sizes[str(layer)] = int(progress["total"])
            if layer and status == "Pushed":
                pushed.add(str(layer))
            elif layer and status == "Layer already exists":
                existing.add(str(layer))
            aux = chunk.get("aux")
            if isinstance(aux, Mapping) and aux.get("Digest"):
                digest = str(aux["Digest"])
    except APIError as error:
        raise _registry_error(registry, str(getattr(error, "explanation", None) or error)) from None
    if digest is None:
        raise RegistryError(f"pushing {repository}:{tag} to {registry} gave no digest")
    report.pushed_layers = len(pushed)
    report.existing_layers = len(existing)
    report.pushed_bytes = sum(sizes.get(layer, 0) for layer in pushed)
    return digest


def registry_address(component: Component | None) -> str | None:
    return _registry_address(component)
