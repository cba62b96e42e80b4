"""Every error stepframe raises on purpose.

The tree, so callers can catch as broadly or narrowly as they need::

    StepframeError                  base of everything below
    ├── UsageError                  the user asked for something that cannot work; fix input
    │   ├── PipelineLoadError       a pipeline file is missing, does not import, or lacks the name
    │   ├── PipelineDefinitionError a @step/@pipeline is used in a way that cannot be compiled
    │   ├── UnknownOperatorError    a step names an operator no installed plugin provides
    │   └── ConfigError             a component's config or a step's settings do not validate
    ├── PluginError                 a plugin broke the hook contract (returned the wrong thing)
    ├── SubmitAmbiguousError        a submit request may have reached the backend, but its
    │                               answer was lost; the job may exist (see ``find_job``)
    ├── ConnectorError              a connector cannot authenticate, or its credentials do not
    │                               reach a resource (wrong key, expired token, denied role)
    ├── ArtifactError               storing or loading an artifact failed
    │   ├── ArtifactNotFoundError   nothing stored at that URI
    │   ├── ArtifactCorruptedError  stored bytes do not match the recorded sha256 or size
    │   ├── ArtifactExistsError     artifacts are write-once; something is already there
    │   └── NoMaterializerError     no materializer can store a step's output
    ├── ManifestError               a launch/result manifest cannot be read (version, shape)
    ├── StorageFullError            the disk holding the run history, the artifact store or
    │                               the project's state folder is full (or fails to write)
    ├── InputTypeError              a loaded input does not match the step's type hint
    ├── StepFailed                  a step raised, locally or remotely; carries the traceback
    └── RunFailed                   a run finished with failed steps; lists them
        └── RunCancelled            a run was interrupted (Ctrl-C, SIGTERM)

Every message names the thing that is wrong and, where there is one, the fix.  The CLI
prints ``str(error)`` without a Python traceback and exits non-zero.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "ArtifactCorruptedError",
    "ArtifactError",
    "ArtifactExistsError",
    "ArtifactNotFoundError",
    "ConfigError",
    "ConnectorError",
    "InputTypeError",
    "ManifestError",
    "NoMaterializerError",
    "PipelineDefinitionError",
    "PipelineLoadError",
    "PluginError",
    "RunCancelled",
    "RunFailed",
    "StepFailed",
    "StepframeError",
    "StorageFullError",
    "SubmitAmbiguousError",
    "UnknownOperatorError",
    "UsageError",
]


class StepframeError(Exception):
    """Base class of every error stepframe raises on purpose."""


class UsageError(StepframeError):
    """The user's input cannot work as given; the message says what to change."""


class PipelineLoadError(UsageError):
    """A pipeline file does not exist, fails to import, or does not define the pipeline."""


class PipelineDefinitionError(UsageError):
    """A step or pipeline is defined or called in a way that cannot be compiled."""


class UnknownOperatorError(UsageError):
    """A step names an operator that neither the stack nor any installed plugin provides."""


class ConfigError(UsageError):
    """A component's configuration or a step's settings fail validation."""


class PluginError(StepframeError):
    """A plugin broke the hook contract, for example by returning the wrong type."""


class SubmitAmbiguousError(StepframeError):
    """A submit request may have reached the backend, but its answer was lost.

    An operator raises it from ``submit_step`` when the error does not prove that nothing
    was created: a connection dropped after the request was sent, a read timeout, a 5xx.
    The core then records the job as *possibly submitted* and asks the operator's
    ``find_job`` hook, by the launch's deterministic job name, whether the job exists.
    Errors that prove nothing was created (validation, access denied, throttling of the
    create itself) stay ordinary `StepframeError` subclasses.
    """


class ConnectorError(StepframeError):
    """A connector cannot authenticate, or the credentials it gives do not reach a resource.

    Plugins raise it instead of their SDK's own errors, with a message that says which
    credential is wrong and how to fix it (never the secret itself).
    """


class ArtifactError(StepframeError):
    """Storing or loading an artifact failed."""


class ArtifactNotFoundError(ArtifactError):
    """Nothing is stored at the requested URI."""


class ArtifactCorruptedError(ArtifactError):
    """The stored bytes do not match the sha256 or size recorded when they were written."""


class ArtifactExistsError(ArtifactError):
    """Artifacts are written once; something is already stored at that URI."""


class NoMaterializerError(ArtifactError):
    """No registered materializer can store a value of this type."""


class ManifestError(StepframeError):
    """A launch or result manifest has an unknown version or an invalid shape."""


class StorageFullError(StepframeError):
    """Something stepframe keeps on disk cannot be written: the disk is full, the quota is
    used up, or the disk fails to write.

    The message is one line naming what could not be written and where, and the fix.

    :param what: what was being written, as people know it ("the run history").
    :param path: where it lives (a file, a folder or a store's root URI).
    :param reason: why, in words ("the disk is full (No space left on device)").
    :param fix: what to do about it.
    """

    def __init__(
        self, what: str, path: str, reason: str, fix: str = "free space and retry"
    ) -> None:
        self.what = what
        self.path = path
        self.reason = reason
        self.fix = fix
        super().__init__(what, path, reason, fix)

    def __str__(self) -> str:
        return f"{self.what} at {self.path} cannot be written: {self.reason}; {self.fix}"


class InputTypeError(StepframeError):
    """A step input, once loaded, does not match the step's type hint for it."""


class StepFailed(StepframeError):
    """A step raised.  When it ran remotely, the remote traceback comes with it.

    :param step: the step's name within its pipeline.
    :param error_type: qualified name of the exception the step raised.
    :param message: ``str()`` of that exception.
    :param remote_traceback: the traceback as formatted where the step ran.
    """

    def __init__(
        self,
        step: str,
        error_type: str,
        message: str,
        remote_traceback: str = "",
    ) -> None:
        self.step = step
        self.error_type = error_type
        self.message = message
        self.remote_traceback = remote_traceback
        super().__init__(step, error_type, message, remote_traceback)

    def __str__(self) -> str:
        text = f"step {self.step!r} failed: {self.error_type}: {self.message}"
        remote = self.remote_traceback.strip("\n").rstrip()
        if remote.strip():  # a blank one (no frame of the user's) would print an empty block
            text += "\n\nTraceback from where the step ran:\n" + remote
        return text


class RunFailed(StepframeError):
    """A run ended with failed steps.

    :param run_id: the run's id in the run history.
    :param failures: step name to the error that stopped it.
    :param skipped: steps not run because something upstream failed.
    """

    def __init__(
        self,
        run_id: str,
        failures: Mapping[str, BaseException],
        skipped: tuple[str, ...] = (),
    ) -> None:
        self.run_id = run_id
        self.failures = dict(failures)
        self.skipped = skipped
        super().__init__(run_id, self.failures, skipped)

    def __str__(self) -> str:
        lines = [f"run {self.run_id} failed: {len(self.failures)} step(s) failed"]
        for name, error in self.failures.items():
            first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
            lines.append(f"  {name}: {first_line}")
        if self.skipped:
            lines.append(f"  not run because an upstream step failed: {', '.join(self.skipped)}")
        return "\n".join(lines)


class RunCancelled(RunFailed):
    """A run was interrupted; running steps were asked to stop through ``cancel_step``."""

    def __str__(self) -> str:
        return f"run {self.run_id} was cancelled"
