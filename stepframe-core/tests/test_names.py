"""Names (issue 10, item 18): a step, output, component or stack name that cannot be one
path segment is refused where it is given -- when the pipeline compiles, when the
component or stack is registered -- in one line, with exit 2 and nothing written; and
the paths the core builds from names refuse any segment that could escape or overflow.
"""

from __future__ import annotations

import subprocess

import pytest

EXIT_USAGE = 2
LONG = "x" * 5000


def one_line_refusal(result: subprocess.CompletedProcess[str]) -> str:
    everything = result.stdout + result.stderr
    assert result.returncode == EXIT_USAGE, everything
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("stepframe: error: "), everything
    assert "Traceback" not in everything
    return lines[0]


def files_under(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -- steps and outputs: refused when the pipeline compiles ---------------------------


PIPELINE = """
from stepframe import pipeline, step

@step({options})
def make() -> int:
    return 1

@pipeline
def named():
    make()
"""


@pytest.mark.parametrize(
    ("options", "shown"),
    [
        ('name="../../escape"', "'../../escape'"),
        ('name="x" * 300', "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'... (300 characters)"),
        ('name="has space"', "'has space'"),
        ('name="a\\x00b"', "'a\\x00b'"),
        ('name=".hidden"', "'.hidden'"),
    ],
)
def test_a_bad_step_name_is_refused_before_anything_runs_or_is_written(
    project, cli, tmp_path, options, shown
) -> None:
    path = project.write(PIPELINE.format(options=options))
    before = files_under(tmp_path)
    message = one_line_refusal(cli("run", str(path)))
    assert f"pipeline 'named': step name {shown} is invalid" in message
    assert "at most 100 characters" in message and "@step(name=...)" in message
    # Not a run that failed later: no run folder, no database, nothing beside the project.
    assert files_under(tmp_path) == before


def test_a_bad_output_name_is_refused_when_the_pipeline_compiles(project, cli, tmp_path) -> None:
    path = project.write(
        """
        from stepframe import pipeline, step

        @step(outputs=["fine", "../../up"])
        def split() -> tuple[int, int]:
            return 1, 2

        @pipeline
        def outs():
            split()
        """
    )
    before = files_under(tmp_path)
    message = one_line_refusal(cli("run", str(path)))
    assert "pipeline 'outs': step 'split' output name '../../up' is invalid" in message
    assert "@step(outputs=[...])" in message
    assert files_under(tmp_path) == before


def test_names_at_the_edge_of_the_rule_run(project, run) -> None:
    """The longest allowed name, called twice (so the second gets a ``_2`` suffix), and
    names with every allowed punctuation character, run and store their outputs."""
    longest = "s" * 100
    pipeline = project.load(
        f"""
        from stepframe import pipeline, step

        @step(name="{longest}", outputs=["first.part-1", "_second"])
        def pair() -> tuple[int, int]:
            return 1, 2

        @step(name="_add.v2-final")
        def add(a: int, b: int) -> int:
            return a + b

        @pipeline
        def edge():
            one = pair()
            two = pair()
            add(one[0], two[1])
        """
    )
    result = run(pipeline)
    assert set(result.steps) == {longest, f"{longest}_2", "_add.v2-final"}
    assert result.output("_add.v2-final") == 3


# -- the last line of defence: path segments -----------------------------------------


@pytest.mark.parametrize(
    ("segment", "problem"),
    [
        ("..", "'..'"),
        (".", "'.'"),
        ("", "empty"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("a\x00b", "control character"),
        ("a\nb", "control character"),
        ("é" * 128, "longer than 255 bytes"),  # 128 characters, 256 bytes
    ],
)
def test_a_path_segment_that_could_escape_or_overflow_is_refused(segment, problem) -> None:
    from stepframe._names import safe_segments
    from stepframe.exceptions import UsageError

    with pytest.raises(UsageError, match="cannot be part of a path") as caught:
        safe_segments("runs", "20260101-000000-abcdef", segment, "launch.json")
    assert problem in str(caught.value)
    assert safe_segments("runs", "r", "x" * 255) == ("runs", "r", "x" * 255)


# -- components and stacks: refused when registered ----------------------------------

BAD_COMPONENT_NAMES = ["", "a/b", "a b", LONG, "../up", ".hidden", "_under", "tab\there"]
CONFIG = "# the team's stacks\nactive_stack = 'default'\n\n[step_operators.ok]\nflavor = 'local'\n"


@pytest.mark.parametrize("name", BAD_COMPONENT_NAMES, ids=repr)
@pytest.mark.parametrize(
    "command",
    [
        ("step-operator", "register", "{name}", "--flavor", "local"),
        ("artifact-store", "register", "{name}", "--flavor", "local", "--path", "store"),
        ("step-operator", "register", "fine", "--flavor", "local", "--connector", "{name}"),
        ("step-operator", "connect", "ok", "--connector", "{name}"),
        ("stack", "register", "{name}"),
        ("stack", "register", "fine", "-s", "{name}"),
        ("stack", "register", "fine", "-a", "{name}"),
        ("stack", "set", "{name}"),
        ("step-operator", "update", "{name}"),
        ("step-operator", "delete", "{name}"),
    ],
    ids=lambda command: " ".join(command[:2]) + (" " + command[3] if len(command) > 3 else ""),
)
def test_a_bad_component_or_stack_name_is_refused_and_nothing_written(
    project, cli_in_process, name, command
) -> None:
    config = project.root / "stepframe.toml"
    config.write_text(CONFIG)
    message = one_line_refusal(cli_in_process(*(a.replace("{name}", name) for a in command)))
    assert f"stepframe {command[0]} {command[1]}: " in message
    assert "is not a valid name" in message and "at most 63 characters" in message
    assert (repr(name) if len(name) < 40 else "(5000 characters)") in message
    assert len(message) < 300  # a 5000-character name is not repeated in full
    assert config.read_text() == CONFIG
    assert files_under(project.root) == ["stepframe.toml"]


def test_valid_component_names_are_registered(project, cli_in_process) -> None:
    for name in ("gpu", "GPU-2", "a.b_c-d", "9lives", "n" * 63):
        result = cli_in_process("step-operator", "register", name, "--flavor", "local")
        assert result.returncode == 0, result.stderr
    result = cli_in_process("stack", "register", "team.v2", "-s", "n" * 63, "-s", "a.b_c-d")
    assert result.returncode == 0, result.stderr
