"""Ctrl-C and SIGTERM: running steps get ``cancel_step``, the run is recorded as
cancelled, the process exits 130 within seconds, and a second Ctrl-C exits at once."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from stepframe import ComponentKind, Flavor, JobHandle, JobState, JobStatus, RunCancelled, hookimpl

EXIT_INTERRUPTED = 130

SLOW = """
import os
import signal
import time
from pathlib import Path

from stepframe import pipeline, step


@step
def quick() -> int:
    return 1


@step(operator="local")
def wait_forever(x: int) -> int:
    if {ignore_term}:
        # SIGTERM ignored, saying that it came: the test waits for this file.
        signal.signal(signal.SIGTERM, lambda signum, frame: Path("step.term").touch())
    Path("step.pid").write_text(str(os.getpid()))
    print("started", flush=True)
    time.sleep(60)
    return x


@step
def after(x: int) -> int:
    return x


@pipeline
def slow():
    after(wait_forever(quick()))
"""


class Lines:
    """The lines a process prints, read on a thread so that waiting can time out."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        assert process.stdout is not None
        stream = process.stdout

        def pump() -> None:
            for line in stream:
                self._queue.put(line.rstrip("\n"))
            self._queue.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def wait_for(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            if line is None:
                break
            self.seen.append(line)
            if text in line:
                return
        raise AssertionError(f"{text!r} not printed; got:\n" + "\n".join(self.seen))

    def rest(self, timeout: float = 5) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            if line is None:
                break
            self.seen.append(line)
        return "\n".join(self.seen)


def gone(pid: int) -> bool:
    """Whether a process has exited (a zombie nobody reaped yet counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def wait_for_file(path: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def started_run(project, cli_popen):
    """Start ``stepframe run`` on the slow pipeline; return it once its step started."""
    children: list[int] = []

    def start(ignore_term: bool = False) -> tuple[subprocess.Popen[str], Lines, int]:
        path = project.write(SLOW.format(ignore_term=ignore_term))
        process = cli_popen("run", str(path))
        lines = Lines(process)
        lines.wait_for("wait_forever | started")
        pid = int((project.root / "step.pid").read_text())
        children.append(pid)
        return process, lines, pid

    yield start
    for pid in children:  # never leave a step process behind, whatever the test did
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)


def _run_record(project):
    with project.history() as history:
        (run,) = history.list_runs()
        steps = {s.step: s.status for s in history.get_steps(run.run_id)}
        jobs = {j.step: j.state for j in history.list_jobs(run_id=run.run_id)}
    return run, steps, jobs


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_cancels_the_run_and_exits_130(project, started_run, signum) -> None:
    process, lines, step_pid = started_run()
    assert not gone(step_pid)

    process.send_signal(signum)
    code = process.wait(timeout=8)  # the step alone would sleep for a minute

    output = lines.rest()
    assert code == EXIT_INTERRUPTED, output
    assert f"received {signal.Signals(signum).name}: cancelling running steps" in output
    assert "[wait_forever] cancelled" in output
    assert "Traceback" not in output
    # The run waited for its step's process to stop before it exited: none is left behind.
    assert gone(step_pid)
    run, steps, jobs = _run_record(project)
    assert run.status == "cancelled"
    assert run.ended_at is not None
    assert steps == {"quick": "succeeded", "wait_forever": "cancelled", "after": "cancelled"}
    assert jobs["wait_forever"] in ("failed", "cancelled")  # as the job itself ended


def test_a_second_interrupt_exits_at_once(project, started_run) -> None:
    # The step ignores SIGTERM, so the first Ctrl-C has to wait for it to be killed.
    process, lines, step_pid = started_run(ignore_term=True)
    process.send_signal(signal.SIGINT)
    lines.wait_for("cancelling running steps")
    term = project.root / "step.term"
    assert wait_for_file(term, timeout=20), "the cancel's SIGTERM never reached the step"
    assert process.poll() is None  # still waiting for the step to stop
    assert not gone(step_pid)  # which ignored SIGTERM

    process.send_signal(signal.SIGINT)
    code = process.wait(timeout=5)
    assert code == EXIT_INTERRUPTED
    # At once: the step, which only the SIGKILL at the end of its grace period stops, is
    # still running -- the first interrupt alone would have waited for that.
    assert not gone(step_pid)


def test_an_interrupt_before_the_run_starts_exits_130_quietly(project, cli_popen) -> None:
    path = project.write(
        """
        import time

        print("importing", flush=True)
        time.sleep(30)
        """
    )
    process = cli_popen("run", str(path))
    lines = Lines(process)
    lines.wait_for("importing")
    process.send_signal(signal.SIGINT)
    # A bound against a hang, not a speed check: on CI's loaded machine (three lanes of
    # sessions at once, load 12) the exit once took more than 5 s.
    assert process.wait(timeout=60) == EXIT_INTERRUPTED
    output = lines.rest()
    assert "stepframe: interrupted" in output
    assert "Traceback" not in output
    assert project.run_rows() == []


# ---- in process: what the orchestrator does on the first interrupt -----------------------


class Stubborn:
    """An operator whose jobs stop a while after ``cancel_step``; it interrupts its own run.

    The interrupt comes from inside a poll, so it always lands while the run goes.
    """

    flavor = "stubborn"

    def __init__(self, stop_after: float) -> None:
        self.stop_after = stop_after
        self.polls = 0
        self.polls_after_cancel = 0
        self.cancelled_at: float | None = None
        self.cancelled: list[str] = []
        self.lock = threading.Lock()

    @hookimpl
    def register_flavors(self, register):
        register(Flavor(kind=ComponentKind.STEP_OPERATOR, name=self.flavor))

    @hookimpl
    def submit_step(self, launch, operator, credentials):
        if operator.flavor != self.flavor:
            return None
        return JobHandle(flavor=self.flavor, operator=operator.name, job_id=launch.step)

    @hookimpl
    def poll_step(self, handle, credentials, cursor):
        if handle.flavor != self.flavor:
            return None
        with self.lock:
            self.polls += 1
            if self.cancelled_at is not None:
                self.polls_after_cancel += 1
                if time.monotonic() - self.cancelled_at > self.stop_after:
                    return JobStatus(JobState.CANCELLED)
            elif self.polls == 3:
                os.kill(os.getpid(), signal.SIGINT)
        return JobStatus(JobState.RUNNING, poll_after=0.05)

    @hookimpl
    def cancel_step(self, handle, credentials):
        if handle.flavor != self.flavor:
            return None
        with self.lock:
            self.cancelled.append(handle.job_id)
            self.cancelled_at = self.cancelled_at or time.monotonic()
        return True


TWO_BRANCHES = """
from stepframe import pipeline, step


@step(operator="stubborn")
def left() -> int:
    return 1


@step(operator="stubborn")
def right() -> int:
    return 2


@step
def join(a: int, b: int) -> int:
    return a + b


@pipeline
def branches():
    join(left(), right())
"""


def test_every_running_step_gets_cancel_step(project, make_plugins, run) -> None:
    plugin = Stubborn(stop_after=1.0)
    plugins = make_plugins(("stubborn", plugin))
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(RunCancelled) as caught:
        run(project.load(TWO_BRANCHES), plugins=plugins)
    assert sorted(plugin.cancelled) == ["left", "right"]
    assert signal.getsignal(signal.SIGINT) is handler  # the run's handler is gone again
    assert f"run {caught.value.run_id} was cancelled" == str(caught.value)
    # While the jobs stop, they are polled at a steady pace, not in a busy loop.
    assert plugin.polls_after_cancel < 100  # 2 jobs, 1 s, poll_after 0.05: about 40
    with project.history() as history:
        assert history.get_run(caught.value.run_id).status == "cancelled"
        steps = {s.step: s.status for s in history.get_steps(caught.value.run_id)}
        jobs = {j.step: j.state for j in history.list_jobs(run_id=caught.value.run_id)}
    assert steps == {"left": "cancelled", "right": "cancelled", "join": "cancelled"}
    assert jobs == {"left": "cancelled", "right": "cancelled"}
