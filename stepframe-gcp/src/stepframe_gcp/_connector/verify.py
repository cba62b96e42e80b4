"""``stepframe connector verify`` for ``gcp``: who the connector is, and read-only checks of
what the components using it need.

Each check makes one cheap read-only call with the connector's token: the bucket
(``storage.objects.list``), the Artifact Registry repository (``repositories.get``) and,
when the connector names a project and a region, Vertex AI (``customJobs.list``).  Every
refusal is one line naming the method, the principal, the missing permission and the fix.
"""

from __future__ import annotations

import json
from typing import Any

from stepframe import (
    Component,
    ConnectorError,
    ConnectorReport,
    Credentials,
    ResourceRequest,
    StepframeError,
)
from stepframe_gcp._connector.auth import authenticate, principal_of
from stepframe_gcp._connector.config import GcpConnectorConfig

__all__ = ["verify"]


def verify(connector: Component, resources: list[ResourceRequest]) -> ConnectorReport:
    """Authenticate, then check each resource; every refusal is one line of the error."""
    config = connector.config
    assert isinstance(config, GcpConnectorConfig)
    credentials = authenticate(connector, ResourceRequest("generic"))
    principal = principal_of(connector)
    who = f"connector {connector.name!r} ({config.auth_method}, {principal})"
    checks: list[str] = []
    refusals: list[str] = []

    def run(check: Any, *args: Any) -> None:
        try:
            checks.append(check(credentials, *args))
        except StepframeError as error:
            refusals.append(f"{who}: {error}")

    for resource in resources:
        if resource.kind == "object_store" and resource.resource_id:
            run(_check_bucket, resource.resource_id)
        elif resource.kind == "container_registry" and resource.resource_id:
            run(_check_repository, resource.resource_id, config)
    if config.project and config.region:
        run(_check_vertex, config)
    if refusals:
        raise ConnectorError("\n".join(refusals))
    project = config.project or "(none: set --project)"
    return ConnectorReport(identity=f"{principal} (project {project})", checks=tuple(checks))


def _check_bucket(credentials: Credentials, uri: str) -> str:
    """List at most one object below the store's root: storage.objects.list, read-only."""
    from stepframe_gcp._gcs.api import StorageApi, check
    from stepframe_gcp._gcs.uri import parse_gs_uri

    location = parse_gs_uri(uri)
    api = StorageApi(credentials)
    answer = api.request(
        "GET",
        api.list_url(location.bucket),
        params={"prefix": location.name, "maxResults": "1", "fields": "items(name)"},
    )
    check(answer, f"listing {uri}", location, listing=True)
    return f"cloud storage {uri}: listable"


def _check_repository(credentials: Credentials, uri: str, config: GcpConnectorConfig) -> str:
    from googleapiclient.errors import HttpError

    from stepframe_gcp._registry.config import parse_registry_uri

    try:
        # The registry's uri; an image below it names the same repository.
        address = parse_registry_uri("/".join(uri.split("://", 1)[-1].split("/")[:3]))
    except ValueError as error:
        raise StepframeError(str(error)) from None
    endpoint = _endpoint(config, "artifactregistry", "https://artifactregistry.googleapis.com")
    repositories = _build("artifactregistry", endpoint).projects().locations()
    try:
        repositories.repositories().get(name=address.resource_name).execute(
            http=_http(credentials), num_retries=3
        )
    except HttpError as error:
        status = int(error.resp.status)
        if status == 404:
            return (
                f"artifact registry {address.uri}: no such repository yet (created on the "
                "first push unless the registry's create_repositories is off)"
            )
        raise _refused(
            error, "artifactregistry.repositories.get", address.uri,
            "roles/artifactregistry.writer on the repository",
        ) from None  # fmt: skip
    return f"artifact registry {address.uri}: repository readable"


def _check_vertex(credentials: Credentials, config: GcpConnectorConfig) -> str:
    from googleapiclient.errors import HttpError

    endpoint = _endpoint(config, "aiplatform", f"https://{config.region}-aiplatform.googleapis.com")
    parent = f"projects/{config.project}/locations/{config.region}"
    jobs = _build("aiplatform", endpoint).projects().locations().customJobs()
    try:
        jobs.list(parent=parent, pageSize=1).execute(http=_http(credentials), num_retries=3)
    except HttpError as error:
        raise _refused(
            error, "aiplatform.customJobs.list", parent, "roles/aiplatform.user in the project"
        ) from None
    return f"vertex ai {parent}: custom jobs listable"


def _endpoint(config: GcpConnectorConfig, api: str, default: str) -> str:
    """The connector's endpoint for ``api``, else gcloud's own override
    (``gcloud config set api_endpoint_overrides/API``, which gcloud also reads from
    ``CLOUDSDK_API_ENDPOINT_OVERRIDES_API``), else Google's."""
    import os

    found = config.endpoints.get(api) or os.environ.get(
        f"CLOUDSDK_API_ENDPOINT_OVERRIDES_{api.upper()}"
    )
    return (found or default).rstrip("/")


def _build(api: str, endpoint: str) -> Any:
    from stepframe_gcp._vertex.transport import api_client

    return api_client(api, "v1", endpoint)


def _http(credentials: Credentials) -> Any:
    from stepframe_gcp._vertex.transport import authorized_http

    return authorized_http(credentials)


def _refused(error: Any, permission: str, resource: str, role: str) -> StepframeError:
    status = int(error.resp.status)
    try:
        reason = str(json.loads(error.content)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        reason = str(status)
    if status in (401, 403):
        return StepframeError(
            f"{resource}: refused ({status}: {reason}); the principal needs {permission}: "
            f"grant {role}"
        )
    if status == 404:
        return StepframeError(
            f"{resource}: not found ({reason}); check the project and region, and that the "
            "API is enabled (`gcloud services enable aiplatform.googleapis.com "
            "artifactregistry.googleapis.com`)"
        )
    return StepframeError(f"{resource}: answered {status} ({reason})")
