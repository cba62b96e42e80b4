"""The ``s3`` artifact store: write-once objects below an ``s3://BUCKET/PREFIX`` root.

Like the local store it only moves bytes: `stepframe._artifacts.io` hashes everything
written and read, records the sha256 in the `ArtifactRef` and checks it on every load,
on top of any store.  On the wire, botocore adds its own checksums (CRC32 on uploads).

A store's root holds a marker object, ``PREFIX/.stepframe-artifact-store``, written when
the root is first opened.  The client opens the store by its configured root, which is
used as given (even below another store's root); a job opens it by its launch manifest's
URI, an object deep below the root, and the nearest marker above that object says where
the root is.

Works on the client, with the connector's (possibly refreshable) credentials, and inside
job containers with none: boto3's default chain then finds the job's role, and
``AWS_ENDPOINT_URL`` (boto3 reads it itself) points it at another endpoint.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from stepframe import ArtifactStore, ConnectorError
from stepframe.exceptions import ArtifactNotFoundError
from stepframe.object_store import STORE_MARKER, check_in_store, exists_error, find_store_root
from stepframe_aws._errors import error_code
from stepframe_aws._s3.errors import missing_bucket, s3_errors
from stepframe_aws._s3.streams import (
    DEFAULT_PART_SIZE,
    DEFAULT_PARTS_IN_FLIGHT,
    MIN_PART_SIZE,
    MultipartWriter,
    ObjectReader,
)
from stepframe_aws._s3.uri import RESERVED_PREFIX, S3Location, parse_s3_uri

if TYPE_CHECKING:
    from stepframe import Credentials

__all__ = ["STORE_MARKER", "S3ArtifactStore", "s3_client"]

# What S3 answers a HEAD of a key that is not there: 404, or 403 when the caller may
# read objects but not list the bucket (S3 then hides whether the key exists).
_ABSENT = frozenset({"404", "NoSuchKey", "NotFound"})
_HIDDEN = "403"


def s3_client(credentials: Credentials | None) -> Any:
    """A boto3 S3 client: the connector's credentials, or the default chain if None."""
    from botocore.config import Config

    from stepframe_aws._session import client

    config = Config(
        # Standard mode backs off with jitter on throttling (503 SlowDown) and 5xx, a few
        # more tries than the legacy default; keep-alive for long multipart uploads.
        retries={"mode": "standard", "max_attempts": 6},
        tcp_keepalive=True,
        connect_timeout=15,
        read_timeout=120,
    )
    return client("s3", credentials, config=config)


class S3ArtifactStore(ArtifactStore):
    """Write-once objects in S3 below a root ``s3://BUCKET[/PREFIX]``.

    :param root_uri: the store's root.
    :param client: the boto3 S3 client to use (`s3_client`); made from ``credentials``
        when None.
    :param credentials: from the store's connector, or None for boto3's default chain.
    :param part_size: bytes per upload part (and download range); at least 5 MiB (S3's
        minimum).  Objects up to one part go up in a single PUT.
    :param parts_in_flight: parts uploaded, or ranges downloaded, at once: a transfer
        holds about ``(parts_in_flight + 1) x part_size`` of memory.
    """

    def __init__(
        self,
        root_uri: str,
        *,
        client: Any = None,
        credentials: Credentials | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        parts_in_flight: int = DEFAULT_PARTS_IN_FLIGHT,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size {part_size} is below S3's minimum of {MIN_PART_SIZE}")
        self.root = parse_s3_uri(root_uri)
        super().__init__(self.root.uri)
        self.client = client if client is not None else s3_client(credentials)
        self.part_size = part_size
        self.parts_in_flight = parts_in_flight

    @classmethod
    def open(
        cls, uri: str, credentials: Credentials | None, *, part_size: int = DEFAULT_PART_SIZE
    ) -> S3ArtifactStore:
        """The store that ``uri``, a store root or an object in one, belongs to: the
        nearest marked root above an existing object, else ``uri`` as a root, marked
        (`stepframe.object_store.find_store_root`).

        :raises ConfigError: the bucket does not exist.
        """
        location = parse_s3_uri(uri)
        client = s3_client(credentials)
        root = find_store_root(
            location,
            is_object=functools.partial(_has_object, client),
            write_new=functools.partial(_write_new, client),
        )
        return cls(root.uri, client=client, part_size=part_size)

    # ---- addressing -----------------------------------------------------------------

    def location_for(self, uri: str) -> S3Location:
        """The bucket and key of an object URI; refuses URIs outside this store."""
        return check_in_store(self.root, parse_s3_uri(uri), uri)

    # ---- the ArtifactStore interface ------------------------------------------------

    def open_write(self, uri: str) -> AbstractContextManager[BinaryIO]:
        return self._write(self.location_for(uri))

    @contextlib.contextmanager
    def _write(self, location: S3Location) -> Iterator[BinaryIO]:
        # Fail before the caller produces anything; the conditional write at the end
        # settles races between two writers of the same key.
        # A 403 there (no s3:ListBucket, as least-privilege job roles often have) hides
        # whether the key exists; the conditional commit still refuses an overwrite.
        if self._head(location, hidden_is_absent=True) is not None:
            raise exists_error(location.uri)
        writer = MultipartWriter(self.client, location, self.part_size, self.parts_in_flight)
        with writer.committing() as stream:
            yield stream

    def open_read(self, uri: str) -> AbstractContextManager[BinaryIO]:
        from botocore.exceptions import ClientError

        location = self.location_for(uri)
        doing = f"reading {uri}"
        with s3_errors(doing, location.bucket):
            try:
                response = self._first_get(location)
            except ClientError as error:
                code = error_code(error)
                if code == "NoSuchBucket":  # reads promise ArtifactNotFoundError
                    message = str(missing_bucket(location.bucket, doing))
                    raise ArtifactNotFoundError(message) from None
                if code in _ABSENT:
                    raise ArtifactNotFoundError(
                        f"no artifact is stored at {uri}; it was never written or was "
                        "deleted (re-run the step that produces it)"
                    ) from None
                raise
        reader = ObjectReader(
            self.client,
            location,
            response,
            range_size=self.part_size,
            ranges_in_flight=self.parts_in_flight,
        )
        return cast(BinaryIO, reader)

    def _first_get(self, location: S3Location) -> dict[str, Any]:
        """GetObject of the first part's range only: a large object's other ranges come
        in parallel (`ObjectReader`), and nobody makes S3 start sending all of it."""
        from botocore.exceptions import ClientError

        try:
            return cast(
                "dict[str, Any]",
                self.client.get_object(
                    Bucket=location.bucket,
                    Key=location.key,
                    Range=f"bytes=0-{self.part_size - 1}",
                ),
            )
        except ClientError as error:
            if error_code(error) != "InvalidRange":
                raise
        # An empty object has no byte 0.
        return cast(
            "dict[str, Any]", self.client.get_object(Bucket=location.bucket, Key=location.key)
        )

    def exists(self, uri: str) -> bool:
        return self._head(self.location_for(uri)) is not None

    def list(self, prefix_uri: str) -> Iterator[str]:
        """Object URIs whose key starts with ``prefix_uri``'s, in S3's (sorted) order.

        As in S3, the prefix need not end at a "folder": ``.../runs/ab`` lists
        ``.../runs/abc/out`` too.
        """
        location = parse_s3_uri(prefix_uri)
        if location != self.root:
            self.location_for(prefix_uri)  # refuses prefixes outside the store
        prefix = location.key
        if prefix and (location == self.root or prefix_uri.endswith("/")):
            prefix += "/"
        paginator = self.client.get_paginator("list_objects_v2")
        with s3_errors(f"listing {prefix_uri}", location.bucket):
            for page in paginator.paginate(Bucket=location.bucket, Prefix=prefix):
                for item in page.get("Contents", ()):
                    key = str(item["Key"])
                    if not any(part.startswith(RESERVED_PREFIX) for part in key.split("/")):
                        yield S3Location(location.bucket, key).uri

    # ---- helpers --------------------------------------------------------------------

    def _head(
        self, location: S3Location, *, hidden_is_absent: bool = False
    ) -> dict[str, Any] | None:
        """HeadObject's answer, or None when nothing is stored at ``location``.

        :param hidden_is_absent: take a 403 (which S3 gives for missing keys when the
            caller may not list the bucket) as "absent" instead of raising.
        """
        from botocore.exceptions import ClientError

        with s3_errors(f"checking {location.uri}", location.bucket):
            try:
                return cast(
                    "dict[str, Any]",
                    self.client.head_object(Bucket=location.bucket, Key=location.key),
                )
            except ClientError as error:
                code = error_code(error)
                if code in _ABSENT or (code == _HIDDEN and hidden_is_absent):
                    return None
                if code == _HIDDEN:
                    raise ConnectorError(
                        f"checking {location.uri}: S3 answered 403 Forbidden. The "
                        "credentials need s3:GetObject on the store's prefix and "
                        f"s3:ListBucket on bucket {location.bucket!r} (without it, S3 "
                        "answers 403 for missing objects too)"
                    ) from None
                raise


def _has_object(client: Any, location: S3Location) -> bool:
    """Whether an object is at ``location``; a hidden (403) answer counts as no."""
    from botocore.exceptions import ClientError

    with s3_errors(f"checking {location.uri}", location.bucket):
        try:
            client.head_object(Bucket=location.bucket, Key=location.key)
        except ClientError as error:
            if error_code(error) in _ABSENT or error_code(error) == _HIDDEN:
                return False
            raise
    return True


def _write_new(client: Any, location: S3Location, data: bytes) -> None:
    """Store ``data`` as a new object (`find_store_root` writes the root marker so)."""
    writer = MultipartWriter(client, location, DEFAULT_PART_SIZE)
    writer.write(data)
    writer.commit()
