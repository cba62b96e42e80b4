"""Plugins add commands to ``stepframe`` through the ``register_commands`` hook (issue 12).

The group asks the plugins only for a name that is neither the core's own nor declared as
a ``stepframe.commands`` entry point (test_declared_commands.py), never for ``--help``; a
plugin's command never replaces one the core has, and a plugin that raises is a warning.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import click
import pytest
from click.testing import CliRunner

from stepframe import hookimpl, load_plugins
from stepframe._cli.plugin_commands import PluginCommandGroup
from stepframe._plugins.manager import PluginConflictWarning, PluginLoadWarning, activated


class Greeter:
    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        @click.command("greet")
        def greet() -> None:
            """Say hello."""
            click.echo("hello from a plugin")

        @click.command("run")
        def run() -> None:
            click.echo("not the core's run")

        cli.add_command(greet)
        cli.add_command(run)


class Broken:
    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        raise RuntimeError("no commands today")


def _cli() -> PluginCommandGroup:
    cli = PluginCommandGroup(help="stepframe, in small.")

    @cli.command("run")
    def run() -> None:
        click.echo("the core's run")

    return cli


def test_a_plugin_command_runs_and_a_core_name_stays_the_cores() -> None:
    plugins = load_plugins(entry_points=False, extra=[("greeter", Greeter())])
    with activated(plugins), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli = _cli()
        assert CliRunner().invoke(cli, ["run"]).output == "the core's run\n"
        assert not cli._plugin_commands_added  # a core command asks no plugin
        assert CliRunner().invoke(cli, ["greet"]).output == "hello from a plugin\n"
        assert CliRunner().invoke(cli, ["run"]).output == "the core's run\n"
    conflicts = [w for w in caught if issubclass(w.category, PluginConflictWarning)]
    assert len(conflicts) == 1 and "'run'" in str(conflicts[0].message)
    assert "greeter" in str(conflicts[0].message)


def test_help_does_not_load_plugins_for_the_hooks_commands() -> None:
    """``--help`` would have to load every plugin to list the hook's commands: it lists the
    declared ones only, and the hook's still run when named."""
    plugins = load_plugins(entry_points=False, extra=[("greeter", Greeter())])
    with activated(plugins), warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginConflictWarning)
        cli = _cli()
        output = CliRunner().invoke(cli, ["--help"]).output
        assert "greet" not in output and "Say hello." not in output
        assert not cli._plugin_commands_added
        assert CliRunner().invoke(cli, ["greet"]).output == "hello from a plugin\n"


def test_a_plugin_that_raises_is_a_warning_and_the_rest_works() -> None:
    plugins = load_plugins(entry_points=False, extra=[("broken", Broken()), ("greeter", Greeter())])
    with activated(plugins), pytest.warns(PluginLoadWarning, match="broken.*no commands today"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PluginConflictWarning)
            result = CliRunner().invoke(_cli(), ["greet"])
    assert result.output == "hello from a plugin\n"


def test_the_installed_docker_plugin_adds_image_prune() -> None:
    pytest.importorskip("stepframe_docker")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPFRAME_")}
    result = subprocess.run(
        [sys.executable, "-m", "stepframe", "image", "prune", "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--keep" in result.stdout
