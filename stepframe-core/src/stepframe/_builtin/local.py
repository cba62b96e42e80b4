"""The ``local`` step operator: each step in a fresh Python process.

Each step runs ``stepframe.entrypoint`` with its launch manifest's URI, exactly what a
container runs, so the whole remote path (manifests, artifact store, imports by module
name, remote tracebacks) is exercised without Docker.  Logs go to a file under the
project's ``.stepframe/jobs/`` so that another orchestrator process can re-attach.

The process is a fresh one, but not a freshly started interpreter: the first submit
starts one pre-warmed parent (`stepframe._builtin.local_zygote`) that has imported the
entrypoint's dependencies, and every job is a fork of it set up as
``python -m stepframe.entrypoint MANIFEST_URI`` would be (own session, the job's working
directory, environment, log and signal handlers).  That saves each job the interpreter's
start-up, about 0.1 s of CPU, which is what many parallel steps on a few cores wait
for.  Two things a fork cannot change: string hashes share the parent's random seed, and
variables read at interpreter or loader start-up (``PYTHON*`` such as ``PYTHONHASHSEED``
or ``PYTHONWARNINGS``, ``LD_*``, the locale) -- a step whose environment changes those
gets ``python -m stepframe.entrypoint`` in a new interpreter, as does a step with
``fresh_interpreter=True``, and every step if the parent cannot start or dies.

A job's exit status is written next to its log (``LOG.exit``), so it is known even to
an orchestrator that re-attaches from another process; so is a cancel (``LOG.cancelled``,
written before the job is signalled), so that a job stopped by ``stepframe jobs stop`` in
another shell is reported ``cancelled``, not failed, to the orchestrator that follows it;
and so is the job itself (``LOG.job``, see `find_job`), so that a job whose start was
never answered (the client was killed meanwhile) is found again.

A cancel is SIGTERM to the job's process group, and SIGKILL to what is left of it after
`TERMINATE_GRACE_SECONDS`, sent by a watcher process (``python -m stepframe._processes
kill-after``) that outlives a client which exits at once.  The zygote answers a start
only once the child leads its own group, so a cancel that comes right after the answer
still reaches all of the job.

The artifact store's credentials (`Launch.store_credentials`) reach a job through a pipe
whose read end the job inherits, named by `STORE_CREDENTIALS_FD_ENV`; the entrypoint reads
and closes it before the step runs.  They are never in an environment, where they would
stay readable in ``/proc/PID/environ`` for the job's whole life.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from stepframe._builtin.local_zygote import (
    EXIT_SUFFIX,
    RECORD_SUFFIX,
    STORE_CREDENTIALS_FD_ENV,
    credentials_pipe,
    read_exit_status,
    write_job_record,
)
from stepframe._files import read_log_lines
from stepframe._plugins.markers import hookimpl
from stepframe._processes import is_running, kill_after, signal_job, start_ticks
from stepframe._types import (
    Component,
    ComponentKind,
    Credentials,
    Flavor,
    JobHandle,
    JobNotFound,
    JobState,
    JobStatus,
    Launch,
)

FLAVOR = "local"
# How long a cancelled step gets to exit after SIGTERM before SIGKILL.
TERMINATE_GRACE_SECONDS = 5.0
# How long to wait for the pre-warmed parent to start, and to answer a request.
ZYGOTE_START_SECONDS = 30.0
ZYGOTE_REPLY_SECONDS = 30.0
# A job of the parent that is gone without an exit status gets this long for the parent
# to write it (it does so as soon as it reaps the job) before the status counts as unknown.
EXIT_STATUS_GRACE_SECONDS = 2.0
# The entrypoint the parent can run; anything else gets a new interpreter.
ENTRYPOINT_ARGS = ("-m", "stepframe.entrypoint")
# Next to a job's log: it was stopped through cancel_step (by whichever process).
CANCELLED_SUFFIX = ".cancelled"


@attrs.frozen
class LocalOperatorSettings:
    """Per-step settings of the ``local`` operator.

    :param environment: extra variables for the step's process.
    :param fresh_interpreter: start a new Python interpreter for the step instead of
        forking the pre-warmed parent (slower to start; for steps that must not share
        anything with it, such as the string hash seed).
    """

    environment: dict[str, str] = attrs.field(factory=dict)
    fresh_interpreter: bool = False


# Our own children started with Popen, so their exit status is read and they are reaped.
_children: dict[int, subprocess.Popen[bytes]] = {}
# When a job of the parent was first seen gone without its exit status: (pid, ticks) -> t.
_gone_since: dict[tuple[int, str | None], float] = {}

# Variables a process reads when the interpreter or the dynamic loader starts; a fork
# cannot apply a change to them.
_STARTUP_PREFIXES = ("PYTHON", "LD_", "LC_", "MALLOC_")
_STARTUP_NAMES = frozenset({"LANG", "LANGUAGE", "GLIBC_TUNABLES"})
# PYTHONPATH becomes sys.path in the child; the child's streams are unbuffered anyway.
_FORK_SAFE_NAMES = frozenset({"PYTHONPATH", "PYTHONUNBUFFERED"})


def _startup_environment(env: Mapping[str, str]) -> dict[str, str]:
    return {
        name: value
        for name, value in env.items()
        if (name.startswith(_STARTUP_PREFIXES) or name in _STARTUP_NAMES)
        and name not in _FORK_SAFE_NAMES
    }


class _Zygote:
    """The client side of the pre-warmed parent; one per orchestrator process."""

    def __init__(self, module: str = "stepframe._builtin.local_zygote") -> None:
        self.module = module
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._broken = False
        self._pending = b""
        self._startup_env: dict[str, str] = {}
        self.pid: int | None = None
        self.start_ticks: str | None = None

    def _read_reply(self, timeout: float) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        fd = self._process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the local operator's zygote did not answer")
            readable, _, _ = select.select([fd], [], [], left)
            if readable:
                data = os.read(fd, 1 << 16)
                if not data:
                    raise EOFError("the local operator's zygote exited")
                self._pending += data
        line, self._pending = self._pending.split(b"\n", 1)
        reply = json.loads(line)
        if not isinstance(reply, dict):
            raise ValueError(f"unexpected reply from the zygote: {line!r}")
        return reply

    def _start(self, workdir: Path) -> None:
        env = dict(os.environ)
        with open(workdir / "local-zygote.log", "ab") as errors:
            self._process = subprocess.Popen(
                [sys.executable, "-m", self.module],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                cwd="/",
                env=env,
                start_new_session=True,  # Ctrl-C in the terminal is not for it
            )
        reply = self._read_reply(ZYGOTE_START_SECONDS)
        if reply.get("ready") is not True:
            raise ValueError(f"unexpected greeting from the zygote: {reply!r}")
        self.pid = self._process.pid
        self.start_ticks = start_ticks(self._process.pid)
        self._startup_env = _startup_environment(env)
        atexit.register(self.close)

    def _break(self) -> None:
        """Give up on the parent for the rest of this process: jobs get new interpreters."""
        self._broken = True
        process, self._process = self._process, None
        if process is None:
            return
        if self.pid is None:  # it never said it was ready, so it has no jobs: stop it
            with contextlib.suppress(OSError):
                process.kill()
        with contextlib.suppress(OSError):
            if process.stdin is not None:
                process.stdin.close()  # it exits at end of input, leaving its jobs alone
        with contextlib.suppress(OSError):
            if process.stdout is not None:
                process.stdout.close()
        threading.Thread(target=process.wait, daemon=True).start()

    def close(self) -> None:
        """Tell the parent to exit (its running jobs carry on).  Takes no lock: it runs
        at interpreter exit, possibly while a daemon thread is stuck in `spawn`."""
        process = self._process
        if process is not None and process.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                process.stdin.close()

    def ensure_started(self, workdir: Path) -> bool:
        """Start the parent unless it runs (or cannot run); whether it is usable."""
        with self._lock:
            return self._ensure_started(workdir)

    def _ensure_started(self, workdir: Path) -> bool:
        if self._broken:
            return False
        if self._process is None:
            try:
                self._start(workdir)
            except (OSError, EOFError, TimeoutError, ValueError):
                self._break()
                return False
        return True

    def spawn(
        self,
        argv: Sequence[str],
        cwd: str,
        env: Mapping[str, str],
        log: str,
        workdir: Path,
        store_credentials: str | None = None,
    ) -> dict[str, Any] | None:
        """Start a job through the parent: its reply (pid, start ticks), or None when the
        parent cannot run it and the caller must start a new interpreter instead.

        :param store_credentials: what the job reads from its credentials pipe; it goes to
            the parent through its input, never through an environment.
        """
        with self._lock:
            if not self._ensure_started(workdir):
                return None
            if _startup_environment(env) != self._startup_env:
                return None
            process = self._process
            assert process is not None and process.stdin is not None
            request: dict[str, Any] = {"argv": list(argv), "cwd": cwd, "env": dict(env), "log": log}
            if store_credentials:
                request["store_credentials"] = store_credentials
            try:
                process.stdin.write(json.dumps(request).encode() + b"\n")
                process.stdin.flush()
                reply = self._read_reply(ZYGOTE_REPLY_SECONDS)
            except (OSError, EOFError, TimeoutError, ValueError):
                self._break()
                return None
            if "pid" not in reply:
                return None  # it could not fork this time; nothing was started
            return reply

    def disown(self) -> None:
        """In a fork of the orchestrator: let go of the parent's pipes without a word.

        The fork must not keep the parent alive (it exits when nobody holds its input
        open any more) nor write into a request another thread had half sent.
        """
        process = self._process
        if process is None:
            return
        null = os.open(os.devnull, os.O_RDWR)
        try:
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError, ValueError):
                        os.dup2(null, stream.fileno())
        finally:
            os.close(null)


_zygote = _Zygote()
# Forks of the orchestrator (user code's multiprocessing) start their own if they need one.
_disowned: list[_Zygote] = []


def _after_fork_in_child() -> None:
    global _zygote
    _zygote.disown()
    _disowned.append(_zygote)  # never collected: closing its files would close others' fds
    _zygote = _Zygote()


os.register_at_fork(after_in_child=_after_fork_in_child)


def prestart(workdir: str | os.PathLike[str]) -> None:
    """Start the pre-warmed parent now, in the background, rather than at the first submit.

    For an orchestrator that knows a run has ``local`` steps: the parent's start-up
    (a Python interpreter and the entrypoint's imports) then overlaps the run's own
    preparations instead of delaying its first jobs.  Returns at once.
    """
    path = Path(workdir)

    def start() -> None:
        path.mkdir(parents=True, exist_ok=True)
        _zygote.ensure_started(path)

    threading.Thread(target=start, name="stepframe-local-prestart", daemon=True).start()


def _outcome(handle: JobHandle) -> tuple[bool, int | None]:
    """Whether the job's process has ended, and its status when known (minus a signal
    number when a signal killed it)."""
    pid = int(handle.data["pid"])
    status = read_exit_status(str(handle.data["log"]))
    if status is not None:
        return True, status
    child = _children.get(pid)
    if child is not None:
        code = child.poll()
        return code is not None, code
    ticks = handle.data.get("start_ticks")
    if is_running(pid, ticks):
        return False, None
    parent = handle.data.get("zygote")
    if parent is not None and is_running(int(parent), handle.data.get("zygote_ticks")):
        # The parent writes the status the moment it reaps the job: give it a moment.
        first = _gone_since.setdefault((pid, ticks), time.monotonic())
        if time.monotonic() - first < EXIT_STATUS_GRACE_SECONDS:
            return False, None
    return True, None


@hookimpl
def register_flavors(register):  # type: ignore[no-untyped-def]
    register(
        Flavor(
            kind=ComponentKind.STEP_OPERATOR,
            name=FLAVOR,
            settings_class=LocalOperatorSettings,
            description="runs each step in a fresh Python process, the way a container would",
        )
    )


@hookimpl
def submit_step(
    launch: Launch, operator: Component, credentials: Credentials | None
) -> JobHandle | None:
    settings = (
        launch.settings
        if isinstance(launch.settings, LocalOperatorSettings)
        else LocalOperatorSettings()
    )
    workdir = Path(launch.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = _log_path(launch)
    for left_by_an_earlier_attempt in (EXIT_SUFFIX, CANCELLED_SUFFIX):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(str(log_path) + left_by_an_earlier_attempt)
    write_job_record(str(log_path), {})  # a start is under way (see find_job)
    python_path = os.pathsep.join(p for p in (launch.code_root, os.environ.get("PYTHONPATH")) if p)
    env = {
        **os.environ,
        **settings.environment,
        **launch.environment,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": python_path,
        "STEPFRAME_CODE_ROOT": launch.code_root,
    }
    env.pop(STORE_CREDENTIALS_FD_ENV, None)  # only ever the one made for this job
    secret = None
    if launch.store_credentials is not None:
        # A job on this machine, as this user: it may use the run's store credentials,
        # handed over through a pipe (see the module's docstring).
        from stepframe._artifacts.shared import credentials_for_job

        secret = credentials_for_job(launch.store_credentials)
    data: dict[str, Any] = {"log": str(log_path)}
    reply = None
    if not settings.fresh_interpreter and tuple(launch.command[1:3]) == ENTRYPOINT_ARGS:
        reply = _zygote.spawn(
            launch.command[3:], launch.code_root, env, str(log_path), workdir, secret
        )
    if reply is not None:
        pid = int(reply["pid"])
        data.update(
            pid=pid,
            start_ticks=reply.get("start_ticks"),
            zygote=_zygote.pid,
            zygote_ticks=_zygote.start_ticks,
        )
    else:
        # The job runs on the client's own interpreter, so its packages match exactly.
        command = [sys.executable, *launch.command[1:]]
        secret_fd = credentials_pipe(secret) if secret else None
        if secret_fd is not None:
            env[STORE_CREDENTIALS_FD_ENV] = str(secret_fd)
        try:
            with open(log_path, "ab") as log:
                process = subprocess.Popen(
                    command,
                    cwd=launch.code_root,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    pass_fds=() if secret_fd is None else (secret_fd,),
                    # Its own process group: a cancel stops its children too.  Popen
                    # returns once the new program runs, so the group exists by then.
                    start_new_session=True,
                )
        finally:
            if secret_fd is not None:
                os.close(secret_fd)
        _children[process.pid] = process
        pid = process.pid
        data.update(pid=pid, start_ticks=start_ticks(pid))
        write_job_record(str(log_path), {key: data[key] for key in ("pid", "start_ticks")})
    return JobHandle(flavor=FLAVOR, operator=operator.name, job_id=str(pid), data=data)


def _log_path(launch: Launch) -> Path:
    return Path(launch.workdir) / f"{launch.job_name}.log"


@hookimpl
def find_job(
    launch: Launch, operator: Component, credentials: Credentials | None
) -> JobHandle | JobNotFound | None:
    log_path = _log_path(launch)
    try:
        record = json.loads(Path(str(log_path) + RECORD_SUFFIX).read_text(encoding="utf-8"))
    except FileNotFoundError:
        # Written before anything is started: no record, no job.
        return JobNotFound(f"no job was started on this machine for {launch.job_name}")
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or "pid" not in record:
        return None  # its start was under way when the client stopped: cannot tell
    return JobHandle(
        flavor=FLAVOR,
        operator=operator.name,
        job_id=str(record["pid"]),
        data={"log": str(log_path), **record},
    )


@hookimpl
def poll_step(
    handle: JobHandle, credentials: Credentials | None, cursor: str | None
) -> JobStatus | None:
    ended, code = _outcome(handle)
    lines, offset = read_log_lines(str(handle.data["log"]), int(cursor or 0), final=ended)
    if not ended:
        return JobStatus(JobState.RUNNING, lines, str(offset), poll_after=0.1)
    pid = int(handle.data["pid"])
    _children.pop(pid, None)
    _gone_since.pop((pid, handle.data.get("start_ticks")), None)
    if code != 0 and os.path.exists(str(handle.data["log"]) + CANCELLED_SUFFIX):
        # Stopped through cancel_step, here or in another process (`jobs stop`); a job
        # that finished its work all the same (status 0) succeeded.
        return JobStatus(JobState.CANCELLED, lines, str(offset))
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return JobStatus(
            JobState.FAILED, lines, str(offset), failure_reason=f"process killed by {name}"
        )
    # An unknown exit status (a job whose parent went away): the result manifest decides.
    # On status 1 (the step raised) the result manifest carries the remote traceback.
    state = JobState.SUCCEEDED if code in (0, None) else JobState.FAILED
    reason = None if state is JobState.SUCCEEDED else f"process exited with status {code}"
    return JobStatus(state, lines, str(offset), failure_reason=reason)


def _watch_until_stopped(pid: int, ticks: str | None) -> None:
    """Make sure the job is gone ``TERMINATE_GRACE_SECONDS`` from now (SIGKILL otherwise),
    from a process of its own: this one may exit at once (a second Ctrl-C, `jobs stop`)."""
    try:
        command = ["-m", "stepframe._processes", "kill-after", str(TERMINATE_GRACE_SECONDS)]
        watcher = subprocess.Popen(
            [sys.executable, *command, str(pid), ticks or "-"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
            start_new_session=True,  # Ctrl-C in the terminal is not for it
        )
    except OSError:  # no process to spare: watch from here, for as long as we live
        threading.Thread(
            target=kill_after, args=(TERMINATE_GRACE_SECONDS, pid, ticks), daemon=True
        ).start()
        return
    threading.Thread(target=watcher.wait, daemon=True).start()  # reaped if we live on


@hookimpl
def cancel_step(handle: JobHandle, credentials: Credentials | None) -> bool | None:
    ended, _ = _outcome(handle)
    if ended:
        return True
    pid, ticks = int(handle.data["pid"]), handle.data.get("start_ticks")
    _watch_until_stopped(pid, ticks)  # first: whatever happens to this process from here
    # Before the signal, so that whoever polls the job next -- this process or the
    # orchestrator following it from another one -- reports it cancelled, not failed.
    marker = str(handle.data["log"]) + CANCELLED_SUFFIX
    with contextlib.suppress(OSError):
        Path(marker).touch()
    signal_job(pid, ticks, signal.SIGTERM)
    return True
