"""The CreateTrainingJob request for one step attempt, checked before it is sent.

Everything AWS would refuse is refused here first, as a `ConfigError` naming the setting
and the fix: a refusal before the call leaves the job ledger saying "failed", where an
error from AWS after the call could not rule out that a job exists.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Mapping
from typing import Any

from stepframe import ConfigError, Credentials, ImageRef, Launch
from stepframe_aws._sagemaker.config import SageMakerOperatorConfig, SageMakerSettings

__all__ = [
    "ENTRYPOINT",
    "FORBIDDEN_ENVIRONMENT",
    "MANAGED_FIELDS",
    "build_request",
    "image_by_digest",
    "input_shape_of",
    "output_path",
    "request_problems",
    "training_job_name",
]

ENTRYPOINT = ("python", "-m", "stepframe.entrypoint")

# SageMaker's limits, from the CreateTrainingJob API reference.
MAX_JOB_NAME = 63
MAX_ENV_ENTRIES = 48
MAX_ENV_CHARS = 512
MAX_ENTRYPOINT_ITEM = 256
MAX_IMAGE_URI = 255
MAX_TAGS = 50
MAX_KEEP_ALIVE_SECONDS = 3600
MAX_RETRY_ATTEMPTS = 30
_JOB_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
_ENV_KEY = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_INSTANCE_TYPE = re.compile(r"ml\.[a-z0-9-]+\.[a-z0-9-]+")
_ROLE_ARN = re.compile(r"arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+")
_CHANNEL_NAME = re.compile(r"[A-Za-z0-9.\-_]{1,64}")

# The job runs as its execution role; client keys in its environment would leak them
# into DescribeTrainingJob for anyone allowed to read it.
FORBIDDEN_ENVIRONMENT = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")

# CreateTrainingJob fields stepframe fills itself, with the setting to use instead.
MANAGED_FIELDS: dict[str, str] = {
    "TrainingJobName": "nothing: stepframe names each job after its run, step and attempt",
    "AlgorithmSpecification": "nothing: the image and entry point come from the run",
    "RoleArn": "the operator's execution_role",
    "OutputDataConfig": "the operator's output_path and the output_kms_key setting",
    "ResourceConfig": (
        "instance_type, instance_count, volume_size_gb, volume_kms_key, keep_alive_seconds"
    ),
    "StoppingCondition": "max_runtime_seconds and max_wait_seconds",
    "Environment": "environment",
    "Tags": "tags",
    "VpcConfig": "subnets and security_group_ids",
    "EnableManagedSpotTraining": "use_spot",
    "CheckpointConfig": "checkpoint_s3_uri",
    "InputDataConfig": "input_channels",
    "ExperimentConfig": "experiment_config",
    "RetryStrategy": "retry_attempts",
}


def training_job_name(job_name: str) -> str:
    """A SageMaker job name for ``job_name``: itself when SageMaker accepts it, else a
    shortened form ending in a hash of the whole name, so distinct names stay distinct.

    :param job_name: the launch's job name (unique per run, step and attempt).
    """
    if len(job_name) <= MAX_JOB_NAME and _JOB_NAME.fullmatch(job_name):
        return job_name
    digest = hashlib.sha256(job_name.encode()).hexdigest()[:10]
    cleaned = re.sub(r"[^a-zA-Z0-9-]+", "-", job_name).strip("-")
    head = cleaned[: MAX_JOB_NAME - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}" if head else digest


def image_by_digest(image: ImageRef | None) -> str:
    """``repo@sha256:...`` for the built image: a job runs what was built, even if the
    tag moves meanwhile.

    :param image: the image the core built for the step.
    """
    if image is None:
        raise ConfigError(
            "the sagemaker operator got no image for the step; the stack needs an image "
            "builder and a container registry (`stepframe stack register ... -i docker -c ecr`)"
        )
    if not image.digest:
        raise ConfigError(
            f"image {image.uri} has no digest; SageMaker runs images by digest, so the stack "
            "needs a container registry (ECR) the image builder pushes to"
        )
    repository = image.uri.split("@", 1)[0]
    last = repository.rsplit("/", 1)[-1]
    if ":" in last:  # a tag, not a registry port (those come before the last "/")
        repository = repository[: len(repository) - len(last)] + last.split(":", 1)[0]
    uri = f"{repository}@{image.digest}"
    if len(uri) > MAX_IMAGE_URI:
        raise ConfigError(
            f"image {uri} is {len(uri)} characters; SageMaker accepts at most "
            f"{MAX_IMAGE_URI}: use a shorter repository name"
        )
    return uri


def output_path(launch: Launch, config: SageMakerOperatorConfig) -> str:
    """Where SageMaker writes the job's output: the operator's ``output_path``, else the
    artifact store's root below ``sagemaker-output/``.

    :raises ConfigError: when the artifact store is not on S3 (the job could not read its
        launch manifest).
    """
    if not launch.manifest_uri.startswith("s3://"):
        raise ConfigError(
            f"step {launch.step!r}: SageMaker jobs need an s3 artifact store (the job reads "
            f"its launch manifest and inputs from it), but this stack's store is at "
            f"{launch.manifest_uri.rsplit('/runs/', 1)[0]}; register an s3 store "
            "(`stepframe artifact-store register NAME --flavor s3 --path s3://BUCKET/PREFIX`) "
            "and use it in the stack"
        )
    if config.output_path:
        if not config.output_path.startswith("s3://"):
            raise ConfigError(
                f"the sagemaker operator's output_path {config.output_path!r} must be an s3:// URI"
            )
        return config.output_path
    marker = f"/runs/{launch.run_id}/"
    root = launch.manifest_uri.split(marker, 1)[0] if marker in launch.manifest_uri else ""
    if not root:  # a store laid out another way: the bucket's root is still right
        root = "s3://" + launch.manifest_uri[len("s3://") :].split("/", 1)[0]
    return f"{root.rstrip('/')}/sagemaker-output/"


def merged_environment(
    launch: Launch, config: SageMakerOperatorConfig, settings: SageMakerSettings
) -> dict[str, str]:
    """The job's environment: the operator's defaults, the step's, then the launch's own
    (the manifest URI), which nothing overrides."""
    return {**(config.environment or {}), **settings.environment, **launch.environment}


def merged_tags(
    launch: Launch, config: SageMakerOperatorConfig, settings: SageMakerSettings
) -> dict[str, str]:
    """The job's tags: the operator's, the step's, then stepframe's own, which say which
    run, step and attempt a job in the console belongs to."""
    return {
        **(config.tags or {}),
        **settings.tags,
        "stepframe:run": launch.run_id,
        "stepframe:pipeline": launch.pipeline,
        "stepframe:step": launch.step,
        "stepframe:attempt": str(launch.attempt),
    }


def _environment_problems(
    step: str, environment: Mapping[str, str], credentials: Credentials | None
) -> list[str]:
    where = f"step {step!r} settings.sagemaker.environment"
    problems = []
    leaked = sorted(set(environment) & set(FORBIDDEN_ENVIRONMENT))
    if leaked:
        problems.append(
            f"{where} sets {', '.join(leaked)}: client credentials never go into a job; the "
            "job runs as the operator's execution_role, give that role the access it needs"
        )
    secrets = set()
    if credentials is not None:
        secrets = {
            value
            for name, value in credentials.values.items()
            if name in ("aws_secret_access_key", "aws_session_token") and value
        }
    for name, value in environment.items():
        if value in secrets:
            problems.append(
                f"{where}[{name!r}] holds the connector's secret key or session token; client "
                "credentials never go into a job: give the execution_role the access instead"
            )
    if len(environment) > MAX_ENV_ENTRIES:
        problems.append(
            f"{where} has {len(environment)} variables (stepframe's own included); SageMaker "
            f"accepts at most {MAX_ENV_ENTRIES}: pass the rest as a step input"
        )
    for name, value in environment.items():
        if not _ENV_KEY.fullmatch(name) or len(name) > MAX_ENV_CHARS:
            problems.append(
                f"{where}: variable name {name!r} is not accepted by SageMaker (letters, "
                f"digits and _, not starting with a digit, at most {MAX_ENV_CHARS} characters)"
            )
        if len(value) > MAX_ENV_CHARS:
            problems.append(
                f"{where}[{name!r}] is {len(value)} characters; SageMaker accepts at most "
                f"{MAX_ENV_CHARS} per value: pass longer data as a step input or an "
                "input channel"
            )
    return problems


def _settings_problems(step: str, settings: SageMakerSettings, instance_type: str) -> list[str]:
    where = f"step {step!r} settings.sagemaker"
    problems = []
    if not _INSTANCE_TYPE.fullmatch(instance_type):
        problems.append(
            f"{where}.instance_type {instance_type!r} is not a SageMaker instance type; use "
            "an ml.* type (ml.m5.large, ml.g5.xlarge) or 'local' for the SDK's local mode"
        )
    positive = {
        "instance_count": settings.instance_count,
        "volume_size_gb": settings.volume_size_gb,
        "max_runtime_seconds": settings.max_runtime_seconds,
    }
    for name, value in positive.items():
        if value < 1:
            problems.append(f"{where}.{name} must be at least 1, got {value}")
    if not settings.use_spot:
        for name in ("max_wait_seconds", "checkpoint_s3_uri"):
            if getattr(settings, name) is not None:
                problems.append(
                    f"{where}.{name} applies to managed spot training only; set "
                    "use_spot = true or remove it"
                )
    wait = settings.max_wait_seconds
    if settings.use_spot and wait is not None and wait < settings.max_runtime_seconds:
        problems.append(
            f"{where}.max_wait_seconds ({wait}) must be at least max_runtime_seconds "
            f"({settings.max_runtime_seconds}): it counts the wait for spot capacity plus "
            "the run"
        )
    if settings.checkpoint_s3_uri is not None and not settings.checkpoint_s3_uri.startswith(
        "s3://"
    ):
        problems.append(f"{where}.checkpoint_s3_uri must be an s3:// URI")
    keep = settings.keep_alive_seconds
    if keep is not None:
        if not 0 <= keep <= MAX_KEEP_ALIVE_SECONDS:
            problems.append(
                f"{where}.keep_alive_seconds must be 0 to {MAX_KEEP_ALIVE_SECONDS}, got {keep}"
            )
        if settings.use_spot:
            problems.append(
                f"{where}: SageMaker warm pools (keep_alive_seconds) do not work with spot "
                "training (use_spot); choose one"
            )
    retries = settings.retry_attempts
    if retries is not None and not 1 <= retries <= MAX_RETRY_ATTEMPTS:
        problems.append(
            f"{where}.retry_attempts must be 1 to {MAX_RETRY_ATTEMPTS} (SageMaker's own "
            f"retries of a job that failed with an internal error), got {retries}"
        )
    if bool(settings.subnets) != bool(settings.security_group_ids):
        problems.append(
            f"{where}: a VPC needs both subnets and security_group_ids; set both or neither"
        )
    for name, uri in settings.input_channels.items():
        if not _CHANNEL_NAME.fullmatch(name):
            problems.append(
                f"{where}.input_channels: channel name {name!r} is not accepted by SageMaker "
                "(letters, digits, '.', '-', '_', at most 64)"
            )
        if not uri.startswith("s3://"):
            problems.append(f"{where}.input_channels[{name!r}] must be an s3:// URI")
    return problems


def _tag_problems(step: str, tags: Mapping[str, str]) -> list[str]:
    problems = []
    if len(tags) > MAX_TAGS:
        problems.append(
            f"step {step!r} settings.sagemaker.tags: {len(tags)} tags with stepframe's 4; "
            f"SageMaker accepts at most {MAX_TAGS}"
        )
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or len(value) > 256:
            problems.append(
                f"step {step!r} settings.sagemaker.tags[{key!r}]: keys take 1 to 128 "
                "characters and values at most 256"
            )
    return problems


def _role_problems(config: SageMakerOperatorConfig) -> list[str]:
    if _ROLE_ARN.fullmatch(config.execution_role):
        return []
    return [
        f"the sagemaker operator's execution_role {config.execution_role!r} is not an IAM "
        "role ARN (arn:aws:iam::123456789012:role/NAME)"
    ]


def _check_extra(step: str, extra: Mapping[str, Any], members: Mapping[str, Any]) -> None:
    where = f"step {step!r} settings.sagemaker.extra_request"
    for key in extra:
        if key in MANAGED_FIELDS:
            raise ConfigError(
                f"{where}[{key!r}]: stepframe sets {key} itself; use {MANAGED_FIELDS[key]}"
            )
        if key not in members:
            close = difflib.get_close_matches(key, list(members), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"{where}[{key!r}] is not a CreateTrainingJob field; {hint}see the SageMaker "
                "CreateTrainingJob API reference"
            )


def request_problems(
    launch: Launch,
    config: SageMakerOperatorConfig,
    settings: SageMakerSettings,
    credentials: Credentials | None,
) -> list[str]:
    """Everything in a launch's settings that SageMaker would refuse, each problem a line
    naming the setting and the fix: the rules CreateTrainingJob's reference states, and
    those it cannot state (spot, warm pools, VPC, credentials in the job).

    The pre-flight calls it for every step before anything runs; `build_request` calls
    it again at submit time, the last line before money is spent.  The checks against
    SageMaker's API model (``extra_request``) are `build_request`'s.
    """
    instance_type = settings.instance_type or config.instance_type
    problems = _settings_problems(launch.step, settings, instance_type)
    problems += _role_problems(config)
    environment = merged_environment(launch, config, settings)
    problems += _environment_problems(launch.step, environment, credentials)
    problems += _tag_problems(launch.step, merged_tags(launch, config, settings))
    try:
        output_path(launch, config)
    except ConfigError as error:
        problems.append(str(error))
    return problems


def build_request(
    launch: Launch,
    config: SageMakerOperatorConfig,
    settings: SageMakerSettings,
    credentials: Credentials | None,
    input_shape: Any = None,
) -> dict[str, Any]:
    """The CreateTrainingJob request for ``launch``, checked against SageMaker's rules
    and its API model.

    :param launch: the step attempt.
    :param config: the operator component's configuration.
    :param settings: the step's merged ``sagemaker`` settings.
    :param credentials: the connector's, only to make sure none leaks into the job.
    :param input_shape: CreateTrainingJob's input shape from the client about to send
        the request (``client.meta.service_model``); loaded from botocore when None.
    :raises ConfigError: for anything AWS would refuse, naming the setting to change.
    """
    problems = request_problems(launch, config, settings, credentials)
    if problems:
        raise ConfigError("; ".join(problems))
    instance_type = settings.instance_type or config.instance_type
    environment = merged_environment(launch, config, settings)
    for item in ENTRYPOINT:
        if len(item) > MAX_ENTRYPOINT_ITEM:  # a guard should ENTRYPOINT ever grow
            raise ConfigError(f"entry point item {item[:40]!r}... exceeds 256 characters")
    tags = merged_tags(launch, config, settings)

    resources: dict[str, Any] = {
        "InstanceType": instance_type,
        "InstanceCount": settings.instance_count,
        "VolumeSizeInGB": settings.volume_size_gb,
    }
    if settings.volume_kms_key:
        resources["VolumeKmsKeyId"] = settings.volume_kms_key
    if settings.keep_alive_seconds is not None:
        resources["KeepAlivePeriodInSeconds"] = settings.keep_alive_seconds
    output: dict[str, Any] = {"S3OutputPath": output_path(launch, config)}
    if settings.output_kms_key:
        output["KmsKeyId"] = settings.output_kms_key
    stopping: dict[str, Any] = {"MaxRuntimeInSeconds": settings.max_runtime_seconds}
    request: dict[str, Any] = {
        "TrainingJobName": training_job_name(launch.job_name),
        "AlgorithmSpecification": {
            "TrainingImage": image_by_digest(launch.image),
            "TrainingInputMode": "File",
            "ContainerEntrypoint": list(ENTRYPOINT),
        },
        "RoleArn": config.execution_role,
        "OutputDataConfig": output,
        "ResourceConfig": resources,
        "StoppingCondition": stopping,
        "Environment": environment,
        "Tags": [{"Key": key, "Value": value} for key, value in tags.items()],
    }
    if settings.use_spot:
        request["EnableManagedSpotTraining"] = True
        # SageMaker requires a wait limit with spot; an hour for capacity beyond the run.
        stopping["MaxWaitTimeInSeconds"] = settings.max_wait_seconds or (
            settings.max_runtime_seconds + 3600
        )
        if settings.checkpoint_s3_uri:
            request["CheckpointConfig"] = {"S3Uri": settings.checkpoint_s3_uri}
    if settings.subnets:
        request["VpcConfig"] = {
            "Subnets": list(settings.subnets),
            "SecurityGroupIds": list(settings.security_group_ids),
        }
    if settings.input_channels:
        request["InputDataConfig"] = [
            {
                "ChannelName": name,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
            for name, uri in settings.input_channels.items()
        ]
    if settings.experiment_config:
        request["ExperimentConfig"] = dict(settings.experiment_config)
    if settings.retry_attempts is not None:
        request["RetryStrategy"] = {"MaximumRetryAttempts": settings.retry_attempts}
    _validate_against_model(launch.step, request, settings.extra_request, input_shape)
    request.update(settings.extra_request)
    return request


def input_shape_of(client: Any = None) -> Any:
    """CreateTrainingJob's input shape: from ``client``'s model (already loaded, free),
    else loaded from botocore's data (about 0.1 s)."""
    if client is not None:
        model = client.meta.service_model
    else:
        import botocore.session  # type: ignore[import-untyped,unused-ignore]

        model = botocore.session.get_session().get_service_model("sagemaker")
    return model.operation_model("CreateTrainingJob").input_shape


def _validate_against_model(
    step: str, request: dict[str, Any], extra: Mapping[str, Any], shape: Any
) -> None:
    """Check the request with botocore's own validator and SageMaker's API model, the
    checks boto3 would make on send, so a mistake is reported as a setting to fix."""
    from botocore.validate import ParamValidator  # type: ignore[import-untyped,unused-ignore]

    shape = shape if shape is not None else input_shape_of()
    _check_extra(step, extra, shape.members)
    report = ParamValidator().validate({**request, **extra}, shape)
    if report.has_errors():
        problems = report.generate_report().replace("\n", "; ")
        blame = [key for key in extra if key in problems]
        where = f"settings.sagemaker.extra_request[{blame[0]!r}]" if blame else "settings.sagemaker"
        raise ConfigError(
            f"step {step!r} {where}: SageMaker's CreateTrainingJob would refuse the "
            f"request: {problems}"
        )
