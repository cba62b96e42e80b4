"""Registry I/O through the engine: does the registry have a tag, push one, and errors
that say whether the registry refused access or could not be reached."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

from stepframe import ImageRequest
from stepframe_docker._engine import inspect_distribution
from stepframe_docker._errors import RegistryError
from stepframe_docker._stream import LayerBytes, Progress, chunks

if TYPE_CHECKING:
    import docker

__all__ = ["Pushed", "auth_config", "push", "registry_digest", "registry_error"]

_ABSENT = re.compile(r"manifest unknown|not found|name unknown", re.IGNORECASE)
# "no basic auth credentials": the engine has no login for a registry that wants one.
_REFUSED = re.compile(
    r"unauthorized|authentication required|denied|no basic auth credentials", re.IGNORECASE
)


def auth_config(request: ImageRequest) -> dict[str, str] | None:
    """The registry login from the registry's connector; None to use the engine's own."""
    credentials = request.registry_credentials
    if credentials is None:
        return None
    values = credentials.fresh().values
    auth = {"username": values["username"], "password": values["password"]}
    if values.get("registry"):
        auth["serveraddress"] = values["registry"]
    return auth


def registry_error(registry: str, text: str) -> RegistryError:
    if _REFUSED.search(text):
        return RegistryError(
            f"the container registry {registry} refused access ({text}); log in with "
            f"`docker login {registry.split('/')[0]}` or check the registry's connector"
        )
    return RegistryError(
        f"the container registry {registry} is unreachable ({text}); check that it runs and "
        "that the stack's container registry uri is right"
    )


def registry_digest(
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
        if _ABSENT.search(text):
            return None
        raise registry_error(registry, text) from None
    return str(data["Descriptor"]["digest"])


@attrs.frozen
class Pushed:
    """What a push did: the digest, and the layers it uploaded or found there."""

    digest: str
    pushed_layers: int
    existing_layers: int
    pushed_bytes: int


def push(
    client: docker.DockerClient,
    registry: str,
    repository: str,
    tag: str,
    auth: dict[str, str] | None = None,
    progress: Progress | None = None,
) -> Pushed:
    """Push ``repository:tag``, reporting the bytes pushed so far."""
    from docker.errors import APIError

    moved = LayerBytes("pushing", "", progress)
    pushed: set[str] = set()
    existing: set[str] = set()
    digest: str | None = None
    try:
        pushing = client.api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth)
        for chunk in chunks(pushing):
            if "error" in chunk or "errorDetail" in chunk:
                detail = chunk.get("errorDetail") or {}
                raise registry_error(registry, str(detail.get("message") or chunk.get("error")))
            moved.feed(chunk)
            layer = chunk.get("id")
            status = str(chunk.get("status", ""))
            if layer and status == "Pushed":
                pushed.add(str(layer))
            elif layer and status == "Layer already exists":
                existing.add(str(layer))
            aux = chunk.get("aux")
            if isinstance(aux, Mapping) and aux.get("Digest"):
                digest = str(aux["Digest"])
    except APIError as error:
        raise registry_error(registry, str(getattr(error, "explanation", None) or error)) from None
    if digest is None:
        raise RegistryError(f"pushing {repository}:{tag} to {registry} gave no digest")
    return Pushed(
        digest,
        len(pushed),
        len(existing),
        sum(moved.total.get(layer, 0) for layer in pushed),
    )
