"""Issue 14 part 1: every step's output is kept in the project's state, with timestamps,
bounded in size; ``stepframe logs RUN [STEP]`` prints it and ``--follow`` streams a
running step; any unique part of a run id names the run."""

from __future__ import annotations

import re

import pytest

OPERATORS = ["inprocess", "local"]

TWO_STEPS = """
import sys
from stepframe import pipeline, step


@step
def left() -> int:
    for i in range(50):
        print(f"left {i}")
    print("left done", file=sys.stderr)
    return 1


@step
def right() -> int:
    for i in range(50):
        print(f"right {i}")
    return 2


@pipeline
def two(operator: str):
    left.with_options(operator=operator)()
    right.with_options(operator=operator)()
"""

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def _kept(project, run_id: str, step: str, attempt: int = 1) -> str:
    path = project.state_dir / "logs" / run_id / step / f"attempt-{attempt}.log"
    return path.read_text()


@pytest.mark.parametrize("operator", OPERATORS)
def test_each_steps_output_is_kept_with_timestamps(project, run, operator) -> None:
    pipeline = project.load(TWO_STEPS)
    result = run(pipeline.compile(operator), max_parallel=2)
    for step, last in (("left", "left done"), ("right", "right 49")):
        lines = _kept(project, result.run_id, step).splitlines()
        assert all(re.fullmatch(f"{STAMP} .*", line) for line in lines), lines[:3]
        texts = [line.split(" ", 1)[1] for line in lines]
        # The two steps ran at the same time, on threads of one process for
        # inprocess: each log holds its own step's lines only, all of them, in order.
        assert texts[:50] == [f"{step} {i}" for i in range(50)]
        assert texts[-1] == last


def test_stepframe_logs_prints_a_run_or_a_step_by_any_part_of_its_id(project, run, cli) -> None:
    pipeline = project.load(TWO_STEPS)
    run_id = run(pipeline.compile("inprocess"), max_parallel=1).run_id
    part = run_id.split("-", 1)[1]  # the time and the random suffix: not a prefix

    one = cli("logs", part, "right", "--no-timestamps")
    assert one.returncode == 0, one.stderr
    assert one.stdout.splitlines() == [f"right {i}" for i in range(50)]

    both = cli("logs", part)
    assert both.returncode == 0, both.stderr
    lines = both.stdout.splitlines()
    assert re.fullmatch(f"{STAMP} left \\| left 0", lines[0])
    assert re.fullmatch(f"{STAMP} right \\| right 49", lines[-1])
    assert len(lines) == 101

    missing = cli("logs", part, "middle")
    assert missing.returncode == 2
    assert missing.stderr == (
        f"stepframe: error: run {run_id} has no step 'middle'; its steps: left, right\n"
    )


def test_a_log_keeps_its_tail_within_the_bound(project, run, monkeypatch) -> None:
    monkeypatch.setenv("STEPFRAME_LOG_MAX_BYTES", "8192")
    pipeline = project.load(
        """
        from stepframe import pipeline, step

        @step
        def chatty() -> int:
            for i in range(2000):
                print(f"line {i:05d} " + "x" * 40)
            return 0

        @pipeline
        def loud():
            chatty()
        """
    )
    result = run(pipeline.compile())
    path = project.state_dir / "logs" / result.run_id / "chatty" / "attempt-1.log"
    text = path.read_text()
    assert path.stat().st_size <= 8192
    lines = text.splitlines()
    assert lines[0].startswith("[earlier lines dropped: this log keeps its last 8192 bytes")
    assert lines[-1].endswith("line 01999 " + "x" * 40)
    assert "line 00000" not in text
    numbers = [int(line.split("line ")[1][:5]) for line in lines[1:]]
    assert numbers == list(range(numbers[0], 2000))  # a contiguous tail


def test_the_client_api_reads_the_kept_log_of_an_in_process_step(project, run) -> None:
    from stepframe._client.runs import Runs

    pipeline = project.load(TWO_STEPS)
    run_id = run(pipeline.compile("inprocess")).run_id
    text = Runs(project.root).get(run_id).step("left").logs()
    assert text is not None and text.splitlines()[-1].endswith(" left done")


FOLLOWED = """
import os
import time
from pathlib import Path
from stepframe import pipeline, step


@step
def waits(gate: str) -> int:
    print("before the gate", flush=True)
    while not Path(gate).exists():  # the test opens it once the follower saw the line
        time.sleep(0.02)
    print("after the gate", flush=True)
    return 0


@pipeline
def gated(gate: str, operator: str):
    waits.with_options(operator=operator)(gate)
"""


@pytest.mark.parametrize("operator", OPERATORS)
def test_follow_streams_a_running_step_until_it_ends(project, cli_popen, operator) -> None:
    gate = project.root / "gate"
    source = FOLLOWED.replace("gate: str,", f"gate: str = {str(gate)!r},")
    path = project.write(source.replace("operator: str)", f"operator: str = {operator!r})"))
    running = cli_popen("run", str(path))
    assert running.stdout is not None
    first = running.stdout.readline()
    run_id = re.match(r"run (\S+) of pipeline", first).group(1)  # type: ignore[union-attr]
    for line in running.stdout:  # the step has printed its first line
        if "before the gate" in line:
            break

    follower = cli_popen("logs", run_id[-6:], "waits", "--follow", "--no-timestamps")
    assert follower.stdout is not None
    assert follower.stdout.readline() == "before the gate\n"
    assert follower.poll() is None  # still following: the step goes on
    gate.touch()
    rest, _ = follower.communicate(timeout=60)
    assert follower.returncode == 0
    assert rest.splitlines()[0] == "after the gate"
    assert running.wait(timeout=60) == 0


def test_any_unique_part_of_a_run_id_names_the_run(project) -> None:
    from stepframe.exceptions import UsageError

    with project.history() as history:
        for run_id in ("20260101-000000-aaaaaa", "20260101-000000-aabbbb", "20260102-000000-cc"):
            history.create_run(run_id, "p", project_root=str(project.root))
        assert history.get_run("aabbbb").run_id == "20260101-000000-aabbbb"  # the end
        assert history.get_run("0102-").run_id == "20260102-000000-cc"  # the middle
        with pytest.raises(UsageError, match=r"ambiguous.*aaaaaa.*aabbbb"):
            history.get_run("-aa")
