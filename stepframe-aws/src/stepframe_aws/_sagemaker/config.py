"""Configuration and per-step settings of the ``sagemaker`` step operator.

attrs classes only: the core validates ``stepframe.toml`` tables and a step's
``settings={"sagemaker": {...}}`` against them with cattrs, without importing boto3.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

__all__ = ["FLAVOR", "LOCAL_INSTANCE_TYPE", "SageMakerOperatorConfig", "SageMakerSettings"]

#: The step operator flavor's name (``--flavor sagemaker``), also on its job handles.
FLAVOR = "sagemaker"
# `instance_type = "local"` runs the job through the SageMaker SDK's local mode.
LOCAL_INSTANCE_TYPE = "local"
# SageMaker training runs x86-64 images only (its instances, GPUs included, are
# x86-64); local mode runs the same image, so it is built for this platform too.
IMAGE_PLATFORM = "linux/amd64"


@attrs.frozen
class SageMakerSettings:
    """Per-step settings of the ``sagemaker`` operator (``settings={"sagemaker": {...}}``).

    :param instance_type: ``ml.*`` instance type, or ``local`` for the SDK's local mode;
        default the operator's ``instance_type``.
    :param instance_count: instances in the training cluster.
    :param volume_size_gb: the ML storage volume per instance.
    :param max_runtime_seconds: SageMaker stops the job after this long.
    :param use_spot: run on managed spot capacity.
    :param max_wait_seconds: with spot: how long to wait for capacity plus run time.
    :param checkpoint_s3_uri: where SageMaker syncs ``/opt/ml/checkpoints`` (with or
        without spot); ``extra_request["CheckpointConfig"]`` may add a ``LocalPath``.
    :param keep_alive_seconds: keep the instances in a warm pool this long after the job.
    :param environment: extra variables for the job (SageMaker's API model allows 100
        entries, stepframe's own included, of 512 characters each).
    :param tags: tags on the training job.
    :param subnets: VPC subnets to run in (with ``security_group_ids``).
    :param security_group_ids: VPC security groups to run in.
    :param volume_kms_key: KMS key for the ML storage volume.
    :param output_kms_key: KMS key for the model output SageMaker writes.
    :param input_channels: channel name to ``s3://`` URI, mounted under
        ``/opt/ml/input/data/NAME``.
    :param input_mode: how channels reach the job: ``File`` (copied before the step
        starts), ``FastFile`` (streamed on read) or ``Pipe``.
    :param channel_input_modes: channel name to its own input mode.
    :param sharded_channels: channels split across the hosts by S3 key
        (``ShardedByS3Key``) instead of copied to each (``FullyReplicated``).
    :param metric_definitions: metric name to a regex on the job's log
        (``MetricDefinitions``); SageMaker keeps the last value of each, and the run
        prints and records them.
    :param max_pending_seconds: SageMaker stops a job that waits longer than this for
        capacity (``MaxPendingTimeInSeconds``, 1800 or more).
    :param distribution: ``"torchrun"`` starts the step on every host under torchrun
        (PyTorch DDP), ranks spread across ``instance_count`` hosts.
    :param processes_per_host: with ``distribution``: processes on each host; default one
        per GPU (one on a CPU instance).
    :param experiment_config: CreateTrainingJob's ``ExperimentConfig`` (``ExperimentName``,
        ``TrialName``, ``TrialComponentDisplayName``, ``RunName``).
    :param retry_attempts: SageMaker's own retries of a job that failed with an internal
        error (``RetryStrategy.MaximumRetryAttempts``).
    :param extra_request: any other CreateTrainingJob field, checked against the
        SageMaker API model before the job is submitted; ``AlgorithmSpecification``
        (``ContainerArguments``, ``TrainingImageConfig``,
        ``EnableSageMakerMetricsTimeSeries``) and ``CheckpointConfig`` are merged into
        stepframe's.
    """

    instance_type: str | None = None
    instance_count: int = 1
    volume_size_gb: int = 30
    max_runtime_seconds: int = 24 * 3600
    use_spot: bool = False
    max_wait_seconds: int | None = None
    checkpoint_s3_uri: str | None = None
    keep_alive_seconds: int | None = None
    environment: dict[str, str] = attrs.field(factory=dict)
    tags: dict[str, str] = attrs.field(factory=dict)
    subnets: list[str] = attrs.field(factory=list)
    security_group_ids: list[str] = attrs.field(factory=list)
    volume_kms_key: str | None = None
    output_kms_key: str | None = None
    input_channels: dict[str, str] = attrs.field(factory=dict)
    input_mode: str = "File"
    channel_input_modes: dict[str, str] = attrs.field(factory=dict)
    sharded_channels: list[str] = attrs.field(factory=list)
    metric_definitions: dict[str, str] = attrs.field(factory=dict)
    max_pending_seconds: int | None = None
    distribution: str | None = None
    processes_per_host: int | None = None
    experiment_config: dict[str, str] | None = None
    retry_attempts: int | None = None
    extra_request: dict[str, Any] = attrs.field(factory=dict)


# CreateTrainingJob's RoleArn pattern (SageMaker's API model).
_ROLE_ARN = re.compile(r"arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+")


def _role_arn(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not _ROLE_ARN.fullmatch(value):
        raise ValueError(
            f"execution_role {value!r} is not an IAM role ARN; expected "
            "arn:aws:iam::ACCOUNT:role/NAME "
            "(the role SageMaker jobs run as)"
        )


@attrs.frozen
class SageMakerOperatorConfig:
    """Configuration of a ``sagemaker`` step operator component.

    Fields named like a `SageMakerSettings` field are defaults for every step it runs.

    :param execution_role: ARN of the IAM role the training job runs as; it needs the
        artifact store's bucket and the image's ECR repository.
    :param region: the region jobs run in; default the connector's.
    :param instance_type: the default instance type (``ml.m5.large``, or ``local``).
    :param output_path: ``s3://`` URI where SageMaker puts each job's output; default
        the artifact store's root below ``sagemaker-output/``.
    :param environment: default job environment, merged under each step's.
    :param tags: default tags, merged under each step's.
    :param local_container_root: for ``local``: where the SDK's local mode keeps its
        working files; default a folder in the run's work directory.
    """

    execution_role: str = attrs.field(validator=_role_arn)
    region: str | None = None
    instance_type: str = "ml.m5.large"
    output_path: str | None = None
    environment: dict[str, str] | None = None
    tags: dict[str, str] | None = None
    local_container_root: str | None = None
