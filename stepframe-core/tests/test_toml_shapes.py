"""A malformed ``stepframe.toml`` (issue 10, item 19): every command that reads it says, in
one line with exit 2, which TOML path is wrong and how -- no traceback, no silently
ignored typo -- and a command that would edit it leaves it byte for byte as it was."""

from __future__ import annotations

import subprocess

import pytest

EXIT_USAGE = 2

SHAPES = [
    ('stacks = "oops"\n', "stepframe.toml: stacks: expected a table, got a string"),
    ("stacks = [1, 2]\n", "stepframe.toml: stacks: expected a table, got an array"),
    (
        "active_stack = 3\n",
        "stepframe.toml: active_stack: expected a stack name (a string), got an integer",
    ),
    ("[stacks]\nteam = 1\n", "stepframe.toml: stacks.team: expected a table, got an integer"),
    (
        "[stacks.team]\nstep_operators = 'gpu'\n",
        "stepframe.toml: stacks.team.step_operators: expected an array of step operator names, "
        "got a string",
    ),
    (
        "[stacks.team]\nstep_operators = ['gpu', 7]\n",
        "stepframe.toml: stacks.team.step_operators[1]: expected a step operator name, "
        "got an integer",
    ),
    (
        "[stacks.team]\nartifact_store = true\n",
        "stepframe.toml: stacks.team.artifact_store: expected a component name, got a boolean",
    ),
    (
        "[stacks.team]\nstep_operator = ['local']\n",
        "stepframe.toml: stacks.team.step_operator: unknown key; did you mean 'step_operators'?",
    ),
    (
        "[stacks.'a b']\n",
        "stepframe.toml: stacks: 'a b' is not a valid name: a name starts with a letter or digit",
    ),
    ("step_operators = 5\n", "stepframe.toml: step_operators: expected a table, got an integer"),
    (
        "[step_operators.gpu]\nflavor = 5\n",
        "stepframe.toml: step_operators.gpu.flavor: expected a flavor name (a string), "
        "got an integer",
    ),
    (
        "[step_operators.gpu]\nconnector = 'aws'\n",
        "stepframe.toml: step_operators.gpu.flavor: required value is missing",
    ),
    (
        "[connectors.aws]\nflavor = 'aws'\nconnector = ['x']\n",
        "stepframe.toml: connectors.aws.connector: expected the name of a connector, got an array",
    ),
    (
        "[artifact_stores.'../up']\nflavor = 'local'\n",
        "stepframe.toml: artifact_stores: '../up' is not a valid name",
    ),
    (
        "[step_operator.gpu]\nflavor = 'local'\n",
        "stepframe.toml: [step_operator]: unknown top-level table; did you mean [step_operators]?",
    ),
    (
        "[conectors.aws]\nflavor = 'aws'\n",
        "stepframe.toml: [conectors]: unknown top-level table; did you mean [connectors]?",
    ),
    ("[project]\nname = 'x'\n", "stepframe.toml: [project]: unknown top-level table (known: "),
    ("flavor = 5\n", "stepframe.toml: flavor: unknown top-level key (known: active_stack, stacks"),
]

READERS = [
    ("stack", "list"),
    ("stack", "describe"),
    ("step-operator", "list"),
    ("connector", "describe", "aws"),
]
EDITORS = [
    ("stack", "register", "more"),
    ("stack", "set", "default"),
    ("step-operator", "register", "extra", "--flavor", "local"),
    ("artifact-store", "delete", "nothing"),
]


def one_line_refusal(result: subprocess.CompletedProcess[str]) -> str:
    everything = result.stdout + result.stderr
    assert result.returncode == EXIT_USAGE, everything
    assert "Traceback" not in everything
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("stepframe: error: "), everything
    return lines[0]


@pytest.mark.parametrize(("text", "expected"), SHAPES, ids=[s[0] for s in SHAPES])
def test_every_command_names_the_malformed_part_and_edits_nothing(
    project, cli_in_process, text, expected
) -> None:
    config = project.root / "stepframe.toml"
    written = f"# hand-edited\n{text}"
    config.write_text(written)
    for command in READERS + EDITORS:
        message = one_line_refusal(cli_in_process(*command))
        assert message == f"stepframe: error: {expected}" or expected in message, (command, message)
        assert config.read_bytes() == written.encode()
    # Nothing else either (the edit lock beside the file is how every edit starts).
    assert {p.name for p in project.root.iterdir()} <= {"stepframe.toml", ".stepframe.toml.lock"}


def test_a_run_refuses_a_malformed_file_before_anything_runs(project, cli) -> None:
    """Through the real ``stepframe run`` process: the typo is reported, not ignored."""
    (project.root / "stepframe.toml").write_text("[step_operator.gpu]\nflavor = 'local'\n")
    path = project.write(
        """
        from stepframe import pipeline, step

        @step
        def one() -> int:
            return 1

        @pipeline
        def shaped():
            one()
        """
    )
    message = one_line_refusal(cli("run", str(path)))
    assert "[step_operator]: unknown top-level table; did you mean [step_operators]?" in message
    assert not (project.root / ".stepframe").exists()


def test_a_well_formed_file_with_every_table_is_read(project, cli_in_process) -> None:
    (project.root / "stepframe.toml").write_text(
        "active_stack = 'team'\n\n"
        "[artifact_stores.scratch]\nflavor = 'local'\npath = 'store'\n\n"
        "[step_operators.gpu]\nflavor = 'local'\n\n"
        "[stacks.team]\nartifact_store = 'scratch'\nstep_operators = ['gpu']\n"
    )
    result = cli_in_process("stack", "list")
    assert result.returncode == 0, result.stderr
    assert "* team  (artifact store scratch; operators inprocess, local, gpu)" in result.stdout
    assert cli_in_process("stack", "describe").returncode == 0
