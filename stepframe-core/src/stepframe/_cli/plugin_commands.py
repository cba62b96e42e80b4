"""The ``stepframe`` group, with the commands plugins add.

A plugin distribution declares its commands as entry points of the ``stepframe.commands``
group (``image = "stepframe_docker._prune:command"``).  ``stepframe --help`` lists them
from that metadata alone, and a declared command's module is imported only when that
command runs: neither ``--help`` nor the core's commands import a plugin module.

The ``register_commands`` hook still works: for a name that is neither the core's nor
declared, the group loads the plugins once and asks them.  Such commands run, but
``--help`` does not list them (it would have to load every plugin).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from stepframe._cli.errors import StepframeGroup

if TYPE_CHECKING:
    from stepframe._plugins.discovery import FoundEntryPoint as EntryPoint

__all__ = ["COMMANDS_ENTRY_POINT_GROUP", "PluginCommandGroup", "declared_commands"]

COMMANDS_ENTRY_POINT_GROUP = "stepframe.commands"


def declared_commands(
    taken: set[str], env: Mapping[str, str] | None = None
) -> dict[str, EntryPoint]:
    """The commands plugin distributions declare, by name, without importing any of them.

    A name in ``taken`` (the core's own) or declared twice stays with its first owner
    (`PluginConflictWarning`).  A distribution whose plugins STEPFRAME_LOAD_PLUGINS or
    STEPFRAME_DISABLE_PLUGINS leaves out entirely has its commands left out too.
    """
    import os

    from stepframe._plugins.discovery import (
        ENTRY_POINT_GROUP,
        PluginConflictWarning,
        find_entry_points,
        plugin_is_wanted,
    )

    env = os.environ if env is None else env
    # One scan of the installed distributions for both groups.
    every = find_entry_points([ENTRY_POINT_GROUP, COMMANDS_ENTRY_POINT_GROUP])
    plugins_of: dict[int, list[str]] = {}
    for plugin in every:
        if plugin.group == ENTRY_POINT_GROUP:
            plugins_of.setdefault(id(plugin.dist), []).append(plugin.name)
    found: dict[str, EntryPoint] = {}
    for entry_point in every:
        if entry_point.group != COMMANDS_ENTRY_POINT_GROUP:
            continue
        plugins = plugins_of.get(id(entry_point.dist), [])
        if plugins and not any(plugin_is_wanted(name, None, env) for name in plugins):
            continue
        first = found.get(entry_point.name)
        if entry_point.name in taken or first is not None:
            owner = "stepframe" if first is None else _owner(first)
            warnings.warn(
                f"stepframe: {_owner(entry_point)} declares a command {entry_point.name!r}, "
                f"which {owner} already has; the first one stays",
                PluginConflictWarning,
                stacklevel=2,
            )
            continue
        found[entry_point.name] = entry_point
    return found


def _owner(entry_point: EntryPoint) -> str:
    dist = entry_point.dist
    return f"distribution {dist.name}" if dist is not None else f"entry point {entry_point.value}"


def _load_command(name: str, entry_point: EntryPoint) -> click.Command | None:
    """The declared command: the click command the entry point names, or what the
    zero-argument callable it names returns.  A failure is a `PluginLoadWarning`."""
    from stepframe._plugins.discovery import PluginLoadWarning

    try:
        target: Any = entry_point.load()
        command = target if isinstance(target, click.Command) else target()
        if not isinstance(command, click.Command):
            raise TypeError(f"{entry_point.value} gave {command!r}, not a click command")
    except Exception as error:  # a plugin's bug must not take the CLI down
        warnings.warn(
            f"stepframe: {_owner(entry_point)} could not load its command {name!r} "
            f"({entry_point.value}): {type(error).__name__}: {error}",
            PluginLoadWarning,
            stacklevel=3,
        )
        return None
    return command


class PluginCommandGroup(StepframeGroup):
    """A click group with the plugins' commands: declared ones from entry-point metadata,
    loaded when run; the `register_commands` hook's asked once, for a name nobody has."""

    _plugin_commands_added = False
    _declared: dict[str, EntryPoint] | None = None

    def _declared_commands(self) -> dict[str, EntryPoint]:
        if self._declared is None:
            self._declared = declared_commands(taken=set(self.commands))
        return self._declared

    def _add_plugin_commands(self) -> None:
        if self._plugin_commands_added:
            return
        self._plugin_commands_added = True
        from stepframe._plugins.manager import get_plugins

        get_plugins().hooks.register_commands(self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        declared = self._declared_commands().pop(cmd_name, None)
        if declared is not None:
            command = _load_command(cmd_name, declared)
            if command is not None:
                self.add_command(command, cmd_name)
                return command
        if not self._plugin_commands_added:
            self._add_plugin_commands()
            command = super().get_command(ctx, cmd_name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The core's commands, those loaded and those declared (not loaded for it)."""
        return sorted({*super().list_commands(ctx), *self._declared_commands()})

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """``--help``'s command list: a declared command not loaded yet is shown with the
        distribution that declares it, since its help would need its module imported."""
        declared = self._declared_commands()
        shown = [
            name
            for name in self.list_commands(ctx)
            if name in declared or not self.commands[name].hidden
        ]
        limit = formatter.width - 6 - max((len(name) for name in shown), default=0)
        rows = [
            (name, f"From {_source(declared[name])}; see: stepframe {name} --help")
            if name in declared
            else (name, self.commands[name].get_short_help_str(limit))
            for name in shown
        ]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _source(entry_point: EntryPoint) -> str:
    dist = entry_point.dist
    return dist.name if dist is not None else entry_point.module.partition(".")[0]
