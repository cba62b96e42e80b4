"""stepframe: run each step of a Python pipeline on the compute it needs.

The public API.  Everything else lives in private modules and may change.

Pipeline authors use `step`, `pipeline` and the exceptions.  Plugin authors use
`hookimpl`, the hook value types and the `ArtifactStore` / `Materializer` base classes;
`stepframe.hookspecs` documents every hook.

The names are imported on first use (PEP 562), so ``import stepframe`` -- and every job
process, which imports ``stepframe.entrypoint`` -- pays only for what it touches: a job
never imports the plugin machinery or the pipeline API unless it needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from stepframe._artifacts.materializer import Materializer
    from stepframe._artifacts.store import ArtifactStore
    from stepframe._client.runs import Runs
    from stepframe._config.secrets import SecretRef, resolve_secret
    from stepframe._current_job import JobPlacement, current_job
    from stepframe._pipeline.pipeline import Pipeline, pipeline
    from stepframe._pipeline.step import Step, step
    from stepframe._plugins.manager import (
        PluginConflictWarning,
        PluginLoadWarning,
        Plugins,
        PluginVersionWarning,
        load_plugins,
    )
    from stepframe._plugins.markers import hookimpl
    from stepframe._types import (
        ArtifactRef,
        Component,
        ComponentKind,
        ConnectorReport,
        Credentials,
        Flavor,
        ImageRef,
        ImageRequest,
        JobHandle,
        JobNotFound,
        JobState,
        JobStatus,
        Launch,
        PlannedStep,
        RemoteError,
        ResourceRequest,
        StepResult,
    )
    from stepframe.exceptions import (
        ConfigError,
        ConnectorError,
        PipelineLoadError,
        RunCancelled,
        RunFailed,
        StepFailed,
        StepframeError,
        SubmitAmbiguousError,
        UnknownOperatorError,
    )

# Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "ArtifactRef": "stepframe._types",
    "ArtifactStore": "stepframe._artifacts.store",
    "Component": "stepframe._types",
    "ComponentKind": "stepframe._types",
    "ConfigError": "stepframe.exceptions",
    "ConnectorError": "stepframe.exceptions",
    "ConnectorReport": "stepframe._types",
    "Credentials": "stepframe._types",
    "Flavor": "stepframe._types",
    "ImageRef": "stepframe._types",
    "ImageRequest": "stepframe._types",
    "JobHandle": "stepframe._types",
    "JobNotFound": "stepframe._types",
    "JobPlacement": "stepframe._current_job",
    "JobState": "stepframe._types",
    "JobStatus": "stepframe._types",
    "Launch": "stepframe._types",
    "PlannedStep": "stepframe._types",
    "Materializer": "stepframe._artifacts.materializer",
    "Pipeline": "stepframe._pipeline.pipeline",
    "PipelineLoadError": "stepframe.exceptions",
    "PluginConflictWarning": "stepframe._plugins.manager",
    "PluginLoadWarning": "stepframe._plugins.manager",
    "PluginVersionWarning": "stepframe._plugins.manager",
    "Plugins": "stepframe._plugins.manager",
    "RemoteError": "stepframe._types",
    "ResourceRequest": "stepframe._types",
    "RunCancelled": "stepframe.exceptions",
    "RunFailed": "stepframe.exceptions",
    "Runs": "stepframe._client.runs",
    "Step": "stepframe._pipeline.step",
    "StepFailed": "stepframe.exceptions",
    "SecretRef": "stepframe._config.secrets",
    "StepResult": "stepframe._types",
    "StepframeError": "stepframe.exceptions",
    "SubmitAmbiguousError": "stepframe.exceptions",
    "UnknownOperatorError": "stepframe.exceptions",
    "current_job": "stepframe._current_job",
    "hookimpl": "stepframe._plugins.markers",
    "load_plugins": "stepframe._plugins.manager",
    "pipeline": "stepframe._pipeline.pipeline",
    "resolve_secret": "stepframe._config.secrets",
    "step": "stepframe._pipeline.step",
}

__all__ = [
    "ArtifactRef",
    "ArtifactStore",
    "Component",
    "ComponentKind",
    "ConfigError",
    "ConnectorError",
    "ConnectorReport",
    "Credentials",
    "Flavor",
    "ImageRef",
    "ImageRequest",
    "JobHandle",
    "JobNotFound",
    "JobPlacement",
    "JobState",
    "JobStatus",
    "Launch",
    "Materializer",
    "Pipeline",
    "PipelineLoadError",
    "PlannedStep",
    "PluginConflictWarning",
    "PluginLoadWarning",
    "PluginVersionWarning",
    "Plugins",
    "RemoteError",
    "ResourceRequest",
    "RunCancelled",
    "RunFailed",
    "Runs",
    "SecretRef",
    "Step",
    "StepFailed",
    "StepResult",
    "StepframeError",
    "SubmitAmbiguousError",
    "UnknownOperatorError",
    "__version__",
    "current_job",
    "hookimpl",
    "load_plugins",
    "pipeline",
    "resolve_secret",
    "step",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'stepframe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
