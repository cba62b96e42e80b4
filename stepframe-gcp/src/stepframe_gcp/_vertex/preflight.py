"""The pre-flight of a ``vertex`` step: its settings against Vertex AI's rules, offline.

Checked here, before any image is built: the enums the API's discovery document lists
(accelerator types, scheduling strategies), Google's published rules for labels, machine
types, service accounts, networks and KMS keys, the combinations Vertex AI refuses, and
finally the whole CustomJob body the step would be submitted as, against the discovery
document's schema (so ``extra_job_spec`` is checked field by field too).
"""

from __future__ import annotations

import re
from typing import Any

from stepframe import ImageRef, Launch, PlannedStep
from stepframe_gcp._vertex.config import (
    SCHEDULING_STRATEGIES,
    VertexOperatorConfig,
    VertexSettings,
)
from stepframe_gcp._vertex.discovery import body_problems, enum_of
from stepframe_gcp._vertex.request import LAUNCH_LABEL, custom_job_body

__all__ = ["settings_problems", "step_problems"]

_MACHINE_TYPE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)+$")
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_SERVICE_ACCOUNT = re.compile(r"^[a-z][a-z0-9-]{4,61}[a-z0-9]@[a-z0-9.-]+\.gserviceaccount\.com$")
_NETWORK = re.compile(r"^projects/[0-9]+/global/networks/[a-z]([-a-z0-9]*[a-z0-9])?$")
_KMS_KEY = re.compile(r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BOOT_DISK_TYPES = ("pd-ssd", "pd-standard", "hyperdisk-balanced")
_MIN_DISK_GB, _MAX_DISK_GB = 100, 64000
_MAX_LABELS = 64
# Set by Vertex AI in every job's containers; a step must not shadow them.
_RESERVED_ENV_PREFIXES = ("AIP_", "CLOUD_ML_")
_RESERVED_ENV = frozenset({"CLUSTER_SPEC", "TF_CONFIG"})
# A job runs as its own service account: a key handed in through its environment would
# put the client's credentials into the job (and into the job's description).
_CREDENTIAL_ENV = frozenset(
    {"GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_OAUTH_ACCESS_TOKEN", "CLOUDSDK_AUTH_ACCESS_TOKEN"}
)
# CustomJobSpec fields the settings own: extra_job_spec may not set them behind their back.
_OWNED_SPEC_FIELDS = {
    "workerPoolSpecs": "machine_type, replica_count, accelerator_*, boot_disk_*",
    "scheduling": "timeout, scheduling_strategy, max_wait, restart_job_on_worker_restart",
    "serviceAccount": "service_account",
    "network": "network",
    "reservedIpRanges": "reserved_ip_ranges",
    "persistentResourceId": "persistent_resource_id",
    "enableWebAccess": "enable_web_access",
}


def step_problems(step: PlannedStep) -> list[str]:
    """The pre-flight hook's answer for a ``vertex`` step."""
    config = step.operator.config
    if not isinstance(config, VertexOperatorConfig):
        return [
            "the operator's config is not a vertex operator's; register it with --flavor vertex"
        ]
    settings = step.settings
    if not isinstance(settings, VertexSettings):
        settings = VertexSettings(**dict(settings or {}))
    return settings_problems(settings, config)


def settings_problems(settings: VertexSettings, config: VertexOperatorConfig) -> list[str]:
    """Every setting Vertex AI would refuse, one line each naming it and the fix."""
    problems: list[str] = []
    problems += _machine(settings)
    problems += _labels(settings.labels)
    problems += _environment(settings.environment)
    problems += _scheduling(settings)
    for name in ("service_account",):
        value = getattr(settings, name) or (
            config.service_account if name == "service_account" else None
        )
        if value and not _SERVICE_ACCOUNT.match(value):
            problems.append(
                f"settings.{name}: {value!r} is not a service account email; expected "
                "NAME@PROJECT.iam.gserviceaccount.com"
            )
    if settings.network and not _NETWORK.match(settings.network):
        problems.append(
            f"settings.network: {settings.network!r} is not a network name; expected "
            "projects/PROJECT_NUMBER/global/networks/NAME (the project's number, not its id)"
        )
    if settings.reserved_ip_ranges and not settings.network:
        problems.append(
            "settings.reserved_ip_ranges: needs settings.network (the VPC they belong to)"
        )
    if settings.encryption_key and not _KMS_KEY.match(settings.encryption_key):
        problems.append(
            f"settings.encryption_key: {settings.encryption_key!r} is not a Cloud KMS key; "
            "expected projects/P/locations/L/keyRings/R/cryptoKeys/K"
        )
    for field in sorted(set(settings.extra_job_spec) & set(_OWNED_SPEC_FIELDS)):
        problems.append(
            f"settings.extra_job_spec.{field}: set by the settings "
            f"{_OWNED_SPEC_FIELDS[field]}; use those instead"
        )
    if not problems:
        # Last, the whole body against the API's schema: whatever the rules above do not
        # know (extra_job_spec's fields above all) is found where Vertex AI would refuse it.
        body = custom_job_body(_SAMPLE_LAUNCH, settings, config)
        problems += [
            f"settings: the CustomJob would be refused: {line}" for line in body_problems(body)
        ]
    return problems


def _machine(settings: VertexSettings) -> list[str]:
    problems = []
    if settings.machine_type != "local" and not _MACHINE_TYPE.match(settings.machine_type):
        problems.append(
            f"settings.machine_type: {settings.machine_type!r} is not a Compute Engine machine "
            "type; use a name like n1-standard-4 or a2-highgpu-1g (or 'local' for local mode)"
        )
    accelerators = enum_of("GoogleCloudAiplatformV1MachineSpec", "acceleratorType")
    if settings.accelerator_type is not None and settings.accelerator_type not in accelerators:
        close = [
            a for a in accelerators if settings.accelerator_type.upper().replace("-", "_") in a
        ]
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(
            f"settings.accelerator_type: {settings.accelerator_type!r} is not a Vertex AI "
            f"accelerator{hint}; one of {', '.join(accelerators)}"
        )
    if settings.accelerator_type is not None and settings.accelerator_count < 1:
        problems.append("settings.accelerator_count: must be at least 1 with an accelerator_type")
    if settings.accelerator_type is None and settings.accelerator_count:
        problems.append("settings.accelerator_count: set accelerator_type too, or leave it 0")
    if settings.replica_count < 1:
        problems.append(f"settings.replica_count: must be at least 1, not {settings.replica_count}")
    if settings.boot_disk_type not in _BOOT_DISK_TYPES:
        problems.append(
            f"settings.boot_disk_type: {settings.boot_disk_type!r} is not one of "
            f"{', '.join(_BOOT_DISK_TYPES)}"
        )
    if not _MIN_DISK_GB <= settings.boot_disk_size_gb <= _MAX_DISK_GB:
        problems.append(
            f"settings.boot_disk_size_gb: must be between {_MIN_DISK_GB} and {_MAX_DISK_GB}, "
            f"not {settings.boot_disk_size_gb}"
        )
    return problems


def _labels(labels: dict[str, str]) -> list[str]:
    problems = []
    if len(labels) > _MAX_LABELS - 2:  # stepframe adds two of its own
        problems.append(f"settings.labels: at most {_MAX_LABELS - 2} labels, not {len(labels)}")
    for key, value in labels.items():
        if key.startswith(("stepframe-", "stepframe_")) or key == LAUNCH_LABEL:
            problems.append(
                f"settings.labels.{key}: keys starting with 'stepframe_' or 'stepframe-' are "
                "stepframe's own; choose another key"
            )
        elif not _LABEL_KEY.match(key):
            problems.append(
                f"settings.labels: key {key!r} breaks Google's label rules: 1-63 lowercase "
                "letters, digits, '-' and '_', starting with a letter"
            )
        if not isinstance(value, str) or not _LABEL_VALUE.match(value):
            problems.append(
                f"settings.labels.{key}: value {value!r} breaks Google's label rules: up to 63 "
                "lowercase letters, digits, '-' and '_'"
            )
    return problems


def _environment(environment: dict[str, str]) -> list[str]:
    problems = []
    for name in environment:
        if not _ENV_NAME.match(name):
            problems.append(f"settings.environment: {name!r} is not a variable name")
        elif name in _CREDENTIAL_ENV:
            problems.append(
                f"settings.environment.{name}: credentials never go into a job; the job runs "
                "as its service account (settings.service_account)"
            )
        elif name in _RESERVED_ENV or name.startswith(_RESERVED_ENV_PREFIXES):
            problems.append(
                f"settings.environment.{name}: set by Vertex AI itself; choose another name"
            )
    return problems


def _scheduling(settings: VertexSettings) -> list[str]:
    problems = []
    if settings.scheduling_strategy not in SCHEDULING_STRATEGIES:
        problems.append(
            f"settings.scheduling_strategy: {settings.scheduling_strategy!r} is not one of "
            f"{', '.join(SCHEDULING_STRATEGIES)}"
        )
    if settings.max_wait is not None and settings.scheduling_strategy != "flex-start":
        problems.append("settings.max_wait: applies to scheduling_strategy 'flex-start' only")
    for name in ("timeout", "max_wait"):
        value = getattr(settings, name)
        if value is not None and value <= 0:
            problems.append(f"settings.{name}: must be a positive number of seconds, not {value}")
    return problems


# A launch standing for any step: the pre-flight checks the body's shape, not its values.
_SAMPLE_LAUNCH: Any = Launch(
    run_id="preflight",
    pipeline="preflight",
    step="preflight",
    attempt=1,
    job_name="preflight",
    manifest_uri="gs://bucket/manifest.json",
    result_uri="gs://bucket/result.json",
    command=("python", "-m", "stepframe.entrypoint", "gs://bucket/manifest.json"),
    image=ImageRef("us-docker.pkg.dev/project/repo/image", "sha256:" + "0" * 64),
)
