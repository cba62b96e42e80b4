"""Planning a run: every step's operator and settings resolved, constants stored.

Everything here happens before a run is recorded, so a pipeline that cannot run fails
here and leaves nothing behind.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, BinaryIO, cast

import attrs

from stepframe._artifacts.io import save_artifact
from stepframe._artifacts.materializers import MaterializerRegistry
from stepframe._artifacts.store import ArtifactStore
from stepframe._names import safe_segments
from stepframe._pipeline.pipeline import ConstantInput, PipelineSpec, UpstreamInput
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
    use_cache: bool = True,
) -> list[dict[str, Any]]:
    """A dry run: each step's resolved operator and settings, its upstream edges and
    whether it would come from the cache, after the same pre-flight a run makes.

    :raises PreflightError: when a plugin's ``check_step`` found problems (exit 2).
    """
    from stepframe._orchestrator.preflight import preflight

    plugins = plugins or get_plugins()
    project = project or Project.discover()
    stack_used = project_stack(project, plugins.flavors, stack)
    plan = make_plan(spec, stack_used, plugins, run_settings or {})
    preflight(spec, stack_used, plan, plugins, Path(spec.code_root))
    cache = _cache_forecast(spec, stack_used, plan, plugins, project) if use_cache else {}
    return [
        {
            "step": name,
            "stack": stack_used.name,
            "operator": plan.operators[name].name,
            "flavor": plan.operators[name].flavor,
            "upstream": list(step.upstream),
            "edges": [
                {"from": given.step, "output": given.output, "input": param}
                for param, given in step.inputs.items()
                if isinstance(given, UpstreamInput)
            ],
            "settings": plan.merged_settings[name],
            "cache": cache.get(name, "runs: --no-cache" if not use_cache else "runs"),
        }
        for name, step in spec.steps.items()
    ]


class _HashOnlyStore(ArtifactStore):
    """Takes writes only to hash them: a dry run learns what its constants hash to
    without storing anything."""

    def __init__(self) -> None:
        super().__init__("dry-run://constants")

    def open_write(self, uri: str) -> AbstractContextManager[BinaryIO]:
        return nullcontext(cast(BinaryIO, io.BytesIO()))

    def open_read(self, uri: str) -> AbstractContextManager[BinaryIO]:
        raise NotImplementedError("a dry run reads no artifacts")

    def exists(self, uri: str) -> bool:
        return False


def _cache_forecast(
    spec: PipelineSpec, stack: Stack, plan: Plan, plugins: Plugins, project: Project
) -> dict[str, str]:
    """What each step would do about the cache: which steps would come from it.

    Reads the run history (never writes it) and hashes constant inputs in memory; a step
    downstream of one that runs cannot be predicted (its inputs do not exist yet).
    """
    from stepframe._history.database import RunHistory
    from stepframe._orchestrator.cache import cache_key

    if not project.database_path.exists():
        return {name: "runs (no runs recorded yet)" for name in spec.steps}
    registry = MaterializerRegistry(plugins.materializers)
    hashing = _HashOnlyStore()
    outputs: dict[str, dict[str, ArtifactRef]] = {}
    forecast: dict[str, str] = {}
    history = RunHistory(project.database_path)
    try:
        for name, step in spec.steps.items():
            if not step.cache:
                forecast[name] = "runs (the step has caching off)"
                continue
            inputs: dict[str, ArtifactRef] = {}
            waiting = [up for up in step.upstream if up not in outputs]
            if waiting:
                forecast[name] = f"runs unless {', '.join(waiting)} reproduce their outputs"
                continue
            for param, given in step.inputs.items():
                if isinstance(given, UpstreamInput):
                    inputs[param] = outputs[given.step][given.output]
                else:
                    annotation = step.step.input_annotations.get(param, EMPTY)
                    inputs[param] = save_artifact(
                        hashing, hashing.uri_for(param), given.value, annotation, registry
                    )
            key = cache_key(
                func=step.step.func,
                function_id=f"{step.function.module}:{step.function.qualname}",
                code_root=spec.code_root,
                inputs=inputs,
                operator=plan.operators[name],
                settings=plan.merged_settings[name],
                outputs=step.step.output_names,
                materializer_plugins=plugins.materializer_plugins,
            )
            # The same lookup a run makes: a hit in the store the run would use.
            found = history.find_cached(key, store_root=stack.artifact_store_uri)
            recorded = {} if found is None else {r.output: r.ref for r in found[2]}
            if found is None or set(recorded) != set(step.step.output_names):
                forecast[name] = "runs (no earlier outputs for its code, inputs and settings)"
                continue
            outputs[name] = recorded
            forecast[name] = f"from the cache (outputs of run {found[0]}, step {found[1]})"
    finally:
        history.close()
    return forecast
