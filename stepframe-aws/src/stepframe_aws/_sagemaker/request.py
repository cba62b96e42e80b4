"""The CreateTrainingJob request for one step attempt, checked before it is sent.

Everything AWS would refuse is refused here first, as a `ConfigError` naming the setting
and the fix: a refusal before the call leaves the job ledger saying "failed", where an
error from AWS after the call could not rule out that a job exists.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from stepframe import ConfigError, Credentials, ImageRef, Launch
from stepframe_aws._sagemaker.config import SageMakerOperatorConfig, SageMakerSettings
from stepframe_aws._sagemaker.model_rules import Path, model_problems

__all__ = [
    "DISTRIBUTIONS",
    "ENTRYPOINT",
    "FORBIDDEN_ENVIRONMENT",
    "MANAGED_FIELDS",
    "MERGED_FIELDS",
    "build_request",
    "image_by_digest",
    "input_shape_of",
    "output_path",
    "request_problems",
    "training_job_name",
]

ENTRYPOINT = ("python", "-m", "stepframe.entrypoint")

# Limits SageMaker's API model does not state (its own limits are read from the model,
# see model_rules): the job name stepframe shortens to, and an EBS volume's largest size.
MAX_JOB_NAME = 63
MAX_ENTRYPOINT_ITEM = 256
MAX_IMAGE_URI = 255
MAX_VOLUME_GB = 16384
_JOB_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
_ROLE_ARN = re.compile(r"arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+")
#: ``distribution`` values: how the step starts on each host.
DISTRIBUTIONS = ("torchrun",)

# The job runs as its execution role; client keys in its environment would leak them
# into DescribeTrainingJob for anyone allowed to read it.
FORBIDDEN_ENVIRONMENT = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")

# CreateTrainingJob fields stepframe fills itself, with the setting to use instead.
MANAGED_FIELDS: dict[str, str] = {
    "TrainingJobName": "nothing: stepframe names each job after its run, step and attempt",
    "RoleArn": "the operator's execution_role",
    "OutputDataConfig": "the operator's output_path and the output_kms_key setting",
    "ResourceConfig": (
        "instance_type, instance_count, volume_size_gb, volume_kms_key, keep_alive_seconds"
    ),
    "StoppingCondition": "max_runtime_seconds, max_wait_seconds and max_pending_seconds",
    "Environment": "environment",
    "Tags": "tags",
    "VpcConfig": "subnets and security_group_ids",
    "EnableManagedSpotTraining": "use_spot",
    "InputDataConfig": "input_channels, input_mode, channel_input_modes, sharded_channels",
    "ExperimentConfig": "experiment_config",
    "RetryStrategy": "retry_attempts",
}
# Fields extra_request may set parts of (ContainerArguments, TrainingImageConfig,
# EnableSageMakerMetricsTimeSeries, a checkpoint LocalPath): merged into stepframe's,
# except for these members.
MERGED_FIELDS: dict[str, dict[str, str]] = {
    "AlgorithmSpecification": {
        "TrainingImage": "nothing: the image is the one built for the run",
        "ContainerEntrypoint": "nothing: the entry point is stepframe's (see distribution)",
        "MetricDefinitions": "metric_definitions",
        "TrainingInputMode": "input_mode",
    },
    "CheckpointConfig": {"S3Uri": "checkpoint_s3_uri"},
}

# Where the request's output would go when the store is not on S3 (already a problem).
_STAND_IN_OUTPUT = "s3://stand-in/sagemaker-output/"

# Which setting fills which part of the request, for messages: the longest prefix wins.
_SETTINGS_OF: dict[tuple[str, ...], str] = {
    ("TrainingJobName",): "the job name",
    ("RoleArn",): "the sagemaker operator's execution_role",
    ("OutputDataConfig", "S3OutputPath"): "the sagemaker operator's output_path",
    ("OutputDataConfig", "KmsKeyId"): "settings.sagemaker.output_kms_key",
    ("ResourceConfig", "InstanceType"): "settings.sagemaker.instance_type",
    ("ResourceConfig", "InstanceCount"): "settings.sagemaker.instance_count",
    ("ResourceConfig", "VolumeSizeInGB"): "settings.sagemaker.volume_size_gb",
    ("ResourceConfig", "VolumeKmsKeyId"): "settings.sagemaker.volume_kms_key",
    ("ResourceConfig", "KeepAlivePeriodInSeconds"): "settings.sagemaker.keep_alive_seconds",
    ("StoppingCondition", "MaxRuntimeInSeconds"): "settings.sagemaker.max_runtime_seconds",
    ("StoppingCondition", "MaxWaitTimeInSeconds"): "settings.sagemaker.max_wait_seconds",
    ("StoppingCondition", "MaxPendingTimeInSeconds"): "settings.sagemaker.max_pending_seconds",
    ("Environment",): "settings.sagemaker.environment",
    ("Tags",): "settings.sagemaker.tags",
    ("VpcConfig", "Subnets"): "settings.sagemaker.subnets",
    ("VpcConfig", "SecurityGroupIds"): "settings.sagemaker.security_group_ids",
    ("InputDataConfig",): "settings.sagemaker.input_channels",
    ("ExperimentConfig",): "settings.sagemaker.experiment_config",
    ("RetryStrategy", "MaximumRetryAttempts"): "settings.sagemaker.retry_attempts",
    ("CheckpointConfig", "S3Uri"): "settings.sagemaker.checkpoint_s3_uri",
    ("AlgorithmSpecification", "MetricDefinitions"): "settings.sagemaker.metric_definitions",
    ("AlgorithmSpecification", "TrainingInputMode"): "settings.sagemaker.input_mode",
    ("AlgorithmSpecification", "TrainingImage"): "the image built for the run",
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
    return problems


def _settings_problems(step: str, settings: SageMakerSettings) -> list[str]:
    """The rules SageMaker's API model cannot state; its own limits are model_rules'."""
    where = f"step {step!r} settings.sagemaker"
    problems = []
    positive = {
        "instance_count": settings.instance_count,
        "volume_size_gb": settings.volume_size_gb,
        "max_runtime_seconds": settings.max_runtime_seconds,
    }
    for name, value in positive.items():
        if value < 1:
            problems.append(f"{where}.{name} must be at least 1, got {value}")
    if settings.volume_size_gb > MAX_VOLUME_GB:
        problems.append(
            f"{where}.volume_size_gb {settings.volume_size_gb} is larger than an EBS volume "
            f"can be ({MAX_VOLUME_GB} GB); use at most {MAX_VOLUME_GB}, or an input channel "
            "with input_mode 'FastFile' for large data"
        )
    if not settings.use_spot and settings.max_wait_seconds is not None:
        problems.append(
            f"{where}.max_wait_seconds applies to managed spot training only; set "
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
    if settings.keep_alive_seconds is not None and settings.use_spot:
        problems.append(
            f"{where}: SageMaker warm pools (keep_alive_seconds) do not work with spot "
            "training (use_spot); choose one"
        )
    if bool(settings.subnets) != bool(settings.security_group_ids):
        problems.append(
            f"{where}: a VPC needs both subnets and security_group_ids; set both or neither"
        )
    for name, uri in settings.input_channels.items():
        if not uri.startswith("s3://"):
            problems.append(f"{where}.input_channels[{name!r}] must be an s3:// URI")
    for option in ("channel_input_modes", "sharded_channels"):
        unknown = sorted(set(getattr(settings, option)) - set(settings.input_channels))
        if unknown:
            problems.append(
                f"{where}.{option} names {', '.join(map(repr, unknown))}, which "
                "input_channels does not have; add the channel or remove the name"
            )
    if settings.distribution is not None and settings.distribution not in DISTRIBUTIONS:
        problems.append(
            f"{where}.distribution {settings.distribution!r} is not known; use "
            f"{', '.join(map(repr, DISTRIBUTIONS))} or leave it unset"
        )
    if settings.processes_per_host is not None:
        if settings.distribution is None:
            problems.append(
                f"{where}.processes_per_host applies to distribution = 'torchrun' only; set "
                "distribution or remove processes_per_host"
            )
        elif settings.processes_per_host < 1:
            problems.append(
                f"{where}.processes_per_host must be at least 1, got {settings.processes_per_host}"
            )
    return problems


def _role_problems(config: SageMakerOperatorConfig) -> list[str]:
    if _ROLE_ARN.fullmatch(config.execution_role):
        return []
    return [
        f"the sagemaker operator's execution_role {config.execution_role!r} is not an IAM "
        "role ARN (arn:aws:iam::123456789012:role/NAME)"
    ]


def _extra_problems(step: str, extra: Mapping[str, Any], members: Mapping[str, Any]) -> list[str]:
    where = f"step {step!r} settings.sagemaker.extra_request"
    problems = []
    for key, value in extra.items():
        if key in MANAGED_FIELDS:
            problems.append(
                f"{where}[{key!r}]: stepframe sets {key} itself; use {MANAGED_FIELDS[key]}"
            )
        elif key not in members:
            close = difflib.get_close_matches(key, list(members), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(
                f"{where}[{key!r}] is not a CreateTrainingJob field; {hint}see the SageMaker "
                "CreateTrainingJob API reference"
            )
        elif key in MERGED_FIELDS and isinstance(value, Mapping):
            for member in value:
                if member in MERGED_FIELDS[key]:
                    problems.append(
                        f"{where}[{key!r}][{member!r}]: stepframe sets it itself; use "
                        f"{MERGED_FIELDS[key][member]}"
                    )
    return problems


def _setting_namer(
    step: str, extra: Mapping[str, Any], request: Mapping[str, Any]
) -> Callable[[Path], str]:
    """Names the setting a request path came from: extra_request for what it set, else
    the structured setting that fills that part of the request (a tag and a channel by
    their names, not their places in the request's lists)."""

    def setting_for(path: Path) -> str:
        head = str(path[0]) if path else ""
        if head in ("Tags", "InputDataConfig") and head not in extra and len(path) > 1:
            index = path[1]
            assert isinstance(index, int)
            item = request[head][index]
            name = item["Key"] if head == "Tags" else item["ChannelName"]
            setting = "tags" if head == "Tags" else "input_channels"
            rest = (
                ""
                if path[2:] in ((), ("Key",), ("Value",), ("ChannelName",))
                else (_rest(path[2:]))
            )
            key = " key" if path[2:] == ("Key",) else ""
            if path[2:] == ("ChannelName",):
                key = " name"
            return f"step {step!r} settings.sagemaker.{setting}[{name!r}]{key}{rest}"
        from_extra = head in extra and (
            head not in MERGED_FIELDS
            or (len(path) > 1 and isinstance(extra[head], Mapping) and path[1] in extra[head])
        )
        if from_extra:
            return f"step {step!r} settings.sagemaker.extra_request[{head!r}]" + _rest(path[1:])
        for length in range(len(path), 0, -1):
            name = _SETTINGS_OF.get(tuple(str(p) for p in path[:length]))
            if name is not None:
                return f"step {step!r} {name}" + _rest(path[length:])
        return f"step {step!r} settings.sagemaker" + _rest(path)

    return setting_for


def _rest(path: Path) -> str:
    return "".join(
        f"[{part}]" if isinstance(part, int) or part.startswith("key ") else f"[{part!r}]"
        for part in path
    )


def request_problems(
    launch: Launch,
    config: SageMakerOperatorConfig,
    settings: SageMakerSettings,
    credentials: Credentials | None,
    input_shape: Any = None,
) -> list[str]:
    """Everything in a launch's settings that SageMaker would refuse, each problem a line
    naming the setting, the value, the rule and the fix.

    First the rules SageMaker's API model cannot state (spot, warm pools, VPC, channels,
    credentials in the job); then the whole request as it would be sent, against every
    ``min``, ``max``, ``pattern`` and ``enum`` of the loaded model (`model_rules`) and
    botocore's own validation (types, required members, unknown members).  The pre-flight
    calls it for every step before anything runs; `build_request` calls it again at
    submit time, the last line before money is spent.

    :param input_shape: CreateTrainingJob's input shape; loaded from botocore when None.
    """
    problems = _settings_problems(launch.step, settings)
    problems += _role_problems(config)
    environment = merged_environment(launch, config, settings)
    problems += _environment_problems(launch.step, environment, credentials)
    try:
        output = output_path(launch, config)
    except ConfigError as error:
        problems.append(str(error))
        output = _STAND_IN_OUTPUT  # the rest of the request is still worth checking
    try:
        image_by_digest(launch.image)
    except ConfigError as error:
        return [*problems, str(error)]
    shape = input_shape if input_shape is not None else input_shape_of()
    extra = settings.extra_request
    extra_problems = _extra_problems(launch.step, extra, shape.members)
    if extra_problems:
        return problems + extra_problems
    request = _assemble(launch, config, _reported_left_out(settings), output)
    namer = _setting_namer(launch.step, extra, request)
    # The role's shape has its own message (_role_problems).
    problems += model_problems(request, shape, namer, skip=frozenset({"RoleArn"}))
    problems += _type_problems(launch.step, request, extra, shape)
    return problems


def _reported_left_out(settings: SageMakerSettings) -> SageMakerSettings:
    """``settings`` without what `_settings_problems` reported already (a half-set VPC,
    a channel that is no s3:// URI), so the model's checks do not report it twice."""
    channels = {
        name: uri if uri.startswith("s3://") else _STAND_IN_OUTPUT
        for name, uri in settings.input_channels.items()
    }
    if bool(settings.subnets) != bool(settings.security_group_ids):
        return attrs.evolve(settings, subnets=[], security_group_ids=[], input_channels=channels)
    return attrs.evolve(settings, input_channels=channels)


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
    problems = request_problems(launch, config, settings, credentials, input_shape)
    if problems:
        raise ConfigError("; ".join(problems))
    return _assemble(launch, config, settings, output_path(launch, config))


def _entrypoint(launch: Launch, settings: SageMakerSettings, arguments: bool) -> list[str]:
    """The container's entry point: stepframe's entrypoint, under torchrun when the step
    is distributed that way (one process per GPU by default)."""
    command = list(ENTRYPOINT)
    if settings.distribution == "torchrun":
        command = [*ENTRYPOINT, "--torchrun"]
        if settings.processes_per_host is not None:
            command.append(f"--processes-per-host={settings.processes_per_host}")
    if arguments or settings.distribution is not None:
        # ContainerArguments come after the entry point: the manifest must come first.
        command.append(launch.manifest_uri)
    for item in command:
        if len(item) > MAX_ENTRYPOINT_ITEM:
            raise ConfigError(
                f"entry point item {item[:40]!r}... exceeds {MAX_ENTRYPOINT_ITEM} characters"
            )
    return command


def _assemble(
    launch: Launch, config: SageMakerOperatorConfig, settings: SageMakerSettings, output_uri: str
) -> dict[str, Any]:
    """The request from the settings, unchecked (`build_request` checks it)."""
    instance_type = settings.instance_type or config.instance_type
    extra = dict(settings.extra_request)
    resources: dict[str, Any] = {
        "InstanceType": instance_type,
        "InstanceCount": settings.instance_count,
        "VolumeSizeInGB": settings.volume_size_gb,
    }
    if settings.volume_kms_key:
        resources["VolumeKmsKeyId"] = settings.volume_kms_key
    if settings.keep_alive_seconds is not None:
        resources["KeepAlivePeriodInSeconds"] = settings.keep_alive_seconds
    output: dict[str, Any] = {"S3OutputPath": output_uri}
    if settings.output_kms_key:
        output["KmsKeyId"] = settings.output_kms_key
    stopping: dict[str, Any] = {"MaxRuntimeInSeconds": settings.max_runtime_seconds}
    if settings.max_pending_seconds is not None:
        stopping["MaxPendingTimeInSeconds"] = settings.max_pending_seconds
    algorithm_extra = dict(extra.pop("AlgorithmSpecification", None) or {})
    algorithm: dict[str, Any] = {
        "TrainingImage": image_by_digest(launch.image),
        "TrainingInputMode": settings.input_mode,
        "ContainerEntrypoint": _entrypoint(
            launch, settings, bool(algorithm_extra.get("ContainerArguments"))
        ),
    }
    if settings.metric_definitions:
        algorithm["MetricDefinitions"] = [
            {"Name": name, "Regex": regex} for name, regex in settings.metric_definitions.items()
        ]
    algorithm.update(algorithm_extra)
    request: dict[str, Any] = {
        "TrainingJobName": training_job_name(launch.job_name),
        "AlgorithmSpecification": algorithm,
        "RoleArn": config.execution_role,
        "OutputDataConfig": output,
        "ResourceConfig": resources,
        "StoppingCondition": stopping,
        "Environment": merged_environment(launch, config, settings),
        "Tags": [
            {"Key": key, "Value": value}
            for key, value in merged_tags(launch, config, settings).items()
        ],
    }
    if settings.use_spot:
        request["EnableManagedSpotTraining"] = True
        # SageMaker requires a wait limit with spot; an hour for capacity beyond the run.
        stopping["MaxWaitTimeInSeconds"] = settings.max_wait_seconds or (
            settings.max_runtime_seconds + 3600
        )
    checkpoint = dict(extra.pop("CheckpointConfig", None) or {})
    if settings.checkpoint_s3_uri:  # with or without spot: SageMaker syncs it either way
        checkpoint["S3Uri"] = settings.checkpoint_s3_uri
    if checkpoint:
        request["CheckpointConfig"] = checkpoint
    if settings.subnets:
        request["VpcConfig"] = {
            "Subnets": list(settings.subnets),
            "SecurityGroupIds": list(settings.security_group_ids),
        }
    if settings.input_channels:
        request["InputDataConfig"] = [
            _channel(name, uri, settings) for name, uri in settings.input_channels.items()
        ]
    if settings.experiment_config:
        request["ExperimentConfig"] = dict(settings.experiment_config)
    if settings.retry_attempts is not None:
        request["RetryStrategy"] = {"MaximumRetryAttempts": settings.retry_attempts}
    request.update(extra)
    return request


def _channel(name: str, uri: str, settings: SageMakerSettings) -> dict[str, Any]:
    """One input channel: its S3 prefix, replicated to every host or sharded by key."""
    sharded = name in settings.sharded_channels
    channel: dict[str, Any] = {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "ShardedByS3Key" if sharded else "FullyReplicated",
            }
        },
    }
    mode = settings.channel_input_modes.get(name)
    if mode is not None:
        channel["InputMode"] = mode
    return channel


def input_shape_of(client: Any = None) -> Any:
    """CreateTrainingJob's input shape: from ``client``'s model (already loaded, free),
    else loaded from botocore's data once per process (about 0.1 s)."""
    if client is not None:
        return client.meta.service_model.operation_model("CreateTrainingJob").input_shape
    return _botocore_input_shape()


@functools.cache
def _botocore_input_shape() -> Any:
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    return model.operation_model("CreateTrainingJob").input_shape


def _type_problems(
    step: str, request: dict[str, Any], extra: Mapping[str, Any], shape: Any
) -> list[str]:
    """botocore's own validator over the request: the checks boto3 makes on send (types,
    required and unknown members), so a mistake is reported as a setting to fix."""
    from botocore.validate import ParamValidator

    report = ParamValidator().validate(request, shape)
    # Lengths and ranges are model_rules' (with the setting's name and the maximum too).
    report._errors = [e for e in report._errors if e[0] not in ("invalid length", "invalid range")]
    if not report.has_errors():
        return []
    problems = report.generate_report().replace("\n", "; ")
    blame = [key for key in extra if key in problems]
    where = f"settings.sagemaker.extra_request[{blame[0]!r}]" if blame else "settings.sagemaker"
    return [
        f"step {step!r} {where}: SageMaker's CreateTrainingJob would refuse the request: {problems}"
    ]
