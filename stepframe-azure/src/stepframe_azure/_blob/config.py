"""Configuration of the ``azure-blob`` artifact store (attrs only).

Placeholder written with the package skeleton: the store's author replaces the body.
"""

from __future__ import annotations

import attrs

__all__ = ["FLAVOR", "URI_SCHEMES", "AzureBlobStoreConfig"]

FLAVOR = "azure-blob"
URI_SCHEMES = ("az",)


@attrs.frozen
class AzureBlobStoreConfig:
    """A Blob Storage container (and prefix) that holds a stack's artifacts.

    :param uri: ``az://ACCOUNT/CONTAINER/PREFIX``.
    """

    uri: str
