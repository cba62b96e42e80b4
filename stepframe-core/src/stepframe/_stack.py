"""How a step's operator and settings resolve against the stack a run uses.

The stack comes from ``stepframe.toml`` (see `stepframe._config.stacks`); with no file
the ``default`` stack holds the local artifact store and the operators that need no
configuration (``inprocess``, ``local``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from stepframe._config.stacks import Stack, load_stack
from stepframe._plugins.flavors import FlavorRegistry
from stepframe._project import CONFIG_FILE, Project
from stepframe._types import Component, ComponentKind, Credentials, ResourceRequest
from stepframe._validation import structure_config, unstructure_config
from stepframe.exceptions import ConfigError, UnknownOperatorError

if TYPE_CHECKING:
    from stepframe._plugins.facade import Hooks

__all__ = [
    "DEFAULT_OPERATOR",
    "Stack",
    "connector_credentials",
    "connector_resource",
    "project_stack",
    "resolve_operator",
    "resolve_settings",
]

DEFAULT_OPERATOR = "inprocess"


def project_stack(project: Project, flavors: FlavorRegistry, name: str | None = None) -> Stack:
    """The stack a run in ``project`` uses: ``name``, else the active one."""
    path = project.root / CONFIG_FILE
    if path.is_file():
        from stepframe._config.toml_file import read_toml

        document: Mapping[str, Any] = read_toml(path)
    else:
        document = {}  # no file: skip loading a TOML parser at all
    return load_stack(project, flavors, document, name)


# The config field that names what each kind's connector is asked for (docs/plugins.md):
# an artifact store's root, a container registry's address.
_RESOURCE_FIELDS = {
    ComponentKind.ARTIFACT_STORE: ("object_store", "path"),
    ComponentKind.CONTAINER_REGISTRY: ("container_registry", "uri"),
}


def connector_resource(component: Component) -> ResourceRequest:
    """What ``component`` needs its connector for: its store root, its registry address,
    or (any other kind) generic credentials."""
    if component.kind not in _RESOURCE_FIELDS:
        return ResourceRequest("generic")
    kind, field = _RESOURCE_FIELDS[component.kind]
    value = getattr(component.config, field, None)
    return ResourceRequest(kind, str(value) if value else None)


def connector_credentials(
    stack: Stack, component: Component, resource: ResourceRequest, hooks: Hooks
) -> Credentials | None:
    """Credentials for ``component`` through its connector, or None when it has none."""
    if component.connector is None:
        return None
    connector = stack.connectors.get(component.connector)
    if connector is None:
        raise ConfigError(
            f"{component.kind.value.replace('_', ' ')} {component.name!r} uses connector "
            f"{component.connector!r}, which stack {stack.name!r} does not define; register "
            f"it with `stepframe connector register {component.connector} --flavor ...`"
        )
    return hooks.authenticate(connector, resource)


def resolve_operator(
    stack: Stack, flavors: FlavorRegistry, step: str, name: str | None
) -> Component:
    """The step operator component a step runs with, or an error saying how to get it."""
    wanted = name or DEFAULT_OPERATOR
    component = stack.step_operators.get(wanted)
    if component is not None:
        return component
    if wanted in stack.registered_operators:
        raise UnknownOperatorError(
            f"step {step!r}: operator {wanted!r} is registered but not in stack "
            f"{stack.name!r}; add it with `stepframe stack update {stack.name} -s {wanted}`"
        )
    provider = flavors.provider(ComponentKind.STEP_OPERATOR, wanted)
    if provider is not None:
        raise UnknownOperatorError(
            f"step {step!r} runs on operator {wanted!r}, which stack {stack.name!r} does not "
            f"have. The {wanted!r} flavor is installed (plugin {provider!r}) but needs "
            f"configuration: register it with `stepframe step-operator register {wanted} "
            f"--flavor {wanted} ...` and add it to the stack"
        )
    available = ", ".join(sorted(stack.step_operators)) or "none"
    raise UnknownOperatorError(
        f"step {step!r} runs on operator {wanted!r}, which no installed plugin provides; "
        f"{flavors.install_hint(wanted)}. Operators available now: {available}"
    )


def resolve_settings(
    flavors: FlavorRegistry,
    step: str,
    operator: Component,
    layers: tuple[Mapping[str, Any], ...],
) -> tuple[Any, dict[str, dict[str, Any]]]:
    """Merge settings layers (pipeline, then step, then run config), key by key.

    Settings are keyed by flavor name (``{"sagemaker": {...}, "docker": {...}}``).  Below
    every layer lie the operator component's defaults: config fields that share a name
    with a settings field (a registered ``instance_type``, say).

    :return: the operator flavor's settings, validated into its settings class (or the
        raw mapping when it has none), and every merged layer for the record.
    """
    known = {flavor.name for flavor, _ in flavors.of_kind()}
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for key, values in layer.items():
            if key not in known:
                raise ConfigError(
                    f"step {step!r} has settings for {key!r}, which is not an installed flavor "
                    f"(known: {', '.join(sorted(known))}); check the spelling or install its plugin"
                )
            if not isinstance(values, Mapping):
                raise ConfigError(
                    f"step {step!r} settings[{key!r}] must be a table of values, "
                    f"got {type(values).__name__}"
                )
            merged[key] = {**merged.get(key, {}), **values}
    flavor = flavors.get(ComponentKind.STEP_OPERATOR, operator.flavor)
    raw = merged.get(operator.flavor, {})
    if flavor is None or flavor.settings_class is None:
        return raw, merged
    defaults = _component_defaults(operator, flavor.settings_class)
    if defaults:
        raw = {**defaults, **raw}
        merged[operator.flavor] = raw
    structured: Any = structure_config(
        raw, flavor.settings_class, f"step {step!r} settings.{operator.flavor}"
    )
    return structured, merged


def _component_defaults(operator: Component, settings_class: type) -> dict[str, Any]:
    if operator.config is None or not attrs.has(type(operator.config)):
        return {}
    config = unstructure_config(operator.config)
    names = {field.name for field in attrs.fields(settings_class)}
    return {key: value for key, value in config.items() if key in names and value is not None}
