"""The CustomJob bodies stepframe sends, and the pre-flight of a ``vertex`` step.

Every body is validated with jsonschema against the JSON Schema derived from Vertex AI's
own discovery document (_discovery_schema.py): an unknown field, a snake_case key or a
value outside an enum fails here exactly where Vertex AI would refuse it.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from _discovery_schema import validator
from stepframe_gcp import VertexOperatorConfig, VertexSettings
from stepframe_gcp._vertex.preflight import settings_problems
from stepframe_gcp._vertex.request import LAUNCH_LABEL, STEP_LABEL, custom_job_body, launch_label

from stepframe import ImageRef, Launch

CONFIG = VertexOperatorConfig(project="test-project", region="europe-west4")
DIGEST = "sha256:" + "ab" * 32


def launch(**changes: Any) -> Launch:
    fields: dict[str, Any] = {
        "run_id": "r1",
        "pipeline": "training",
        "step": "train",
        "attempt": 1,
        "job_name": "training-r1-train-1",
        "manifest_uri": "gs://bucket/runs/r1/train/attempt-1/launch.json",
        "result_uri": "gs://bucket/runs/r1/train/attempt-1/result.json",
        "command": ("python", "-m", "stepframe.entrypoint", "gs://bucket/m.json"),
        "environment": {"STEPFRAME_MANIFEST_URI": "gs://bucket/m.json"},
        "image": ImageRef("europe-west4-docker.pkg.dev/test-project/steps/training:abc", DIGEST),
    }
    fields.update(changes)
    return Launch(**fields)


def errors(body: dict[str, Any]) -> list[str]:
    return [error.message for error in validator().iter_errors(body)]


def test_the_body_of_a_full_set_of_settings_is_valid_under_vertex_schema() -> None:
    settings = VertexSettings(
        machine_type="a2-highgpu-1g",
        accelerator_type="NVIDIA_TESLA_A100",
        accelerator_count=1,
        replica_count=3,
        boot_disk_type="pd-standard",
        boot_disk_size_gb=200,
        service_account="trainer@test-project.iam.gserviceaccount.com",
        network="projects/123456/global/networks/default",
        reserved_ip_ranges=["vertex-range"],
        encryption_key="projects/p/locations/europe-west4/keyRings/r/cryptoKeys/k",
        labels={"team": "vision"},
        timeout=7200,
        restart_job_on_worker_restart=True,
        scheduling_strategy="flex-start",
        max_wait=1800,
        persistent_resource_id="pool-1",
        environment={"EPOCHS": "3"},
        enable_web_access=True,
        extra_job_spec={"baseOutputDirectory": {"outputUriPrefix": "gs://bucket/out"}},
    )
    # Three replicas are fine: stepframe.current_job() reads each one's rank from the
    # CLUSTER_SPEC Vertex AI gives it, so only the chief writes the outputs.
    assert settings_problems(settings, CONFIG) == []
    body = custom_job_body(launch(), settings, CONFIG)
    assert errors(body) == []
    pools = body["jobSpec"]["workerPoolSpecs"]
    assert [pool["replicaCount"] for pool in pools] == ["1", "2"]
    container = pools[0]["containerSpec"]
    assert (
        container["imageUri"] == f"europe-west4-docker.pkg.dev/test-project/steps/training@{DIGEST}"
    )
    assert container["command"] == ["python", "-m", "stepframe.entrypoint", "gs://bucket/m.json"]
    assert {"name": "EPOCHS", "value": "3"} in container["env"]
    assert body["jobSpec"]["scheduling"] == {
        "strategy": "FLEX_START",
        "timeout": "7200s",
        "maxWaitDuration": "1800s",
        "restartJobOnWorkerRestart": True,
    }
    assert body["labels"][LAUNCH_LABEL] == launch_label(launch())


def test_the_schema_refuses_what_vertex_refuses() -> None:
    # The test's own yardstick: snake case, unknown fields, enums, read-only fields.
    body = custom_job_body(launch(), VertexSettings(), CONFIG)
    pool = body["jobSpec"]["workerPoolSpecs"][0]
    pool["containerSpec"]["image_uri"] = pool["containerSpec"].pop("imageUri")
    pool["machineSpec"]["acceleratorType"] = "NVIDIA_TESLA_Z9000"
    body["state"] = "JOB_STATE_RUNNING"
    found = " | ".join(errors(body))
    assert "'image_uri' was unexpected" in found
    assert "'NVIDIA_TESLA_Z9000' is not one of" in found
    assert "False schema does not allow 'JOB_STATE_RUNNING'" in found


def test_launch_labels_differ_per_attempt_and_fit_google_rules() -> None:
    first, second = launch_label(launch()), launch_label(launch(job_name="training-r1-train-2"))
    assert first != second
    assert len(first) <= 63 and first == first.lower()
    # find_job filters on the keys: plain identifiers in the list filter's grammar (a
    # hyphen there is an operator).
    for key in (LAUNCH_LABEL, STEP_LABEL):
        assert re.fullmatch(r"[a-z][a-z0-9_]*", key), key


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {"machine_type": "N1 Standard"},
            "settings.machine_type: 'N1 Standard' is not a Compute Engine machine type",
        ),
        (
            {"accelerator_type": "nvidia-tesla-t4", "accelerator_count": 1},
            "(did you mean NVIDIA_TESLA_T4?)",
        ),
        ({"accelerator_type": "NVIDIA_TESLA_T4"}, "settings.accelerator_count: must be at least 1"),
        ({"accelerator_count": 2}, "settings.accelerator_count: set accelerator_type too"),
        ({"replica_count": 0}, "settings.replica_count: must be at least 1"),
        ({"boot_disk_size_gb": 10}, "settings.boot_disk_size_gb: must be between 100 and 64000"),
        ({"boot_disk_type": "ssd"}, "settings.boot_disk_type: 'ssd' is not one of"),
        ({"labels": {"Team": "x"}}, "key 'Team' breaks Google's label rules"),
        ({"labels": {"team": "Vision Group"}}, "settings.labels.team: value 'Vision Group' breaks"),
        (
            {"labels": {"stepframe_launch": "x"}},
            "keys starting with 'stepframe_' or 'stepframe-' are stepframe's own",
        ),
        (
            {"labels": {"stepframe-team": "x"}},
            "settings.labels.stepframe-team: keys starting with 'stepframe_' or",
        ),
        (
            {"environment": {"GOOGLE_APPLICATION_CREDENTIALS": "/key.json"}},
            "credentials never go into a job",
        ),
        ({"environment": {"CLUSTER_SPEC": "{}"}}, "set by Vertex AI itself"),
        ({"environment": {"1X": "y"}}, "'1X' is not a variable name"),
        (
            {"scheduling_strategy": "preemptible"},
            "'preemptible' is not one of standard, spot, flex-start",
        ),
        ({"max_wait": 60}, "settings.max_wait: applies to scheduling_strategy 'flex-start' only"),
        ({"timeout": 0}, "settings.timeout: must be a positive number of seconds"),
        ({"service_account": "me@gmail.com"}, "is not a service account email"),
        ({"network": "default"}, "settings.network: 'default' is not a network name"),
        ({"reserved_ip_ranges": ["r"]}, "settings.reserved_ip_ranges: needs settings.network"),
        ({"encryption_key": "my-key"}, "is not a Cloud KMS key"),
        (
            {"extra_job_spec": {"scheduling": {}}},
            "settings.extra_job_spec.scheduling: set by the settings",
        ),
        (
            {"extra_job_spec": {"base_output_directory": {}}},
            "jobSpec.base_output_directory: unknown field; did you mean 'baseOutputDirectory'?",
        ),
        (
            {"extra_job_spec": {"enableDashboardAccess": "yes"}},
            "jobSpec.enableDashboardAccess: expected true or false",
        ),
    ],
)
def test_the_preflight_names_the_setting_and_the_fix(
    settings: dict[str, Any], expected: str
) -> None:
    problems = settings_problems(VertexSettings(**settings), CONFIG)
    assert any(expected in problem for problem in problems), problems
    assert all("\n" not in problem for problem in problems)
