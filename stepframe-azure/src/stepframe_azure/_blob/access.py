"""Where a storage account's Blob service answers, and how requests to it are signed.

- The **endpoint** is ``https://ACCOUNT.blob.core.windows.net`` unless a storage
  connection string for the account says otherwise (its ``BlobEndpoint``, or its
  ``DefaultEndpointsProtocol`` and ``EndpointSuffix``): Azure's own way to name Azurite
  (``UseDevelopmentStorage=true``), a sovereign cloud or a private endpoint.  The string
  comes from ``AZURE_STORAGE_CONNECTION_STRING``, the variable the Azure CLI reads, so a
  job given the same variable finds the same endpoint.
- **Signing**: with the connector's credentials, a Microsoft Entra token for Storage
  (`stepframe_azure._connector.auth.bearer_token`, cached and refreshed there); without
  them, the connection string's account key (Shared Key) or SAS; failing both, the token
  of azure-identity's default chain (a job's managed identity).

A bearer token never goes over plain http except to a loopback address (an emulator on
this machine): anywhere else it would travel readable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Callable
from email.utils import formatdate
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

import attrs
import requests

from stepframe import ConfigError

if TYPE_CHECKING:
    from stepframe import Credentials

__all__ = [
    "API_VERSION",
    "CONNECTION_STRING_VARIABLE",
    "DEVELOPMENT_ACCOUNT",
    "AccountAccess",
    "ConnectionString",
    "account_access",
]

#: The Blob service REST version every request names.
API_VERSION = "2023-11-03"
CONNECTION_STRING_VARIABLE = "AZURE_STORAGE_CONNECTION_STRING"
#: Azurite's built-in account, and its published key (the same on every machine).
DEVELOPMENT_ACCOUNT = "devstoreaccount1"
_DEVELOPMENT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_DEVELOPMENT_ENDPOINT = "http://127.0.0.1:10000/devstoreaccount1"
_LOOPBACK = ("127.", "localhost", "[::1]")


@attrs.frozen
class ConnectionString:
    """The parts of a storage connection string the store uses (secrets out of repr)."""

    account: str | None
    blob_endpoint: str | None
    account_key: str | None = attrs.field(default=None, repr=False)
    sas: str | None = attrs.field(default=None, repr=False)

    @classmethod
    def parse(cls, text: str, where: str) -> ConnectionString:
        fields: dict[str, str] = {}
        for part in text.split(";"):
            key, equals, value = part.strip().partition("=")
            if key and equals:
                fields[key.strip().lower()] = value.strip()
        if fields.get("usedevelopmentstorage", "").lower() == "true":
            return cls(DEVELOPMENT_ACCOUNT, _DEVELOPMENT_ENDPOINT, _DEVELOPMENT_KEY)
        account = fields.get("accountname")
        endpoint = fields.get("blobendpoint")
        if endpoint is None and account:
            protocol = fields.get("defaultendpointsprotocol", "https")
            suffix = fields.get("endpointsuffix", "core.windows.net")
            endpoint = f"{protocol}://{account}.blob.{suffix}"
        if endpoint is None:
            raise ConfigError(
                f"{where} names neither AccountName nor BlobEndpoint; copy the storage "
                "account's connection string from the portal (Access keys) or `az storage "
                "account show-connection-string -n ACCOUNT`"
            )
        return cls(
            account,
            endpoint.rstrip("/"),
            fields.get("accountkey"),
            fields.get("sharedaccesssignature", "").lstrip("?") or None,
        )

    def serves(self, account: str) -> bool:
        if self.account is not None:
            return self.account == account
        # A SAS-only string names its account by its endpoint alone.
        split = urlsplit(self.blob_endpoint or "")
        first_label = (split.hostname or "").split(".", 1)[0]
        return first_label == account or split.path.strip("/").split("/", 1)[0] == account


@attrs.frozen
class AccountAccess:
    """One account's Blob endpoint and the signer of each request to it."""

    account: str
    endpoint: str
    auth: requests.auth.AuthBase = attrs.field(repr=False)
    #: how the requests are signed, for messages: "the account key", ...
    method: str
    #: what to do when the service does not accept them.
    renew: str


def account_access(account: str, credentials: Credentials | None) -> AccountAccess:
    """How to reach ``account``; see the module docstring for the order of the sources.

    :raises ConfigError: the connection string is malformed, or a token would go over
        plain http to another machine.
    """
    connection = _connection_string(account)
    endpoint = (
        connection.blob_endpoint if connection else f"https://{account}.blob.core.windows.net"
    )
    assert endpoint is not None
    if credentials is None and connection is not None and connection.account_key:
        key = _decoded_key(connection.account_key)
        return AccountAccess(
            account,
            endpoint,
            _SharedKey(account, key),
            "the account key",
            f"copy the key again from the account's Access keys into {CONNECTION_STRING_VARIABLE}",
        )
    if credentials is None and connection is not None and connection.sas:
        return AccountAccess(
            account,
            endpoint,
            _Sas(connection.sas),
            "the shared access signature",
            f"make a new SAS for the account and put it in {CONNECTION_STRING_VARIABLE}",
        )
    split = urlsplit(endpoint)
    if split.scheme != "https" and not (split.hostname or "").startswith(_LOOPBACK):
        raise ConfigError(
            f"the Blob endpoint {endpoint} for account {account!r} is plain http: a "
            "Microsoft Entra token would travel readable; use its https:// endpoint in "
            f"{CONNECTION_STRING_VARIABLE}"
        )

    other = _other_account(account)

    def token() -> str:
        from stepframe import ConnectorError
        from stepframe_azure._connector.auth import bearer_token
        from stepframe_azure._connector.config import STORAGE_SCOPE

        try:
            return bearer_token(credentials, STORAGE_SCOPE)
        except ConnectorError as error:
            if other is None:
                raise
            # Most likely a mistyped account: say which one the variable names.
            first = str(error).splitlines()[0]
            raise ConnectorError(
                f"{first}; note that {CONNECTION_STRING_VARIABLE} is for account "
                f"{other!r}, not {account!r}: check the account in the store's path"
            ) from None

    if credentials is None:
        who = "the default Azure credential's token"
        renew = "sign in again (`az login`) or give the job an identity"
    else:
        who = f"connector {credentials.connector!r}'s Microsoft Entra token"
        renew = f"check the connector (`stepframe connector verify {credentials.connector}`)"
    return AccountAccess(account, endpoint, _Bearer(token), who, renew)


def _connection_string(account: str) -> ConnectionString | None:
    text = os.environ.get(CONNECTION_STRING_VARIABLE, "").strip()
    if not text:
        return None
    connection = ConnectionString.parse(text, CONNECTION_STRING_VARIABLE)
    return connection if connection.serves(account) else None


def _other_account(account: str) -> str | None:
    """The account ``AZURE_STORAGE_CONNECTION_STRING`` names when it is not ``account``."""
    text = os.environ.get(CONNECTION_STRING_VARIABLE, "").strip()
    if not text:
        return None
    connection = ConnectionString.parse(text, CONNECTION_STRING_VARIABLE)
    if connection.serves(account):
        return None
    return connection.account or connection.blob_endpoint


def _decoded_key(key: str) -> bytes:
    try:
        return base64.b64decode(key, validate=True)
    except ValueError:
        raise ConfigError(
            f"the AccountKey in {CONNECTION_STRING_VARIABLE} is not base64; copy the key "
            "again from the storage account's Access keys"
        ) from None


# ---- signers ------------------------------------------------------------------------------


def _stamp(request: requests.PreparedRequest) -> None:
    request.headers["x-ms-date"] = formatdate(usegmt=True)
    request.headers["x-ms-version"] = API_VERSION


class _Bearer(requests.auth.AuthBase):
    def __init__(self, token: Callable[[], str]) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        _stamp(request)
        request.headers["Authorization"] = f"Bearer {self._token()}"
        return request


class _Sas(requests.auth.AuthBase):
    def __init__(self, sas: str) -> None:
        self._sas = sas

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        _stamp(request)
        url = str(request.url)
        request.url = url + ("&" if "?" in url else "?") + self._sas
        return request


# The standard headers Shared Key signs, in order (the Blob service's 2015-02-21+ rules).
_SIGNED_HEADERS = (
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-MD5",
    "Content-Type",
    "Date",
    "If-Modified-Since",
    "If-Match",
    "If-None-Match",
    "If-Unmodified-Since",
    "Range",
)


class _SharedKey(requests.auth.AuthBase):
    """Shared Key authorization: an HMAC-SHA256 of the request's canonical form."""

    def __init__(self, account: str, key: bytes) -> None:
        self._account = account
        self._key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        _stamp(request)
        signature = hmac.new(self._key, self.string_to_sign(request).encode(), hashlib.sha256)
        digest = base64.b64encode(signature.digest()).decode()
        request.headers["Authorization"] = f"SharedKey {self._account}:{digest}"
        return request

    def string_to_sign(self, request: requests.PreparedRequest) -> str:
        headers = request.headers
        standard = [str(headers.get(name, "")) for name in _SIGNED_HEADERS]
        if standard[2] == "0":
            standard[2] = ""  # a zero Content-Length is signed as empty
        ms_headers = sorted(
            (name.lower(), " ".join(str(value).split()))
            for name, value in headers.items()
            if name.lower().startswith("x-ms-")
        )
        split = urlsplit(str(request.url))
        resource = f"/{self._account}{split.path or '/'}"
        query: dict[str, list[str]] = {}
        for name, value in parse_qsl(split.query, keep_blank_values=True):
            query.setdefault(name.lower(), []).append(value)
        for name in sorted(query):
            resource += f"\n{name}:{','.join(sorted(query[name]))}"
        return "\n".join(
            [str(request.method), *standard, *(f"{n}:{v}" for n, v in ms_headers), resource]
        )
