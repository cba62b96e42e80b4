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
    # Where the parser notices the unclosed table: at its line (tomllib) or, with newer
    # tomli releases on Python 3.10, at the end of the file.
    position, message = (
        ("2:23", "Unclosed inline table")
        if ":2:23:" in result.stderr
        else ("3:1", "at the end of the file")
    )
    assert result.stderr.startswith(
        f"stepframe: error: {config}:{position}: invalid TOML in this run config: "
    ), result.stderr
    assert message in result.stderr
    assert "; fix it there (a run config holds " in result.stderr
    assert result.stderr.count("\n") == 1
    assert "stepframe.toml" not in result.stderr
    assert not (project.root / ".stepframe").exists()


def test_stack_list_shows_the_default_stacks_operators_as_describe_does(
    project, cli_in_process
) -> None:
    listed = cli_in_process("stack", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == "* default  (artifact store local; operators inprocess, local)\n"
    described = cli_in_process("stack", "describe").stdout
    assert "step operator      inprocess" in described and "step operator      local" in described


def test_a_dangling_active_stack_is_a_warning_in_stack_list(project, cli_in_process) -> None:
    (project.root / "stepframe.toml").write_text('active_stack = "gone"\n')
    listed = cli_in_process("stack", "list")
    assert listed.returncode == 0
    assert listed.stdout == "  default  (artifact store local; operators inprocess, local)\n"
    assert listed.stderr == (
        f"stepframe: warning: the active stack 'gone' (active_stack in "
        f"{project.root / 'stepframe.toml'}) is not defined, so runs fail until you pick one: "
        "`stepframe stack set NAME`\n"
    )


FAST = """
from stepframe import pipeline, step


@step(operator="fast")
def quick() -> int:
    return 1


@pipeline
def hurried():
    quick()
"""


def test_a_registered_operator_outside_the_stack_is_added_with_stack_update(project, cli) -> None:
    registered = cli("step-operator", "register", "fast", "--flavor", "local")
    assert registered.returncode == 0, registered.stderr
    path = project.write(FAST)

    refused = cli("run", str(path))
    assert refused.returncode == 2
    assert refused.stderr == (
        "stepframe: error: step 'quick': operator 'fast' is registered but not in stack "
        "'default'; add it with `stepframe stack update default -s fast`\n"
    )

    updated = cli("stack", "update", "default", "-s", "fast")
    assert updated.returncode == 0, updated.stderr
    assert updated.stdout == "updated stack 'default'\n"
    listed = cli("stack", "list").stdout
    assert listed == "* default  (artifact store local; operators inprocess, local, fast)\n"
    done = cli("run", str(path))
    assert done.returncode == 0, done.stderr
    assert "[quick] running (fast)" in done.stdout

    removed = cli("stack", "update", "default", "-r", "fast")
    assert removed.returncode == 0, removed.stderr
    assert cli("run", str(path), "--no-cache").returncode == 2


def test_stack_update_refuses_what_it_cannot_do(project, cli_in_process) -> None:
    unknown = cli_in_process("stack", "update", "nowhere", "-s", "local")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("stepframe: error: there is no stack named 'nowhere'")
    nothing = cli_in_process("stack", "update", "default")
    assert nothing.returncode == 2
    assert nothing.stderr.startswith("stepframe: error: say what to change:")
    missing = cli_in_process("stack", "update", "default", "-s", "ghost")
    assert missing.returncode == 2
    assert "there is no step operator named 'ghost'" in missing.stderr
    assert (
        not (project.root / "stepframe.toml").exists()
        or "ghost" not in (project.root / "stepframe.toml").read_text()
    )


PICKLED = """
from stepframe import pipeline, step


class Point:
    def __init__(self, x):
        self.x = x


@step
def here() -> Point:
    return Point(1)


@step(operator="local")
def there() -> Point:
    return Point(2)


@pipeline
def points():
    here()
    there()
"""


def test_the_pickle_fallback_warning_is_one_line_naming_step_and_output(project, cli) -> None:
    path = project.write(PICKLED)
    module = path.stem
    done = cli("run", str(path), "--max-parallel", "1")
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stdout.splitlines() if "pickle" in line]
    advice = (
        "with pickle, which may stop loading when libraries change; register a materializer "
        "for the type (register_materializers hook) or return JSON-friendly data (dict, list, "
        "str, number, bool, None)"
    )
    assert warned == [
        f"here | stepframe: warning: step 'here' output 'output': stored a {module}.Point {advice}",
        f"there | stepframe: warning: step 'there' output 'output': stored a {module}.Point "
        f"{advice}",
    ]
    assert "site-packages" not in done.stdout and "stepframe/" not in done.stdout


def test_a_blank_remote_traceback_prints_no_traceback_block() -> None:
    from stepframe import StepFailed

    for blank in ("", "\n", "  \n\n"):
        assert str(StepFailed("train", "OSError", "disk gone", blank)) == (
            "step 'train' failed: OSError: disk gone"
        )
    text = str(StepFailed("train", "ValueError", "no", "\nTraceback (most recent call last):\n"))
    assert text.endswith("Traceback from where the step ran:\nTraceback (most recent call last):")


def test_a_group_without_a_command_shows_its_help_not_an_error(project, cli_in_process) -> None:
    result = cli_in_process("runs")
    assert result.returncode == 2  # as click has it
    assert re.match(r"Usage: \S+ runs \[OPTIONS\] COMMAND \[ARGS\]\.\.\.\n", result.stderr)
    assert "error" not in result.stderr
