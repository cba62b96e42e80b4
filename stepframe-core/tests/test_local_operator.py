"""The ``local`` operator's job processes: forks of one pre-warmed parent (the zygote),
each set up as ``python -m stepframe.entrypoint`` would be, with its exit status in a file
next to its log.  Real processes throughout: nothing here is mocked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from stepframe import JobHandle, JobState, JobStatus, RunCancelled, RunFailed
from stepframe._builtin import local
from stepframe._builtin.local_zygote import read_exit_status

ZYGOTE_MODULE = "stepframe._builtin.local_zygote"


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name: state, ppid, pgrp, session..."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _ignored_signals(pid: int) -> set[int]:
    """The signals process PID ignores (SIG_IGN), from the mask in /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            mask = int(line.split()[1], 16)
            return {number for number in range(1, 65) if mask & (1 << (number - 1))}
    raise AssertionError(f"/proc/{pid}/status has no SigIgn line")


def gone(pid: int) -> bool:
    """Whether a process has exited (a zombie nobody reaped yet counts as gone)."""
    fields = _stat(pid)
    return fields is None or fields[0] in ("Z", "X")


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def handles(project, run_id: str) -> dict[str, JobHandle]:
    with project.history() as history:
        jobs = history.list_jobs(run_id=run_id)
    return {job.step: job.handle for job in jobs if job.handle is not None}


WHO = """
import os
import signal
import sys

from stepframe import pipeline, step


@step(operator="local")
def who(index: int) -> dict:
    print(f"step {{index}} in {{os.getpid()}}")
    return {{
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "session": os.getsid(0),
        "group": os.getpgid(0),
        "cwd": os.getcwd(),
        "path0": sys.path[0],
        "argv": sys.argv,
        "stdin": sys.stdin.read(),
        "sigint": repr(signal.getsignal(signal.SIGINT)),
        "sigterm": repr(signal.getsignal(signal.SIGTERM)),
    }}


@pipeline
def fan(steps: int = {steps}):
    for index in range(steps):
        who.with_options(settings={{"local": {{"fresh_interpreter": {fresh}}}}})(index)
"""


def test_steps_run_in_their_own_processes_forked_by_the_zygote(project, run) -> None:
    result = run(project.load(WHO.format(steps=3, fresh=False)))
    seen = [result.output(name) for name in ("who", "who_2", "who_3")]

    pids = {s["pid"] for s in seen}
    assert len(pids) == 3 and os.getpid() not in pids
    (zygote,) = {s["ppid"] for s in seen}  # one parent for all of them...
    assert zygote != os.getpid()  # ...which is not the orchestrator...
    assert ZYGOTE_MODULE in cmdline(zygote)  # ...but the zygote it started
    zygote_stat = _stat(zygote)
    assert zygote_stat is not None, "the zygote is gone"
    assert int(zygote_stat[1]) == os.getpid()
    for step in seen:
        # Set up as `python -m stepframe.entrypoint URI` in the project would be.
        assert step["session"] == step["group"] == step["pid"]
        assert step["cwd"] == step["path0"] == str(project.root)
        assert step["argv"][0].endswith(os.path.join("stepframe", "entrypoint.py"))
        assert step["argv"][1].startswith("file://") and step["argv"][1].endswith("launch.json")
        assert step["stdin"] == ""
        assert "default_int_handler" in step["sigint"]
        assert step["sigterm"] == "<Handlers.SIG_DFL: 0>"
    assert "who | step 0 in" in run.output  # the logs still stream

    # Each job's exit status is in a file next to its log, written by the job itself.
    for handle in handles(project, result.run_id).values():
        assert handle.data["zygote"] == zygote
        assert read_exit_status(handle.data["log"]) == 0


def test_a_fresh_interpreter_on_request(project, run) -> None:
    result = run(project.load(WHO.format(steps=2, fresh=True)))
    for name in ("who", "who_2"):
        step = result.output(name)
        assert step["ppid"] == os.getpid()  # started by the orchestrator itself
        assert step["session"] == step["pid"]
        assert step["cwd"] == str(project.root)
    for handle in handles(project, result.run_id).values():
        assert "zygote" not in handle.data


DYING = """
import os
import signal
import sys

from stepframe import pipeline, step


@step(operator="local")
def exits() -> int:
    print("about to leave", flush=True)
    os._exit(3)


@step(operator="local")
def killed() -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return 1


@step(operator="local")
def quits() -> int:
    sys.exit(4)


@step(operator="local")
def fine() -> int:
    return 1


@pipeline
def dying():
    exits()
    killed()
    quits()
    fine()
"""


def test_jobs_that_die_fail_with_the_reason(project, run) -> None:
    with pytest.raises(RunFailed) as caught:
        run(project.load(DYING))
    failures = {name: str(error) for name, error in caught.value.failures.items()}
    assert failures["exits"] == (
        "step 'exits' failed: JobFailed: job failed: process exited with status 3"
    )
    assert failures["killed"] == (
        "step 'killed' failed: JobFailed: job failed: process killed by SIGKILL"
    )
    assert failures["quits"].startswith("step 'quits' failed: SystemExit")  # it raised
    assert "fine" not in failures
    assert "exits | about to leave" in run.output
    # The zygote wrote the status of the jobs that could not write it themselves.
    found = {
        step: read_exit_status(h.data["log"])
        for step, h in handles(project, caught.value.run_id).items()
    }
    assert found == {"exits": 3, "killed": -signal.SIGKILL, "quits": 1, "fine": 0}


def test_the_exit_file_decides_the_status(project) -> None:
    """poll_step believes ``LOG.exit`` over anything else, for a job of any process."""
    log = project.root / "job.log"
    log.write_text("last words\n")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)
    handle = JobHandle(
        flavor="local",
        operator="local",
        job_id=str(pid),
        data={"pid": pid, "log": str(log), "start_ticks": "-1"},  # never a live one
    )

    def poll() -> JobStatus:
        status = local.poll_step(handle, None, None)
        assert status is not None, "the local operator knows its own jobs"
        return status

    (project.root / "job.log.exit").write_text("5\n")
    status = poll()
    assert status.state is JobState.FAILED
    assert status.failure_reason == "process exited with status 5"
    assert status.log_lines == ("last words",)

    (project.root / "job.log.exit").write_text(f"-{int(signal.SIGTERM)}\n")
    assert poll().failure_reason == "process killed by SIGTERM"

    (project.root / "job.log.exit").write_text("0\n")
    assert poll().state is JobState.SUCCEEDED

    # No status anywhere and the process gone: unknown, the result manifest decides.
    (project.root / "job.log.exit").unlink()
    status = poll()
    assert status.state is JobState.SUCCEEDED and status.failure_reason is None


IMPORTS = """
import os

from stepframe import pipeline, step

with open({log!r}, "a") as _log:
    _log.write(f"{{os.getpid()}}\\n")


@step(operator="local")
def where(index: int) -> list:
    return [os.getpid(), os.getppid()]


@pipeline
def imports():
    for index in range(3):
        where(index)
"""


def test_user_modules_are_imported_once_per_step_and_never_in_the_zygote(project, run) -> None:
    log = project.root / "imported-by.txt"
    result = run(project.load(IMPORTS.format(log=str(log))))
    steps = [result.output(name) for name in ("where", "where_2", "where_3")]
    importers = [int(line) for line in log.read_text().split()]
    # The orchestrator loaded the pipeline; each step's process imported it once more.
    assert sorted(importers) == sorted([os.getpid(), *(pid for pid, _ in steps)])
    (zygote,) = {ppid for _, ppid in steps}
    assert zygote not in importers


ENVIRONMENT = """
import os
import sys

from stepframe import pipeline, step


@step(operator="local", settings={"local": {"environment": {"GREETING": "hello"}}})
def greet() -> list:
    import helper_on_pythonpath

    return [
        os.environ.get("GREETING"),
        os.environ.get("STEPFRAME_CODE_ROOT"),
        helper_on_pythonpath.VALUE,
        os.getppid(),
    ]


@step(operator="local", settings={"local": {"environment": {"PYTHONHASHSEED": "0"}}})
def hashes() -> list:
    return [sys.flags.hash_randomization, os.getppid()]


@pipeline
def environment():
    greet()
    hashes()
"""


def test_environment_settings_reach_the_step(project, run, tmp_path, monkeypatch) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "helper_on_pythonpath.py").write_text("VALUE = 'found on PYTHONPATH'\n")
    monkeypatch.setenv("PYTHONPATH", str(extra))
    result = run(project.load(ENVIRONMENT))
    greeting, code_root, value, parent = result.output("greet")
    assert (greeting, code_root) == ("hello", str(project.root))
    assert value == "found on PYTHONPATH"  # sys.path follows the job's PYTHONPATH...
    assert parent != os.getpid()  # ...in a fork of the zygote
    # A variable read when the interpreter starts cannot be given to a fork: that step
    # gets a new interpreter, which honours it.
    assert result.output("hashes") == [0, os.getpid()]


SLOW = """
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from stepframe import pipeline, step


@step(operator="local")
def wait_forever() -> int:
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    pids = {{"step": os.getpid(), "helper": helper.pid, "zygote": os.getppid()}}
    Path("pids.json.tmp").write_text(json.dumps(pids))
    os.replace("pids.json.tmp", "pids.json")
    print("started", flush=True)
    time.sleep({sleep})
    return 1


@pipeline
def slow():
    wait_forever()
"""


def _wait_for_file(path: Path, timeout: float = 30) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            try:
                return json.loads(path.read_text())
            except ValueError:
                pass  # half written
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def test_cancel_stops_the_step_and_its_own_children(project, cli_popen) -> None:
    process = cli_popen("run", str(project.write(SLOW.format(sleep=60))))
    pids = _wait_for_file(project.root / "pids.json")
    try:
        assert not gone(pids["step"]) and not gone(pids["helper"])
        assert ZYGOTE_MODULE in cmdline(pids["zygote"])
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 130
        assert wait_gone(pids["step"], timeout=5)
        assert wait_gone(pids["helper"], timeout=5)  # the step's own child went too
        # The orchestrator is gone, and with it the zygote.
        assert wait_gone(pids["zygote"], timeout=5)
    finally:
        for pid in pids.values():
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)


def test_cancel_in_process_stops_a_running_job(project, run) -> None:
    """The operator's cancel_step, from the orchestrator's own process."""

    failures: list[BaseException] = []

    def interrupt_when_started() -> None:
        try:
            _wait_for_file(project.root / "pids.json")
        except BaseException as error:  # seen by the test, not lost with this thread
            failures.append(error)
        os.kill(os.getpid(), signal.SIGINT)

    interrupter = threading.Thread(target=interrupt_when_started, daemon=True)
    interrupter.start()
    with pytest.raises(RunCancelled):
        run(project.load(SLOW.format(sleep=60)))
    interrupter.join(timeout=30)
    assert not interrupter.is_alive(), "the interrupting thread is stuck"
    assert failures == []
    pids = json.loads((project.root / "pids.json").read_text())
    try:
        assert wait_gone(pids["step"], timeout=5)
        assert wait_gone(pids["helper"], timeout=5)
        assert not gone(pids["zygote"])  # the orchestrator lives on, and so does its zygote
    finally:
        for name in ("step", "helper"):
            if not gone(pids[name]):
                os.kill(pids[name], signal.SIGKILL)


def test_the_zygote_exits_with_the_orchestrator(project, cli) -> None:
    result = cli("run", str(project.write(SLOW.format(sleep=0))))
    assert result.returncode == 0, result.stdout + result.stderr
    pids = json.loads((project.root / "pids.json").read_text())
    os.kill(pids["helper"], signal.SIGKILL)
    # The orchestrator finished: its zygote saw the end of its input and went too.
    assert wait_gone(pids["zygote"], timeout=5)


def test_ctrl_c_in_the_terminal_does_not_reach_the_zygote(project, run) -> None:
    result = run(project.load(WHO.format(steps=1, fresh=False)))
    zygote = result.output("who")["ppid"]
    fields = _stat(zygote)
    assert fields is not None
    assert int(fields[3]) == zygote  # its own session: no terminal's Ctrl-C lands there
    # And it ignores one sent to it anyway: the kernel drops an ignored signal as it is
    # sent, so the zygote is alive right after, with nothing to wait for.
    assert signal.SIGINT in _ignored_signals(zygote)
    os.kill(zygote, signal.SIGINT)
    assert not gone(zygote)
    again = run(project.load(WHO.format(steps=1, fresh=False)))
    assert again.output("who")["ppid"] == zygote  # the same zygote serves later runs


def test_without_a_zygote_steps_get_a_fresh_interpreter(project, run, monkeypatch) -> None:
    # One that cannot start: the operator says nothing and starts interpreters instead.
    monkeypatch.setattr(local, "_zygote", local._Zygote(module="stepframe_no_such_module"))
    pipe = project.load(WHO.format(steps=2, fresh=False))
    result = run(pipe)
    assert {result.output(name)["ppid"] for name in ("who", "who_2")} == {os.getpid()}

    # One that dies after a while: later steps get interpreters too.
    zygote = local._Zygote()
    monkeypatch.setattr(local, "_zygote", zygote)
    assert run(pipe, use_cache=False).output("who")["ppid"] == zygote.pid
    assert zygote.pid is not None
    os.kill(zygote.pid, signal.SIGKILL)
    assert wait_gone(zygote.pid, timeout=5)
    result = run(pipe, use_cache=False)
    assert {result.output(name)["ppid"] for name in ("who", "who_2")} == {os.getpid()}


FORKING = """
import os
import time

from stepframe import pipeline, step


@step
def fork() -> int:
    child = os.fork()
    if child == 0:
        time.sleep(30)
        os._exit(0)
    return child


@pipeline
def forking():
    fork()
"""


def test_a_fork_of_the_orchestrator_does_not_hold_the_zygote(project, run, monkeypatch) -> None:
    zygote = local._Zygote()
    monkeypatch.setattr(local, "_zygote", zygote)
    assert run(project.load(WHO.format(steps=1, fresh=False))).output("who")["ppid"] == zygote.pid
    # An in-process step forks the orchestrator; the fork lets go of the zygote's pipes...
    fork = run(project.load(FORKING)).output("fork")
    try:
        # ...so while it lives on, closing ours is still the end of the zygote's input.
        zygote.close()
        assert zygote.pid is not None and wait_gone(zygote.pid, timeout=5)
        assert not gone(fork)
    finally:
        os.kill(fork, signal.SIGKILL)
        os.waitpid(fork, 0)


def test_prestart_starts_the_zygote_ahead_of_the_first_step(project, run, monkeypatch) -> None:
    zygote = local._Zygote()
    monkeypatch.setattr(local, "_zygote", zygote)
    local.prestart(project.state_dir / "jobs")  # returns at once; the zygote starts behind
    deadline = time.monotonic() + 30
    while zygote.pid is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert zygote.pid is not None and ZYGOTE_MODULE in cmdline(zygote.pid)
    result = run(project.load(WHO.format(steps=1, fresh=False)))
    assert result.output("who")["ppid"] == zygote.pid  # the first step found it ready
    zygote.close()
    assert wait_gone(zygote.pid, timeout=5)
