"""Planning a run: every step's operator and settings resolved, constants stored.

Everything here happens before a run is recorded, so a pipeline that cannot run fails
here and leaves nothing behind.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import attrs

from stepframe._artifacts.io import save_artifact
from stepframe._artifacts.materializers import MaterializerRegistry
from stepframe._artifacts.store import ArtifactStore
from stepframe._names import safe_segments
from stepframe._pipeline.pipeline import ConstantInput, PipelineSpec
from stepframe._pipeline.step import EMPTY
from stepframe._plugins.manager import Plugins, get_plugins
from stepframe._project import Project
from stepframe._stack import Stack, project_stack, resolve_operator, resolve_settings
from stepframe._types import ArtifactRef, Component
from stepframe.exceptions import NoMaterializerError, UsageError

__all__ = ["Plan", "make_plan", "plan_rows", "store_constants"]


@attrs.define
class Plan:
    """A pipeline with every step's operator and settings resolved."""

    operators: dict[str, Component]
    settings: dict[str, Any]
    merged_settings: dict[str, dict[str, dict[str, Any]]]


def make_plan(
    spec: PipelineSpec, stack: Stack, plugins: Plugins, run_settings: Mapping[str, Any]
) -> Plan:
    plan = Plan({}, {}, {})
    everywhere = {key: value for key, value in run_settings.items() if key != "steps"}
    per_step = run_settings.get("steps", {})
    unknown = sorted(set(per_step) - set(spec.steps))
    if unknown:
        raise UsageError(
            f"the run config has settings for step(s) {', '.join(unknown)}, which pipeline "
            f"{spec.name!r} does not have (its steps: {', '.join(spec.steps)})"
        )
    for name, step in spec.steps.items():
        operator = resolve_operator(stack, plugins.flavors, name, step.operator)
        layers = (spec.settings, step.settings, everywhere, per_step.get(name, {}))
        settings, merged = resolve_settings(plugins.flavors, name, operator, layers)
        plan.operators[name] = operator
        plan.settings[name] = settings
        plan.merged_settings[name] = merged
    return plan


def store_constants(
    spec: PipelineSpec, store: ArtifactStore, registry: MaterializerRegistry, run_id: str
) -> dict[tuple[str, str], ArtifactRef]:
    # Artifacts are write-once and a resumed run stores its constants again, so each
    # orchestrator session gets its own folder.
    session = secrets.token_hex(4)
    refs = {}
    for name, step in spec.steps.items():
        for param, given in step.inputs.items():
            if not isinstance(given, ConstantInput):
                continue
            uri = store.uri_for(*safe_segments("runs", run_id, name, "inputs", session, param))
            annotation = step.step.input_annotations.get(param, EMPTY)
            try:
                refs[(name, param)] = save_artifact(store, uri, given.value, annotation, registry)
            except NoMaterializerError as error:
                raise NoMaterializerError(f"step {name!r} input {param!r}: {error}") from None
    return refs


def plan_rows(
    spec: PipelineSpec,
    *,
    plugins: Plugins | None = None,
    project: Project | None = None,
    stack: str | None = None,
    run_settings: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Each step's resolved operator and settings, checked as a run would: a dry run."""
    plugins = plugins or get_plugins()
    project = project or Project.discover()
    stack_used = project_stack(project, plugins.flavors, stack)
    plan = make_plan(spec, stack_used, plugins, run_settings or {})
    return [
        {
            "step": name,
            "stack": stack_used.name,
            "operator": plan.operators[name].name,
            "flavor": plan.operators[name].flavor,
            "upstream": list(step.upstream),
            "settings": plan.merged_settings[name],
        }
        for name, step in spec.steps.items()
    ]
