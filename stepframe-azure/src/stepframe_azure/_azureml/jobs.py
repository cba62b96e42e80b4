"""AzureML command jobs: create, follow (state, log, error), cancel, find.

A job is created by name (PUT .../jobs/NAME), the name chosen here from the launch
(request.job_name): a create is retried only after a 429 (AzureML did nothing); any other
lost answer (a 5xx, a connection cut after sending, a read timeout) raises
`SubmitAmbiguousError` and `find_job` reads that name back.  Polls ask for the job's
state at most `MAX_STATUS_CALLS_PER_MINUTE` times a minute (an early poll answers the
state last seen), and read the job's log from run history by byte offset.

``instance_type = "local"`` hands the job to local mode (local_mode.py, the same command
job's container on the local Docker engine); its handles say ``mode = "local"``.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from typing import Any

import attrs

from stepframe import (
    Component,
    ConfigError,
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
from stepframe_azure._azureml.config import (
    API_VERSION,
    FLAVOR,
    LOCAL_INSTANCE_TYPE,
    AzureMLOperatorConfig,
)
from stepframe_azure._azureml.request import (
    ATTEMPT_TAG,
    ENVIRONMENT_NAME,
    RUN_TAG,
    STEP_TAG,
    build_environment_body,
    build_job_body,
    environment_version,
    image_by_digest,
    job_name,
    settings_of,
)

__all__ = [
    "MAX_STATUS_CALLS_PER_MINUTE",
    "cancel",
    "find_job",
    "poll",
    "studio_url",
    "submit",
]

#: Job-status calls (GET job) allowed in any minute of a job's life.
MAX_STATUS_CALLS_PER_MINUTE = 12
BUDGET_WINDOW = 60.0
# Poll a new job soon, then back off to the cap: 60 / 6 = 10 calls a minute at the cap.
FIRST_DELAY, GROWTH, MAX_DELAY = 2.0, 1.5, 6.0
# The wait after a status call AzureML did not answer (after azure-core's own retries).
UNANSWERED_DELAY = 30.0
# Creates tried when AzureML throttles them (429: nothing was created).
CREATE_ATTEMPTS = 5
_LOG_FILE_PREFIX = "user_logs/std_log"

# AzureML's job statuses (the REST specification's JobStatus enum).
_STATES = {
    "NotStarted": JobState.PENDING,
    "Queued": JobState.PENDING,
    "Provisioning": JobState.PENDING,
    "Preparing": JobState.PENDING,
    "Starting": JobState.PENDING,
    "Running": JobState.RUNNING,
    "Finalizing": JobState.RUNNING,
    "CancelRequested": JobState.RUNNING,  # stopping: not over until Canceled
    "NotResponding": JobState.RUNNING,  # AzureML lost touch with it for now
    "Paused": JobState.RUNNING,
    "Completed": JobState.SUCCEEDED,
    "Failed": JobState.FAILED,
    "Canceled": JobState.CANCELLED,
}


# ---- helpers ----------------------------------------------------------------------------


def _local_mode() -> Any:
    """local_mode.py (the azureml local mode's own module): ``submit(launch, operator,
    settings)``, ``poll(handle, cursor)``, ``cancel(handle)``, ``find(launch, operator,
    settings)``."""
    import importlib

    return importlib.import_module("stepframe_azure._azureml.local_mode")


def _config(operator: Component) -> AzureMLOperatorConfig:
    config = operator.config
    if not isinstance(config, AzureMLOperatorConfig):
        raise ConfigError(
            f"step operator {operator.name!r}: its config is not an azureml operator's; "
            "register it with --flavor azureml"
        )
    if not (config.subscription_id and config.resource_group and config.workspace):
        raise ConfigError(
            f"step operator {operator.name!r}: subscription_id, resource_group and workspace "
            f"are all needed; set them with `stepframe step-operator update {operator.name}`"
        )
    return config


def studio_url(workspace_id: str, name: str) -> str:
    """The job's page in Azure Machine Learning studio."""
    return f"https://ml.azure.com/runs/{name}?wsid={workspace_id}"


def _arm(
    credentials: Credentials | None,
    config: AzureMLOperatorConfig,
    api_version: str = API_VERSION,
) -> Any:
    """The management client; a job created earlier is read and cancelled with the API
    version it was created with (its handle's)."""
    from stepframe_azure._azureml.transport import arm_client

    return arm_client(credentials, str(config.subscription_id), config.arm_endpoint, api_version)


def _raw(pipeline_response: Any, deserialized: Any, headers: Any) -> Any:
    """The generated operations' ``cls`` hook: the answer's JSON as it came."""
    text = pipeline_response.http_response.text()
    return json.loads(text) if text else {}


def _json_body(body: dict[str, Any]) -> io.BytesIO:
    # Sent as bytes: the generated models know no queueSettings (schema.py) and would
    # drop it on the way out.
    return io.BytesIO(json.dumps(body).encode())


def _message(error: Any) -> str:
    return _answer_error(error)[1] or str(getattr(error, "reason", None) or error)


def _answer_error(error: Any) -> tuple[str, str]:
    """The error code and message of AzureML's (or Resource Manager's) answer."""
    try:
        answer = json.loads(error.response.text())["error"]
        return str(answer.get("code") or ""), str(answer.get("message") or "")
    except Exception:
        return "", ""


def _status(error: Any) -> int:
    return int(getattr(error, "status_code", 0) or 0)


def _refusal(
    error: Any,
    config: AzureMLOperatorConfig,
    doing: str,
    operator: str = FLAVOR,
    credentials: Credentials | None = None,
) -> StepframeError:
    status = _status(error)
    reason = _message(error)
    if status in (401, 403):
        return ConnectorError(
            f"{doing}: AzureML answered {status} ({reason}); {_grant(config, credentials)}"
        )
    if status == 404:
        return ConfigError(f"{doing}: {_not_found(error, config, operator)}")
    return StepframeError(f"{doing}: AzureML answered {status} ({reason})")


def _grant(config: AzureMLOperatorConfig, credentials: Credentials | None) -> str:
    """Who lacks a role (from the token's claims) and the command that grants it."""
    from stepframe_azure._connector.auth import principal_of, token_claims

    token = str(credentials.values.get("access_token", "")) if credentials else ""
    if not token:
        who, assignee = "the principal of Azure's default credential", "PRINCIPAL_ID"
    else:
        who = principal_of(token)
        assignee = str(token_claims(token).get("oid") or "PRINCIPAL_ID")
    return (
        f"{who} needs the role AzureML Data Scientist (or Contributor) on workspace "
        f"{config.workspace!r}: `az role assignment create --assignee {assignee} --role "
        f'"AzureML Data Scientist" --scope {config.workspace_id}`'
    )


def _compute_refusal(error: Any, config: AzureMLOperatorConfig, body: dict[str, Any]) -> str:
    """A refused job whose answer names its compute or its VM size (AzureML's messages
    quote the value they refuse), as that setting and where to find the right one; ""
    when the answer names neither."""
    reason = _message(error)
    properties = body.get("properties", {})
    compute = str(properties.get("computeId") or "").rsplit("/", 1)[-1]
    size = str((properties.get("resources") or {}).get("instanceType") or "")
    if compute and compute.lower() in reason.lower():
        return (
            f"settings.compute_name {compute!r}: AzureML refused it ({reason}); name a compute "
            f"of workspace {config.workspace} (`az ml compute list --resource-group "
            f"{config.resource_group} --workspace-name {config.workspace} --query [].name`)"
        )
    if size and size.lower() in reason.lower():
        return (
            f"settings.instance_type {size!r}: AzureML refused it ({reason}); use a VM size it "
            f"offers there (`az ml compute list-sizes --resource-group {config.resource_group} "
            f"--workspace-name {config.workspace} -o table`)"
        )
    return ""


def _not_found(error: Any, config: AzureMLOperatorConfig, operator: str) -> str:
    """A 404 named as the operator setting that is wrong, by Resource Manager's code: the
    subscription, the resource group or the workspace does not exist (or is not visible
    to the connector's principal)."""
    code, reason = _answer_error(error)
    update = f"`stepframe step-operator update {operator}"
    if code == "SubscriptionNotFound":
        return (
            f"step operator {operator!r}: subscription_id {config.subscription_id!r} is no "
            f"subscription the connector's principal can see ({reason}); set the right one "
            f"with {update} --subscription-id GUID` (`az account list --query [].id`)"
        )
    if code == "ResourceGroupNotFound":
        return (
            f"step operator {operator!r}: resource_group {config.resource_group!r} does not "
            f"exist in subscription {config.subscription_id} ({reason}); set the right one "
            f"with {update} --resource-group NAME` (`az group list --query [].name`)"
        )
    if code == "ResourceNotFound" and "/workspaces/" in reason:
        return (
            f"step operator {operator!r}: workspace {config.workspace!r} does not exist in "
            f"resource group {config.resource_group} ({reason}); set the right one with "
            f"{update} --workspace NAME` (`az ml workspace list --resource-group "
            f"{config.resource_group} --query [].name`)"
        )
    return (
        f"AzureML answered 404 ({reason}); check step operator {operator!r}'s "
        f"subscription_id {config.subscription_id!r}, resource_group "
        f"{config.resource_group!r} and workspace {config.workspace!r} (`az ml workspace "
        "show`)"
    )


# ---- submit -----------------------------------------------------------------------------


def submit(
    launch: Launch,
    operator: Component,
    credentials: Credentials | None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> JobHandle:
    """Create the command job of ``launch`` (and the environment version holding its
    image) and return its handle at once.

    :raises SubmitAmbiguousError: the create may have reached AzureML, its answer lost.
    :raises StepframeError: AzureML refused it, or could not be reached: nothing created.
    """
    settings = settings_of(launch)
    if settings.instance_type == LOCAL_INSTANCE_TYPE:
        local_mode = _local_mode()
        handle: JobHandle = local_mode.submit(launch, operator, settings)
        return handle
    from azure.core.exceptions import (
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    from stepframe_azure._azureml.transport import RETRY_TOTAL

    config = _config(operator)
    name = job_name(launch.job_name)
    image = image_by_digest(launch.image)
    client = _arm(credentials, config)
    doing = f"creating the environment of step {launch.step!r} ({image})"
    # An environment version is PUT by name with the same content whoever sends it, so
    # azure-core's retry policy sends it again after a lost or cut answer; once its tries
    # are spent, no job was created (that PUT comes next): a plain failure, no refusal.
    try:
        client.environment_versions.create_or_update(
            config.resource_group,
            config.workspace,
            ENVIRONMENT_NAME,
            environment_version(image),
            _json_body(build_environment_body(image)),
            content_type="application/json",
            cls=_raw,
        )
    except ServiceRequestError as error:  # no connection was made
        raise StepframeError(
            f"{doing}: AzureML at {config.arm_endpoint} cannot be reached ({error})"
        ) from None
    except (HttpResponseError, ServiceResponseError) as error:
        if isinstance(error, HttpResponseError) and _status(error):
            raise _refusal(error, config, doing, operator.name, credentials) from None
        raise StepframeError(
            f"{doing}: no whole answer from AzureML in {RETRY_TOTAL + 1} tries ({error}); "
            "no job was created, run the step again"
        ) from None
    body = build_job_body(launch, config, settings, name)
    _create(client, config, name, body, launch, sleep, operator.name, credentials)
    return _handle(operator, config, name, _history_endpoint(config) or _discover(client, config))


def _create(
    client: Any,
    config: AzureMLOperatorConfig,
    name: str,
    body: dict[str, Any],
    launch: Launch,
    sleep: Callable[[float], None],
    operator: str,
    credentials: Credentials | None,
) -> None:
    from azure.core.exceptions import (
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    doing = f"creating AzureML job {name} (step {launch.step!r})"
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        try:
            client.jobs.create_or_update(
                config.resource_group,
                config.workspace,
                name,
                _json_body(body),
                content_type="application/json",
                cls=_raw,
                retry_total=0,
            )
            return
        except HttpResponseError as error:
            status = _status(error)
            if status == 429 and attempt < CREATE_ATTEMPTS:  # throttled: nothing created
                sleep(_retry_after(error, attempt))
                continue
            if status == 400:  # refused: nothing was created
                named = _compute_refusal(error, config, body)
                if named:
                    raise ConfigError(f"{doing}: {named}") from None
            if 400 <= status < 500:  # refused: nothing was created
                raise _refusal(error, config, doing, operator, credentials) from None
            if status >= 500:
                raise SubmitAmbiguousError(
                    f"{doing}: AzureML answered {status} ({_message(error)}); the job may "
                    "exist, it is looked up by its name"
                ) from None
            # No status at all: the answer broke off (its body cut short, undecodable).
            raise SubmitAmbiguousError(
                f"{doing}: the answer to the create was lost ({error}); the job may exist, "
                "it is looked up by its name"
            ) from None
        except ServiceRequestError as error:  # never sent: no connection was made
            raise StepframeError(
                f"{doing}: AzureML at {config.arm_endpoint} cannot be reached ({error})"
            ) from None
        except ServiceResponseError as error:
            raise SubmitAmbiguousError(
                f"{doing}: the answer to the create was lost ({error}); the job may exist, "
                "it is looked up by its name"
            ) from None


def _retry_after(error: Any, attempt: int) -> float:
    """The answer's Retry-After (seconds), else 1, 2, 4... seconds."""
    try:
        return max(float(error.response.headers.get("Retry-After", "")), 0.0)
    except (TypeError, ValueError, AttributeError):
        return float(2 ** (attempt - 1))


def _handle(
    operator: Component, config: AzureMLOperatorConfig, name: str, history: str | None
) -> JobHandle:
    return JobHandle(
        flavor=FLAVOR,
        operator=operator.name,
        job_id=name,
        data={
            "mode": "remote",
            "subscription_id": config.subscription_id,
            "resource_group": config.resource_group,
            "workspace": config.workspace,
            "endpoint": config.arm_endpoint,
            "api_version": API_VERSION,
            "history_endpoint": history,
            "studio_url": studio_url(config.workspace_id, name),
        },
    )


def _history_endpoint(config: AzureMLOperatorConfig) -> str | None:
    if config.history_endpoint:
        return config.history_endpoint.rstrip("/")
    if config.region:
        return f"https://{config.region}.api.azureml.ms"
    return None


def _discover(client: Any, config: AzureMLOperatorConfig) -> str | None:
    """The workspace's run history endpoint, as AzureML's clients find it: the workspace's
    ``discoveryUrl`` answers its service endpoints (``history`` among them); failing that,
    its region's.  None when neither can be read (the job runs; its log is not shown)."""
    from azure.core.exceptions import AzureError
    from azure.core.rest import HttpRequest

    from stepframe_azure._azureml.transport import plain_client

    try:
        workspace = client.workspaces.get(config.resource_group, config.workspace, cls=_raw)
    except AzureError:
        return None
    location = str(workspace.get("location") or "")
    fallback = f"https://{location}.api.azureml.ms" if location else None
    url = str(workspace.get("properties", {}).get("discoveryUrl") or "")
    if not url:
        return fallback
    try:
        answer = plain_client(url).send_request(HttpRequest("GET", url))
        answer.raise_for_status()
        history = answer.json().get("history")
    except (AzureError, ValueError, AttributeError):
        return fallback
    return str(history).rstrip("/") if history else fallback


def _handle_config(handle: JobHandle) -> AzureMLOperatorConfig:
    data = handle.data
    return AzureMLOperatorConfig(
        subscription_id=data["subscription_id"],
        resource_group=data["resource_group"],
        workspace=data["workspace"],
        endpoint=data["endpoint"],
        history_endpoint=data.get("history_endpoint"),
    )


def _handle_api_version(handle: JobHandle) -> str:
    return str(handle.data.get("api_version") or API_VERSION)


# ---- poll -------------------------------------------------------------------------------


@attrs.define
class Cursor:
    """What one poll leaves for the next (JSON in ``JobStatus.cursor``).

    :param recent: when the status calls of the last minute were made.
    :param next_at: when the next status call is due.
    :param delay: the wait after the last status call.
    :param state: the stepframe state last seen; ``status`` AzureML's.
    :param log_file: the log file being read; ``offset`` the bytes read of it,
        ``partial`` the start of a line not ended yet.
    :param announced: whether the Studio URL was shown.
    """

    recent: list[float] = attrs.field(factory=list)
    next_at: float = 0.0
    delay: float = 0.0
    state: str = JobState.PENDING.value
    status: str = ""
    log_file: str | None = None
    offset: int = 0
    partial: str = ""
    announced: bool = False

    @classmethod
    def parse(cls, text: str | None) -> Cursor:
        if not text:
            return cls()
        try:
            data = json.loads(text)
            return cls(**{f.name: data[f.name] for f in attrs.fields(cls) if f.name in data})
        except (ValueError, TypeError):
            return cls()

    def dump(self) -> str:
        return json.dumps(attrs.asdict(self), separators=(",", ":"))


def poll(
    handle: JobHandle,
    credentials: Credentials | None,
    cursor: str | None,
    *,
    clock: Callable[[], float] = time.time,
) -> JobStatus:
    """The job's state, then its log lines since ``cursor`` (in that order, so a job seen
    ended has all its lines).  At most `MAX_STATUS_CALLS_PER_MINUTE` job-status calls
    happen in any minute, however often this is called."""
    if handle.data.get("mode") == "local":
        local_mode = _local_mode()
        status: JobStatus = local_mode.poll(handle, cursor)
        return status
    from azure.core.exceptions import (
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    state = Cursor.parse(cursor)
    now = clock()
    state.recent = [at for at in state.recent if now - at < BUDGET_WINDOW]
    if state.recent and (now < state.next_at or len(state.recent) >= MAX_STATUS_CALLS_PER_MINUTE):
        due = state.next_at
        if len(state.recent) >= MAX_STATUS_CALLS_PER_MINUTE:
            due = max(due, state.recent[0] + BUDGET_WINDOW)
        return JobStatus(
            JobState(state.state),
            cursor=state.dump(),
            detail=state.status,
            poll_after=max(due - now, 0.05),
        )
    config = _handle_config(handle)
    name = handle.job_id
    try:
        job = _arm(credentials, config, _handle_api_version(handle)).jobs.get(
            config.resource_group, config.workspace, name, cls=_raw
        )
    except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
        code = _status(error)
        if isinstance(error, HttpResponseError) and 400 <= code < 500 and code != 429:
            raise _refusal(
                error, config, f"reading AzureML job {name}", handle.operator, credentials
            ) from None
        # Throttled, 5xx or out of reach even after azure-core's retries: the core stops
        # a job whose poll raises, and a network hiccup must not cost a healthy job.
        state.recent.append(now)
        state.delay = UNANSWERED_DELAY
        state.next_at = now + state.delay
        return JobStatus(
            JobState(state.state),
            log_lines=(
                f"azureml: job {name}: no answer from AzureML even after retries ({error}); "
                f"the job is left running, its last known state stands, retrying in "
                f"{state.delay:.0f} s",
            ),
            cursor=state.dump(),
            detail=state.status,
            poll_after=state.delay,
        )
    state.recent.append(now)
    state.delay = FIRST_DELAY if state.delay <= 0 else min(state.delay * GROWTH, MAX_DELAY)
    state.next_at = now + state.delay
    status_word = str(job.get("properties", {}).get("status") or "NotStarted")
    job_state = _STATES.get(status_word, JobState(state.state))
    lines: list[str] = []
    if not state.announced:
        state.announced = True
        lines.append(f"azureml: job {name}: {handle.data.get('studio_url', '')}")
    if status_word != state.status:
        lines.append(f"azureml: job {name} is {status_word}")
    details = _run_details(handle, credentials, name, lines)
    lines += _log_lines(details, state, drain=job_state.is_terminal)
    failure = None
    if job_state is JobState.FAILED:
        failure = _error_of(details) or f"AzureML job {name} failed (see its log in Studio)"
    state.state = job_state.value
    state.status = status_word
    return JobStatus(
        job_state,
        log_lines=tuple(lines),
        cursor=state.dump(),
        detail=f"{status_word} {handle.data.get('studio_url', '')}".strip(),
        failure_reason=failure,
        poll_after=None if job_state.is_terminal else state.delay,
    )


def _run_details(
    handle: JobHandle, credentials: Credentials | None, name: str, lines: list[str]
) -> dict[str, Any]:
    """Run history's details of the job (its log files as SAS URLs, its error); empty
    when run history is not known or not reachable (the job's state stands)."""
    from azure.core.exceptions import AzureError
    from azure.core.rest import HttpRequest

    from stepframe_azure._azureml.transport import history_client

    endpoint = handle.data.get("history_endpoint")
    if not endpoint:
        return {}
    data = handle.data
    path = (
        f"/history/v1.0/subscriptions/{data['subscription_id']}/resourceGroups/"
        f"{data['resource_group']}/providers/Microsoft.MachineLearningServices/workspaces/"
        f"{data['workspace']}/runs/{name}/details"
    )
    try:
        answer = history_client(credentials, endpoint).send_request(
            HttpRequest("GET", f"{endpoint}{path}")
        )
        if answer.status_code == 404:  # not started yet: no run record
            return {}
        answer.raise_for_status()
        details: dict[str, Any] = answer.json()
        return details
    except (AzureError, ValueError) as error:
        lines.append(f"azureml: the job's run history cannot be read for now ({error})")
        return {}


def _log_lines(details: dict[str, Any], state: Cursor, *, drain: bool) -> list[str]:
    """New complete lines of the job's standard output log since ``state.offset``."""
    from azure.core.exceptions import AzureError
    from azure.core.rest import HttpRequest

    from stepframe_azure._azureml.transport import plain_client

    files = details.get("logFiles") or {}
    chosen = state.log_file if state.log_file in files else None
    if chosen is None:
        candidates = sorted(f for f in files if f.startswith(_LOG_FILE_PREFIX))
        if not candidates:
            return []
        chosen = candidates[0]
        if chosen != state.log_file:
            state.log_file, state.offset, state.partial = chosen, 0, ""
    url = str(files[chosen])
    try:
        answer = plain_client(url).send_request(
            HttpRequest("GET", url, headers={"Range": f"bytes={state.offset}-"})
        )
    except AzureError:
        return []
    if answer.status_code == 416:  # nothing past the offset yet
        text = ""
    elif answer.status_code in (200, 206):
        content = answer.content
        if answer.status_code == 200:  # the whole file: skip what was read
            content = content[state.offset :]
        state.offset += len(content)
        text = content.decode("utf-8", "replace")
    else:
        return []
    pending = state.partial + text
    *lines, state.partial = pending.split("\n")
    if drain and state.partial:
        lines.append(state.partial)
        state.partial = ""
    return [line.rstrip("\r") for line in lines]


def _error_of(details: dict[str, Any]) -> str | None:
    error = (details.get("error") or {}).get("error") or {}
    message = error.get("message")
    if not message:
        return None
    code = error.get("code")
    return f"{code}: {message}" if code else str(message)


# ---- cancel and find --------------------------------------------------------------------


def cancel(handle: JobHandle, credentials: Credentials | None) -> bool:
    """Ask AzureML to cancel the job (POST .../jobs/NAME/cancel); a job that has ended
    needs nothing."""
    if handle.data.get("mode") == "local":
        local_mode = _local_mode()
        return bool(local_mode.cancel(handle))
    from azure.core.exceptions import HttpResponseError

    config = _handle_config(handle)
    client = _arm(credentials, config, _handle_api_version(handle))
    doing = f"cancelling AzureML job {handle.job_id}"
    try:
        client.jobs.begin_cancel(
            config.resource_group, config.workspace, handle.job_id, polling=False
        ).result()
    except HttpResponseError as error:
        refusal = _refusal(error, config, doing, handle.operator, credentials)
        if _status(error) not in (400, 409):
            raise refusal from None
        # Refused as already ended: true when it has.
        job = client.jobs.get(config.resource_group, config.workspace, handle.job_id, cls=_raw)
        status = str(job.get("properties", {}).get("status", ""))
        if status not in ("Completed", "Failed", "Canceled", "CancelRequested"):
            raise refusal from None
    return True


def find_job(
    launch: Launch, operator: Component, credentials: Credentials | None
) -> JobHandle | JobNotFound | None:
    """The job of ``launch`` whose create answer was lost, read back by its name: adopted
    when its tags and environment are this launch's; `JobNotFound` when AzureML has no
    job of that name (or one that is not this launch's: names are unique, so this one was
    never created); None when AzureML cannot be asked."""
    settings = settings_of(launch)
    if settings.instance_type == LOCAL_INSTANCE_TYPE:
        local_mode = _local_mode()
        found: JobHandle | JobNotFound | None = local_mode.find(launch, operator, settings)
        return found
    from azure.core.exceptions import AzureError, HttpResponseError

    try:
        config = _config(operator)
    except ConfigError:
        return None
    name = job_name(launch.job_name)
    try:
        job = _arm(credentials, config).jobs.get(
            config.resource_group, config.workspace, name, cls=_raw
        )
    except HttpResponseError as error:
        if _status(error) == 404:
            return JobNotFound(f"AzureML has no job {name} in workspace {config.workspace}")
        return None
    except (AzureError, OSError, StepframeError):
        return None
    properties = job.get("properties", {})
    tags = properties.get("tags") or {}
    ours = {RUN_TAG: launch.run_id, STEP_TAG: launch.step, ATTEMPT_TAG: str(launch.attempt)}
    mismatch = sorted(key for key, value in ours.items() if tags.get(key) != value)
    expected = build_job_body(launch, config, settings, name)["properties"]["environmentId"]
    if mismatch or str(properties.get("environmentId", "")).lower() != expected.lower():
        return JobNotFound(
            f"AzureML job {name} exists but is not this launch's (tags "
            f"{', '.join(mismatch) or 'match'}, environment {properties.get('environmentId')}); "
            "this launch's job was never created"
        )
    return _handle(
        operator,
        config,
        name,
        _history_endpoint(config) or _discover(_arm(credentials, config), config),
    )
