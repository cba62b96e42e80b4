"""The cost estimate of a SageMaker training job (``estimate_cost``), from what
DescribeTrainingJob says SageMaker billed and the price table shipped with the plugin.

The pipeline and ``stepframe runs show --price`` against moto are in
test_sagemaker_pipeline.py; these are the reckoning's cases.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _moto_helpers import ACCOUNT, REGION, sagemaker_backend

import stepframe
from stepframe import (
    Component,
    ComponentKind,
    ImageRef,
    JobHandle,
    Launch,
    StepframeError,
)
from stepframe_aws._sagemaker import jobs
from stepframe_aws._sagemaker.clients import clear_clients
from stepframe_aws._sagemaker.config import SageMakerOperatorConfig, SageMakerSettings
from stepframe_aws._sagemaker.cost import estimate_from
from stepframe_aws._sagemaker.prices import PRICES_DATE, PRICES_REGION, TRAINING_PRICES

TABLE_NOTE = (
    f"stepframe-aws's table of SageMaker training on-demand list prices, {PRICES_REGION}, "
    f"{PRICES_DATE}: an estimate"
)


def described(**fields: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "TrainingJobName": "fit-train-1",
        "TrainingJobStatus": "Completed",
        "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 2},
        "TrainingTimeInSeconds": 3600,
        "BillableTimeInSeconds": 3600,
    }
    answer.update(fields)
    return answer


def test_instances_times_billed_seconds_at_the_tables_price() -> None:
    cost = estimate_from(described(), "us-east-1", {})
    assert cost.amount == pytest.approx(2 * TRAINING_PRICES["ml.g5.xlarge"])
    assert (cost.currency, cost.prices) == ("USD", TABLE_NOTE)
    assert cost.basis == "2 x ml.g5.xlarge, 3,600 billable s at $1.408/h"


def test_managed_spot_is_billed_for_its_billable_seconds_and_says_what_it_saved() -> None:
    answer = described(
        EnableManagedSpotTraining=True, TrainingTimeInSeconds=1000, BillableTimeInSeconds=300
    )
    cost = estimate_from(answer, "us-east-1", {})
    assert cost.amount == pytest.approx(300 * 2 * 1.408 / 3600)
    assert cost.basis == (
        "2 x ml.g5.xlarge, 300 billable s at $1.408/h; managed spot saved 70% ($0.78 on demand)"
    )


def test_the_users_prices_win_and_the_estimate_says_whose_they_are() -> None:
    cost = estimate_from(described(), "eu-west-1", {"ml.g5.xlarge": 2.0})
    assert cost.amount == pytest.approx(4.0)
    assert cost.prices == "your price table"


def test_another_region_is_priced_from_the_table_with_a_warning() -> None:
    cost = estimate_from(described(), "eu-west-1", {})
    assert cost.prices == (
        f"{TABLE_NOTE}; the job ran in eu-west-1, where prices differ (pass --price-table)"
    )


def test_a_heterogeneous_cluster_adds_up_its_groups() -> None:
    groups = [
        {"InstanceGroupName": "a", "InstanceType": "ml.m5.large", "InstanceCount": 1},
        {"InstanceGroupName": "b", "InstanceType": "ml.g5.xlarge", "InstanceCount": 2},
    ]
    cost = estimate_from(described(ResourceConfig={"InstanceGroups": groups}), None, {})
    assert cost.amount == pytest.approx(0.115 + 2 * 1.408)
    assert cost.basis.startswith("1 x ml.m5.large + 2 x ml.g5.xlarge, 3,600 billable s")


def test_a_job_that_never_got_instances_cost_nothing() -> None:
    answer = described(TrainingJobStatus="Failed", BillableTimeInSeconds=None)
    cost = estimate_from(answer, "us-east-1", {})
    assert (cost.amount, cost.basis) == (0.0, "2 x ml.g5.xlarge, no billable time")


def test_an_instance_type_without_a_price_says_how_to_give_one() -> None:
    answer = described(ResourceConfig={"InstanceType": "ml.trn1.2xlarge", "InstanceCount": 1})
    with pytest.raises(StepframeError) as raised:
        estimate_from(answer, "us-east-1", {})
    assert str(raised.value) == (
        "no price is known for instance type 'ml.trn1.2xlarge' (training job fit-train-1); "
        'give one in a price table: --price-table FILE with a line "ml.trn1.2xlarge" = '
        "USD_PER_HOUR"
    )


def test_a_running_job_has_no_cost_yet() -> None:
    with pytest.raises(StepframeError, match="is InProgress: its cost is known once it ends"):
        estimate_from(described(TrainingJobStatus="InProgress"), "us-east-1", {})


def test_every_price_in_the_table_is_a_training_instance_type_of_the_api_model() -> None:
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    training_types = set(model.shape_for("TrainingInstanceType").enum)
    assert set(TRAINING_PRICES) <= training_types
    assert all(0 < price < 100 for price in TRAINING_PRICES.values())


# ---- through the hook, against moto ------------------------------------------------------

RUN = "20260101-000000-abcdef"
MANIFEST = f"s3://stepframe-cost/store/runs/{RUN}/train/attempt-1/launch.json"


@pytest.fixture
def finished_job() -> Iterator[JobHandle]:
    """A training job submitted to moto on 2 x ml.c5.xlarge that ran 30 billable min."""
    clear_clients()
    operator = Component(
        ComponentKind.STEP_OPERATOR,
        "sm",
        "sagemaker",
        SageMakerOperatorConfig(execution_role=f"arn:aws:iam::{ACCOUNT}:role/sm"),
    )
    launch = Launch(
        run_id=RUN,
        pipeline="fit",
        step="train",
        attempt=1,
        job_name=f"fit-train-{RUN}-1",
        manifest_uri=MANIFEST,
        result_uri=MANIFEST.replace("launch.json", "result.json"),
        command=("python", "-m", "stepframe.entrypoint", MANIFEST),
        environment={"STEPFRAME_LAUNCH_MANIFEST": MANIFEST},
        settings=SageMakerSettings(instance_type="ml.c5.xlarge", instance_count=2),
        image=ImageRef(f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/fit:1", "sha256:" + "c" * 64),
    )
    handle = jobs.submit(launch, operator, None)
    job = sagemaker_backend().training_jobs[handle.job_id]
    job.training_job_status = "Completed"
    job.billable_time_in_seconds = job.training_time_in_seconds = 1800
    yield handle
    clear_clients()


def test_the_hook_answers_for_sagemaker_jobs_from_describe_training_job(
    finished_job: JobHandle,
) -> None:
    plugins = stepframe.load_plugins(env={"STEPFRAME_LOAD_PLUGINS": "aws"})
    cost = plugins.hooks.estimate_cost(finished_job, None, {})
    assert cost is not None
    assert cost.amount == pytest.approx(2 * 1800 * TRAINING_PRICES["ml.c5.xlarge"] / 3600)
    assert cost.basis == "2 x ml.c5.xlarge, 1,800 billable s at $0.204/h"


def test_a_local_mode_job_bills_nothing() -> None:
    plugins = stepframe.load_plugins(env={"STEPFRAME_LOAD_PLUGINS": "aws"})
    local = JobHandle(flavor="sagemaker", operator="sm", job_id="j", data={"mode": "local"})
    assert plugins.hooks.estimate_cost(local, None, {}) is None
