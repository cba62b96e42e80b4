"""The ``docker`` image builder: content-hashed tags, build only what changed, push, digest.

The tag is a hash of everything that goes into the image (`_plan`).  If the registry
already has it, nothing is built or pushed (`_registry`); identical requests within one
process are answered once (`Builds`).  Otherwise the engine builds the generated
Dockerfile (`_dockerfile`), whose layer order makes a code-only change rebuild and push
one thin layer, and the build's stream (`_stream`) reports the step it is on and the
bytes pulled and pushed.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs

from stepframe import Component, ConfigError, ImageRef, ImageRequest
from stepframe_docker import _context, _dockerfile, _plan, _registry
from stepframe_docker._engine import client_for, engine_error, inspect_image
from stepframe_docker._errors import DockerBuildError, ParentImageError
from stepframe_docker._plan import BuildPlan, Parent
from stepframe_docker._settings import DockerSettings
from stepframe_docker._stream import BuildStream, LayerBytes, Progress, chunks

if TYPE_CHECKING:
    import docker

__all__ = [
    "BuildReport",
    "Builds",
    "build",
    "build_reports",
    "forget_builds",
    "registry_address",
]

registry_address = _plan.registry_address


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


class Builds:
    """The images this process built or found, and what each request did, both bounded.

    Identical requests at the same time build once: each reference has a lock while
    anyone asks for it (and none after, so the locks do not pile up either).

    :param remembered: how many answered references to keep (least recently used go).
    :param reports: how many reports to keep (oldest go).
    """

    def __init__(self, remembered: int = 256, reports: int = 1024) -> None:
        self.remembered = remembered
        self._done: OrderedDict[str, ImageRef] = OrderedDict()
        self._reports: deque[BuildReport] = deque(maxlen=reports)
        self._locks: dict[str, tuple[threading.Lock, int]] = {}
        self._guard = threading.Lock()

    def reports(self) -> list[BuildReport]:
        with self._guard:
            return list(self._reports)

    def forget(self) -> None:
        with self._guard:
            self._done.clear()
            self._reports.clear()

    def report(self, report: BuildReport) -> None:
        with self._guard:
            self._reports.append(report)

    def answered(self, reference: str) -> ImageRef | None:
        with self._guard:
            ref = self._done.get(reference)
            if ref is not None:
                self._done.move_to_end(reference)
            return ref

    def remember(self, reference: str, ref: ImageRef) -> None:
        with self._guard:
            self._done[reference] = ref
            self._done.move_to_end(reference)
            while len(self._done) > self.remembered:
                self._done.popitem(last=False)

    def lock_count(self) -> int:
        with self._guard:
            return len(self._locks)

    @contextmanager
    def exclusive(self, reference: str) -> Iterator[None]:
        """Hold ``reference``'s lock; it is dropped when nobody holds or waits for it."""
        with self._guard:
            lock, users = self._locks.get(reference, (threading.Lock(), 0))
            self._locks[reference] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[reference]
                if users == 1:
                    del self._locks[reference]
                else:
                    self._locks[reference] = (lock, users - 1)


# This process's builds: what `build_reports` and `forget_builds` see.
BUILDS = Builds()


def build_reports() -> list[BuildReport]:
    """Every build request answered in this process, oldest first (the newest 1024)."""
    return BUILDS.reports()


def forget_builds() -> None:
    """Forget this process's answers, so the next request asks the registry again."""
    BUILDS.forget()


def platform_source(request: ImageRequest) -> str:
    """Who asked for the image's platform, for messages."""
    if request.platform is not None:
        return "this step's operator runs images on that platform only"
    return "settings docker.platform"


def _docker_host(component: Component) -> str | None:
    return getattr(component.config, "docker_host", None)


def _no_cache(builder: Component) -> bool:
    return bool(getattr(builder.config, "no_cache", False))


def resolve_parent(
    client: docker.DockerClient,
    request: ImageRequest,
    settings: DockerSettings,
    progress: Progress | None = None,
) -> Parent:
    """The parent image and its id: pulled if missing, or built from a user Dockerfile."""
    reference = _plan.parent_reference(request, settings)
    if reference is None:
        code_root = _plan.code_root_of(request)
        name = _plan.image_name(settings, code_root)
        image_id = _build_user_dockerfile(
            client, settings, code_root, name, progress, platform_source(request)
        )
        return Parent(image_id, image_id)
    image_id = _parent_id(client, reference, settings.pull_parent, settings.platform, progress)
    return Parent(reference, image_id)


def _parent_id(
    client: docker.DockerClient,
    parent: str,
    pull: bool,
    platform: str,
    progress: Progress | None = None,
) -> str:
    """The parent image's id, pulling it (for ``platform``) if the engine does not have
    it (or ``pull``).

    :raises ParentImageError: the engine's copy is of another platform: the legacy
        builder would build on it anyway, and the image would not run where it must.
    """
    from docker.errors import APIError, ImageNotFound

    if not pull:
        try:
            return _parent_of_platform(parent, inspect_image(client, parent), platform)
        except ImageNotFound:
            pass
        except APIError as error:
            raise ParentImageError(f"cannot inspect parent image {parent!r}: {error}") from None
    repository, tag = _split_reference(parent)
    pulled = LayerBytes("pulling", parent, progress)
    try:
        stream = client.api.pull(repository, tag=tag, stream=True, decode=True, platform=platform)
        for chunk in chunks(stream):
            if "error" in chunk or "errorDetail" in chunk:
                detail = chunk.get("errorDetail") or {}
                raise APIError(str(detail.get("message") or chunk.get("error")))
            pulled.feed(chunk)
        return _parent_of_platform(parent, inspect_image(client, parent), platform)
    except (APIError, ImageNotFound) as error:
        explanation = getattr(error, "explanation", None) or str(error)
        raise ParentImageError(
            f"the parent image {parent!r} is not on the Docker engine and cannot be pulled: "
            f"{explanation}. Pull or build it first, or set settings docker.parent_image "
            "(or the image builder's parent_image) to an image you have"
        ) from None


def _parent_of_platform(parent: str, info: dict[str, Any], platform: str) -> str:
    """The parent's image id, once its platform is known to be ``platform``."""
    have = image_platform(info)
    if not platform_matches(have, platform):
        raise ParentImageError(
            f"the parent image {parent!r} on the Docker engine is {have}, but the image "
            f"must be built for {platform}: get that variant (`docker pull --platform "
            f"{platform} {parent}`) or set settings docker.parent_image to a {platform} image"
        )
    return str(info["Id"])


def _split_reference(reference: str) -> tuple[str, str | None]:
    if "@" in reference:
        repository, digest = reference.split("@", 1)
        return repository, digest
    last = reference.rsplit("/", 1)[-1]
    if ":" in last:
        repository, tag = reference.rsplit(":", 1)
        return repository, tag
    return reference, "latest"


def _build_user_dockerfile(
    client: docker.DockerClient,
    settings: DockerSettings,
    code_root: Path,
    name: str,
    progress: Progress | None,
    platform_from: str,
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
        result = _run_build(
            client,
            stream,
            dockerfile=".stepframe-user.Dockerfile",
            tag=f"{_plan.LOCAL_REPOSITORY_PREFIX}/{name}-base:latest",
            settings=settings,
            what=f"the Dockerfile {path}",
            progress=progress,
            platform_source=platform_from,
        )
    assert result.image_id is not None  # _run_build raises otherwise
    return result.image_id


def plan_for(request: ImageRequest, builder: Component) -> BuildPlan:
    """The plan for a request, resolving its parent image on the builder's engine."""
    settings = _plan.settings_for(request, builder)
    client = client_for(_docker_host(builder))
    parent = resolve_parent(client, request, settings, request.progress)
    return _plan.plan(request, builder, parent)


def build(request: ImageRequest, builder: Component, builds: Builds = BUILDS) -> ImageRef:
    """The `build_image` hook's work for the ``docker`` flavor."""
    started = time.monotonic()
    progress = request.progress
    the_plan = plan_for(request, builder)
    tag = the_plan.tag
    reference = f"{the_plan.repository}:{tag}"

    def answer(ref: ImageRef, report: BuildReport) -> ImageRef:
        builds.remember(reference, ref)
        builds.report(report)
        return ref

    with builds.exclusive(reference):
        done = builds.answered(reference)
        if done is not None:
            elapsed = time.monotonic() - started
            builds.report(BuildReport(done.uri, done.digest, "in-process", elapsed))
            return done
        client = client_for(_docker_host(builder))
        auth = _registry.auth_config(request)
        if the_plan.registry is not None:
            if request.prepare_repository is not None:
                request.prepare_repository(the_plan.repository)
            digest = _registry.registry_digest(client, the_plan.registry, reference, auth)
            if digest is not None:
                elapsed = time.monotonic() - started
                return answer(
                    ImageRef(reference, digest),
                    BuildReport(reference, digest, "in-registry", elapsed),
                )
        elif _local_image(client, reference):
            elapsed = time.monotonic() - started
            return answer(ImageRef(reference), BuildReport(reference, None, "local", elapsed))
        report = BuildReport(reference, None, "built", context_bytes=the_plan.context_bytes)
        build_started = time.monotonic()
        with tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024) as stream:
            _context_archive(the_plan, stream)
            stream.seek(0)
            result = _run_build(
                client,
                stream,
                dockerfile="Dockerfile",
                tag=reference,
                settings=the_plan.settings,
                what=f"the image for {the_plan.code_root}",
                no_cache=_no_cache(builder),
                progress=progress,
                platform_source=platform_source(request),
            )
        report.steps, report.cached_steps = result.steps, result.cached
        report.build_seconds = time.monotonic() - build_started
        if the_plan.registry is not None:
            push_started = time.monotonic()
            pushed = _registry.push(
                client, the_plan.registry, the_plan.repository, tag, auth, progress
            )
            report.push_seconds = time.monotonic() - push_started
            report.digest = pushed.digest
            report.pushed_layers = pushed.pushed_layers
            report.existing_layers = pushed.existing_layers
            report.pushed_bytes = pushed.pushed_bytes
        report.seconds = time.monotonic() - started
        return answer(ImageRef(reference, report.digest), report)


# The engine's names for an architecture, and the one Docker uses (`uname -m` style
# names appear in some images' configs).
_ARCHITECTURE_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64"}


def image_platform(info: dict[str, Any]) -> str:
    """``OS/ARCH[/VARIANT]`` of an image, from the engine's inspect answer."""
    architecture = str(info.get("Architecture") or "unknown")
    parts = [
        str(info.get("Os") or "unknown"),
        _ARCHITECTURE_ALIASES.get(architecture, architecture),
    ]
    if info.get("Variant"):
        parts.append(str(info["Variant"]))
    return "/".join(parts)


def platform_matches(built: str, wanted: str) -> bool:
    """Whether an image of platform ``built`` runs where ``wanted`` is asked for; a
    variant counts only when ``wanted`` names one (``linux/arm64`` takes ``.../v8``)."""
    have, want = built.split("/"), wanted.split("/")
    want[1:2] = [_ARCHITECTURE_ALIASES.get(want[1], want[1])] if len(want) > 1 else []
    return have[: len(want)] == want


def _local_image(client: docker.DockerClient, reference: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        inspect_image(client, reference)
    except ImageNotFound:
        return False
    return True


def _context_archive(the_plan: BuildPlan, stream: IO[bytes]) -> None:
    with _context.open_archive(stream) as archive:
        _context.add_bytes(archive, "Dockerfile", the_plan.dockerfile.encode())
        _context.add_bytes(archive, _dockerfile.CONSTRAINTS_PATH, the_plan.constraints)
        if the_plan.requirements:
            _context.add_bytes(archive, _dockerfile.REQUIREMENTS_PATH, the_plan.requirements)
        _context.add_bytes(archive, _dockerfile.PARITY_PATH, the_plan.parity_script.encode())
        _context.add_bytes(archive, _dockerfile.EXPECTED_PATH, the_plan.expected.encode())
        for source in the_plan.packages:
            info = source.wheel.stat()
            wheel = _context.ContextFile(source.wheel.name, source.wheel, info.st_size, 0o644)
            _context.add_tree(archive, [wheel], "stepframe/wheels")
        for name, path in the_plan.extra:
            if path.is_dir():
                _context.add_tree(archive, _plan.extra_files(path), name)
            else:
                info = path.stat()
                _context.add_bytes(archive, name, path.read_bytes(), info.st_mode & 0o777)
        _context.add_tree(archive, the_plan.files, _dockerfile.CODE_PREFIX)


def _run_build(
    client: docker.DockerClient,
    stream: IO[bytes],
    *,
    dockerfile: str,
    tag: str,
    settings: DockerSettings,
    what: str,
    no_cache: bool = False,
    progress: Progress | None = None,
    platform_source: str = "settings docker.platform",
) -> BuildStream:
    """Run one build; the stream's state at its end (image id, steps, cached steps).

    The built image's platform is checked against ``settings.platform``: the legacy
    builder quietly builds on a parent of another platform (and takes cached layers of
    another platform), so an Apple-silicon laptop would otherwise push an arm64 image
    that fails only once SageMaker starts it ("exec format error").

    :param platform_source: who asked for the platform, for the error message.
    :raises ImageBuildStepError: naming the failing step with its last output lines.
    :raises DockerBuildError: the image is of another platform (its tag is removed).
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
    state = BuildStream(what, progress)
    try:
        for chunk in chunks(client.api.build(**kwargs)):
            state.feed(chunk)
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
    if state.image_id is None:
        raise DockerBuildError(f"building {what}: the engine reported no image id")
    built = inspect_image(client, tag)
    state.image_id = str(built["Id"])
    have = image_platform(built)
    if platform_matches(have, settings.platform):
        return state
    if state.cached and not no_cache:
        # The legacy builder's layer cache ignores the platform: a layer built for
        # another one is taken as a hit.  Once more without the cache.
        stream.seek(0)
        return _run_build(
            client,
            stream,
            dockerfile=dockerfile,
            tag=tag,
            settings=settings,
            what=what,
            no_cache=True,
            progress=progress,
            platform_source=platform_source,
        )
    _untag(client, tag)
    raise DockerBuildError(
        f"building {what}: the engine built a {have} image, but {settings.platform} was "
        f"asked for ({platform_source}): this Docker engine cannot build "
        f"{settings.platform} images. Use an engine that can (Docker Desktop emulates "
        f"other platforms; on Linux: `docker run --privileged --rm tonistiigi/binfmt "
        f"--install {settings.platform.split('/')[1]}`) or build on a {settings.platform} "
        "machine"
    )


def _untag(client: docker.DockerClient, tag: str) -> None:
    """Never leave a wrong image under a tag that promises another platform."""
    from docker.errors import APIError

    api: Any = client.api
    with contextlib.suppress(APIError):
        api.remove_image(tag, noprune=True)
