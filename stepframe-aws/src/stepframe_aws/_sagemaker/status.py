"""From DescribeTrainingJob answers to stepframe job states, and the polling schedule.

The poll cursor is this module's JSON: how many DescribeTrainingJob calls were made and
when (the budget), the state last seen (answered again when a poll comes early), which
status transitions were reported, and the log tokens.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from stepframe import JobState

__all__ = [
    "FIRST_DELAY",
    "MAX_DELAY",
    "MAX_DESCRIBES_PER_MINUTE",
    "MAX_UNANSWERED_DELAY",
    "Cursor",
    "describe_allowed",
    "job_state",
    "job_summary",
    "next_delay",
    "summary_lines",
    "transition_lines",
    "unanswered_delay",
]

# Poll a new job soon (short jobs end promptly), then back off to the cap.  At the cap a
# minute holds 60 / 6 = 10 calls, under the budget of 12 even when polls come early.
FIRST_DELAY = 2.0
GROWTH = 1.5
MAX_DELAY = 6.0
MAX_DESCRIBES_PER_MINUTE = 12
BUDGET_WINDOW = 60.0
# DescribeTrainingJob still throttled or unreachable after botocore's retries: wait
# MAX_DELAY, then twice as long each time, up to this.
MAX_UNANSWERED_DELAY = 60.0

# SageMaker's secondary statuses before the container runs.
_STARTING = frozenset(
    {
        "Starting",
        "Pending",
        "LaunchingMLInstances",
        "PreparingTrainingStack",
        "Downloading",
        "DownloadingTrainingImage",
        "Restarting",
        "Interrupted",  # spot capacity taken back; the job waits for more
    }
)
# Stopped for a limit, not by the user: a failure, with the setting to raise.
_LIMITS = {
    "MaxRuntimeExceeded": "it ran past max_runtime_seconds; raise that setting",
    "MaxWaitTimeExceeded": (
        "spot capacity plus run time exceeded max_wait_seconds; raise it or drop use_spot"
    ),
    "MaxPendingTimeExceeded": (
        "it waited for capacity longer than max_pending_seconds; raise that setting or "
        "choose an instance type with capacity"
    ),
}


@attrs.define
class Cursor:
    """What one poll leaves for the next (serialized as JSON in ``JobStatus.cursor``).

    :param describes: DescribeTrainingJob calls made so far for this job.
    :param recent: when the calls of the last minute were made (UNIX time).
    :param next_at: when the next call is due.
    :param delay: the wait after the last call.
    :param state: the state last seen.
    :param detail: the detail last reported.
    :param status: ``Primary/Secondary`` last seen.
    :param transitions: secondary status transitions already reported.
    :param logs: stream name to its ``nextForwardToken``.
    :param logs_off: why log streaming stopped, once it has.
    :param logs_skipped: why the last poll read no logs, while that lasts (said once).
    :param unanswered: DescribeTrainingJob calls in a row that AWS did not answer (throttled,
        5xx, unreachable, after botocore's retries).
    :param announced: whether the job's console URL was shown.
    """

    describes: int = 0
    recent: list[float] = attrs.field(factory=list)
    next_at: float = 0.0
    delay: float = 0.0
    state: str = JobState.PENDING.value
    detail: str = ""
    status: str = ""
    transitions: int = 0
    logs: dict[str, str] = attrs.field(factory=dict)
    logs_off: str | None = None
    logs_skipped: str | None = None
    unanswered: int = 0
    announced: bool = False

    @classmethod
    def parse(cls, text: str | None) -> Cursor:
        """The cursor a poll returned, or a fresh one for the first poll (or a cursor
        this module never wrote, rather than failing the run over it)."""
        if not text:
            return cls()
        try:
            data = json.loads(text)
            return cls(**{f.name: data[f.name] for f in attrs.fields(cls) if f.name in data})
        except (ValueError, TypeError):
            return cls()

    def dump(self) -> str:
        return json.dumps(attrs.asdict(self), separators=(",", ":"))


def describe_allowed(cursor: Cursor, now: float) -> bool:
    """Whether a DescribeTrainingJob call fits the schedule and the per-minute budget.

    :param cursor: the previous poll's cursor (its ``recent`` already trimmed to ``now``).
    :param now: the current UNIX time.
    """
    if cursor.describes == 0:
        return True
    return now >= cursor.next_at and len(cursor.recent) < MAX_DESCRIBES_PER_MINUTE


def next_delay(cursor: Cursor) -> float:
    """The wait after the call just made: ``FIRST_DELAY`` growing to ``MAX_DELAY``."""
    if cursor.delay <= 0:
        return FIRST_DELAY
    return min(cursor.delay * GROWTH, MAX_DELAY)


def unanswered_delay(cursor: Cursor) -> float:
    """The wait after the ``cursor.unanswered``-th unanswered call in a row: `MAX_DELAY`,
    doubling up to `MAX_UNANSWERED_DELAY`."""
    doublings = min(max(cursor.unanswered - 1, 0), 8)
    return min(MAX_DELAY * float(2**doublings), MAX_UNANSWERED_DELAY)


def job_state(answer: Mapping[str, Any]) -> tuple[JobState, str | None]:
    """A DescribeTrainingJob answer as a stepframe state and, for a failure, the reason.

    :param answer: the DescribeTrainingJob response.
    """
    primary = str(answer.get("TrainingJobStatus", ""))
    secondary = str(answer.get("SecondaryStatus", ""))
    reason = answer.get("FailureReason") or None
    if primary == "Completed":
        return JobState.SUCCEEDED, None
    if primary == "Failed":
        return JobState.FAILED, str(reason or "SageMaker gave no failure reason")
    if primary == "Stopped":
        if secondary in _LIMITS:
            return JobState.FAILED, f"SageMaker stopped the job: {_LIMITS[secondary]}"
        return JobState.CANCELLED, None
    if primary == "Stopping":
        return JobState.RUNNING, None
    if secondary in _STARTING:
        return JobState.PENDING, None
    return JobState.RUNNING, None


def describe_detail(answer: Mapping[str, Any]) -> str:
    """``InProgress/Training: Training image download completed...``: what the console
    shows next to the step."""
    primary = str(answer.get("TrainingJobStatus", ""))
    secondary = str(answer.get("SecondaryStatus", ""))
    transitions = answer.get("SecondaryStatusTransitions") or []
    message = str(transitions[-1].get("StatusMessage", "")) if transitions else ""
    text = f"{primary}/{secondary}" if secondary and secondary != primary else primary
    return f"{text}: {message}" if message else text


def transition_lines(answer: Mapping[str, Any], seen: int) -> tuple[tuple[str, ...], int]:
    """Log lines for the secondary status transitions not reported yet.

    :param answer: the DescribeTrainingJob response.
    :param seen: how many transitions earlier polls reported.
    :return: the lines and the new count.
    """
    transitions = list(answer.get("SecondaryStatusTransitions") or [])
    lines = []
    for transition in transitions[seen:]:
        status = transition.get("Status", "")
        message = transition.get("StatusMessage", "")
        lines.append(f"sagemaker: {status}" + (f" - {message}" if message else ""))
    return tuple(lines), max(seen, len(transitions))


def job_summary(answer: Mapping[str, Any], console_url: str | None = None) -> dict[str, Any]:
    """What a finished job cost and measured, from its DescribeTrainingJob answer:
    instance type and count, training and billable seconds, the managed spot savings
    (``1 - billable / training``), and the final value of each metric definition."""
    resources = answer.get("ResourceConfig") or {}
    training = answer.get("TrainingTimeInSeconds")
    billable = answer.get("BillableTimeInSeconds")
    savings = None
    if answer.get("EnableManagedSpotTraining") and training and billable is not None:
        savings = round(1 - billable / training, 4)
    metrics = {
        str(item["MetricName"]): item.get("Value")
        for item in answer.get("FinalMetricDataList") or []
        if "MetricName" in item
    }
    return {
        "training_job_name": answer.get("TrainingJobName"),
        "status": answer.get("TrainingJobStatus"),
        "instance_type": resources.get("InstanceType"),
        "instance_count": resources.get("InstanceCount"),
        "training_seconds": training,
        "billable_seconds": billable,
        "spot": bool(answer.get("EnableManagedSpotTraining")),
        "spot_savings": savings,
        "final_metrics": metrics,
        "console_url": console_url,
    }


def summary_lines(summary: Mapping[str, Any]) -> tuple[str, ...]:
    """The summary as the lines printed with the step when its job ends."""
    lines = []
    billable = summary.get("billable_seconds")
    if billable is not None:
        text = (
            f"sagemaker: billable {billable} s on {summary.get('instance_count')} x "
            f"{summary.get('instance_type')}"
        )
        if summary.get("training_seconds") is not None:
            text += f" (training {summary['training_seconds']} s"
            savings = summary.get("spot_savings")
            text += f", managed spot saved {savings:.0%})" if savings is not None else ")"
        lines.append(text)
    metrics = summary.get("final_metrics") or {}
    if metrics:
        shown = ", ".join(f"{name} = {value:g}" for name, value in metrics.items())
        lines.append(f"sagemaker: final metrics: {shown}")
    return tuple(lines)
