"""The ``sagemaker`` operator's submit, poll and cancel against moto's SageMaker, S3 and
CloudWatch Logs (real botocore, real HTTP; moto never runs the container, so the tests
move each training job through its states through moto's own backend objects)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from _moto_helpers import (
    ACCOUNT,
    REGION,
    FakeClock,
    Recording,
    aws_answer,
    sagemaker_backend,
    teach_stop_training_job,
    throttle_first,
    write_logs,
)

from stepframe import (
    Component,
    ComponentKind,
    Credentials,
    ImageRef,
    JobHandle,
    JobState,
    JobStatus,
    Launch,
    ResourceRequest,
    StepframeError,
)
from stepframe_aws._sagemaker import jobs
from stepframe_aws._sagemaker.clients import RETRIES, cached_client, clear_clients
from stepframe_aws._sagemaker.config import SageMakerOperatorConfig, SageMakerSettings
from stepframe_aws._sagemaker.status import MAX_DESCRIBES_PER_MINUTE

ROLE = f"arn:aws:iam::{ACCOUNT}:role/stepframe-sagemaker"
BUCKET = "stepframe-jobs"
DIGEST = "sha256:" + "cd" * 32
RUN = "20260101-000000-abcdef"
MANIFEST = f"s3://{BUCKET}/store/runs/{RUN}/train/attempt-1/launch.json"


@pytest.fixture(autouse=True)
def fresh_clients() -> Iterator[None]:
    """Kept clients carry the event hooks a test registers: none outlives its test."""
    clear_clients()
    yield
    clear_clients()


def training_job(name: str) -> Any:
    """moto's in-process object for a training job, to move it through its states."""
    return sagemaker_backend().training_jobs[name]


def set_status(name: str, primary: str, secondary: str, message: str = "", **extra: Any) -> None:
    job = training_job(name)
    job.training_job_status = primary
    job.secondary_status = secondary
    job.secondary_status_transitions = [
        *[t for t in job.secondary_status_transitions if t["Status"] != secondary],
        {"Status": secondary, "StartTime": time.time(), "StatusMessage": message},
    ]
    for key, value in extra.items():
        setattr(job, key, value)


# ---- submitting --------------------------------------------------------------------------


OPERATOR = Component(
    kind=ComponentKind.STEP_OPERATOR,
    name="sm",
    flavor="sagemaker",
    config=SageMakerOperatorConfig(execution_role=ROLE, environment={"OWNER": "ops"}),
)


def make_launch(settings: SageMakerSettings | None = None, **changes: Any) -> Launch:
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
        settings=settings or SageMakerSettings(),
        image=ImageRef(f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/fit:abc123", DIGEST),
    )
    return attrs.evolve(launch, **changes)


@pytest.fixture
def submitted() -> JobHandle:
    handle = jobs.submit(make_launch(), OPERATOR, None)
    set_status(handle.job_id, "InProgress", "Starting", "Preparing the instances for training")
    return handle


def test_submit_sends_the_checked_request(recording: Recording) -> None:
    settings = SageMakerSettings(instance_type="ml.c5.xlarge", environment={"LEVEL": "debug"})
    handle = jobs.submit(make_launch(settings), OPERATOR, None)

    assert handle.flavor == "sagemaker" and handle.operator == "sm"
    assert handle.job_id == f"fit-train-{RUN}-1"
    assert handle.data["region"] == REGION
    assert handle.data["mode"] == "remote"
    json.dumps(dict(handle.data))  # the run history stores it as JSON
    (sent,) = recording.requests("CreateTrainingJob")
    assert sent["AlgorithmSpecification"] == {
        "TrainingImage": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/fit@{DIGEST}",
        "TrainingInputMode": "File",
        "ContainerEntrypoint": ["python", "-m", "stepframe.entrypoint"],
    }
    assert sent["Environment"] == {
        "OWNER": "ops",
        "LEVEL": "debug",
        "STEPFRAME_LAUNCH_MANIFEST": MANIFEST,
    }
    assert sent["ResourceConfig"]["InstanceType"] == "ml.c5.xlarge"
    assert sent["OutputDataConfig"] == {"S3OutputPath": f"s3://{BUCKET}/store/sagemaker-output/"}
    assert sent["RoleArn"] == ROLE
    # moto stored the job where DescribeTrainingJob finds it.
    assert training_job(handle.job_id).role_arn == ROLE


def test_submit_with_the_connectors_keys(moto_endpoint: str, recording: Recording) -> None:
    credentials = Credentials(
        connector="aws",
        resource=ResourceRequest(),
        values={
            "aws_access_key_id": "AKIACONNECTOR",
            "aws_secret_access_key": "connector-secret",
            "region": "eu-west-1",
            "endpoint_url": moto_endpoint,
        },
    )
    handle = jobs.submit(make_launch(), OPERATOR, credentials)
    assert handle.data["region"] == "eu-west-1"
    assert recording.requests("CreateTrainingJob")
    assert "connector-secret" not in json.dumps(recording.requests("CreateTrainingJob"))


def test_a_refused_request_sends_nothing(recording: Recording) -> None:
    from stepframe import ConfigError

    settings = SageMakerSettings(environment={"AWS_ACCESS_KEY_ID": "AKIA"})
    with pytest.raises(ConfigError, match="client credentials never go into a job"):
        jobs.submit(make_launch(settings), OPERATOR, None)
    assert recording.requests("CreateTrainingJob") == []


def test_a_retried_create_finds_the_job_its_first_try_made() -> None:
    launch = make_launch()
    first = jobs.submit(launch, OPERATOR, None)
    client = cached_client("submit", None, None)
    # The first try got through but its answer was lost; AWS answers the retry so:

    def in_use(request: Any, **kwargs: Any) -> Any:
        body = json.dumps({"__type": "ResourceInUse", "Message": "job name in use"})
        return aws_answer(request.url, 400, body.encode())

    client.meta.events.register("before-send.sagemaker.CreateTrainingJob", in_use)
    again = jobs.submit(launch, OPERATOR, None)
    assert again.job_id == first.job_id
    assert again.data["arn"] == first.data["arn"]


def test_a_name_in_use_that_cannot_be_looked_up_is_ambiguous(instant_retries: None) -> None:
    """The retry meets ResourceInUse (an earlier try may have made the job) and the
    lookup fails: not a plain failure, which would forget a job that may run."""
    from stepframe import SubmitAmbiguousError

    launch = make_launch()
    jobs.submit(launch, OPERATOR, None)

    def in_use(request: Any, **kwargs: Any) -> Any:
        body = json.dumps({"__type": "ResourceInUse", "Message": "job name in use"})
        return aws_answer(request.url, 400, body.encode())

    def unavailable(request: Any, **kwargs: Any) -> Any:
        body = json.dumps({"__type": "InternalFailure", "Message": "try later"})
        return aws_answer(request.url, 500, body.encode())

    cached_client("submit", None, None).meta.events.register(
        "before-send.sagemaker.CreateTrainingJob", in_use
    )
    cached_client("poll", None, REGION).meta.events.register(
        "before-send.sagemaker.DescribeTrainingJob", unavailable
    )
    with pytest.raises(SubmitAmbiguousError, match="a job of that name exists"):
        jobs.submit(launch, OPERATOR, None)


def test_find_job_adopts_only_this_launchs_job() -> None:
    from stepframe import JobNotFound

    launch = make_launch()
    assert isinstance(jobs.find_job(launch, OPERATOR, None), JobNotFound)  # nothing yet
    handle = jobs.submit(launch, OPERATOR, None)
    found = jobs.find_job(launch, OPERATOR, None)
    assert isinstance(found, JobHandle)
    assert (found.job_id, found.data["arn"]) == (handle.job_id, handle.data["arn"])
    assert found.data["console_url"] == handle.data["console_url"]
    # Same name, another image or another attempt's tags: not this launch's job.
    other_image = make_launch(image=ImageRef("x.dkr.ecr.us-east-1.amazonaws.com/y", DIGEST))
    assert isinstance(jobs.find_job(other_image, OPERATOR, None), JobNotFound)
    other_run = make_launch(run_id="20260101-000000-ffffff")
    assert isinstance(jobs.find_job(other_run, OPERATOR, None), JobNotFound)


def test_find_job_cannot_tell_when_sagemaker_is_out_of_reach(
    monkeypatch: pytest.MonkeyPatch, instant_retries: None
) -> None:
    import socket

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    assert jobs.find_job(make_launch(), OPERATOR, None) is None


def test_a_create_that_never_connected_is_not_ambiguous(
    monkeypatch: pytest.MonkeyPatch, instant_retries: None
) -> None:
    """No connection was made: nothing was created, the error is an ordinary one."""
    import socket

    from stepframe import SubmitAmbiguousError

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(StepframeError, match="cannot reach") as caught:
        jobs.submit(make_launch(), OPERATOR, None)
    assert not isinstance(caught.value, SubmitAmbiguousError)


# ---- polling -----------------------------------------------------------------------------


def poll_at(
    handle: JobHandle, cursor: str | None, clock: FakeClock, *, after: float | None = None
) -> JobStatus:
    """Poll once the previous status's poll_after has passed on the fake clock."""
    if after is not None:
        clock.now += after
    return jobs.poll(handle, None, cursor, clock=clock)


def test_a_job_is_followed_from_start_to_completion(submitted: JobHandle) -> None:
    name = submitted.job_id
    clock = FakeClock()

    first = poll_at(submitted, None, clock)
    assert first.state is JobState.PENDING
    assert first.detail == "InProgress/Starting: Preparing the instances for training"
    assert "sagemaker: Starting - Preparing the instances for training" in first.log_lines
    assert f"sagemaker: training job {name} is InProgress" in first.log_lines
    assert first.poll_after == pytest.approx(2.0)

    set_status(name, "InProgress", "Training", "Training image download completed.")
    write_logs(f"{name}/algo-1-1700000000", "loading data", "epoch 1")
    second = poll_at(submitted, first.cursor, clock, after=first.poll_after)
    assert second.state is JobState.RUNNING
    assert second.detail == "InProgress/Training: Training image download completed."
    assert second.log_lines == (
        "sagemaker: Training - Training image download completed.",
        "loading data",
        "epoch 1",
    )
    assert second.poll_after == pytest.approx(3.0)  # backing off

    write_logs(f"{name}/algo-1-1700000000", "epoch 2")
    third = poll_at(submitted, second.cursor, clock, after=second.poll_after)
    assert third.log_lines == ("epoch 2",)  # each line once

    write_logs(f"{name}/algo-1-1700000000", "saved")
    set_status(name, "Completed", "Completed", "Training job completed")
    last = poll_at(submitted, third.cursor, clock, after=third.poll_after)
    assert last.state is JobState.SUCCEEDED
    assert last.poll_after is None
    assert last.log_lines == (
        "sagemaker: Completed - Training job completed",
        "saved",
        f"sagemaker: training job {name} is Completed",
        "sagemaker: final metrics: train:progress = 100",  # moto's metric
        # The summary goes next to the result manifest; this test made no bucket.
        f"sagemaker: recording the summary of SageMaker training job {name}: AWS answered "
        "NoSuchBucket: The specified bucket does not exist",
    )
    first_lines = first.log_lines
    assert first_lines[0] == f"sagemaker: training job {name}: {submitted.data['console_url']}"


def test_several_instances_mark_their_lines(submitted: JobHandle) -> None:
    name = submitted.job_id
    set_status(name, "InProgress", "Training")
    write_logs(f"{name}/algo-1-1700000000", "one")
    write_logs(f"{name}/algo-2-1700000000", "two")
    status = jobs.poll(submitted, None, None)
    assert "[algo-1] one" in status.log_lines and "[algo-2] two" in status.log_lines


def test_a_failed_job_reports_sagemakers_reason(submitted: JobHandle) -> None:
    name = submitted.job_id
    reason = "AlgorithmError: ExecuteUserScriptError: exit code 1"
    set_status(name, "Failed", "Failed", "Training job failed", failure_reason=reason)
    status = jobs.poll(submitted, None, None)
    assert status.state is JobState.FAILED
    assert status.failure_reason == reason
    assert f"sagemaker: training job {name} is Failed: {reason}" in status.log_lines


def test_a_job_stopped_at_its_time_limit_failed(submitted: JobHandle) -> None:
    set_status(submitted.job_id, "Stopped", "MaxRuntimeExceeded")
    status = jobs.poll(submitted, None, None)
    assert status.state is JobState.FAILED
    assert status.failure_reason is not None and "max_runtime_seconds" in status.failure_reason


def test_a_job_stopped_for_waiting_too_long_names_the_setting(submitted: JobHandle) -> None:
    set_status(submitted.job_id, "Stopped", "MaxPendingTimeExceeded")
    status = jobs.poll(submitted, None, None)
    assert status.state is JobState.FAILED
    assert status.failure_reason is not None
    assert "longer than max_pending_seconds" in status.failure_reason


def test_throttling_is_retried_and_survived(submitted: JobHandle) -> None:
    client = cached_client("poll", None, submitted.data["region"])
    seen = throttle_first(client, "DescribeTrainingJob", times=2)
    status = jobs.poll(submitted, None, None)
    assert status.state is JobState.PENDING
    assert seen == ["throttled", "throttled", "sent"]


def test_server_errors_are_retried_too(submitted: JobHandle) -> None:
    client = cached_client("poll", None, submitted.data["region"])
    answers: list[int] = []

    def unavailable(request: Any, **kwargs: Any) -> Any:
        answers.append(503 if not answers else 200)
        if answers[-1] == 200:
            return None
        return aws_answer(request.url, 503, b"{}")

    client.meta.events.register("before-send.sagemaker.DescribeTrainingJob", unavailable)
    assert jobs.poll(submitted, None, None).state is JobState.PENDING
    assert answers == [503, 200]


def test_a_poll_throttled_past_its_retries_leaves_the_job_running(
    submitted: JobHandle, instant_retries: None, recording: Recording
) -> None:
    """The core stops a job whose poll raises: AWS throttling must not cost the job."""
    name = submitted.job_id
    set_status(name, "InProgress", "Training", "Training image download completed.")
    clock = FakeClock()
    first = poll_at(submitted, None, clock)
    assert first.state is JobState.RUNNING

    client = cached_client("poll", None, submitted.data["region"])
    seen = throttle_first(client, "DescribeTrainingJob", times=10)
    second = poll_at(submitted, first.cursor, clock, after=first.poll_after)
    assert seen == ["throttled"] * RETRIES["poll"]  # botocore gave up on this poll
    assert second.state is JobState.RUNNING
    assert second.detail == first.detail
    (line,) = second.log_lines
    assert "AWS is throttling DescribeTrainingJob" in line and "retrying" in line
    assert second.poll_after is not None and second.poll_after > (first.poll_after or 0)

    third = poll_at(submitted, second.cursor, clock, after=second.poll_after)
    assert seen == ["throttled"] * 10 + ["sent"]
    assert third.state is JobState.RUNNING
    assert not any("throttling" in line for line in third.log_lines)
    assert training_job(name).training_job_status == "InProgress"
    assert recording.requests("StopTrainingJob") == []


def test_a_poll_that_cannot_reach_aws_leaves_the_job_running(
    submitted: JobHandle, instant_retries: None
) -> None:
    from botocore.exceptions import EndpointConnectionError

    client = cached_client("poll", None, submitted.data["region"])
    tries: list[int] = []

    def unreachable(request: Any, **kwargs: Any) -> Any:
        tries.append(1)
        raise EndpointConnectionError(endpoint_url=request.url)

    client.meta.events.register("before-send.sagemaker.DescribeTrainingJob", unreachable)
    clock = FakeClock()
    first = poll_at(submitted, None, clock)
    assert len(tries) == RETRIES["poll"]
    assert first.state is JobState.PENDING  # nothing seen yet: the state a job starts in
    (line,) = first.log_lines
    assert "AWS cannot be reached for DescribeTrainingJob" in line
    second = poll_at(submitted, first.cursor, clock, after=first.poll_after)
    assert second.poll_after is not None and first.poll_after is not None
    assert second.poll_after > first.poll_after  # backing off while it lasts


def test_a_job_that_does_not_exist_still_raises(submitted: JobHandle) -> None:
    gone = attrs.evolve(submitted, job_id="fit-train-no-such-job")
    with pytest.raises(StepframeError, match="fit-train-no-such-job"):
        jobs.poll(gone, None, None)


def test_throttled_logs_are_read_at_the_next_poll(
    submitted: JobHandle, instant_retries: None
) -> None:
    name = submitted.job_id
    set_status(name, "InProgress", "Training")
    write_logs(f"{name}/algo-1-1700000000", "epoch 1")
    client = cached_client("logs", None, submitted.data["region"])
    # One poll's GetLogEvents throttled through all of botocore's attempts.
    throttle_first(client, "GetLogEvents", times=RETRIES["logs"])
    clock = FakeClock()
    first = poll_at(submitted, None, clock)
    assert first.state is JobState.RUNNING
    assert "epoch 1" not in first.log_lines
    assert not any("logs:GetLogEvents" in line for line in first.log_lines)  # no blame
    second = poll_at(submitted, first.cursor, clock, after=first.poll_after)
    assert "epoch 1" in second.log_lines
    write_logs(f"{name}/algo-1-1700000000", "epoch 2")
    third = poll_at(submitted, second.cursor, clock, after=second.poll_after)
    assert third.log_lines == ("epoch 2",)


def test_unreachable_logs_do_not_fail_the_poll(submitted: JobHandle, instant_retries: None) -> None:
    from botocore.exceptions import ReadTimeoutError

    name = submitted.job_id
    set_status(name, "InProgress", "Training")
    write_logs(f"{name}/algo-1-1700000000", "epoch 1")
    client = cached_client("logs", None, submitted.data["region"])
    failures: list[int] = []

    def timeout(request: Any, **kwargs: Any) -> Any:
        if len(failures) >= RETRIES["logs"]:
            return None
        failures.append(1)
        raise ReadTimeoutError(endpoint_url=request.url)

    client.meta.events.register("before-send.cloudwatch-logs.DescribeLogStreams", timeout)
    clock = FakeClock()
    first = poll_at(submitted, None, clock)
    assert first.state is JobState.RUNNING
    assert "epoch 1" not in first.log_lines
    second = poll_at(submitted, first.cursor, clock, after=first.poll_after)
    assert "epoch 1" in second.log_lines


def test_unreadable_logs_do_not_stop_the_job_being_followed(submitted: JobHandle) -> None:
    client = cached_client("logs", None, submitted.data["region"])

    def denied(request: Any, **kwargs: Any) -> Any:
        body = json.dumps({"__type": "AccessDeniedException", "message": "not allowed"})
        return aws_answer(request.url, 400, body.encode())

    client.meta.events.register("before-send.cloudwatch-logs.DescribeLogStreams", denied)
    clock = FakeClock()
    first = poll_at(submitted, None, clock)
    assert first.state is JobState.PENDING
    problems = [line for line in first.log_lines if "cannot read the job's CloudWatch logs" in line]
    assert len(problems) == 1 and "logs:DescribeLogStreams" in problems[0]
    second = poll_at(submitted, first.cursor, clock, after=first.poll_after)
    assert not any("CloudWatch" in line for line in second.log_lines)  # said once


def test_polls_stay_within_the_describe_budget(submitted: JobHandle) -> None:
    """However often the caller polls (a cancel polls every 0.2 s), DescribeTrainingJob
    is called at most 12 times a minute; the schedule itself asks for fewer."""
    set_status(submitted.job_id, "InProgress", "Training")
    client = cached_client("poll", None, submitted.data["region"])
    calls: list[float] = []
    clock = FakeClock()
    start = clock.now
    client.meta.events.register(
        "before-send.sagemaker.DescribeTrainingJob", lambda **kwargs: calls.append(clock.now)
    )
    cursor = None
    while clock.now - start < 180:
        status = jobs.poll(submitted, None, cursor, clock=clock)
        cursor = status.cursor
        assert status.state is JobState.RUNNING
        assert status.poll_after is not None and status.poll_after > 0
        clock.now += 0.5  # an impatient caller, ignoring poll_after
    for minute_start in range(0, 180 - 59, 10):
        window = [t for t in calls if 0 <= t - start - minute_start < 60]
        assert len(window) <= MAX_DESCRIBES_PER_MINUTE, (minute_start, len(window))
    after_first_minute = [t for t in calls if 60 <= t - start < 120]
    assert len(after_first_minute) == 10  # the 6 s cap


# ---- cancelling --------------------------------------------------------------------------


@pytest.fixture
def moto_stops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return teach_stop_training_job(monkeypatch)


def test_cancel_stops_the_job(submitted: JobHandle, moto_stops: list[str]) -> None:
    assert jobs.cancel(submitted, None) is True
    assert moto_stops == [submitted.job_id]
    assert jobs.poll(submitted, None, None).state is JobState.CANCELLED


def test_cancelling_an_ended_job_is_fine(submitted: JobHandle, moto_stops: list[str]) -> None:
    set_status(submitted.job_id, "Completed", "Completed")
    assert jobs.cancel(submitted, None) is True
    assert moto_stops == []


def test_a_stop_that_cannot_get_through_says_so_within_seconds(
    submitted: JobHandle, recording: Recording
) -> None:
    # moto's own StopTrainingJob answers HTTP 500: one retry, then a clear error.
    started = time.monotonic()
    with pytest.raises(StepframeError, match=f"stopping SageMaker training job {submitted.job_id}"):
        jobs.cancel(submitted, None)
    assert time.monotonic() - started < 5
    sent = recording.requests("StopTrainingJob")
    assert sent == [{"TrainingJobName": submitted.job_id}] * 2


# ---- local mode --------------------------------------------------------------------------


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("sagemaker") is not None,
    reason="the SageMaker SDK is installed: local mode itself runs in its own tests",
)
def test_instance_type_local_goes_to_the_sdks_local_mode(recording: Recording) -> None:
    from stepframe import StepframeError

    operator = attrs.evolve(
        OPERATOR, config=SageMakerOperatorConfig(execution_role=ROLE, instance_type="local")
    )
    with pytest.raises(StepframeError, match=r"(?i)sagemaker sdk"):
        jobs.submit(make_launch(), operator, None)
    assert recording.requests("CreateTrainingJob") == []
