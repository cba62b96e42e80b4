"""The ``local`` step operator: each step in a fresh Python process.

The process runs ``python -m stepframe.entrypoint MANIFEST_URI``, exactly what a
container runs, so the whole remote path (manifests, artifact store, imports by module
name, remote tracebacks) is exercised without Docker.  Logs go to a file under the
project's ``.stepframe/jobs/`` so that another orchestrator process can re-attach.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import attrs

from stepframe._plugins.markers import hookimpl
from stepframe._types import (
    Component,
    ComponentKind,
    Credentials,
    Flavor,
    JobHandle,
    JobState,
    JobStatus,
    Launch,
)

FLAVOR = "local"
# How long a cancelled step gets to exit after SIGTERM before SIGKILL.
TERMINATE_GRACE_SECONDS = 5.0


@attrs.frozen
class LocalOperatorSettings:
    """Per-step settings of the ``local`` operator.

    :param environment: extra variables for the step's process.
    """

    environment: dict[str, str] = attrs.field(factory=dict)


# Our own children, so their exit status is read and they are reaped.
_children: dict[int, subprocess.Popen[bytes]] = {}


def _start_ticks(pid: int) -> str | None:
    """The process start time, to tell a re-attached PID from a recycled one."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(handle: JobHandle) -> tuple[bool, int | None]:
    """Whether the job's process still runs, and its exit code when we know it."""
    pid = int(handle.data["pid"])
    child = _children.get(pid)
    if child is not None:
        code = child.poll()
        return code is None, code
    ticks = handle.data.get("start_ticks")
    if ticks is not None:
        return _start_ticks(pid) == ticks, None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False, None
    except PermissionError:
        return True, None
    return True, None


def _read_lines(path: str, offset: int, final: bool) -> tuple[tuple[str, ...], int]:
    """Complete lines from ``offset`` on (and a trailing partial one once ``final``)."""
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            data = log.read()
    except FileNotFoundError:
        return (), offset
    if not final:
        cut = data.rfind(b"\n") + 1
        data = data[:cut]
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return tuple(lines), offset + len(data)


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
    if operator.flavor != FLAVOR:
        return None
    settings = (
        launch.settings
        if isinstance(launch.settings, LocalOperatorSettings)
        else LocalOperatorSettings()
    )
    workdir = Path(launch.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{launch.job_name}.log"
    python_path = os.pathsep.join(p for p in (launch.code_root, os.environ.get("PYTHONPATH")) if p)
    env = {
        **os.environ,
        **settings.environment,
        **launch.environment,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": python_path,
        "STEPFRAME_CODE_ROOT": launch.code_root,
    }
    # The job runs on the client's own interpreter, so its packages match exactly.
    command = [sys.executable, *launch.command[1:]]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            cwd=launch.code_root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group, so cancel stops its children too
        )
    _children[process.pid] = process
    return JobHandle(
        flavor=FLAVOR,
        operator=operator.name,
        job_id=str(process.pid),
        data={"pid": process.pid, "log": str(log_path), "start_ticks": _start_ticks(process.pid)},
    )


@hookimpl
def poll_step(
    handle: JobHandle, credentials: Credentials | None, cursor: str | None
) -> JobStatus | None:
    if handle.flavor != FLAVOR:
        return None
    alive, code = _alive(handle)
    lines, offset = _read_lines(str(handle.data["log"]), int(cursor or 0), final=not alive)
    if alive:
        return JobStatus(JobState.RUNNING, lines, str(offset), poll_after=0.1)
    _children.pop(int(handle.data["pid"]), None)
    if code is not None and code < 0:
        killed = f"process killed by {signal.Signals(-code).name}"
        return JobStatus(JobState.FAILED, lines, str(offset), failure_reason=killed)
    # A re-attached process's exit code is unknown: the result manifest decides.  On
    # status 1 (the step raised) the result manifest carries the remote traceback.
    state = JobState.SUCCEEDED if code in (0, None) else JobState.FAILED
    reason = None if state is JobState.SUCCEEDED else f"process exited with status {code}"
    return JobStatus(state, lines, str(offset), failure_reason=reason)


def _terminate(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + TERMINATE_GRACE_SECONDS
    child = _children.get(pid)
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            return
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@hookimpl
def cancel_step(handle: JobHandle, credentials: Credentials | None) -> bool | None:
    if handle.flavor != FLAVOR:
        return None
    alive, _ = _alive(handle)
    if alive:
        threading.Thread(target=_terminate, args=(int(handle.data["pid"]),), daemon=True).start()
    return True
