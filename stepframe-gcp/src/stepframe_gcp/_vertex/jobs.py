"""Vertex AI CustomJobs: create, follow (state and Cloud Logging entries), cancel, find.

The client is google-api-python-client's, built offline from the discovery document it
ships (``static_discovery=True``), pointed at the operator's endpoint.  Its ``execute(
num_retries=N)`` retries throttling (429), 5xx answers and dropped connections with
exponential backoff, which is used for every call but the create: a create is retried only
on 429 (Vertex AI created nothing); any other lost answer raises `SubmitAmbiguousError`
and `find_job` looks for the job by its ``stepframe-launch`` label.
"""

from __future__ import annotations

import datetime
import json
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
    from stepframe_gcp._connector.auth import google_credentials
    from stepframe_gcp._vertex.transport import RequestsHttp

    return RequestsHttp(google_credentials(credentials))


def _client(api: str, version: str, endpoint: str, credentials: Credentials | None) -> Any:
    from googleapiclient.discovery import build

    return build(
        api,
        version,
        http=_http(credentials),
        client_options={"api_endpoint": endpoint},
        static_discovery=True,
        cache_discovery=False,
    )


def _jobs(endpoint: str, credentials: Credentials | None) -> Any:
    return _client("aiplatform", "v1", endpoint, credentials).projects().locations().customJobs()


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
    request = _jobs(config.endpoint, credentials).create(parent=parent, body=body)
    delays = backoff_delays()
    while True:
        try:
            job = request.execute(num_retries=0)
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


def poll(handle: JobHandle, credentials: Credentials | None, cursor: str | None) -> JobStatus:
    """The job's state, then the log entries written since ``cursor`` (in that order, so a
    job seen ended has all its lines)."""
    from googleapiclient.errors import HttpError

    if local_mode.is_local(handle):
        return local_mode.poll(handle, cursor)
    data = handle.data
    try:
        job = (
            _jobs(data["endpoint"], credentials)
            .get(name=handle.job_id)
            .execute(num_retries=_RETRIES)
        )
        lines, cursor = _logs(handle, credentials, cursor)
    except HttpError as error:
        raise _refusal(error, None, f"reading CustomJob {handle.job_id}") from None
    vertex_state = str(job.get("state", "JOB_STATE_QUEUED"))
    state = _STATES.get(vertex_state, JobState.RUNNING)
    failure = None
    if state is JobState.FAILED:
        failure = str(job.get("error", {}).get("message") or vertex_state)
    return JobStatus(
        state=state,
        log_lines=tuple(lines),
        cursor=cursor,
        detail=f"{vertex_state.removeprefix('JOB_STATE_')} {data.get('console_url', '')}".strip(),
        failure_reason=failure,
        poll_after=None if state.is_terminal else _poll_after(job),
    )


def _poll_after(job: dict[str, Any]) -> float:
    """Quick polls while a job starts, then slower: at most 12 calls (6 polls of a get and
    a log read) per job-minute once it has run a minute."""
    created = job.get("createTime")
    if not created:
        return 1.0
    try:
        start = datetime.datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    except ValueError:
        return 10.0
    age = (datetime.datetime.now(datetime.timezone.utc) - start).total_seconds()
    return 1.0 if age < 60 else 10.0


def _logs(
    handle: JobHandle, credentials: Credentials | None, cursor: str | None
) -> tuple[list[str], str | None]:
    """Cloud Logging entries of the job (``resource.type="ml_job"``) after ``cursor``.

    The cursor is the last entry's timestamp and the insert ids seen at that timestamp:
    entries are read from that timestamp on (inclusive, as entries may share it) and the
    ones already seen are skipped.
    """
    seen_at, seen = (None, [])
    if cursor:
        position = json.loads(cursor)
        seen_at, seen = position["t"], list(position["ids"])
    project = handle.data["project"]
    job_id = handle.job_id.rsplit("/", 1)[-1]
    query = f'resource.type="ml_job" AND resource.labels.job_id="{job_id}"'
    if seen_at:
        query += f' AND timestamp>="{seen_at}"'
    entries_api = _client("logging", "v2", handle.data["logging_endpoint"], credentials).entries()
    lines: list[str] = []
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
        page = entries_api.list(body=body).execute(num_retries=_RETRIES)
        for entry in page.get("entries", ()):
            at, insert_id = entry.get("timestamp"), entry.get("insertId")
            if at == seen_at and insert_id in seen:
                continue
            if at != seen_at:
                seen_at, seen = at, []
            seen.append(insert_id)
            text = entry.get("textPayload")
            if text is None:
                text = json.dumps(entry.get("jsonPayload", {}))
            lines.append(str(text).rstrip("\n"))
        token = page.get("nextPageToken")
        if not token:
            break
    new_cursor = json.dumps({"t": seen_at, "ids": seen}) if seen_at else cursor
    return lines, new_cursor


# ---- cancel and find --------------------------------------------------------------------


def cancel(handle: JobHandle, credentials: Credentials | None) -> bool:
    """Ask Vertex AI to cancel the job; a job that already ended needs nothing."""
    from googleapiclient.errors import HttpError

    if local_mode.is_local(handle):
        return local_mode.cancel(handle)
    jobs = _jobs(handle.data["endpoint"], credentials)
    try:
        jobs.cancel(name=handle.job_id, body={}).execute(num_retries=_RETRIES)
    except HttpError as error:
        # FAILED_PRECONDITION: the job has already ended.
        if int(error.resp.status) != 400:
            raise _refusal(error, None, f"cancelling CustomJob {handle.job_id}") from None
    return True


def find_job(
    launch: Launch, operator: Component, credentials: Credentials | None
) -> JobHandle | JobNotFound | None:
    """The job ``launch`` created, found by its ``stepframe-launch`` label."""
    from googleapiclient.errors import HttpError

    config = _config(operator)
    settings = settings_of(launch, config)
    if settings.machine_type == LOCAL_MACHINE:
        return local_mode.find(launch, operator, settings, config)
    parent = f"projects/{config.project}/locations/{config.region}"
    label = launch_label(launch)
    try:
        answer = (
            _jobs(config.endpoint, credentials)
            .list(parent=parent, filter=f'labels.{LAUNCH_LABEL}="{label}"')
            .execute(num_retries=_RETRIES)
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
