"""stepframe-docker: build step images with Docker, push them, run steps in containers.

Installing the distribution is enough: stepframe finds the plugin through its entry point
(``docker = "stepframe_docker.plugin"``).  This module holds what users and tests may
import; everything else is private.  Nothing here imports the ``docker`` SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stepframe_docker._errors import (
    DockerBuildError,
    DockerError,
    EngineUnavailableError,
    ImageBuildStepError,
    ParentImageError,
    ParityError,
    RegistryError,
)
from stepframe_docker._local_mode import CloudLocalMode
from stepframe_docker._settings import (
    ContainerRegistryConfig,
    DockerBuilderConfig,
    DockerOperatorConfig,
    DockerSettings,
)

if TYPE_CHECKING:
    from stepframe_docker._builder import BuildReport

__version__ = "0.1.0"

__all__ = [
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
]


def build_reports() -> list[BuildReport]:
    """What each image request in this process did (built, found in the registry, ...)."""
    from stepframe_docker._builder import build_reports as reports

    return reports()


def forget_builds() -> None:
    """Forget the images this process built or found, so the next request asks again."""
    from stepframe_docker._builder import forget_builds as forget

    forget()


def __getattr__(name: str) -> Any:
    if name == "BuildReport":
        from stepframe_docker._builder import BuildReport

        return BuildReport
    raise AttributeError(f"module 'stepframe_docker' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The lazily imported BuildReport too, as `stepframe`'s module lists its names.
    return sorted({*globals(), *__all__})
