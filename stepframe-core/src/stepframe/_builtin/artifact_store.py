"""The core's local artifact store, a plugin like any other: flavor ``local``, ``file://``.

Loaded for every run, so it imports only attrs and the core's types at module level; the
store itself is imported when a ``file://`` URI is actually opened.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from stepframe._plugins.markers import hookimpl
from stepframe._types import ComponentKind, Credentials, Flavor

if TYPE_CHECKING:
    from stepframe._artifacts.local import LocalArtifactStore
    from stepframe._artifacts.store import ArtifactStore

__all__ = ["DEFAULT_PATH", "LocalArtifactStoreConfig", "open_artifact_store", "register_flavors"]

# Where a project's artifacts go when the stack does not say, relative to the project root.
DEFAULT_PATH = os.path.join(".stepframe", "artifacts")


@attrs.frozen
class LocalArtifactStoreConfig:
    """Configuration of a ``local`` artifact store.

    :param path: the store's directory, absolute or relative to the project root; None
        means the project's ``.stepframe/artifacts``.
    """

    path: str | None = None

    def root_path(self, project_root: Path) -> Path:
        """The store's directory for a project."""
        return project_root / os.path.expanduser(self.path or DEFAULT_PATH)

    def open(self, project_root: Path) -> LocalArtifactStore:
        """The store for a project, created (with its marker) if it does not exist yet."""
        from stepframe._artifacts.local import LocalArtifactStore

        return LocalArtifactStore.at(self.root_path(project_root), create=True)


@hookimpl
def register_flavors(register: Callable[[Flavor], None]) -> None:
    register(
        Flavor(
            kind=ComponentKind.ARTIFACT_STORE,
            name="local",
            config_class=LocalArtifactStoreConfig,
            description="Artifacts as files on this machine (file:// URIs)",
            uri_schemes=("file",),
        )
    )


@hookimpl
def open_artifact_store(uri: str, credentials: Credentials | None) -> ArtifactStore | None:
    """A local store for ``file://`` URIs (see `open_local_store` for how its root is found).

    Opening a store root creates it if missing.
    """
    if urllib.parse.urlsplit(uri).scheme != "file":
        return None
    from stepframe._artifacts.local import open_local_store

    return open_local_store(uri)
