"""Commands plugins declare as ``stepframe.commands`` entry points (issue 12, CLI start-up).

``stepframe --help`` lists them from the distributions' metadata without importing any
plugin module; a declared command's module is imported only when that command runs.
Each case runs ``python -m stepframe`` in a fresh process on a folder holding a made-up
distribution (its dist-info and modules); a module proves it was imported by writing a
marker file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

COMMAND_MODULE = """
from pathlib import Path

Path({marker!r}).touch()

import click


@click.command("{name}")
def command():
    \"\"\"Say hello from a declared command.\"\"\"
    click.echo("hello from {name}")
"""

PLUGIN_MODULE = """
from pathlib import Path

Path({marker!r}).touch()
"""


def install(
    site: Path, name: str, commands: dict[str, str], plugins: tuple[str, ...] = ()
) -> dict[str, Path]:
    """A distribution ``name`` declaring ``commands`` (command -> module source, with
    ``{marker}`` and ``{name}`` filled in) and plugin modules; the marker file of each
    module, by command name and by ``plugin:NAME``."""
    package = name.replace("-", "_")
    markers: dict[str, Path] = {}
    lines = ["[stepframe.commands]\n"]
    for command, source in commands.items():
        module = f"{package}_{command.replace('-', '_')}"
        markers[command] = site / f"{module}.imported"
        (site / f"{module}.py").write_text(
            textwrap.dedent(source).format(marker=str(markers[command]), name=command)
        )
        lines.append(f"{command} = {module}:command\n")
    lines.append("[stepframe]\n")
    for plugin in plugins:
        module = f"{package}_plugin_{plugin.replace('-', '_')}"
        markers[f"plugin:{plugin}"] = site / f"{module}.imported"
        (site / f"{module}.py").write_text(
            PLUGIN_MODULE.format(marker=str(markers[f"plugin:{plugin}"]))
        )
        lines.append(f"{plugin} = {module}\n")
    info = site / f"{package}-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("".join(lines))
    return markers


def stepframe(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STEPFRAME_")}
    pythonpath = os.pathsep.join([str(site), clean.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "stepframe", *args],
        capture_output=True,
        text=True,
        env={**clean, **env, "PYTHONPATH": pythonpath},
        cwd=site,
        check=False,
    )


@pytest.fixture
def site(tmp_path: Path) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    return folder


def test_help_lists_a_declared_command_without_importing_it_or_any_plugin(site: Path) -> None:
    markers = install(site, "stepframe-hello", {"hello": COMMAND_MODULE}, plugins=("hello",))
    result = stepframe(site, "--help")
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.split()[:1] == ["hello"]]
    assert "From stepframe-hello; see: stepframe hello --help" in line
    assert not markers["hello"].exists(), "--help imported the command's module"
    assert result.stderr == ""


def test_help_imports_no_plugin_module_nor_the_plugin_manager(site: Path) -> None:
    """The installed plugins (stepframe-docker and the rest, where installed) stay
    unimported by ``--help``, and so do pluggy and packaging."""
    probe = textwrap.dedent(
        """
        import sys
        from stepframe._cli.main import cli
        try:
            cli.main(["--help"], prog_name="stepframe")
        except SystemExit:
            pass
        loaded = sorted(
            name for name in sys.modules
            if name.partition(".")[0] in ("pluggy", "packaging")
            or name.startswith(("stepframe_", "stepframe._plugins.manager"))
        )
        print("LOADED:", ",".join(loaded))
        """
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STEPFRAME_")}
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=clean, check=True
    )
    (loaded,) = [line for line in result.stdout.splitlines() if line.startswith("LOADED:")]
    assert loaded == "LOADED: ", loaded


def test_a_declared_command_runs_importing_only_its_module(site: Path) -> None:
    markers = install(site, "stepframe-hello", {"hello": COMMAND_MODULE}, plugins=("hello",))
    result = stepframe(site, "hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello from hello\n"
    assert markers["hello"].exists()
    # Running it loaded no plugins: the distribution's plugin module was never imported.
    assert not markers["plugin:hello"].exists()
    sub_help = stepframe(site, "hello", "--help")
    assert "Say hello from a declared command." in sub_help.stdout


def test_a_core_command_imports_no_declared_command(site: Path) -> None:
    markers = install(site, "stepframe-hello", {"hello": COMMAND_MODULE})
    result = stepframe(site, "stack", "--help")
    assert result.returncode == 0, result.stderr
    assert not markers["hello"].exists()


def test_a_declared_name_the_core_has_stays_the_cores(site: Path) -> None:
    markers = install(site, "stepframe-rogue", {"run": COMMAND_MODULE})
    listed = stepframe(site, "--help")
    (line,) = [line for line in listed.stdout.splitlines() if line.split()[:1] == ["run"]]
    assert "Run a pipeline defined in a Python file." in line
    assert "distribution stepframe-rogue declares a command 'run'" in listed.stderr
    assert "PluginConflictWarning" in listed.stderr
    result = stepframe(site, "run", "--help")
    assert result.returncode == 0, result.stderr
    assert "Run a pipeline defined in a Python file." in result.stdout
    assert not markers["run"].exists()


def test_a_command_that_fails_to_load_is_a_warning_and_an_unknown_command(site: Path) -> None:
    install(site, "stepframe-broken", {"broken": "raise ImportError('no module today')\n"})
    result = stepframe(site, "broken")
    assert result.returncode == 2
    assert "distribution stepframe-broken could not load its command 'broken'" in result.stderr
    assert "ImportError: no module today" in result.stderr
    assert "stepframe: error: No such command 'broken'." in result.stderr
    assert "Traceback" not in result.stderr


def test_disabling_a_distributions_plugins_hides_its_commands(site: Path) -> None:
    install(site, "stepframe-hello", {"hello": COMMAND_MODULE}, plugins=("hello",))
    listed = stepframe(site, "--help", STEPFRAME_DISABLE_PLUGINS="hello")
    assert "stepframe-hello" not in listed.stdout
    allowed = stepframe(site, "--help", STEPFRAME_LOAD_PLUGINS="hello")
    assert "stepframe-hello" in allowed.stdout
