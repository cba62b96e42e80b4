"""Components and stacks as ``stepframe.toml`` stores them, validated against flavors.

The file, as the CLI writes it::

    active_stack = "aws"

    [step_operators.sagemaker]      # one table per component, grouped by kind
    flavor = "sagemaker"
    connector = "aws"
    role = "arn:aws:iam::123456789012:role/sagemaker"

    [connectors.aws]
    flavor = "aws"
    secret_access_key = "aws-secret"   # the NAME of a secret, never its value

    [stacks.aws]
    artifact_store = "s3"
    step_operators = ["sagemaker"]

Step operators whose flavor needs no configuration (``inprocess``, ``local``) and the
``local`` artifact store exist in every stack without being written down, and the
``default`` stack exists without any file at all.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from typing import Any

import attrs

from stepframe._names import check_component_name
from stepframe._plugins.flavors import FlavorRegistry
from stepframe._project import CONFIG_FILE, Project
from stepframe._types import Component, ComponentKind
from stepframe._validation import structure_config
from stepframe.exceptions import ConfigError

__all__ = [
    "ACTIVE_STACK_ENV",
    "DEFAULT_STACK",
    "TABLES",
    "Stack",
    "StackDefinition",
    "build_component",
    "check_document",
    "component_tables",
    "find_component",
    "implicit_components",
    "load_stack",
    "stack_definitions",
]

DEFAULT_STACK = "default"
ACTIVE_STACK_ENV = "STEPFRAME_STACK"
LOCAL_ARTIFACT_STORE = "local"

# The top-level table holding each kind's components.
TABLES: dict[ComponentKind, str] = {
    ComponentKind.ARTIFACT_STORE: "artifact_stores",
    ComponentKind.IMAGE_BUILDER: "image_builders",
    ComponentKind.CONTAINER_REGISTRY: "container_registries",
    ComponentKind.STEP_OPERATOR: "step_operators",
    ComponentKind.CONNECTOR: "connectors",
}
RESERVED_KEYS = ("flavor", "connector")


@attrs.frozen
class Stack:
    """The components one run uses."""

    name: str
    artifact_store: Component
    artifact_store_uri: str
    step_operators: Mapping[str, Component]
    image_builder: Component | None = None
    container_registry: Component | None = None
    connectors: Mapping[str, Component] = attrs.field(factory=dict)
    #: Step operators registered in the file, in this stack or not: a step naming one
    #: that is not in the stack is told to add it (issue 14).
    registered_operators: tuple[str, ...] = ()


@attrs.frozen
class StackDefinition:
    """A stack as written in the file: component names by role."""

    name: str
    artifact_store: str = LOCAL_ARTIFACT_STORE
    image_builder: str | None = None
    container_registry: str | None = None
    step_operators: tuple[str, ...] = ()


def component_tables(
    document: Mapping[str, Any], kind: ComponentKind
) -> dict[str, Mapping[str, Any]]:
    """The raw tables of every component of ``kind`` written in the file."""
    check_document(document)
    return {str(name): table for name, table in document.get(TABLES[kind], {}).items()}


def build_component(
    kind: ComponentKind, name: str, table: Mapping[str, Any], flavors: FlavorRegistry
) -> Component:
    """Validate one component's table against its flavor's config class."""
    where = f"{TABLES[kind]}.{name}"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: expected a table")
    flavor_name = table.get("flavor")
    if not isinstance(flavor_name, str):
        raise ConfigError(f"{where}.flavor: required value is missing (the flavor to use)")
    flavor = flavors.get(kind, flavor_name)
    if flavor is None:
        raise ConfigError(
            f"{where}.flavor: no installed plugin provides {kind.value} flavor "
            f"{flavor_name!r}; {flavors.install_hint(flavor_name)}"
        )
    connector = table.get("connector")
    if connector is not None and not isinstance(connector, str):
        raise ConfigError(f"{where}.connector: expected the name of a connector")
    fields = {k: _plain(v) for k, v in table.items() if k not in RESERVED_KEYS}
    config: Any = None
    if flavor.config_class is None:
        if fields:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(fields))}")
    else:
        config = structure_config(fields, flavor.config_class, where)
    return Component(kind, name, flavor_name, config, connector)


def _plain(value: Any) -> Any:
    """tomlkit's wrapped values as plain Python ones."""
    unwrap = getattr(value, "unwrap", None)
    return unwrap() if callable(unwrap) else value


def implicit_components(kind: ComponentKind, flavors: FlavorRegistry) -> dict[str, Component]:
    """Components every stack has without configuration, named after their flavor."""
    found: dict[str, Component] = {}
    for flavor, _plugin in flavors.of_kind(kind):
        if kind is ComponentKind.ARTIFACT_STORE and flavor.name != LOCAL_ARTIFACT_STORE:
            continue
        if kind not in (ComponentKind.STEP_OPERATOR, ComponentKind.ARTIFACT_STORE):
            continue
        try:
            config = (
                structure_config({}, flavor.config_class, flavor.name)
                if flavor.config_class
                else None
            )
        except ConfigError:
            continue  # needs configuration: the user registers it first
        found[flavor.name] = Component(kind, flavor.name, flavor.name, config)
    return found


def stack_definitions(document: Mapping[str, Any]) -> dict[str, StackDefinition]:
    check_document(document)
    stacks = {DEFAULT_STACK: StackDefinition(DEFAULT_STACK)}
    for name, table in document.get("stacks", {}).items():
        data = dict(_plain(table))
        operators = tuple(data.pop("step_operators", ()))
        stacks[str(name)] = StackDefinition(str(name), step_operators=operators, **data)
    return stacks


def active_stack_name(document: Mapping[str, Any]) -> str:
    check_document(document)
    name = os.environ.get(ACTIVE_STACK_ENV) or document.get("active_stack") or DEFAULT_STACK
    return str(name)


# What stepframe.toml may hold, and what each part of it must be.  The file is edited by
# the CLI and by hand; a hand edit that stepframe would misread (or silently ignore, like
# a misspelt table) is refused with the TOML path of the offending part.
_STACK_KEYS = ("artifact_store", "image_builder", "container_registry", "step_operators")
_TOP_LEVEL = ("active_stack", "stacks", *TABLES.values())


def _a(value: Any) -> str:
    """What a TOML value is, in TOML's words: "a string", "an array"..."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    kinds = {str: "a string", int: "an integer", float: "a float"}
    for python, toml in kinds.items():
        if isinstance(value, python):
            return toml
    return "a date or time"


def _refuse(path: str, problem: str) -> ConfigError:
    return ConfigError(f"{CONFIG_FILE}: {path}: {problem}")


def _nearest(word: str, candidates: tuple[str, ...], table: bool = False) -> str:
    """ "; did you mean X?" for the candidate closest to ``word`` (a typo), or nothing."""
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    if not close:
        return ""
    return f"; did you mean [{close[0]}]?" if table else f"; did you mean {close[0]!r}?"


def _check_name(name: str, path: str) -> None:
    check_component_name(name, f"{CONFIG_FILE}: {path}")


def check_document(document: Mapping[str, Any]) -> None:
    """Refuse a ``stepframe.toml`` that is not shaped the way stepframe reads it.

    One `ConfigError` for the first problem, naming its TOML path.  Checks the shape only
    (tables, strings, names); a component's own keys are checked against its flavor when
    the component is used (`build_component`), since its plugin may not be installed
    everywhere the file is read.
    """
    for key, raw in document.items():
        value = _plain(raw)
        if key not in _TOP_LEVEL:
            table = isinstance(value, Mapping)
            raise _refuse(
                f"[{key}]" if table else str(key),
                f"unknown top-level {'table' if table else 'key'}"
                f"{_nearest(str(key), _TOP_LEVEL, table)} (known: {', '.join(_TOP_LEVEL)})",
            )
        if key == "active_stack":
            if not isinstance(value, str):
                raise _refuse(key, f"expected a stack name (a string), got {_a(value)}")
            continue
        if not isinstance(value, Mapping):
            raise _refuse(key, f"expected a table, got {_a(value)}")
        for name, entry in value.items():
            path = f"{key}.{name}"
            _check_name(str(name), key)
            if not isinstance(entry, Mapping):
                raise _refuse(path, f"expected a table, got {_a(entry)}")
            if key == "stacks":
                _check_stack(path, entry)
            else:
                _check_component(path, entry)


def _check_stack(path: str, table: Mapping[str, Any]) -> None:
    for key, value in table.items():
        if key not in _STACK_KEYS:
            raise _refuse(
                f"{path}.{key}",
                f"unknown key{_nearest(key, _STACK_KEYS)} (known: {', '.join(_STACK_KEYS)})",
            )
        if key == "step_operators":
            if not isinstance(value, list):
                raise _refuse(
                    f"{path}.{key}", f"expected an array of step operator names, got {_a(value)}"
                )
            for index, item in enumerate(value):
                if not isinstance(item, str):
                    raise _refuse(
                        f"{path}.{key}[{index}]",
                        f"expected a step operator name, got {_a(item)}",
                    )
            for operator in value:
                _check_name(operator, f"{path}.{key}")
        elif not isinstance(value, str):
            raise _refuse(f"{path}.{key}", f"expected a component name, got {_a(value)}")
        else:
            _check_name(value, f"{path}.{key}")


def _check_component(path: str, table: Mapping[str, Any]) -> None:
    flavor = table.get("flavor")
    if flavor is None:
        raise _refuse(f"{path}.flavor", "required value is missing (the flavor to use)")
    if not isinstance(flavor, str):
        raise _refuse(f"{path}.flavor", f"expected a flavor name (a string), got {_a(flavor)}")
    connector = table.get("connector")
    if connector is not None:
        if not isinstance(connector, str):
            raise _refuse(
                f"{path}.connector", f"expected the name of a connector, got {_a(connector)}"
            )
        _check_name(connector, f"{path}.connector")


def find_component(
    document: Mapping[str, Any],
    kind: ComponentKind,
    name: str,
    flavors: FlavorRegistry,
    where: str,
) -> Component:
    """A component by name: configured in the file, or built in."""
    tables = component_tables(document, kind)
    if name in tables:
        return build_component(kind, name, tables[name], flavors)
    implicit = implicit_components(kind, flavors)
    if name in implicit:
        return implicit[name]
    check_component_name(name, where)
    raise ConfigError(
        f"{where}: there is no {kind.value.replace('_', ' ')} named {name!r}; register it with "
        f"`stepframe {kind.value.replace('_', '-')} register {name} --flavor ...`"
    )


def load_stack(
    project: Project,
    flavors: FlavorRegistry,
    document: Mapping[str, Any],
    name: str | None = None,
) -> Stack:
    """Build and validate a stack (the active one by default) from the parsed file."""
    name = name or active_stack_name(document)
    definitions = stack_definitions(document)
    if name not in definitions:
        raise ConfigError(
            f"stack {name!r} is not defined in {project.root / 'stepframe.toml'}; "
            f"stacks: {', '.join(sorted(definitions))}"
        )
    definition = definitions[name]
    where = f"stacks.{name}"
    store = find_component(
        document,
        ComponentKind.ARTIFACT_STORE,
        definition.artifact_store,
        flavors,
        f"{where}.artifact_store",
    )
    operators = implicit_components(ComponentKind.STEP_OPERATOR, flavors)
    for op in definition.step_operators:
        operators[op] = find_component(
            document, ComponentKind.STEP_OPERATOR, op, flavors, f"{where}.step_operators"
        )
    builder = registry = None
    if definition.image_builder:
        builder = find_component(
            document,
            ComponentKind.IMAGE_BUILDER,
            definition.image_builder,
            flavors,
            f"{where}.image_builder",
        )
    if definition.container_registry:
        registry = find_component(
            document,
            ComponentKind.CONTAINER_REGISTRY,
            definition.container_registry,
            flavors,
            f"{where}.container_registry",
        )
    connectors: dict[str, Component] = {}
    for component in (store, builder, registry, *operators.values()):
        if component is not None and component.connector and component.connector not in connectors:
            connectors[component.connector] = find_component(
                document,
                ComponentKind.CONNECTOR,
                component.connector,
                flavors,
                f"{TABLES[component.kind]}.{component.name}.connector",
            )
    return Stack(
        name=name,
        artifact_store=store,
        artifact_store_uri=_store_uri(store, project),
        step_operators=operators,
        image_builder=builder,
        container_registry=registry,
        connectors=connectors,
        registered_operators=tuple(component_tables(document, ComponentKind.STEP_OPERATOR)),
    )


def _store_uri(store: Component, project: Project) -> str:
    """Where the store's root is: its configured ``path``, else the project's own folder."""
    path = getattr(store.config, "path", None)
    if path:
        text = str(path)
        if "://" in text:
            return text
        return (project.root / os.path.expanduser(text)).resolve().as_uri()
    return project.artifacts_dir.as_uri()
