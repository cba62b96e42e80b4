"""Stacks: which components a run uses, and how a step's operator and settings resolve.

With no configuration at all there is a default stack: the local artifact store under
``.stepframe/artifacts`` and every step operator whose flavor needs no configuration
(``inprocess``, ``local``), each under its flavor's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from stepframe._plugins.flavors import FlavorRegistry
from stepframe._project import Project
from stepframe._types import Component, ComponentKind
from stepframe._validation import structure_config
from stepframe.exceptions import ConfigError, UnknownOperatorError

__all__ = ["DEFAULT_OPERATOR", "Stack", "default_stack", "resolve_operator", "resolve_settings"]

DEFAULT_OPERATOR = "inprocess"


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


def default_stack(project: Project, flavors: FlavorRegistry) -> Stack:
    operators: dict[str, Component] = {}
    for flavor, _plugin in flavors.of_kind(ComponentKind.STEP_OPERATOR):
        try:
            config = (
                structure_config({}, flavor.config_class, flavor.name)
                if flavor.config_class
                else None
            )
        except ConfigError:
            continue  # needs configuration: the user must register it first
        operators[flavor.name] = Component(
            ComponentKind.STEP_OPERATOR, flavor.name, flavor.name, config
        )
    store = Component(ComponentKind.ARTIFACT_STORE, "local", "local")
    return Stack(
        name="default",
        artifact_store=store,
        artifact_store_uri=project.artifacts_dir.as_uri(),
        step_operators=operators,
    )


def resolve_operator(
    stack: Stack, flavors: FlavorRegistry, step: str, name: str | None
) -> Component:
    """The step operator component a step runs with, or an error saying how to get it."""
    wanted = name or DEFAULT_OPERATOR
    component = stack.step_operators.get(wanted)
    if component is not None:
        return component
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

    Settings are keyed by flavor name (``{"sagemaker": {...}, "docker": {...}}``).

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
    structured: Any = structure_config(
        raw, flavor.settings_class, f"step {step!r} settings.{operator.flavor}"
    )
    return structured, merged
