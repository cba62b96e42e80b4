"""stepframe-azure: run steps as Azure Machine Learning command jobs, keep artifacts on
Blob Storage, push images to Azure Container Registry.

Installing the distribution is enough: stepframe finds the plugin through its entry point
(``azure = "stepframe_azure.plugin"``).  This module holds what users and tests may import;
everything else is private.  Nothing here imports an azure module.
"""

from __future__ import annotations

from stepframe_azure._acr.config import AcrConfig
from stepframe_azure._azureml.config import AzureMLOperatorConfig, AzureMLSettings
from stepframe_azure._blob.config import AzureBlobStoreConfig
from stepframe_azure._connector.config import AzureConnectorConfig

__version__ = "0.1.0"

__all__ = [
    "AcrConfig",
    "AzureBlobStoreConfig",
    "AzureConnectorConfig",
    "AzureMLOperatorConfig",
    "AzureMLSettings",
    "__version__",
]
