"""Make an Artifact Registry Docker repository ready for a push (``prepare_repository``).

Images are packages inside a repository and appear on their first push; the repository
itself must exist.  It is looked up with ``repositories.get`` and, when missing and the
registry allows it, created with ``repositories.create`` (format DOCKER) in the location
of its address.  The API client is google-api-python-client's (discovery document
``artifactregistry.v1``, shipped with it), on the same transport as the Vertex AI calls.
"""

from __future__ import annotations

import json
from typing import Any

from stepframe import Component, ConfigError, ConnectorError, Credentials, StepframeError
from stepframe_gcp._registry.config import ArtifactRegistryConfig

__all__ = ["ensure_repository"]

_RETRIES = 5


def ensure_repository(
    registry: Component, repository: str, credentials: Credentials | None
) -> bool:
    """True once the Artifact Registry repository ``repository`` is pushed into exists."""
    from googleapiclient.errors import HttpError

    config = registry.config
    assert isinstance(config, ArtifactRegistryConfig)
    address = config.address
    if repository != address.uri and not repository.startswith(address.uri + "/"):
        raise ConfigError(
            f"container registry {registry.name!r}: {repository} is not inside its "
            f"repository {address.uri}; push below the registry's uri"
        )
    from stepframe_gcp._vertex.transport import authorized_http

    repositories = _repositories(config)
    http = authorized_http(credentials)
    try:
        repositories.get(name=address.resource_name).execute(http=http, num_retries=_RETRIES)
        return True
    except HttpError as error:
        if int(error.resp.status) != 404:
            raise _refusal(
                error, address.resource_name, "artifactregistry.repositories.get"
            ) from None
    if not config.create_repositories:
        raise ConfigError(
            f"Artifact Registry repository {address.uri} does not exist and container "
            f"registry {registry.name!r} has create_repositories off; create it (`gcloud "
            f"artifacts repositories create {address.repository} --repository-format=docker "
            f"--location={address.location} --project={address.project}`)"
        )
    parent = f"projects/{address.project}/locations/{address.location}"
    try:
        repositories.create(
            parent=parent,
            repositoryId=address.repository,
            body={"format": "DOCKER", "description": "step images pushed by stepframe"},
        ).execute(http=http, num_retries=0)
    except HttpError as error:
        if int(error.resp.status) != 409:  # 409: created meanwhile by someone else
            raise _refusal(
                error, address.resource_name, "artifactregistry.repositories.create"
            ) from None
    return True


def _repositories(config: ArtifactRegistryConfig) -> Any:
    from stepframe_gcp._vertex.transport import api_client

    return (
        api_client("artifactregistry", "v1", config.endpoint).projects().locations().repositories()
    )


def _refusal(error: Any, name: str, permission: str) -> StepframeError:
    status = int(error.resp.status)
    try:
        reason = str(json.loads(error.content)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        reason = str(status)
    if status in (401, 403):
        return ConnectorError(
            f"Artifact Registry refused {permission} on {name} ({status}: {reason}); grant "
            "the connector's principal roles/artifactregistry.writer on the repository "
            "(roles/artifactregistry.admin to let stepframe create it)"
        )
    return StepframeError(f"Artifact Registry answered {status} for {name}: {reason}")
