"""Secrets: stored outside the project in a file only its owner can read, referred to by
name (or ``env:VAR``) from ``stepframe.toml``, and never written or printed anywhere.

The last test runs a pipeline whose operator authenticates through a connector with a
stored secret, then searches everything the run left and printed for the value.
"""

from __future__ import annotations

import json
import os
import pty
import select
import stat
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def failed(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def a_secret() -> str:
    return f"sfsecret{uuid.uuid4().hex}"


def test_set_list_and_delete(project, cli, _user_config) -> None:
    value = a_secret()
    result = cli("secret", "set", "aws-key", input=value + "\n")
    assert ok(result) == f"stored secret 'aws-key' in {_user_config}\n"
    ok(cli("secret", "set", "gcp.token_2", input="other"))
    assert value not in result.stdout + result.stderr

    assert json.loads(_user_config.read_text()) == {"aws-key": value, "gcp.token_2": "other"}
    assert stat.S_IMODE(_user_config.stat().st_mode) == 0o600
    assert stat.S_IMODE(_user_config.parent.stat().st_mode) == 0o700

    listed = cli("secret", "list")
    assert ok(listed) == "aws-key\ngcp.token_2\n"  # names only
    # Setting again replaces the value; the file stays private.
    ok(cli("secret", "set", "aws-key", input="rotated"))
    assert json.loads(_user_config.read_text())["aws-key"] == "rotated"
    assert stat.S_IMODE(_user_config.stat().st_mode) == 0o600

    assert ok(cli("secret", "delete", "gcp.token_2")) == "deleted secret 'gcp.token_2'\n"
    assert ok(cli("secret", "list")) == "aws-key\n"
    assert "no secret has the name given" in failed(cli("secret", "delete", "gcp.token_2"))
    # Nothing about secrets goes into the project.
    assert list(project.root.iterdir()) == []


def test_a_value_is_never_taken_from_the_command_line(cli, _user_config) -> None:
    value = a_secret()
    message = failed(cli("secret", "set", "aws-key", value, input="x"))
    assert "takes only NAME" in message and value not in message
    assert not _user_config.exists()
    assert "refusing to store an empty value" in failed(cli("secret", "set", "k", input="\n"))
    message = failed(cli("secret", "set", "has space", input="x"))
    assert "secret name given is invalid" in message and "has space" not in message
    assert not _user_config.exists()


def test_on_a_terminal_the_value_is_prompted_for_without_echo(project, subprocess_env) -> None:
    value = a_secret()
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "stepframe", "secret", "set", "typed"],
        cwd=project.root,
        env=subprocess_env(),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
    )
    os.close(terminal)
    seen = b""

    def read_until(text: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 20
        while text not in seen and time.monotonic() < deadline:
            if select.select([controller], [], [], 0.1)[0]:
                try:
                    seen += os.read(controller, 4096)
                except OSError:
                    return

    try:
        read_until(b"value for secret 'typed':")
        os.write(controller, value.encode() + b"\n")
        read_until(b"Repeat for confirmation:")
        os.write(controller, value.encode() + b"\n")
        read_until(b"stored secret")
        assert process.wait(timeout=20) == 0, seen
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
            process.wait()
    assert b"stored secret 'typed'" in seen
    assert value.encode() not in seen  # the terminal did not echo it
    with open(os.environ["STEPFRAME_SECRETS_FILE"]) as stored:
        assert json.load(stored) == {"typed": value}


def test_a_secrets_file_others_can_read_is_refused(cli, _user_config, acme) -> None:
    value = a_secret()
    ok(cli("secret", "set", "token", input=value))
    _user_config.chmod(0o644)
    for args in (["secret", "list"], ["secret", "set", "other"]):
        message = failed(cli(*args, input="x"))
        assert f"secrets file {_user_config} can be read by other users (mode 644)" in message
        assert f"run `chmod 600 {_user_config}`" in message
        assert value not in message
    # Also when a connector needs it: registering checks that the secret exists.
    message = failed(
        cli("connector", "register", "v", "-f", "acme-vault", "--token", "token", env=acme.env)
    )
    assert f"chmod 600 {_user_config}" in message
    _user_config.chmod(0o600)
    assert ok(cli("secret", "list")) == "token\n"


def test_a_secret_field_refuses_a_value_without_echoing_it(project, cli, acme) -> None:
    path = project.root / "stepframe.toml"
    path.write_text("# mine\n")
    for pasted, error in (
        ("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "takes the name of a secret"),
        ("AKIAIOSFODNN7EXAMPLE", "names no stored secret"),  # could be a name: is not one
    ):
        message = failed(
            cli("connector", "register", "v", "-f", "acme-vault", "--token", pasted, env=acme.env)
        )
        assert f"connectors.v.token: {error}" in message
        assert "stepframe secret set NAME" in message
        assert pasted not in message
        assert path.read_text() == "# mine\n"
    # The same value written into the file by hand is refused when the stack is used.
    path.write_text(
        '[connectors.v]\nflavor = "acme-vault"\ntoken = "wJalrXUtnFEMI/K7MDENG+bPxRfiCY"\n'
        '[step_operators.b]\nflavor = "acme"\nproject = "p"\nconnector = "v"\n'
        '[stacks.s]\nstep_operators = ["b"]\n'
    )
    message = failed(cli("stack", "describe", "s", env=acme.env))
    assert "connectors.v.token: takes the name of a secret" in message
    assert "wJalrXUtnFEMI" not in message


def test_describe_shows_references_not_values(project, cli, acme) -> None:
    value = a_secret()
    ok(cli("secret", "set", "acme-token", input=value))
    env = {**acme.env, "ACME_API_KEY": value}
    ok(cli("connector", "register", "vault", "-f", "acme-vault", "--token", "acme-token", env=env))
    ok(
        cli(
            "step-operator", "register", "batch", "-f", "acme", "--project", "p",
            "--api-key", "env:ACME_API_KEY", "--connector", "vault", env=env,
        )
    )  # fmt: skip
    vault = ok(cli("connector", "describe", "vault", env=env))
    assert "token = '<secret acme-token>'" in vault
    batch = json.loads(ok(cli("step-operator", "describe", "batch", "--json", env=env)))
    assert batch["config"]["api_key"] == "<secret env:ACME_API_KEY>"
    assert batch["connector"] == "vault"
    assert value not in vault + json.dumps(batch) + path_text(project)


def path_text(project) -> str:
    return (project.root / "stepframe.toml").read_text()


ENV_PIPELINE = """
import os

from stepframe import pipeline, step


@step(operator="batch")
def remote() -> dict:
    environment = dict(os.environ)
    print("environment:", environment)
    return environment


@step
def summary(environment: dict) -> str:
    return environment["ACME_SPOT"]


@pipeline
def uses_secret():
    summary(remote())
"""


def test_env_references_are_read_from_the_environment_when_needed(project, cli, acme) -> None:
    import hashlib

    value = a_secret()
    env = acme.env
    ok(
        cli(
            "connector",
            "register",
            "vault",
            "-f",
            "acme-vault",
            "--token",
            "env:ACME_TOKEN",
            env=env,
        )
    )
    ok(
        cli(
            "step-operator",
            "register",
            "batch",
            "-f",
            "acme",
            "--project",
            "p",
            "--connector",
            "vault",
            env=env,
        )
    )
    ok(cli("stack", "register", "s", "-s", "batch", "--set", env=env))
    path = project.write(ENV_PIPELINE)

    # The connector is asked before the run starts (before any image is built): the
    # missing variable is bad input, exit status 2, on one line.
    result = cli("run", str(path), env=env)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "stepframe: error: environment variable ACME_TOKEN (referenced as env:ACME_TOKEN) "
        "is not set"
    ]

    result = cli("run", str(path), env={**env, "ACME_TOKEN": value})
    ok(result)
    with project.history() as history:
        (job,) = [j for j in history.list_jobs() if j.flavor == "acme"]
    assert job.handle.data["token_sha256"] == hashlib.sha256(value.encode()).hexdigest()


GREP_PIPELINE = """
import os

from stepframe import pipeline, step


@step
def prepare() -> int:
    return 21


@step(operator="batch", settings={"acme": {"environment": {"MODE": "grep"}}})
def remote(x: int) -> dict:
    environment = dict(os.environ)
    print("environment:", environment)
    for key, value in sorted(environment.items()):
        print(f"{key}={value}")
    environment["doubled"] = str(2 * x)
    return environment


@step
def check(environment: dict) -> str:
    print("checked", len(environment))
    return environment["MODE"]


@step(operator="batch")
def fails(environment: dict) -> None:
    raise RuntimeError(f"failing on purpose, with {len(environment)} variables")


@pipeline
def uses_secret():
    environment = remote(prepare())
    check(environment)
    fails(environment)
"""


def test_a_secret_used_by_a_run_appears_nowhere(project, cli, acme, _user_config) -> None:
    """The grep test: after a run whose connector authenticated with a stored secret, the
    value is in no project file, no run record, no log, no output and no job environment."""
    import hashlib

    value = a_secret()
    env = acme.env
    outputs: list[str] = []

    def run(*args: str, expect: int = 0) -> str:
        result = cli(*args, env=env)
        outputs.extend([result.stdout, result.stderr])
        assert result.returncode == expect, result.stdout + result.stderr
        return result.stdout

    result = cli("secret", "set", "acme-token", input=value)
    outputs.extend([result.stdout, result.stderr])
    run("connector", "register", "vault", "-f", "acme-vault", "--token", "acme-token")
    run("step-operator", "register", "batch", "-f", "acme", "--project", "p", "--spot", "true")
    run("step-operator", "connect", "batch", "--connector", "vault")
    run("stack", "register", "secure", "-s", "batch", "--set")
    path = project.write(GREP_PIPELINE)

    run("run", str(path), "--dry-run")
    out = run("run", str(path), expect=1)  # `fails` fails, on purpose
    assert "[remote] succeeded" in out and "[check] succeeded" in out
    assert "failing on purpose" in out
    out = run("run", str(path), expect=1)  # again: cached steps, a failing one re-run
    assert "[remote] cached" in out
    with project.history() as history:
        (first, _) = history.list_runs()[::-1]
        remote_jobs = [j for j in history.list_jobs() if j.flavor == "acme" and j.step == "remote"]
    with ThreadPoolExecutor(4) as pool:  # independent commands: at once
        list(
            pool.map(
                lambda args: run(*args),
                [
                    ["runs", "list"],
                    ["runs", "show", first.run_id],
                    ["jobs", "list"],
                    ["stack", "describe"],
                    ["connector", "describe", "vault", "--json"],
                    ["step-operator", "describe", "batch"],
                    ["secret", "list"],
                    ["plugins"],
                ],
            )
        )

    # The secret was used: the operator got it from the connector (it records a hash).
    assert remote_jobs[0].handle.data["token_sha256"] == hashlib.sha256(value.encode()).hexdigest()
    searched = [path for path in project.root.rglob("*") if path.is_file()]
    names = {p.relative_to(project.root).as_posix() for p in searched}
    assert "stepframe.toml" in names and ".stepframe/runs.db" in names
    assert any(n.startswith(".stepframe/jobs/") and n.endswith(".log") for n in names)
    assert any(n.endswith("launch.json") for n in names)
    assert any(n.endswith("result.json") for n in names)
    job_log = next(p for p in searched if p.suffix == ".log" and "remote" in p.name)
    assert "MODE=grep" in job_log.read_text()  # the environment dump is in the log
    for file in searched:
        assert value.encode() not in file.read_bytes(), file
    for text in outputs:
        assert value not in text
    assert value in _user_config.read_text()  # where it does belong
