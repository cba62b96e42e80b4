"""The conformance kit's connector suite, run against the ``azure`` flavor's auth methods.

``service-principal`` gets real tokens from the loopback Entra ID (see _token_service.py)
that expire and refresh; ``access-token`` hands out the token it was given and cannot
refresh it.  Every resource kind is asked for: generic (Resource Manager), object_store
(Storage) and container_registry (an ACR login through the token exchange).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

import pytest
from _token_service import AzureService
from stepframe_azure import AzureConnectorConfig

from stepframe import Component, ComponentKind, ResourceRequest
from stepframe.testing import ConnectorSuite

SECRET = "suite-client-secret-0123456789"


class _AzureSuite(ConnectorSuite):
    flavor = "azure"
    plugin_names = ("azure",)
    config: ClassVar[dict[str, Any]] = {}

    @pytest.fixture(autouse=True)
    def _suite_secrets(
        self, azure: AzureService, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[None]:
        self.service = azure
        self.tenant = azure.new_tenant()
        self.app = azure.new_application(self.tenant, secret=SECRET)
        azure.registries.add("suiteregistry")
        self.token = azure.token_for(self.app.object_id, "https://management.azure.com", 3600)
        monkeypatch.setenv("SUITE_SECRET", SECRET)
        monkeypatch.setenv("SUITE_TOKEN", self.token)
        yield

    def make_connector(self, plugins: Any) -> Component:
        config = dict(self.config)
        if config.get("auth_method") == "service-principal":
            config.update(tenant_id=self.tenant, client_id=self.app.client_id)
        return Component(ComponentKind.CONNECTOR, "suite", "azure", AzureConnectorConfig(**config))

    def make_resource(self, kind: str) -> ResourceRequest:
        if kind == "object_store":
            return ResourceRequest(kind, "az://suitestore/artifacts/stepframe")
        if kind == "container_registry":
            return ResourceRequest(kind, "suiteregistry.azurecr.io/steps")
        return ResourceRequest(kind)

    def secret_values(self) -> Iterable[str]:
        return (SECRET, self.token)


class TestServicePrincipalConnector(_AzureSuite):
    supports_refresh = True
    resource_kinds = ("generic", "object_store", "container_registry")
    config: ClassVar[dict[str, Any]] = {
        "auth_method": "service-principal",
        "client_secret": "env:SUITE_SECRET",
    }


class TestAccessTokenConnector(_AzureSuite):
    supports_refresh = False
    # A Resource Manager token serves generic requests and the registry's exchange.
    resource_kinds = ("generic", "container_registry")
    config: ClassVar[dict[str, Any]] = {"auth_method": "access-token", "token": "env:SUITE_TOKEN"}
