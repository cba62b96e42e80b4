"""Fixtures for stepframe-azure tests: Azure is services on 127.0.0.1, never the real one.

Every test gets a dead proxy, so a call that escapes to an Azure host (login.microsoftonline.com,
management.azure.com, IMDS) fails at once instead of reaching Azure, and no ambient Azure
identity: the ``AZURE_*`` and managed-identity variables are removed and the Azure CLI's
configuration folder is an empty one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The tests import their shared helpers (next to this file) by name; under
# --import-mode=importlib pytest does not put this folder on sys.path itself.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

pytest_plugins = [
    "stepframe.testing",
    "_token_service",  # the loopback Azure endpoints: fixtures azure_service, azure
    "_azurite",  # Azurite for the Blob store: fixtures azurite_server, azurite
    "_azureml_service",  # the AzureML job service: fixture azureml_service
]

# What azure-identity's managed identity and environment credentials read besides AZURE_*.
_AMBIENT_IDENTITY_VARIABLES = (
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
)


@pytest.fixture(autouse=True)
def offline_azure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No route to Azure and no ambient Azure identity for any test."""
    from stepframe_azure._connector.auth import clear_token_cache

    # IMDS (169.254.169.254) is plain http: both proxies are dead, loopback is exempt.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for name in list(os.environ):
        if name.startswith("AZURE_") or name in _AMBIENT_IDENTITY_VARIABLES:
            monkeypatch.delenv(name)
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path / "azure-cli"))
    clear_token_cache()
    yield
    clear_token_cache()
