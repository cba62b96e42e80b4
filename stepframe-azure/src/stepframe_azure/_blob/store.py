"""The ``azure-blob`` artifact store: write-once blobs below an ``az://ACCOUNT/CONTAINER/PREFIX``
root.

Like every store it only moves bytes: `stepframe._artifacts.io` hashes what is written and
read and checks the sha256 on every load.  How the bytes move (staged blocks committed
with ``If-None-Match: *``; ranges pinned to the ETag, resumed after a dropped connection)
is `stepframe_azure._blob.streams`; where the account answers and how requests are signed
is `stepframe_azure._blob.access`.

A store's root holds a marker blob, ``PREFIX/.stepframe-artifact-store``, written when the
root is first opened.  The client opens the store by its configured root, used as given
(even below another store's root); a job opens it by its launch manifest's URI, a blob
deep below the root, and the nearest marker above that blob says where the root is.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, BinaryIO, cast

from stepframe import ArtifactRef, ArtifactStore
from stepframe.exceptions import ArtifactNotFoundError
from stepframe.object_store import STORE_MARKER, check_in_store, exists_error, find_store_root
from stepframe_azure._blob.api import BlobApi, error_code
from stepframe_azure._blob.streams import (
    DEFAULT_BLOCK_SIZE,
    DEFAULT_BLOCKS_IN_FLIGHT,
    DEFAULT_RANGE_SIZE,
    BlobReader,
    BlockWriter,
)
from stepframe_azure._blob.uri import RESERVED_PREFIX, BlobLocation, parse_blob_uri

if TYPE_CHECKING:
    from stepframe import Credentials

__all__ = ["STORE_MARKER", "AzureBlobArtifactStore", "BlobProperties"]


class BlobProperties:
    """What a HEAD of a blob said: its version and length."""

    def __init__(self, etag: str, size: int) -> None:
        self.etag = etag
        self.size = size


class AzureBlobArtifactStore(ArtifactStore):
    """Write-once blobs below a root ``az://ACCOUNT/CONTAINER[/PREFIX]``.

    :param root_uri: the store's root.
    :param api: the Blob API of the root's account (`BlobApi.for_account`).
    :param block_size: bytes per staged block.
    :param range_size: bytes per ranged download request.
    :param blocks_in_flight: blocks uploaded, or ranges downloaded, at once: a write holds
        about ``(blocks_in_flight + 1) x block_size`` of memory, a read
        ``blocks_in_flight x range_size``.
    """

    def __init__(
        self,
        root_uri: str,
        *,
        api: BlobApi,
        block_size: int = DEFAULT_BLOCK_SIZE,
        range_size: int = DEFAULT_RANGE_SIZE,
        blocks_in_flight: int = DEFAULT_BLOCKS_IN_FLIGHT,
    ) -> None:
        self.root = parse_blob_uri(root_uri)
        super().__init__(self.root.uri)
        self.api = api
        self.block_size = block_size
        self.range_size = range_size
        self.blocks_in_flight = blocks_in_flight

    @classmethod
    def open(
        cls,
        uri: str,
        credentials: Credentials | None,
        *,
        block_size: int = DEFAULT_BLOCK_SIZE,
        range_size: int = DEFAULT_RANGE_SIZE,
        blocks_in_flight: int = DEFAULT_BLOCKS_IN_FLIGHT,
    ) -> AzureBlobArtifactStore:
        """The store that ``uri``, a store root or a blob in one, belongs to: the
        nearest marked root above an existing blob, else ``uri`` as a root, marked
        (`stepframe.object_store.find_store_root`).

        :raises ConfigError: a malformed URI, or an account or container that does not
            exist (one line naming it and the fix).
        """
        location = parse_blob_uri(uri)
        api = BlobApi.for_account(location.account, credentials)
        root = find_store_root(
            location,
            is_object=functools.partial(_is_blob, api),
            write_new=functools.partial(_write_new, api),
        )
        return cls(
            root.uri,
            api=api,
            block_size=block_size,
            range_size=range_size,
            blocks_in_flight=blocks_in_flight,
        )

    # ---- addressing -----------------------------------------------------------------

    def location_for(self, uri: str) -> BlobLocation:
        """The account, container and name of a blob URI; refuses URIs outside this store."""
        return check_in_store(self.root, parse_blob_uri(uri), uri)

    # ---- the ArtifactStore interface ------------------------------------------------

    def open_write(self, uri: str) -> AbstractContextManager[BinaryIO]:
        return self._write(self.location_for(uri))

    @contextlib.contextmanager
    def _write(self, location: BlobLocation) -> Iterator[BinaryIO]:
        # Fail before the caller produces anything (and name a missing container then);
        # the conditional commit settles races between two writers of one name.
        if properties(self.api, location) is not None:
            raise exists_error(location.uri)
        writer = BlockWriter(self.api, location, self.block_size, self.blocks_in_flight)
        with writer.committing() as stream:
            yield stream

    def open_read(self, uri: str) -> AbstractContextManager[BinaryIO]:
        location = self.location_for(uri)
        found = properties(self.api, location)
        if found is None:
            raise ArtifactNotFoundError(
                f"no artifact is stored at {uri}; it was never written or was deleted "
                "(re-run the step that produces it)"
            )
        reader = BlobReader(
            self.api,
            location,
            found.etag,
            found.size,
            range_size=self.range_size,
            ranges_in_flight=self.blocks_in_flight,
        )
        return cast(BinaryIO, reader)

    def exists(self, uri: str) -> bool:
        return properties(self.api, self.location_for(uri)) is not None

    def verify(self, ref: ArtifactRef) -> str | None:
        """A blob of another length is told apart by its properties alone; otherwise its
        bytes are hashed (Blob Storage keeps no sha256 of what it stores)."""
        found = properties(self.api, self.location_for(ref.uri))
        if found is None:
            return "missing"
        if found.size != ref.size:
            return f"size {found.size} bytes, recorded {ref.size}"
        verdict: str | None = super().verify(ref)
        return verdict

    def list(self, prefix_uri: str) -> Iterator[str]:
        """Blob URIs whose name starts with ``prefix_uri``'s, in the service's (sorted)
        order; as in Blob Storage, ``.../runs/ab`` lists ``.../runs/abc/out`` too."""
        location = parse_blob_uri(prefix_uri)
        if location != self.root:
            self.location_for(prefix_uri)  # refuses prefixes outside the store
        prefix = location.name
        if prefix and (location == self.root or prefix_uri.endswith("/")):
            prefix += "/"
        marker = ""
        doing = f"listing {prefix_uri}"
        while True:
            params = {"restype": "container", "comp": "list", "prefix": prefix}
            if marker:
                params["marker"] = marker
            url = self.api.container_url(location)
            answer = self.api.request("GET", url, location, doing, params=params)
            if answer.status_code != 200:
                self.api.fail(answer, location, doing)
            names, marker = _listing(answer.content)
            for name in names:
                if not any(part.startswith(RESERVED_PREFIX) for part in name.split("/")):
                    yield BlobLocation(location.account, location.container, name).uri
            if not marker:
                return


def properties(api: BlobApi, location: BlobLocation) -> BlobProperties | None:
    """The blob's ETag and length, or None when nothing is stored there.

    :raises ConfigError: the container or account does not exist.
    """
    doing = f"checking {location.uri}"
    answer = api.request("HEAD", api.blob_url(location), location, doing)
    if answer.status_code == 404 and error_code(answer) == "BlobNotFound":
        return None
    if answer.status_code != 200:
        api.fail(answer, location, doing)
    return BlobProperties(str(answer.headers["ETag"]), int(answer.headers["Content-Length"]))


def _listing(content: bytes) -> tuple[list[str], str]:
    """The blob names of one List Blobs page, and the marker of the next ('' at the end)."""
    from xml.etree import ElementTree

    root = ElementTree.fromstring(content)
    names = [str(item.text) for item in root.iterfind("./Blobs/Blob/Name")]
    return names, root.findtext("NextMarker") or ""


def _write_new(api: BlobApi, location: BlobLocation, data: bytes) -> None:
    """Store ``data`` as a new blob (`find_store_root` writes the root marker so)."""
    writer = BlockWriter(api, location)
    writer.write(data)
    writer.commit()


def _is_blob(api: BlobApi, location: BlobLocation) -> bool:
    return properties(api, location) is not None
