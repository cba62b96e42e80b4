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
    JobNotFound,
    JobState,
    JobStatus,
    Launch,
    StepframeError,
    SubmitAmbiguousError,
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
from stepframe_aws._sagemaker.request import (
    build_request,
    image_by_digest,
    input_shape_of,
    training_job_name,
)
from stepframe_aws._sagemaker.status import (
    BUDGET_WINDOW,
    MAX_DESCRIBES_PER_MINUTE,
    Cursor,
    describe_allowed,
    describe_detail,
    job_state,
    job_summary,
    next_delay,
    summary_lines,
    transition_lines,
    unanswered_delay,
)
from stepframe_aws._session import client as make_client

__all__ = [
    "SUMMARY_NAME",
    "cancel",
    "console_url",
    "create_outcome",
    "find_job",
    "poll",
    "submit",
    "summary_uri",
]

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
    arn = _create(client, request, credentials)
    region = client.meta.region_name
    handle = _handle(operator.name, name, region, arn, request["ResourceConfig"])
    return attrs.evolve(handle, data={**handle.data, "summary_uri": summary_uri(launch)})


def summary_uri(launch: Launch) -> str:
    """Where the job's summary (`status.job_summary`) is written when it ends: next to
    the attempt's result manifest."""
    return f"{launch.result_uri.rsplit('/', 1)[0]}/{SUMMARY_NAME}"


#: The file name of a finished job's summary, next to its result manifest.
SUMMARY_NAME = "sagemaker-job.json"


def _handle(
    operator: str, name: str, region: str, arn: str, resources: Mapping[str, Any]
) -> JobHandle:
    return JobHandle(
        flavor=FLAVOR,
        operator=operator,
        job_id=name,
        data={
            "mode": "remote",
            "region": region,
            "arn": arn,
            "log_group": LOG_GROUP,
            "instance_type": resources.get("InstanceType"),
            "instance_count": resources.get("InstanceCount"),
            "console_url": console_url(region, name),
        },
    )


def console_url(region: str, name: str) -> str:
    """The training job's page in the SageMaker console."""
    return f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/jobs/{name}"


# CreateTrainingJob tries, the first included.  botocore's own retries are off for it
# (see clients.RETRIES): only here can a lost answer on one try be remembered on the next.
CREATE_ATTEMPTS = 4


def _create(client: Any, request: dict[str, Any], credentials: Credentials | None) -> str:
    """CreateTrainingJob, tried up to `CREATE_ATTEMPTS` times; a retry whose first try
    did get through finds its own job (ResourceInUse).

    :raises SubmitAmbiguousError: when a try may have created the job and no later try
        settled it (its answer lost, timed out or a 5xx): the core asks `find_job`.
    :raises StepframeError: when every try was refused in a way that proves no job was
        created (a 4xx validation error, access denied, throttling, no connection).
    """
    from botocore.exceptions import ClientError
    from botocore.retries.standard import (
        ExponentialBackoff,
        RetryContext,
    )

    name = request["TrainingJobName"]
    doing = f"creating SageMaker training job {name}"
    backoff = ExponentialBackoff()
    lost: BaseException | None = None  # the first try that may have created the job
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        try:
            return str(client.create_training_job(**request)["TrainingJobArn"])
        except ClientError as error:
            if error_code(error) == "ResourceInUse":
                return _existing(client, request, credentials)
            kind = create_outcome(error)
            last: BaseException = error
        except Exception as error:
            kind = create_outcome(error)
            last = error
        if kind == "ambiguous" and lost is None:
            lost = last
        if kind == "refused" or attempt == CREATE_ATTEMPTS:
            break
        time.sleep(backoff.delay_amount(RetryContext(attempt_number=attempt)))
    if lost is not None:
        raise SubmitAmbiguousError(
            f"{doing}: the request may have reached SageMaker but its answer was lost "
            f"({_describe_error(lost)}); looking the job up by its name"
        ) from None
    with aws_errors(doing):
        raise last
    raise AssertionError("unreachable")  # aws_errors re-raises every error


def create_outcome(error: BaseException) -> str:
    """What a failed CreateTrainingJob try proves.

    :return: ``"retry"`` (nothing was created and a new try may pass: throttling, no
        connection made), ``"refused"`` (nothing was created, a new try will not pass: a
        4xx such as a validation error or access denied) or ``"ambiguous"`` (the request
        may have been processed: the connection dropped after sending, a read timeout,
        a 5xx, anything unknown).
    """
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        HTTPClientError,
        ProxyConnectionError,
    )

    if isinstance(error, ClientError):
        problem = transient_problem(error)
        if problem == "throttling":
            return "retry"
        if problem == "unavailable":  # a 5xx: the service may have created it anyway
            return "ambiguous"
        return "refused"
    # Connecting failed: the request was never sent.
    if isinstance(error, (EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError)):
        return "retry"
    if isinstance(error, HTTPClientError):  # dropped, reset or timed out after sending
        return "ambiguous"
    if isinstance(error, BotoCoreError):  # no credentials, no region, a bad parameter
        return "refused"
    return "ambiguous"


def _describe_error(error: BaseException) -> str:
    code = error_code(error)
    if code:
        status = getattr(error, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"HTTP {status} {code}" if status else code
    return f"{type(error).__name__}: {error}"


def _existing(client: Any, request: dict[str, Any], credentials: Credentials | None) -> str:
    """The job a retry met under its name (ResourceInUse): ours if its image is."""
    name = request["TrainingJobName"]
    try:
        with aws_errors(f"looking up SageMaker training job {name}"):
            existing = cached_client("poll", credentials, client.meta.region_name)
            answer = existing.describe_training_job(TrainingJobName=name)
    except StepframeError as error:  # the job exists, maybe ours: not a plain failure
        raise SubmitAmbiguousError(
            f"creating SageMaker training job {name}: a job of that name exists (an earlier "
            f"try's, maybe), but looking it up failed: {error}"
        ) from None
    image = answer.get("AlgorithmSpecification", {}).get("TrainingImage")
    if image != request["AlgorithmSpecification"]["TrainingImage"]:
        raise StepframeError(
            f"a SageMaker training job named {name} already exists with another image "
            f"({image}); job names are unique per account and region for good, so this "
            "attempt cannot reuse it: run the step again"
        ) from None
    return str(answer["TrainingJobArn"])


def find_job(
    launch: Launch, operator: Component, credentials: Credentials | None
) -> JobHandle | JobNotFound | None:
    """The training job of ``launch`` whose CreateTrainingJob answer was lost.

    DescribeTrainingJob by the launch's deterministic name: adopted when its image (by
    digest) and its stepframe tags are the launch's; `JobNotFound` when SageMaker has no
    such job, or one that is not this launch's (job names are unique, so this launch's
    was never created); None when SageMaker cannot be asked (out of reach, throttling,
    a 5xx, refused credentials), and for local mode, whose jobs end with their process.
    """
    from botocore.exceptions import ClientError

    config = _config(operator)
    settings = _settings(launch)
    if (settings.instance_type or config.instance_type) == LOCAL_INSTANCE_TYPE:
        return None
    name = training_job_name(launch.job_name)
    try:
        client = cached_client("poll", credentials, config.region)
        answer = client.describe_training_job(TrainingJobName=name)
        tags = _tags(client, str(answer["TrainingJobArn"]))
    except ClientError as error:
        if _not_found(error):
            return JobNotFound(f"SageMaker has no training job {name}")
        return None
    except Exception:  # unreachable, timed out, no credentials: nobody can tell
        return None
    image = answer.get("AlgorithmSpecification", {}).get("TrainingImage")
    expected = image_by_digest(launch.image) if launch.image is not None else None
    ours = {
        "stepframe:run": launch.run_id,
        "stepframe:step": launch.step,
        "stepframe:attempt": str(launch.attempt),
    }
    mismatch = [key for key, value in ours.items() if tags.get(key) != value]
    if (expected is not None and image != expected) or mismatch:
        return JobNotFound(
            f"SageMaker training job {name} exists but is not this launch's (image {image}, "
            f"tags {', '.join(mismatch) or 'match'}); this launch's job was never created"
        )
    handle = _handle(
        operator.name,
        name,
        client.meta.region_name,
        str(answer["TrainingJobArn"]),
        answer.get("ResourceConfig", {}),
    )
    return attrs.evolve(handle, data={**handle.data, "summary_uri": summary_uri(launch)})


def _tags(client: Any, arn: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for page in client.get_paginator("list_tags").paginate(ResourceArn=arn):
        tags.update({tag["Key"]: tag["Value"] for tag in page.get("Tags", [])})
    return tags


def _not_found(error: BaseException) -> bool:
    """SageMaker's answer for a job that does not exist: ``ValidationException`` "Requested
    resource not found" (or moto's "Could not find"), or ``ResourceNotFound``."""
    code = error_code(error)
    if code in ("ResourceNotFound", "ResourceNotFoundException"):
        return True
    message = str(getattr(error, "response", {}).get("Error", {}).get("Message", "")).lower()
    return code in ("ValidationException", "ValidationError") and (
        "not found" in message or "could not find" in message
    )


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
    if not state.announced and handle.data.get("console_url"):
        state.announced = True
        lines = (f"sagemaker: training job {name}: {handle.data['console_url']}", *lines)
    if primary != state.status.split("/", 1)[0]:
        because = f": {reason}" if reason else ""
        ended = (f"sagemaker: training job {name} is {primary}{because}",)
        if job.is_terminal:
            ended = (*ended, *_summarize(handle, answer, credentials))
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


def _summarize(
    handle: JobHandle, answer: Mapping[str, Any], credentials: Credentials | None
) -> tuple[str, ...]:
    """The finished job's summary lines, and the summary recorded next to its result
    manifest (the run database has no column for it: issue 13 keeps the schema)."""
    import json

    summary = job_summary(answer, handle.data.get("console_url"))
    lines = summary_lines(summary)
    uri = handle.data.get("summary_uri")
    if not uri or not str(uri).startswith("s3://"):
        return lines
    bucket, _, key = str(uri)[len("s3://") :].partition("/")
    try:
        with aws_errors(f"recording the summary of SageMaker training job {handle.job_id}"):
            s3 = make_client("s3", credentials, region=handle.data.get("region"))
            body = json.dumps(summary, indent=2, default=str).encode()
            s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    except StepframeError as error:  # the job's outcome stands without its summary
        return (*lines, f"sagemaker: {error}")
    return lines


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
    from botocore.exceptions import ClientError

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
