"""Vertex AI CustomJobs: create, follow (state and Cloud Logging entries), cancel, find.

The client is google-api-python-client's, built offline from the discovery document it
ships, pointed at the operator's endpoint, once per process (`transport.api_client`).  Its
``execute(
num_retries=N)`` retries throttling (429), 5xx answers and dropped connections with
exponential backoff, which is used for every call but the create: a create is retried only
on 429 (Vertex AI created nothing); any other lost answer raises `SubmitAmbiguousError`
and `find_job` looks for the job by its ``stepframe_launch`` label.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from stepframe import (
    Component,
    ConnectorError,
    Credentials,
    JobHandle,
    JobNotFound,
    JobState,
    JobStatus,
    Launch,
    StepframeError,
    SubmitAmbiguousError,
)
from stepframe_gcp._vertex import local_mode
from stepframe_gcp._vertex.config import FLAVOR, VertexOperatorConfig
from stepframe_gcp._vertex.follow import Cursor
from stepframe_gcp._vertex.local_mode import LOCAL_MACHINE
from stepframe_gcp._vertex.request import LAUNCH_LABEL, custom_job_body, launch_label, settings_of

__all__ = ["cancel", "console_url", "find_job", "poll", "submit"]

# Calls other than create: googleapiclient's own retries (429, 5xx, dropped connections).
_RETRIES = 5
_STATES = {
    "JOB_STATE_QUEUED": JobState.PENDING,
    "JOB_STATE_PENDING": JobState.PENDING,
    "JOB_STATE_RUNNING": JobState.RUNNING,
    "JOB_STATE_CANCELLING": JobState.RUNNING,
    "JOB_STATE_UPDATING": JobState.RUNNING,
    "JOB_STATE_PAUSED": JobState.RUNNING,
    "JOB_STATE_SUCCEEDED": JobState.SUCCEEDED,
    "JOB_STATE_FAILED": JobState.FAILED,
    "JOB_STATE_EXPIRED": JobState.FAILED,
    "JOB_STATE_PARTIALLY_SUCCEEDED": JobState.FAILED,
    "JOB_STATE_CANCELLED": JobState.CANCELLED,
}
_LOG_PAGE = 1000


# ---- clients ----------------------------------------------------------------------------


def _http(credentials: Credentials | None) -> Any:
    from stepframe_gcp._vertex.transport import authorized_http

    return authorized_http(credentials)


def _client(api: str, version: str, endpoint: str) -> Any:
    from stepframe_gcp._vertex.transport import api_client

    return api_client(api, version, endpoint)


def _jobs(endpoint: str) -> Any:
    return _client("aiplatform", "v1", endpoint).projects().locations().customJobs()


def _config(operator: Component) -> VertexOperatorConfig:
    config = operator.config
    if not isinstance(config, VertexOperatorConfig):
        raise StepframeError(
            f"step operator {operator.name!r}: its config is not a vertex operator's; "
            "register it with --flavor vertex"
        )
    return config


def console_url(project: str, region: str, job_id: str) -> str:
    return (
        f"https://console.cloud.google.com/vertex-ai/locations/{region}/training/{job_id}"
        f"/cpu?project={project}"
    )


# ---- submit -----------------------------------------------------------------------------


def submit(launch: Launch, operator: Component, credentials: Credentials | None) -> JobHandle:
    """Create the CustomJob of ``launch`` and return its handle at once."""
    from googleapiclient.errors import HttpError

    from stepframe_gcp._retry import backoff_delays

    config = _config(operator)
    settings = settings_of(launch, config)
    if settings.machine_type == LOCAL_MACHINE:
        return local_mode.submit(launch, operator, settings, config)
    body = custom_job_body(launch, settings, config)
    parent = f"projects/{config.project}/locations/{config.region}"
    request = _jobs(config.endpoint).create(parent=parent, body=body)
    http = _http(credentials)
    delays = backoff_delays()
    while True:
        try:
            job = request.execute(http=http, num_retries=0)
            break
        except HttpError as error:
            status = int(error.resp.status)
            if status == 429:  # throttled: nothing was created, so asking again is safe
                delay = next(delays, None)
                if delay is not None:
                    _sleep(delay)
                    continue
            if status >= 500 or status == 429:
                raise SubmitAmbiguousError(
                    f"step {launch.step!r}: Vertex AI answered {status} to the create "
                    f"({_reason(error)}); the job may exist, it is looked up by its label"
                ) from None
            raise _refusal(
                error, config, f"creating the CustomJob of step {launch.step!r}"
            ) from None
        except (TimeoutError, OSError) as error:
            raise SubmitAmbiguousError(
                f"step {launch.step!r}: the answer to the create was lost ({error}); the job "
                "may exist, it is looked up by its label"
            ) from None
    return _handle(operator, config, job)


def _handle(operator: Component, config: VertexOperatorConfig, job: dict[str, Any]) -> JobHandle:
    name = str(job["name"])
    return JobHandle(
        flavor=FLAVOR,
        operator=operator.name,
        job_id=name,
        data={
            "project": config.project,
            "region": config.region,
            "endpoint": config.endpoint,
            "logging_endpoint": config.logs_endpoint,
            "console_url": console_url(config.project, config.region, name.rsplit("/", 1)[-1]),
        },
    )


# ---- poll -------------------------------------------------------------------------------


def poll(
    handle: JobHandle,
    credentials: Credentials | None,
    cursor: str | None,
    *,
    clock: Callable[[], float] = time.time,
) -> JobStatus:
    """The job's state, then the log entries written since ``cursor`` (in that order, so a
    job seen ended has all its lines).

    At most `MAX_GETS_PER_MINUTE` ``customJobs.get`` calls (and as many log reads) happen
    in any minute, however often this is called: an early poll answers the state last
    seen, with ``poll_after`` saying when a new answer is due (see `follow`).

    :param clock: UNIX time (tests and the benchmark replay the schedule with a fake one).
    """
    from googleapiclient.errors import HttpError

    if local_mode.is_local(handle):
        return local_mode.poll(handle, cursor)
    state = Cursor.parse(cursor)
    now = clock()
    if not state.call_allowed(now):
        return JobStatus(
            JobState(state.state),
            cursor=state.dump(),
            detail=state.detail,
            poll_after=max(state.due() - now, 0.05),
        )
    data = handle.data
    try:
        job = (
            _jobs(data["endpoint"])
            .get(name=handle.job_id)
            .execute(http=_http(credentials), num_retries=_RETRIES)
        )
    except HttpError as error:
        if not _transient(error):
            raise _refusal(error, None, f"reading CustomJob {handle.job_id}") from None
        return _unanswered(state, now, handle, f"answers {int(error.resp.status)} to")
    except (TimeoutError, OSError):
        return _unanswered(state, now, handle, "cannot be reached for")
    state.answered(now)
    vertex_state = str(job.get("state", "JOB_STATE_QUEUED"))
    job_state = _STATES.get(vertex_state, JobState.RUNNING)
    lines: list[str] = []
    if not state.announced:
        state.announced = True
        lines.append(f"vertex: CustomJob {handle.job_id}: {data.get('console_url', '')}")
    lines += _logs(handle, credentials, state)
    failure = None
    if job_state is JobState.FAILED:
        failure = str(job.get("error", {}).get("message") or vertex_state)
    if vertex_state != state.vertex_state and job_state.is_terminal:
        because = f": {failure}" if failure else ""
        lines.append(f"vertex: CustomJob {handle.job_id} is {_word(vertex_state)}{because}")
    state.vertex_state = vertex_state
    state.state = job_state.value
    state.detail = f"{_word(vertex_state)} {data.get('console_url', '')}".strip()
    return JobStatus(
        state=job_state,
        log_lines=tuple(lines),
        cursor=state.dump(),
        detail=state.detail,
        failure_reason=failure,
        poll_after=None if job_state.is_terminal else state.delay,
    )


def _word(vertex_state: str) -> str:
    return vertex_state.removeprefix("JOB_STATE_")


def _transient(error: Any) -> bool:
    """Throttling or a server error: worth asking again later, never a reason to stop."""
    status = int(error.resp.status)
    return status == 429 or status >= 500


def _unanswered(state: Cursor, now: float, handle: JobHandle, problem: str) -> JobStatus:
    """The state last seen, while customJobs.get gets no answer even after the client's
    retries; the next poll comes later, and later again while that lasts."""
    state.unanswered_call(now)
    line = (
        f"vertex: Vertex AI {problem} customJobs.get ({handle.job_id}) even after retries; "
        f"the job is left running, its last known state stands, retrying in {state.delay:.0f} s"
    )
    return JobStatus(
        JobState(state.state),
        log_lines=(line,),
        cursor=state.dump(),
        detail=state.detail,
        poll_after=state.delay,
    )


def _logs(handle: JobHandle, credentials: Credentials | None, state: Cursor) -> list[str]:
    """Cloud Logging entries of the job (``resource.type="ml_job"``) not shown yet.

    A read that fails for a while costs nothing but a later read; one the principal may
    not make stops the streaming (one line says why) and never the job.
    """
    from googleapiclient.errors import HttpError

    if state.logs_off is not None:
        return []
    try:
        entries = _read_entries(handle, credentials, state.log_since())
    except HttpError as error:
        if _transient(error):
            return []
        status = int(error.resp.status)
        if status in (401, 403):
            state.logs_off = f"refused ({status})"
            return [
                f"vertex: Cloud Logging refused reading the job's logs ({status}: "
                f"{_reason(error)}); the job is followed without them: grant the connector's "
                "principal roles/logging.viewer (logging.logEntries.list) in the project"
            ]
        raise _refusal(error, None, f"reading the logs of CustomJob {handle.job_id}") from None
    except (TimeoutError, OSError):
        return []
    lines = []
    for entry in entries:
        if not state.take_entry(entry):
            continue
        text = entry.get("textPayload")
        if text is None:
            payload = entry.get("jsonPayload", {})
            text = payload.get("message") if isinstance(payload, dict) else None
            if text is None:
                text = json.dumps(payload)
        lines.append(str(text).rstrip("\n"))
    state.forget_old_entries()
    return lines


def _read_entries(
    handle: JobHandle, credentials: Credentials | None, since: str | None
) -> list[dict[str, Any]]:
    project = handle.data["project"]
    job_id = handle.job_id.rsplit("/", 1)[-1]
    query = f'resource.type="ml_job" AND resource.labels.job_id="{job_id}"'
    if since:
        query += f' AND timestamp>="{since}"'
    entries_api = _client("logging", "v2", handle.data["logging_endpoint"]).entries()
    http = _http(credentials)
    entries: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        body: dict[str, Any] = {
            "resourceNames": [f"projects/{project}"],
            "filter": query,
            "orderBy": "timestamp asc",
            "pageSize": _LOG_PAGE,
        }
        if token:
            body["pageToken"] = token
        page = entries_api.list(body=body).execute(http=http, num_retries=_RETRIES)
        entries += page.get("entries", ())
        token = page.get("nextPageToken")
        if not token:
            return entries


# ---- cancel and find --------------------------------------------------------------------


def cancel(handle: JobHandle, credentials: Credentials | None) -> bool:
    """Ask Vertex AI to cancel the job; a job that already ended needs nothing."""
    from googleapiclient.errors import HttpError

    if local_mode.is_local(handle):
        return local_mode.cancel(handle)
    jobs = _jobs(handle.data["endpoint"])
    try:
        jobs.cancel(name=handle.job_id, body={}).execute(
            http=_http(credentials), num_retries=_RETRIES
        )
    except HttpError as error:
        # FAILED_PRECONDITION: the job has already ended.
        if int(error.resp.status) != 400:
            raise _refusal(error, None, f"cancelling CustomJob {handle.job_id}") from None
    return True


def find_job(
    launch: Launch, operator: Component, credentials: Credentials | None
) -> JobHandle | JobNotFound | None:
    """The job ``launch`` created, found by its ``stepframe_launch`` label."""
    from googleapiclient.errors import HttpError

    config = _config(operator)
    settings = settings_of(launch, config)
    if settings.machine_type == LOCAL_MACHINE:
        return local_mode.find(launch, operator, settings, config)
    parent = f"projects/{config.project}/locations/{config.region}"
    label = launch_label(launch)
    try:
        answer = (
            _jobs(config.endpoint)
            .list(parent=parent, filter=f'labels.{LAUNCH_LABEL}="{label}"')
            .execute(http=_http(credentials), num_retries=_RETRIES)
        )
    except (HttpError, OSError):
        return None  # cannot tell
    for job in answer.get("customJobs", ()):
        if job.get("labels", {}).get(LAUNCH_LABEL) == label:
            return _handle(operator, config, job)
    return JobNotFound(f"no CustomJob labelled {LAUNCH_LABEL}={label} in {parent}")


# ---- errors -----------------------------------------------------------------------------


def _reason(error: Any) -> str:
    try:
        return str(json.loads(error.content)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return str(error.resp.reason or error.resp.status)


def _refusal(error: Any, config: VertexOperatorConfig | None, doing: str) -> StepframeError:
    status = int(error.resp.status)
    reason = _reason(error)
    if status in (401, 403):
        return ConnectorError(
            f"{doing}: Vertex AI answered {status} ({reason}). The connector's principal "
            "needs aiplatform.customJobs.create, get, list and cancel (role "
            "roles/aiplatform.user), and iam.serviceAccounts.actAs on the job's service account"
        )
    if status == 404 and config is not None:
        return StepframeError(
            f"{doing}: Vertex AI answered 404 ({reason}); check the operator's project "
            f"{config.project!r} and region {config.region!r}, and that the Vertex AI API is "
            "enabled there (`gcloud services enable aiplatform.googleapis.com`)"
        )
    return StepframeError(f"{doing}: Vertex AI answered {status} ({reason})")


def _sleep(seconds: float) -> None:
    import time

    time.sleep(seconds)
