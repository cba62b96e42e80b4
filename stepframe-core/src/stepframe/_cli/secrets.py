"""``stepframe secret set|list|delete``: values come from a prompt or stdin, never argv.

Nothing typed on these command lines is echoed back unless it is a valid secret name:
what lands where a name belongs, or after it, may be the value itself.
"""

from __future__ import annotations

import sys

import click

from stepframe._cli.errors import reports_errors

__all__ = ["secret"]

# Extra arguments reach the command (instead of click's "unexpected extra argument (X)",
# which would print X) so it can refuse them without repeating them.
_TAKES_NO_EXTRAS = {"ignore_unknown_options": True, "allow_extra_args": True}


def _refuse_extra_arguments(ctx: click.Context, usage: str) -> None:
    from stepframe.exceptions import UsageError

    if ctx.args:
        count = len(ctx.args)
        raise UsageError(
            f"`stepframe secret {ctx.command.name}` takes {usage}, but {count} more "
            f"argument{'s' if count > 1 else ''} followed (not shown: "
            f"{'they' if count > 1 else 'it'} may be a secret value); a value is read "
            "from a prompt or stdin, never from the command line, where shell history and "
            "other users' `ps` would see it"
        )


class _SecretGroup(click.Group):
    """Says "no such command" without repeating the word: ``stepframe secret VALUE``."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and not args[0].startswith("-") and self.get_command(ctx, args[0]) is None:
            ctx.fail(
                "no such command (not shown: it may be a secret value); "
                f"use one of: {', '.join(self.list_commands(ctx))}"
            )
        return super().resolve_command(ctx, args)


@click.group(
    cls=_SecretGroup,
    help="Store credentials outside the project, for connectors to refer to by name.",
)
def secret() -> None:
    pass


@secret.command(
    name="set",
    context_settings=_TAKES_NO_EXTRAS,
    help="Store a secret; the value is read from a prompt or stdin.",
)
@click.argument("name")
@click.pass_context
@reports_errors
def set_(ctx: click.Context, name: str) -> None:
    from stepframe._config.secrets import SecretStore, check_secret_name

    _refuse_extra_arguments(ctx, "only NAME")
    check_secret_name(name)  # before the prompt: no point typing a value for a bad name
    if sys.stdin.isatty():
        value = click.prompt(
            f"value for secret {name!r}", hide_input=True, confirmation_prompt=True
        )
    else:
        value = sys.stdin.read().rstrip("\r\n")
    store = SecretStore()
    store.set(name, value)
    click.echo(f"stored secret {name!r} in {store.path}")


@secret.command(
    name="list", context_settings=_TAKES_NO_EXTRAS, help="List secret names (never values)."
)
@click.pass_context
@reports_errors
def list_(ctx: click.Context) -> None:
    from stepframe._config.secrets import SecretStore

    _refuse_extra_arguments(ctx, "no arguments")
    for name in SecretStore().names():
        click.echo(name)


@secret.command(context_settings=_TAKES_NO_EXTRAS, help="Delete a secret.")
@click.argument("name")
@click.pass_context
@reports_errors
def delete(ctx: click.Context, name: str) -> None:
    from stepframe._config.secrets import SecretStore, check_secret_name

    _refuse_extra_arguments(ctx, "only NAME")
    check_secret_name(name)
    SecretStore().delete(name)
    click.echo(f"deleted secret {name!r}")
