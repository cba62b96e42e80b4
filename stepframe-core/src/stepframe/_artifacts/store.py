"""The artifact store interface that every backend (local disk, S3, ...) implements.

A store is a flat space of write-once objects named by URI.  It knows nothing of
materializers: `stepframe._artifacts.io` streams values through materializers and checks
sha256 on top of any store.  Before a recorded object is reused without being loaded (a
cache hit, a step a resumed run takes over), `ArtifactStore.verify` checks it is still
the object that was recorded.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import BinaryIO

from stepframe._types import ArtifactRef
from stepframe.exceptions import ArtifactNotFoundError

__all__ = ["ArtifactStore", "mismatch"]

# Read size when hashing an object (the materializers' chunk size).
_CHUNK_SIZE = 1 << 20


class ArtifactStore(abc.ABC):
    """A place to write objects once and read them back, addressed by URI.

    :param root_uri: the URI every object of this store starts with
        (``file:///project/.stepframe/artifacts``, ``s3://bucket/prefix``).
    """

    def __init__(self, root_uri: str) -> None:
        self.root_uri = root_uri.rstrip("/")

    def uri_for(self, *parts: str) -> str:
        """The URI of an object below this store's root."""
        return "/".join([self.root_uri, *(p.strip("/") for p in parts)])

    @abc.abstractmethod
    def open_write(self, uri: str) -> AbstractContextManager[BinaryIO]:
        """Write a new object, streamed.

        The object becomes visible only when the ``with`` block exits cleanly; if it
        raises, nothing is left behind.  Raises `ArtifactExistsError` if ``uri`` is
        already taken: objects are written once.
        """

    @abc.abstractmethod
    def open_read(self, uri: str) -> AbstractContextManager[BinaryIO]:
        """Read an object, streamed.  Raises `ArtifactNotFoundError` if it is missing."""

    @abc.abstractmethod
    def exists(self, uri: str) -> bool:
        """Whether an object is stored at ``uri``."""

    def contains(self, uri: str) -> bool:
        """Whether ``uri`` names an object of this store (whether or not it exists)."""
        return uri.startswith(self.root_uri + "/")

    def verify(self, ref: ArtifactRef) -> str | None:
        """Whether the object at ``ref.uri`` is still the one ``ref`` recorded.

        Returns None when its size and sha256 are ``ref.size`` and ``ref.sha256``, else
        what differs, in a few words: ``"missing"``, ``"size 12 bytes, recorded 13"``,
        ``"sha256 1f2e…, recorded 9a8b…"`` (`mismatch` words the last two).  Errors in
        reaching the store (network, permissions) are raised, not returned.

        Optional: this default reads the whole object and hashes it.  A store that can
        vouch for an object more cheaply overrides it, checking what it already knows
        first: a size from a stat or HEAD request rules out a truncated or extended
        object without reading it; only a checksum the backend itself computed over the
        stored bytes and keeps with the object may stand in for reading them.
        """
        digest = hashlib.sha256()
        size = 0
        try:
            with self.open_read(ref.uri) as stream:
                while chunk := stream.read(_CHUNK_SIZE):
                    digest.update(chunk)
                    size += len(chunk)
                    if size > ref.size:  # extended: no need to read the rest
                        return f"size over {ref.size} bytes, recorded {ref.size}"
        except ArtifactNotFoundError:
            return "missing"
        return mismatch(ref, size=size, sha256=digest.hexdigest())

    def list(self, prefix_uri: str) -> Iterator[str]:
        """URIs of the objects below ``prefix_uri``.  Optional; used by tooling only."""
        raise NotImplementedError(f"{type(self).__name__} cannot list objects")


def mismatch(ref: ArtifactRef, *, size: int, sha256: str | None = None) -> str | None:
    """How a stored object's size (and sha256, if known) differ from ``ref``, or None."""
    if size != ref.size:
        return f"size {size} bytes, recorded {ref.size}"
    if sha256 is not None and sha256 != ref.sha256:
        return f"sha256 {sha256[:12]}…, recorded {ref.sha256[:12]}…"
    return None
