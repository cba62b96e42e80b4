"""Talking to the Docker engine: one client per engine address, and errors that say how to
fix the engine rather than show a connection traceback."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from stepframe_docker._errors import EngineUnavailableError

if TYPE_CHECKING:
    import docker

__all__ = [
    "client_for",
    "engine_address",
    "engine_calls",
    "engine_error",
    "forget_clients",
    "is_engine_failure",
]

DEFAULT_SOCKET = "/var/run/docker.sock"
# Builds and pushes stream for minutes; the read timeout is per chunk, not per call.
API_TIMEOUT_SECONDS = 600

_clients: dict[str, docker.DockerClient] = {}
_lock = threading.Lock()


def engine_address(docker_host: str | None) -> str:
    """The engine address calls for ``docker_host`` go to."""
    return docker_host or os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"


def _cause(error: BaseException, socket: str | None) -> str:
    """What went wrong, in one short line (requests nests the real cause deep inside)."""
    if socket is not None and not os.path.exists(socket):
        return f"there is no socket at {socket}"
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= 200 else text[:197] + "..."


def engine_error(error: BaseException, docker_host: str | None) -> EngineUnavailableError:
    """A connection failure as a message that says how to get the engine going."""
    where = engine_address(docker_host)
    text = f"{type(error).__name__}: {error}"
    socket = where[len("unix://") :] if where.startswith("unix://") else None
    cause = _cause(error, socket)
    if "PermissionError" in text or "Permission denied" in text:
        return EngineUnavailableError(
            f"not permitted to talk to the Docker engine at {where}: this user may not open "
            f"{socket or 'its socket'}. Add the user to the docker group "
            "(`sudo usermod -aG docker $USER`, then log in again) or run as root",
            cause=f"permission denied on {socket or where}",
        )
    if socket is not None and not os.path.exists(socket):
        return EngineUnavailableError(
            f"the Docker engine is not running: there is no socket at {socket}. Start it "
            "(`sudo systemctl start docker`, or `sudo dockerd &` where there is no systemd; "
            "on this project's CI machines `bash .ci/services.sh` does it), or point "
            "DOCKER_HOST or the component's docker_host at a running engine",
            cause=cause,
        )
    return EngineUnavailableError(
        f"the Docker engine at {where} does not answer ({cause}). Start it "
        "(`sudo systemctl start docker`, or `sudo dockerd &`) or fix DOCKER_HOST / docker_host",
        cause=cause,
    )


def is_engine_failure(error: BaseException) -> bool:
    """True when ``error`` says the engine could not be reached or stopped answering.

    The SDK raises requests' own errors (OSError subclasses) for a refused, reset or timed
    out connection, and `DockerException` for a client that cannot start; an `APIError`
    is the engine answering, so it is not one.
    """
    from docker.errors import APIError, DockerException

    return isinstance(error, (DockerException, OSError)) and not isinstance(error, APIError)


@contextlib.contextmanager
def engine_calls(docker_host: str | None) -> Iterator[None]:
    """Turn a lost engine connection inside the block into `EngineUnavailableError`."""
    try:
        yield
    except EngineUnavailableError:
        raise
    except Exception as error:
        if not is_engine_failure(error):
            raise
        raise engine_error(error, docker_host) from None


def client_for(docker_host: str | None = None) -> docker.DockerClient:
    """A connected client for the engine (``DOCKER_HOST`` or the local socket by default)."""
    key = engine_address(docker_host)
    with _lock:
        client = _clients.get(key)
        if client is not None:
            return client
        import docker
        from docker.errors import DockerException

        kwargs: dict[str, Any] = {"version": "auto", "timeout": API_TIMEOUT_SECONDS}
        try:
            if docker_host:
                client = docker.DockerClient(base_url=docker_host, **kwargs)
            else:
                client = docker.from_env(**kwargs)
            client.ping()
        except (DockerException, OSError) as error:
            raise engine_error(error, docker_host) from None
        _clients[key] = client
        return client


def forget_clients() -> None:
    """Drop cached clients (tests that start or stop engines)."""
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


def inspect_image(client: docker.DockerClient, reference: str) -> dict[str, Any]:
    """The engine's description of an image (raises ``docker.errors.ImageNotFound``)."""
    api: Any = client.api  # the stubs leave these calls untyped
    return dict(api.inspect_image(reference))


def inspect_distribution(
    client: docker.DockerClient, reference: str, auth_config: dict[str, str] | None = None
) -> dict[str, Any]:
    """What the registry says about ``reference``, asked through the engine."""
    api: Any = client.api
    return dict(api.inspect_distribution(reference, auth_config=auth_config))
