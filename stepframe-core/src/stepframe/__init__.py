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
    from stepframe._artifacts.materializer import Materializer as Materializer
    from stepframe._artifacts.store import ArtifactStore as ArtifactStore
    from stepframe._client.runs import Runs as Runs
    from stepframe._config.secrets import SecretRef as SecretRef
    from stepframe._config.secrets import resolve_secret as resolve_secret
    from stepframe._current_job import JobPlacement as JobPlacement
    from stepframe._current_job import current_job as current_job
    from stepframe._pipeline.pipeline import Pipeline as Pipeline
    from stepframe._pipeline.pipeline import pipeline as pipeline
    from stepframe._pipeline.step import Step as Step
    from stepframe._pipeline.step import step as step
    from stepframe._plugins.manager import PluginConflictWarning as PluginConflictWarning
    from stepframe._plugins.manager import PluginLoadWarning as PluginLoadWarning
    from stepframe._plugins.manager import Plugins as Plugins
    from stepframe._plugins.manager import PluginVersionWarning as PluginVersionWarning
    from stepframe._plugins.manager import load_plugins as load_plugins
    from stepframe._plugins.markers import hookimpl as hookimpl
    from stepframe._types import ArtifactRef as ArtifactRef
    from stepframe._types import Component as Component
    from stepframe._types import ComponentKind as ComponentKind
    from stepframe._types import ConnectorReport as ConnectorReport
    from stepframe._types import CostEstimate as CostEstimate
    from stepframe._types import Credentials as Credentials
    from stepframe._types import Flavor as Flavor
    from stepframe._types import ImageRef as ImageRef
    from stepframe._types import ImageRequest as ImageRequest
    from stepframe._types import JobHandle as JobHandle
    from stepframe._types import JobNotFound as JobNotFound
    from stepframe._types import JobState as JobState
    from stepframe._types import JobStatus as JobStatus
    from stepframe._types import Launch as Launch
    from stepframe._types import PlannedStep as PlannedStep
    from stepframe._types import RemoteError as RemoteError
    from stepframe._types import ResourceRequest as ResourceRequest
    from stepframe._types import StepResult as StepResult
    from stepframe.exceptions import ConfigError as ConfigError
    from stepframe.exceptions import ConnectorError as ConnectorError
    from stepframe.exceptions import PipelineLoadError as PipelineLoadError
    from stepframe.exceptions import RunCancelled as RunCancelled
    from stepframe.exceptions import RunFailed as RunFailed
    from stepframe.exceptions import StepFailed as StepFailed
    from stepframe.exceptions import StepframeError as StepframeError
    from stepframe.exceptions import SubmitAmbiguousError as SubmitAmbiguousError
    from stepframe.exceptions import UnknownOperatorError as UnknownOperatorError

# Public name -> the module that defines it.  Adding a name: add it here and to the
# TYPE_CHECKING imports, then to the reviewed list in tests/test_public_api.py.
_EXPORTS: dict[str, str] = {
    "ArtifactRef": "stepframe._types",
    "ArtifactStore": "stepframe._artifacts.store",
    "Component": "stepframe._types",
    "ComponentKind": "stepframe._types",
    "ConfigError": "stepframe.exceptions",
    "ConnectorError": "stepframe.exceptions",
    "ConnectorReport": "stepframe._types",
    "CostEstimate": "stepframe._types",
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

# The one list of public names: `_EXPORTS` (the TYPE_CHECKING imports above repeat it for
# type checkers, as explicit re-exports; tests/test_public_api.py checks they agree).
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'stepframe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
