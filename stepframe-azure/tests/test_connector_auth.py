"""The ``azure`` connector's auth methods against Entra ID endpoints on 127.0.0.1.

azure-identity and msal run unchanged: they reach ``https://login.microsoftonline.com``
through the test service's proxy, with TLS checked against the test CA (_token_service.py).
Expiry is crossed with a fake clock handed to `authenticate`, never by waiting.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from _token_service import AzureService, new_certificate
from stepframe_azure import AzureConnectorConfig
from stepframe_azure._connector.auth import (
    REFRESH_MARGIN_SECONDS,
    authenticate,
    bearer_token,
    clear_token_cache,
    token_claims,
    token_credential,
)
from stepframe_azure._connector.config import MANAGEMENT_SCOPE, STORAGE_SCOPE

from stepframe import Component, ComponentKind, ConnectorError, Credentials, ResourceRequest

SECRET = "sp-secret-value-0123456789"
STORE = "az://trainstore/artifacts/stepframe"


class FakeClock:
    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def connector(**config: Any) -> Component:
    return Component(ComponentKind.CONNECTOR, "az", "azure", AzureConnectorConfig(**config), None)


def service_principal(
    azure: AzureService, monkeypatch: pytest.MonkeyPatch, secret: str = SECRET
) -> tuple[Component, str]:
    tenant = azure.new_tenant()
    app = azure.new_application(tenant, secret=SECRET)
    monkeypatch.setenv("AZ_SECRET", secret)
    component = connector(
        auth_method="service-principal",
        tenant_id=tenant,
        client_id=app.client_id,
        client_secret="env:AZ_SECRET",
    )
    return component, app.object_id


def tokens_issued(azure: AzureService, object_id: str) -> list[str]:
    return [audience for oid, audience in azure.issued if oid == object_id]


def test_service_principal_tokens_are_cached_per_scope(
    azure: AzureService, monkeypatch: pytest.MonkeyPatch
) -> None:
    component, object_id = service_principal(azure, monkeypatch)
    generic = authenticate(component, ResourceRequest("generic"))
    store = authenticate(component, ResourceRequest("object_store", STORE))
    assert token_claims(generic.values["access_token"])["aud"] == "https://management.azure.com"
    assert token_claims(store.values["access_token"])["aud"] == "https://storage.azure.com"
    assert store.values["scope"] == STORAGE_SCOPE
    # Asked again, for either resource or through bearer_token: no new token request.
    again = authenticate(component, ResourceRequest("generic"))
    assert again.values["access_token"] == generic.values["access_token"]
    assert bearer_token(generic, STORAGE_SCOPE) == store.values["access_token"]
    assert bearer_token(store, MANAGEMENT_SCOPE) == generic.values["access_token"]
    assert tokens_issued(azure, object_id) == [
        "https://management.azure.com",
        "https://storage.azure.com",
    ]
    assert SECRET not in repr(generic) and SECRET not in repr(component)


def test_a_token_is_refreshed_before_it_expires_on_a_fake_clock(
    azure: AzureService, monkeypatch: pytest.MonkeyPatch
) -> None:
    component, object_id = service_principal(azure, monkeypatch)
    clock = FakeClock()
    first = authenticate(component, ResourceRequest("generic"), clock=clock)
    assert first.expires_at is not None and first.refresh is not None
    # The core's refresh path (a refused or nearly expired token): a new token at once.
    refreshed = first.refresh()
    second = refreshed.values["access_token"]
    assert second != first.values["access_token"]
    assert refreshed.expires_at is not None and refreshed.expires_at >= first.expires_at
    assert len(tokens_issued(azure, object_id)) == 2
    # Just outside the margin: the cached token, no request.
    clock.now = refreshed.expires_at - REFRESH_MARGIN_SECONDS - 1
    assert bearer_token(first, MANAGEMENT_SCOPE) == second
    assert len(tokens_issued(azure, object_id)) == 2
    # Inside the margin: a new token from Entra ID (not msal's wall-clock cache), which
    # the service makes last an hour past the fake clock's now; then cached again.
    clock.now = refreshed.expires_at - REFRESH_MARGIN_SECONDS + 1
    monkeypatch.setattr(azure, "expires_in", int(clock.now - FakeClock().now) + 3600)
    third = bearer_token(first, MANAGEMENT_SCOPE)
    assert third not in (first.values["access_token"], second)
    assert bearer_token(refreshed, MANAGEMENT_SCOPE) == third
    assert len(tokens_issued(azure, object_id)) == 3


def test_a_wrong_secret_is_one_line_naming_the_fix_without_the_secret(
    azure: AzureService, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "not-the-apps-secret-987654"
    component, _ = service_principal(azure, monkeypatch, secret=wrong)
    with pytest.raises(ConnectorError) as caught:
        authenticate(component, ResourceRequest("generic"))
    message = str(caught.value)
    config = component.config
    assert "\n" not in message
    assert "AADSTS7000215" in message and "Invalid client secret provided" in message
    # The secret is an env: reference: the new one goes into that variable
    # (`stepframe secret set` takes names only).
    assert (
        f'`export AZ_SECRET="$(az ad app credential reset --id {config.client_id} '
        '--query password -o tsv)"`' in message
    )
    assert "stepframe secret set" not in message
    assert f"service principal {config.client_id}" in message
    assert wrong not in message and SECRET not in message
    # Entra's trace and correlation ids are noise in a one-line error.
    assert "Trace ID" not in message


def test_an_unknown_tenant_names_tenant_id(
    azure: AzureService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZ_SECRET", SECRET)
    component = connector(
        auth_method="service-principal",
        tenant_id="11111111-2222-3333-4444-555555555555",
        client_id="66666666-7777-8888-9999-000000000000",
        client_secret="env:AZ_SECRET",
    )
    with pytest.raises(ConnectorError) as caught:
        authenticate(component, ResourceRequest("generic"))
    message = str(caught.value)
    assert "\n" not in message
    assert "11111111-2222-3333-4444-555555555555" in message
    assert "tenant_id" in message and SECRET not in message


def test_an_unknown_application_names_client_id(
    azure: AzureService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZ_SECRET", SECRET)
    component = connector(
        auth_method="service-principal",
        tenant_id=azure.new_tenant(),
        client_id="66666666-7777-8888-9999-000000000000",
        client_secret="env:AZ_SECRET",
    )
    with pytest.raises(ConnectorError, match=r"AADSTS700016.*check client_id") as caught:
        authenticate(component, ResourceRequest("generic"))
    assert SECRET not in str(caught.value)


def test_certificate_credentials_sign_an_assertion_entra_checks(
    azure: AzureService, monkeypatch: pytest.MonkeyPatch
) -> None:
    certificate, _, pem = new_certificate("trainer")
    tenant = azure.new_tenant()
    app = azure.new_application(tenant, certificate=certificate)
    monkeypatch.setenv("AZ_PEM", pem)
    component = connector(
        auth_method="service-principal-certificate",
        tenant_id=tenant,
        client_id=app.client_id,
        certificate="env:AZ_PEM",
    )
    credentials = authenticate(component, ResourceRequest("generic"))
    assert token_claims(credentials.values["access_token"])["appid"] == app.client_id

    # Another certificate than the one registered: Entra refuses the signature.
    _, _, other_pem = new_certificate("someone-else")
    monkeypatch.setenv("AZ_PEM", other_pem)
    with pytest.raises(ConnectorError, match=r"AADSTS700027.*--cert @cert.pem") as caught:
        authenticate(component, ResourceRequest("generic"))
    assert "PRIVATE KEY" not in str(caught.value)


def test_a_damaged_certificate_is_a_config_error_without_its_content(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stepframe import ConfigError

    monkeypatch.setenv("AZ_PEM", "-----BEGIN PRIVATE KEY-----\nnot-a-key\n")
    component = connector(
        auth_method="service-principal-certificate",
        tenant_id="contoso.onmicrosoft.com",
        client_id="66666666-7777-8888-9999-000000000000",
        certificate="env:AZ_PEM",
    )
    with pytest.raises(ConfigError, match=r"certificate \(env:AZ_PEM\): cannot read") as caught:
        authenticate(component, ResourceRequest("generic"))
    assert "not-a-key" not in str(caught.value)


@pytest.mark.parametrize("user_assigned", [False, True])
def test_managed_identity_through_the_identity_endpoint(
    azure: AzureService, monkeypatch: pytest.MonkeyPatch, user_assigned: bool
) -> None:
    client_id = "abcdef01-2345-6789-abcd-ef0123456789" if user_assigned else ""
    object_id = azure.new_managed_identity(client_id)
    # What App Service and Container Apps put in the environment of a workload.
    monkeypatch.setenv("IDENTITY_ENDPOINT", azure.managed_identity_url)
    monkeypatch.setenv("IDENTITY_HEADER", azure.identity_header)
    config = {"client_id": client_id} if user_assigned else {}
    credentials = authenticate(
        connector(auth_method="managed-identity", **config), ResourceRequest("generic")
    )
    claims = token_claims(credentials.values["access_token"])
    assert claims["oid"] == object_id
    assert tokens_issued(azure, object_id) == ["https://management.azure.com"]


def test_managed_identity_off_azure_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConnectorError) as caught:
        authenticate(connector(auth_method="managed-identity"), ResourceRequest("generic"))
    message = str(caught.value)
    assert "\n" not in message
    assert "system-assigned managed identity" in message


def test_implicit_uses_the_environment_credential(
    azure: AzureService, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = azure.new_tenant()
    app = azure.new_application(tenant, secret=SECRET)
    monkeypatch.setenv("AZURE_TENANT_ID", tenant)
    monkeypatch.setenv("AZURE_CLIENT_ID", app.client_id)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", SECRET)
    credentials = authenticate(connector(), ResourceRequest("object_store", STORE))
    assert token_claims(credentials.values["access_token"])["oid"] == app.object_id


def test_implicit_without_any_identity_says_how_to_get_one() -> None:
    with pytest.raises(ConnectorError) as caught:
        authenticate(connector(), ResourceRequest("generic"))
    message = str(caught.value)
    assert "\n" not in message
    assert "az login" in message


def test_an_access_token_serves_its_scope_until_it_expires(
    azure: AzureService, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = azure.token_for("obj-1", "https://management.azure.com", 3600, upn="ada@contoso.com")
    monkeypatch.setenv("AZ_TOKEN", token)
    component = connector(auth_method="access-token", token="env:AZ_TOKEN")
    clock = FakeClock()
    credentials = authenticate(component, ResourceRequest("generic"), clock=clock)
    assert credentials.values["access_token"] == token
    assert credentials.expires_at == token_claims(token)["exp"]
    # A storage token cannot come from a Resource Manager token.
    with pytest.raises(ConnectorError, match=r"the token is for https://management\.azure\.com"):
        bearer_token(credentials, STORAGE_SCOPE)
    # Past its expiry it is refused, naming the user and how to get a new one.
    clock.now = token_claims(token)["exp"] + 30
    clear_token_cache()
    with pytest.raises(ConnectorError) as caught:
        authenticate(component, ResourceRequest("generic"), clock=clock)
    message = str(caught.value)
    assert "\n" not in message
    assert "user ada@contoso.com" in message
    assert "expired 30 s ago" in message
    assert "az account get-access-token" in message
    assert token not in message


def test_credentials_read_back_by_a_local_job_hold_their_one_token(
    azure: AzureService, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stepframe._artifacts.shared import credentials_for_job, job_store_credentials

    component, _ = service_principal(azure, monkeypatch)
    store = authenticate(component, ResourceRequest("object_store", STORE))
    text = credentials_for_job(store)
    assert SECRET not in text
    piped = job_store_credentials(text)
    assert isinstance(piped, Credentials)
    assert bearer_token(piped, STORAGE_SCOPE) == store.values["access_token"]
    with pytest.raises(ConnectorError, match=r"hold no token for https://management"):
        bearer_token(piped, MANAGEMENT_SCOPE)


def test_token_credential_serves_sdk_clients(
    azure: AzureService, monkeypatch: pytest.MonkeyPatch
) -> None:
    component, _ = service_principal(azure, monkeypatch)
    credentials = authenticate(component, ResourceRequest("generic"))
    access = token_credential(credentials).get_token(STORAGE_SCOPE)
    assert token_claims(access.token)["aud"] == "https://storage.azure.com"
    assert access.expires_on > 0


def test_the_cache_key_changes_with_the_secret(
    azure: AzureService, monkeypatch: pytest.MonkeyPatch
) -> None:
    component, object_id = service_principal(azure, monkeypatch, secret="wrong-one-000000")
    with pytest.raises(ConnectorError):
        authenticate(component, ResourceRequest("generic"))
    # The user stores the right secret: the next call uses it, without a restart.
    monkeypatch.setenv("AZ_SECRET", SECRET)
    credentials = authenticate(component, ResourceRequest("generic"))
    assert json.dumps(token_claims(credentials.values["access_token"]))
    assert tokens_issued(azure, object_id) == ["https://management.azure.com"]


def test_threads_asking_at_once_share_one_token_request(
    azure: AzureService, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    component, object_id = service_principal(azure, monkeypatch)
    start = threading.Barrier(8)
    tokens: list[str] = []

    def ask() -> None:
        start.wait()
        tokens.append(authenticate(component, ResourceRequest("generic")).values["access_token"])

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(tokens)) == 1 and len(tokens) == 8
    assert tokens_issued(azure, object_id) == ["https://management.azure.com"]


def test_without_a_connector_the_default_chain_gives_the_token(
    azure: AzureService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A job on Azure has no connector: its identity comes from its environment.
    tenant = azure.new_tenant()
    app = azure.new_application(tenant, secret=SECRET)
    monkeypatch.setenv("AZURE_TENANT_ID", tenant)
    monkeypatch.setenv("AZURE_CLIENT_ID", app.client_id)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", SECRET)
    token = bearer_token(None, STORAGE_SCOPE)
    assert token_claims(token)["oid"] == app.object_id
    assert token_credential(None).get_token(STORAGE_SCOPE).token == token


def test_an_unreachable_entra_id_is_not_called_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    # No azure fixture: the conftest's dead proxy is the only route out.
    monkeypatch.setenv("AZ_SECRET", SECRET)
    component = connector(
        auth_method="service-principal",
        tenant_id="contoso.onmicrosoft.com",
        client_id="66666666-7777-8888-9999-000000000000",
        client_secret="env:AZ_SECRET",
    )
    with pytest.raises(ConnectorError) as caught:
        authenticate(component, ResourceRequest("generic"))
    message = str(caught.value)
    assert "\n" not in message
    assert "cannot reach Entra ID at login.microsoftonline.com" in message
    assert "Entra ID refused" not in message and SECRET not in message


def test_a_certificate_with_a_password(
    azure: AzureService, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.hazmat.primitives import serialization

    certificate, key, _ = new_certificate("trainer")
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pem-password-42"),
    ) + certificate.public_bytes(serialization.Encoding.PEM)
    tenant = azure.new_tenant()
    app = azure.new_application(tenant, certificate=certificate)
    monkeypatch.setenv("AZ_PEM", encrypted.decode())
    monkeypatch.setenv("AZ_PEM_PASSWORD", "pem-password-42")
    config = {
        "auth_method": "service-principal-certificate",
        "tenant_id": tenant,
        "client_id": app.client_id,
        "certificate": "env:AZ_PEM",
    }
    credentials = authenticate(
        connector(**config, certificate_password="env:AZ_PEM_PASSWORD"),
        ResourceRequest("generic"),
    )
    assert token_claims(credentials.values["access_token"])["oid"] == app.object_id
    # Without its password the key cannot be read: a config error naming the setting.
    from stepframe import ConfigError

    with pytest.raises(ConfigError, match="certificate_password if it has one") as caught:
        authenticate(connector(**config), ResourceRequest("generic"))
    assert "pem-password-42" not in str(caught.value)


MI = "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/trainer"  # noqa: E501


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        (
            {"oid": "o1", "upn": "ada@contoso.com", "idtyp": "user"},
            "user ada@contoso.com (object id o1)",
        ),
        ({"oid": "o2", "appid": "a2"}, "service principal a2 (object id o2)"),
        (
            {"oid": "o3", "appid": "a3", "xms_mirid": MI},
            f"managed identity trainer (object id o3, {MI})",
        ),
        ({}, "the token's owner (object id unknown)"),
    ],
)  # fmt: skip
def test_the_principal_is_read_from_the_tokens_claims(
    claims: dict[str, str], expected: str
) -> None:
    import jwt
    from stepframe_azure._connector.auth import principal_of

    token = jwt.encode(claims, "a-key-only-this-test-knows-0123456789", algorithm="HS256")
    assert principal_of(token) == expected
    assert principal_of("not-a-jwt") == "the token's owner (object id unknown)"
