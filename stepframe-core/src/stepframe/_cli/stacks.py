"""``stepframe stack ...`` and ``stepframe flavor list``."""

from __future__ import annotations

import json
from typing import Any

import click

from stepframe._cli.components import check_names, config_path
from stepframe._cli.errors import reports_errors
from stepframe._types import ComponentKind

__all__ = ["flavor", "stack"]


def _plugins() -> Any:
    from stepframe._plugins.manager import get_plugins

    return get_plugins()


@click.group(help="Combine components into stacks, and choose the active one.")
def stack() -> None:
    pass


@stack.command(help="Register a stack from components registered earlier.")
@click.argument("name")
@click.option("-a", "--artifact-store", default="local", show_default=True)
@click.option("-i", "--image-builder", default=None)
@click.option("-c", "--container-registry", default=None)
@click.option("-s", "--step-operator", "step_operators", multiple=True, help="Repeat for several.")
@click.option("--set", "make_active", is_flag=True, help="Make it the active stack.")
@reports_errors
def register(
    name: str,
    artifact_store: str,
    image_builder: str | None,
    container_registry: str | None,
    step_operators: tuple[str, ...],
    make_active: bool,
) -> None:
    from stepframe._config.stacks import DEFAULT_STACK, check_document, load_stack
    from stepframe._config.toml_file import add_table, edit_toml
    from stepframe._project import Project
    from stepframe.exceptions import ConfigError

    check_names(
        "stack register", name, artifact_store, image_builder, container_registry, *step_operators
    )
    if name == DEFAULT_STACK:
        raise ConfigError(f"{DEFAULT_STACK!r} is the built-in stack; choose another name")
    table: dict[str, Any] = {"artifact_store": artifact_store}
    if image_builder:
        table["image_builder"] = image_builder
    if container_registry:
        table["container_registry"] = container_registry
    table["step_operators"] = list(step_operators)
    with edit_toml(config_path()) as document:
        check_document(document)
        if name in document.get("stacks", {}):
            raise ConfigError(
                f"stack {name!r} already exists; delete it first or pick another name"
            )
        add_table(document, "stacks", name, table)
        # Refuses (and so writes nothing) if a component is missing or invalid.
        load_stack(Project(config_path().parent), _plugins().flavors, document, name)
        if make_active:
            document["active_stack"] = name
    click.echo(f"registered stack {name!r}" + (" and made it active" if make_active else ""))


@stack.command(name="list", help="List stacks with their components; * marks the active one.")
@reports_errors
def list_() -> None:
    from stepframe._config.stacks import active_stack_name, load_stack, stack_definitions
    from stepframe._config.toml_file import read_toml
    from stepframe._project import Project
    from stepframe.exceptions import ConfigError

    document = read_toml(config_path())
    active = active_stack_name(document)
    definitions = stack_definitions(document)
    flavors = _plugins().flavors
    for definition in sorted(definitions.values(), key=lambda d: d.name):
        mark = "*" if definition.name == active else " "
        try:  # as `stack describe` shows it: the built-in operators included
            loaded = load_stack(Project(config_path().parent), flavors, document, definition.name)
        except ConfigError as error:
            click.echo(f"{mark} {definition.name}  (cannot be used: {error})")
            continue
        parts = [f"artifact store {loaded.artifact_store.name}"]
        if loaded.image_builder is not None:
            parts.append(f"image builder {loaded.image_builder.name}")
        if loaded.container_registry is not None:
            parts.append(f"container registry {loaded.container_registry.name}")
        parts.append(f"operators {', '.join(loaded.step_operators) or '-'}")
        click.echo(f"{mark} {definition.name}  ({'; '.join(parts)})")
    if active not in definitions:
        click.echo(
            f"stepframe: warning: the active stack {active!r} ({_active_source(document)}) "
            f"is not defined, so runs fail until you pick one: `stepframe stack set NAME`",
            err=True,
        )


def _active_source(document: Any) -> str:
    """Where the active stack's name comes from: the environment or stepframe.toml."""
    import os

    from stepframe._config.stacks import ACTIVE_STACK_ENV

    if os.environ.get(ACTIVE_STACK_ENV):
        return f"from ${ACTIVE_STACK_ENV}"
    return f"active_stack in {config_path()}"


@stack.command(
    help="Change a stack's components: -a/-i/-c replace one, -s adds a step operator, "
    "-r removes one.  The built-in 'default' stack can be changed too."
)
@click.argument("name")
@click.option("-a", "--artifact-store", default=None)
@click.option("-i", "--image-builder", default=None)
@click.option("-c", "--container-registry", default=None)
@click.option(
    "-s", "--step-operator", "added", multiple=True, help="Add this operator (repeat for several)."
)
@click.option(
    "-r",
    "--remove-step-operator",
    "removed",
    multiple=True,
    help="Remove this operator (repeat for several).",
)
@reports_errors
def update(
    name: str,
    artifact_store: str | None,
    image_builder: str | None,
    container_registry: str | None,
    added: tuple[str, ...],
    removed: tuple[str, ...],
) -> None:
    from stepframe._config.stacks import (
        DEFAULT_STACK,
        check_document,
        load_stack,
        stack_definitions,
    )
    from stepframe._config.toml_file import add_table, edit_toml, update_table
    from stepframe._project import Project
    from stepframe.exceptions import ConfigError, UsageError

    check_names(
        "stack update", name, artifact_store, image_builder, container_registry, *added, *removed
    )
    if not (artifact_store or image_builder or container_registry or added or removed):
        raise UsageError(
            "say what to change: stepframe stack update NAME [-a STORE] [-i BUILDER] "
            "[-c REGISTRY] [-s OPERATOR ...] [-r OPERATOR ...]"
        )
    with edit_toml(config_path()) as document:
        check_document(document)
        definitions = stack_definitions(document)
        if name not in definitions:
            raise ConfigError(
                f"there is no stack named {name!r} in {config_path()}; register it with "
                f"`stepframe stack register {name} ...`"
            )
        definition = definitions[name]
        operators = [op for op in definition.step_operators if op not in removed]
        not_there = sorted(set(removed) - set(definition.step_operators))
        if not_there:
            raise ConfigError(
                f"stack {name!r} does not list step operator(s) {', '.join(not_there)}"
                + (" (built-in operators are in every stack)" if name == DEFAULT_STACK else "")
            )
        operators += [op for op in added if op not in operators]
        table: dict[str, Any] = {
            "artifact_store": artifact_store or definition.artifact_store,
        }
        for key, value in (
            ("image_builder", image_builder or definition.image_builder),
            ("container_registry", container_registry or definition.container_registry),
        ):
            if value:
                table[key] = value
        table["step_operators"] = operators
        stacks = document.get("stacks", {})
        if name in stacks:
            update_table(stacks[name], table)
        else:  # the built-in default stack, written down for the first time
            add_table(document, "stacks", name, table)
        # Refuses (and so writes nothing) if a component is missing or invalid.
        load_stack(Project(config_path().parent), _plugins().flavors, document, name)
    click.echo(f"updated stack {name!r}")


@stack.command(help="Show a stack's components (the active stack by default).")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@reports_errors
def describe(name: str | None, as_json: bool) -> None:
    check_names("stack describe", name)
    from stepframe._config.stacks import load_stack
    from stepframe._config.toml_file import read_toml
    from stepframe._project import Project

    document = read_toml(config_path())
    loaded = load_stack(Project(config_path().parent), _plugins().flavors, document, name)
    rows: list[tuple[str, str, str]] = [
        ("artifact store", loaded.artifact_store.name, loaded.artifact_store.flavor)
    ]
    for role, component in (
        ("image builder", loaded.image_builder),
        ("container registry", loaded.container_registry),
    ):
        if component is not None:
            rows.append((role, component.name, component.flavor))
    rows += [("step operator", c.name, c.flavor) for c in loaded.step_operators.values()]
    rows += [("connector", c.name, c.flavor) for c in loaded.connectors.values()]
    if as_json:
        payload = {"name": loaded.name, "artifact_store_uri": loaded.artifact_store_uri}
        payload["components"] = [{"role": r, "name": n, "flavor": f} for r, n, f in rows]  # type: ignore[assignment]
        click.echo(json.dumps(payload, indent=2))
        return
    click.echo(f"stack {loaded.name}  (artifacts in {loaded.artifact_store_uri})")
    for role, component_name, component_flavor in rows:
        click.echo(f"  {role:<18} {component_name}  ({component_flavor})")


@stack.command(name="set", help="Make a stack the active one.")
@click.argument("name")
@reports_errors
def set_(name: str) -> None:
    check_names("stack set", name)
    from stepframe._config.stacks import load_stack
    from stepframe._config.toml_file import edit_toml
    from stepframe._project import Project

    with edit_toml(config_path()) as document:
        load_stack(Project(config_path().parent), _plugins().flavors, document, name)
        document["active_stack"] = name
    click.echo(f"active stack is now {name!r}")


@stack.command(help="Delete a stack (not the active one).")
@click.argument("name")
@reports_errors
def delete(name: str) -> None:
    check_names("stack delete", name)
    from stepframe._config.stacks import active_stack_name, check_document
    from stepframe._config.toml_file import edit_toml, remove_table
    from stepframe.exceptions import ConfigError

    with edit_toml(config_path()) as document:
        check_document(document)
        if name not in document.get("stacks", {}):
            raise ConfigError(f"there is no stack named {name!r} in {config_path()}")
        if active_stack_name(document) == name:
            raise ConfigError(f"stack {name!r} is active; `stepframe stack set` another one first")
        remove_table(document, "stacks", name)
    click.echo(f"deleted stack {name!r}")


@click.group(help="Inspect the component flavors that installed plugins provide.")
def flavor() -> None:
    pass


@flavor.command(name="list", help="List flavors with the plugin that provides each.")
@click.option(
    "--kind",
    type=click.Choice([k.value.replace("_", "-") for k in ComponentKind]),
    default=None,
    help="Only this component kind.",
)
@reports_errors
def flavor_list(kind: str | None) -> None:
    wanted = ComponentKind(kind.replace("-", "_")) if kind else None
    for found, plugin in _plugins().flavors.of_kind(wanted):
        click.echo(f"{found.kind.value:<18} {found.name:<12} {plugin:<22} {found.description}")
