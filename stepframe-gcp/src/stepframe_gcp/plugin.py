"""stepframe hook implementations for Google Cloud (entry point ``gcp`` in group ``stepframe``).

Flavors: connector ``gcp``, artifact store ``gcs`` (URI scheme ``gs``).  The core calls
each hook here only for components and URIs of these flavors (hook contract, second
edition), so no hook checks the flavor itself.  This module imports attrs config classes
only: google-auth and the API clients are imported inside the hooks, when a Google Cloud
component is actually used, so loading the plugin stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable

from stepframe import (
    ArtifactStore,
    Component,
    ComponentKind,
    ConnectorReport,
    Credentials,
    Flavor,
    ResourceRequest,
    hookimpl,
)
from stepframe_gcp._connector.config import GcpConnectorConfig
from stepframe_gcp._gcs.config import GcsArtifactStoreConfig

__all__ = [
    "authenticate",
    "open_artifact_store",
    "register_flavors",
    "verify_connector",
]

CONNECTOR_FLAVOR = "gcp"
STORE_FLAVOR = "gcs"


@hookimpl
def register_flavors(register: Callable[[Flavor], None]) -> None:
    register(
        Flavor(
            kind=ComponentKind.CONNECTOR,
            name=CONNECTOR_FLAVOR,
            config_class=GcpConnectorConfig,
            description=(
                "Google Cloud credentials: Application Default Credentials, a service-account "
                "key, an OAuth2 token, impersonation or workload identity federation"
            ),
        )
    )
    register(
        Flavor(
            kind=ComponentKind.ARTIFACT_STORE,
            name=STORE_FLAVOR,
            config_class=GcsArtifactStoreConfig,
            description="artifacts in a Cloud Storage bucket, streamed, written once",
            uri_schemes=("gs",),
        )
    )


@hookimpl
def authenticate(connector: Component, resource: ResourceRequest) -> Credentials | None:
    from stepframe_gcp._connector.auth import authenticate as connector_authenticate

    return connector_authenticate(connector, resource)


@hookimpl
def verify_connector(
    connector: Component, resources: list[ResourceRequest]
) -> ConnectorReport | None:
    from stepframe_gcp._connector.verify import verify

    return verify(connector, resources)


@hookimpl
def open_artifact_store(uri: str, credentials: Credentials | None) -> ArtifactStore | None:
    from stepframe_gcp._gcs.store import GcsArtifactStore

    return GcsArtifactStore.open(uri, credentials)
