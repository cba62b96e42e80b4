"""The ``acr`` registry: its uri rules, and docker's login through the ``azure`` connector.

The login is what ``az acr login`` does: the connector's Entra ID token is exchanged at
``https://NAME.azurecr.io/oauth2/exchange`` for an ACR refresh token.  The registry here
is the loopback service's (_token_service.py), reached by its real name through the
service's proxy, so the exchange is a real HTTPS request.
"""

from __future__ import annotations

from typing import Any

import pytest
from _token_service import AzureService
from stepframe_azure import AcrConfig, AzureConnectorConfig
from stepframe_azure._acr.login import ACR_USERNAME
from stepframe_azure._connector.auth import authenticate, token_claims

from stepframe import (
    Component,
    ComponentKind,
    ConfigError,
    ConnectorError,
    ImageRequest,
    ResourceRequest,
)

SECRET = "acr-test-secret-0123456789"


@pytest.mark.parametrize(
    "uri", ["trainregistry.azurecr.io", "trainregistry.azurecr.io/team/steps", "abcde.azurecr.cn"]
)
def test_login_servers_are_accepted(uri: str) -> None:
    assert AcrConfig(uri=uri).address.host == uri.split("/")[0]


@pytest.mark.parametrize(
    "uri",
    [
        "TrainRegistry.azurecr.io",  # login servers are lowercase
        "abcd.azurecr.io",  # names have 5-50 characters
        "train-registry.azurecr.io",  # letters and digits only
        "trainregistry.docker.io",
        "ghcr.io/org/steps",
        "trainregistry.azurecr.io/Steps",
    ],
)
def test_other_hosts_and_shapes_are_refused_naming_the_form(uri: str) -> None:
    with pytest.raises(ValueError, match=r"expected its login server\s+NAME\.azurecr\.io"):
        AcrConfig(uri=uri)


@pytest.fixture
def principal(azure: AzureService, monkeypatch: pytest.MonkeyPatch) -> Any:
    tenant = azure.new_tenant()
    app = azure.new_application(tenant, secret=SECRET)
    monkeypatch.setenv("AZ_SECRET", SECRET)
    config = AzureConnectorConfig(
        auth_method="service-principal",
        tenant_id=tenant,
        client_id=app.client_id,
        client_secret="env:AZ_SECRET",  # type: ignore[arg-type]
    )
    app.connector = Component(ComponentKind.CONNECTOR, "az", "azure", config, None)  # type: ignore[attr-defined]
    return app


def test_the_login_is_an_exchanged_refresh_token(azure: AzureService, principal: Any) -> None:
    azure.registries.add("trainregistry")
    resource = ResourceRequest("container_registry", "trainregistry.azurecr.io/steps")
    credentials = authenticate(principal.connector, resource)
    values = credentials.values
    assert values["username"] == ACR_USERNAME
    assert values["registry"] == "https://trainregistry.azurecr.io"
    claims = token_claims(values["password"])
    # The registry's own token, for the connector's principal, not the Entra token.
    assert claims["aud"] == "trainregistry.azurecr.io"
    assert claims["oid"] == principal.object_id
    assert credentials.expires_at == claims["exp"]
    assert "POST trainregistry.azurecr.io/oauth2/exchange" in azure.requests
    # The core's refresh gives a new login.
    assert credentials.refresh is not None
    assert credentials.refresh().values["username"] == ACR_USERNAME
    assert SECRET not in repr(credentials)


def test_docker_takes_the_login_as_its_auth_config(azure: AzureService, principal: Any) -> None:
    from stepframe_docker._registry import auth_config

    azure.registries.add("trainregistry")
    resource = ResourceRequest("container_registry", "trainregistry.azurecr.io")
    credentials = authenticate(principal.connector, resource)
    auth = auth_config(ImageRequest(code_root=".", registry_credentials=credentials))
    assert auth == {
        "username": ACR_USERNAME,
        "password": credentials.values["password"],
        "serveraddress": "https://trainregistry.azurecr.io",
    }


def test_a_registry_that_is_not_acr_is_refused_naming_the_host(principal: Any) -> None:
    resource = ResourceRequest("container_registry", "127.0.0.1:5000/steps")
    with pytest.raises(ConfigError) as caught:
        authenticate(principal.connector, resource)
    message = str(caught.value)
    assert "'127.0.0.1:5000'" in message and "NAME.azurecr.io" in message
    assert "\n" not in message


def test_a_refused_exchange_names_the_principal_and_acrpush(
    azure: AzureService, monkeypatch: pytest.MonkeyPatch
) -> None:
    import jwt

    azure.registries.add("trainregistry")
    # A token the registry did not get from its tenant's Entra ID (signed elsewhere).
    forged = jwt.encode(
        {"aud": "https://management.azure.com", "oid": "o-1", "appid": "app-1"},
        "a-key-that-is-not-the-services-0123456789",
        algorithm="HS256",
    )
    monkeypatch.setenv("AZ_TOKEN", forged)
    config = AzureConnectorConfig(auth_method="access-token", token="env:AZ_TOKEN")  # type: ignore[arg-type]
    connector = Component(ComponentKind.CONNECTOR, "az", "azure", config, None)
    with pytest.raises(ConnectorError) as caught:
        authenticate(connector, ResourceRequest("container_registry", "trainregistry.azurecr.io"))
    message = str(caught.value)
    assert "\n" not in message
    assert "service principal app-1" in message
    assert "refused its Entra ID token (401" in message
    assert "--assignee o-1 --role AcrPush" in message  # the principal's object id
    assert "az acr show --name trainregistry" in message
    assert forged not in message


def test_a_registry_that_does_not_answer_is_one_line(principal: Any) -> None:
    # The proxy tunnels *.azurecr.io to the service, which knows no such registry.
    resource = ResourceRequest("container_registry", "noregistry.azurecr.io")
    with pytest.raises(ConnectorError, match=r"registry noregistry\.azurecr\.io has no token"):
        authenticate(principal.connector, resource)
