"""stepframe hook implementations for AWS (entry point ``aws`` in group ``stepframe``).

Flavors: connector ``aws``, artifact store ``s3`` (URI scheme ``s3``), container registry
``ecr``, step operator ``sagemaker``.  The core calls each hook here only for components,
jobs and URIs of these flavors (hook contract, second edition), so no hook checks the
flavor itself.  This module imports attrs config classes only: boto3 and the SageMaker
SDK are imported inside the hooks, when an AWS component is actually used, so loading
the plugin stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from stepframe import (
    ArtifactStore,
    Component,
    ComponentKind,
    ConnectorReport,
    CostEstimate,
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
from stepframe_aws._connector.config import AwsConnectorConfig
from stepframe_aws._ecr.config import EcrRegistryConfig
from stepframe_aws._s3.config import S3ArtifactStoreConfig
from stepframe_aws._sagemaker.config import FLAVOR as OPERATOR_FLAVOR
from stepframe_aws._sagemaker.config import (
    IMAGE_PLATFORM,
    SageMakerOperatorConfig,
    SageMakerSettings,
)

__all__ = [
    "authenticate",
    "cancel_step",
    "check_step",
    "estimate_cost",
    "find_job",
    "open_artifact_store",
    "poll_step",
    "prepare_repository",
    "register_flavors",
    "submit_step",
    "verify_connector",
]

CONNECTOR_FLAVOR = "aws"
STORE_FLAVOR = "s3"
REGISTRY_FLAVOR = "ecr"


@hookimpl
def register_flavors(register: Callable[[Flavor], None]) -> None:
    register(
        Flavor(
            kind=ComponentKind.CONNECTOR,
            name=CONNECTOR_FLAVOR,
            config_class=AwsConnectorConfig,
            description="AWS credentials: default chain, keys, session tokens or an assumed role",
        )
    )
    register(
        Flavor(
            kind=ComponentKind.ARTIFACT_STORE,
            name=STORE_FLAVOR,
            config_class=S3ArtifactStoreConfig,
            description="artifacts in an S3 bucket, streamed in multipart transfers",
            uri_schemes=("s3",),
        )
    )
    register(
        Flavor(
            kind=ComponentKind.CONTAINER_REGISTRY,
            name=REGISTRY_FLAVOR,
            config_class=EcrRegistryConfig,
            description="Amazon ECR; creates repositories, logs in through the connector",
        )
    )
    register(
        Flavor(
            kind=ComponentKind.STEP_OPERATOR,
            name=OPERATOR_FLAVOR,
            config_class=SageMakerOperatorConfig,
            settings_class=SageMakerSettings,
            description="runs each step as a SageMaker training job (or in SDK local mode)",
            needs_image=True,
            image_platform=IMAGE_PLATFORM,
        )
    )


@hookimpl
def check_step(step: PlannedStep, component: Component) -> list[str] | None:
    """The pre-flight: a sagemaker step's settings against SageMaker's rules."""
    if component.kind is not ComponentKind.STEP_OPERATOR:
        return None  # the ecr registry: nothing to check before the run
    from stepframe_aws._sagemaker.preflight import step_problems

    return step_problems(step)


@hookimpl
def authenticate(connector: Component, resource: ResourceRequest) -> Credentials | None:
    from stepframe_aws._connector.auth import authenticate as connector_authenticate

    return connector_authenticate(connector, resource)


@hookimpl
def verify_connector(
    connector: Component, resources: list[ResourceRequest]
) -> ConnectorReport | None:
    from stepframe_aws._connector.verify import verify

    return verify(connector, resources)


@hookimpl
def open_artifact_store(uri: str, credentials: Credentials | None) -> ArtifactStore | None:
    from stepframe_aws._s3.store import S3ArtifactStore

    return S3ArtifactStore.open(uri, credentials)


@hookimpl
def prepare_repository(
    registry: Component, repository: str, credentials: Credentials | None
) -> bool | None:
    from stepframe_aws._ecr.repository import ensure_repository

    return ensure_repository(registry, repository, credentials)


@hookimpl
def submit_step(
    launch: Launch, operator: Component, credentials: Credentials | None
) -> JobHandle | None:
    from stepframe_aws._sagemaker.jobs import submit

    return submit(launch, operator, credentials)


@hookimpl
def poll_step(
    handle: JobHandle, credentials: Credentials | None, cursor: str | None
) -> JobStatus | None:
    from stepframe_aws._sagemaker.jobs import poll

    return poll(handle, credentials, cursor)


@hookimpl
def cancel_step(handle: JobHandle, credentials: Credentials | None) -> bool | None:
    from stepframe_aws._sagemaker.jobs import cancel

    return cancel(handle, credentials)


@hookimpl
def find_job(
    launch: Launch, operator: Component, credentials: Credentials | None
) -> JobHandle | JobNotFound | None:
    from stepframe_aws._sagemaker.jobs import find_job as find_training_job

    return find_training_job(launch, operator, credentials)


@hookimpl
def estimate_cost(
    handle: JobHandle, credentials: Credentials | None, prices: Mapping[str, float]
) -> CostEstimate | None:
    from stepframe_aws._sagemaker.cost import estimate

    return estimate(handle, credentials, prices)
