"""Configuration of the ``gcs`` artifact store (attrs only: no google module at plugin load)."""

from __future__ import annotations

import attrs

__all__ = ["GcsArtifactStoreConfig"]


@attrs.frozen
class GcsArtifactStoreConfig:
    """Where a ``gcs`` artifact store keeps artifacts.

    :param path: the store's root, ``gs://BUCKET[/PREFIX]``.
    """

    path: str
