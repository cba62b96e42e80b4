"""``stepframe <kind> ...``, ``stepframe stack ...`` and ``stepframe flavor list``, as a
user runs them: real processes editing a real ``stepframe.toml``.

The third-party flavors come from the ``acme`` fixture, a distribution installed through
an entry point, so the CLI sees them exactly as it would an installed wheel.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import tomlkit


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def failed(result: subprocess.CompletedProcess[str]) -> str:
    """The error message of a command that must fail (without a traceback)."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


@pytest.fixture
def cli_here(project, acme):
    """The same commands run in this process (click's test runner, the real code and the
    real entry points) -- for the many short commands of the error tests."""
    from click.testing import CliRunner

    import stepframe
    from stepframe._cli.main import cli
    from stepframe._plugins.manager import activated

    plugins = stepframe.load_plugins(env={"STEPFRAME_LOAD_PLUGINS": "acme"})
    try:
        runner = CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # click < 8.2
    except TypeError:
        runner = CliRunner()

    def invoke(*args: str, env=None) -> subprocess.CompletedProcess[str]:
        with activated(plugins):
            result = runner.invoke(cli, list(args), catch_exceptions=False)
        return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)

    return invoke


def config(project) -> dict[str, Any]:
    return tomlkit.parse((project.root / "stepframe.toml").read_text()).unwrap()


def test_the_default_stack_exists_without_a_file(project, cli) -> None:
    described = ok(cli("stack", "describe", "--json"))
    stack = json.loads(described)
    assert stack["name"] == "default"
    assert stack["artifact_store_uri"] == (project.root / ".stepframe" / "artifacts").as_uri()
    assert {(c["role"], c["name"], c["flavor"]) for c in stack["components"]} == {
        ("artifact store", "local", "local"),
        ("step operator", "inprocess", "inprocess"),
        ("step operator", "local", "local"),
    }
    assert ok(cli("stack", "list")).splitlines() == [  # as `stack describe` shows it
        "* default  (artifact store local; operators inprocess, local)"
    ]
    operators = ok(cli("step-operator", "list")).splitlines()
    assert [line.split() for line in operators] == [
        ["inprocess", "inprocess", "built", "in"],
        ["local", "local", "built", "in"],
    ]
    assert "built in" in ok(cli("step-operator", "describe", "local"))
    # Reading never creates anything.
    assert sorted(p.name for p in project.root.iterdir()) == []


def test_core_flavors_register_describe_update_and_delete(project, cli_here) -> None:
    cli = cli_here
    # The local artifact store has a config class (path); the local operator has none.
    out = ok(cli("artifact-store", "register", "scratch", "--flavor", "local", "--path", "store"))
    assert "registered artifact store 'scratch' (flavor local)" in out
    ok(cli("step-operator", "register", "subprocess", "-f", "local"))
    assert config(project) == {
        "artifact_stores": {"scratch": {"flavor": "local", "path": "store"}},
        "step_operators": {"subprocess": {"flavor": "local"}},
    }

    described = json.loads(ok(cli("artifact-store", "describe", "scratch", "--json")))
    assert described["flavor"] == "local" and described["plugin"] == "local-artifact-store"
    assert described["config"] == {"path": "store"}
    assert described["defined_in"] == str(project.root / "stepframe.toml")
    text = ok(cli("artifact-store", "describe", "scratch"))
    assert "plugin: local-artifact-store" in text and "path = 'store'" in text

    listed = ok(cli("step-operator", "list"))
    assert [line.split()[:2] for line in listed.splitlines()] == [
        ["inprocess", "inprocess"],
        ["local", "local"],
        ["subprocess", "local"],
    ]
    assert "subprocess  local         stepframe.toml" in listed

    ok(cli("artifact-store", "update", "scratch", "--path=elsewhere"))
    assert config(project)["artifact_stores"]["scratch"] == {"flavor": "local", "path": "elsewhere"}
    ok(cli("artifact-store", "update", "scratch", "--unset", "path"))
    assert config(project)["artifact_stores"]["scratch"] == {"flavor": "local"}

    # A flavor without a config class takes no options.
    message = failed(cli("step-operator", "update", "subprocess", "--environment", "{}"))
    assert "step_operators.subprocess: unknown key(s) environment" in message

    assert "deleted step operator 'subprocess'" in ok(cli("step-operator", "delete", "subprocess"))
    ok(cli("artifact-store", "delete", "scratch"))
    assert config(project) == {}
    message = failed(cli("step-operator", "delete", "subprocess"))
    assert "there is no step operator named 'subprocess'" in message
    message = failed(cli("step-operator", "describe", "nope"))
    assert "there is no step operator named 'nope'" in message


def test_a_third_party_flavor_gets_the_whole_cli(project, cli, acme) -> None:
    """No CLI code of its own: options come from the flavor's attrs config class."""
    env = acme.env
    out = ok(
        cli(
            "step-operator", "register", "batch", "--flavor", "acme",
            "--project", "1234",  # a str field: stays a string
            "--max-workers", "8",
            "--spot", "yes",
            "--zones", '["eu-1a", "eu-1b"]',
            "--api-key", "env:ACME_API_KEY",
            env=env,
        )
    )  # fmt: skip
    assert "registered step operator 'batch' (flavor acme)" in out
    assert config(project)["step_operators"]["batch"] == {
        "flavor": "acme",
        "project": "1234",
        "max_workers": 8,
        "spot": True,
        "zones": ["eu-1a", "eu-1b"],
        "api_key": "env:ACME_API_KEY",
    }
    described = json.loads(ok(cli("step-operator", "describe", "batch", "--json", env=env)))
    assert described["plugin"] == "acme"
    assert described["config"] == {
        "project": "1234",
        "max_workers": 8,
        "spot": True,
        "zones": ["eu-1a", "eu-1b"],
        "api_key": "<secret env:ACME_API_KEY>",
        "environment": {},  # the class default
    }

    ok(cli("step-operator", "update", "batch", "--max-workers", "2", "--unset", "zones", env=env))
    ok(cli("step-operator", "update", "batch", "--environment", '{"MODE": "fast"}', env=env))
    assert config(project)["step_operators"]["batch"] == {
        "flavor": "acme",
        "project": "1234",
        "max_workers": 2,
        "spot": True,
        "api_key": "env:ACME_API_KEY",
        "environment": {"MODE": "fast"},
    }
    listed = ok(cli("step-operator", "list", env=env)).splitlines()
    assert listed[0].split() == ["batch", "acme", "stepframe.toml"]

    # Without the plugin the component is still listed, but cannot be used or described.
    assert ok(cli("step-operator", "list")).splitlines()[0].split()[:2] == ["batch", "acme"]
    message = failed(cli("step-operator", "describe", "batch"))
    assert "step_operators.batch.flavor: no installed plugin provides step_operator flavor" in (
        message
    )


def test_flavor_list_names_the_plugin_of_each_flavor(cli, acme) -> None:
    rows = [line.split()[:3] for line in ok(cli("flavor", "list", env=acme.env)).splitlines()]
    assert rows == [
        ["artifact_store", "local", "local-artifact-store"],
        ["connector", "acme-vault", "acme"],
        ["step_operator", "acme", "acme"],
        ["step_operator", "inprocess", "inprocess"],
        ["step_operator", "local", "local"],
    ]
    only = ok(cli("flavor", "list", "--kind", "connector", env=acme.env)).splitlines()
    assert [line.split()[:3] for line in only] == [["connector", "acme-vault", "acme"]]
    assert "acme tokens from a secret" in only[0]
    assert "acme" not in ok(cli("flavor", "list"))  # not loaded: not listed
    message = failed(cli("flavor", "list", "--kind", "orchestrator"))
    assert "Invalid value for '--kind'" in message


ORIGINAL = """\
# Project stack configuration.  Hand-written; keep the comments!
active_stack = "default"   # switch with `stepframe stack set`

# Where artifacts go
[artifact_stores.shared]    # the team's folder
flavor = "local"
path   =   "/srv/artifacts"   # mounted from the NAS

# Operators below
[step_operators.batch]
flavor = 'acme'
project = "ml"
max_workers = 4   # the quota

# Stacks
[stacks.team]
artifact_store = "shared"
step_operators = [ "batch" ]
"""


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ["step-operator", "update", "batch", "--max-workers", "many"],
            "step_operators.batch.max_workers: expected int, got str 'many'",
        ),
        (
            ["step-operator", "update", "batch", "--spot", "maybe"],
            "step_operators.batch.spot: expected bool, got str 'maybe'",
        ),
        (
            ["step-operator", "update", "batch", "--zones", "eu-1a,eu-1b"],
            "step_operators.batch.zones: expected a list, got str 'eu-1a,eu-1b'",
        ),
        (
            ["step-operator", "update", "batch", "--zones", '["eu", 1]'],
            "step_operators.batch.zones[1]: expected str, got int 1",
        ),
        (
            ["step-operator", "update", "batch", "--environment", "MODE=fast"],
            "step_operators.batch.environment: expected a table, got str 'MODE=fast'",
        ),
        (
            ["step-operator", "register", "other", "--flavor", "acme", "--max-workers", "1"],
            "step_operators.other.project: required value is missing",
        ),
        (
            ["step-operator", "update", "batch", "--max-wrokers", "1"],
            "step_operators.batch: unknown key(s) max_wrokers",
        ),
        (
            ["step-operator", "register", "other", "--flavor", "acme-batch"],
            "step_operators.other.flavor: no installed plugin provides step_operator flavor "
            "'acme-batch'",
        ),
        (
            ["step-operator", "register", "batch", "--flavor", "local"],
            "step_operators.batch already exists; change it with `stepframe step-operator update",
        ),
        (
            ["step-operator", "update", "missing", "--spot", "true"],
            "there is no step operator named 'missing'",
        ),
        (
            ["step-operator", "connect", "batch", "--connector", "vault"],
            "step_operators.batch.connector: there is no connector named 'vault'",
        ),
        (
            ["stack", "register", "broken", "-s", "batch", "-s", "gpu"],
            "stacks.broken.step_operators: there is no step operator named 'gpu'",
        ),
        (["stack", "register", "team", "-s", "batch"], "stack 'team' already exists"),
        (["stack", "register", "default"], "'default' is the built-in stack"),
        (["stack", "set", "nope"], "stack 'nope' is not defined"),
        (["stack", "delete", "nope"], "there is no stack named 'nope'"),
        (["step-operator", "delete", "batch"], "step operator 'batch' is used by stack team"),
        (["artifact-store", "delete", "shared"], "artifact store 'shared' is used by stack team"),
    ],
    ids=lambda value: "-".join(value[:3]) if isinstance(value, list) else "",
)
def test_a_refused_edit_says_where_and_leaves_the_file_untouched(
    project, cli_here, acme, args, error
) -> None:
    cli = cli_here
    path = project.root / "stepframe.toml"
    path.write_text(ORIGINAL)
    before = path.read_bytes()
    stat = path.stat()

    message = failed(cli(*args, env=acme.env))

    assert error in message
    assert message.count("\n") <= 3  # one error, not a dump
    assert path.read_bytes() == before
    assert path.stat().st_ino == stat.st_ino  # not even rewritten with the same bytes
    assert {p.name for p in project.root.iterdir()} - {".stepframe.toml.lock"} == {path.name}


def test_a_hand_edited_file_with_a_bad_value_is_reported_with_its_path(
    project, cli_here, acme
) -> None:
    cli = cli_here
    path = project.root / "stepframe.toml"
    path.write_text(ORIGINAL.replace("max_workers = 4", 'max_workers = "4"\nregion = "x"'))
    for args in (["stack", "describe", "team"], ["step-operator", "describe", "batch"]):
        message = failed(cli(*args, env=acme.env))
        assert "step_operators.batch.max_workers: expected int, got str '4'" in message
        assert "step_operators.batch: unknown key(s) region" in message


def test_a_toml_syntax_error_is_reported_with_line_and_column(project, cli) -> None:
    # (In a real process: this is what users see.)
    path = project.root / "stepframe.toml"
    broken = ORIGINAL.replace('flavor = "local"', 'flavor = "local', 1)
    path.write_text(broken)
    line = broken.splitlines().index('flavor = "local') + 1
    for args in (
        ["stack", "describe"],
        ["stack", "list"],
        ["step-operator", "list"],
        ["artifact-store", "register", "more", "--flavor", "local"],
    ):
        message = failed(cli(*args))
        assert f"{path}:{line}:" in message, message
        assert "invalid TOML" in message
    assert path.read_text() == broken
    # The column too, counted from 1: here, where the unterminated string's line ends.
    column = len('flavor = "local') + 1
    assert f"{path}:{line}:{column}: invalid TOML" in failed(cli("stack", "list"))


EDITED = """\
# Project stack configuration.  Hand-written; keep the comments!
active_stack = "solo"   # switch with `stepframe stack set`

# Where artifacts go
[artifact_stores.shared]    # the team's folder
flavor = "local"
path   =   "/srv/artifacts"   # mounted from the NAS

[artifact_stores.scratch]
flavor = "local"

# Operators below
[step_operators.batch]
flavor = 'acme'
project = "ml"
max_workers = 6   # the quota
spot = true
connector = "vault"

# Stacks
[stacks.team]
artifact_store = "shared"
step_operators = [ "batch" ]

[stacks.solo]
artifact_store = "local"
step_operators = ["batch"]

[connectors.vault]
flavor = "acme-vault"
token = "acme-token"
"""


def test_edits_keep_the_users_comments_and_formatting(project, cli, acme) -> None:
    path = project.root / "stepframe.toml"
    path.write_text(ORIGINAL)
    env = acme.env
    echo = "secret-value-0123"
    ok(cli("secret", "set", "acme-token", input=echo))
    ok(cli("artifact-store", "register", "scratch", "--flavor", "local", env=env))
    ok(cli("step-operator", "update", "batch", "--spot", "true", "--max-workers", "6", env=env))
    ok(cli("connector", "register", "vault", "-f", "acme-vault", "--token", "acme-token", env=env))
    ok(cli("step-operator", "connect", "batch", "--connector", "vault", env=env))
    ok(cli("stack", "register", "solo", "-s", "batch", env=env))
    ok(cli("stack", "set", "solo", env=env))

    assert path.read_text() == EDITED
    # Deleting gives the comments above the next table to the table before.
    ok(cli("stack", "set", "team", env=env))
    ok(cli("stack", "delete", "solo", env=env))
    ok(cli("artifact-store", "delete", "scratch", env=env))
    ok(cli("step-operator", "update", "batch", "--unset", "spot", env=env))
    text = path.read_text()
    assert text == ORIGINAL.replace('"default"', '"team"').replace(
        "max_workers = 4   # the quota\n", 'max_workers = 6   # the quota\nconnector = "vault"\n'
    ) + ('\n[connectors.vault]\nflavor = "acme-vault"\ntoken = "acme-token"\n')
    assert echo not in text


def test_commands_find_the_file_from_a_subdirectory(project, cli) -> None:
    path = project.root / "stepframe.toml"
    path.write_text("# mine\n")
    deep = project.root / "src" / "models"
    deep.mkdir(parents=True)

    out = ok(cli("step-operator", "register", "proc", "--flavor", "local", cwd=deep))
    assert f"in {path}" in out
    assert path.read_text() == '# mine\n\n[step_operators.proc]\nflavor = "local"\n'
    assert not (deep / "stepframe.toml").exists()
    listed = ok(cli("step-operator", "list", cwd=deep)).splitlines()
    assert ["proc", "local", "stepframe.toml"] in [line.split() for line in listed]
    ok(cli("artifact-store", "register", "data", "-f", "local", "--path", "data", cwd=deep))
    ok(cli("artifact-store", "register", "home", "-f", "local", "--path", "~/sf", cwd=deep))
    ok(cli("stack", "register", "sub", "-a", "data", "-s", "proc", "--set", cwd=deep))
    ok(cli("stack", "register", "mine", "-a", "home", cwd=deep))
    # Paths in the file are relative to the project root, not to where the command ran.
    described = ok(cli("stack", "describe", cwd=deep))
    assert described.startswith(f"stack sub  (artifacts in {(project.root / 'data').as_uri()})")
    described = ok(cli("stack", "describe", "mine", cwd=deep, env={"HOME": "/home/someone"}))
    assert described.startswith("stack mine  (artifacts in file:///home/someone/sf)")


def test_stacks_register_list_describe_set_and_delete(project, cli, acme) -> None:
    env = acme.env
    ok(cli("artifact-store", "register", "shared", "--flavor", "local", "--path", "../shared"))
    ok(cli("secret", "set", "acme-token", input="tok"))
    ok(cli("connector", "register", "vault", "-f", "acme-vault", "--token", "acme-token", env=env))
    ok(cli("step-operator", "register", "batch", "-f", "acme", "--project", "ml", env=env))
    out = ok(cli("step-operator", "connect", "batch", "--connector", "vault", env=env))
    assert "step operator 'batch' now authenticates through connector 'vault'" in out

    out = ok(cli("stack", "register", "team", "-a", "shared", "-s", "batch", "--set", env=env))
    assert "registered stack 'team' and made it active" in out
    ok(cli("stack", "register", "plain", env=env))
    assert config(project)["stacks"] == {
        "team": {"artifact_store": "shared", "step_operators": ["batch"]},
        "plain": {"artifact_store": "local", "step_operators": []},
    }
    assert config(project)["active_stack"] == "team"
    assert ok(cli("stack", "list", env=env)).splitlines() == [
        "  default  (artifact store local; operators inprocess, local)",
        "  plain  (artifact store local; operators inprocess, local)",
        "* team  (artifact store shared; operators inprocess, local, batch)",
    ]
    described = ok(cli("stack", "describe", env=env))
    shared = (project.root.parent / "shared").as_uri()
    assert described.splitlines() == [
        f"stack team  (artifacts in {shared})",
        "  artifact store     shared  (local)",
        "  step operator      inprocess  (inprocess)",
        "  step operator      local  (local)",
        "  step operator      batch  (acme)",
        "  connector          vault  (acme-vault)",
    ]
    assert "stack plain" in ok(cli("stack", "describe", "plain", env=env))
    # STEPFRAME_STACK overrides the file's choice for one command.
    out = ok(cli("stack", "describe", env={**env, "STEPFRAME_STACK": "plain"}))
    assert out.startswith("stack plain")

    message = failed(cli("connector", "delete", "vault", env=env))
    assert "connector 'vault' is used by step_operators.batch" in message
    message = failed(cli("stack", "delete", "team", env=env))
    assert "stack 'team' is active" in message
    assert "active stack is now 'plain'" in ok(cli("stack", "set", "plain", env=env))
    assert ok(cli("stack", "delete", "team", env=env)) == "deleted stack 'team'\n"
    ok(cli("step-operator", "delete", "batch", env=env))
    ok(cli("connector", "delete", "vault", env=env))
    assert config(project) == {
        "active_stack": "plain",
        "artifact_stores": {"shared": {"flavor": "local", "path": "../shared"}},
        "stacks": {"plain": {"artifact_store": "local", "step_operators": []}},
    }


def test_concurrent_edits_all_land_and_the_file_is_never_partial(project, cli) -> None:
    path = project.root / "stepframe.toml"
    path.write_text("# shared by everyone\n")
    commands = [
        [sys.executable, "-m", "stepframe", "step-operator", "register", f"op{i}", "-f", "local"]
        for i in range(8)
    ]
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:  # every read sees a whole file, before or after some edit
        while not stop.is_set():
            text = path.read_text()
            tomlkit.parse(text)
            seen.append(text)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        processes = [
            subprocess.Popen(
                command,
                cwd=project.root,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for command in commands
        ]
        results = [(p.wait(timeout=60), *p.communicate()) for p in processes]
    finally:
        stop.set()
        watcher.join()
    assert all(code == 0 for code, _, _ in results), results
    assert sorted(config(project)["step_operators"]) == [f"op{i}" for i in range(8)]
    assert path.read_text().startswith("# shared by everyone\n")
    assert len(set(seen)) > 1  # the watcher saw the file change
    # Nothing left behind but the lock file (the temporary files were renamed).
    assert sorted(p.name for p in project.root.iterdir()) == [".stepframe.toml.lock", path.name]


def test_a_failed_write_leaves_the_old_file(project, monkeypatch) -> None:
    """The new text goes to a temporary file that replaces the old one in one rename; a
    crash before the rename leaves the old file and no temporary file."""
    import os

    from stepframe._config.toml_file import edit_toml

    path = project.root / "stepframe.toml"
    path.write_text("# before\n")

    def crash(source: str, target: object) -> None:
        assert Path(source).read_text().startswith("# before\n\n[step_operators.x]")
        raise OSError("disk unplugged")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk unplugged"), edit_toml(path) as document:
        document["step_operators"] = {"x": {"flavor": "local"}}
    assert path.read_text() == "# before\n"
    assert sorted(p.name for p in project.root.iterdir()) == [".stepframe.toml.lock", path.name]
