"""A test service: Vertex AI's CustomJob API and Cloud Logging's entries.list, on 127.0.0.1.

What it is: a small HTTP service that answers the calls the ``vertex`` operator makes,
in the wire format of ``aiplatform.v1`` and ``logging.v2``:

- ``POST v1/projects/P/locations/L/customJobs`` accepts only bodies valid under the JSON
  Schema derived from Vertex AI's discovery document (_discovery_schema.py) and answers
  400 ``INVALID_ARGUMENT`` otherwise, as Vertex AI does; the job id is assigned here.
- The job walks the documented states: QUEUED, then RUNNING while its chief's container
  spec (image, command, env, plus ``CLUSTER_SPEC``) runs on the real Docker engine with
  the host network, then SUCCEEDED or FAILED by its exit status; ``:cancel`` goes through
  CANCELLING to CANCELLED.
- ``GET`` a job, ``GET`` the list with a ``labels.KEY="VALUE"`` filter.
- ``POST v2/entries:list`` serves the container's output lines as log entries of
  ``resource.type="ml_job"`` with ``resource.labels.job_id``, ordered by timestamp.
- Artifact Registry's ``repositories.get`` and ``repositories.create`` (format DOCKER),
  for the ``artifact-registry`` flavor's repository checks.
- Faults on demand (`fail_next`): a 429 or 503 answer, or a create that is carried out
  but whose answer is lost (the connection closed without a response).

What it is not: Vertex AI.  No machines, accelerators, quotas, IAM or networks; workers
beyond the chief are not started; logs are kept in memory.  Tests only; never shipped.
"""

from __future__ import annotations

import datetime
import itertools
import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["VertexService"]

CONTAINER_LABEL = "stepframe.vertex-test-service"
_TERMINAL = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"}
_JOBS = re.compile(r"^/v1/(projects/[^/]+/locations/[^/]+)/customJobs$")
_REPOSITORIES = re.compile(r"^/v1/(projects/[^/]+/locations/[^/]+)/repositories$")
_REPOSITORY = re.compile(r"^/v1/(projects/[^/]+/locations/[^/]+/repositories/[^/:]+)$")
_JOB = re.compile(r"^/v1/(projects/[^/]+/locations/[^/]+/customJobs/[0-9]+)(:cancel)?$")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Job:
    def __init__(self, name: str, body: dict[str, Any]) -> None:
        self.name = name
        self.body = body
        self.state = "JOB_STATE_QUEUED"
        self.created = _now()
        self.error: dict[str, Any] | None = None
        self.container: Any = None
        self.cancelled = threading.Event()
        self.logs: list[dict[str, Any]] = []

    def view(self) -> dict[str, Any]:
        answer = {
            **self.body,
            "name": self.name,
            "state": self.state,
            "createTime": self.created,
            "updateTime": _now(),
        }
        if self.error:
            answer["error"] = self.error
        return answer


class VertexService:
    """Start with `start()`; point the operator's ``api_endpoint`` and ``logging_endpoint``
    at `url`."""

    def __init__(self, *, run_containers: bool = True) -> None:
        self.run_containers = run_containers
        self.jobs: dict[str, _Job] = {}
        self.repositories: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self._faults: list[tuple[str, str]] = []
        # Bearer tokens whose every call is refused with 403 (a principal without roles).
        self.denied_tokens: set[str] = set()
        # Paths whose every call is refused with 403 (a role the principal lacks, such as
        # roles/logging.viewer for v2/entries:list).
        self.denied_paths: set[str] = set()
        self._ids = itertools.count(1000000000000000000)
        self._insert_ids = itertools.count(1)
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> VertexService:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for job in list(self.jobs.values()):
            if job.state not in _TERMINAL:
                self._cancel(job)

    def fail_next(self, method: str, fault: str) -> None:
        """Make the next ``method`` call (``create``, ``get``, ``list``, ``cancel``,
        ``logs``) answer ``fault``: ``"429"``, ``"503"`` or ``"lose-answer"``."""
        self._faults.append((method, fault))

    def created_bodies(self) -> list[dict[str, Any]]:
        return [body for method, _, body in self.requests if method == "create"]

    # ---- the API ----------------------------------------------------------------------

    def _create(self, parent: str, body: Any) -> tuple[int, dict[str, Any]]:
        from _discovery_schema import validator

        problems = [
            f"{'.'.join(map(str, e.absolute_path)) or 'body'}: {e.message}"
            for e in validator().iter_errors(body)
        ]
        if isinstance(body, dict):
            if not body.get("displayName"):
                problems.append("displayName: required")
            pools = body.get("jobSpec", {}).get("workerPoolSpecs") or []
            if not pools:
                problems.append("jobSpec.workerPoolSpecs: required")
        if problems:
            return 400, _error(400, "INVALID_ARGUMENT", "; ".join(problems))
        name = f"{parent}/customJobs/{next(self._ids)}"
        job = _Job(name, body)
        with self._lock:
            self.jobs[name] = job
        threading.Thread(target=self._run, args=(job,), daemon=True).start()
        return 200, job.view()

    def _create_repository(
        self, parent: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, dict[str, Any]]:
        repository_id = query.get("repositoryId", [""])[0]
        if not repository_id or not isinstance(body, dict) or body.get("format") != "DOCKER":
            return 400, _error(400, "INVALID_ARGUMENT", "repositoryId and format DOCKER expected")
        name = f"{parent}/repositories/{repository_id}"
        if name in self.repositories:
            return 409, _error(409, "ALREADY_EXISTS", f"the repository {name} already exists")
        self.repositories[name] = {**body, "name": name}
        return 200, {"name": f"{parent}/operations/{len(self.repositories)}", "done": True}

    def _list(self, parent: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        wanted: dict[str, str] = {}
        for text in query.get("filter", []):
            for key, value in re.findall(r'labels\.([a-z0-9_-]+)\s*=\s*"([^"]*)"', text):
                wanted[key] = value
        found = [
            job.view()
            for job in self.jobs.values()
            if job.name.startswith(f"{parent}/")
            and all(job.body.get("labels", {}).get(k) == v for k, v in wanted.items())
        ]
        return 200, {"customJobs": found} if found else {}

    def _cancel(self, job: _Job) -> tuple[int, dict[str, Any]]:
        if job.state in _TERMINAL:
            return 400, _error(
                400, "FAILED_PRECONDITION", f"Job {job.name} is already in state {job.state}"
            )
        job.state = "JOB_STATE_CANCELLING"
        job.cancelled.set()
        if job.container is not None:
            try:
                job.container.kill()
            except Exception:  # already gone
                pass
        elif not self.run_containers:
            job.state = "JOB_STATE_CANCELLED"
        return 200, {}

    def _entries(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        text = str(body.get("filter", ""))
        match = re.search(r'resource\.labels\.job_id="([0-9]+)"', text)
        if 'resource.type="ml_job"' not in text or match is None:
            return 200, {}
        since = re.search(r'timestamp>="([^"]+)"', text)
        job = next((j for j in self.jobs.values() if j.name.endswith(f"/{match.group(1)}")), None)
        if job is None:
            return 200, {}
        entries = sorted(
            (
                e
                for e in list(job.logs)
                if since is None or _instant(e["timestamp"]) >= _instant(since.group(1))
            ),
            key=lambda e: _instant(e["timestamp"]),
        )
        return 200, {"entries": entries} if entries else {}

    def add_log(self, job: _Job, text: str, timestamp: str) -> None:
        """A log entry of ``job`` with the given timestamp, readable from now on (as one
        Cloud Logging indexes late, after entries with later timestamps)."""
        self._log(job, text.encode(), timestamp)

    # ---- running a job ----------------------------------------------------------------

    def _run(self, job: _Job) -> None:
        if not self.run_containers:
            return  # the job stays QUEUED until cancelled: enough for API tests
        import docker

        pool = job.body["jobSpec"]["workerPoolSpecs"][0]
        container_spec = pool["containerSpec"]
        env = {item["name"]: item.get("value", "") for item in container_spec.get("env", [])}
        env["CLUSTER_SPEC"] = json.dumps(
            {
                "cluster": {"workerpool0": ["127.0.0.1:2222"]},
                "environment": "cloud",
                "task": {"type": "workerpool0", "index": 0},
            }
        )
        if job.cancelled.is_set():
            job.state = "JOB_STATE_CANCELLED"
            return
        client = docker.from_env(timeout=120)
        try:
            job.container = client.containers.run(
                container_spec["imageUri"],
                command=container_spec.get("command", []) + container_spec.get("args", []),
                environment=env,
                network_mode="host",
                labels={CONTAINER_LABEL: job.name},
                detach=True,
            )
        except Exception as error:
            job.error = {"code": 3, "message": f"Unable to start the container: {error}"}
            job.state = "JOB_STATE_FAILED"
            return
        job.state = "JOB_STATE_RUNNING"
        if job.cancelled.is_set():
            job.container.kill()
        pending = b""
        streamed = 0
        for chunk in job.container.logs(stream=True, follow=True):
            streamed += len(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self._log(job, line)
        status = job.container.wait().get("StatusCode", 1)
        # The followed stream can end before the engine hands over a last line without a
        # newline; the whole log, read once the container has exited, has it.
        pending += job.container.logs()[streamed:]
        lines = pending.split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        for line in lines:
            self._log(job, line)
        try:
            job.container.remove(force=True)
        except Exception:
            pass
        if job.cancelled.is_set():
            job.state = "JOB_STATE_CANCELLED"
        elif status == 0:
            job.state = "JOB_STATE_SUCCEEDED"
        else:
            job.error = {
                "code": 13,
                "message": f"The replica workerpool0-0 exited with a non-zero status of {status}.",
            }
            job.state = "JOB_STATE_FAILED"

    def _log(self, job: _Job, line: bytes, timestamp: str | None = None) -> None:
        job.logs.append(
            {
                "logName": "projects/test/logs/workerpool0-0",
                "resource": {"type": "ml_job", "labels": {"job_id": job.name.rsplit("/", 1)[-1]}},
                "timestamp": timestamp or _now(),
                "insertId": f"{next(self._insert_ids):012d}",
                "textPayload": line.decode("utf-8", "replace"),
            }
        )

    # ---- HTTP -------------------------------------------------------------------------

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[str, Callable[[], tuple[int, dict[str, Any]]]]:
        if method == "POST" and path == "/v2/entries:list":
            return "logs", lambda: self._entries(body or {})
        repositories = _REPOSITORIES.match(path)
        if repositories and method == "POST":
            return "create-repository", lambda: self._create_repository(
                repositories.group(1), query, body
            )
        repository = _REPOSITORY.match(path)
        if repository and method == "GET":
            found = self.repositories.get(repository.group(1))
            return "get-repository", lambda: (
                (200, found) if found else
                (404, _error(404, "NOT_FOUND", "Requested entity was not found."))
            )  # fmt: skip
        jobs = _JOBS.match(path)
        if jobs and method == "POST":
            return "create", lambda: self._create(jobs.group(1), body)
        if jobs and method == "GET":
            return "list", lambda: self._list(jobs.group(1), query)
        one = _JOB.match(path)
        if one:
            job = self.jobs.get(one.group(1))
            if job is None:
                return "get", lambda: (404, _error(404, "NOT_FOUND", f"{one.group(1)} not found"))
            if one.group(2) and method == "POST":
                return "cancel", lambda: self._cancel(job)
            if method == "GET":
                return "get", lambda: (200, job.view())
        return "unknown", lambda: (404, _error(404, "NOT_FOUND", f"no route {method} {path}"))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self, method: str) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length", 0) or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    self._answer(
                        400, _error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
                    )
                    return
                kind, call = service._route(method, split.path, parse_qs(split.query), body)
                service.requests.append((kind, split.path, body))
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                if token in service.denied_tokens or split.path in service.denied_paths:
                    message = f"Permission denied on resource {split.path} (or it may not exist)."
                    self._answer(403, _error(403, "PERMISSION_DENIED", message))
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
                    word = "RESOURCE_EXHAUSTED" if status == 429 else "UNAVAILABLE"
                    self._answer(status, _error(status, word, "injected by the test"))
                    return
                status, answer = call()
                self._answer(status, answer)

            def _answer(self, status: int, answer: dict[str, Any]) -> None:
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def _instant(timestamp: str) -> tuple[str, str]:
    """An RFC 3339 UTC timestamp as a sortable key: its seconds and its fraction padded
    to nanoseconds (so ``.5Z`` and ``.500000123Z`` compare as times, not strings)."""
    seconds, _, fraction = timestamp.rstrip("Zz").partition(".")
    return seconds, fraction.ljust(9, "0")


def _error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}
