"""Pipeline parameters from the shell and a run config (issue 14, part 5), through the CLI."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

PARAMETRIZED = """
from pathlib import Path

from stepframe import pipeline, step

HERE = Path(__file__).resolve().parent


@step
def make(rows: int, share: float, shuffle: bool, tags: list[str], name: str) -> str:
    if (HERE / "fail").exists():
        raise RuntimeError("not yet")
    text = f"{rows}|{share}|{shuffle}|{tags}|{name}"
    (HERE / "made.txt").write_text(text)
    return text


@pipeline
def shaped(
    rows: int = 10,
    share: float = 0.5,
    shuffle: bool = False,
    tags: list[str] | None = None,
    name="plain",
):
    make(rows, share, shuffle, tags or [], name)
"""


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def recorded(project) -> dict[str, Any]:
    with project.history() as history:
        (run,) = history.list_runs(limit=1)
    return run.params


def test_parameters_from_the_shell_are_converted_by_type_hints(project, cli) -> None:
    path = project.write(PARAMETRIZED)

    ok(
        cli(
            "run", str(path), "-p", "rows=1000", "-p", "share=0.2", "-p", "shuffle=yes",
            "-p", 'tags=["a", "b"]', "-p", "name=42",
        )
    )  # fmt: skip

    assert (project.root / "made.txt").read_text() == "1000|0.2|True|['a', 'b']|42"
    # Recorded as typed values: an int stays an int, not "1000".
    assert recorded(project) == {
        "rows": 1000,
        "share": 0.2,
        "shuffle": True,
        "tags": ["a", "b"],
        "name": "42",  # no hint, a str default: text stays text
    }
    listed = json.loads(ok(cli("runs", "show", "--json", recorded_run_id(project))))
    assert listed["run"]["params"]["rows"] == 1000


def recorded_run_id(project) -> str:
    with project.history() as history:
        return history.list_runs(limit=1)[0].run_id


def test_a_run_config_gives_parameters_and_the_shell_overrides_them(project, cli) -> None:
    path = project.write(PARAMETRIZED)
    (project.root / "run.toml").write_text('[parameters]\nrows = 7\nname = "cfg"\n')

    ok(cli("run", str(path), "--config", "run.toml", "-p", "name=shell"))

    assert (project.root / "made.txt").read_text() == "7|0.5|False|[]|shell"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-p", "row=5"],
            "pipeline 'shaped' has no parameter 'row' (-p row=...); did you mean 'rows'?",
        ),
        (["-p", "rows=many"], "-p rows='many': parameter 'rows' of pipeline 'shaped' takes int"),
        (["-p", "shuffle=maybe"], "takes bool (not one of true/false"),
        (["-p", "tags=[1, 2]"], "list[str]"),  # Optional[list[str]] on 3.10
        (["-p", "rows"], "-p 'rows': give a parameter as NAME=VALUE"),
    ],
)
def test_a_bad_parameter_is_one_line_and_runs_nothing(project, cli, args, message) -> None:
    path = project.write(PARAMETRIZED)

    result = cli("run", str(path), *args)

    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (project.root / "made.txt").exists()
    assert project.run_rows() == []


def test_a_bad_run_config_parameter_names_the_file(project, cli) -> None:
    path = project.write(PARAMETRIZED)
    (project.root / "run.toml").write_text('[parameters]\nrows = "ten"\n')

    result = cli("run", str(path), "--config", "run.toml")

    assert result.returncode == 2
    assert "run.toml: parameters.rows: pipeline 'shaped' takes int" in result.stderr


def test_resume_runs_with_the_parameters_the_run_started_with(project, cli) -> None:
    path = project.write(PARAMETRIZED)
    (project.root / "fail").touch()
    assert cli("run", str(path), "-p", "rows=3").returncode == 1
    (project.root / "fail").unlink()

    ok(cli("run", "--resume", recorded_run_id(project)))

    assert (project.root / "made.txt").read_text().startswith("3|")
