"""stepframe hook implementations for Google Cloud (entry point ``gcp`` in group ``stepframe``).

Flavors: connector ``gcp``, artifact store ``gcs`` (URI scheme ``gs``), container
registry ``artifact-registry``, step operator ``vertex``.  The core calls
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
    JobHandle,
    JobNotFound,
    JobStatus,
    Launch,
    PlannedStep,
    ResourceRequest,
    hookimpl,
)
from stepframe_gcp._connector.config import GcpConnectorConfig
from stepframe_gcp._gcs.config import GcsArtifactStoreConfig
from stepframe_gcp._registry.config import FLAVOR as REGISTRY_FLAVOR
from stepframe_gcp._registry.config import ArtifactRegistryConfig
from stepframe_gcp._vertex.config import FLAVOR as OPERATOR_FLAVOR
from stepframe_gcp._vertex.config import VertexOperatorConfig, VertexSettings

__all__ = [
    "authenticate",
    "cancel_step",
    "check_step",
    "find_job",
    "open_artifact_store",
    "poll_step",
    "prepare_repository",
    "register_flavors",
    "submit_step",
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
    register(
        Flavor(
            kind=ComponentKind.CONTAINER_REGISTRY,
            name=REGISTRY_FLAVOR,
            config_class=ArtifactRegistryConfig,
            description="Artifact Registry; creates the repository, logs in through the connector",
        )
    )
    register(
        Flavor(
            kind=ComponentKind.STEP_OPERATOR,
            name=OPERATOR_FLAVOR,
            config_class=VertexOperatorConfig,
            settings_class=VertexSettings,
            description="runs each step as a Vertex AI CustomJob",
            needs_image=True,
            # Vertex AI runs x86-64 machines: an arm64 laptop's image would not start there.
            image_platform="linux/amd64",
        )
    )


@hookimpl
def check_step(step: PlannedStep, component: Component) -> list[str] | None:
    """The pre-flight: a vertex step's settings against Vertex AI's API description."""
    if component.kind is not ComponentKind.STEP_OPERATOR:
        return None
    from stepframe_gcp._vertex.preflight import step_problems

    return step_problems(step)


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


@hookimpl
def prepare_repository(
    registry: Component, repository: str, credentials: Credentials | None
) -> bool | None:
    from stepframe_gcp._registry.repository import ensure_repository

    return ensure_repository(registry, repository, credentials)


@hookimpl
def submit_step(
    launch: Launch, operator: Component, credentials: Credentials | None
) -> JobHandle | None:
    from stepframe_gcp._vertex.jobs import submit

    return submit(launch, operator, credentials)


@hookimpl
def poll_step(
    handle: JobHandle, credentials: Credentials | None, cursor: str | None
) -> JobStatus | None:
    from stepframe_gcp._vertex.jobs import poll

    return poll(handle, credentials, cursor)


@hookimpl
def cancel_step(handle: JobHandle, credentials: Credentials | None) -> bool | None:
    from stepframe_gcp._vertex.jobs import cancel

    return cancel(handle, credentials)


@hookimpl
def find_job(
    launch: Launch, operator: Component, credentials: Credentials | None
) -> JobHandle | JobNotFound | None:
    from stepframe_gcp._vertex.jobs import find_job as find_custom_job

    return find_custom_job(launch, operator, credentials)
