"""stepframe: run each step of a Python pipeline on the compute it needs.

The public API.  Everything else lives in private modules and may change.

Pipeline authors use `step`, `pipeline` and the exceptions.  Plugin authors use
`hookimpl`, the hook value types and the `ArtifactStore` / `Materializer` base classes;
`stepframe.hookspecs` documents every hook.
"""

from __future__ import annotations

__version__ = "0.1.0"

from stepframe._artifacts.materializer import Materializer
from stepframe._artifacts.store import ArtifactStore
from stepframe._pipeline.pipeline import Pipeline, pipeline
from stepframe._pipeline.step import Step, step
from stepframe._plugins.manager import PluginLoadWarning, Plugins, load_plugins
from stepframe._plugins.markers import hookimpl
from stepframe._types import (
    ArtifactRef,
    Component,
    ComponentKind,
    Credentials,
    Flavor,
    ImageRef,
    ImageRequest,
    JobHandle,
    JobState,
    JobStatus,
    Launch,
    RemoteError,
    ResourceRequest,
    StepResult,
)
from stepframe.exceptions import (
    ConfigError,
    PipelineLoadError,
    RunCancelled,
    RunFailed,
    StepFailed,
    StepframeError,
    UnknownOperatorError,
)

__all__ = [
    "ArtifactRef",
    "ArtifactStore",
    "Component",
    "ComponentKind",
    "ConfigError",
    "Credentials",
    "Flavor",
    "ImageRef",
    "ImageRequest",
    "JobHandle",
    "JobState",
    "JobStatus",
    "Launch",
    "Materializer",
    "Pipeline",
    "PipelineLoadError",
    "PluginLoadWarning",
    "Plugins",
    "RemoteError",
    "ResourceRequest",
    "RunCancelled",
    "RunFailed",
    "Step",
    "StepFailed",
    "StepResult",
    "StepframeError",
    "UnknownOperatorError",
    "__version__",
    "hookimpl",
    "load_plugins",
    "pipeline",
    "step",
]
