"""stepframe-gcp: run steps on Vertex AI, keep artifacts on Cloud Storage, push images to
Artifact Registry.

Installing the distribution is enough: stepframe finds the plugin through its entry point
(``gcp = "stepframe_gcp.plugin"``).  This module holds what users and tests may import;
everything else is private.  Nothing here imports a google module.
"""

from __future__ import annotations

from stepframe_gcp._connector.config import GcpConnectorConfig
from stepframe_gcp._gcs.config import GcsArtifactStoreConfig
from stepframe_gcp._registry.config import ArtifactRegistryConfig
from stepframe_gcp._vertex.config import VertexOperatorConfig, VertexSettings

__version__ = "0.1.0"

__all__ = [
    "ArtifactRegistryConfig",
    "GcpConnectorConfig",
    "GcsArtifactStoreConfig",
    "VertexOperatorConfig",
    "VertexSettings",
    "__version__",
]
