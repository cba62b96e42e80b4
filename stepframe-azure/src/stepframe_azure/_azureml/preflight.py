"""The pre-flight of an ``azureml`` step: its settings against AzureML's rules, offline.

Checked here, before any image is built: the operator's workspace coordinates (for steps
sent to AzureML: local mode's need none), the rules AzureML documents but its REST models
cannot state (which settings go with which compute mode, compute and VM size names, the
variables AzureML sets itself, credentials that must never ride in a job, distributions
that give the nodes no rank), and last the whole command job body and environment version body
the step would be submitted with, against AzureML's own generated REST models
(schema.py): so ``extra_job`` is checked field by field, with a did-you-mean for a
misspelled field.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from stepframe import ImageRef, Launch, PlannedStep
from stepframe_azure._azureml.config import (
    COMPUTE_MODES,
    JOB_TIERS,
    LOCAL_INSTANCE_TYPE,
    AzureMLOperatorConfig,
    AzureMLSettings,
)
from stepframe_azure._azureml.request import (
    ATTEMPT_TAG,
    RUN_TAG,
    STEP_TAG,
    build_environment_body,
    build_job_body,
    image_by_digest,
    job_name,
)
from stepframe_azure._names import GUID, RESOURCE_GROUP, WORKSPACE

__all__ = ["config_problems", "settings_problems", "step_problems"]

# Compute names: the REST specification's computeName has no pattern, so these come from
# Azure's documentation.  Clusters (workspaces/computes): 2-16 alphanumerics and hyphens
# (learn.microsoft.com "Naming rules and restrictions for Azure resources",
# Microsoft.MachineLearningServices).  Instances: 3-24 letters, digits and "-", starting
# with a letter ("Create a compute instance", the name rule Studio's form states).  Only
# what the documents say is refused: AzureML stays the judge of the rest.
_CLUSTER_NAME = re.compile(r"^[a-zA-Z0-9-]{2,16}$")
_INSTANCE_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{2,23}$")
_VM_SIZE = re.compile(r"^Standard_[A-Za-z0-9_]+$", re.IGNORECASE)
_SHM_SIZE = re.compile(r"^[0-9]+[bBkKmMgG]$")
_EXPERIMENT = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,254}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MANAGED_IDENTITY_RESOURCE = re.compile(
    r"^/subscriptions/[^/]+/resourcegroups/[^/]+/providers/"
    r"microsoft\.managedidentity/userassignedidentities/[^/]+$",
    re.IGNORECASE,
)
# Set by AzureML in every job's containers (and read by stepframe.current_job()).
_RESERVED_ENV_PREFIXES = ("AZUREML_", "AZ_BATCH")
_RESERVED_ENV = frozenset(
    {"RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT"}
)
# A job authenticates as its identity (settings.identity): a secret in its environment
# would put the client's credentials into the job and its record in the workspace.
_CREDENTIAL_ENV = frozenset(
    {
        "AZURE_CLIENT_SECRET",
        "AZURE_CLIENT_CERTIFICATE_PATH",
        "AZURE_CLIENT_CERTIFICATE_PASSWORD",
        "AZURE_PASSWORD",
        "AZURE_ACCESS_TOKEN",
        "AZURE_STORAGE_KEY",
        "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_STORAGE_SAS_TOKEN",
    }
)
# Names Blob Storage's endpoint for the job's store (the blob store reads it); only its
# secrets are refused, except the storage emulator's published development key.
_CONNECTION_STRING = "AZURE_STORAGE_CONNECTION_STRING"
_CONNECTION_SECRETS = ("accountkey", "sharedaccesssignature")
_DEVELOPMENT_ACCOUNT = "devstoreaccount1"
# AzureML's other distribution types, and why none gives each node a rank the core reads
# (stepframe/_cluster_env.py: NODE_RANK, AZ_BATCHAI_TASK_INDEX or Open MPI's
# OMPI_COMM_WORLD_RANK).  An Mpi job's ranks are whatever MPI the image carries starts
# with: the step images hold none unless their parent image does, and only Open MPI's
# are read, so which one a node would get cannot be known before the run.
_UNRANKED_DISTRIBUTIONS = {
    "tensorflow": "gives the nodes TF_CONFIG only, no rank variable",
    "mpi": "leaves the nodes' ranks to the MPI in the step's image (Open MPI's only are read)",
    "ray": "starts a Ray cluster whose nodes get no rank variable",
}
# CommandJob properties the settings own: extra_job may not set them behind their back.
_OWNED_FIELDS = {
    "jobType": "the operator (always Command)",
    "command": "the step (python -m stepframe.entrypoint)",
    "environmentId": "the step's image",
    "environmentVariables": "environment",
    "computeId": "mode and compute_name",
    "resources": "instance_type, instance_count and shm_size",
    "distribution": "distribution and process_count_per_instance",
    "limits": "timeout",
    "queueSettings": "job_tier",
    "identity": "identity",
    "experimentName": "experiment_name",
    "displayName": "display_name",
    "tags": "tags",
}


def step_problems(step: PlannedStep) -> list[str]:
    """The pre-flight hook's answer for an ``azureml`` step."""
    config = step.operator.config
    if not isinstance(config, AzureMLOperatorConfig):
        return [
            f"step operator {step.operator.name!r}: its config is not an azureml operator's; "
            "register it with --flavor azureml"
        ]
    settings = step.settings
    if not isinstance(settings, AzureMLSettings):
        try:
            settings = AzureMLSettings(**dict(settings or {}))
        except TypeError as error:
            return [f"settings.azureml: {error}"]
    # Local mode sends nothing to AzureML: trying a step there needs no workspace, so its
    # coordinates are checked only when the step goes to AzureML.
    local = settings.instance_type == LOCAL_INSTANCE_TYPE
    problems = [] if local else config_problems(config, step.operator.name)
    problems += settings_problems(settings, config, pipeline=step.pipeline, step=step.step)
    return problems


def config_problems(config: AzureMLOperatorConfig, operator: str = "azureml") -> list[str]:
    """The operator's workspace coordinates (needed by every job sent to AzureML; local
    mode's steps are not asked for them)."""
    problems = []
    update = f"`stepframe step-operator update {operator}"
    if not config.subscription_id:
        problems.append(
            f"step operator {operator!r}: no subscription_id; set it with "
            f"{update} --subscription-id GUID` (`az account show --query id`)"
        )
    elif not GUID.match(config.subscription_id):
        problems.append(
            f"step operator {operator!r}: subscription_id {config.subscription_id!r} is not a "
            "subscription id (a GUID such as 00000000-0000-0000-0000-000000000000)"
        )
    if not config.resource_group:
        problems.append(
            f"step operator {operator!r}: no resource_group; set it with "
            f"{update} --resource-group NAME`"
        )
    elif not RESOURCE_GROUP.match(config.resource_group):
        problems.append(
            f"step operator {operator!r}: resource_group {config.resource_group!r} breaks "
            "Azure's rules: 1-90 letters, digits, '_', '-', '.', '(' and ')', not ending in '.'"
        )
    if not config.workspace:
        problems.append(
            f"step operator {operator!r}: no workspace; set it with {update} --workspace NAME`"
        )
    elif not WORKSPACE.match(config.workspace):
        problems.append(
            f"step operator {operator!r}: workspace {config.workspace!r} breaks AzureML's "
            "rules: 3-33 letters, digits, '-' and '_', starting with a letter or digit"
        )
    return problems


def settings_problems(
    settings: AzureMLSettings,
    config: AzureMLOperatorConfig,
    *,
    pipeline: str = "preflight",
    step: str = "preflight",
) -> list[str]:
    """Every setting AzureML would refuse, one line each naming it and the fix."""
    if settings.instance_type == LOCAL_INSTANCE_TYPE:
        # Local mode runs the job's container here: only the container's settings count.
        return _environment(settings.environment) + _shm(settings)
    problems: list[str] = []
    problems += _compute(settings, config)
    problems += _distribution(settings)
    problems += _queue(settings)
    problems += _environment(settings.environment)
    problems += _identity(settings.identity)
    problems += _shm(settings)
    if settings.timeout is not None and settings.timeout <= 0:
        problems.append(
            f"settings.timeout: must be a positive number of seconds, not {settings.timeout}"
        )
    if settings.experiment_name is not None and not _EXPERIMENT.match(settings.experiment_name):
        problems.append(
            f"settings.experiment_name: {settings.experiment_name!r} breaks AzureML's rules: "
            "1-255 letters, digits, '-' and '_', starting with a letter or digit"
        )
    for key in sorted(settings.tags):
        if key in (RUN_TAG, STEP_TAG, ATTEMPT_TAG) or key.startswith("stepframe-"):
            problems.append(
                f"settings.tags.{key}: tags starting with 'stepframe-' are stepframe's own"
            )
    for field in sorted(set(settings.extra_job) & set(_OWNED_FIELDS)):
        problems.append(
            f"settings.extra_job.{field}: set by {_OWNED_FIELDS[field]}; use that instead"
        )
    # Last, the whole bodies against AzureML's REST models: whatever the rules above do
    # not know (extra_job's fields above all) is found where AzureML would refuse it.  A
    # setting already reported above is not reported again through the body it makes.
    from stepframe_azure._azureml.schema import body_problems

    launch = attrs.evolve(_SAMPLE_LAUNCH, pipeline=pipeline, step=step)
    name = job_name(launch.job_name)
    body = build_job_body(launch, _sample_config(config), settings, name)
    for line in body_problems(body, "JobBase"):
        named = _job_field(line)
        if not problems or named.startswith("settings.extra_job."):
            problems.append(named)
    if not problems:
        environment = build_environment_body(image_by_digest(launch.image))
        problems += [
            f"settings: the environment version would be refused: {line}"
            for line in body_problems(environment, "EnvironmentVersion")
        ]
    return problems


def _job_field(line: str) -> str:
    """A body problem named as the setting that made it (extra_job's fields by name)."""
    path, _, rest = line.partition(": ")
    if path.startswith("properties."):
        field = path.removeprefix("properties.")
        owner = _OWNED_FIELDS.get(field.split(".", 1)[0].split("[", 1)[0])
        if owner is None:
            return f"settings.extra_job.{field}: {rest}"
        return f"settings ({owner}): the job would be refused: {path}: {rest}"
    return f"settings: the job would be refused: {line}"


def _compute(settings: AzureMLSettings, config: AzureMLOperatorConfig) -> list[str]:
    problems = []
    mode = settings.mode
    if mode not in COMPUTE_MODES:
        return [f"settings.mode: {mode!r} is not one of {', '.join(COMPUTE_MODES)}"]
    compute = settings.compute_name or config.compute_name
    instance_type = settings.instance_type or (
        config.instance_type if mode == "serverless" else None
    )
    if mode == "serverless":
        if settings.compute_name:
            problems.append(
                "settings.compute_name: serverless jobs run on no named compute; drop it, or "
                "set mode = 'cluster' (or 'instance') to run there"
            )
    elif not compute:
        problems.append(
            f"settings.compute_name: mode {mode!r} needs the {mode} to run on; set "
            "compute_name (or the operator's compute_name)"
        )
    elif not compute.startswith("/subscriptions/"):
        rule = _CLUSTER_NAME if mode == "cluster" else _INSTANCE_NAME
        if not rule.match(compute):
            rule_words = (
                "2-16 letters, digits and '-'"
                if mode == "cluster"
                else "3-24 letters, digits and '-', starting with a letter"
            )
            problems.append(
                f"settings.compute_name: {compute!r} is not a compute {mode} name: "
                f"{rule_words}; use the name `az ml compute list` shows"
            )
    if instance_type is not None and not _VM_SIZE.match(instance_type):
        problems.append(
            f"settings.instance_type: {instance_type!r} is not an Azure VM size; use a name "
            "like Standard_DS3_v2 or Standard_NC6s_v3 (or 'local' for local mode)"
        )
    if mode == "cluster" and settings.instance_type:
        problems.append(
            "settings.instance_type: a compute cluster's VM size is fixed when it is created; "
            "drop instance_type, or use mode = 'serverless'"
        )
    if mode == "instance" and settings.instance_type:
        problems.append(
            "settings.instance_type: a compute instance is one VM of its own size; drop "
            "instance_type, or use mode = 'serverless'"
        )
    if settings.instance_count < 1:
        problems.append(
            f"settings.instance_count: must be at least 1, not {settings.instance_count}"
        )
    elif mode == "instance" and settings.instance_count != 1:
        problems.append(
            "settings.instance_count: a compute instance is one node; use 1, or mode = "
            "'cluster' or 'serverless' for several"
        )
    return problems


def _distribution(settings: AzureMLSettings) -> list[str]:
    problems = []
    word = settings.distribution
    if word is not None and word.lower() in _UNRANKED_DISTRIBUTIONS:
        problems.append(
            f"settings.distribution: {word!r} {_UNRANKED_DISTRIBUTIONS[word.lower()]}, so "
            "stepframe.current_job() could not tell the nodes apart; use 'pytorch', or leave "
            "it unset (several nodes then get AzureML's PyTorch ranks, one process per node)"
        )
    elif word is not None and word.lower() != "pytorch":
        problems.append(
            f"settings.distribution: {word!r} is not supported; use 'pytorch' "
            "(or leave it unset for one process per node)"
        )
    count = settings.process_count_per_instance
    if count is not None:
        if settings.distribution is None:
            problems.append("settings.process_count_per_instance: needs distribution = 'pytorch'")
        elif count < 1:
            problems.append(f"settings.process_count_per_instance: must be at least 1, not {count}")
    return problems


def _queue(settings: AzureMLSettings) -> list[str]:
    problems = []
    if settings.job_tier is not None:
        if settings.job_tier not in JOB_TIERS:
            close = [t for t in JOB_TIERS if t.lower() == settings.job_tier.lower()]
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(
                f"settings.job_tier: {settings.job_tier!r} is not one of "
                f"{', '.join(JOB_TIERS)}{hint}"
            )
        elif settings.mode != "serverless":
            problems.append(
                f"settings.job_tier: job tiers apply to serverless jobs, not mode "
                f"{settings.mode!r}; drop job_tier or use mode = 'serverless'"
            )
    if settings.priority is not None:
        # azure-ai-ml sends its priority as queueSettings.priority through preview API
        # models only; the stable 2024-10-01 QueueSettings holds jobTier alone.
        problems.append(
            "settings.priority: AzureML's stable REST API (2024-10-01, the version stepframe "
            "calls) has no job priority, only job_tier; drop priority"
        )
    return problems


def _environment(environment: dict[str, str]) -> list[str]:
    problems = []
    for name, value in environment.items():
        if not _ENV_NAME.match(name):
            problems.append(f"settings.environment: {name!r} is not a variable name")
        elif name == _CONNECTION_STRING and _has_secret(str(value)):
            problems.append(
                f"settings.environment.{name}: it carries the storage account's key or SAS, "
                "and credentials never go into a job; name the endpoint only "
                "(BlobEndpoint=https://ACCOUNT.blob.core.windows.net) and let the job reach "
                "storage as its identity (settings.identity)"
            )
        elif name in _CREDENTIAL_ENV:
            problems.append(
                f"settings.environment.{name}: credentials never go into a job; the job "
                "authenticates as its identity (settings.identity)"
            )
        elif name in _RESERVED_ENV or name.startswith(_RESERVED_ENV_PREFIXES):
            problems.append(
                f"settings.environment.{name}: set by AzureML itself; choose another name"
            )
        elif not isinstance(value, str):
            problems.append(f"settings.environment.{name}: the value must be a string")
    return problems


def _has_secret(connection_string: str) -> bool:
    """Whether a storage connection string holds a key or SAS of a real account."""
    parts = {}
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        parts[key.strip().lower()] = value.strip()
    if parts.get("usedevelopmentstorage", "").lower() == "true":
        return False
    if parts.get("accountname") == _DEVELOPMENT_ACCOUNT:
        return False
    return any(parts.get(key) for key in _CONNECTION_SECRETS)


def _identity(identity: str | None) -> list[str]:
    if identity is None or identity in ("user", "managed"):
        return []
    kind, _, client = identity.partition(":")
    if kind == "managed" and (GUID.match(client) or _MANAGED_IDENTITY_RESOURCE.match(client)):
        return []
    if kind == "managed":
        return [
            f"settings.identity: {client!r} is neither a managed identity's client id (a "
            "GUID) nor its resource id (/subscriptions/.../userAssignedIdentities/NAME)"
        ]
    return [f"settings.identity: {identity!r} is not 'user', 'managed' or 'managed:CLIENT_ID'"]


def _shm(settings: AzureMLSettings) -> list[str]:
    if settings.shm_size is not None and not _SHM_SIZE.match(settings.shm_size):
        return [
            f"settings.shm_size: {settings.shm_size!r} is not a size; write a number and a "
            "unit, b, k, m or g (2g, 512m)"
        ]
    return []


def _sample_config(config: AzureMLOperatorConfig) -> AzureMLOperatorConfig:
    """The config with placeholder coordinates where they are missing (reported above)."""
    return attrs.evolve(
        config,
        subscription_id=config.subscription_id or "00000000-0000-0000-0000-000000000000",
        resource_group=config.resource_group or "resource-group",
        workspace=config.workspace or "workspace",
    )


# A launch standing for the step: the pre-flight checks the body's shape, not its values.
_SAMPLE_LAUNCH: Any = Launch(
    run_id="preflight",
    pipeline="preflight",
    step="preflight",
    attempt=1,
    job_name="preflight-run-step-1",
    manifest_uri="az://account/container/manifest.json",
    result_uri="az://account/container/result.json",
    command=("python", "-m", "stepframe.entrypoint", "az://account/container/manifest.json"),
    environment={"STEPFRAME_LAUNCH_MANIFEST": "az://account/container/manifest.json"},
    image=ImageRef("registry.azurecr.io/steps/image", "sha256:" + "0" * 64),
)
