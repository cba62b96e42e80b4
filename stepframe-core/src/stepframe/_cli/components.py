"""``stepframe <kind> register|list|describe|update|delete|connect`` for every component kind.

The commands are generic: a flavor's options come from its attrs config class, so a
third-party flavor gets the whole CLI without writing any.  ``--instance-type X`` sets
the config field ``instance_type``; values are parsed by the field's type (numbers,
booleans, JSON for lists and tables).  Connectors get ``verify`` instead of ``connect``.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from stepframe._cli.errors import reports_errors
from stepframe._cli.flavor_help import FlavorOptionsCommand
from stepframe._types import ComponentKind, ResourceRequest

__all__ = ["check_names", "check_options", "component_groups", "config_path", "parse_options"]


def config_path() -> Path:
    from stepframe._project import CONFIG_FILE, Project

    return Project.discover().root / CONFIG_FILE


def _field_types(config_class: type | None) -> dict[str, Any]:
    if config_class is None:
        return {}
    import attrs

    try:
        hints = typing.get_type_hints(config_class)
    except Exception:
        hints = {}
    return {field.name: hints.get(field.name, str) for field in attrs.fields(config_class)}


def _coerce(raw: str, hint: Any) -> Any:
    """A command-line string as the value a config field of type ``hint`` wants."""
    from stepframe._config.secrets import SecretRef

    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if (
        typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", ()))
        and len(args) == 1
    ):
        hint = args[0]
    if hint is SecretRef:  # a name, even one that looks like a number
        return raw
    if hint is bool:
        lowered = raw.lower()
        if lowered in ("true", "yes", "1", "on"):
            return True
        if lowered in ("false", "no", "0", "off"):
            return False
        return raw  # validation reports it with the field's path
    if hint is int:
        try:
            return int(raw)
        except ValueError:
            return raw
    if hint is float:
        try:
            return float(raw)
        except ValueError:
            return raw
    if hint is str:
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def parse_options(args: list[str], config_class: type | None) -> dict[str, Any]:
    """``--some-key value`` / ``--some-key=value`` pairs into config fields."""
    types = _field_types(config_class)
    values: dict[str, Any] = {}
    index = 0
    while index < len(args):
        arg = args[index]
        if not arg.startswith("--") or arg == "--":
            raise click.UsageError(
                f"unexpected argument {arg!r}; flavor options look like --key value"
            )
        key, sep, value = arg[2:].partition("=")
        if not sep:
            if index + 1 >= len(args):
                raise click.UsageError(f"option --{key} needs a value")
            index += 1
            value = args[index]
        field = key.replace("-", "_")
        values[field] = _coerce(value, types.get(field, str))
        index += 1
    return values


def check_options(kind: ComponentKind, name: str, values: Mapping[str, Any], flavor: str) -> None:
    """Issue 11: an unknown option names the nearest valid one and lists them all."""
    from stepframe._config.stacks import TABLES
    from stepframe._plugins.describe import unknown_options
    from stepframe.exceptions import ConfigError

    problem = unknown_options(list(values), _config_class(kind, flavor), allowed=("connector",))
    if problem is not None:
        raise ConfigError(f"{TABLES[kind]}.{name}: {problem}")


def _plugins() -> Any:
    from stepframe._plugins.manager import get_plugins

    return get_plugins()


def _validate_secrets(config: Any, where: str) -> None:
    """Every secret reference must point at something, without echoing what was typed."""
    import attrs

    from stepframe._config.secrets import SecretRef, SecretStore
    from stepframe.exceptions import ConfigError

    if config is None or not attrs.has(type(config)):
        return
    store = SecretStore()
    for field in attrs.fields(type(config)):
        value = getattr(config, field.name)
        if isinstance(value, SecretRef) and not value.is_env and not store.has(value):
            raise ConfigError(
                f"{where}.{field.name}: names no stored secret; create one with "
                "`stepframe secret set NAME` and pass NAME (or env:VARIABLE)"
            )


def _save_component(
    kind: ComponentKind, name: str, table: Mapping[str, Any], *, create: bool
) -> None:
    from stepframe._config.stacks import TABLES, build_component, component_tables
    from stepframe._config.toml_file import add_table, edit_toml, update_table
    from stepframe.exceptions import ConfigError

    plugins = _plugins()
    with edit_toml(config_path()) as document:
        existing = component_tables(document, kind)
        if create and name in existing:
            raise ConfigError(
                f"{TABLES[kind]}.{name} already exists; change it with "
                f"`stepframe {kind.value.replace('_', '-')} update {name} ...`"
            )
        if not create and name not in existing:
            raise ConfigError(
                f"there is no {kind.value.replace('_', ' ')} named {name!r} in {config_path()}"
            )
        component = build_component(kind, name, table, plugins.flavors)
        _validate_secrets(component.config, f"{TABLES[kind]}.{name}")
        if component.connector and component.connector not in component_tables(
            document, ComponentKind.CONNECTOR
        ):
            raise ConfigError(
                f"{TABLES[kind]}.{name}.connector: there is no connector named "
                f"{component.connector!r}; register it with `stepframe connector register`"
            )
        if name in existing:
            update_table(document[TABLES[kind]][name], dict(table))
        else:
            add_table(document, TABLES[kind], name, dict(table))


def _plain(value: Any) -> Any:
    unwrap = getattr(value, "unwrap", None)
    return unwrap() if callable(unwrap) else value


def _describe(kind: ComponentKind, name: str) -> dict[str, Any]:
    import attrs

    from stepframe._config.stacks import build_component, component_tables, implicit_components
    from stepframe._config.toml_file import read_toml
    from stepframe.exceptions import ConfigError

    plugins = _plugins()
    document = read_toml(config_path())
    tables = component_tables(document, kind)
    if name in tables:
        component = build_component(kind, name, tables[name], plugins.flavors)
        source = str(config_path())
    elif name in implicit_components(kind, plugins.flavors):
        component = implicit_components(kind, plugins.flavors)[name]
        source = "built in (needs no configuration)"
    else:
        raise ConfigError(f"there is no {kind.value.replace('_', ' ')} named {name!r}")
    config: dict[str, Any] = {}
    if component.config is not None and attrs.has(type(component.config)):
        from stepframe._config.secrets import SecretRef

        for field in attrs.fields(type(component.config)):
            value = getattr(component.config, field.name)
            # References are safe to show, but say what they are.
            config[field.name] = f"<secret {value}>" if isinstance(value, SecretRef) else value
    return {
        "name": component.name,
        "kind": kind.value,
        "flavor": component.flavor,
        "plugin": plugins.flavors.provider(kind, component.flavor),
        "connector": component.connector,
        "defined_in": source,
        "config": config,
    }


def _raw_table(kind: ComponentKind, name: str) -> dict[str, Any]:
    from stepframe._config.stacks import component_tables
    from stepframe._config.toml_file import read_toml
    from stepframe.exceptions import ConfigError

    tables = component_tables(read_toml(config_path()), kind)
    if name not in tables:
        raise ConfigError(
            f"there is no {kind.value.replace('_', ' ')} named {name!r} in {config_path()}"
        )
    return {key: _plain(value) for key, value in tables[name].items()}


def _config_class(kind: ComponentKind, flavor: str) -> type | None:
    found = _plugins().flavors.get(kind, flavor)
    return found.config_class if found is not None else None


def _users_of(document: Mapping[str, Any], kind: ComponentKind, name: str) -> list[str]:
    """Stacks (and, for a connector, components) that refer to a component."""
    from stepframe._config.stacks import TABLES, stack_definitions

    users = [
        f"stack {stack.name}"
        for stack in stack_definitions(document).values()
        if name
        in (
            stack.artifact_store,
            stack.image_builder,
            stack.container_registry,
            *stack.step_operators,
        )
    ]
    if kind is ComponentKind.CONNECTOR:
        users += [
            f"{TABLES[other]}.{component}"
            for other in ComponentKind
            for component, table in document.get(TABLES[other], {}).items()
            if _plain(table).get("connector") == name
        ]
    return users


def _resources_using(
    document: Mapping[str, Any], connector: str, flavors: Any
) -> list[ResourceRequest]:
    """What the components that authenticate through ``connector`` need it for."""
    from stepframe._config.stacks import TABLES, build_component
    from stepframe._stack import connector_resource

    resources = [ResourceRequest("generic")]
    for kind in (ComponentKind.ARTIFACT_STORE, ComponentKind.CONTAINER_REGISTRY):
        for name, table in document.get(TABLES[kind], {}).items():
            if _plain(table).get("connector") != connector:
                continue
            request = connector_resource(build_component(kind, name, table, flavors))
            if request not in resources:
                resources.append(request)
    # A step operator whose jobs run as a role of their own (SageMaker's execution_role):
    # the connector must be allowed to hand that role to the jobs it submits.
    for name, table in document.get(TABLES[ComponentKind.STEP_OPERATOR], {}).items():
        if _plain(table).get("connector") != connector:
            continue
        role = getattr(build_component(ComponentKind.STEP_OPERATOR, name, table, flavors).config,
                       "execution_role", None)  # fmt: skip
        if isinstance(role, str) and role:
            request = ResourceRequest("execution_role", role)
            if request not in resources:
                resources.append(request)
    return resources


_FLAVOR_OPTIONS = {"ignore_unknown_options": True, "allow_extra_args": True}


def check_names(command: str, *names: str | None) -> None:
    """Refuse, before anything is read or written, a name no component may have (see
    _names.py): it could not be found, and must not be registered."""
    from stepframe._names import check_component_name

    for name in names:
        if name is not None:
            check_component_name(name, f"stepframe {command}")


def _plural(noun: str) -> str:
    """ "container registry" -> "container registries", "artifact store" -> "... stores"."""
    return noun[:-1] + "ies" if noun.endswith("ry") else noun + "s"


def _make_group(kind: ComponentKind) -> click.Group:
    command_name = kind.value.replace("_", "-")
    noun = kind.value.replace("_", " ")
    nouns = _plural(noun)
    a_noun = f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"

    @click.group(name=command_name, help=f"Register and inspect {nouns}.")
    def group() -> None:
        pass

    @group.command(
        cls=FlavorOptionsCommand,  # issue 11: --flavor F --help lists F's options
        kind=kind,
        context_settings=_FLAVOR_OPTIONS,
        help=f"Register {a_noun}; the flavor's options follow as --key value.",
    )
    @click.argument("name")
    @click.option("--flavor", "-f", required=True, help="The flavor (see `stepframe flavor list`).")
    @click.option("--connector", default=None, help="A connector to authenticate with.")
    @click.pass_context
    @reports_errors
    def register(ctx: click.Context, name: str, flavor: str, connector: str | None) -> None:
        check_names(f"{command_name} register", name, connector)
        table: dict[str, Any] = {"flavor": flavor}
        if connector:
            table["connector"] = connector
        options = parse_options(list(ctx.args), _config_class(kind, flavor))
        check_options(kind, name, options, flavor)
        table.update(options)
        _save_component(kind, name, table, create=True)
        click.echo(f"registered {noun} {name!r} (flavor {flavor}) in {config_path()}")

    @group.command(
        context_settings=_FLAVOR_OPTIONS,
        help=f"Change {a_noun}'s options (--key value); --unset KEY restores a default.",
    )
    @click.argument("name")
    @click.option("--unset", multiple=True, help="A config key to remove.")
    @click.pass_context
    @reports_errors
    def update(ctx: click.Context, name: str, unset: tuple[str, ...]) -> None:
        check_names(f"{command_name} update", name)
        table = _raw_table(kind, name)
        options = parse_options(list(ctx.args), _config_class(kind, str(table.get("flavor"))))
        check_options(kind, name, options, str(table.get("flavor")))
        table.update(options)
        for key in unset:
            table.pop(key.replace("-", "_"), None)
        _save_component(kind, name, table, create=False)
        click.echo(f"updated {noun} {name!r}")

    @group.command(name="list", help=f"List {nouns}, configured and built in.")
    @reports_errors
    def list_() -> None:
        from stepframe._config.stacks import component_tables, implicit_components
        from stepframe._config.toml_file import read_toml

        configured = component_tables(read_toml(config_path()), kind)
        rows = [
            (n, str(_plain(t).get("flavor", "?")), "stepframe.toml") for n, t in configured.items()
        ]
        rows += [
            (n, c.flavor, "built in")
            for n, c in implicit_components(kind, _plugins().flavors).items()
            if n not in configured
        ]
        if not rows:
            click.echo(
                f"no {nouns}; register one with `stepframe {command_name} register NAME --flavor F`"
            )
        width = max((len(row[0]) for row in rows), default=0)
        for row_name, row_flavor, origin in sorted(rows):
            click.echo(f"{row_name:<{width}}  {row_flavor:<12}  {origin}")

    @group.command(help=f"Show {a_noun}'s flavor, plugin and configuration.")
    @click.argument("name")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @reports_errors
    def describe(name: str, as_json: bool) -> None:
        check_names(f"{command_name} describe", name)
        info = _describe(kind, name)
        if as_json:
            click.echo(json.dumps(info, indent=2, default=str))
            return
        click.echo(f"{noun} {info['name']}")
        for key in ("flavor", "plugin", "connector", "defined_in"):
            if info[key]:
                click.echo(f"  {key.replace('_', ' ')}: {info[key]}")
        for key, value in info["config"].items():
            click.echo(f"  {key} = {value!r}")

    @group.command(help=f"Delete {a_noun} that nothing refers to.")
    @click.argument("name")
    @reports_errors
    def delete(name: str) -> None:
        check_names(f"{command_name} delete", name)
        from stepframe._config.stacks import TABLES, check_document
        from stepframe._config.toml_file import edit_toml, remove_table
        from stepframe.exceptions import ConfigError

        with edit_toml(config_path()) as document:
            check_document(document)
            section = document.get(TABLES[kind], {})
            if name not in section:
                raise ConfigError(f"there is no {noun} named {name!r} in {config_path()}")
            users = _users_of(document, kind, name)
            if users:
                raise ConfigError(
                    f"{noun} {name!r} is used by {', '.join(users)}; change those first"
                )
            remove_table(document, TABLES[kind], name)
        click.echo(f"deleted {noun} {name!r}")

    if kind is ComponentKind.CONNECTOR:

        @group.command(
            help="Authenticate through a connector and check, read-only, every resource the "
            "components using it need; print who it authenticated as."
        )
        @click.argument("name")
        @reports_errors
        def verify(name: str) -> None:
            check_names(f"{command_name} verify", name)
            from stepframe._config.stacks import find_component
            from stepframe._config.toml_file import read_toml

            document = read_toml(config_path())
            plugins = _plugins()
            connector = find_component(document, kind, name, plugins.flavors, "connector verify")
            resources = _resources_using(document, name, plugins.flavors)
            report = plugins.hooks.verify_connector(connector, resources)
            click.echo(f"connector {name!r} authenticated as {report.identity}")
            for line in report.checks:
                click.echo(f"  {line}")

    else:

        @group.command(help=f"Make {a_noun} authenticate through a connector.")
        @click.argument("name")
        @click.option("--connector", required=True, help="The connector's name.")
        @reports_errors
        def connect(name: str, connector: str) -> None:
            check_names(f"{command_name} connect", name, connector)
            table = _raw_table(kind, name)
            table["connector"] = connector
            _save_component(kind, name, table, create=False)
            click.echo(f"{noun} {name!r} now authenticates through connector {connector!r}")

    return group


def component_groups() -> list[click.Group]:
    """One command group per component kind."""
    return [_make_group(kind) for kind in ComponentKind]
