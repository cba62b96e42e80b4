"""What /proc says about a process, and stopping a job's processes for sure.

Shared by the local operator, its zygote and resume.  Run as a program, it is the
watcher that kills what is left of a cancelled job once its grace period is over:

    python -m stepframe._processes kill-after SECONDS PID START_TICKS

It is a process of its own, in its own session, so that the job is stopped even when the
process that cancelled it (an orchestrator hit by a second Ctrl-C, ``stepframe jobs
stop``) exits at once.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

__all__ = ["is_running", "job_is_alive", "process_stat", "signal_job", "start_ticks"]

# How often the watcher looks whether the job is gone.
_WATCH_INTERVAL = 0.05


def process_stat(pid: int) -> tuple[str, str] | None:
    """(state letter, start ticks) of a process, from /proc; None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], fields[19]


def start_ticks(pid: int) -> str | None:
    """The process start time, to tell a process from a later one with the same PID."""
    stat = process_stat(pid)
    return stat[1] if stat else None


def is_running(pid: int, start_ticks: str | None = None) -> bool:
    """Whether the process is there and not a zombie (and, given its start ticks, is the
    one started then rather than a later process that got the same PID)."""
    state = process_stat(pid)
    if state is None:
        try:
            os.kill(pid, 0)  # no /proc: all we can tell is whether the PID exists
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    letter, started = state
    if start_ticks is not None and started != start_ticks:
        return False
    return letter not in ("Z", "X")


def _pid_is_another_process(pid: int, start_ticks: str | None) -> bool:
    """Whether ``pid`` now names a process started after the job's.

    Then the job's process group is gone too: Linux does not hand out a number that
    still names a process group.
    """
    state = process_stat(pid)
    return state is not None and start_ticks is not None and state[1] != start_ticks


def _group_has_live_members(group: int) -> bool:
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[2] == str(group) and fields[0] not in ("Z", "X"):
            return True
    return False


def job_is_alive(pid: int, start_ticks: str | None) -> bool:
    """Whether anything of a job is left: its process, or any process of the group it
    led (the step's own children outlive it there)."""
    if _pid_is_another_process(pid, start_ticks):
        return False
    return is_running(pid, start_ticks) or _group_has_live_members(pid)


def signal_job(pid: int, start_ticks: str | None, signum: int) -> bool:
    """Send ``signum`` to every process of a job that leads its own process group (its
    PID is the group's id); whether any process was there to get it.

    A job that has not called ``setsid()`` yet (a moment after its parent forked it) is
    still in its parent's group: the signal goes to the job's process itself then,
    rather than taking the job for gone.
    """
    if _pid_is_another_process(pid, start_ticks):
        return False
    try:
        os.killpg(pid, signum)
        return True
    except ProcessLookupError:
        pass
    if not is_running(pid, start_ticks):
        return False
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True


def kill_after(grace: float, pid: int, start_ticks: str | None) -> None:
    """SIGKILL what is left of the job once ``grace`` seconds are over."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not job_is_alive(pid, start_ticks):
            return
        time.sleep(_WATCH_INTERVAL)
    signal_job(pid, start_ticks, signal.SIGKILL)


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[0] != "kill-after":
        print(
            "usage: python -m stepframe._processes kill-after SECONDS PID START_TICKS",
            file=sys.stderr,
        )
        return 2
    _, grace, pid, ticks = argv
    kill_after(float(grace), int(pid), None if ticks == "-" else ticks)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
