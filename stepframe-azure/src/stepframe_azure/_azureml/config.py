"""Configuration and per-step settings of the ``azureml`` step operator (attrs only).

Nothing here imports an azure module: the plugin loads these classes at start-up.  The
rules AzureML states for them are checked by the pre-flight (`preflight.py`), against the
job body each step would send.
"""

from __future__ import annotations

from typing import Any

import attrs

__all__ = [
    "API_VERSION",
    "COMPUTE_MODES",
    "DEFAULT_ENDPOINT",
    "FLAVOR",
    "JOB_TIERS",
    "LOCAL_INSTANCE_TYPE",
    "AzureMLOperatorConfig",
    "AzureMLSettings",
]

FLAVOR = "azureml"
# The Azure Resource Manager endpoint of the public cloud (sovereign clouds and the tests
# set ``endpoint``).
DEFAULT_ENDPOINT = "https://management.azure.com"
# The REST API version every call names: the newest stable one whose command jobs take
# queueSettings (job_tier).  schema.py judges bodies by this version's description.
API_VERSION = "2024-10-01"
#: ``instance_type`` of local mode: the command job's container runs on the local engine.
LOCAL_INSTANCE_TYPE = "local"
#: Where a command job runs: serverless compute (AzureML picks a VM of ``instance_type``),
#: a compute cluster or a compute instance of the workspace (``compute_name``).
COMPUTE_MODES = ("serverless", "cluster", "instance")
#: QueueSettings.jobTier's values (the REST specification's JobTier enum, less "Null").
JOB_TIERS = ("Spot", "Basic", "Standard", "Premium")


@attrs.frozen
class AzureMLOperatorConfig:
    """Where the ``azureml`` operator runs jobs.

    The workspace's coordinates (subscription, resource group, workspace) belong here,
    even when the connector names them too (for ``connector verify``): the pre-flight
    checks them offline before anything is built, and it sees the operator's config
    only (a `PlannedStep` carries its operator's connector by name, and the core offers
    plugins no way to read a connector's config), so a fallback to the connector's
    values could not be checked until the job's submit, after the image is built.

    There is no API version to set: the calls name `API_VERSION`, the one version whose
    description the job bodies are built for and checked against (schema.py).

    :param subscription_id: the Azure subscription (a GUID) of the workspace.
    :param resource_group: the workspace's resource group.
    :param workspace: the AzureML workspace's name.
    :param region: the workspace's region (``westeurope``...); with it, job logs are read
        from ``https://REGION.api.azureml.ms`` without asking the workspace first.
    :param endpoint: the Azure Resource Manager endpoint; default
        ``https://management.azure.com`` (sovereign clouds set theirs).
    :param history_endpoint: the run history endpoint job logs are read from; default
        ``https://REGION.api.azureml.ms``.
    :param compute_name: the default compute (cluster or instance) of this operator's
        steps in the ``cluster`` and ``instance`` modes.
    :param instance_type: the default VM size of serverless jobs (``Standard_DS3_v2``...).
    """

    subscription_id: str | None = None
    resource_group: str | None = None
    workspace: str | None = None
    region: str | None = None
    endpoint: str | None = None
    history_endpoint: str | None = None
    compute_name: str | None = None
    instance_type: str | None = None

    @property
    def arm_endpoint(self) -> str:
        return (self.endpoint or DEFAULT_ENDPOINT).rstrip("/")

    @property
    def workspace_id(self) -> str:
        """The workspace's Azure resource id."""
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.workspace}"
        )


@attrs.frozen
class AzureMLSettings:
    """Per-step settings of an AzureML command job (checked in the pre-flight against the
    job body they make).

    :param mode: ``serverless`` (the default), ``cluster`` or ``instance``.
    :param instance_type: the VM size of a serverless job (``Standard_DS3_v2``,
        ``Standard_NC6s_v3``...), or ``local`` for local mode.
    :param instance_count: nodes; more than one runs the step on each (rank 0 writes the
        outputs).
    :param distribution: ``pytorch`` to have AzureML start ``process_count_per_instance``
        processes per node with torch.distributed's variables.
    :param process_count_per_instance: processes per node with ``distribution``.
    :param compute_name: the compute cluster or instance (``cluster``/``instance`` modes);
        default the operator's.
    :param job_tier: ``Spot``, ``Basic``, ``Standard`` or ``Premium`` (serverless jobs).
    :param priority: refused by the pre-flight with the reason: a job priority
        (``queueSettings.priority``) exists only in AzureML's preview REST API versions,
        not in the stable 2024-10-01 the operator calls.  Kept so that setting it is
        answered with that reason rather than "unknown setting".
    :param timeout: seconds after which AzureML cancels the job.
    :param environment: extra environment variables of the step's container.
    :param experiment_name: the experiment the job is filed under; default the pipeline's
        name.
    :param display_name: the job's name in Studio; default the step's.
    :param tags: the job's tags.
    :param identity: what the job authenticates to storage as: ``user`` (the submitting
        user's identity), ``managed`` (the compute's managed identity) or
        ``managed:CLIENT_ID`` (a user-assigned managed identity by client id); default
        AzureML's (the compute's identity, else an AzureML token).
    :param shm_size: the container's shared memory (``2g``, ``512m``...).
    :param extra_job: any other CommandJob property, camelCase as the REST API takes it
        (``{"description": "...", "services": {...}}``).
    """

    mode: str = "serverless"
    instance_type: str | None = None
    instance_count: int = 1
    distribution: str | None = None
    process_count_per_instance: int | None = None
    compute_name: str | None = None
    job_tier: str | None = None
    priority: str | None = None
    timeout: int | None = None
    environment: dict[str, str] = attrs.field(factory=dict)
    experiment_name: str | None = None
    display_name: str | None = None
    tags: dict[str, str] = attrs.field(factory=dict)
    identity: str | None = None
    shm_size: str | None = None
    extra_job: dict[str, Any] = attrs.field(factory=dict)
