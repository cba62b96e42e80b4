"""Configuration of the ``s3`` artifact store (attrs only: no boto3 at plugin load)."""

from __future__ import annotations

import attrs

__all__ = ["S3ArtifactStoreConfig"]


@attrs.frozen
class S3ArtifactStoreConfig:
    """Where an ``s3`` artifact store keeps artifacts.

    :param path: the store's root, ``s3://BUCKET[/PREFIX]``.
    """

    path: str
