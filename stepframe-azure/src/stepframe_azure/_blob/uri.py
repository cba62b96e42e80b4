"""``az://ACCOUNT/CONTAINER/NAME`` URIs: parsing, checking and walking up to a store's root.

The portal's form of the same place, ``https://ACCOUNT.blob.core.windows.net/CONTAINER/NAME``,
is accepted wherever a URI is read and turned into the ``az://`` form: the core finds a
URI's store by its scheme, and ``https`` is everybody's, so only ``az`` is declared and
every URI the store hands out is an ``az://`` one.  Blob names are taken literally (no
percent-decoding), as the S3 and Cloud Storage stores take theirs.
"""

from __future__ import annotations

import re

import attrs

from stepframe import ConfigError
from stepframe.object_store import RESERVED_PREFIX

__all__ = ["PUBLIC_BLOB_HOST", "RESERVED_PREFIX", "SCHEME", "BlobLocation", "parse_blob_uri"]

SCHEME = "az://"
#: The public cloud's blob host suffix: ``ACCOUNT.blob.core.windows.net``.
PUBLIC_BLOB_HOST = ".blob.core.windows.net"

# Azure's naming rules.  Storage accounts: 3-24 lowercase letters and digits.  Containers:
# 3-63 lowercase letters, digits and hyphens, starting and ending with a letter or digit,
# no two hyphens in a row.  Blob names: at most 1024 characters.
_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_CONTAINER = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_MAX_NAME = 1024


@attrs.frozen
class BlobLocation:
    """A storage account, a container and a blob name (or a prefix, ``""`` for the
    container itself), without leading or trailing slashes."""

    account: str
    container: str
    name: str = ""

    @property
    def uri(self) -> str:
        base = f"{SCHEME}{self.account}/{self.container}"
        return f"{base}/{self.name}" if self.name else base

    def child(self, part: str) -> BlobLocation:
        return attrs.evolve(self, name=f"{self.name}/{part}" if self.name else part)

    def ancestors(self) -> list[BlobLocation]:
        """This location and every "folder" above it, nearest first, the container last."""
        parts = self.name.split("/") if self.name else []
        return [attrs.evolve(self, name="/".join(parts[:n])) for n in range(len(parts), -1, -1)]


def parse_blob_uri(uri: str) -> BlobLocation:
    """The place ``az://ACCOUNT/CONTAINER[/NAME]`` (or its ``https://`` form) names.

    :raises ConfigError: one line naming the rule the URI breaks and the form expected.
    """
    rest = _after_scheme(uri)
    account, _, path = rest.partition("/")
    container, _, name = path.partition("/")
    if not _ACCOUNT.match(account):
        raise ConfigError(
            f"{uri!r}: {account!r} is not a storage account name (3-24 lowercase letters "
            "and digits); write az://ACCOUNT/CONTAINER/PREFIX"
        )
    if not container:
        raise ConfigError(
            f"{uri!r} names no container; write az://{account}/CONTAINER/PREFIX with the "
            "blob container the artifacts go in"
        )
    if not _CONTAINER.match(container):
        raise ConfigError(
            f"{uri!r}: {container!r} is not a blob container name (3-63 lowercase letters, "
            "digits and single hyphens, starting and ending with a letter or digit)"
        )
    name = name.strip("/")
    if "//" in name:
        # Blob Storage would keep "a//b" as its own name, which no URI built by uri_for()
        # names: refuse it rather than write a blob nobody finds again.
        raise ConfigError(f"{uri!r} has an empty path segment ('//'); remove the extra slash")
    if len(name) > _MAX_NAME:
        raise ConfigError(f"{uri!r}: blob names are at most {_MAX_NAME} characters")
    return BlobLocation(account, container, name)


def _after_scheme(uri: str) -> str:
    """What follows the scheme, with the ``https`` form's host turned into its account."""
    if uri.startswith(SCHEME):
        return uri[len(SCHEME) :]
    if uri.startswith("https://"):
        host, slash, path = uri[len("https://") :].partition("/")
        if host.endswith(PUBLIC_BLOB_HOST):
            return host[: -len(PUBLIC_BLOB_HOST)] + slash + path
    raise ConfigError(
        f"{uri!r} is not a Blob Storage URI; write az://ACCOUNT/CONTAINER/PREFIX (or "
        "https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX)"
    )
