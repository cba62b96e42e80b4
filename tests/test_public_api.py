"""The public names of every distribution, pinned to a reviewed list.

A name added to or removed from an ``__all__`` fails here until the list below is changed
with it: adding is a promise to keep the name (docs/plugins.md, "compatibility"), removing
one breaks users.  Each listed name must also resolve, and ``stepframe``'s names are kept
in one place (``_EXPORTS``), which the TYPE_CHECKING imports for type checkers repeat.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from types import ModuleType

import pytest

PUBLIC_NAMES: dict[str, list[str]] = {
    "stepframe": [
        "ArtifactRef",
        "ArtifactStore",
        "Component",
        "ComponentKind",
        "ConfigError",
        "ConnectorError",
        "ConnectorReport",
        "CostEstimate",
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
    ],
    "stepframe.testing": [
        "ArtifactStoreSuite",
        "ConnectorSuite",
        "CuttingProxy",
        "FinishedJob",
        "ImageBuilderSuite",
        "KIT_CLOUD",
        "KitCloud",
        "KitCloudSettings",
        "OperatorHarness",
        "PolicySuite",
        "SmallPipeline",
        "StepOperatorSuite",
        "StepframeCli",
        "TempProject",
        "make_plugins",
        "read_until",
        "small_pipeline",
        "stepframe_plugin",
        "stepframe_plugins",
        "stepframe_project",
    ],
    "stepframe.object_store": [
        "ObjectLocation",
        "PartReader",
        "PartWriter",
        "RESERVED_PREFIX",
        "RangeBody",
        "STORE_MARKER",
        "check_in_store",
        "exists_error",
        "find_store_root",
    ],
    "stepframe.support": [
        "backoff_delays",
        "file_lock",
        "process_is_running",
        "process_start_ticks",
        "read_log_lines",
        "write_atomically",
    ],
    "stepframe_docker": [
        "BuildReport",
        "CloudLocalMode",
        "ContainerRegistryConfig",
        "DockerBuildError",
        "DockerBuilderConfig",
        "DockerError",
        "DockerOperatorConfig",
        "DockerSettings",
        "EngineUnavailableError",
        "ImageBuildStepError",
        "ParentImageError",
        "ParityError",
        "RegistryError",
        "__version__",
        "build_reports",
        "forget_builds",
    ],
    "stepframe_aws": [
        "AwsConnectorConfig",
        "EcrRegistryConfig",
        "S3ArtifactStoreConfig",
        "SageMakerOperatorConfig",
        "SageMakerSettings",
        "__version__",
    ],
    "stepframe_gcp": [
        "ArtifactRegistryConfig",
        "GcpConnectorConfig",
        "GcsArtifactStoreConfig",
        "VertexOperatorConfig",
        "VertexSettings",
        "__version__",
    ],
    "stepframe_azure": [
        "AcrConfig",
        "AzureBlobStoreConfig",
        "AzureConnectorConfig",
        "AzureMLOperatorConfig",
        "AzureMLSettings",
        "__version__",
    ],
    # The example plugin (examples/plugins/stepframe-policy), when it is installed.
    "stepframe_policy": [
        "Policy",
        "PolicyConfigError",
        "PolicyViolation",
        "__version__",
        "current_policy",
        "parse_policy",
    ],
}


def _module(name: str) -> ModuleType:
    """The module; a distribution this environment lacks (a combination session) skips."""
    top = name.partition(".")[0]
    if top != "stepframe":
        pytest.importorskip(top, reason=f"{top} is not installed in this environment")
    return importlib.import_module(name)


@pytest.mark.parametrize("name", sorted(PUBLIC_NAMES))
def test_public_names_are_the_reviewed_ones(name: str) -> None:
    module = _module(name)
    assert sorted(module.__all__) == sorted(PUBLIC_NAMES[name])
    assert len(set(module.__all__)) == len(module.__all__), "a name is listed twice"


@pytest.mark.parametrize("name", sorted(PUBLIC_NAMES))
def test_every_public_name_resolves(name: str) -> None:
    module = _module(name)
    missing = [attr for attr in module.__all__ if not hasattr(module, attr)]
    assert missing == []
    assert set(module.__all__) <= set(dir(module))


def _type_checking_imports(module: ModuleType) -> dict[str, str]:
    """Name -> module of each ``from M import N as N`` under ``if TYPE_CHECKING:``."""
    tree = ast.parse(inspect.getsource(module))
    imports: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom), ast.unparse(statement)
                for alias in statement.names:
                    # `as` the same name: an explicit re-export, which mypy --strict and
                    # pyright require of a name a user imports from the package.
                    assert alias.asname == alias.name, ast.unparse(statement)
                    assert statement.module is not None
                    imports[alias.name] = statement.module
    return imports


def test_stepframe_keeps_its_names_in_one_place() -> None:
    import stepframe

    exports = stepframe._EXPORTS
    assert sorted(stepframe.__all__) == sorted(["__version__", *exports])
    assert _type_checking_imports(stepframe) == exports
    for name, module in exports.items():
        assert getattr(importlib.import_module(module), name) is getattr(stepframe, name)
