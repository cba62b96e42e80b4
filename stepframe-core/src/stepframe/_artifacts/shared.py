"""How steps that run on the client's machine reach the run's artifact store.

The orchestrator opens the artifact store with its connector's credentials.  A job only
gets its launch manifest's URI, and opening the store from that URI alone would go
without those credentials (``open_artifact_store(uri, None)``), which is right for a
remote job (it has a role of its own) but not for a job on this machine:

- a step on the ``inprocess`` operator takes the run's own open store (`sharing`,
  `shared_store_for`);
- a ``local`` job process gets the credentials' values in `STORE_CREDENTIALS_ENV`
  (`credentials_for_job`), which its entrypoint takes out of the environment before the
  step's code runs (`job_store_credentials`).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from stepframe._artifacts.store import ArtifactStore

if TYPE_CHECKING:
    from stepframe._types import Credentials

__all__ = [
    "STORE_CREDENTIALS_ENV",
    "credentials_for_job",
    "job_store_credentials",
    "shared_store_for",
    "sharing",
]

STORE_CREDENTIALS_ENV = "STEPFRAME_STORE_CREDENTIALS"

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
    """The value of `STORE_CREDENTIALS_ENV` for a job process on this machine.

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


def job_store_credentials(
    environ: MutableMapping[str, str] = os.environ,
) -> Credentials | None:
    """The store credentials a job's operator handed over, or None.

    They are removed from ``environ``, so the step's own code and its subprocesses do not
    see them.
    """
    raw = environ.pop(STORE_CREDENTIALS_ENV, None)
    if not raw:
        return None
    from stepframe._types import Credentials, ResourceRequest

    data = json.loads(raw)
    kind, resource_id = data["resource"]
    return Credentials(
        connector=data["connector"],
        resource=ResourceRequest(kind, resource_id),
        values=data["values"],
        expires_at=data["expires_at"],
    )
