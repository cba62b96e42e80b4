"""A test service: the AzureML job routes the ``azureml`` operator calls, on 127.0.0.1.

What it is: a small plain-HTTP service answering, in AzureML's wire format:

- Resource Manager (``/subscriptions/S/resourceGroups/G/providers/
  Microsoft.MachineLearningServices/workspaces/W/...``, ``api-version`` required):
  ``PUT environments/NAME/versions/V`` and ``PUT jobs/NAME``, accepted only when the body
  is valid under AzureML's generated REST models (the same ones the operator's pre-flight
  uses, ``stepframe_azure._azureml.schema``: an unknown field, a wrong type, a value out
  of range or off its pattern, a missing required field is a 400 ``UserError`` as AzureML
  answers it), the names match the REST API's path patterns, and the job's environment
  exists.  A second PUT of the same job with the same body answers 200; with another
  body, 409.  ``GET jobs/NAME`` (404 for a name never created), ``POST
  jobs/NAME/cancel`` (202, or 400 once the job has ended).
- ``GET`` the workspace (its region and ``discoveryUrl``) and that discovery document,
  which names this service as the workspace's run history endpoint.
- Run history: ``GET /history/v1.0/.../runs/NAME/details`` with the job's log file as a
  signed URL and, for a failed job, its error; the log file itself honours ``Range``
  (206, 416 past its end).
- Every Resource Manager and run history call needs ``Authorization: Bearer``; tokens in
  `denied_tokens` are refused with 403 (a principal without a role).
- When `workspaces` names the workspaces that exist (resource ids), a call under another
  answers Resource Manager's 404 for the first part that does not exist:
  ``SubscriptionNotFound``, ``ResourceGroupNotFound`` or ``ResourceNotFound`` (the
  workspace).  Empty (the default): every workspace exists.
- When `computes` names the workspace's computes, a job on another is a 400; when
  `vm_sizes` names the VM sizes serverless jobs may have, a serverless job of another size
  is a 400.  The messages are worded like AzureML's (the setting's value in them), not
  its exact text.  Empty (the default): any compute exists, any size is offered.

A job walks AzureML's documented statuses: NotStarted, then Queued; with containers
(``run_containers=True``) Preparing, Starting and Running while the job's container runs
on the real Docker engine (the environment's image, ``sh -c COMMAND``, the job's
environment variables plus ``AZUREML_RUN_ID`` and ``AZUREML_NODE_COUNT``, the host
network), then Finalizing and Completed or Failed by its exit status; a cancel goes
through CancelRequested to Canceled.  Without containers a job waits in Queued until a
test moves it (`advance`, `write_log`).  Faults on demand (`fail_next`): a 429 with a
Retry-After, a 5xx, or a call carried out whose answer is lost (the connection closed
without a response).

What it is not: AzureML.  No computes, quotas, VM sizes, identities, data stores or
Studio; only the first node of a multi-node job runs; one log file per job, in memory.
Tests only; never shipped.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import json
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

__all__ = ["CONTAINER_LABEL", "LOG_FILE", "AzureMLService", "azureml_service"]

CONTAINER_LABEL = "stepframe.azureml-test-service"
LOG_FILE = "user_logs/std_log.txt"
_WORKSPACE = (
    r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)"
)
_ENVIRONMENT = re.compile(
    rf"^{_WORKSPACE}/environments/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$", re.I
)
_WORKSPACE_PATH = re.compile(rf"^{_WORKSPACE}$", re.I)
_JOB = re.compile(rf"^{_WORKSPACE}/jobs/(?P<name>[^/]+)(?P<cancel>/cancel)?$", re.I)
_DETAILS = re.compile(rf"^/history/v1\.0{_WORKSPACE}/runs/(?P<name>[^/]+)/details$", re.I)
_LOG = re.compile(r"^/logs/(?P<name>[^/]+)/(?P<file>.+)$")
# The REST API's path patterns for job and environment names, and for workspaces.
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-_]{0,254}$")
_WORKSPACE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$")
_ENDED = ("Completed", "Failed", "Canceled")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Job:
    def __init__(self, resource_id: str, name: str, body: dict[str, Any]) -> None:
        self.resource_id = resource_id
        self.name = name
        self.body = body
        self.status = "NotStarted"
        self.created = _now()
        self.error: dict[str, Any] | None = None
        self.log = bytearray()
        self.container: Any = None
        self.cancelled = threading.Event()
        self.statuses = ["NotStarted"]

    def move(self, status: str) -> None:
        self.status = status
        self.statuses.append(status)

    def view(self) -> dict[str, Any]:
        return {
            "id": self.resource_id,
            "name": self.name,
            "type": "Microsoft.MachineLearningServices/workspaces/jobs",
            "properties": {**self.body["properties"], "status": self.status},
            "systemData": {"createdAt": self.created, "lastModifiedAt": _now()},
        }


class AzureMLService:
    """Start with `start()`; point the operator's ``endpoint`` and ``history_endpoint`` at
    `url`."""

    def __init__(
        self,
        *,
        run_containers: bool = False,
        api_versions: tuple[str, ...] = ("2024-10-01",),
        retry_after: str = "0",
    ) -> None:
        self.run_containers = run_containers
        self.api_versions = api_versions
        self.retry_after = retry_after
        self.jobs: dict[str, _Job] = {}
        self.environments: dict[str, dict[str, Any]] = {}
        # (kind, method, path, body) of every call, in order.
        self.requests: list[tuple[str, str, str, Any]] = []
        self.denied_tokens: set[str] = set()
        # Resource ids of the workspaces that exist (any case); empty: all of them.
        self.workspaces: set[str] = set()
        # The workspace's compute names and the serverless VM sizes; empty: any.
        self.computes: set[str] = set()
        self.vm_sizes: set[str] = set()
        self._faults: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._signatures = itertools.count(1)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> AzureMLService:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for job in list(self.jobs.values()):
            if job.status not in _ENDED:
                self._cancel(job)

    # ---- for tests ----------------------------------------------------------------------

    def fail_next(self, kind: str, fault: str) -> None:
        """Make the next ``kind`` call (``create-job``, ``create-environment``, ``get-job``,
        ``cancel``, ``details``, ``log``) answer ``fault``: ``"429"``, a 5xx such as
        ``"503"``, or ``"lose-answer"`` (carried out; the connection closes unanswered)."""
        self._faults.append((kind, fault))

    def calls(self, kind: str) -> int:
        return sum(1 for call in self.requests if call[0] == kind)

    def created_bodies(self) -> list[dict[str, Any]]:
        return [body for kind, method, _, body in self.requests if kind == "create-job"]

    def job(self, name: str) -> _Job:
        return self.jobs[name.lower()]

    def advance(self, name: str, status: str, *, error: str | None = None) -> None:
        """Move a job (without containers) to ``status``; a Failed one gets ``error``."""
        job = self.job(name)
        if error is not None:
            job.error = {"code": "UserError", "message": error}
        job.move(status)

    def write_log(self, name: str, text: str) -> None:
        self.job(name).log += text.encode()

    # ---- the API ------------------------------------------------------------------------

    def _put_environment(self, match: re.Match[str], body: Any) -> tuple[int, Any]:
        from stepframe_azure._azureml.schema import body_problems

        problems = []
        if not _NAME.match(match["name"]):
            problems.append(f"environment name {match['name']!r} breaks the name pattern")
        problems += body_problems(body, "EnvironmentVersion")
        if problems:
            return 400, _error("UserError", "; ".join(problems))
        key = match.string.lower()
        created = key not in self.environments
        self.environments[key] = body
        return (201 if created else 200), {"id": match.string, "name": match["version"], **body}

    def _put_job(self, match: re.Match[str], body: Any) -> tuple[int, Any]:
        from stepframe_azure._azureml.schema import body_problems

        name = match["name"]
        problems = []
        if not _NAME.match(name):
            problems.append(
                f"job name {name!r} breaks the pattern ^[a-zA-Z0-9][a-zA-Z0-9\\-_]{{0,254}}$"
            )
        problems += body_problems(body, "JobBase")
        if problems:
            return 400, _error("UserError", "; ".join(problems))
        properties = body["properties"]
        compute = str(properties.get("computeId") or "").rsplit("/", 1)[-1]
        if compute and self.computes and compute.lower() not in {c.lower() for c in self.computes}:
            return 400, _error(
                "UserError", f"Compute {compute} not found in workspace {match['ws']}."
            )
        size = str((properties.get("resources") or {}).get("instanceType") or "")
        if not compute and size and self.vm_sizes and size not in self.vm_sizes:
            return 400, _error(
                "UserError",
                f"The instance type {size} is not supported for serverless compute in westeurope.",
            )
        environment = str(body["properties"].get("environmentId", "")).lower()
        if environment not in self.environments:
            return 404, _error("UserError", f"Environment {environment} was not found")
        with self._lock:
            existing = self.jobs.get(name.lower())
            if existing is not None:
                if existing.body == body:
                    return 200, existing.view()
                return 409, _error(
                    "UserError", f"A job with the name {name} already exists; job names are unique"
                )
            job = _Job(match.string, name, body)
            self.jobs[name.lower()] = job
        job.move("Queued")
        if self.run_containers:
            threading.Thread(target=self._run, args=(job,), daemon=True).start()
        return 201, job.view()

    def _cancel(self, job: _Job) -> tuple[int, Any]:
        if job.status in _ENDED:
            return 400, _error(
                "UserError", f"Job {job.name} is already in a terminal state {job.status}"
            )
        job.move("CancelRequested")
        job.cancelled.set()
        if job.container is not None:
            with contextlib.suppress(Exception):
                job.container.kill()
        elif not self.run_containers or job.status == "CancelRequested":
            if not self.run_containers:
                job.move("Canceled")
        return 202, None

    def _details(self, job: _Job) -> tuple[int, Any]:
        if job.status in ("NotStarted", "Queued"):
            return 404, _error("UserError", f"Run {job.name} has not started")
        answer: dict[str, Any] = {
            "runId": job.name,
            "status": job.status,
            "logFiles": {
                LOG_FILE: f"{self.url}/logs/{job.name}/{LOG_FILE}?sig={next(self._signatures)}"
            },
        }
        if job.error is not None:
            answer["error"] = {"error": job.error}
        return 200, answer

    # ---- running a job ------------------------------------------------------------------

    def _run(self, job: _Job) -> None:
        import docker

        properties = job.body["properties"]
        image = self.environments[properties["environmentId"].lower()]["properties"]["image"]
        env = {
            **properties.get("environmentVariables", {}),
            "AZUREML_RUN_ID": job.name,
            "AZUREML_NODE_COUNT": "1",
        }
        job.move("Preparing")
        if job.cancelled.is_set():
            job.move("Canceled")
            return
        client = docker.from_env(timeout=120)
        job.move("Starting")
        try:
            job.container = client.containers.run(
                image,
                command=["/bin/sh", "-c", properties["command"]],
                environment=env,
                network_mode="host",
                labels={CONTAINER_LABEL: job.name},
                detach=True,
            )
        except Exception as error:
            job.error = {
                "code": "ServiceError",
                "message": f"Failed to start the container: {error}",
            }
            job.move("Failed")
            return
        job.move("Running")
        if job.cancelled.is_set():
            job.container.kill()
        for chunk in job.container.logs(stream=True, follow=True):
            job.log += chunk
        status = job.container.wait().get("StatusCode", 1)
        whole = job.container.logs()
        if len(whole) > len(job.log):  # a last line the followed stream had not handed over
            job.log += whole[len(job.log) :]
        with contextlib.suppress(Exception):
            job.container.remove(force=True)
        if job.cancelled.is_set():
            job.move("Canceled")
            return
        job.move("Finalizing")
        if status == 0:
            job.move("Completed")
        else:
            job.error = {
                "code": "UserError",
                "message": (
                    f"Execution failed. User process '/bin/sh' exited with status code {status}."
                ),
            }
            job.move("Failed")

    # ---- HTTP ---------------------------------------------------------------------------

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: Any
    ) -> tuple[str, Callable[[], tuple[int, Any]] | None, dict[str, str]]:
        """The call's kind, what answers it (None: no route), and extra answer headers."""
        log = _LOG.match(path)
        if log and method == "GET":
            return "log", lambda: self._log(log["name"], log["file"], query, headers), {}
        details = _DETAILS.match(path)
        if details and method == "GET":
            job = self.jobs.get(details["name"].lower())
            if job is None:
                return "details", lambda: (404, _error("UserError", "Run not found")), {}
            return "details", lambda: self._details(job), {}
        if path == "/discovery" and method == "GET":
            return "discovery", lambda: (200, {"api": self.url, "history": self.url}), {}
        workspace = _WORKSPACE_PATH.match(path)
        if workspace and method == "GET":
            return "get-workspace", lambda: (200, self._workspace(workspace)), {}
        environment = _ENVIRONMENT.match(path)
        if environment and method == "PUT":
            return "create-environment", lambda: self._put_environment(environment, body), {}
        one = _JOB.match(path)
        if one:
            if not _WORKSPACE_NAME.match(one["ws"]):
                return (
                    "get-job",
                    lambda: (404, _error("ResourceNotFound", "workspace not found")),
                    {},
                )
            if method == "PUT" and not one["cancel"]:
                return "create-job", lambda: self._put_job(one, body), {}
            job = self.jobs.get(one["name"].lower())
            if job is None:
                return (
                    "cancel" if one["cancel"] else "get-job",
                    lambda: (404, _error("UserError", f"Could not find job {one['name']}")),
                    {},
                )
            if method == "POST" and one["cancel"]:
                location = f"{self.url}{path}/operations/1?api-version={self.api_versions[0]}"
                return (
                    "cancel",
                    lambda: self._cancel(job),
                    {"Location": location, "Retry-After": "0"},
                )
            if method == "GET" and not one["cancel"]:
                return "get-job", lambda: (200, job.view()), {}
        return "unknown", None, {}

    def _missing(self, path: str) -> tuple[int, Any] | None:
        """Resource Manager's 404 for a call under a workspace that does not exist."""
        found = re.match(rf"^(?:/history/v1\.0)?{_WORKSPACE}", path, re.I)
        if not self.workspaces or found is None:
            return None
        known = [w.lower().split("/") for w in self.workspaces]
        sub, group, name = found["sub"], found["rg"], found["ws"]
        if not any(parts[2] == sub.lower() for parts in known):
            return 404, _error(
                "SubscriptionNotFound", f"The subscription '{sub}' could not be found."
            )
        if not any(parts[2:5:2] == [sub.lower(), group.lower()] for parts in known):
            return 404, _error(
                "ResourceGroupNotFound", f"Resource group '{group}' could not be found."
            )
        if found.group(0).removeprefix("/history/v1.0").lower() not in {
            w.lower() for w in self.workspaces
        }:
            return 404, _error(
                "ResourceNotFound",
                f"The Resource 'Microsoft.MachineLearningServices/workspaces/{name}' under "
                f"resource group '{group}' was not found. For more details please go to "
                "https://aka.ms/ARMResourceNotFoundFix",
            )
        return None

    def _workspace(self, match: re.Match[str]) -> dict[str, Any]:
        return {
            "id": match.string,
            "name": match["ws"],
            "type": "Microsoft.MachineLearningServices/workspaces",
            "location": "westeurope",
            "properties": {"discoveryUrl": f"{self.url}/discovery"},
        }

    def _log(
        self, name: str, file: str, query: dict[str, list[str]], headers: Any
    ) -> tuple[int, Any]:
        job = self.jobs.get(name.lower())
        if job is None or file != LOG_FILE or not query.get("sig"):
            return 404, _error("BlobNotFound", "The specified blob does not exist.")
        data = bytes(job.log)
        wanted = re.match(r"bytes=(\d+)-$", headers.get("Range", ""))
        if wanted is None:
            return 200, data
        start = int(wanted.group(1))
        if start >= len(data):
            return 416, b""
        return 206, data[start:]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self, method: str) -> None:
                split = urlsplit(self.path)
                query = parse_qs(split.query)
                length = int(self.headers.get("Content-Length", 0) or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    self._answer(400, _error("UserError", "The request body is not JSON"))
                    return
                kind, call, extra = service._route(method, split.path, query, self.headers, body)
                service.requests.append((kind, method, split.path, body))
                if call is None:
                    self._answer(404, _error("NoRoute", f"no route {method} {split.path}"))
                    return
                if kind not in ("log", "discovery"):
                    refusal = self._refusal(query) or service._missing(split.path)
                    if refusal is not None:
                        self._answer(*refusal)
                        return
                fault = next((f for f in service._faults if f[0] == kind), None)
                if fault is not None:
                    service._faults.remove(fault)
                    if fault[1] == "lose-answer":
                        call()  # carried out; the answer never arrives
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    status = int(fault[1])
                    headers = {"Retry-After": service.retry_after} if status == 429 else {}
                    word = "TooManyRequests" if status == 429 else "ServiceUnavailable"
                    self._answer(status, _error(word, "injected by the test"), headers)
                    return
                status, answer = call()
                self._answer(status, answer, extra if status < 300 else None)

            def _refusal(self, query: dict[str, list[str]]) -> tuple[int, Any] | None:
                token = self.headers.get("Authorization", "")
                if not token.startswith("Bearer ") or len(token) <= len("Bearer "):
                    return 401, _error(
                        "AuthenticationFailed", "Authentication failed: no bearer token"
                    )
                if token.removeprefix("Bearer ") in service.denied_tokens:
                    return 403, _error(
                        "AuthorizationFailed",
                        "The client does not have authorization to perform action "
                        "'Microsoft.MachineLearningServices/workspaces/jobs/write'",
                    )
                if not self.path.startswith("/history/"):
                    version = query.get("api-version", [""])[0]
                    if version not in service.api_versions:
                        return 400, _error(
                            "InvalidApiVersionParameter",
                            f"The api-version '{version}' is invalid; supported: "
                            f"{', '.join(service.api_versions)}",
                        )
                return None

            def _answer(
                self, status: int, answer: Any, headers: dict[str, str] | None = None
            ) -> None:
                if isinstance(answer, bytes):
                    data, content_type = answer, "text/plain"
                else:
                    data = b"" if answer is None else json.dumps(answer).encode()
                    content_type = "application/json; charset=utf-8"
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_PUT(self) -> None:
                self._serve("PUT")

            def do_POST(self) -> None:
                self._serve("POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


@pytest.fixture
def azureml_service() -> Iterator[AzureMLService]:
    """The AzureML job service on 127.0.0.1, running jobs' containers on the Docker engine
    (see this module for what it is and is not)."""
    service = AzureMLService(run_containers=True).start()
    try:
        yield service
    finally:
        service.stop()
