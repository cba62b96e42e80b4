"""The artifact store interface that every backend (local disk, S3, ...) implements.

A store is a flat space of write-once objects named by URI.  It knows nothing of
materializers or hashes: `stepframe._artifacts.io` streams values through materializers
and checks sha256 on top of any store.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import BinaryIO

__all__ = ["ArtifactStore"]


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

    def list(self, prefix_uri: str) -> Iterator[str]:
        """URIs of the objects below ``prefix_uri``.  Optional; used by tooling only."""
        raise NotImplementedError(f"{type(self).__name__} cannot list objects")
