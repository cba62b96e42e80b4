"""The ``azureml`` operator's job calls through azure-mgmt-machinelearningservices' real
client, on the loopback AzureML job service (no containers: the tests move each job
through its statuses and write its log).

The life cycle (submit, poll, complete, fail with the error, cancel), a lost create answer
resolved by the job's name, throttling and 5xx answers, refusals in one line, and the
status-call budget: what a flaky network and a strict API do to submit, poll, cancel and
find.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _azureml_service import AzureMLService
from stepframe_azure._azureml import jobs, transport
from stepframe_azure._azureml.config import AzureMLOperatorConfig, AzureMLSettings
from stepframe_azure._connector.config import MANAGEMENT_SCOPE

from stepframe import (
    Component,
    ComponentKind,
    ConfigError,
    ConnectorError,
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
from stepframe.testing import CuttingProxy

TOKEN = "eyJ.test-token"
CREDENTIALS = Credentials(
    "azure", ResourceRequest("generic"), {"access_token": TOKEN, "scope": MANAGEMENT_SCOPE}
)
DIGEST = "sha256:" + "cd" * 32
SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"


def jwt_of(claims: dict[str, Any]) -> str:
    """An unsigned JWT with ``claims`` (the operator only reads who a token names)."""
    import base64
    import json

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.signature"


class Clock:
    """UNIX time that moves only when a test says so (the poll budget's clock)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> Iterator[AzureMLService]:
    """The job service without containers, and azure-core's retries without backoff
    waits (Retry-After is 0; 5xx retries wait RETRY_BACKOFF x 2^n)."""
    monkeypatch.setattr(transport, "RETRY_BACKOFF", 0.0)
    started = AzureMLService(run_containers=False).start()
    try:
        yield started
    finally:
        started.stop()


def operator(service: AzureMLService, **config: Any) -> Component:
    values: dict[str, Any] = {
        "subscription_id": SUBSCRIPTION,
        "resource_group": "ml-rg",
        "workspace": "ml-workspace",
        "endpoint": service.url,
        "history_endpoint": service.url,
        **config,
    }
    return Component(
        ComponentKind.STEP_OPERATOR, "azureml", "azureml", AzureMLOperatorConfig(**values)
    )


def launch(attempt: int = 1, image_digest: str = DIGEST, **settings: Any) -> Launch:
    return Launch(
        run_id="r1",
        pipeline="training",
        step="train",
        attempt=attempt,
        job_name=f"training-r1-train-{attempt}",
        manifest_uri="az://account/steps/m.json",
        result_uri="az://account/steps/r.json",
        command=("python", "-m", "stepframe.entrypoint", "az://account/steps/m.json"),
        environment={"STEPFRAME_LAUNCH_MANIFEST": "az://account/steps/m.json"},
        settings=AzureMLSettings(**settings),
        image=ImageRef("steps.azurecr.io/training:abc", image_digest),
    )


def poll_all(handle: JobHandle, clock: Clock, cursor: str | None = None) -> Any:
    """One poll with the budget's clock moved past the due time."""
    clock.now += 60
    return jobs.poll(handle, CREDENTIALS, cursor, clock=clock)


def test_a_job_is_submitted_polled_with_its_log_and_completes(service: AzureMLService) -> None:
    clock = Clock()
    handle = jobs.submit(launch(), operator(service), CREDENTIALS)

    assert handle.job_id == "training-r1-train-1"
    assert handle.data["studio_url"] == (
        "https://ml.azure.com/runs/training-r1-train-1?wsid=/subscriptions/"
        f"{SUBSCRIPTION}/resourceGroups/ml-rg/providers/Microsoft.MachineLearningServices/"
        "workspaces/ml-workspace"
    )
    first = poll_all(handle, clock)
    assert first.state is JobState.PENDING
    assert first.log_lines == (
        f"azureml: job training-r1-train-1: {handle.data['studio_url']}",
        "azureml: job training-r1-train-1 is Queued",
    )
    service.advance(handle.job_id, "Running")
    service.write_log(handle.job_id, "epoch 1\nepoch 2 partial")
    running = poll_all(handle, clock, first.cursor)
    assert running.state is JobState.RUNNING
    assert running.log_lines == ("azureml: job training-r1-train-1 is Running", "epoch 1")
    service.write_log(handle.job_id, " done\nlast line without newline")
    service.advance(handle.job_id, "Finalizing")
    service.advance(handle.job_id, "Completed")
    done = poll_all(handle, clock, running.cursor)
    assert done.state is JobState.SUCCEEDED
    assert done.log_lines == (
        "azureml: job training-r1-train-1 is Completed",
        "epoch 2 partial done",
        "last line without newline",
    )
    assert done.poll_after is None
    # The log was read by byte ranges: no line twice, none lost.
    assert service.calls("log") == 2


def test_a_failed_job_reports_azureml_error(service: AzureMLService) -> None:
    clock = Clock()
    handle = jobs.submit(launch(), operator(service), CREDENTIALS)
    service.advance(handle.job_id, "Running")
    service.write_log(handle.job_id, "Traceback (most recent call last):\nValueError: bad\n")
    service.advance(
        handle.job_id, "Failed", error="Execution failed. User process 'python' exited with 1"
    )

    status = poll_all(handle, clock)

    assert status.state is JobState.FAILED
    assert status.failure_reason == (
        "UserError: Execution failed. User process 'python' exited with 1"
    )
    assert "ValueError: bad" in status.log_lines


def test_cancel_goes_through_cancel_requested_and_is_harmless_once_ended(
    service: AzureMLService,
) -> None:
    clock = Clock()
    handle = jobs.submit(launch(), operator(service), CREDENTIALS)

    assert jobs.cancel(handle, CREDENTIALS) is True
    assert service.job(handle.job_id).statuses[-2:] == ["CancelRequested", "Canceled"]
    assert poll_all(handle, clock).state is JobState.CANCELLED
    # AzureML refuses to cancel an ended job (400): nothing left to stop.
    assert jobs.cancel(handle, CREDENTIALS) is True
    assert service.calls("cancel") == 2


def test_a_lost_create_answer_is_ambiguous_and_the_job_is_found_by_its_name(
    service: AzureMLService,
) -> None:
    service.fail_next("create-job", "lose-answer")

    with pytest.raises(SubmitAmbiguousError) as raised:
        jobs.submit(launch(), operator(service), CREDENTIALS)

    assert "the job may exist, it is looked up by its name" in str(raised.value)
    assert list(service.jobs) == ["training-r1-train-1"]  # created, the answer never came
    assert service.calls("create-job") == 1  # never sent twice
    found = jobs.find_job(launch(), operator(service), CREDENTIALS)
    assert isinstance(found, JobHandle)
    assert found.job_id == "training-r1-train-1"
    # Another attempt's launch has no job: provably absent, so it may be submitted.
    assert isinstance(jobs.find_job(launch(attempt=2), operator(service), CREDENTIALS), JobNotFound)


def test_a_job_of_that_name_with_another_image_is_not_adopted(service: AzureMLService) -> None:
    jobs.submit(launch(), operator(service), CREDENTIALS)

    other = launch(image_digest="sha256:" + "ef" * 32)
    found = jobs.find_job(other, operator(service), CREDENTIALS)

    assert isinstance(found, JobNotFound)
    assert "is not this launch's" in found.reason


def test_find_job_cannot_tell_when_azureml_answers_5xx(service: AzureMLService) -> None:
    for _ in range(transport.RETRY_TOTAL + 1):
        service.fail_next("get-job", "503")

    assert jobs.find_job(launch(), operator(service), CREDENTIALS) is None


def test_a_5xx_to_the_create_is_ambiguous_never_retried_blindly(service: AzureMLService) -> None:
    service.fail_next("create-job", "500")

    with pytest.raises(SubmitAmbiguousError, match="AzureML answered 500"):
        jobs.submit(launch(), operator(service), CREDENTIALS)

    assert service.calls("create-job") == 1


def test_a_throttled_create_waits_retry_after_and_creates_one_job(
    service: AzureMLService,
) -> None:
    service.retry_after = "7"
    service.fail_next("create-job", "429")
    service.fail_next("create-job", "429")
    waits: list[float] = []

    handle = jobs.submit(launch(), operator(service), CREDENTIALS, sleep=waits.append)

    assert waits == [7.0, 7.0]
    assert service.calls("create-job") == 3
    assert list(service.jobs) == [handle.job_id]


def test_polls_cancels_and_log_reads_ride_out_throttling_and_5xx(
    service: AzureMLService,
) -> None:
    clock = Clock()
    handle = jobs.submit(launch(), operator(service), CREDENTIALS)
    service.advance(handle.job_id, "Running")
    service.write_log(handle.job_id, "line\n")
    service.fail_next("get-job", "429")
    service.fail_next("get-job", "503")
    service.fail_next("details", "502")
    service.fail_next("log", "503")
    service.fail_next("cancel", "429")

    status = poll_all(handle, clock)

    assert status.state is JobState.RUNNING
    assert "line" in status.log_lines
    assert jobs.cancel(handle, CREDENTIALS) is True
    assert service.job(handle.job_id).status == "Canceled"


def test_status_calls_stay_within_twelve_per_job_minute(service: AzureMLService) -> None:
    clock = Clock()
    handle = jobs.submit(launch(), operator(service), CREDENTIALS)
    cursor = None
    # A poll every half second for five minutes: the operator decides when to ask, and
    # answers the others with the state last seen.
    for _ in range(600):
        status = jobs.poll(handle, CREDENTIALS, cursor, clock=clock)
        assert status.state is JobState.PENDING
        cursor = status.cursor
        clock.now += 0.5

    assert 5 * 9 <= service.calls("get-job") <= 5 * jobs.MAX_STATUS_CALLS_PER_MINUTE


def test_every_minute_window_holds_at_most_twelve_status_calls(service: AzureMLService) -> None:
    clock = Clock()
    handle = jobs.submit(launch(), operator(service), CREDENTIALS)
    cursor = None
    times: list[float] = []
    before = service.calls("get-job")
    for _ in range(1200):
        status = jobs.poll(handle, CREDENTIALS, cursor, clock=clock)
        if service.calls("get-job") > before + len(times):
            times.append(clock.now)
        cursor = status.cursor
        clock.now += 0.25

    assert times
    for start in times:
        assert (
            sum(1 for at in times if start <= at < start + 60) <= jobs.MAX_STATUS_CALLS_PER_MINUTE
        )


def test_a_body_azureml_would_refuse_is_refused_in_one_line(service: AzureMLService) -> None:
    # extra_job is checked by the pre-flight; here it slipped past it, and the service
    # (AzureML's REST models) refuses the body: nothing was created.
    bad = launch(extra_job={"descripton": "typo"})

    with pytest.raises(StepframeError) as raised:
        jobs.submit(bad, operator(service), CREDENTIALS)

    message = str(raised.value)
    assert not isinstance(raised.value, SubmitAmbiguousError)
    assert message.startswith(
        "creating AzureML job training-r1-train-1 (step 'train'): AzureML answered 400"
    )
    assert (
        "properties.descripton: unknown field of CommandJob (did you mean description?)" in message
    )
    assert service.jobs == {}


def test_a_principal_without_a_role_is_told_which_role(service: AzureMLService) -> None:
    token = jwt_of({"oid": "0a0a0a0a-1111-2222-3333-444444444444", "appid": "app-1"})
    service.denied_tokens.add(token)
    credentials = Credentials(
        "azure", ResourceRequest("generic"), {"access_token": token, "scope": MANAGEMENT_SCOPE}
    )

    with pytest.raises(ConnectorError) as raised:
        jobs.submit(launch(), operator(service), credentials)

    message = str(raised.value)
    assert "AzureML answered 403" in message
    assert "\n" not in message
    # Who lacks the role, and the grant to run.
    assert "service principal app-1 (object id 0a0a0a0a-1111-2222-3333-444444444444)" in message
    assert (
        "`az role assignment create --assignee 0a0a0a0a-1111-2222-3333-444444444444 --role "
        '"AzureML Data Scientist" --scope /subscriptions/'
        f"{SUBSCRIPTION}/resourceGroups/ml-rg/providers/Microsoft.MachineLearningServices/"
        "workspaces/ml-workspace`" in message
    )
    assert token not in message


@pytest.mark.parametrize(
    ("wrong", "expected"),
    [
        ({"subscription_id": "99999999-2222-3333-4444-555555555555"},
         "step operator 'azureml': subscription_id '99999999-2222-3333-4444-555555555555' is no"
         " subscription the connector's principal can see"),
        ({"resource_group": "ml-rg-typo"},
         "step operator 'azureml': resource_group 'ml-rg-typo' does not exist in subscription"),
        ({"workspace": "ml-workspaces"},
         "step operator 'azureml': workspace 'ml-workspaces' does not exist in resource group"
         " ml-rg"),
    ],
    ids=["subscription", "resource-group", "workspace"],
)  # fmt: skip
def test_a_wrong_workspace_coordinate_is_named_with_its_fix(
    service: AzureMLService, wrong: dict[str, str], expected: str
) -> None:
    """Resource Manager's 404 says which part of the workspace's id does not exist: the
    one line names that setting of the operator and how to set it."""
    service.workspaces.add(operator(service).config.workspace_id)

    with pytest.raises(ConfigError) as raised:
        jobs.submit(launch(), operator(service, **wrong), CREDENTIALS)

    message = str(raised.value)
    assert message.startswith("creating the environment of step 'train'"), message
    assert expected in message
    assert "`stepframe step-operator update azureml --" in message
    assert "\n" not in message
    assert service.jobs == {}


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"mode": "cluster", "compute_name": "gpu-clustr"},
         "settings.compute_name 'gpu-clustr': AzureML refused it (Compute gpu-clustr not found"
         " in workspace ml-workspace.); name a compute of workspace ml-workspace (`az ml compute"
         " list --resource-group ml-rg --workspace-name ml-workspace --query [].name`)"),
        ({"instance_type": "Standard_NC6s_v9"},
         "settings.instance_type 'Standard_NC6s_v9': AzureML refused it (The instance type"
         " Standard_NC6s_v9 is not supported for serverless compute in westeurope.); use a VM"
         " size it offers there (`az ml compute list-sizes --resource-group ml-rg"
         " --workspace-name ml-workspace -o table`)"),
    ],
    ids=["compute-name", "instance-type"],
)  # fmt: skip
def test_a_compute_or_vm_size_azureml_refuses_is_named_as_that_setting(
    service: AzureMLService, settings: dict[str, Any], expected: str
) -> None:
    """Which computes and sizes exist is AzureML's to know (the pre-flight checks their
    form only): its refusal is one line naming the setting and where to look."""
    service.computes.add("gpu-cluster")
    service.vm_sizes.add("Standard_NC6s_v3")

    with pytest.raises(ConfigError) as raised:
        jobs.submit(launch(**settings), operator(service), CREDENTIALS)

    assert (
        str(raised.value) == f"creating AzureML job training-r1-train-1 (step 'train'): {expected}"
    )
    assert service.jobs == {}


def test_every_body_sent_is_valid_under_the_rest_models(service: AzureMLService) -> None:
    from stepframe_azure._azureml.schema import body_problems

    jobs.submit(launch(job_tier="Spot", timeout=60), operator(service), CREDENTIALS)
    jobs.submit(
        launch(
            attempt=2, mode="cluster", compute_name="gpus", instance_count=2, distribution="pytorch"
        ),
        operator(service),
        CREDENTIALS,
    )

    bodies = service.created_bodies()
    assert len(bodies) == 2
    for body in bodies:
        assert body_problems(body, "JobBase") == []
    assert bodies[0]["properties"]["queueSettings"] == {"jobTier": "Spot"}
    assert bodies[1]["properties"]["computeId"].endswith("/workspaces/ml-workspace/computes/gpus")


# The requests whose answers the tests cut (the proxy sees each request line).
JOB_CREATE = r"^PUT [^ ]*/jobs/"
ENVIRONMENT_PUT = r"^PUT [^ ]*/environments/"


@pytest.mark.parametrize("cut_after", [0, 400], ids=["no-answer", "cut-in-the-body"])
def test_an_answer_cut_mid_way_through_a_proxy_is_resolved_by_the_job_name(
    service: AzureMLService, cut_after: int
) -> None:
    proxy = CuttingProxy(service.server.server_port)
    through_proxy = operator(service, endpoint=proxy.url)
    proxy.arm_answer_to(JOB_CREATE, cut_after)

    with pytest.raises(SubmitAmbiguousError, match="the answer to the create was lost"):
        jobs.submit(launch(attempt=2), through_proxy, CREDENTIALS)

    assert proxy.cuts == 1
    assert "training-r1-train-2" in service.jobs  # AzureML created it
    assert service.calls("create-job") == 1  # never sent twice
    found = jobs.find_job(launch(attempt=2), through_proxy, CREDENTIALS)
    assert isinstance(found, JobHandle) and found.job_id == "training-r1-train-2"
    proxy.close()


@pytest.mark.parametrize("cut_after", [0, 400], ids=["no-answer", "cut-in-the-body"])
def test_a_cut_answer_to_the_environment_put_is_retried_and_the_job_created(
    service: AzureMLService, cut_after: int
) -> None:
    """An environment version is PUT by name and content: sending it again is harmless, so
    a lost answer is no refusal."""
    proxy = CuttingProxy(service.server.server_port)
    proxy.arm_answer_to(ENVIRONMENT_PUT, cut_after)

    handle = jobs.submit(launch(), operator(service, endpoint=proxy.url), CREDENTIALS)

    assert proxy.cuts == 1
    assert service.calls("create-environment") == 2
    assert service.calls("create-job") == 1
    assert handle.job_id in service.jobs
    proxy.close()


@pytest.mark.parametrize("cut_after", [0, 400], ids=["no-answer", "cut-in-the-body"])
def test_environment_puts_unanswered_even_after_retries_are_no_refusal(
    service: AzureMLService, cut_after: int
) -> None:
    """Every try's answer lost: the submit fails saying so (no job was created, so it is
    no ambiguous create either), never as a refusal by AzureML or a library's exception."""
    proxy = CuttingProxy(service.server.server_port)
    proxy.arm_answer_to(ENVIRONMENT_PUT, cut_after, times=transport.RETRY_TOTAL + 1)

    with pytest.raises(StepframeError) as raised:
        jobs.submit(launch(), operator(service, endpoint=proxy.url), CREDENTIALS)

    assert not isinstance(raised.value, SubmitAmbiguousError)
    message = str(raised.value)
    assert "creating the environment of step 'train'" in message
    assert f"no whole answer from AzureML in {transport.RETRY_TOTAL + 1} tries" in message
    assert "answered" not in message
    assert service.calls("create-environment") == transport.RETRY_TOTAL + 1
    assert service.calls("create-job") == 0
    proxy.close()


def test_a_poll_unanswered_even_after_retries_keeps_the_last_state_and_waits(
    service: AzureMLService,
) -> None:
    clock = Clock()
    handle = jobs.submit(launch(), operator(service), CREDENTIALS)
    service.advance(handle.job_id, "Running")
    running = poll_all(handle, clock)
    for _ in range(transport.RETRY_TOTAL + 1):
        service.fail_next("get-job", "503")

    status = poll_all(handle, clock, running.cursor)

    assert status.state is JobState.RUNNING
    assert status.poll_after == jobs.UNANSWERED_DELAY
    assert "no answer from AzureML even after retries" in status.log_lines[0]
    service.advance(handle.job_id, "Completed")
    assert poll_all(handle, clock, status.cursor).state is JobState.SUCCEEDED


def test_a_job_that_does_not_exist_is_an_error_of_its_poll(service: AzureMLService) -> None:
    handle = jobs.submit(launch(), operator(service), CREDENTIALS)
    gone = JobHandle(handle.flavor, handle.operator, "no-such-job", handle.data)

    with pytest.raises(ConfigError, match="reading AzureML job no-such-job: AzureML answered 404"):
        poll_all(gone, Clock())


def test_without_a_history_endpoint_the_workspace_discovery_names_it(
    service: AzureMLService,
) -> None:
    clock = Clock()
    config = operator(service, history_endpoint=None)

    handle = jobs.submit(launch(), config, CREDENTIALS)

    assert handle.data["history_endpoint"] == service.url
    assert service.calls("get-workspace") == 1 and service.calls("discovery") == 1
    service.advance(handle.job_id, "Running")
    service.write_log(handle.job_id, "found through discovery\n")
    assert "found through discovery" in poll_all(handle, clock).log_lines
