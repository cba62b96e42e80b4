"""The ``azureml`` request contract: every body stepframe builds is valid under AzureML's
generated REST models (azure-mgmt-machinelearningservices), and the models' rules refuse
what AzureML would refuse: an unknown or misspelled field, a wrong type, a value out of
range or off its pattern, an unknown discriminator, a read-only field.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from stepframe_azure._azureml.config import AzureMLOperatorConfig, AzureMLSettings
from stepframe_azure._azureml.request import (
    MAX_NAME,
    build_environment_body,
    build_job_body,
    image_by_digest,
    job_name,
)
from stepframe_azure._azureml.schema import body_problems, enum_values

from stepframe import ImageRef, Launch

CONFIG = AzureMLOperatorConfig(
    subscription_id="11111111-2222-3333-4444-555555555555",
    resource_group="ml-rg",
    workspace="ml-workspace",
)
DIGEST = "sha256:" + "ab" * 32
# The REST API's path pattern for job names.
AZUREML_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-_]{0,254}$")


def launch(job: str = "training-r1-train-1", **settings: Any) -> Launch:
    return Launch(
        run_id="r1",
        pipeline="training",
        step="train",
        attempt=1,
        job_name=job,
        manifest_uri="az://account/steps/m.json",
        result_uri="az://account/steps/r.json",
        command=("python", "-m", "stepframe.entrypoint", "az://account/steps/m.json"),
        environment={"STEPFRAME_LAUNCH_MANIFEST": "az://account/steps/m.json"},
        settings=AzureMLSettings(**settings),
        image=ImageRef("steps.azurecr.io/training:abc", DIGEST),
    )


def body(**settings: Any) -> dict[str, Any]:
    attempt = launch(**settings)
    return build_job_body(attempt, CONFIG, attempt.settings, job_name(attempt.job_name))


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"instance_type": "Standard_NC6s_v3", "instance_count": 2, "distribution": "pytorch",
         "process_count_per_instance": 4, "shm_size": "16g"},
        {"mode": "cluster", "compute_name": "gpu-cluster", "timeout": 3600},
        {"mode": "instance", "compute_name": "my-instance", "identity": "user"},
        {"job_tier": "Spot", "identity": "managed",
         "tags": {"team": "vision"}, "experiment_name": "exp_1", "display_name": "Train it"},
        {"identity": "managed:0f0e0d0c-0b0a-0908-0706-050403020100",
         "extra_job": {"description": "nightly", "isArchived": False,
                       "services": {"tb": {"jobServiceType": "TensorBoard", "port": 6006}}}},
        # Added by API version 2024-10-01 (the one the calls name) to the generated models.
        {"extra_job": {"notificationSetting": {
            "emailOn": ["JobFailed"], "emails": ["ml-team@example.com"],
            "webhooks": {"ado": {"webhookType": "AzureDevOps", "eventType": "JobFailed"}}}}},
    ],
    ids=["serverless", "multi-node", "cluster", "instance", "queue", "extra", "notification"],
)  # fmt: skip
def test_every_body_built_is_valid_under_the_rest_models(settings: dict[str, Any]) -> None:
    assert body_problems(body(**settings), "JobBase") == []


def test_the_job_runs_the_entrypoint_in_the_image_by_digest_with_the_manifest_uri() -> None:
    properties = body()["properties"]

    assert properties["command"] == "python -m stepframe.entrypoint az://account/steps/m.json"
    assert properties["environmentVariables"]["STEPFRAME_LAUNCH_MANIFEST"] == (
        "az://account/steps/m.json"
    )
    assert properties["environmentId"].startswith(
        f"{CONFIG.workspace_id}/environments/stepframe-step-image/versions/"
    )
    image = image_by_digest(launch().image)
    assert image == f"steps.azurecr.io/training@{DIGEST}"
    assert body_problems(build_environment_body(image), "EnvironmentVersion") == []
    assert build_environment_body(image)["properties"]["image"] == image
    assert "computeId" not in properties  # serverless
    assert properties["resources"]["instanceType"] == "Standard_DS3_v2"


def test_several_nodes_without_a_distribution_get_pytorchs_with_one_process_per_node() -> None:
    """Without a distribution AzureML tells no node its index; with PyTorch's it sets
    NODE_RANK (and RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) on each node."""
    two_nodes = body(instance_type="Standard_NC6s_v3", instance_count=2)

    assert two_nodes["properties"]["distribution"] == {
        "distributionType": "PyTorch",
        "processCountPerInstance": 1,
    }
    assert two_nodes["properties"]["resources"]["instanceCount"] == 2
    assert body_problems(two_nodes, "JobBase") == []
    # One node needs no rank; a distribution the settings name is theirs.
    assert "distribution" not in body()["properties"]
    named = body(instance_count=2, distribution="pytorch", process_count_per_instance=4)
    assert named["properties"]["distribution"] == {
        "distributionType": "PyTorch",
        "processCountPerInstance": 4,
    }


def test_what_pytorchs_distribution_sets_on_the_second_node_ranks_it_for_current_job() -> None:
    """The variables AzureML's documentation says its PyTorch distribution sets, one process
    per node, as the second of two nodes sees them: the core ranks that node 1."""
    from stepframe import current_job

    second_node = {
        "AZUREML_NODE_COUNT": "2",
        "NODE_RANK": "1",
        "RANK": "1",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "2",
        "MASTER_ADDR": "10.0.0.4",
        "MASTER_PORT": "6105",
    }

    job = current_job(second_node)

    assert (job.rank, job.world_size, job.num_hosts, job.is_main) == (1, 2, 2, False)


def test_job_names_are_deterministic_and_within_azureml_rules() -> None:
    short = "training-r1-train-1"
    long_a = "p" * 300 + "-run-a-train-1"
    long_b = "p" * 300 + "-run-b-train-1"

    assert job_name(short) == short
    assert job_name(long_a) == job_name(long_a)
    assert job_name(long_a) != job_name(long_b)
    for name in (job_name(long_a), job_name(long_b), job_name("-odd.name"), job_name("x" * 255)):
        assert AZUREML_NAME.match(name), name
        assert len(name) <= MAX_NAME


@pytest.mark.parametrize(
    ("extra_job", "expected"),
    [
        ({"descripton": "x"},
         "properties.descripton: unknown field of CommandJob"
         " (did you mean description?)"),
        ({"is_archived": True},
         "properties.is_archived: unknown field of CommandJob"
         " (did you mean isArchived?)"),
        ({"notAField": 1}, "properties.notAField: unknown field of CommandJob"),
        ({"isArchived": "yes"}, "properties.isArchived: expected true or false, not a string"),
        ({"properties": {"a": 1}}, "properties.properties.a: expected a string, not an integer 1"),
        ({"services": {"tb": {"jobServiceType": "TensorBoard", "port": "6006"}}},
         "properties.services.tb.port: expected an integer, not a string '6006'"),
        ({"services": {"tb": {"jobServiceTyp": "TensorBoard"}}},
         "tb.jobServiceTyp: unknown field of JobService (did you mean jobServiceType?)"),
        ({"status": "Running"}, "properties.status: read-only (AzureML sets it); leave it out"),
    ],
)  # fmt: skip
def test_a_field_azureml_would_refuse_is_named_with_its_fix(
    extra_job: dict[str, Any], expected: str
) -> None:
    assert _one_line_with(expected, body_problems(body(extra_job=extra_job), "JobBase"))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: p["resources"].update(shmSize="lots"),
         "properties.resources.shmSize: 'lots' does not match the pattern '\\\\d+[bBkKmMgG]'"),
        (lambda p: p["resources"].update(instanceCount=2.5),
         "properties.resources.instanceCount: expected an integer, not a number 2.5"),
        (lambda p: p.update(command=""), "properties.command: '' breaks the minimum length 1"),
        # A preview API field: API version 2024-10-01's QueueSettings holds jobTier only.
        (lambda p: p.update(queueSettings={"jobTier": "Spot", "priority": 3}),
         "properties.queueSettings.priority: unknown field of QueueSettings"),
        (lambda p: p.update(queueSettings={"jobTier": "spott"}),
         "jobTier: 'spott' is not one of Null, Spot, Basic, Standard, Premium"
         " (did you mean Spot?)"),
        (lambda p: p.update(limits={"jobLimitsType": "Command", "timeout": "1h"}),
         "properties.limits.timeout: expected an ISO 8601 duration (PT1H30M), not a string '1h'"),
        (lambda p: p.update(identity={"identityType": "Manged"}),
         "identityType: 'Manged' is not one of AMLToken, Managed, UserIdentity"
         " (did you mean Managed?)"),
        (lambda p: p.update(jobType="Commands"),
         "jobType: 'Commands' is not one of AutoML, Command, Pipeline, Sweep"
         " (did you mean Command?)"),
        (lambda p: p.pop("environmentId"), "properties.environmentId: required by CommandJob"),
        (lambda p: p.update(distribution={"processCountPerInstance": 2}),
         "distributionType: required by DistributionConfiguration"
         " (one of Mpi, PyTorch, TensorFlow)"),
    ],
)  # fmt: skip
def test_the_models_rules_refuse_wrong_types_ranges_patterns_and_enums(
    change: Any, expected: str
) -> None:
    sent = body()
    change(sent["properties"])

    assert _one_line_with(expected, body_problems(sent, "JobBase"))


def test_enum_values_come_from_the_generated_models() -> None:
    assert enum_values("QueueSettings", "job_tier") == (
        "Null",
        "Spot",
        "Basic",
        "Standard",
        "Premium",
    )
    assert "Completed" in enum_values("CommandJob", "status")


def _one_line_with(text: str, problems: list[str]) -> bool:
    """The expected problem is there, and every problem is about the field changed."""
    field = text.split(":", 1)[0]
    return any(text in line for line in problems) and all(field in line for line in problems)
