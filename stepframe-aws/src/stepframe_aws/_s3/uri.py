"""``s3://BUCKET/KEY`` URIs: parsing, checking and joining.

Keys are taken literally, the way the AWS CLI reads ``s3://`` URIs: no percent-decoding,
so ``store.uri_for("runs", "my run")`` names the key ``.../runs/my run`` and `list`
gives the same string back.
"""

from __future__ import annotations

import re

import attrs

from stepframe.exceptions import ArtifactError
from stepframe.object_store import RESERVED_PREFIX

__all__ = ["RESERVED_PREFIX", "S3Location", "parse_s3_uri"]

SCHEME = "s3://"

# S3's rules for new buckets (3-63 characters, lower case, digits, dots, hyphens); older
# buckets may break them, so this only catches what can never be a bucket.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-_]{1,253}[a-z0-9]$", re.IGNORECASE)


@attrs.frozen
class S3Location:
    """A bucket and a key (``""`` for the bucket itself).

    :param bucket: the bucket name.
    :param key: the object key or key prefix, without a leading slash.
    """

    bucket: str
    key: str = ""

    @property
    def uri(self) -> str:
        """``s3://bucket/key`` (``s3://bucket`` for an empty key)."""
        return f"{SCHEME}{self.bucket}/{self.key}" if self.key else f"{SCHEME}{self.bucket}"

    def child(self, name: str) -> S3Location:
        """The key ``name`` below this one, as below a folder."""
        return S3Location(self.bucket, f"{self.key}/{name}" if self.key else name)

    def ancestors(self) -> list[S3Location]:
        """This location and every "folder" above it, nearest first, the bucket last."""
        found = [self]
        key = self.key
        while key:
            key = key.rpartition("/")[0]
            found.append(S3Location(self.bucket, key))
        return found


def parse_s3_uri(uri: str) -> S3Location:
    """The bucket and key an ``s3://`` URI names; trailing slashes are dropped.

    :raises ArtifactError: not an ``s3://`` URI, or no usable bucket name in it.
    """
    if not uri.startswith(SCHEME):
        raise ArtifactError(
            f"{uri!r} is not an s3:// URI; the s3 artifact store handles s3://BUCKET/PREFIX"
        )
    bucket, _, key = uri[len(SCHEME) :].partition("/")
    if not _BUCKET.match(bucket):
        raise ArtifactError(
            f"{uri!r} names no valid S3 bucket ({bucket!r}); write s3://BUCKET/PREFIX with "
            "the bucket's name (3-63 letters, digits, dots or hyphens)"
        )
    key = key.strip("/")
    if "//" in key:
        # S3 would store "a//b" as its own key, which no store URI built by uri_for()
        # names: refuse it rather than write an object nobody finds again.
        raise ArtifactError(f"{uri!r} has an empty path segment ('//'); remove it")
    return S3Location(bucket, key)
