"""The errors this plugin raises on purpose; each message says what is wrong and the fix.

They derive from stepframe's own error classes, so the CLI shows their message and no
Python traceback.
"""

from __future__ import annotations

from stepframe import StepframeError

__all__ = [
    "DockerBuildError",
    "DockerError",
    "EngineUnavailableError",
    "ImageBuildStepError",
    "ParentImageError",
    "ParityError",
    "RegistryError",
]


class DockerError(StepframeError):
    """Base class of the docker plugin's errors."""


class EngineUnavailableError(DockerError):
    """The Docker engine does not answer, or this user may not talk to it.

    :param cause: what the connection attempt said, in one short line
        (``there is no socket at /var/run/docker.sock``), for messages that add their own fix.
    """

    def __init__(self, message: str, cause: str = "") -> None:
        super().__init__(message)
        self.cause = cause or message


class RegistryError(DockerError):
    """The container registry cannot be reached, or refuses the push or pull."""


class DockerBuildError(DockerError):
    """Preparing or building an image failed."""


class ImageBuildStepError(DockerBuildError):
    """A step of the Dockerfile failed; the message shows it and its last output lines.

    :param step: the failing instruction, ``"Step 4/9 : RUN pip install ..."``.
    :param output: its last output lines.
    """

    def __init__(self, message: str, step: str = "", output: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.step = step
        self.output = output


class ParentImageError(DockerBuildError):
    """The parent image is not on the engine and cannot be pulled."""


class ParityError(DockerBuildError):
    """The image's Python or stepframe version differs from the client's."""
