"""stepframe.testing.StepframeCli and read_until: the kit's command-line runner, in real
``python -m stepframe`` processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepframe.testing import StepframeCli, read_until


def test_ok_gives_stdout_and_secrets_go_to_the_tests_own_file(tmp_path: Path) -> None:
    cli = StepframeCli(tmp_path / "project", plugins="")

    cli.ok("secret", "set", "token", input="s3cret\n")

    assert "token" in cli.ok("secret", "list")
    assert (tmp_path / "project-secrets.json").exists()
    assert cli.env["STEPFRAME_LOAD_PLUGINS"] == ""


def test_fails_gives_the_one_line_refusal_and_refuses_success(tmp_path: Path) -> None:
    cli = StepframeCli(tmp_path / "project", plugins="")

    message = cli.fails("connector", "verify", "nobody")

    assert "nobody" in message
    with pytest.raises(AssertionError):
        cli.fails("secret", "list")


def test_read_until_follows_a_running_command(tmp_path: Path) -> None:
    cli = StepframeCli(tmp_path / "project", plugins="")
    process = cli.start("--help")

    lines = read_until(process, "Commands:")

    assert lines[-1].strip() == "Commands:"
    process.wait(timeout=60)
    assert process.stdout is not None
    process.stdout.close()
    other = cli.start("--help")
    with pytest.raises(AssertionError, match="never printed"):
        read_until(other, "no such line")
    other.wait(timeout=60)
    assert other.stdout is not None
    other.stdout.close()
