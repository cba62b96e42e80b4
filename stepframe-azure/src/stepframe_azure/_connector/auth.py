"""Credentials from the ``azure`` connector: Entra ID access tokens, one per scope.

One entry is kept per connector (its name, config and a digest of its secret values) in
this process.  It holds an azure-identity credential and the last token it gave for each
scope, handed out until it is within `REFRESH_MARGIN_SECONDS` of expiring.  A refresh
builds a new azure-identity credential: msal's own cache runs on the wall clock and would
hand back the very token being replaced.

The other azure modules get tokens through `bearer_token` (a scope's token, as a string)
or `token_credential` (an azure-core ``TokenCredential`` for an SDK client).  Both take
the `Credentials` a hook was given: in this process those carry their connector's entry
(in ``refresh``), so any scope can be asked for; credentials read back from a job's pipe
carry one token for one scope (``values["scope"]``), which is all such a job needs.
``None`` (no connector: a job on Azure with its own identity) means azure-identity's
default chain.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs

from stepframe import (
    Component,
    ConfigError,
    ConnectorError,
    Credentials,
    ResourceRequest,
    resolve_secret,
)
from stepframe_azure._connector.config import (
    MANAGEMENT_SCOPE,
    STORAGE_SCOPE,
    AzureConnectorConfig,
)
from stepframe_azure._connector.errors import renewal

__all__ = [
    "REFRESH_MARGIN_SECONDS",
    "Clock",
    "authenticate",
    "bearer_token",
    "clear_token_cache",
    "principal_of",
    "token_claims",
    "token_credential",
]

Clock = Callable[[], float]

# The same margin as `Credentials.fresh`.
REFRESH_MARGIN_SECONDS = 300.0

# The scope each resource kind's `Credentials.values["access_token"]` is for.
_SCOPE_OF_KIND = {"object_store": STORAGE_SCOPE}


def authenticate(
    connector: Component, resource: ResourceRequest, *, clock: Clock = time.time
) -> Credentials:
    """Credentials for ``resource`` through the ``azure`` ``connector``.

    ``object_store``: a Storage token; ``container_registry``: a docker login for the
    registry (an ACR refresh token); anything else: an Azure Resource Manager token.  Other
    scopes come from `bearer_token` with these credentials.

    :param clock: UNIX time now; tests pass a fake one to cross an expiry without waiting.
    :raises ConnectorError: when Entra ID refuses the connector's credentials, saying why.
    :raises ConfigError: when the configuration or a secret it names is wrong.
    """
    entry = _entry(connector)
    if resource.kind == "container_registry":
        from stepframe_azure._acr.login import registry_login

        return registry_login(entry.source(clock), resource)
    return entry.credentials(resource, _SCOPE_OF_KIND.get(resource.kind, MANAGEMENT_SCOPE), clock)


def bearer_token(credentials: Credentials | None, scope: str) -> str:
    """An access token for ``scope`` (``https://storage.azure.com/.default``...).

    :param credentials: what a hook was given by the ``azure`` connector, or None for
        azure-identity's default chain (a job on Azure, with its managed identity).
    :raises ConnectorError: when no token for ``scope`` can be had, saying why.
    """
    if credentials is None:
        return _default_entry().token(scope, time.time)
    refresh = credentials.refresh
    if isinstance(refresh, TokenSource):
        return refresh.token(scope)
    # Read back from a pipe (a local job): the one token they carry, while it lasts.
    values = credentials.values
    token = values.get("access_token")
    if token is None or values.get("scope") != scope:
        raise ConnectorError(
            f"connector {credentials.connector!r}: these credentials hold no token for "
            f"{scope} (they were issued for {values.get('scope') or 'a registry login'}); "
            "ask the connector for this resource kind"
        )
    if credentials.expires_at is not None and credentials.expires_at <= time.time():
        raise ConnectorError(
            f"connector {credentials.connector!r}: its token for {scope} has expired and "
            "cannot be refreshed in this process; run the step again"
        )
    return token


def token_credential(credentials: Credentials | None) -> Any:
    """An azure-core ``TokenCredential`` (``get_token(*scopes)``) backed by `bearer_token`,
    for SDK clients (``BlobServiceClient(url, credential=...)``)."""
    return _SdkCredential(credentials)


def clear_token_cache() -> None:
    """Forget every cached credential and token (tests do this between token services)."""
    with _GUARD:
        _ENTRIES.clear()
        _DEFAULT.clear()


def token_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT access token, unverified (who it names, when it expires); an
    empty dict when ``token`` is not a JWT.  Never used to trust anything."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except ValueError:
        return {}
    return claims if isinstance(claims, dict) else {}


def principal_of(token: str) -> str:
    """Who a token was issued to, from its claims: a user's name, an application's id, a
    managed identity's resource id, always with its object id."""
    claims = token_claims(token)
    oid = claims.get("oid")
    ids = f"object id {oid}" if oid else "object id unknown"
    name = claims.get("upn") or claims.get("unique_name") or claims.get("preferred_username")
    if claims.get("idtyp") == "user" or (name and "@" in str(name)):
        return f"user {name} ({ids})"
    resource = claims.get("xms_mirid")
    if resource:
        return f"managed identity {str(resource).rsplit('/', 1)[-1]} ({ids}, {resource})"
    app = claims.get("appid") or claims.get("azp")
    if app:
        return f"service principal {app} ({ids})"
    return f"the token's owner ({ids})"


# ---- one entry per connector ------------------------------------------------------------


@attrs.frozen
class _Key:
    connector: str
    config: str
    # A digest, not the values: rotating a secret gives a new key, and the cache never
    # holds secrets outside the azure-identity credential itself.
    secrets: str


@attrs.frozen
class _Token:
    value: str
    expires_at: float


class _Entry:
    """A connector's azure-identity credential and its tokens by scope."""

    def __init__(self, key: _Key, config: AzureConnectorConfig, secrets: dict[str, str]) -> None:
        self.key = key
        self.config = config
        self._secrets = secrets
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}
        self._identity: Any = None

    @property
    def method(self) -> str:
        return self.config.auth_method

    def source(self, clock: Clock) -> TokenSource:
        return TokenSource(self, clock)

    def token(self, scope: str, clock: Clock) -> str:
        return self.token_with_expiry(scope, clock).value

    def token_with_expiry(self, scope: str, clock: Clock, stale: str | None = None) -> _Token:
        """The cached token for ``scope``, fetched first when it expires within the
        margin, or when it is ``stale`` (the token a caller wants replaced)."""
        with self._lock:
            cached = self._tokens.get(scope)
            if cached is not None and not (
                cached.expires_at - clock() <= REFRESH_MARGIN_SECONDS or cached.value == stale
            ):
                return cached
            if self.method == "access-token":
                token = self._static_token(scope, clock)
            else:
                if cached is not None:
                    self._identity = None  # see the module's docstring
                token = self._fetch(scope)
            self._tokens[scope] = token
            return token

    def credentials(self, resource: ResourceRequest, scope: str, clock: Clock) -> Credentials:
        token = self.token_with_expiry(scope, clock)
        source = self.source(clock)
        return Credentials(
            connector=self.key.connector,
            resource=resource,
            # The token and what it is for; every value counts as secret (hidden in repr).
            values={"access_token": token.value, "scope": scope},
            expires_at=token.expires_at,
            refresh=source.renewer(resource, scope),
        )

    def _fetch(self, scope: str) -> _Token:
        from stepframe_azure._connector.errors import token_errors

        with token_errors(self.key.connector, self.config):
            if self._identity is None:
                from stepframe_azure._connector.identity import build_identity

                self._identity = build_identity(self.config, self._secrets)
            found = self._identity.get_token(scope)
        return _Token(str(found.token), float(found.expires_on))

    def _static_token(self, scope: str, clock: Clock) -> _Token:
        """``access-token``: the stored token, while it lasts and if it is for ``scope``."""
        value = self._secrets["token"].strip()
        claims = token_claims(value)
        where = f"connector {self.key.connector!r} (access-token, {principal_of(value)})"
        renew = renewal(
            self.config.token,
            f"az account get-access-token --scope {scope} --query accessToken -o tsv",
        )
        fix = (
            f"get a new one with {renew}, or use a method that refreshes "
            "(service-principal, managed-identity, implicit)"
        )
        expires = claims.get("exp")
        if isinstance(expires, (int, float)) and expires <= clock():
            ago = int(clock() - expires)
            raise ConnectorError(f"{where}: the token expired {ago} s ago; {fix}")
        audience = str(claims.get("aud", "")).rstrip("/")
        wanted = scope.removesuffix("/.default").rstrip("/")
        if audience and audience != wanted:
            raise ConnectorError(f"{where}: the token is for {audience}, not {wanted}; {fix}")
        # A token that is not a JWT carries no expiry: trust it for the margin only.
        return _Token(
            value,
            float(expires)
            if isinstance(expires, (int, float))
            else clock() + REFRESH_MARGIN_SECONDS,
        )


class TokenSource:
    """A connector's tokens for any scope, as `Credentials.refresh` carries them: calling
    it renews the credentials it came with; `token` answers `bearer_token`."""

    def __init__(
        self,
        entry: _Entry,
        clock: Clock,
        resource: ResourceRequest | None = None,
        scope: str | None = None,
        stale: str | None = None,
    ) -> None:
        self._entry = entry
        self.clock = clock
        self._resource = resource
        self._scope = scope
        self._stale = stale

    @property
    def connector(self) -> str:
        return self._entry.key.connector

    def token(self, scope: str) -> str:
        return self._entry.token(scope, self.clock)

    def token_expiry(self, scope: str) -> float:
        return self._entry.token_with_expiry(scope, self.clock).expires_at

    def renewer(self, resource: ResourceRequest, scope: str) -> TokenSource:
        token = self._entry.token_with_expiry(scope, self.clock)
        return TokenSource(self._entry, self.clock, resource, scope, stale=token.value)

    def __call__(self) -> Credentials:
        """New credentials for the same resource, expiring later than these."""
        assert self._resource is not None and self._scope is not None
        token = self._entry.token_with_expiry(self._scope, self.clock, stale=self._stale)
        return Credentials(
            connector=self.connector,
            resource=self._resource,
            values={"access_token": token.value, "scope": self._scope},
            expires_at=token.expires_at,
            refresh=self.renewer(self._resource, self._scope),
        )


class _SdkCredential:
    """azure-core's ``TokenCredential`` protocol over `bearer_token`."""

    def __init__(self, credentials: Credentials | None) -> None:
        self._credentials = credentials

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        scope = scopes[0]
        refresh = self._credentials.refresh if self._credentials is not None else None
        if isinstance(refresh, TokenSource):
            return AccessToken(refresh.token(scope), int(refresh.token_expiry(scope)))
        if self._credentials is None:
            token = _default_entry().token_with_expiry(scope, time.time)
            return AccessToken(token.value, int(token.expires_at))
        value = bearer_token(self._credentials, scope)
        return AccessToken(value, int(self._credentials.expires_at or time.time() + 300))


_ENTRIES: dict[_Key, _Entry] = {}
_DEFAULT: dict[str, _Entry] = {}
_GUARD = threading.Lock()


def _entry(connector: Component) -> _Entry:
    config = connector.config
    if not isinstance(config, AzureConnectorConfig):
        raise ConfigError(
            f"connector {connector.name!r}: its config is not an azure connector's; "
            "register it with --flavor azure"
        )
    secrets = _secrets(connector.name, config)
    key = _Key(connector.name, json.dumps(attrs.asdict(config), sort_keys=True), _digest(secrets))
    with _GUARD:
        # Two threads may both arrive here: keep the first entry, so one token is shared.
        return _ENTRIES.setdefault(key, _Entry(key, config, secrets))


def _default_entry() -> _Entry:
    """azure-identity's default chain, for components without a connector."""
    with _GUARD:
        entry = _DEFAULT.get("")
        if entry is None:
            entry = _DEFAULT[""] = _Entry(
                _Key("(none: the default Azure credential)", "", ""),
                AzureConnectorConfig(),
                {},
            )
        return entry


def _secrets(name: str, config: AzureConnectorConfig) -> dict[str, str]:
    values = {}
    for field in ("client_secret", "certificate", "certificate_password", "token"):
        reference = getattr(config, field)
        if reference is not None:
            try:
                values[field] = resolve_secret(reference)
            except ConfigError as error:
                raise ConfigError(f"connector {name!r} {field}: {error}") from None
    return values


def _digest(secrets: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(secrets, sort_keys=True).encode()).hexdigest()
