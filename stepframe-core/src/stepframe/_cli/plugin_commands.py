"""The ``stepframe`` group, with the commands plugins add (hook ``register_commands``).

Plugins are loaded for their commands only when the command line meets a name that is
not the core's own, or lists every command for ``--help``: ``stepframe run`` and the
other core commands start as fast as before.
"""

from __future__ import annotations

import click

from stepframe._cli.errors import StepframeGroup

__all__ = ["PluginCommandGroup"]


class PluginCommandGroup(StepframeGroup):
    """A click group that asks the plugins for their commands once, when needed."""

    _plugin_commands_added = False

    def _add_plugin_commands(self) -> None:
        if self._plugin_commands_added:
            return
        self._plugin_commands_added = True
        from stepframe._plugins.manager import get_plugins

        get_plugins().hooks.register_commands(self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and not self._plugin_commands_added:
            self._add_plugin_commands()
            command = super().get_command(ctx, cmd_name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands()
        return super().list_commands(ctx)
