"""The ``docker`` step operator: a step's image as a container on the local engine.

The container runs ``python -m stepframe.entrypoint MANIFEST_URI``, exactly what a cloud
job runs.  With the local artifact store (``file://`` URIs) the store's folder is mounted
at the same absolute path, so the URIs in the manifests mean the same inside and out.
Logs stream through `poll_step` with a timestamp cursor; the container is removed once it
has ended and its last lines are read.
"""

from __future__ import annotations

import calendar
import contextlib
import os
import threading
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stepframe import (
    Component,
    ImageRef,
    JobHandle,
    JobNotFound,
    JobState,
    JobStatus,
    Launch,
    SubmitAmbiguousError,
)
from stepframe_docker._engine import (
    client_for,
    engine_address,
    engine_calls,
    engine_error,
    inspect_image,
)
from stepframe_docker._errors import DockerError, EngineUnavailableError, RegistryError
from stepframe_docker._marks import ABANDONED, CANCEL, JobMarks, marked, marks_folder
from stepframe_docker._settings import (
    ENGINE_RETRIES,
    ENGINE_RETRY_SECONDS,
    DockerSettings,
    structure_settings,
)

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

__all__ = ["cancel", "find", "image_reference", "poll", "reap", "submit"]

FLAVOR = "docker"
LABEL = "stepframe.job"
# The marks folder of the project that launched a container, so ended containers of that
# project are found again by label (see `reap`).
MARKS_LABEL = "stepframe.marks"
# An ended container of this project that nobody removed for this long has no follower
# left (followers poll every few seconds and remove it), so `reap` removes it.  Long
# enough that a `run --resume` soon after a crash still reads the container's last lines.
UNFOLLOWED_SECONDS = 3600.0
_ACTIVE = ("created", "running", "restarting", "paused")

# Per process: consecutive polls that found no engine, the last state a poll saw, and the
# marks folders already reaped since the engine last answered.
_outages: dict[str, int] = {}
_last_state: dict[str, JobState] = {}
_reaped: set[Path] = set()
_state_lock = threading.Lock()


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
    folder = marks_folder(launch.workdir)
    _reap_quietly(client, folder)
    reference = image_reference(launch.image)
    with engine_calls(docker_host):
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
            MARKS_LABEL: str(folder),
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
                return _handle(operator, container, launch, settings, folder)
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
        lost = engine_error(error, docker_host)
        if _never_reached_the_engine(error):
            raise lost from None
        # The request may have been carried out: the container may exist, even run.
        raise SubmitAmbiguousError(
            f"step {launch.step!r}: the connection to the Docker engine broke while "
            f"creating and starting container {launch.job_name} ({lost.cause}); it may exist"
        ) from None
    return _handle(operator, container, launch, settings, folder)


def _never_reached_the_engine(error: BaseException) -> bool:
    """True when the failed call provably never reached the engine: connecting failed (no
    socket file, refused, not permitted).  The SDK connects lazily, so requests reports
    even those as "Connection aborted"; the error inside tells them apart.  Whether the
    socket exists *now* proves nothing: the engine may have stopped after the request."""
    text = repr(error)
    return any(
        sign in text
        for sign in ("FileNotFoundError", "ConnectionRefusedError", "PermissionError", "Errno 111")
    )


def find(launch: Launch, operator: Component) -> JobHandle | JobNotFound | None:
    """The container of a launch whose submit answer was lost, by its deterministic name.

    A container that was created but never started ran nothing: it is removed, and the
    job reported absent, so the core submits the attempt afresh.
    """
    from docker.errors import APIError, NotFound

    docker_host = getattr(operator.config, "docker_host", None)
    try:
        client = client_for(docker_host)
        with engine_calls(docker_host):
            try:
                container = client.containers.get(launch.job_name)
            except NotFound:
                return JobNotFound(f"the Docker engine has no container {launch.job_name}")
            if container.labels.get(LABEL) != launch.job_name:
                return None  # a container of that name that stepframe did not make
            if container.status == "created":
                try:
                    container.remove(force=True)
                except NotFound:
                    pass
                except APIError:
                    return None
                return JobNotFound(
                    f"container {launch.job_name} was created but never started; removed"
                )
    except EngineUnavailableError:
        return None  # cannot tell now; the core asks again later
    return _handle(operator, container, launch, _settings(launch), marks_folder(launch.workdir))


def _handle(
    operator: Component,
    container: Container,
    launch: Launch,
    settings: DockerSettings,
    folder: Path,
) -> JobHandle:
    config = operator.config
    return JobHandle(
        flavor=FLAVOR,
        operator=operator.name,
        job_id=str(container.id),
        data={
            "container": str(container.id),
            "name": launch.job_name,
            "docker_host": getattr(config, "docker_host", None),
            "stop_timeout": settings.stop_timeout,
            # For polls and cancels from any process: where the job's marks live, and
            # what to tell the user when the engine goes away.
            "marks": str(folder),
            "run_id": launch.run_id,
            "step": launch.step,
            "engine_retries": getattr(config, "engine_retries", ENGINE_RETRIES),
            "engine_retry_seconds": getattr(config, "engine_retry_seconds", ENGINE_RETRY_SECONDS),
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
    docker_host = handle.data.get("docker_host")
    marks = JobMarks.of(handle.data, handle.job_id)
    try:
        client = client_for(docker_host)
        with engine_calls(docker_host):
            status = _poll_container(client, handle, cursor, marks)
    except EngineUnavailableError as error:
        return _engine_not_answering(handle, cursor, error, marks)
    with _state_lock:
        _outages.pop(handle.job_id, None)
        if status.state.is_terminal:
            _last_state.pop(handle.job_id, None)
        else:
            _last_state[handle.job_id] = status.state
    _reap_quietly(client, marks.folder)
    return status


def _poll_container(
    client: docker.DockerClient, handle: JobHandle, cursor: str | None, marks: JobMarks
) -> JobStatus:
    from docker.errors import DockerException, NotFound

    try:
        container = client.containers.get(handle.job_id)
    except NotFound:
        # Removed already: by another process that saw it end (it recorded how), or by hand.
        ended = marks.recorded_end(cursor)
        if ended is not None:
            return ended
        if marks.has(CANCEL):
            return JobStatus(JobState.CANCELLED, (), cursor, detail="container removed")
        # Nothing recorded: the result manifest decides.
        return JobStatus(JobState.SUCCEEDED, (), cursor, detail="container already removed")
    state = container.attrs.get("State", {})
    status = str(state.get("Status", ""))
    lines, next_cursor = _read_logs(container, cursor)
    if status in _ACTIVE:
        if marks.has(ABANDONED):
            marks.unmark(ABANDONED)  # followed again (a resume): no longer anyone's to reap
        job_state = JobState.PENDING if status == "created" else JobState.RUNNING
        return JobStatus(job_state, lines, next_cursor, detail=status, poll_after=0.2)
    ended = _ended(state, marks, lines, next_cursor)
    marks.record_end(ended)
    with contextlib.suppress(DockerException, OSError):  # left for `reap` otherwise
        container.remove(force=True)
    return ended


def _ended(
    state: dict[str, Any], marks: JobMarks, lines: tuple[str, ...], cursor: str | None
) -> JobStatus:
    """The final status of an ended container, from its State and the job's marks."""
    code = int(state.get("ExitCode", -1))
    if code == 0:
        return JobStatus(JobState.SUCCEEDED, lines, cursor)
    if marks.has(CANCEL):
        # Stopped through cancel_step, by this process or another: 143 (SIGTERM) or 137.
        return JobStatus(JobState.CANCELLED, lines, cursor, detail="stopped")
    if state.get("OOMKilled"):
        reason = "container ran out of memory (OOMKilled)"
    else:
        reason = f"container exited with status {code}"
    if state.get("Error"):
        reason += f": {state['Error']}"
    if marks.has(ABANDONED):
        reason += " while the Docker engine was not answering (a stopping engine stops them)"
    return JobStatus(JobState.FAILED, lines, cursor, failure_reason=reason)


def _engine_not_answering(
    handle: JobHandle, cursor: str | None, error: EngineUnavailableError, marks: JobMarks
) -> JobStatus:
    """A poll that found no engine: the last known state, a few times, then one clear error."""
    tries = int(handle.data.get("engine_retries", ENGINE_RETRIES))
    wait = float(handle.data.get("engine_retry_seconds", ENGINE_RETRY_SECONDS))
    with _state_lock:
        _reaped.discard(marks.folder)  # reap again once the engine is back
        failures = _outages.get(handle.job_id, 0) + 1
        if failures <= tries:
            _outages[handle.job_id] = failures
            return JobStatus(
                _last_state.get(handle.job_id, JobState.RUNNING),
                (),
                cursor,
                detail=f"the Docker engine does not answer; waiting for it ({failures}/{tries})",
                poll_after=wait,
            )
        _outages.pop(handle.job_id, None)
        _last_state.pop(handle.job_id, None)
    marks.mark(ABANDONED)
    name = handle.data.get("name") or handle.job_id[:12]
    step = handle.data.get("step")
    run_id = handle.data.get("run_id") or "RUN_ID"
    waited = f" (asked {tries + 1} times over {tries * wait:.0f} s)" if tries else ""
    address = engine_address(handle.data.get("docker_host"))
    raise EngineUnavailableError(
        f"the Docker engine at {address} stopped answering while "
        f"{f'step {step!r} ran in ' if step else ''}container {name}: {error.cause}{waited}. "
        f"Start the Docker engine (dockerd) and run `stepframe run --resume {run_id}`: the "
        "container is followed again if it still runs, and removed once it has ended",
        cause=error.cause,
    )


def cancel(handle: JobHandle) -> bool:
    from docker.errors import APIError, NotFound

    docker_host = handle.data.get("docker_host")
    marks = JobMarks.of(handle.data, handle.job_id)
    marked_here = False
    try:
        client = client_for(docker_host)
        with engine_calls(docker_host):
            try:
                container = client.containers.get(handle.job_id)
            except NotFound:
                return True
            if container.status not in _ACTIVE:
                return True  # it ended by itself: its end is not a cancel
            # The mark goes first: the process that sees the container end may be another.
            marked_here = not marks.has(CANCEL)
            marks.mark(CANCEL)
            try:
                # Sent now, not from a thread: the caller (`jobs stop`, a one-off script)
                # may exit at once, and the step must get its SIGTERM all the same.
                container.kill(signal="SIGTERM")
            except NotFound:
                return True
            except APIError as error:
                if error.status_code == 409:  # not running any more
                    return True
                raise DockerError(
                    f"the Docker engine refused to stop container {container.name}: "
                    f"{error.explanation or error}"
                ) from None
    except EngineUnavailableError as error:
        if marked_here:
            marks.unmark(CANCEL)  # not stopped: its end must not read as a cancel
        name = handle.data.get("name") or handle.job_id[:12]
        raise EngineUnavailableError(
            f"cannot stop container {name}: the Docker engine at {engine_address(docker_host)} "
            f"does not answer ({error.cause}); start the Docker engine (dockerd) and try again",
            cause=error.cause,
        ) from None
    timeout = int(handle.data.get("stop_timeout", 10))

    def stop_or_kill() -> None:
        # The engine sends SIGKILL if the step outlives its stop timeout.  Best effort in a
        # background thread: whatever happens, the next poll reports how the container
        # ended, so nothing here is worth a traceback.
        with contextlib.suppress(Exception):
            container.stop(timeout=timeout)

    threading.Thread(target=stop_or_kill, name=f"stop-{container.short_id}", daemon=True).start()
    return True


def reap(client: docker.DockerClient, folder: Path) -> list[str]:
    """Remove the ended step containers of the project whose marks live in ``folder`` that
    nobody will remove: given up on while the engine was away, cancelled, or ended long
    ago.  Records how each ended first, so a later poll still reports it.

    :return: the names of the containers removed.
    """
    from docker.errors import APIError

    candidates = set(marked(folder, ABANDONED)) | set(marked(folder, CANCEL))
    ended = client.containers.list(
        all=True,
        filters={"label": f"{MARKS_LABEL}={folder}", "status": ["exited", "dead"]},
    )
    now = time.time()
    for container in ended:
        finished = str(container.attrs.get("State", {}).get("FinishedAt", ""))
        try:
            finished_at = _parse_timestamp(finished)[0]
        except (ValueError, IndexError):
            finished_at = 0
        if now - finished_at > UNFOLLOWED_SECONDS:
            candidates.add(str(container.id))
    removed: list[str] = []
    for container_id in sorted(candidates):
        try:
            container = client.containers.get(container_id)
            state = container.attrs.get("State", {})
            if str(state.get("Status", "")) in _ACTIVE:
                continue
            marks = JobMarks(folder, str(container.id))
            marks.record_end(_ended(state, marks, (), None))
            container.remove(force=True)
        except APIError:  # removed meanwhile (another process reaps too), or being removed
            continue
        removed.append(str(container.name))
    return removed


def _reap_quietly(client: docker.DockerClient, folder: Path) -> None:
    """`reap` once per process and folder, and again after the engine was away;
    housekeeping never fails the job it runs beside."""
    from docker.errors import DockerException

    with _state_lock:
        if folder in _reaped:
            return
        _reaped.add(folder)
    try:
        reap(client, folder)
    except (DockerException, OSError):
        with _state_lock:
            _reaped.discard(folder)
