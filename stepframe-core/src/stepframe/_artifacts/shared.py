"""How steps that run on the client's machine reach the run's artifact store.

The orchestrator opens the artifact store with its connector's credentials.  A job only
gets its launch manifest's URI, and opening the store from that URI alone would go
without those credentials (``open_artifact_store(uri, None)``), which is right for a
remote job (it has a role of its own) but not for a job on this machine:

- a step on the ``inprocess`` operator takes the run's own open store (`sharing`,
  `shared_store_for`);
- a ``local`` job process reads the credentials' values (`credentials_for_job`) from a
  pipe it inherits, before the step's code runs (`job_store_credentials`); they are never
  in an environment, where ``/proc/PID/environ`` would keep them for the job's life.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from stepframe._artifacts.store import ArtifactStore

if TYPE_CHECKING:
    from stepframe._types import Credentials

__all__ = ["credentials_for_job", "job_store_credentials", "shared_store_for", "sharing"]

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


def credentials_for_job(credentials: Credentials) -> str:
    """The credentials as the text a job process on this machine reads from its pipe.

    Refreshed first, so the job starts with the longest life they can have; a job process
    cannot call the connector's ``refresh`` itself.
    """
    fresh = credentials.fresh()
    return json.dumps(
        {
            "connector": fresh.connector,
            "resource": [fresh.resource.kind, fresh.resource.resource_id],
            "values": dict(fresh.values),
            "expires_at": fresh.expires_at,
        }
    )


def job_store_credentials(text: str) -> Credentials | None:
    """The store credentials in what `credentials_for_job` wrote, or None for no text."""
    if not text:
        return None
    from stepframe._types import Credentials, ResourceRequest

    data = json.loads(text)
    kind, resource_id = data["resource"]
    return Credentials(
        connector=data["connector"],
        resource=ResourceRequest(kind, resource_id),
        values=data["values"],
        expires_at=data["expires_at"],
    )
