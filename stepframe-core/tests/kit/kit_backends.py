"""Backends for testing the conformance kit itself (not a test module).

Each kind comes as a correct reference implementation, written the way a third-party
plugin would be, and as broken variants that each get one thing wrong.  The kit's own
tests (test_reference_backends.py, test_broken_backends.py) run the suites against all
of them: the reference ones must pass, and each broken one must fail exactly the tests
that cover what it gets wrong.

The file is copied into pytester's folder and imported from there by the inner runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import attrs

from stepframe import (
    ArtifactStore,
    ComponentKind,
    Credentials,
    Flavor,
    ImageRef,
    JobHandle,
    JobNotFound,
    JobState,
    JobStatus,
    RemoteError,
    SecretRef,
    StepframeError,
    StepResult,
    hookimpl,
    resolve_secret,
)
from stepframe.exceptions import ArtifactExistsError, ArtifactNotFoundError

# ==== step operators ======================================================================


class SubprocessOperator:
    """Runs each job's command in a new process, its output in a log file.  Correct."""

    flavor = "kit-subprocess"

    def __init__(self) -> None:
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.cancelled: set[str] = set()

    @hookimpl
    def register_flavors(self, register):
        register(
            Flavor(kind=ComponentKind.STEP_OPERATOR, name=self.flavor, jobs_outlive_client=False)
        )

    def job_id(self, launch: Any) -> str:
        """The launch's job name, shortened to 40 characters keeping a hash of all of it."""
        name = str(launch.job_name)
        if len(name) <= 40:
            return name
        return f"{name[:31]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"

    @hookimpl
    def submit_step(self, launch, operator, credentials):
        if operator.flavor != self.flavor:
            return None
        job_id = self.job_id(launch)
        log = Path(launch.workdir) / f"{job_id}.log"
        process = self.start(launch, log)
        self.processes[job_id] = process
        return JobHandle(
            flavor=self.flavor,
            operator=operator.name,
            job_id=job_id,
            data=self.handle_data(process, log),
        )

    def start(
        self, launch: Any, log: Path, wrapper: tuple[str, ...] = ()
    ) -> subprocess.Popen[bytes]:
        """Start the job's command (after ``wrapper``) in its own session, output to ``log``."""
        log.parent.mkdir(parents=True, exist_ok=True)
        path = os.pathsep.join(p for p in (launch.code_root, os.environ.get("PYTHONPATH")) if p)
        env = {
            **os.environ,
            **launch.environment,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": path,
            "STEPFRAME_CODE_ROOT": launch.code_root,
        }
        with log.open("ab") as out:
            return subprocess.Popen(
                [*wrapper, sys.executable, *launch.command[1:]],
                cwd=launch.code_root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def handle_data(self, process: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
        return {"pid": process.pid, "log": str(log)}

    def read_log(self, handle: JobHandle, cursor: str | None, final: bool) -> tuple[list[str], int]:
        offset = int(cursor or 0)
        with open(handle.data["log"], "rb") as log:
            log.seek(offset)
            data = log.read()
        if not final:
            data = data[: data.rfind(b"\n") + 1]
        return data.decode(errors="replace").splitlines(), offset + len(data)

    @hookimpl
    def poll_step(self, handle, credentials, cursor):
        if handle.flavor != self.flavor:
            return None
        process = self.processes.get(handle.job_id)
        if process is None:
            return JobStatus(JobState.FAILED, failure_reason="this process did not start it")
        code = process.poll()
        lines, offset = self.read_log(handle, cursor, final=code is not None)
        if code is None:
            state = JobState.RUNNING
        elif handle.job_id in self.cancelled:
            state = JobState.CANCELLED
        else:
            state = JobState.SUCCEEDED if code == 0 else JobState.FAILED
        reason = f"exit status {code}" if state is JobState.FAILED else None
        return JobStatus(state, tuple(lines), str(offset), failure_reason=reason, poll_after=0.05)

    @hookimpl
    def cancel_step(self, handle, credentials):
        if handle.flavor != self.flavor:
            return None
        process = self.processes.get(handle.job_id)
        if process is not None and process.poll() is None:
            self.cancelled.add(handle.job_id)
            self.stop(process)
        return True

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


class LosesOutputs(SubprocessOperator):
    """Answers fetch_artifacts itself, from the exit status alone: outputs and tracebacks
    get lost."""

    flavor = "kit-loses-outputs"

    @hookimpl
    def fetch_artifacts(self, handle, launch):
        if handle.flavor != self.flavor:
            return None
        code = self.processes[handle.job_id].poll()
        if code == 0:
            return StepResult()
        return StepResult(error=RemoteError("JobFailed", f"exit status {code}"))


class IgnoresCancel(SubprocessOperator):
    """Says the job is cancelled, but never stops the process."""

    flavor = "kit-ignores-cancel"

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        pass

    @hookimpl
    def poll_step(self, handle, credentials, cursor):
        status = super().poll_step(handle, credentials, cursor)
        if status is not None and handle.job_id in self.cancelled:
            return attrs.evolve(status, state=JobState.CANCELLED)
        return status


class RepeatsLogs(SubprocessOperator):
    """Ignores the cursor: every poll returns the whole log again."""

    flavor = "kit-repeats-logs"

    def read_log(self, handle: JobHandle, cursor: str | None, final: bool) -> tuple[list[str], int]:
        return super().read_log(handle, None, final)


class TruncatesNames(SubprocessOperator):
    """Cuts job names to the backend's 40 characters, so long names collide."""

    flavor = "kit-truncates-names"

    def job_id(self, launch: Any) -> str:
        return str(launch.job_name)[:40]


class AnswersForEveryone(SubprocessOperator):
    """Submits steps of any operator flavor and polls any job."""

    flavor = "kit-answers-everyone"

    @hookimpl
    def submit_step(self, launch, operator, credentials):
        return super().submit_step(launch, attrs.evolve(operator, flavor=self.flavor), credentials)


class TupleInHandle(SubprocessOperator):
    """Keeps a tuple in the handle, which comes back from JSON as a list."""

    flavor = "kit-tuple-handle"

    def start(
        self, launch: Any, log: Path, wrapper: tuple[str, ...] = ()
    ) -> subprocess.Popen[bytes]:
        """Start the job's command (after ``wrapper``) in its own session, output to ``log``."""
        log.parent.mkdir(parents=True, exist_ok=True)
        path = os.pathsep.join(p for p in (launch.code_root, os.environ.get("PYTHONPATH")) if p)
        env = {
            **os.environ,
            **launch.environment,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": path,
            "STEPFRAME_CODE_ROOT": launch.code_root,
        }
        with log.open("ab") as out:
            return subprocess.Popen(
                [*wrapper, sys.executable, *launch.command[1:]],
                cwd=launch.code_root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def handle_data(self, process: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
        return {"pid": process.pid, "log": str(log), "ports": (8080, 8081)}


class DropsPartialLine(SubprocessOperator):
    """Holds back a last line without a newline even once the job has ended: it is lost."""

    flavor = "kit-drops-partial-line"

    def read_log(self, handle: JobHandle, cursor: str | None, final: bool) -> tuple[list[str], int]:
        return super().read_log(handle, cursor, final=False)


class WaitsForRunning(SubprocessOperator):
    """Learns that a job runs only from a poll made while its step is still at work, and
    reports an end only after it reported RUNNING: a job whose step was done before the
    first poll stays PENDING for ever."""

    flavor = "kit-waits-for-running"
    # The suite's first-poll test fails by waiting out the job timeout, and the cleanup
    # then waits out the cancel timeout on the job stuck PENDING: keep both short (the
    # tests it passes end their jobs in a second or two).
    job_timeout = 10.0
    cancel_timeout = 5.0

    def __init__(self) -> None:
        super().__init__()
        self.seen_running: set[str] = set()
        self.results: dict[str, Path] = {}

    @hookimpl
    def submit_step(self, launch, operator, credentials):
        handle = super().submit_step(launch, operator, credentials)
        self.results[handle.job_id] = Path(launch.result_uri.removeprefix("file://"))
        return handle

    @hookimpl
    def poll_step(self, handle, credentials, cursor):
        status = super().poll_step(handle, credentials, cursor)
        at_work = not self.results[handle.job_id].exists()
        if status.state is JobState.RUNNING and at_work:
            self.seen_running.add(handle.job_id)
        elif handle.job_id not in self.seen_running:
            return JobStatus(JobState.PENDING, cursor=cursor, poll_after=0.05)
        return status


class ClaimsToOutliveTheClient(SubprocessOperator):
    """Says its jobs outlive the client, but finds them only in the submitting process's
    memory: another process can neither follow nor stop them."""

    flavor = "kit-claims-to-outlive"

    @hookimpl
    def register_flavors(self, register):
        register(Flavor(kind=ComponentKind.STEP_OPERATOR, name=self.flavor))


# A job's process under DetachedOperator: runs the command, then records its exit status
# (first writer wins: a cancel may have recorded "cancelled" already).
_RECORDING_WRAPPER = """
import os, subprocess, sys
code = subprocess.call(sys.argv[2:])
try:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL)
except FileExistsError:
    sys.exit(0)
os.write(fd, str(code).encode())
os.close(fd)
"""


class DetachedOperator(SubprocessOperator):
    """Jobs that outlive the client: everything that finds a job (its process group, log
    and exit-status file) is in the handle, and a job's handle is kept next to its log so
    that find_job finds it by the launch's job name.  Correct."""

    flavor = "kit-detached"
    supports_find_job = True

    @hookimpl
    def register_flavors(self, register):
        register(Flavor(kind=ComponentKind.STEP_OPERATOR, name=self.flavor))

    def files(self, launch: Any) -> tuple[Path, Path, Path]:
        workdir = Path(launch.workdir)
        name = self.job_id(launch)
        return workdir / f"{name}.log", workdir / f"{name}.status", workdir / f"{name}.handle"

    @hookimpl
    def submit_step(self, launch, operator, credentials):
        log, status, saved = self.files(launch)
        process = self.start(
            launch, log, wrapper=(sys.executable, "-c", _RECORDING_WRAPPER, str(status))
        )
        handle = JobHandle(
            flavor=self.flavor,
            operator=operator.name,
            job_id=self.job_id(launch),
            data={"pgid": process.pid, "log": str(log), "status": str(status)},
        )
        saved.write_text(json.dumps(attrs.asdict(handle)))
        self.submitted(handle)
        return handle

    def submitted(self, handle: JobHandle) -> None:
        pass

    def ended(self, handle: JobHandle) -> str | None:
        try:
            return Path(handle.data["status"]).read_text()
        except FileNotFoundError:
            return None

    @hookimpl
    def poll_step(self, handle, credentials, cursor):
        ended = self.ended(handle)
        lines, next_cursor = self.read_log(handle, cursor, final=ended is not None)
        if ended is None:
            state, reason = JobState.RUNNING, None
        elif ended == "cancelled":
            state, reason = JobState.CANCELLED, None
        elif ended == "0":
            state, reason = JobState.SUCCEEDED, None
        else:
            state, reason = JobState.FAILED, f"exit status {ended}"
        return JobStatus(
            state, tuple(lines), str(next_cursor), failure_reason=reason, poll_after=0.05
        )

    @hookimpl
    def cancel_step(self, handle, credentials):
        if self.ended(handle) is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(handle.data["pgid"]), signal.SIGKILL)
            with contextlib.suppress(FileExistsError):
                fd = os.open(handle.data["status"], os.O_WRONLY | os.O_CREAT | os.O_EXCL)
                os.write(fd, b"cancelled")
                os.close(fd)
        return True

    @hookimpl
    def find_job(self, launch, operator, credentials):
        saved = self.files(launch)[2]
        if not saved.is_file():
            return JobNotFound(f"no job named {self.job_id(launch)}")
        return JobHandle(**json.loads(saved.read_text()))


class ProcessLocalCursor(DetachedOperator):
    """Its log cursors are tokens into this process's memory: a re-attach from another
    process starts the log over."""

    flavor = "kit-process-local-cursor"

    def __init__(self) -> None:
        super().__init__()
        self.offsets: dict[str, int] = {}

    def read_log(self, handle: JobHandle, cursor: str | None, final: bool) -> tuple[list[str], int]:
        offset = self.offsets.get(cursor or "", 0)
        lines, end = super().read_log(handle, str(offset), final)
        token = uuid.uuid4().hex
        self.offsets[token] = end
        return lines, token  # type: ignore[return-value]


class FindsAnyJob(DetachedOperator):
    """find_job answers with the last job it submitted, whatever the launch."""

    flavor = "kit-finds-any-job"

    def submitted(self, handle: JobHandle) -> None:
        self.last = handle

    @hookimpl
    def find_job(self, launch, operator, credentials):
        return getattr(self, "last", None)


# ==== policies ============================================================================


class AllowListPolicy:
    """Refuses kit-cloud instance types other than "small" in the pre-flight, again at
    submit (the last line), and tags every job.  Correct."""

    allowed = ("small",)

    def problems(self, settings: Any) -> list[str]:
        instance_type = getattr(settings, "instance_type", None)
        if instance_type is not None and instance_type not in self.allowed:
            return [f"instance type {instance_type!r} is not allowed (allowed: small)"]
        return []

    @hookimpl
    def check_step(self, step, component):
        if component.kind is not ComponentKind.STEP_OPERATOR:
            return []
        return self.problems(step.settings)

    @hookimpl(wrapper=True)
    def submit_step(self, launch, operator, credentials):
        refused = self.problems(launch.settings)
        if refused:
            raise StepframeError("; ".join(refused))
        launch.environment["KIT_POLICY_TAG"] = "tagged"
        return (yield)


class SubmitTimePolicy(AllowListPolicy):
    """Refuses only when the job is submitted: after the upstream steps ran."""

    @hookimpl
    def check_step(self, step, component):
        return []


class PolicyWithFlavor(AllowListPolicy):
    """Also registers a flavor, so the core asks it about that flavor's components only."""

    @hookimpl
    def register_flavors(self, register):
        register(Flavor(kind=ComponentKind.CONNECTOR, name="kit-policy-vault"))

    @hookimpl(wrapper=True)
    def submit_step(self, launch, operator, credentials):
        return (yield)  # trusts its pre-flight, which is never asked


class LogEatingPolicy(AllowListPolicy):
    """Wraps poll_step and loses every job's log lines."""

    @hookimpl(wrapper=True)
    def poll_step(self, handle, credentials, cursor):
        status = yield
        return attrs.evolve(status, log_lines=())


# ==== artifact stores =====================================================================

SCHEME = "kitdir"
_ROOT_MARKER = ".kitdir-root"


class DirStore(ArtifactStore):
    """Write-once files below a folder, for ``kitdir:///abs/path`` URIs.  Correct."""

    def __init__(self, root_uri: str) -> None:
        super().__init__(root_uri)
        self.root = self.path(self.root_uri)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / _ROOT_MARKER).touch()

    @staticmethod
    def path(uri: str) -> Path:
        assert uri.startswith(f"{SCHEME}://"), uri
        return Path(uri[len(SCHEME) + 3 :])

    @classmethod
    def open(cls, uri: str) -> DirStore:
        path = cls.path(uri)
        for folder in (path, *path.parents):
            if (folder / _ROOT_MARKER).is_file():
                return cls(f"{SCHEME}://{folder}")
        return cls(uri)

    def object_path(self, uri: str) -> Path:
        path = self.path(uri)
        assert self.root in path.parents, f"{uri} is outside {self.root_uri}"
        return path

    @contextlib.contextmanager
    def _write(self, path: Path, uri: str) -> Iterator[BinaryIO]:
        if path.exists():
            raise ArtifactExistsError(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.parent / f".tmp-{uuid.uuid4().hex}"
        try:
            with temp.open("wb") as stream:
                yield stream
            try:
                os.link(temp, path)
            except FileExistsError:
                raise ArtifactExistsError(uri) from None
        finally:
            temp.unlink(missing_ok=True)

    def open_write(self, uri: str) -> contextlib.AbstractContextManager[BinaryIO]:
        return self._write(self.object_path(uri), uri)

    def open_read(self, uri: str) -> contextlib.AbstractContextManager[BinaryIO]:
        try:
            return self.object_path(uri).open("rb")
        except (FileNotFoundError, IsADirectoryError):
            raise ArtifactNotFoundError(uri) from None

    def exists(self, uri: str) -> bool:
        return self.object_path(uri).is_file()

    def list(self, prefix_uri: str) -> Iterator[str]:
        found = []
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                uri = f"{SCHEME}://{path}"
                if uri.startswith(prefix_uri):
                    found.append(uri)
        yield from sorted(found)


class _Truncating(io.RawIOBase):
    """Writes whole 64 KiB blocks only: the tail of every object is lost."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.pending = b""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.pending += bytes(data)
        while len(self.pending) >= 65536:
            self.raw.write(self.pending[:65536])
            self.pending = self.pending[65536:]
        return len(data)


class TruncatingStore(DirStore):
    @contextlib.contextmanager
    def _write(self, path: Path, uri: str) -> Iterator[BinaryIO]:
        with super()._write(path, uri) as raw:
            yield _Truncating(raw)  # type: ignore[misc]


class _Teeing(io.RawIOBase):
    def __init__(self, raw: BinaryIO, copy: io.BytesIO) -> None:
        self.raw = raw
        self.copy = copy

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.copy.write(data)
        return self.raw.write(data)


class CachingStore(DirStore):
    """Keeps a copy of everything written and serves reads from it: what is stored at
    rest is never read again (and everything is held in memory)."""

    cache: ClassVar[dict[str, bytes]] = {}

    @contextlib.contextmanager
    def _write(self, path: Path, uri: str) -> Iterator[BinaryIO]:
        copy = io.BytesIO()
        with super()._write(path, uri) as raw:
            yield _Teeing(raw, copy)  # type: ignore[misc]
        self.cache[uri] = copy.getvalue()

    def open_read(self, uri: str) -> contextlib.AbstractContextManager[BinaryIO]:
        if uri in self.cache:
            return io.BytesIO(self.cache[uri])
        return super().open_read(uri)


class NaiveStore(DirStore):
    """Writes straight to the object's file: no write-once check, half objects on failure."""

    def open_write(self, uri: str) -> contextlib.AbstractContextManager[BinaryIO]:
        path = self.object_path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open("wb")


class DirStorePlugin:
    store_class: type[DirStore] = DirStore

    @hookimpl
    def register_flavors(self, register):
        register(Flavor(kind=ComponentKind.ARTIFACT_STORE, name=SCHEME, uri_schemes=(SCHEME,)))

    @hookimpl
    def open_artifact_store(self, uri, credentials):
        if not uri.startswith(f"{SCHEME}://"):
            return None
        return self.store_class.open(uri)


class UndeclaredSchemePlugin(DirStorePlugin):
    """A first-edition store: it declares no URI scheme, so the core finds it by trial."""

    @hookimpl
    def register_flavors(self, register):
        register(Flavor(kind=ComponentKind.ARTIFACT_STORE, name=SCHEME))


class TruncatingStorePlugin(DirStorePlugin):
    store_class = TruncatingStore


class CachingStorePlugin(DirStorePlugin):
    store_class = CachingStore


class NaiveStorePlugin(DirStorePlugin):
    store_class = NaiveStore


def corrupt_kitdir(uri: str) -> None:
    path = DirStore.path(uri)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


# ==== image builders ======================================================================


class HashingBuilder:
    """'Builds' an image named by the hash of everything that goes into it.  Correct."""

    flavor = "kit-hashing"

    def __init__(self) -> None:
        self.builds = 0
        self.built: set[str] = set()

    @hookimpl
    def register_flavors(self, register):
        register(Flavor(kind=ComponentKind.IMAGE_BUILDER, name=self.flavor))

    def content_hash(self, request: Any) -> str:
        digest = hashlib.sha256()
        root = Path(request.code_root)
        for path in sorted(root.rglob("*")):
            if path.is_file():
                digest.update(path.relative_to(root).as_posix().encode() + b"\0")
                digest.update(path.read_bytes() + b"\0")
        digest.update(repr((request.requirements, request.parent_image)).encode())
        digest.update(repr(sorted(request.environment.items())).encode())
        return digest.hexdigest()

    @hookimpl
    def build_image(self, request, builder):
        if builder.flavor != self.flavor:
            return None
        digest = self.content_hash(request)
        if digest not in self.built:
            self.builds += 1
            self.built.add(digest)
        return ImageRef(uri=f"registry.kit.invalid/kit@sha256:{digest}", digest=f"sha256:{digest}")


class TimestampBuilder(HashingBuilder):
    """Puts the build time into the image: every build is a new image."""

    flavor = "kit-timestamp"

    def content_hash(self, request: Any) -> str:
        stamp = str(time.time_ns()).encode()
        return hashlib.sha256(super().content_hash(request).encode() + stamp).hexdigest()


class CodeBlindBuilder(HashingBuilder):
    """Hashes the requirements but not the code: code changes never reach the image."""

    flavor = "kit-code-blind"

    def content_hash(self, request: Any) -> str:
        return hashlib.sha256(repr(request.requirements).encode()).hexdigest()


class TagBuilder(HashingBuilder):
    """Pushes to a moving tag and reports no digest."""

    flavor = "kit-tag"

    @hookimpl
    def build_image(self, request, builder):
        if builder.flavor != self.flavor:
            return None
        return ImageRef(uri="registry.kit.invalid/kit:latest")


# ==== connectors ==========================================================================


@attrs.frozen
class TokenConfig:
    token: SecretRef
    lifetime_seconds: float = 3600.0


class TokenConnector:
    """Hands out tokens derived from a secret, each valid for an hour.  Correct."""

    flavor = "kit-token"
    kinds = ("generic", "object_store")

    def __init__(self) -> None:
        self.serial = itertools.count(1)

    @hookimpl
    def register_flavors(self, register):
        register(Flavor(kind=ComponentKind.CONNECTOR, name=self.flavor, config_class=TokenConfig))

    @hookimpl
    def authenticate(self, connector, resource):
        if connector.flavor != self.flavor or resource.kind not in self.kinds:
            return None
        secret = resolve_secret(connector.config.token)
        return self.issue(connector.name, resource, secret, connector.config.lifetime_seconds)

    def issue(self, name: str, resource: Any, secret: str, lifetime: float) -> Credentials:
        return Credentials(
            connector=name,
            resource=resource,
            values={"token": f"{secret}-{next(self.serial)}"},
            expires_at=time.time() + lifetime,
            refresh=lambda: self.issue(name, resource, secret, lifetime),
        )


class _ShowingCredentials(Credentials):
    def __repr__(self) -> str:
        return f"Credentials(connector={self.connector!r}, values={dict(self.values)!r})"


class LeakyConnector(TokenConnector):
    """Returns credentials whose repr shows the token."""

    flavor = "kit-leaky"

    def issue(self, name: str, resource: Any, secret: str, lifetime: float) -> Credentials:
        return _ShowingCredentials(
            connector=name,
            resource=resource,
            values={"token": f"{secret}-{next(self.serial)}"},
            expires_at=time.time() + lifetime,
            refresh=lambda: self.issue(name, resource, secret, lifetime),
        )


class StaleConnector(TokenConnector):
    """Its refresh hands back the very credentials that are about to expire."""

    flavor = "kit-stale"

    def issue(self, name: str, resource: Any, secret: str, lifetime: float) -> Credentials:
        holder: list[Credentials] = []
        credentials = Credentials(
            connector=name,
            resource=resource,
            values={"token": secret},
            expires_at=time.time() + lifetime,
            refresh=lambda: holder[0],
        )
        holder.append(credentials)
        return credentials
