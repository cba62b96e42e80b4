"""The artifact stores of a project, opened through the plugins with their connectors.

An artifact records only its URI.  The store that holds it is the project's artifact
store component (in any stack of ``stepframe.toml``) whose root contains the URI, opened
with that component's connector's credentials, as a run opens it; a URI under no
configured root is opened by its scheme alone (a ``file://`` store finds its root by its
marker file).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stepframe.exceptions import ConfigError

if TYPE_CHECKING:
    from stepframe._artifacts.store import ArtifactStore
    from stepframe._config.stacks import Stack
    from stepframe._plugins.manager import Plugins
    from stepframe._project import Project

__all__ = ["ProjectStores"]


class ProjectStores:
    """Opens, and keeps open, the artifact stores of one project.

    :param plugins: the plugins to open stores with (default: the process-wide ones,
        loaded on first use).
    """

    def __init__(self, project: Project, plugins: Plugins | None = None) -> None:
        self.project = project
        self._plugins = plugins
        self._given = plugins is not None
        self._stacks: dict[str, Stack] | None = None
        self._open: dict[str, ArtifactStore] = {}
        #: Stacks that could not be loaded (a plugin missing, say), one line each.
        self.problems: list[str] = []

    @property
    def given_plugins(self) -> bool:
        """Whether the caller chose the plugins (then every store opens through them)."""
        return self._given

    @property
    def plugins(self) -> Plugins:
        if self._plugins is None:
            from stepframe._plugins.manager import get_plugins

            self._plugins = get_plugins()
        return self._plugins

    def roots(self) -> dict[str, Stack]:
        """Each artifact store root of the project's stacks, with the first stack using it."""
        if self._stacks is None:
            from stepframe._config.stacks import load_stack, stack_definitions
            from stepframe._project import CONFIG_FILE

            path = self.project.root / CONFIG_FILE
            document: Mapping[str, Any] = {}
            if path.is_file():
                from stepframe._config.toml_file import read_toml

                document = read_toml(path)
            self._stacks = {}
            for name in stack_definitions(document):
                try:
                    stack = load_stack(self.project, self.plugins.flavors, document, name)
                except ConfigError as error:
                    self.problems.append(f"stack {name!r}: {error}")
                    continue
                self._stacks.setdefault(stack.artifact_store_uri.rstrip("/"), stack)
        return self._stacks

    def for_uri(self, uri: str) -> ArtifactStore:
        """The store an artifact URI lives in, opened read-only in spirit: nothing is
        written through it here."""
        if urllib.parse.urlsplit(uri).scheme == "file" and not self._has_config():
            # Only the default stack, whose local store needs no connector: no stack to
            # load, and, as a job does, no plugin either unless the core's local store
            # plugin is disabled (loading them costs more than reading a small artifact).
            return self._open_local(uri)
        roots = self.roots()
        matching = [root for root in roots if uri == root or uri.startswith(root + "/")]
        if matching:
            root = max(matching, key=len)
            return self._open_root(root, roots[root])
        return self._open_by_scheme(uri)

    def _has_config(self) -> bool:
        from stepframe._project import CONFIG_FILE

        return (self.project.root / CONFIG_FILE).is_file()

    def _open_local(self, uri: str) -> ArtifactStore:
        from stepframe.entrypoint import _local_store_is_builtin

        if self._given or not _local_store_is_builtin(uri):
            return self._open_by_scheme(uri)
        for opened in self._open.values():
            if opened.contains(uri):
                return opened
        from stepframe._artifacts.local import find_store_root, open_local_store

        if find_store_root(uri) is None:
            # Opening it as a store would create one there: a reader creates nothing.
            from stepframe.exceptions import ArtifactNotFoundError

            raise ArtifactNotFoundError(
                f"no artifact is stored at {uri}: there is no artifact store there any more "
                "(it was moved or deleted)"
            )
        store = open_local_store(uri)
        self._open.setdefault(store.root_uri, store)
        return store

    def _open_by_scheme(self, uri: str) -> ArtifactStore:
        for opened in self._open.values():
            if opened.contains(uri):
                return opened
        store = self.plugins.hooks.open_artifact_store(uri, None)
        self._open.setdefault(store.root_uri, store)
        return store

    def configured(self) -> list[tuple[str, ArtifactStore]]:
        """Every store the project's stacks name, as ``(stack names, store)``; a local store
        whose folder does not exist holds nothing and is left out (opening it would create
        it)."""
        found: list[tuple[str, ArtifactStore]] = []
        for root, stack in self.roots().items():
            if _missing_local_folder(root):
                continue
            found.append((stack.name, self._open_root(root, stack)))
        return found

    def _open_root(self, root: str, stack: Stack) -> ArtifactStore:
        store = self._open.get(root)
        if store is None:
            from stepframe._stack import connector_credentials
            from stepframe._types import ResourceRequest

            hooks = self.plugins.hooks
            credentials = connector_credentials(
                stack, stack.artifact_store, ResourceRequest("object_store", root), hooks
            )
            store = self._open[root] = hooks.open_artifact_store(root, credentials)
        return store


def _missing_local_folder(root: str) -> bool:
    parts = urllib.parse.urlsplit(root)
    if parts.scheme != "file":
        return False
    from stepframe._artifacts.local import path_from_file_uri

    return not path_from_file_uri(root).is_dir()
