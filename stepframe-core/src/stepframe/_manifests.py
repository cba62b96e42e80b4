"""Launch and result manifests: the only thing a job and the client exchange.

The client writes a launch manifest next to the step's inputs; the entrypoint inside the
job reads it, runs the step and writes a result manifest.  Both are versioned: a reader
refuses a version it does not know, with a message saying which side to upgrade.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import attrs
import cattrs

from stepframe._artifacts.store import ArtifactStore
from stepframe._types import ArtifactRef, RemoteError
from stepframe.exceptions import ManifestError

__all__ = [
    "MANIFEST_VERSION",
    "FunctionRef",
    "LaunchManifest",
    "OutputTarget",
    "ResultManifest",
    "read_manifest",
    "write_manifest",
]

MANIFEST_VERSION = 1

_converter = cattrs.Converter(forbid_extra_keys=True)


@attrs.frozen
class FunctionRef:
    """Where the job finds the step function.

    :param module: the module to import, relative to the code root.
    :param qualname: the attribute holding the step (a `Step` or a plain function).
    :param path: the module's file relative to the code root; used when ``module``
        cannot be imported by name (a script run as ``__main__``).
    """

    module: str
    qualname: str
    path: str | None = None


@attrs.frozen
class OutputTarget:
    """Where one output of the step must be written."""

    name: str
    uri: str


@attrs.frozen
class LaunchManifest:
    """Everything a job needs to run one step, besides the code and the image."""

    run_id: str
    pipeline: str
    step: str
    attempt: int
    function: FunctionRef
    inputs: dict[str, ArtifactRef]
    outputs: list[OutputTarget]
    result_uri: str
    artifact_store_uri: str
    settings: dict[str, Any] = attrs.field(factory=dict)
    versions: dict[str, str] = attrs.field(factory=dict)
    # Plugins whose materializers the client had; the job loads these (and only these,
    # besides what its artifact store needs), so a plain job starts without scanning
    # entry points.
    materializer_plugins: list[str] = attrs.field(factory=list)
    version: int = MANIFEST_VERSION


@attrs.frozen
class ResultManifest:
    """What the step produced, or the error it raised, with timings."""

    outputs: dict[str, ArtifactRef] = attrs.field(factory=dict)
    error: RemoteError | None = None
    started_at: float = 0.0
    ended_at: float = 0.0
    version: int = MANIFEST_VERSION


_ManifestT = TypeVar("_ManifestT", LaunchManifest, ResultManifest)


def write_manifest(
    store: ArtifactStore, uri: str, manifest: LaunchManifest | ResultManifest
) -> None:
    data = json.dumps(_converter.unstructure(manifest), indent=1, sort_keys=True)
    with store.open_write(uri) as stream:
        stream.write(data.encode())


def read_manifest(store: ArtifactStore, uri: str, kind: type[_ManifestT]) -> _ManifestT:
    with store.open_read(uri) as stream:
        raw = stream.read()
    what = "launch manifest" if kind is LaunchManifest else "result manifest"
    try:
        data = json.loads(raw)
    except ValueError as error:
        raise ManifestError(f"{what} {uri} is not valid JSON: {error}") from None
    version = data.get("version") if isinstance(data, dict) else None
    if version != MANIFEST_VERSION:
        raise ManifestError(
            f"{what} {uri} has version {version!r}, but this stepframe reads version "
            f"{MANIFEST_VERSION}; run the same stepframe version on the client and in the job"
        )
    try:
        return _converter.structure(data, kind)
    except Exception as error:
        detail = (
            "; ".join(cattrs.transform_error(error))
            if isinstance(error, cattrs.BaseValidationError)
            else str(error)
        )
        raise ManifestError(f"{what} {uri} is malformed: {detail}") from None
