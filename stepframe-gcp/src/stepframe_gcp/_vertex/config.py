"""Configuration and per-step settings of the ``vertex`` step operator (attrs only)."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["FLAVOR", "SCHEDULING_STRATEGIES", "VertexOperatorConfig", "VertexSettings"]

FLAVOR = "vertex"
# The settings' words for Scheduling.strategy's enum values (the discovery document's).
SCHEDULING_STRATEGIES = {"standard": "STANDARD", "spot": "SPOT", "flex-start": "FLEX_START"}


@attrs.frozen
class VertexOperatorConfig:
    """Where the ``vertex`` operator runs jobs.

    :param project: the Google Cloud project id the jobs belong to.
    :param region: the Vertex AI region (``us-central1``, ``europe-west4``...).
    :param api_endpoint: the Vertex AI endpoint; default the region's,
        ``https://REGION-aiplatform.googleapis.com`` (a Private Service Connect endpoint
        goes here).
    :param logging_endpoint: the Cloud Logging endpoint the jobs' logs are read from;
        default ``https://logging.googleapis.com``.
    :param machine_type: the default machine type of this operator's steps.
    :param service_account: the default service account jobs run as.
    """

    project: str
    region: str
    api_endpoint: str | None = None
    logging_endpoint: str | None = None
    machine_type: str = "n1-standard-4"
    service_account: str | None = None

    @property
    def endpoint(self) -> str:
        return (self.api_endpoint or f"https://{self.region}-aiplatform.googleapis.com").rstrip("/")

    @property
    def logs_endpoint(self) -> str:
        return (self.logging_endpoint or "https://logging.googleapis.com").rstrip("/")


@attrs.frozen
class VertexSettings:
    """Per-step settings of a Vertex AI CustomJob (checked in the pre-flight against the
    API's own description).

    :param machine_type: the worker machine type (``n1-standard-4``, ``a2-highgpu-1g``...).
    :param accelerator_type: an accelerator from the API's enum (``NVIDIA_TESLA_T4``...).
    :param accelerator_count: accelerators per replica.
    :param replica_count: replicas; more than one runs the chief and ``replica_count - 1``
        workers, every one of them running the step (the chief writes the outputs).
    :param boot_disk_type: ``pd-ssd`` or ``pd-standard``.
    :param boot_disk_size_gb: the boot disk's size (100-64000).
    :param service_account: the service account the job runs as (its identity for the
        artifact store); default the operator's, then Vertex AI's default.
    :param network: the VPC network to peer (``projects/NUMBER/global/networks/NAME``).
    :param reserved_ip_ranges: reserved IP ranges of that network for the job.
    :param encryption_key: a Cloud KMS key name for customer-managed encryption.
    :param labels: the job's labels (keys and values: lowercase letters, digits, ``-``, ``_``).
    :param timeout: seconds after which Vertex AI stops the job.
    :param restart_job_on_worker_restart: restart every replica when one restarts.
    :param scheduling_strategy: ``standard``, ``spot`` or ``flex-start``.
    :param max_wait: with ``flex-start``: seconds to wait for capacity.
    :param persistent_resource_id: run on this persistent resource.
    :param environment: extra environment variables of the step's container.
    :param enable_web_access: interactive shell access to the job's containers.
    :param extra_job_spec: any other CustomJobSpec field, camelCase, as the API takes it.
    """

    machine_type: str = "n1-standard-4"
    accelerator_type: str | None = None
    accelerator_count: int = 0
    replica_count: int = 1
    boot_disk_type: str = "pd-ssd"
    boot_disk_size_gb: int = 100
    service_account: str | None = None
    network: str | None = None
    reserved_ip_ranges: list[str] = attrs.field(factory=list)
    encryption_key: str | None = None
    labels: dict[str, str] = attrs.field(factory=dict)
    timeout: int | None = None
    restart_job_on_worker_restart: bool = False
    scheduling_strategy: str = "standard"
    max_wait: int | None = None
    persistent_resource_id: str | None = None
    environment: dict[str, str] = attrs.field(factory=dict)
    enable_web_access: bool = False
    extra_job_spec: dict[str, Any] = attrs.field(factory=dict)
