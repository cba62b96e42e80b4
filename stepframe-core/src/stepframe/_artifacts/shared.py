"""The stores a run has open, shared with steps that run in the orchestrator's process.

The orchestrator opens the artifact store with its connector's credentials.  A step on
the ``inprocess`` operator gets only its launch manifest's URI; opening the store again
from that URI would go without those credentials (``open_artifact_store(uri, None)``), so
it takes the run's own store instead.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from stepframe._artifacts.store import ArtifactStore

__all__ = ["shared_store_for", "sharing"]

_lock = threading.Lock()
_shared: list[ArtifactStore] = []


@contextmanager
def sharing(store: ArtifactStore) -> Iterator[ArtifactStore]:
    """Make ``store`` what `shared_store_for` answers for URIs below its root."""
    with _lock:
        _shared.append(store)
    try:
        yield store
    finally:
        with _lock:
            _shared.remove(store)


def shared_store_for(uri: str) -> ArtifactStore | None:
    """The open store whose root ``uri`` is under (the innermost), or None."""
    with _lock:
        stores = list(_shared)
    for store in reversed(stores):
        root = store.root_uri
        if uri == root or uri.startswith(root + "/"):
            return store
    return None
