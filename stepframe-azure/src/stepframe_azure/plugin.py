"""stepframe hook implementations for Azure (entry point ``azure`` in group ``stepframe``).

Flavors: connector ``azure``, artifact store ``azure-blob`` (URI scheme ``az``), container
registry ``acr``, step operator ``azureml``.  The core calls each hook here only for
components and URIs of these flavors (hook contract, second edition), so no hook checks
the flavor itself.  This module imports attrs config classes only: the azure libraries
are imported inside the hooks, when an Azure component is actually used, so loading the
plugin stays cheap.  ACR creates a repository on the first push, so there is no
``prepare_repository`` here.
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
from stepframe_azure._acr.config import FLAVOR as REGISTRY_FLAVOR
from stepframe_azure._acr.config import AcrConfig
from stepframe_azure._azureml.config import FLAVOR as OPERATOR_FLAVOR
from stepframe_azure._azureml.config import AzureMLOperatorConfig, AzureMLSettings
from stepframe_azure._blob.config import FLAVOR as STORE_FLAVOR
from stepframe_azure._blob.config import URI_SCHEMES, AzureBlobStoreConfig
from stepframe_azure._connector.config import FLAVOR as CONNECTOR_FLAVOR
from stepframe_azure._connector.config import AzureConnectorConfig

__all__ = [
    "authenticate",
    "cancel_step",
    "check_step",
    "find_job",
    "open_artifact_store",
    "poll_step",
    "register_flavors",
    "submit_step",
    "verify_connector",
]


@hookimpl
def register_flavors(register: Callable[[Flavor], None]) -> None:
    register(
        Flavor(
            kind=ComponentKind.CONNECTOR,
            name=CONNECTOR_FLAVOR,
            config_class=AzureConnectorConfig,
            description=(
                "Azure credentials: the default credential chain, a service principal "
                "(secret or certificate), a managed identity or an access token"
            ),
        )
    )
    register(
        Flavor(
            kind=ComponentKind.ARTIFACT_STORE,
            name=STORE_FLAVOR,
            config_class=AzureBlobStoreConfig,
            description="artifacts in a Blob Storage container, streamed, written once",
            uri_schemes=URI_SCHEMES,
        )
    )
    register(
        Flavor(
            kind=ComponentKind.CONTAINER_REGISTRY,
            name=REGISTRY_FLAVOR,
            config_class=AcrConfig,
            description="Azure Container Registry; logs in through the connector",
        )
    )
    register(
        Flavor(
            kind=ComponentKind.STEP_OPERATOR,
            name=OPERATOR_FLAVOR,
            config_class=AzureMLOperatorConfig,
            settings_class=AzureMLSettings,
            description="runs each step as an Azure Machine Learning command job",
            needs_image=True,
            # AzureML's VM sizes are x86-64: an arm64 laptop's image would not start there.
            image_platform="linux/amd64",
        )
    )


@hookimpl
def check_step(step: PlannedStep, component: Component) -> list[str] | None:
    """The pre-flight: an azureml step's settings against AzureML's own job schema."""
    if component.kind is not ComponentKind.STEP_OPERATOR:
        return None
    from stepframe_azure._azureml.preflight import step_problems

    return step_problems(step)


@hookimpl
def authenticate(connector: Component, resource: ResourceRequest) -> Credentials | None:
    from stepframe_azure._connector.auth import authenticate as connector_authenticate

    return connector_authenticate(connector, resource)


@hookimpl
def verify_connector(
    connector: Component, resources: list[ResourceRequest]
) -> ConnectorReport | None:
    from stepframe_azure._connector.verify import verify

    return verify(connector, resources)


@hookimpl
def open_artifact_store(uri: str, credentials: Credentials | None) -> ArtifactStore | None:
    from stepframe_azure._blob.store import AzureBlobArtifactStore

    return AzureBlobArtifactStore.open(uri, credentials)


@hookimpl
def submit_step(
    launch: Launch, operator: Component, credentials: Credentials | None
) -> JobHandle | None:
    from stepframe_azure._azureml.jobs import submit

    return submit(launch, operator, credentials)


@hookimpl
def poll_step(
    handle: JobHandle, credentials: Credentials | None, cursor: str | None
) -> JobStatus | None:
    from stepframe_azure._azureml.jobs import poll

    return poll(handle, credentials, cursor)


@hookimpl
def cancel_step(handle: JobHandle, credentials: Credentials | None) -> bool | None:
    from stepframe_azure._azureml.jobs import cancel

    return cancel(handle, credentials)


@hookimpl
def find_job(
    launch: Launch, operator: Component, credentials: Credentials | None
) -> JobHandle | JobNotFound | None:
    from stepframe_azure._azureml.jobs import find_job as find_command_job

    return find_command_job(launch, operator, credentials)
