"""The built-in operators: ``inprocess`` and ``local`` run the same pipeline the same way,
stream step logs, and report a step that raises with its traceback from where it ran."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys

import pytest

from stepframe import RunFailed, StepFailed

OPERATORS = ["inprocess", "local"]

SAME = """
import os
import sys

from stepframe import pipeline, step


@step
def load(n: int) -> list[float]:
    print(f"loading {n} values")
    return [float(i) for i in range(n)]


@step(outputs=["mean", "spread"])
def stats(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    print(f"mean is {mean}", file=sys.stderr)
    return mean, max(values) - min(values)


@step
def report(mean: float, spread: float, values: list[float]) -> dict[str, float]:
    print("first line")
    print("second line")
    return {"mean": mean, "spread": spread, "count": float(len(values))}


@step
def whoami() -> int:
    print(f"pid {os.getpid()}")
    return os.getpid()


@pipeline
def same(operator: str):
    values = load.with_options(operator=operator)(5)
    mean, spread = stats.with_options(operator=operator)(values)
    report.with_options(operator=operator)(mean, spread, values)
    whoami.with_options(operator=operator)()
"""


@pytest.fixture
def same(project):
    return project.module(SAME).same


def test_both_operators_give_the_same_outputs(same, run) -> None:
    outputs = {}
    for operator in OPERATORS:
        result = run(same.compile(operator))
        assert result.status == "succeeded"
        assert {o.operator for o in result.steps.values()} == {operator}
        outputs[operator] = (
            result.output("load"),
            result.output("stats", "mean"),
            result.output("stats", "spread"),
            result.output("report"),
        )
    assert outputs["inprocess"] == outputs["local"]
    assert outputs["local"] == (
        [0.0, 1.0, 2.0, 3.0, 4.0],
        2.0,
        4.0,
        {"mean": 2.0, "spread": 4.0, "count": 5.0},
    )


def test_local_runs_the_step_in_another_process(same, run) -> None:
    assert run(same.compile("inprocess")).output("whoami") == os.getpid()
    local_pid = run(same.compile("local")).output("whoami")
    assert isinstance(local_pid, int) and local_pid != os.getpid()


@pytest.mark.parametrize("operator", OPERATORS)
def test_step_logs_are_streamed_prefixed_by_step_name(same, run, operator, capsys) -> None:
    result = run(same.compile(operator))
    lines = run.output.splitlines()
    assert "load | loading 5 values" in lines
    assert "stats | mean is 2.0" in lines  # stderr too
    first, second = lines.index("report | first line"), lines.index("report | second line")
    assert first < second
    pid = result.output("whoami")
    assert f"whoami | pid {pid}" in lines
    assert "[whoami] succeeded" in run.output
    # What a step printed went to the run's console, not to the terminal directly.
    assert "loading 5 values" not in capsys.readouterr().out


FAILING = """
import time
from pathlib import Path

from stepframe import pipeline, step


class DataProblem(Exception):
    pass


@step
def source() -> int:
    return 1


def deep_helper(value):
    Path("explode.failing").touch()  # slow_branch waits for this
    raise DataProblem(f"value {value} is cursed")


@step
def explode(value: int) -> int:
    deep_helper(value)
    return value


@step
def after_explode(value: int) -> int:
    return value


@step
def after_that(value: int) -> int:
    return value


@step
def slow_branch(value: int) -> int:
    \"\"\"Still running when explode fails: it waits (a while at most) until explode fails.\"\"\"
    deadline = time.time() + 60
    while not Path("explode.failing").exists() and time.time() < deadline:
        time.sleep(0.02)
    return value * 10


@step
def after_slow(value: int) -> int:
    return value + 1


@pipeline
def failing(operator: str = "inprocess"):
    value = source()
    bad = explode.with_options(operator=operator)(value)
    after_that(after_explode(bad))
    after_slow(slow_branch.with_options(operator=operator)(value))
"""


@pytest.mark.parametrize("operator", OPERATORS)
def test_a_raising_step_fails_with_its_remote_traceback(project, run, operator) -> None:
    failing = project.module(FAILING).failing
    with pytest.raises(RunFailed) as caught:
        run(failing.compile(operator))
    error = caught.value
    assert list(error.failures) == ["explode"]
    failure = error.failures["explode"]
    assert isinstance(failure, StepFailed)
    assert failure.error_type.endswith("DataProblem")
    assert failure.message == "value 1 is cursed"
    text = str(failure)
    assert "Traceback from where the step ran" in text
    assert "in explode" in text and "in deep_helper" in text
    assert "DataProblem: value 1 is cursed" in text
    # The backend's own reason comes with the traceback where the job failed as a whole
    # (an in-process thread ends normally either way).
    backend_reason = "The job's backend reported: process exited with status 1"
    assert (backend_reason in text) == (operator == "local"), text
    assert "explode" in str(error) and "value 1 is cursed" in str(error)
    assert error.skipped == ("after_explode", "after_that")
    assert isinstance(error.__cause__, StepFailed)


@pytest.mark.parametrize("operator", OPERATORS)
def test_independent_branches_finish_and_dependents_are_skipped(project, run, operator) -> None:
    failing = project.module(FAILING).failing
    result = run(failing.compile(operator), raise_on_failure=False)
    assert result.status == "failed"
    expected = {
        "source": "succeeded",
        "explode": "failed",
        "after_explode": "skipped",
        "after_that": "skipped",
        "slow_branch": "succeeded",
        "after_slow": "succeeded",
    }
    assert {name: o.status for name, o in result.steps.items()} == expected
    assert result.output("after_slow") == 11
    with project.history() as history:
        assert history.get_run(result.run_id).status == "failed"
        rows = {s.step: s for s in history.get_steps(result.run_id)}
    assert {name: row.status for name, row in rows.items()} == expected
    assert "value 1 is cursed" in (rows["explode"].error or "")
    assert rows["after_explode"].started_at is None
    # The summary names what failed and why.
    assert f"run {result.run_id} failed" in run.output
    assert "--- step 'explode' failed ---" in run.output


def test_the_cli_exits_non_zero_and_names_the_failed_step(project, cli) -> None:
    path = project.write(FAILING.replace('operator: str = "inprocess"', 'operator: str = "local"'))
    result = cli("run", str(path))
    assert result.returncode == 1, result.stderr
    assert "--- step 'explode' failed ---" in result.stdout
    assert "DataProblem: value 1 is cursed" in result.stdout
    assert "failed: 3 succeeded, 1 failed, 2 skipped" in result.stdout
    assert "[after_slow] succeeded" in result.stdout
    assert "Traceback" not in result.stderr  # the CLI itself did not crash
    rows = project.run_rows()
    assert len(rows) == 1 and rows[0][1] == "failed"


PARALLEL = """
import time
from pathlib import Path

from stepframe import pipeline, step


@step
def nap(i: int) -> list[float]:
    start = time.time()
    time.sleep(0.3)
    return [start, time.time()]


@step
def meet(i: int, expected: int) -> bool:
    \"\"\"Arrive, then wait (a while at most) until ``expected`` steps have arrived.\"\"\"
    Path(f"arrived-{i}").touch()
    deadline = time.time() + 20
    while time.time() < deadline:
        if len(list(Path().glob("arrived-*"))) >= expected:
            return True
        time.sleep(0.02)
    return False


@pipeline
def parallel(operator: str = "inprocess"):
    for i in range(4):
        nap.with_options(operator=operator)(i)


@pipeline
def rendezvous(operator: str = "local", steps: int = 4):
    for i in range(steps):
        meet.with_options(operator=operator)(i, steps)
"""


def _overlapping(intervals: list[list[float]]) -> int:
    """The most intervals that were open at the same moment."""
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    most = current = 0
    for _, change in events:
        current += change
        most = max(most, current)
    return most


@pytest.mark.parametrize("max_parallel", [1, 2])
def test_no_more_steps_than_max_parallel_run_at_once(project, run, max_parallel) -> None:
    spec = project.module(PARALLEL).parallel.compile()
    result = run(spec, max_parallel=max_parallel)
    intervals = [result.output(name) for name in spec.steps]
    assert _overlapping(intervals) == max_parallel


def test_independent_local_steps_run_at_the_same_time(project, run) -> None:
    # Each step waits for all four to have started: they can only succeed together.
    spec = project.module(PARALLEL).rendezvous.compile("local", 4)
    result = run(spec, max_parallel=4)
    assert [result.output(name) for name in spec.steps] == [True] * 4


def test_max_parallel_must_be_positive(project, cli) -> None:
    path = project.write(PARALLEL)
    result = cli("run", str(path), "--max-parallel", "0")
    assert result.returncode == 2
    assert "--max-parallel" in result.stderr and "Traceback" not in result.stderr
    assert not project.state_dir.exists()


def test_a_terminal_gets_a_live_status_block_and_a_pipe_plain_lines(
    project, cli, subprocess_env
) -> None:
    path = project.write(FAILING.replace('operator: str = "inprocess"', 'operator: str = "local"'))
    piped = cli("run", str(path))
    assert "\x1b[" not in piped.stdout
    assert re.search(r"\[slow_branch\] succeeded in \d+\.\ds", piped.stdout)  # elapsed time

    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "stepframe", "run", str(path), "--no-cache"],
        cwd=project.root,
        env=subprocess_env(TERM="xterm"),
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    chunks = []
    while True:
        try:
            data = os.read(controller, 65536)
        except OSError:  # the terminal closed: the process is gone
            break
        if not data:
            break
        chunks.append(data)
    os.close(controller)
    assert process.wait(timeout=30) == 1
    screen = b"".join(chunks).decode(errors="replace")
    assert "\x1b[" in screen  # the status block is redrawn in place
    assert "[slow_branch] succeeded" not in screen  # no plain lines on a terminal
    # The last status block: every step with its state and elapsed time.
    block = screen.rsplit("\x1b[J", 1)[-1]
    assert re.search(r"\+ slow_branch\s+succeeded\s+\d+\.\ds", block), block
    assert re.search(r"x explode\s+failed\s+\d+\.\ds", block), block
    assert re.search(r"- after_explode\s+skipped", block), block
    assert "explode | " in screen  # log lines scroll above it


SCRIPT = """
import os

from stepframe import pipeline, step


@step(operator="local")
def pid() -> int:
    return os.getpid()


@step
def both(child: int) -> list[int]:
    return [child, os.getpid()]


@pipeline
def script():
    both(pid())


if __name__ == "__main__":
    print("result", script().output("both"))
"""


def test_a_pipeline_script_run_with_python(project, subprocess_env) -> None:
    """``python pipeline.py``: steps defined in __main__ still run on ``local``."""
    path = project.write(SCRIPT)
    result = subprocess.run(
        [sys.executable, str(path)],
        cwd=project.root,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    line = [line for line in result.stdout.splitlines() if line.startswith("result ")]
    child, parent = json.loads(line[0].removeprefix("result "))
    assert child != parent
    assert "[pid] succeeded" in result.stdout


DYING = """
import os
import signal

from stepframe import pipeline, step


@step(operator="local")
def killed() -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return 1


@step(operator="local")
def exits() -> int:
    os._exit(3)


@pipeline
def dying():
    killed()
    exits()
"""


def test_a_local_step_whose_process_dies_fails_with_the_reason(project, run) -> None:
    with pytest.raises(RunFailed) as caught:
        run(project.load(DYING))
    failures = caught.value.failures
    assert (
        str(failures["killed"])
        == "step 'killed' failed: JobFailed: job failed: process killed by SIGKILL"
    )
    assert (
        str(failures["exits"])
        == "step 'exits' failed: JobFailed: job failed: process exited with status 3"
    )


STREAMS = """
import sys

from stepframe import pipeline, step


@step
def streams() -> list:
    sys.stdout.buffer.write(b"raw bytes\\n")
    sys.stdout.buffer.flush()
    print("routed")
    return [sys.stdout.encoding, sys.stderr.errors, sys.stdout.isatty()]


@pipeline
def check_streams():
    streams()
"""


def test_in_process_steps_see_complete_standard_streams(project, run) -> None:
    """Routing a step's output to its log must not take attributes away from sys.stdout."""
    expected = [sys.stdout.encoding, sys.stderr.errors, sys.stdout.isatty()]
    result = run(project.load(STREAMS))
    assert result.output("streams") == expected
    assert "streams | routed" in run.output
