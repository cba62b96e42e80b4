"""The ``vertex`` operator's job calls through google-api-python-client's real client, on
the loopback Vertex AI test service (no containers: jobs stay QUEUED unless cancelled).

Lost create answers reconciled by label, throttling and 5xx answered by retries, refusals
as one line: what a flaky network and a strict API do to submit, poll, cancel and find.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from _vertex_service import VertexService
from stepframe_gcp import VertexOperatorConfig, VertexSettings
from stepframe_gcp._vertex import jobs

from stepframe import (
    Component,
    ComponentKind,
    Credentials,
    ImageRef,
    JobHandle,
    JobNotFound,
    JobState,
    Launch,
    ResourceRequest,
    StepframeError,
    SubmitAmbiguousError,
)

CREDENTIALS = Credentials("gcp", ResourceRequest("generic"), {"access_token": "ya29.test"})
DIGEST = "sha256:" + "cd" * 32


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> Iterator[VertexService]:
    """The test service, and retries without their backoff waits (googleapiclient's and
    the create's own)."""
    import googleapiclient.http

    class NoWaits:
        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        @staticmethod
        def sleep(seconds: float) -> None:
            pass

    monkeypatch.setattr(googleapiclient.http, "time", NoWaits())
    monkeypatch.setattr(jobs, "_sleep", lambda seconds: None)
    started = VertexService(run_containers=False).start()
    try:
        yield started
    finally:
        started.stop()


class FakeClock:
    """UNIX time that moves only when the test moves it."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def operator(service: VertexService) -> Component:
    config = VertexOperatorConfig(
        project="test-project",
        region="europe-west4",
        api_endpoint=service.url,
        logging_endpoint=service.url,
    )
    return Component(ComponentKind.STEP_OPERATOR, "vertex", "vertex", config)


def launch(attempt: int = 1, **settings: Any) -> Launch:
    return Launch(
        run_id="r1",
        pipeline="training",
        step="train",
        attempt=attempt,
        job_name=f"training-r1-train-{attempt}",
        manifest_uri="gs://bucket/m.json",
        result_uri="gs://bucket/r.json",
        command=("python", "-m", "stepframe.entrypoint", "gs://bucket/m.json"),
        settings=VertexSettings(**settings),
        image=ImageRef("127.0.0.1:5000/steps/training:abc", DIGEST),
    )


def test_a_submitted_job_is_polled_and_cancelled(service: VertexService) -> None:
    handle = jobs.submit(launch(), operator(service), CREDENTIALS)

    assert handle.job_id.startswith("projects/test-project/locations/europe-west4/customJobs/")
    clock = FakeClock()
    status = jobs.poll(handle, CREDENTIALS, None, clock=clock)
    assert status.state is JobState.PENDING
    assert status.detail.startswith("QUEUED https://console.cloud.google.com/vertex-ai/")
    assert status.log_lines[0].startswith(f"vertex: CustomJob {handle.job_id}: https://console")
    assert jobs.cancel(handle, CREDENTIALS) is True
    clock.now += status.poll_after or 0.0
    ended = jobs.poll(handle, CREDENTIALS, status.cursor, clock=clock)
    assert ended.state is JobState.CANCELLED
    assert ended.log_lines == (f"vertex: CustomJob {handle.job_id} is CANCELLED",)
    # Cancelling an ended job is harmless (Vertex AI answers FAILED_PRECONDITION).
    assert jobs.cancel(handle, CREDENTIALS) is True


def test_a_lost_create_answer_is_ambiguous_and_the_job_is_found_by_its_label(
    service: VertexService,
) -> None:
    service.fail_next("create", "lose-answer")

    with pytest.raises(SubmitAmbiguousError) as raised:
        jobs.submit(launch(), operator(service), CREDENTIALS)

    assert "the job may exist, it is looked up by its label" in str(raised.value)
    assert len(service.jobs) == 1  # created, though the answer never came
    found = jobs.find_job(launch(), operator(service), CREDENTIALS)
    assert isinstance(found, JobHandle)
    assert found.job_id == next(iter(service.jobs))
    # Another attempt's launch has no job: provably absent, so it may be submitted.
    assert isinstance(jobs.find_job(launch(attempt=2), operator(service), CREDENTIALS), JobNotFound)


def test_a_throttled_create_is_retried_and_creates_one_job(service: VertexService) -> None:
    service.fail_next("create", "429")
    service.fail_next("create", "429")

    handle = jobs.submit(launch(), operator(service), CREDENTIALS)

    assert list(service.jobs) == [handle.job_id]


def test_a_5xx_to_the_create_is_ambiguous_never_retried_blindly(service: VertexService) -> None:
    service.fail_next("create", "503")

    with pytest.raises(SubmitAmbiguousError, match="Vertex AI answered 503"):
        jobs.submit(launch(), operator(service), CREDENTIALS)

    assert [kind for kind, _, _ in service.requests].count("create") == 1


def test_polls_and_log_reads_ride_out_throttling_and_5xx(service: VertexService) -> None:
    handle = jobs.submit(launch(), operator(service), CREDENTIALS)
    service.fail_next("get", "503")
    service.fail_next("get", "429")
    service.fail_next("logs", "503")

    assert jobs.poll(handle, CREDENTIALS, None).state is JobState.PENDING


def test_a_body_vertex_would_refuse_is_refused_in_one_line(service: VertexService) -> None:
    # extra_job_spec is checked by the pre-flight; here it slipped past it, and the API
    # (the service, with the discovery schema) refuses the body: nothing was created.
    bad = launch(extra_job_spec={"base_output_directory": {"output_uri_prefix": "gs://b/o"}})

    with pytest.raises(StepframeError) as raised:
        jobs.submit(bad, operator(service), CREDENTIALS)

    message = str(raised.value)
    assert not isinstance(raised.value, SubmitAmbiguousError)
    assert message.startswith("creating the CustomJob of step 'train': Vertex AI answered 400")
    assert "'base_output_directory' was unexpected" in message
    assert service.jobs == {}


def test_every_body_sent_is_valid_under_the_discovery_schema(service: VertexService) -> None:
    from _discovery_schema import validator

    jobs.submit(launch(replica_count=2, labels={"team": "vision"}), operator(service), CREDENTIALS)
    jobs.submit(
        launch(attempt=2, scheduling_strategy="spot", timeout=60), operator(service), CREDENTIALS
    )

    bodies = service.created_bodies()
    assert len(bodies) == 2
    for body in bodies:
        assert list(validator().iter_errors(body)) == []


def _gets(service: VertexService) -> int:
    return [kind for kind, _, _ in service.requests].count("get")


def test_an_impatient_caller_costs_at_most_twelve_status_calls_a_minute(
    service: VertexService,
) -> None:
    # The kit's harness and `stepframe jobs attach` poll faster than poll_after says;
    # the budget is the operator's, not the caller's.
    handle = jobs.submit(launch(), operator(service), CREDENTIALS)
    clock = FakeClock()
    cursor = None
    calls_at: list[float] = []
    while clock.now < 1_800_000_000.0 + 180:
        before = _gets(service)
        status = jobs.poll(handle, CREDENTIALS, cursor, clock=clock)
        calls_at += [clock.now] * (_gets(service) - before)
        cursor = status.cursor
        assert status.state is JobState.PENDING
        assert status.poll_after is not None and status.poll_after > 0
        clock.now += 0.25
    for start in calls_at:
        in_window = [t for t in calls_at if start <= t < start + 60]
        assert len(in_window) <= 12, f"{len(in_window)} customJobs.get calls in a minute"
    logs = [kind for kind, _, _ in service.requests].count("logs")
    assert logs == len(calls_at)  # one log read per status call, never more


def test_vertex_unanswered_after_retries_keeps_the_job_and_backs_off(
    service: VertexService,
) -> None:
    # Vertex AI answers 503 to every try of one poll (the client's own five retries too):
    # the poll reports the state last seen instead of raising, which would make the core
    # give the job up and cancel it.
    handle = jobs.submit(launch(), operator(service), CREDENTIALS)
    clock = FakeClock()
    first = jobs.poll(handle, CREDENTIALS, None, clock=clock)
    for _ in range(6):
        service.fail_next("get", "503")
    clock.now += first.poll_after or 0.0

    status = jobs.poll(handle, CREDENTIALS, first.cursor, clock=clock)

    assert status.state is JobState.PENDING
    assert status.log_lines[0].startswith("vertex: Vertex AI answers 503 to customJobs.get")
    assert "the job is left running" in status.log_lines[0]
    assert status.poll_after == 6.0
    clock.now += status.poll_after
    assert jobs.poll(handle, CREDENTIALS, status.cursor, clock=clock).log_lines == ()


def test_logs_the_principal_may_not_read_stop_streaming_not_the_job(
    service: VertexService,
) -> None:
    handle = jobs.submit(launch(), operator(service), CREDENTIALS)
    service.denied_paths.add("/v2/entries:list")
    clock = FakeClock()

    status = jobs.poll(handle, CREDENTIALS, None, clock=clock)

    assert status.state is JobState.PENDING
    assert "Cloud Logging refused reading the job's logs (403" in status.log_lines[-1]
    assert "roles/logging.viewer" in status.log_lines[-1]
    clock.now += status.poll_after or 0.0
    again = jobs.poll(handle, CREDENTIALS, status.cursor, clock=clock)
    assert again.log_lines == ()
    assert [kind for kind, _, _ in service.requests].count("logs") == 1


def test_log_entries_indexed_late_are_shown_once_each(service: VertexService) -> None:
    # Cloud Logging can make an entry readable after a later one (two replicas, ingestion
    # delay): a cursor at the newest timestamp would skip it for ever.
    handle = jobs.submit(launch(), operator(service), CREDENTIALS)
    job = service.jobs[handle.job_id]
    clock = FakeClock()
    service.add_log(job, "first", "2026-12-06T10:00:00.100000Z")
    service.add_log(job, "third", "2026-12-06T10:00:03.000000123Z")
    status = jobs.poll(handle, CREDENTIALS, None, clock=clock)
    assert status.log_lines[1:] == ("first", "third")

    service.add_log(job, "second, indexed late", "2026-12-06T10:00:01.500000Z")
    service.add_log(job, "fourth", "2026-12-06T10:00:04.000000Z")
    clock.now += status.poll_after or 0.0
    status = jobs.poll(handle, CREDENTIALS, status.cursor, clock=clock)

    assert status.log_lines == ("second, indexed late", "fourth")
    clock.now += status.poll_after or 0.0
    assert jobs.poll(handle, CREDENTIALS, status.cursor, clock=clock).log_lines == ()


def test_the_vertex_ai_client_is_built_once_not_at_every_call(
    service: VertexService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Building it walks a 3 MB discovery document (about 0.2 s): paid at every submit and
    # poll, it ate the dispatch budget and a core's worth of CPU per followed job.
    import googleapiclient.discovery

    builds: list[str] = []
    for name in ("build", "build_from_document"):
        original = getattr(googleapiclient.discovery, name)

        def counting(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            builds.append(args[0] if isinstance(args[0], str) and len(args[0]) < 40 else "document")
            return _original(*args, **kwargs)

        monkeypatch.setattr(googleapiclient.discovery, name, counting)
    clock = FakeClock()

    handle = jobs.submit(launch(), operator(service), CREDENTIALS)
    cursor = None
    for _ in range(3):
        status = jobs.poll(handle, CREDENTIALS, cursor, clock=clock)
        cursor = status.cursor
        clock.now += status.poll_after or 0.0
    jobs.cancel(handle, CREDENTIALS)
    jobs.find_job(launch(), operator(service), CREDENTIALS)

    # One client for Vertex AI (from the parsed document), one for Cloud Logging (build()
    # reads its document, then builds from it).
    assert builds == ["document", "logging", "document"], builds
