"""The conformance kit's connector suite, run against the ``gcp`` flavor's auth methods.

``service-account`` signs its grant locally with a key the loopback token service issued
(see _token_service.py), so its tokens expire and refresh for real; ``oauth2-token``
hands out the token it was given and cannot refresh it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

import pytest
from _token_service import TokenService
from stepframe_gcp import GcpConnectorConfig

from stepframe import Component, ComponentKind, ResourceRequest
from stepframe.testing import ConnectorSuite

ALL_KINDS = ("generic", "object_store", "container_registry")
BARE_TOKEN = "ya29.suite-bare-token-0001"


class _GcpSuite(ConnectorSuite):
    flavor = "gcp"
    plugin_names = ("gcp",)
    resource_kinds = ALL_KINDS
    config: ClassVar[dict[str, Any]] = {}

    @pytest.fixture(autouse=True)
    def _suite_secrets(
        self, token_service: TokenService, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[None]:
        self.key = token_service.new_key()
        self.service = token_service
        monkeypatch.setenv("SUITE_SA_KEY", self.key)
        monkeypatch.setenv("SUITE_TOKEN", BARE_TOKEN)
        yield

    def make_connector(self, plugins: Any) -> Component:
        config = GcpConnectorConfig(project="test-project", region="europe-west4", **self.config)
        return Component(ComponentKind.CONNECTOR, "suite", "gcp", config)

    def make_resource(self, kind: str) -> ResourceRequest:
        if kind == "object_store":
            return ResourceRequest(kind, "gs://suite-bucket/stepframe")
        if kind == "container_registry":
            return ResourceRequest(kind, "europe-west4-docker.pkg.dev/test-project/steps")
        return ResourceRequest(kind)

    def secret_values(self) -> Iterable[str]:
        import json

        return (json.loads(self.key)["private_key"], BARE_TOKEN, *self.service.issued)


class TestServiceAccountConnector(_GcpSuite):
    supports_refresh = True
    config: ClassVar[dict[str, Any]] = {
        "auth_method": "service-account",
        "service_account_key": "env:SUITE_SA_KEY",
    }


class TestOauth2TokenConnector(_GcpSuite):
    supports_refresh = False
    config: ClassVar[dict[str, Any]] = {"auth_method": "oauth2-token", "token": "env:SUITE_TOKEN"}
