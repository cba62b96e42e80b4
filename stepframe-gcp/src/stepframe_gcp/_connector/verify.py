"""``stepframe connector verify`` for ``gcp``: who the connector is, and read-only checks of
what the components using it need.

Each check makes one cheap read-only call with the connector's token and says, when
Google refuses it, the method, the principal, the missing permission and the fix.
"""

from __future__ import annotations

from stepframe import Component, ConnectorError, ConnectorReport, ResourceRequest, StepframeError
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
    for resource in resources:
        if resource.kind == "object_store" and resource.resource_id:
            try:
                checks.append(_check_bucket(credentials, resource.resource_id))
            except StepframeError as error:
                refusals.append(f"{who}: {error}")
    if refusals:
        raise ConnectorError("\n".join(refusals))
    project = config.project or "(none: set --project)"
    return ConnectorReport(identity=f"{principal} (project {project})", checks=tuple(checks))


def _check_bucket(credentials: object, uri: str) -> str:
    """List at most one object below the store's root: storage.objects.list, read-only."""
    from stepframe_gcp._gcs.api import StorageApi, check
    from stepframe_gcp._gcs.uri import parse_gs_uri

    location = parse_gs_uri(uri)
    api = StorageApi(credentials)  # type: ignore[arg-type]
    answer = api.request(
        "GET",
        api.list_url(location.bucket),
        params={"prefix": location.name, "maxResults": "1", "fields": "items(name)"},
    )
    check(answer, f"listing {uri}", location, listing=True)
    return f"cloud storage {uri}: listable"
