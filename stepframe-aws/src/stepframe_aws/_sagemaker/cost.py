"""What a finished SageMaker training job cost: the ``estimate_cost`` hook.

SageMaker bills ``BillableTimeInSeconds`` on each instance of the job (with managed spot
training that time is already the discounted one: SageMaker reports it so), at the
instance type's on-demand price.  The job's facts come from DescribeTrainingJob (what
AWS bills); the prices from the table shipped with this plugin (`prices`) or the user's
``--price-table``: an estimate, never a network price look-up.  Instances only: storage
volumes, S3 and data transfer are not counted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stepframe import CostEstimate, Credentials, JobHandle, StepframeError
from stepframe_aws._sagemaker.prices import PRICES_DATE, PRICES_REGION, TRAINING_PRICES

__all__ = ["estimate", "estimate_from"]

_RUNNING = frozenset({"InProgress", "Stopping"})


def estimate(
    handle: JobHandle, credentials: Credentials | None, prices: Mapping[str, float]
) -> CostEstimate | None:
    """The estimate for the job of ``handle`` (None for a local mode job: nothing billed).

    :raises StepframeError: the job is still running, AWS would not describe it, or an
        instance type has no known price.
    """
    if handle.data.get("mode") == "local":
        return None
    from stepframe_aws._errors import aws_errors
    from stepframe_aws._sagemaker.clients import cached_client

    region = handle.data.get("region")
    with aws_errors(f"describing SageMaker training job {handle.job_id} for its cost"):
        answer = cached_client("poll", credentials, region).describe_training_job(
            TrainingJobName=handle.job_id
        )
    return estimate_from(answer, region, prices)


def _instances(answer: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(instance type, count) of the job: one group, or a heterogeneous cluster's groups."""
    resources = answer.get("ResourceConfig") or {}
    groups = resources.get("InstanceGroups") or []
    if groups:
        return [(str(g["InstanceType"]), int(g["InstanceCount"])) for g in groups]
    return [(str(resources.get("InstanceType")), int(resources.get("InstanceCount") or 1))]


def estimate_from(
    answer: Mapping[str, Any], region: str | None, user_prices: Mapping[str, float]
) -> CostEstimate:
    """The estimate from a DescribeTrainingJob answer (pure: no AWS call).

    :param region: where the job ran; the shipped table is for `PRICES_REGION`.
    :param user_prices: the user's prices per instance-hour; they win over the table.
    """
    name = answer.get("TrainingJobName", "?")
    status = str(answer.get("TrainingJobStatus", ""))
    if status in _RUNNING:
        raise StepframeError(
            f"training job {name} is {status}: its cost is known once it ends; ask again then"
        )
    billable = answer.get("BillableTimeInSeconds")
    instances = _instances(answer)
    shown = " + ".join(f"{count} x {kind}" for kind, count in instances)
    prices_note = _prices_note(instances, region, user_prices)
    if not billable:
        # Failed or stopped before any instance started: SageMaker bills nothing.
        return CostEstimate(0.0, basis=f"{shown}, no billable time", prices=prices_note)
    amount = 0.0
    rates = []
    for kind, count in instances:
        price = user_prices.get(kind, TRAINING_PRICES.get(kind))
        if price is None:
            raise StepframeError(
                f"no price is known for instance type {kind!r} (training job {name}); give "
                f'one in a price table: --price-table FILE with a line "{kind}" = '
                "USD_PER_HOUR"
            )
        amount += float(billable) * count * price / 3600
        rates.append(f"${price:g}/h")
    basis = f"{shown}, {int(billable):,} billable s at {' + '.join(rates)}"
    training = answer.get("TrainingTimeInSeconds")
    if answer.get("EnableManagedSpotTraining") and training:
        on_demand = amount * float(training) / float(billable)
        saved = 1 - float(billable) / float(training)
        basis += f"; managed spot saved {saved:.0%} (${on_demand:,.2f} on demand)"
    return CostEstimate(amount, basis=basis, prices=prices_note)


def _prices_note(
    instances: list[tuple[str, int]], region: str | None, user_prices: Mapping[str, float]
) -> str:
    if all(kind in user_prices for kind, _ in instances):
        return "your price table"
    note = (
        f"stepframe-aws's table of SageMaker training on-demand list prices, "
        f"{PRICES_REGION}, {PRICES_DATE}: an estimate"
    )
    if region and region != PRICES_REGION:
        note += f"; the job ran in {region}, where prices differ (pass --price-table)"
    return note
