"""The ``azureml`` pre-flight: every setting AzureML would refuse is one line naming the
setting and the fix, found before anything is built; through the command line,
``stepframe run`` (and ``--dry-run``) stops with every problem of every azureml step,
exit 2, no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from stepframe_azure._azureml.config import AzureMLOperatorConfig, AzureMLSettings
from stepframe_azure._azureml.preflight import settings_problems, step_problems

from stepframe import Component, ComponentKind, PlannedStep

CONFIG = AzureMLOperatorConfig(
    subscription_id="11111111-2222-3333-4444-555555555555",
    resource_group="ml-rg",
    workspace="ml-workspace",
)


def problems(**settings: Any) -> list[str]:
    return settings_problems(AzureMLSettings(**settings), CONFIG)


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"instance_type": "Standard_NC6s_v3", "instance_count": 4, "distribution": "pytorch",
         "process_count_per_instance": 2, "job_tier": "Spot"},
        {"mode": "cluster", "compute_name": "gpu-cluster", "timeout": 7200, "shm_size": "8g"},
        {"mode": "instance", "compute_name": "alice-ci", "identity": "user"},
        # Azure's naming rules for computes: 2-16 alphanumerics and hyphens.
        {"mode": "cluster", "compute_name": "2x-a100"},
        {"identity": "managed:0f0e0d0c-0b0a-0908-0706-050403020100", "tags": {"team": "cv"},
         "environment": {"HF_HOME": "/tmp/hf"}, "extra_job": {"description": "nightly"}},
        # Several nodes, no distribution: the request adds PyTorch's, one process per node.
        {"instance_type": "Standard_NC6s_v3", "instance_count": 2},
        {"instance_type": "local", "mode": "whatever-local-ignores"},
        {"environment": {"AZURE_STORAGE_CONNECTION_STRING":
                         "BlobEndpoint=https://prod.blob.core.windows.net"}},
        {"environment": {"AZURE_STORAGE_CONNECTION_STRING":
                         "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                         "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2U==;"
                         "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1"}},
    ],
    ids=[
        "serverless", "multi-node", "cluster", "instance", "cluster-name-of-digits",
        "identity-and-extra", "multi-node-default-distribution", "local",
        "storage-endpoint", "storage-emulator",
    ],
)  # fmt: skip
def test_settings_azureml_takes_pass(settings: dict[str, Any]) -> None:
    assert problems(**settings) == []


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"mode": "gpu"}, "settings.mode: 'gpu' is not one of serverless, cluster, instance"),
        ({"mode": "cluster"},
         "settings.compute_name: mode 'cluster' needs the cluster to run on; set compute_name"),
        ({"compute_name": "gpus"},
         "settings.compute_name: serverless jobs run on no named compute; drop it"),
        ({"mode": "cluster", "compute_name": "a-very-long-cluster-name"},
         "settings.compute_name: 'a-very-long-cluster-name' is not a compute cluster name: 2-16"),
        ({"mode": "instance", "compute_name": "9-lives"},
         "settings.compute_name: '9-lives' is not a compute instance name: 3-24 letters, digits"
         " and '-', starting with a letter"),
        ({"instance_type": "nc6"}, "settings.instance_type: 'nc6' is not an Azure VM size"),
        ({"mode": "cluster", "compute_name": "gpus", "instance_type": "Standard_NC6"},
         "settings.instance_type: a compute cluster's VM size is fixed when it is created"),
        ({"mode": "instance", "compute_name": "alice-ci", "instance_count": 2},
         "settings.instance_count: a compute instance is one node; use 1"),
        ({"instance_count": 0}, "settings.instance_count: must be at least 1, not 0"),
        ({"distribution": "horovod"},
         "settings.distribution: 'horovod' is not supported; use 'pytorch'"),
        # AzureML's distributions that give the nodes no rank stepframe.current_job() reads.
        ({"distribution": "TensorFlow", "instance_count": 2},
         "settings.distribution: 'TensorFlow' gives the nodes TF_CONFIG only, no rank variable,"
         " so stepframe.current_job() could not tell the nodes apart; use 'pytorch', or leave"
         " it unset"),
        ({"distribution": "mpi", "instance_count": 2},
         "settings.distribution: 'mpi' leaves the nodes' ranks to the MPI in the step's image"),
        ({"distribution": "ray", "instance_count": 2},
         "settings.distribution: 'ray' starts a Ray cluster whose nodes get no rank variable"),
        ({"process_count_per_instance": 2},
         "settings.process_count_per_instance: needs distribution = 'pytorch'"),
        ({"job_tier": "spot"},
         "settings.job_tier: 'spot' is not one of Spot, Basic,"
         " Standard, Premium (did you mean Spot?)"),
        ({"mode": "cluster", "compute_name": "gpus", "job_tier": "Spot"},
         "settings.job_tier: job tiers apply to serverless jobs, not mode 'cluster'"),
        ({"priority": "high"},
         "settings.priority: AzureML's stable REST API (2024-10-01, the version stepframe"
         " calls) has no job priority, only job_tier; drop priority"),
        ({"timeout": 0}, "settings.timeout: must be a positive number of seconds, not 0"),
        ({"environment": {"AZURE_CLIENT_SECRET": "s3cret"}},
         "settings.environment.AZURE_CLIENT_SECRET: credentials never go into a job"),
        ({"environment": {"AZURE_STORAGE_CONNECTION_STRING":
                          "AccountName=prod;AccountKey=c2VjcmV0;EndpointSuffix=core.windows.net"}},
         "settings.environment.AZURE_STORAGE_CONNECTION_STRING: it carries the storage account's"),
        ({"environment": {"AZUREML_RUN_ID": "x"}},
         "settings.environment.AZUREML_RUN_ID: set by AzureML itself; choose another name"),
        ({"environment": {"BAD-NAME": "x"}},
         "settings.environment: 'BAD-NAME' is not a variable name"),
        ({"identity": "system"},
         "settings.identity: 'system' is not 'user', 'managed' or 'managed:CLIENT_ID'"),
        ({"identity": "managed:bob"},
         "settings.identity: 'bob' is neither a managed identity's client id"),
        ({"shm_size": "2 GB"},
         "settings.shm_size: '2 GB' is not a size; write a number and a unit"),
        ({"experiment_name": "my experiment"},
         "settings.experiment_name: 'my experiment' breaks AzureML's rules"),
        ({"tags": {"stepframe-run": "x"}},
         "settings.tags.stepframe-run: tags starting with 'stepframe-'"),
        ({"extra_job": {"environmentVariables": {}}},
         "settings.extra_job.environmentVariables: set by environment; use that instead"),
        ({"extra_job": {"descripton": "x"}},
         "settings.extra_job.descripton: unknown field of CommandJob (did you mean description?)"),
        ({"extra_job": {"services": {"tb": {"port": "6006", "jobServiceType": "TensorBoard"}}}},
         "settings.extra_job.services.tb.port: expected an integer, not a string '6006'"),
        ({"extra_job": {"isArchived": "no"}},
         "settings.extra_job.isArchived: expected true or false, not a string 'no'"),
    ],
)  # fmt: skip
def test_each_refusal_is_one_line_naming_the_setting_and_the_fix(
    settings: dict[str, Any], expected: str
) -> None:
    found = problems(**settings)

    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_the_operator_needs_its_workspace_coordinates() -> None:
    step = PlannedStep(
        pipeline="training",
        step="train",
        operator=Component(
            ComponentKind.STEP_OPERATOR,
            "aml",
            "azureml",
            AzureMLOperatorConfig(subscription_id="not-a-guid", workspace="ml-workspace"),
        ),
        settings=AzureMLSettings(),
    )

    found = step_problems(step)

    assert found == [
        "step operator 'aml': subscription_id 'not-a-guid' is not a subscription id (a GUID "
        "such as 00000000-0000-0000-0000-000000000000)",
        "step operator 'aml': no resource_group; set it with `stepframe step-operator update "
        "aml --resource-group NAME`",
    ]


def local_step(**settings: Any) -> PlannedStep:
    """A local-mode step of an operator registered without a workspace."""
    return PlannedStep(
        pipeline="training",
        step="train",
        operator=Component(ComponentKind.STEP_OPERATOR, "aml", "azureml", AzureMLOperatorConfig()),
        settings=AzureMLSettings(instance_type="local", **settings),
    )


def test_a_local_mode_step_needs_no_workspace() -> None:
    """Local mode sends nothing to AzureML: trying it needs no Azure workspace."""
    assert step_problems(local_step()) == []


def test_a_local_mode_step_still_has_what_its_container_uses_checked() -> None:
    found = step_problems(
        local_step(shm_size="2 GB", environment={"AZURE_CLIENT_SECRET": "s3cret"})
    )

    assert [line.split(":")[0] for line in found] == [
        "settings.environment.AZURE_CLIENT_SECRET",
        "settings.shm_size",
    ]
    assert not any("s3cret" in line for line in found)


def test_the_operator_has_no_api_version_to_set() -> None:
    """The job bodies are built for and checked against one API version's description:
    the calls name that one, whatever a config says."""
    with pytest.raises(TypeError, match="api_version"):
        AzureMLOperatorConfig(api_version="2023-04-01")  # type: ignore[call-arg]


def test_settings_as_a_mapping_with_an_unknown_key_are_one_line() -> None:
    step = PlannedStep(
        pipeline="training",
        step="train",
        operator=Component(ComponentKind.STEP_OPERATOR, "azureml", "azureml", CONFIG),
        settings={"instance_typ": "Standard_DS3_v2"},
    )

    [line] = step_problems(step)

    assert line.startswith("settings.azureml: ")
    assert "instance_typ" in line


STACK = """\
active_stack = "aml"

[image_builders.docker]
flavor = "docker"

[container_registries.local]
flavor = "default"
uri = "127.0.0.1:9/steps"

[step_operators.azureml]
flavor = "azureml"
subscription_id = "11111111-2222-3333-4444-555555555555"
resource_group = "ml-rg"
workspace = "ml-workspace"
endpoint = "http://127.0.0.1:9"

[stacks.aml]
image_builder = "docker"
container_registry = "local"
step_operators = ["azureml"]
"""

PIPELINE = """\
from stepframe import pipeline, step


@step
def numbers() -> list[int]:
    return [1, 2, 3]


@step(operator="azureml", settings={"azureml": {
    "job_tier": "spot", "extra_job": {"descripton": "nightly"},
}})
def train(values: list[int]) -> int:
    return sum(values)


@step(operator="azureml", settings={"azureml": {
    "mode": "cluster", "environment": {"AZURE_CLIENT_SECRET": "hunter2"},
}})
def evaluate(total: int) -> int:
    return total


@pipeline
def training():
    evaluate(train(numbers()))
"""


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "run"])
def test_every_problem_of_every_azureml_step_stops_the_run(tmp_path: Path, dry_run: bool) -> None:
    (tmp_path / "stepframe.toml").write_text(STACK)
    (tmp_path / "pipeline.py").write_text(PIPELINE)
    env = {**os.environ, "STEPFRAME_LOAD_PLUGINS": "azure,docker"}
    command = [sys.executable, "-m", "stepframe", "run", "pipeline.py"]

    result = subprocess.run(
        [*command, *(["--dry-run"] if dry_run else [])],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )

    assert result.returncode == 2, result.stdout + result.stderr
    text = result.stderr
    assert "Traceback" not in text
    assert "settings.job_tier: 'spot' is not one of Spot, Basic, Standard, Premium" in text
    assert "settings.extra_job.descripton: unknown field of CommandJob (did you mean " in text
    assert "settings.compute_name: mode 'cluster' needs the cluster to run on" in text
    assert "settings.environment.AZURE_CLIENT_SECRET: credentials never go into a job" in text
    assert "hunter2" not in result.stdout + text
    assert "train" in text and "evaluate" in text
    # Nothing ran: the local step's output was never written.
    assert not (tmp_path / ".stepframe" / "artifacts").exists()


NO_WORKSPACE_STACK = STACK.replace(
    'subscription_id = "11111111-2222-3333-4444-555555555555"\n'
    'resource_group = "ml-rg"\n'
    'workspace = "ml-workspace"\n',
    "",
)

ONE_STEP_PIPELINE = """\
from stepframe import pipeline, step


@step(operator="azureml", settings={{"azureml": {settings!r}}})
def train() -> int:
    return 1


@pipeline
def training():
    train()
"""


@pytest.mark.parametrize(
    ("settings", "exit_code"),
    [({"instance_type": "local"}, 0), ({"instance_type": "Standard_DS3_v2"}, 2)],
    ids=["local-mode", "azureml"],
)
def test_an_operator_without_a_workspace_is_refused_only_for_steps_sent_to_azureml(
    tmp_path: Path, settings: dict[str, str], exit_code: int
) -> None:
    assert "subscription_id" not in NO_WORKSPACE_STACK
    (tmp_path / "stepframe.toml").write_text(NO_WORKSPACE_STACK)
    (tmp_path / "pipeline.py").write_text(ONE_STEP_PIPELINE.format(settings=settings))
    env = {**os.environ, "STEPFRAME_LOAD_PLUGINS": "azure,docker"}

    result = subprocess.run(
        [sys.executable, "-m", "stepframe", "run", "pipeline.py", "--dry-run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )

    assert result.returncode == exit_code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    coordinates_asked = "no subscription_id; set it with `stepframe step-operator update"
    assert (coordinates_asked in result.stderr) == (exit_code == 2), result.stderr
