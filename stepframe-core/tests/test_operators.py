"""The built-in operators: ``inprocess`` and ``local`` run the same pipeline the same way,
stream step logs, and report a step that raises with its traceback from where it ran."""

from __future__ import annotations

import os

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

from stepframe import pipeline, step


class DataProblem(Exception):
    pass


@step
def source() -> int:
    return 1


def deep_helper(value):
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
    time.sleep(0.5)
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
