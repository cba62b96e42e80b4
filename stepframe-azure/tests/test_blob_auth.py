"""How the ``azure-blob`` store signs its requests, each way against Azurite: the azure
connector's Microsoft Entra token (Azurite over https with ``--oauth basic``, which checks
a token's issuer, audience and lifetime), the account key of a connection string (Shared
Key; every other Blob test uses it), and the refusals, one line each."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from _azurite import ACCOUNT, Azurite
from stepframe_azure._blob.store import AzureBlobArtifactStore
from stepframe_azure._connector.auth import authenticate
from stepframe_azure._connector.config import STORAGE_SCOPE, AzureConnectorConfig

from stepframe import (
    Component,
    ComponentKind,
    ConfigError,
    ConnectorError,
    Credentials,
    ResourceRequest,
)


def _storage_token(audience: str = "https://storage.azure.com", lifetime: int = 3600) -> str:
    """A token shaped as Entra issues them for Storage (Azurite checks no signature)."""
    import jwt

    now = int(time.time())
    claims = {
        "aud": audience,
        "iss": f"https://sts.windows.net/{uuid.uuid4()}/",
        "oid": str(uuid.uuid4()),
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
    }
    return jwt.encode(claims, "not checked by azurite's basic oauth", algorithm="HS256")


@pytest.fixture
def oauth_azurite(azurite_oauth_server: Azurite, monkeypatch: pytest.MonkeyPatch) -> Azurite:
    """The https Azurite, named by a connection string without a key: only the endpoint."""
    assert azurite_oauth_server.certificate is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", azurite_oauth_server.certificate)
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING", f"BlobEndpoint={azurite_oauth_server.endpoint};"
    )
    return azurite_oauth_server


def _connector(monkeypatch: pytest.MonkeyPatch, token: str) -> Component:
    monkeypatch.setenv("AZ_STORAGE_TOKEN", token)
    config: Any = AzureConnectorConfig(auth_method="access-token", token="env:AZ_STORAGE_TOKEN")  # type: ignore[arg-type]
    return Component(ComponentKind.CONNECTOR, "az", "azure", config, None)


def test_the_connectors_entra_token_signs_every_request(
    oauth_azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = oauth_azurite.create_container()
    root = f"az://{ACCOUNT}/{container}/team"
    credentials = authenticate(
        _connector(monkeypatch, _storage_token()), ResourceRequest("object_store", root)
    )
    store = AzureBlobArtifactStore.open(root, credentials, block_size=1 << 20)
    uri = store.uri_for("model.bin")
    data = bytes(range(256)) * 9000  # more than one block: Put Block and Put Block List
    with store.open_write(uri) as stream:
        stream.write(data)
    with store.open_read(uri) as stream:
        assert stream.read() == data
    assert list(store.list(store.root_uri)) == [uri]
    assert oauth_azurite.get(container, "team/model.bin") == data


def test_a_token_for_another_audience_is_refused_in_one_line(
    oauth_azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = oauth_azurite.create_container()
    root = f"az://{ACCOUNT}/{container}/team"
    # Credentials as a local job reads them back: one token for Storage's scope, whose
    # audience (another service's) Storage does not take.
    wrong = _storage_token(audience="https://otheraccount.queue.core.windows.net")
    forged = Credentials(
        connector="az",
        resource=ResourceRequest("object_store", root),
        values={"access_token": wrong, "scope": STORAGE_SCOPE},
        expires_at=time.time() + 3600,
    )
    with pytest.raises(ConnectorError) as caught:
        AzureBlobArtifactStore.open(root, forged)
    message = str(caught.value)
    assert "\n" not in message
    assert "did not accept connector 'az'" in message
    assert "AuthenticationFailed" in message, message
    assert "stepframe connector verify az" in message
    assert wrong not in message


def test_a_wrong_account_key_is_refused_in_one_line(
    azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = azurite.create_container()
    forged_key = "A" * 86 + "=="
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING",
        f"AccountName={ACCOUNT};AccountKey={forged_key};BlobEndpoint={azurite.endpoint}",
    )
    with pytest.raises(ConnectorError) as caught:
        AzureBlobArtifactStore.open(f"az://{ACCOUNT}/{container}/team", None)
    message = str(caught.value)
    assert "\n" not in message
    assert "did not accept the account key" in message
    assert "Access keys" in message
    assert forged_key not in message


def test_a_token_never_goes_over_plain_http_to_another_machine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from stepframe_azure._blob.access import account_access

    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING",
        "AccountName=team;BlobEndpoint=http://storage.example.com/team",
    )
    with pytest.raises(ConfigError, match="plain http: a Microsoft Entra token would travel"):
        account_access("team", None)


def test_development_storage_names_azurites_default_endpoint_and_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stepframe_azure._blob.access import account_access

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true")
    access = account_access(ACCOUNT, None)
    assert access.endpoint == "http://127.0.0.1:10000/devstoreaccount1"
    assert access.method == "the account key"
    # Another account is not the connection string's: the public endpoint, a token.
    other = account_access("team", None)
    assert other.endpoint == "https://team.blob.core.windows.net"


def test_a_shared_access_signature_signs_every_request(
    azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection string with a SAS and no key (what a user given a SAS has)."""
    import datetime

    from _azurite import KEY, SDK_API_VERSION
    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    container = azurite.create_container()
    sas = generate_account_sas(
        ACCOUNT,
        KEY,
        ResourceTypes(container=True, object=True),
        AccountSasPermissions(read=True, write=True, list=True, create=True),
        expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1),
        version=SDK_API_VERSION,
    )
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING",
        f"BlobEndpoint={azurite.endpoint};SharedAccessSignature={sas}",
    )
    store = AzureBlobArtifactStore.open(
        f"az://{ACCOUNT}/{container}/team", None, block_size=1 << 20
    )
    assert store.api.access.method == "the shared access signature"
    uri = store.uri_for("model.bin")
    data = bytes(range(256)) * 9000
    with store.open_write(uri) as stream:
        stream.write(data)
    with store.open_read(uri) as stream:
        assert stream.read() == data
    assert azurite.get(container, "team/model.bin") == data


def test_a_mistyped_account_names_the_connection_strings_account(
    azurite: Azurite,
) -> None:
    """The path's account has no connection string (Azurite's is for devstoreaccount1), so
    the store asks the default Azure credential, which has nothing here: the one line says
    which account the variable is for."""
    with pytest.raises(ConnectorError) as caught:
        AzureBlobArtifactStore.open("az://devstoreacount1/artifacts/team", None)
    message = str(caught.value)
    assert "\n" not in message
    assert "AZURE_STORAGE_CONNECTION_STRING is for account 'devstoreaccount1'" in message
    assert "not 'devstoreacount1'" in message
