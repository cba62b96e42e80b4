"""``stepframe`` run as a user runs it, for tests of a plugin's command-line behaviour.

Each call is ``python -m stepframe ARGS`` in a process of its own, in a project folder,
with its own secrets file (never the user's), no terminal width and unbuffered output.
`StepframeCli.fails` holds the rule every refusal keeps: a non-zero exit and no Python
traceback.  `read_until` follows a long-running command (``run``) line by line, so a test
waits for what the command printed instead of sleeping.  (The first copies lived in the
aws, gcp and azure connector tests and in the core's lifecycle tests.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["StepframeCli", "read_until"]


class StepframeCli:
    """``stepframe ARGS`` in ``project``::

        cli = StepframeCli(tmp_path / "project", plugins="azure")
        cli.ok("connector", "list")            # exit 0: its stdout
        cli.fails("connector", "verify", "az")  # non-zero, no traceback: its stderr
        cli("run", "pipeline.py")              # the CompletedProcess, whatever it did
        cli.start("run", "pipeline.py")        # a Popen, output merged, own session

    :param project: the folder the commands run in (made when missing).
    :param env: variables over this process's environment (a test service's endpoints).
    :param plugins: ``STEPFRAME_LOAD_PLUGINS`` (``"azure"``, ``"aws,docker"``); None
        leaves it as the environment has it.
    :param secrets_file: ``STEPFRAME_SECRETS_FILE``; default a file beside ``project``,
        so ``stepframe secret set`` never writes the user's.
    :param timeout: seconds a call may take before the test fails.
    """

    def __init__(
        self,
        project: Path,
        env: Mapping[str, str] | None = None,
        *,
        plugins: str | None = None,
        secrets_file: Path | None = None,
        timeout: float = 60,
    ) -> None:
        self.project = Path(project)
        self.project.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        secrets = secrets_file or self.project.parent / f"{self.project.name}-secrets.json"
        self.env = {
            **os.environ,
            "STEPFRAME_SECRETS_FILE": str(secrets),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        if plugins is not None:
            self.env["STEPFRAME_LOAD_PLUGINS"] = plugins
        # Help and tables wrap at the terminal's width: the same output on every machine.
        self.env.pop("COLUMNS", None)

    def __call__(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stepframe", *args],
            cwd=self.project,
            env=self.env,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=self.timeout,
        )

    def ok(self, *args: str, input: str | None = None) -> str:
        """The command's stdout; the test fails (showing both streams) unless it exits 0."""
        result = self(*args, input=input)
        assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        return result.stdout

    def fails(self, *args: str, input: str | None = None) -> str:
        """The command's stderr; the test fails unless it exits non-zero without a Python
        traceback."""
        result = self(*args, input=input)
        assert result.returncode != 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        assert "Traceback" not in result.stdout + result.stderr, result.stderr
        return result.stderr

    def start(self, *args: str) -> subprocess.Popen[str]:
        """The command running in its own session (a test may signal its whole group),
        stdout and stderr merged into ``process.stdout``; the caller waits for it."""
        return subprocess.Popen(
            [sys.executable, "-m", "stepframe", *args],
            cwd=self.project,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )


def read_until(process: subprocess.Popen[str], text: str) -> list[str]:
    """The process's output lines up to and including the first one containing ``text``;
    the test fails, showing what was printed, when the output ends without it."""
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if text in line:
            return lines
    raise AssertionError(f"{text!r} never printed; got:\n" + "\n".join(lines))
