"""``stepframe secret set|list|delete``: values come from a prompt or stdin, never argv."""

from __future__ import annotations

import sys

import click

from stepframe._cli.errors import reports_errors

__all__ = ["secret"]


@click.group(help="Store credentials outside the project, for connectors to refer to by name.")
def secret() -> None:
    pass


@secret.command(name="set", help="Store a secret; the value is read from a prompt or stdin.")
@click.argument("name")
@reports_errors
def set_(name: str) -> None:
    from stepframe._config.secrets import SecretStore

    if sys.stdin.isatty():
        value = click.prompt(
            f"value for secret {name!r}", hide_input=True, confirmation_prompt=True
        )
    else:
        value = sys.stdin.read().rstrip("\r\n")
    store = SecretStore()
    store.set(name, value)
    click.echo(f"stored secret {name!r} in {store.path}")


@secret.command(name="list", help="List secret names (never values).")
@reports_errors
def list_() -> None:
    from stepframe._config.secrets import SecretStore

    for name in SecretStore().names():
        click.echo(name)


@secret.command(help="Delete a secret.")
@click.argument("name")
@reports_errors
def delete(name: str) -> None:
    from stepframe._config.secrets import SecretStore

    SecretStore().delete(name)
    click.echo(f"deleted secret {name!r}")
