"""Issue 14 part 6: CLI manners -- words, one error prefix, empty listings, filters, the
stack commands, and messages that point at the right file."""

from __future__ import annotations

import json
import re

import pytest

from stepframe import RunFailed

TWO_PIPELINES = """
from stepframe import pipeline, step


@step
def one() -> int:
    return 1


@step
def boom() -> int:
    raise ValueError("no")


@pipeline
def single():
    one()


@pipeline
def failing():
    boom()
"""


def test_help_texts_use_plurals_and_articles_that_read(cli_in_process) -> None:
    top = cli_in_process("--help").stdout
    assert "Register and inspect container registries." in top
    texts = top
    for group in ("artifact-store", "image-builder", "container-registry", "connector"):
        texts += cli_in_process(group, "--help").stdout
    assert "Register an artifact store" in texts
    assert "Make an image builder authenticate" in texts
    assert "List container registries" in texts
    assert "registrys" not in texts
    assert not re.search(r"\ba [aeiou]", texts), re.findall(r".*\ba [aeiou].*", texts)


def test_a_one_step_run_says_1_step(project, cli) -> None:
    path = project.write(TWO_PIPELINES)
    done = cli("run", f"{path}:single")
    assert done.returncode == 0, done.stderr
    assert "of pipeline 'single' (1 step, stack 'default')" in done.stdout
    dry = cli("run", f"{path}:single", "--dry-run")
    assert "pipeline 'single', 1 step, stack 'default'" in dry.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["runs", "bogus"], 2, "No such command 'bogus'."),
        (["run", "x.py", "--max-parallel", "0"], 2, "Invalid value for '--max-parallel'"),
        (["runs", "show"], 2, "Missing argument 'RUN_ID'."),
        (["runs", "show", "20261206"], 1, "no runs recorded in"),  # click.ClickException
        (["logs", "20261206"], 1, "no runs recorded in"),
    ],
)
def test_every_error_has_the_one_prefix(project, cli, args, code, message) -> None:
    result = cli(*args)
    assert result.returncode == code, result.stderr
    first, *rest = result.stderr.splitlines()
    assert first.startswith(f"stepframe: error: {message}"), result.stderr
    assert "Error:" not in result.stderr
    if code == 2:  # a usage error: the usage and the way to help follow
        assert rest[0].startswith("Usage: stepframe ")
        assert rest[1].startswith("Try 'stepframe ") and rest[1].endswith(" --help' for help.")


@pytest.mark.parametrize(
    ("args", "output"),
    [
        (["runs", "list"], "no runs recorded in"),
        (["runs", "list", "--json"], "[]"),
        (["jobs", "list"], "no jobs recorded"),
        (["jobs", "list", "--json"], "[]"),
    ],
)
def test_empty_listings_in_a_fresh_folder_succeed(project, cli_in_process, args, output) -> None:
    result = cli_in_process(*args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(output)
    assert not (project.root / ".stepframe").exists()


def test_jobs_list_is_newest_first_with_json_and_a_limit(project, run, cli_in_process) -> None:
    module = project.module(TWO_PIPELINES)
    first = run(module.single.compile()).run_id
    second = run(module.single.compile(), use_cache=False).run_id

    table = cli_in_process("jobs", "list").stdout.splitlines()
    assert table[1].startswith(second) and table[2].startswith(first)

    listed = json.loads(cli_in_process("jobs", "list", "--json").stdout)
    assert [job["run_id"] for job in listed] == [second, first]
    assert listed[0]["step"] == "one" and listed[0]["state"] == "succeeded"
    assert "launch" not in listed[0] and "handle" not in listed[0]

    latest = json.loads(cli_in_process("jobs", "list", "--json", "--limit", "1").stdout)
    assert [job["run_id"] for job in latest] == [second]


def test_runs_list_filters_by_pipeline_and_status(project, run, cli_in_process) -> None:
    module = project.module(TWO_PIPELINES)
    ok = run(module.single.compile()).run_id
    with pytest.raises(RunFailed):
        run(module.failing.compile())

    def listed(*args: str) -> list[str]:
        result = cli_in_process("runs", "list", "--json", *args)
        assert result.returncode == 0, result.stderr
        return [r["pipeline"] for r in json.loads(result.stdout)]

    assert listed() == ["failing", "single"]
    assert listed("--pipeline", "single") == ["single"]
    assert listed("--status", "failed") == ["failing"]
    assert listed("--pipeline", "single", "--status", "failed") == []
    table = cli_in_process("runs", "list", "--status", "succeeded").stdout
    assert ok in table and "failing" not in table
    nothing = cli_in_process("runs", "list", "--pipeline", "nope")
    assert nothing.returncode == 0
    assert nothing.stdout.startswith("no runs with pipeline 'nope' recorded yet in ")


def test_a_syntax_error_in_a_run_config_names_its_position_and_that_file(project, cli) -> None:
    path = project.write(TWO_PIPELINES)
    config = project.root / "fast.toml"
    config.write_text('[settings.local]\nenvironment = {A = "1"\n')
    result = cli("run", f"{path}:single", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr == (
        f"stepframe: error: {config}:2:23: invalid TOML in this run config: Unclosed inline "
        "table; fix it there (a run config holds [settings.FLAVOR] and "
        "[steps.STEP.settings.FLAVOR] tables)\n"
    )
    assert "stepframe.toml" not in result.stderr
    assert not (project.root / ".stepframe").exists()
