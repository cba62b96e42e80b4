"""``stepframe <kind> register NAME --flavor F --help``: the generic help, then the options
of flavor F (its config fields with types, defaults and help), as ``flavor describe``
shows them.  Click prints help while it parses the arguments, so the flavor is read from
the raw arguments before that."""

from __future__ import annotations

from typing import Any

import click

from stepframe._types import ComponentKind

__all__ = ["FlavorOptionsCommand", "flavor_in"]


def flavor_in(args: list[str]) -> str | None:
    """The value of ``--flavor F``, ``--flavor=F`` or ``-f F`` among raw arguments."""
    for index, arg in enumerate(args):
        if arg.startswith("--flavor="):
            return arg.partition("=")[2]
        if arg in ("--flavor", "-f") and index + 1 < len(args):
            return args[index + 1]
    return None


class FlavorOptionsCommand(click.Command):
    """A register command whose ``--help`` lists the options of the flavor given."""

    def __init__(self, *args: Any, kind: ComponentKind, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind
        self._flavor: str | None = None

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        self._flavor = flavor_in(args)
        return super().parse_args(ctx, args)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        from stepframe._plugins.describe import option_lines
        from stepframe._plugins.manager import get_plugins

        noun = self.kind.value.replace("_", " ")
        if self._flavor is None:
            formatter.write_paragraph()
            formatter.write_text(
                f"Add --flavor F to --help for the options of flavor F; `stepframe flavor "
                f"describe F` shows them too, and `stepframe flavor list --kind "
                f"{self.kind.value}` the {noun} flavors."
            )
            return
        found = get_plugins().flavors.get(self.kind, self._flavor)
        formatter.write_paragraph()
        if found is None:
            formatter.write_text(
                f"No installed plugin provides {noun} flavor {self._flavor!r} (see "
                f"`stepframe flavor list --kind {self.kind.value}`)."
            )
            return
        formatter.write_text(f"Options of {noun} flavor {self._flavor!r}:")
        for line in option_lines(found):
            formatter.write(line + "\n")
