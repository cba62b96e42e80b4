"""A run ended by an error that escaped the scheduler leaves no step pending or running:
the steps it never started read as cancelled, as those of a cancelled run do."""

from __future__ import annotations

import pytest

from stepframe import pipeline, step
from stepframe._orchestrator.console import Console
from stepframe._orchestrator.run import run_pipeline
from stepframe._project import Project


@step
def first() -> int:
    return 1


@step
def second(x: int) -> int:
    return x + 1


@pipeline
def two():
    second(first())


class BrokenConsole(Console):
    def step_state(self, step: str, state: str, detail: str = "") -> None:
        if state == "running":
            raise RuntimeError("the console broke")


def test_no_step_is_left_pending_or_running(project, plugins) -> None:
    with pytest.raises(RuntimeError, match="the console broke"):
        run_pipeline(
            two.compile(), plugins=plugins, project=Project(project.root), console=BrokenConsole()
        )
    with project.history() as history:
        (run,) = history.list_runs()
        steps = {s.step: s.status for s in history.get_steps(run.run_id)}
    assert run.status == "failed"
    assert steps == {"first": "cancelled", "second": "cancelled"}
