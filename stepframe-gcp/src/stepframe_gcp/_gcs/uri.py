"""``gs://BUCKET/NAME`` URIs: parsing, checking and walking up to a store's root."""

from __future__ import annotations

import re

import attrs

from stepframe import ConfigError
from stepframe.object_store import RESERVED_PREFIX

__all__ = ["RESERVED_PREFIX", "GcsLocation", "parse_gs_uri"]


# Cloud Storage's bucket naming rules (without dots' domain verification): 3-63
# characters of lowercase letters, digits, '-', '_' and '.', starting and ending with a
# letter or digit.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")


@attrs.frozen
class GcsLocation:
    """A bucket and an object name (or a prefix, without its trailing slash)."""

    bucket: str
    name: str = ""

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.name}" if self.name else f"gs://{self.bucket}"

    def child(self, part: str) -> GcsLocation:
        return GcsLocation(self.bucket, f"{self.name}/{part}" if self.name else part)

    def ancestors(self) -> list[GcsLocation]:
        """This location and every prefix above it, nearest first, the bucket last."""
        parts = self.name.split("/") if self.name else []
        return [GcsLocation(self.bucket, "/".join(parts[:n])) for n in range(len(parts), -1, -1)]


def parse_gs_uri(uri: str) -> GcsLocation:
    """``gs://BUCKET[/NAME]`` as a location; `ConfigError` naming the rule it breaks."""
    if not uri.startswith("gs://"):
        raise ConfigError(f"{uri!r} is not a Cloud Storage URI; expected gs://BUCKET/PREFIX")
    bucket, _, name = uri[len("gs://") :].partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise ConfigError(
            f"{uri!r}: {bucket!r} is not a Cloud Storage bucket name (3-63 lowercase "
            "letters, digits, '-', '_' and '.', starting and ending with a letter or digit)"
        )
    name = name.strip("/")
    if "//" in name:
        raise ConfigError(f"{uri!r}: empty path segment ('//'); remove the extra slash")
    return GcsLocation(bucket, name)
