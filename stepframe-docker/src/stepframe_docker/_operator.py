"""The ``docker`` step operator: a step's image as a container on the local engine.

The container runs ``python -m stepframe.entrypoint MANIFEST_URI``, exactly what a cloud
job runs.  With the local artifact store (``file://`` URIs) the store's folder is mounted
at the same absolute path, so the URIs in the manifests mean the same inside and out.
Logs stream through `poll_step` with a timestamp cursor; the container is removed once it
has ended and its last lines are read.
"""

from __future__ import annotations

import calendar
import os
import threading
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stepframe import Component, ImageRef, JobHandle, JobState, JobStatus, Launch
from stepframe_docker._engine import client_for, engine_error, inspect_image
from stepframe_docker._errors import DockerError, RegistryError
from stepframe_docker._settings import DockerSettings, structure_settings

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

__all__ = ["cancel", "image_reference", "poll", "submit"]

FLAVOR = "docker"
LABEL = "stepframe.job"
# Containers this process asked to stop, so their end reads as cancelled.
_cancelled: set[str] = set()


def image_reference(image: ImageRef) -> str:
    """``repository@digest`` when there is a digest (steps run by digest), else the tag."""
    if image.digest and image.digest.startswith("sha256:"):
        repository = image.uri.split("@", 1)[0]
        last = repository.rsplit("/", 1)[-1]
        if ":" in last:
            repository = repository.rsplit(":", 1)[0]
        return f"{repository}@{image.digest}"
    return image.uri


def _settings(launch: Launch) -> DockerSettings:
    result: DockerSettings = structure_settings(
        launch.settings, f"step {launch.step!r} settings.docker"
    )
    return result


def _store_root(manifest_uri: str) -> Path | None:
    """The local folder of the artifact store a ``file://`` manifest lives in."""
    if urllib.parse.urlsplit(manifest_uri).scheme != "file":
        return None
    from stepframe import load_plugins

    # The core's own plugins only: they open file:// stores.
    store = load_plugins(env={"STEPFRAME_LOAD_PLUGINS": ""}).hooks.open_artifact_store(
        manifest_uri, None
    )
    parts = urllib.parse.urlsplit(store.root_uri)
    return Path(urllib.parse.unquote(parts.path))


def _device_requests(gpus: int) -> list[Any]:
    if not gpus:
        return []
    from docker.types import DeviceRequest

    return [DeviceRequest(count=gpus, capabilities=[["gpu"]])]


def _ensure_image(client: docker.DockerClient, reference: str) -> None:
    from docker.errors import APIError, ImageNotFound

    try:
        inspect_image(client, reference)
        return
    except ImageNotFound:
        pass
    repository, _, digest = reference.partition("@")
    try:
        if digest:
            client.api.pull(repository, tag=digest)
        else:
            client.api.pull(reference)
    except APIError as error:
        raise RegistryError(
            f"cannot pull the step's image {reference}: "
            f"{getattr(error, 'explanation', None) or error}"
        ) from None


def submit(launch: Launch, operator: Component) -> JobHandle:
    from docker.errors import APIError, DockerException, NotFound

    if launch.image is None:
        raise DockerError(
            f"step {launch.step!r}: the docker operator needs an image, and none was built; "
            "add an image builder to the stack"
        )
    settings = _settings(launch)
    docker_host = getattr(operator.config, "docker_host", None)
    client = client_for(docker_host)
    reference = image_reference(launch.image)
    _ensure_image(client, reference)
    environment = {
        **settings.environment,
        **launch.environment,
        "PYTHONUNBUFFERED": "1",
    }
    volumes = list(settings.volumes)
    user = settings.user
    store_root = _store_root(launch.manifest_uri)
    if store_root is not None:
        volumes.append(f"{store_root}:{store_root}:rw")
        if user is None and os.getuid() != 0:
            user = f"{os.getuid()}:{os.getgid()}"
            environment.setdefault("HOME", "/tmp")
    kwargs: dict[str, Any] = {
        "command": list(launch.command),
        "environment": environment,
        "network_mode": settings.network_mode,
        "volumes": volumes,
        "name": launch.job_name,
        "labels": {
            LABEL: launch.job_name,
            "stepframe.run": launch.run_id,
            "stepframe.step": launch.step,
        },
        "detach": True,
        "stop_signal": "SIGTERM",
        # A tiny init as PID 1 passes signals on (PID 1 itself ignores SIGTERM), so a
        # cancelled step stops at once instead of after the stop timeout.
        "init": True,
    }
    if user:
        kwargs["user"] = user
    if settings.mem_limit:
        kwargs["mem_limit"] = settings.mem_limit
    if settings.cpus:
        kwargs["nano_cpus"] = int(settings.cpus * 1e9)
    requests = _device_requests(settings.gpus)
    if requests:
        kwargs["device_requests"] = requests
    try:
        try:
            container = client.containers.create(reference, **kwargs)
        except APIError as error:
            if error.status_code != 409:  # 409: a container of that name exists
                raise
            container = client.containers.get(launch.job_name)
            if container.status == "running":  # an earlier submit of this very job
                return _handle(operator, container, launch, settings)
            container.remove(force=True)
            container = client.containers.create(reference, **kwargs)
        container.start()
    except NotFound as error:
        raise DockerError(f"step {launch.step!r}: {error.explanation or error}") from None
    except APIError as error:
        raise DockerError(
            f"step {launch.step!r}: the Docker engine refused to start the container: "
            f"{error.explanation or error}"
        ) from None
    except (DockerException, OSError) as error:
        raise engine_error(error, docker_host) from None
    return _handle(operator, container, launch, settings)


def _handle(
    operator: Component, container: Container, launch: Launch, settings: DockerSettings
) -> JobHandle:
    return JobHandle(
        flavor=FLAVOR,
        operator=operator.name,
        job_id=str(container.id),
        data={
            "container": str(container.id),
            "name": launch.job_name,
            "docker_host": getattr(operator.config, "docker_host", None),
            "stop_timeout": settings.stop_timeout,
        },
    )


def _parse_timestamp(text: str) -> tuple[int, int]:
    """RFC 3339 with nanoseconds (``2026-11-22T03:49:54.123456789Z``) as (seconds, nanos)."""
    main, _, fraction = text.rstrip("Z").partition(".")
    seconds = calendar.timegm(
        (
            int(main[0:4]),
            int(main[5:7]),
            int(main[8:10]),
            int(main[11:13]),
            int(main[14:16]),
            int(main[17:19]),
            0,
            0,
            0,
        )
    )
    return seconds, int((fraction + "000000000")[:9]) if fraction else 0


def _parse_cursor(cursor: str | None) -> tuple[tuple[int, int], int]:
    if not cursor:
        return (0, 0), 0
    stamp, _, count = cursor.partition(":")
    seconds, _, nanos = stamp.partition(".")
    return (int(seconds), int(nanos or 0)), int(count or 0)


def _read_logs(container: Container, cursor: str | None) -> tuple[tuple[str, ...], str | None]:
    """Log lines after the cursor, and the next cursor: ``SECONDS.NANOS:N``, the time of
    the last line seen and how many lines at exactly that time were seen."""
    start, seen_at_start = _parse_cursor(cursor)
    since = start[0] if start[0] > 0 else None
    try:
        raw = container.logs(stdout=True, stderr=True, timestamps=True, since=since)
    except Exception:  # a log driver without reading support: no lines, no failure
        return (), cursor
    lines: list[str] = []
    skipped = 0
    last, seen_at_last = start, seen_at_start
    for entry in raw.decode("utf-8", errors="replace").splitlines():
        stamp, _, text = entry.partition(" ")
        try:
            key = _parse_timestamp(stamp)
        except (ValueError, IndexError):
            lines.append(entry)
            continue
        if key < start:
            continue
        if key == start and skipped < seen_at_start:
            skipped += 1  # delivered by an earlier poll
            continue
        if key == last:
            seen_at_last += 1
        else:
            last, seen_at_last = key, 1
        lines.append(text)
    next_cursor = f"{last[0]}.{last[1]:09d}:{seen_at_last}" if last > (0, 0) else cursor
    return tuple(lines), next_cursor


def poll(handle: JobHandle, cursor: str | None) -> JobStatus:
    from docker.errors import DockerException, NotFound

    docker_host = handle.data.get("docker_host")
    client = client_for(docker_host)
    try:
        container = client.containers.get(handle.job_id)
    except NotFound:
        # Removed already (another process saw it end): the result manifest decides.
        return JobStatus(JobState.SUCCEEDED, (), cursor, detail="container already removed")
    except (DockerException, OSError) as error:
        raise engine_error(error, docker_host) from None
    state = container.attrs.get("State", {})
    status = str(state.get("Status", ""))
    if status in ("created", "running", "restarting", "paused"):
        lines, next_cursor = _read_logs(container, cursor)
        job_state = JobState.PENDING if status == "created" else JobState.RUNNING
        return JobStatus(job_state, lines, next_cursor, detail=status, poll_after=0.2)
    lines, next_cursor = _read_logs(container, cursor)
    code = int(state.get("ExitCode", -1))
    oom = bool(state.get("OOMKilled"))
    try:
        container.remove(force=True)
    except DockerException:
        pass
    if handle.job_id in _cancelled:
        _cancelled.discard(handle.job_id)
        return JobStatus(JobState.CANCELLED, lines, next_cursor, detail="stopped")
    if code == 0:
        return JobStatus(JobState.SUCCEEDED, lines, next_cursor)
    reason = (
        "container ran out of memory (OOMKilled)" if oom else f"container exited with status {code}"
    )
    if state.get("Error"):
        reason += f": {state['Error']}"
    return JobStatus(JobState.FAILED, lines, next_cursor, failure_reason=reason)


def cancel(handle: JobHandle) -> bool:
    from docker.errors import DockerException, NotFound

    client = client_for(handle.data.get("docker_host"))
    try:
        container = client.containers.get(handle.job_id)
    except NotFound:
        return True
    except DockerException as error:
        raise engine_error(error, handle.data.get("docker_host")) from None
    _cancelled.add(handle.job_id)
    timeout = int(handle.data.get("stop_timeout", 10))

    def stop() -> None:
        try:
            container.stop(timeout=timeout)
        except DockerException:
            pass

    threading.Thread(target=stop, name=f"stop-{container.short_id}", daemon=True).start()
    return True
