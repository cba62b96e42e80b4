"""A signal at any moment of a ``local`` job's start stops every process of that job.

Each trial runs ``stepframe run`` in its own process on a pipeline of two ``local``
steps that each start a child (``sleep``) and then wait.  A crash point
(`stepframe._crashpoints`) holds a job's start at one point -- in the zygote before it
forks, or in the new child before it calls ``setsid()`` -- so that SIGINT or SIGTERM
lands exactly in that window rather than by timing luck; the last trials signal jobs
that already run.  Once the orchestrator has exited, no process of any job it started
may be left: not the job's own (known from the ledger's handle, with its start ticks,
and from the crash point's marker), not the one the step started; and the ledger lists
every job ``cancelled``.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from stepframe._builtin.local_zygote import BEFORE_FORK, BEFORE_SETSID
from stepframe._processes import is_running, process_stat

EXIT_INTERRUPTED = 130

PIPELINE = """
import os
import subprocess
import time
from pathlib import Path

from stepframe import pipeline, step

SETTINGS = {{"local": {{"fresh_interpreter": {fresh}}}}}


def _linger(index: int) -> int:
    child = subprocess.Popen(["sleep", "60"])
    pids = Path({pids!r})
    pids.mkdir(exist_ok=True)
    (pids / f"{{os.getpid()}}-{{child.pid}}").touch()
    print("started", flush=True)
    time.sleep(60)
    return index


@step(operator="local", settings=SETTINGS)
def left() -> int:
    return _linger(0)


@step(operator="local", settings=SETTINGS)
def right() -> int:
    return _linger(1)


@pipeline
def race():
    left()
    right()
"""

# (where the job start is held, signal, fresh interpreter)
TRIALS = [
    (BEFORE_FORK, signal.SIGINT, False),
    (BEFORE_FORK, signal.SIGTERM, False),
    (BEFORE_SETSID, signal.SIGINT, False),
    (BEFORE_SETSID, signal.SIGTERM, False),
    (None, signal.SIGINT, False),
    (None, signal.SIGTERM, True),
]


def _wait_for(found, what: str, timeout: float = 30.0, fail: bool = True):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.02)
    if fail:
        raise AssertionError(f"timed out waiting for {what}")
    return None


class Lines:
    """What a process prints, read on a thread so that waiting for a line can time out."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        stream = process.stdout
        assert stream is not None

        def pump() -> None:
            for line in stream:
                self._queue.put(line.rstrip("\n"))
            self._queue.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def wait_for(self, text: str | None, timeout: float = 30) -> str:
        """Until a line has ``text`` (or, for None, the end); everything seen so far."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            if line is None:
                break
            self.seen.append(line)
            if text is not None and text in line:
                return "\n".join(self.seen)
        if text is None:
            return "\n".join(self.seen)
        raise AssertionError(f"{text!r} not printed; got:\n" + "\n".join(self.seen))


def _with_ticks(pids: Iterable[int]) -> set[tuple[int, str | None]]:
    """(pid, start ticks) of those of ``pids`` that are there now."""
    stats = {pid: process_stat(pid) for pid in pids}
    return {(pid, stat[1]) for pid, stat in stats.items() if stat is not None}


def _ledger_jobs(project) -> set[tuple[int, str | None]]:
    """(pid, start ticks) of every local job the ledger has a handle of."""
    with project.history() as history:
        jobs = history.list_jobs()
    return {
        (int(job.handle.data["pid"]), job.handle.data.get("start_ticks"))
        for job in jobs
        if job.handle is not None and job.handle.flavor == "local"
    }


def _still_running(processes: set[tuple[int, str | None]]) -> list[int]:
    """Those of ``processes`` that are still there, after a moment to be reaped."""
    deadline = time.monotonic() + 5.0
    while True:
        left = [pid for pid, ticks in processes if is_running(pid, ticks)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("hold", "signum", "fresh"),
    TRIALS,
    ids=[
        f"{hold or 'running'}-{signum.name}{'-fresh' if fresh else ''}"
        for hold, signum, fresh in TRIALS
    ],
)
def test_a_signal_during_a_local_jobs_start_stops_all_of_it(
    project, cli_popen, hold, signum, fresh, tmp_path: Path
) -> None:
    held = tmp_path / "held"
    held.mkdir()
    pids = tmp_path / "pids"
    path = project.write(PIPELINE.format(fresh=fresh, pids=str(pids)))
    env = {"STEPFRAME_CRASH_AT": hold, "STEPFRAME_CRASH_DIR": str(held)} if hold else {}
    process = cli_popen("run", str(path), env=env)
    lines = Lines(process)
    seen: set[tuple[int, str | None]] = set()
    try:
        if hold:
            # A job start is waiting at the point: the signal lands inside the window.
            marker = held / f"{hold}.reached"
            holder = int(_wait_for(lambda: marker.exists() and marker.read_text(), str(marker)))
            if hold == BEFORE_SETSID:  # a job's own process, not yet leading its group
                seen.update(_with_ticks([holder]))
        else:
            lines.wait_for("| started")
        process.send_signal(signum)
        lines.wait_for("cancelling running steps")
        if hold == BEFORE_SETSID:
            # Let the orchestrator's cancel reach a job that was handed out before it
            # led its own group (the window of the bug: local's cancel_step marks the job
            # before it signals).  Where job starts are answered only once the group
            # exists, no cancel can come before the release: stop waiting after a while.
            jobs = project.state_dir / "jobs"
            _wait_for(lambda: list(jobs.glob("*.cancelled")), "a cancel", timeout=3.0, fail=False)
        (held / f"{hold}.release").touch()
        code = process.wait(timeout=60)
        output = lines.wait_for(None)
        assert code == EXIT_INTERRUPTED, output

        if pids.exists():
            for name in pids.iterdir():  # each step's process and the child it started
                seen.update(_with_ticks(map(int, name.name.split("-"))))
        seen.update(_ledger_jobs(project))
        assert _still_running(seen) == [], (
            f"processes of cancelled jobs outlived the run:\n{output}"
        )
        with project.history() as history:
            states = [job.state for job in history.list_jobs()]
        assert states and set(states) == {"cancelled"}, (states, output)
    finally:
        (held / f"{hold}.release").touch()
        for pid, ticks in seen:
            if is_running(pid, ticks):
                os.kill(pid, signal.SIGKILL)


STUBBORN = """
import os
import signal
import time
from pathlib import Path

from stepframe import pipeline, step


@step(operator="local")
def stubborn() -> int:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    Path({pid_file!r}).write_text(str(os.getpid()))
    print("started", flush=True)
    time.sleep(60)
    return 1


@pipeline
def deaf():
    stubborn()
"""


def test_a_job_deaf_to_sigterm_is_killed_when_its_orchestrator_exits_at_once(
    project, cli_popen, tmp_path: Path
) -> None:
    """A second Ctrl-C ends the orchestrator at once, inside the job's grace period: the
    SIGKILL that ends the grace period must not die with it."""
    from stepframe._builtin.local import TERMINATE_GRACE_SECONDS

    pid_file = tmp_path / "step.pid"
    process = cli_popen("run", str(project.write(STUBBORN.format(pid_file=str(pid_file)))))
    lines = Lines(process)
    job: set[tuple[int, str | None]] = set()
    try:
        lines.wait_for("stubborn | started")
        job.update(_with_ticks([int(pid_file.read_text())]))
        process.send_signal(signal.SIGINT)
        jobs = project.state_dir / "jobs"
        _wait_for(lambda: list(jobs.glob("*.cancelled")), "local's cancel_step")
        process.send_signal(signal.SIGINT)  # exits at once
        assert process.wait(timeout=30) == EXIT_INTERRUPTED
        deadline = time.monotonic() + TERMINATE_GRACE_SECONDS + 10
        while [pid for pid, ticks in job if is_running(pid, ticks)]:
            assert time.monotonic() < deadline, "the job outlived its grace period"
            time.sleep(0.05)
    finally:
        for pid, ticks in job:
            if is_running(pid, ticks):
                os.kill(pid, signal.SIGKILL)
