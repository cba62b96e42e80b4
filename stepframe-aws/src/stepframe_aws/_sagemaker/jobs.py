"""Submit, poll and stop SageMaker training jobs: the ``sagemaker`` operator's hooks.

``instance_type = "local"`` sends a job through the SageMaker SDK's local mode instead
(`stepframe_aws._sagemaker.local_mode`, imported only then: the SDK takes seconds to
import).  Its handles say ``mode = "local"``, so polls and stops find their way back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from stepframe import (
    Component,
    ConfigError,
    Credentials,
    JobHandle,
    JobState,
    JobStatus,
    Launch,
    StepframeError,
)
from stepframe_aws._errors import aws_errors, error_code, transient_problem
from stepframe_aws._sagemaker.clients import cached_client
from stepframe_aws._sagemaker.config import (
    FLAVOR,
    LOCAL_INSTANCE_TYPE,
    SageMakerOperatorConfig,
    SageMakerSettings,
)
from stepframe_aws._sagemaker.logs import LOG_GROUP, read_new_lines
from stepframe_aws._sagemaker.request import build_request, input_shape_of
from stepframe_aws._sagemaker.status import (
    BUDGET_WINDOW,
    MAX_DESCRIBES_PER_MINUTE,
    Cursor,
    describe_allowed,
    describe_detail,
    job_state,
    next_delay,
    transition_lines,
    unanswered_delay,
)

__all__ = ["cancel", "poll", "submit"]

_ENDED = frozenset({"Completed", "Failed", "Stopped"})


def _config(operator: Component) -> SageMakerOperatorConfig:
    if not isinstance(operator.config, SageMakerOperatorConfig):
        raise ConfigError(
            f"step operator {operator.name!r} has no sagemaker configuration; register it "
            "with `stepframe step-operator register NAME --flavor sagemaker "
            "--execution-role ARN`"
        )
    return operator.config


def _settings(launch: Launch) -> SageMakerSettings:
    if isinstance(launch.settings, SageMakerSettings):
        return launch.settings
    if launch.settings is None:
        return SageMakerSettings()
    if isinstance(launch.settings, Mapping):
        try:
            return SageMakerSettings(**launch.settings)
        except TypeError as error:
            raise ConfigError(f"step {launch.step!r} settings.sagemaker: {error}") from None
    raise ConfigError(
        f"step {launch.step!r}: the sagemaker operator got settings of type "
        f"{type(launch.settings).__name__}, not SageMakerSettings"
    )


def _with_component_defaults(
    settings: SageMakerSettings, config: SageMakerOperatorConfig
) -> SageMakerSettings:
    """The core lets a step's ``environment``/``tags`` replace the operator's wholesale;
    for these two the operator's entries belong underneath, key by key."""
    return attrs.evolve(
        settings,
        environment={**(config.environment or {}), **settings.environment},
        tags={**(config.tags or {}), **settings.tags},
    )


def submit(launch: Launch, operator: Component, credentials: Credentials | None) -> JobHandle:
    """Start ``launch`` as a training job (or a local-mode job) and return its handle.

    :param launch: the step attempt; ``launch.settings`` is its `SageMakerSettings`.
    :param operator: the ``sagemaker`` component.
    :param credentials: from the operator's connector, or None for boto3's default chain.
    :raises ConfigError: before anything is sent, for anything AWS would refuse.
    """
    config = _config(operator)
    settings = _settings(launch)
    if (settings.instance_type or config.instance_type) == LOCAL_INSTANCE_TYPE:
        from stepframe_aws._sagemaker.local_mode import submit_local

        merged = _with_component_defaults(settings, config)
        return submit_local(launch, operator, merged, credentials)
    with aws_errors(f"connecting to SageMaker for step {launch.step!r}"):
        client = cached_client("submit", credentials, config.region)
    request = build_request(launch, config, settings, credentials, input_shape_of(client))
    name = request["TrainingJobName"]
    with aws_errors(f"creating SageMaker training job {name}"):
        arn = _create(client, request)
    return JobHandle(
        flavor=FLAVOR,
        operator=operator.name,
        job_id=name,
        data={
            "mode": "remote",
            "region": client.meta.region_name,
            "arn": arn,
            "log_group": LOG_GROUP,
            "instance_type": request["ResourceConfig"]["InstanceType"],
            "instance_count": request["ResourceConfig"]["InstanceCount"],
        },
    )


def _create(client: Any, request: dict[str, Any]) -> str:
    """CreateTrainingJob; a retry whose first try did get through finds its own job."""
    from botocore.exceptions import ClientError  # type: ignore[import-untyped,unused-ignore]

    try:
        return str(client.create_training_job(**request)["TrainingJobArn"])
    except ClientError as error:
        if error_code(error) != "ResourceInUse":
            raise
        existing = client.describe_training_job(TrainingJobName=request["TrainingJobName"])
        image = existing.get("AlgorithmSpecification", {}).get("TrainingImage")
        if image != request["AlgorithmSpecification"]["TrainingImage"]:
            raise StepframeError(
                f"a SageMaker training job named {request['TrainingJobName']} already exists "
                f"with another image ({image}); job names are unique per account and region "
                "for good, so this attempt cannot reuse it: run the step again"
            ) from None
        return str(existing["TrainingJobArn"])


def poll(
    handle: JobHandle,
    credentials: Credentials | None,
    cursor: str | None,
    *,
    clock: Callable[[], float] = time.time,
) -> JobStatus:
    """The job's state, its status changes and its new log lines since ``cursor``.

    At most `MAX_DESCRIBES_PER_MINUTE` DescribeTrainingJob calls happen in any minute,
    however often this is called: an early poll answers the state last seen, with
    ``poll_after`` saying when a new answer is due.

    :param handle: a handle `submit` returned.
    :param credentials: from the operator's connector, or None.
    :param cursor: the previous status's cursor, None on the first poll.
    :param clock: UNIX time (a benchmark replays the schedule with a fake one).
    """
    if handle.data.get("mode") == "local":
        from stepframe_aws._sagemaker.local_mode import poll_local

        return poll_local(handle, cursor)
    state = Cursor.parse(cursor)
    now = clock()
    state.recent = [at for at in state.recent if now - at < BUDGET_WINDOW]
    if not describe_allowed(state, now):
        due = state.next_at
        if len(state.recent) >= MAX_DESCRIBES_PER_MINUTE:
            due = max(due, state.recent[0] + BUDGET_WINDOW)
        return JobStatus(
            JobState(state.state),
            cursor=state.dump(),
            detail=state.detail,
            poll_after=max(due - now, 0.05),
        )
    region = handle.data.get("region")
    name = handle.job_id
    with aws_errors(f"following SageMaker training job {name}"):
        client = cached_client("poll", credentials, region)
        try:
            answer = client.describe_training_job(TrainingJobName=name)
        except Exception as error:
            # The core stops a job whose poll raises: AWS throttling or out of reach
            # for a while must not cost a healthy job.  A missing job or a refusal does
            # raise (through aws_errors).
            problem = transient_problem(error)
            if problem is None:
                raise
            return _unanswered(state, now, name, problem)
    state.describes += 1
    state.recent.append(now)
    state.unanswered = 0
    state.delay = next_delay(state)
    state.next_at = now + state.delay
    job, reason = job_state(answer)
    lines, state.transitions = transition_lines(answer, state.transitions)
    log_lines = _new_log_lines(state, credentials, region, name, drain=job.is_terminal)
    primary = str(answer.get("TrainingJobStatus", ""))
    ended: tuple[str, ...] = ()
    if primary != state.status.split("/", 1)[0]:
        because = f": {reason}" if reason else ""
        ended = (f"sagemaker: training job {name} is {primary}{because}",)
    state.status = f"{primary}/{answer.get('SecondaryStatus', '')}"
    state.state = job.value
    state.detail = describe_detail(answer)
    return JobStatus(
        job,
        log_lines=(*lines, *log_lines, *ended),
        cursor=state.dump(),
        detail=state.detail,
        failure_reason=reason,
        poll_after=None if job.is_terminal else state.delay,
    )


_UNANSWERED = {
    "throttling": "AWS is throttling",
    "unavailable": "AWS answers server errors to",
    "unreachable": "AWS cannot be reached for",
}


def _unanswered(state: Cursor, now: float, name: str, problem: str) -> JobStatus:
    """The state last seen, while DescribeTrainingJob gets no answer even after botocore's
    retries; the next poll comes later, and later again while that lasts."""
    state.describes += 1
    state.recent.append(now)
    state.unanswered += 1
    state.delay = unanswered_delay(state)
    state.next_at = now + state.delay
    line = (
        f"sagemaker: {_UNANSWERED[problem]} DescribeTrainingJob ({name}) even after retries; "
        f"the job is left running, its last known state stands, retrying in {state.delay:.0f} s"
    )
    return JobStatus(
        JobState(state.state),
        log_lines=(line,),
        cursor=state.dump(),
        detail=state.detail,
        poll_after=state.delay,
    )


def _new_log_lines(
    state: Cursor, credentials: Credentials | None, region: str | None, name: str, *, drain: bool
) -> tuple[str, ...]:
    if state.logs_off is not None:
        return ()
    with aws_errors(f"reading the CloudWatch logs of SageMaker training job {name}"):
        client = cached_client("logs", credentials, region)
        batch = read_new_lines(client, name, state.logs, drain=drain)
    state.logs = batch.tokens
    lines = batch.lines
    if batch.skipped != state.logs_skipped:
        state.logs_skipped = batch.skipped
        if batch.skipped is not None:  # said once while it lasts
            lines = (*lines, f"sagemaker: {batch.skipped}")
    if batch.problem is None:
        return lines
    state.logs_off = batch.problem
    return (*lines, f"sagemaker: {batch.problem}")


def cancel(handle: JobHandle, credentials: Credentials | None) -> bool:
    """Ask SageMaker to stop the job; True once it is stopping or already over.

    :param handle: a handle `submit` returned.
    :param credentials: from the operator's connector, or None.
    :raises StepframeError: when the stop request does not get through (after one retry,
        so an interrupted run does not hang on it).
    """
    if handle.data.get("mode") == "local":
        from stepframe_aws._sagemaker.local_mode import cancel_local

        return cancel_local(handle)
    from botocore.exceptions import ClientError  # type: ignore[import-untyped,unused-ignore]

    name = handle.job_id
    with aws_errors(f"stopping SageMaker training job {name}"):
        client = cached_client("stop", credentials, handle.data.get("region"))
        try:
            client.stop_training_job(TrainingJobName=name)
        except ClientError as error:
            # SageMaker refuses to stop a job that has ended or is stopping already.
            if error_code(error) != "ValidationException":
                raise
            answer = client.describe_training_job(TrainingJobName=name)
            if answer.get("TrainingJobStatus") not in (*_ENDED, "Stopping"):
                raise
    return True
