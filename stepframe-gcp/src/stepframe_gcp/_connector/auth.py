"""Credentials from the ``gcp`` connector: an OAuth2 access token for every Google API.

One google-auth credentials object is kept per connector (its name, config and a digest
of its secret values) in this process, and its token handed out until it is within
`REFRESH_MARGIN_SECONDS` of expiring; then google-auth refreshes it (a new JWT grant for a
key, a new generateAccessToken call for impersonation...).  Every `Credentials` carries a
``refresh`` that returns a token expiring later, which is what `Credentials.fresh` and
`GoogleCredentials` (the adapter the store and the API clients use) call, so a three-hour
job's polling and uploads keep working.
"""

from __future__ import annotations

import datetime
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
from stepframe_gcp._connector.config import GcpConnectorConfig

__all__ = [
    "REFRESH_MARGIN_SECONDS",
    "Clock",
    "authenticate",
    "clear_cache",
    "google_credentials",
    "principal_of",
    "registry_host",
]

Clock = Callable[[], float]

# The same margin as `Credentials.fresh`.
REFRESH_MARGIN_SECONDS = 300.0


def authenticate(
    connector: Component, resource: ResourceRequest, *, clock: Clock = time.time
) -> Credentials:
    """An access token for ``resource`` through the ``gcp`` ``connector``.

    :param connector: a ``gcp`` connector component.
    :param resource: any kind: one OAuth2 token serves Cloud Storage, Artifact Registry
        (as a docker password) and Vertex AI alike.
    :param clock: UNIX time now; tests pass a fake one to cross an expiry without waiting.
    :raises ConnectorError: when Google refuses the connector's credentials, saying why.
    :raises ConfigError: when the configuration or a secret it names is wrong.
    """
    entry = _entry(connector)
    return entry.credentials(resource, clock, stale=None)


def clear_cache() -> None:
    """Forget every cached credential (tests do this between token services)."""
    with _GUARD:
        _ENTRIES.clear()


def principal_of(connector: Component) -> str:
    """Who the connector acts as, as far as its configuration tells (no network)."""
    return _entry(connector).principal


def google_credentials(credentials: Credentials | None) -> Any:
    """google-auth credentials for an API client: the connector's token (refreshed through
    ``credentials.refresh`` when it nears expiry), or, with None, Application Default
    Credentials (inside a job: its service account)."""
    from stepframe_gcp._connector.adapter import GoogleCredentials

    if credentials is None:
        import google.auth
        import google.auth.exceptions

        try:
            found, _ = google.auth.default(scopes=[_CLOUD_PLATFORM])
        except google.auth.exceptions.DefaultCredentialsError:
            raise ConnectorError(
                "no Google credentials: the component has no gcp connector and this "
                "machine has no Application Default Credentials; give the component "
                "`--connector NAME` (a gcp connector), or run `gcloud auth "
                "application-default login`"
            ) from None
        return found
    return GoogleCredentials(credentials)


_CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


# ---- one entry per connector ------------------------------------------------------------


@attrs.frozen
class _Key:
    connector: str
    # The config as JSON (its list fields make the instance unhashable).
    config: str
    # A digest, not the values: rotating a secret gives a new key, and the cache never
    # holds secrets outside the credentials themselves.
    secrets: str


class _Entry:
    """A connector's google-auth credentials, refreshed by one thread at a time."""

    def __init__(self, key: _Key, config: GcpConnectorConfig, google: Any, principal: str) -> None:
        self.key = key
        self.config = config
        self.google = google
        self.principal = principal
        self.lock = threading.Lock()

    def credentials(
        self, resource: ResourceRequest, clock: Clock, stale: float | None
    ) -> Credentials:
        """The current token as `Credentials`; refreshed first when it expires within
        the margin, or (``stale``) when it does not expire later than ``stale``."""
        with self.lock:
            expires_at = _expires_at(self.google)
            token = self.google.token
            needs = (
                token is None
                or (expires_at is not None and expires_at - clock() <= REFRESH_MARGIN_SECONDS)
                or (stale is not None and expires_at is not None and expires_at <= stale)
            )
            if needs:
                self._refresh()
                expires_at = _expires_at(self.google)
                token = self.google.token
        refresh = None
        if expires_at is not None:
            at = expires_at

            def refresh() -> Credentials:
                return self.credentials(resource, clock, stale=at)

        values = {"access_token": str(token)}
        if resource.kind == "container_registry":
            # Artifact Registry's docker login: the literal user oauth2accesstoken and the
            # token as the password.
            values.update(
                username="oauth2accesstoken",
                password=str(token),
                registry=f"https://{registry_host(resource.resource_id)}",
            )
        return Credentials(
            connector=self.key.connector,
            resource=resource,
            # Only the login: every value here counts as secret (and is hidden from repr).
            values=values,
            expires_at=expires_at,
            refresh=refresh,
        )

    def _refresh(self) -> None:
        from stepframe_gcp._connector.errors import refresh_errors

        config = self.config
        if config.auth_method == "oauth2-token":
            return  # a bare token cannot be refreshed; Google tells when it has expired
        with refresh_errors(self.key.connector, config.auth_method, self.principal):
            import google.auth.transport.requests

            self.google.refresh(google.auth.transport.requests.Request())


_ENTRIES: dict[_Key, _Entry] = {}
_GUARD = threading.Lock()


def _entry(connector: Component) -> _Entry:
    config = connector.config
    if not isinstance(config, GcpConnectorConfig):
        raise ConfigError(
            f"connector {connector.name!r}: its config is not a gcp connector's; register "
            "it with --flavor gcp"
        )
    secrets = _secrets(connector.name, config)
    key = _Key(connector.name, json.dumps(attrs.asdict(config), sort_keys=True), _digest(secrets))
    with _GUARD:
        entry = _ENTRIES.get(key)
    if entry is not None:
        return entry
    google, principal = _build(connector.name, config, secrets)
    with _GUARD:
        # Two threads may have built one each: keep the first, so one token is shared.
        return _ENTRIES.setdefault(key, _Entry(key, config, google, principal))


def registry_host(resource_id: str | None) -> str:
    """The Artifact Registry host of a registry resource (``LOCATION-docker.pkg.dev``);
    `ConfigError` for any other host, which this connector's token cannot log in to."""
    host = (resource_id or "").split("://", 1)[-1].split("/", 1)[0]
    if not host.endswith("-docker.pkg.dev") or host == "-docker.pkg.dev":
        raise ConfigError(
            f"the gcp connector logs in to Artifact Registry (LOCATION-docker.pkg.dev), not "
            f"{host or 'an empty registry uri'!r}; set the container registry's uri to "
            "LOCATION-docker.pkg.dev/PROJECT/REPOSITORY"
        )
    return host


def _secrets(name: str, config: GcpConnectorConfig) -> dict[str, str]:
    values = {}
    for field in ("service_account_key", "token"):
        reference = getattr(config, field)
        if reference is not None:
            try:
                values[field] = resolve_secret(reference)
            except ConfigError as error:
                raise ConfigError(f"connector {name!r} {field}: {error}") from None
    return values


def _digest(secrets: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(secrets, sort_keys=True).encode()).hexdigest()


def _expires_at(google: Any) -> float | None:
    expiry: datetime.datetime | None = getattr(google, "expiry", None)
    if expiry is None:
        return None
    # google-auth keeps expiry as a naive UTC datetime.
    return expiry.replace(tzinfo=datetime.timezone.utc).timestamp()


def _build(name: str, config: GcpConnectorConfig, secrets: dict[str, str]) -> tuple[Any, str]:
    """google-auth credentials for ``config`` (not yet holding a token) and the principal."""
    method = config.auth_method
    scopes = list(config.scopes)
    if method == "oauth2-token":
        import google.oauth2.credentials

        token = secrets["token"].strip()
        return google.oauth2.credentials.Credentials(token=token), "the owner of the token"
    if method == "service-account":
        key = _service_account_key(name, config, secrets["service_account_key"])
        return key, key.service_account_email
    if method == "impersonation":
        from google.auth import impersonated_credentials

        if "service_account_key" in secrets:
            source = _service_account_key(name, config, secrets["service_account_key"])
        else:
            source = _default(name, scopes)
        assert config.target_service_account is not None  # the config checked it
        target = impersonated_credentials.Credentials(
            source_credentials=source,
            target_principal=config.target_service_account,
            target_scopes=scopes,
            delegates=list(config.delegates) or None,
            lifetime=config.lifetime_seconds,
            iam_endpoint_override=_iam_endpoint(config),
        )
        return target, config.target_service_account
    if method == "external-account":
        return _external_account(name, config, scopes)
    found = _default(name, scopes)
    return found, getattr(
        found, "service_account_email", None
    ) or "the Application Default Credentials' account"


def _federated(info: dict[str, Any], scopes: list[str]) -> Any:
    """Credentials of a federation config, built without a network call (google-auth's
    loader asks Cloud Resource Manager for the project at once)."""
    source = info.get("credential_source", {})
    if str(source.get("environment_id", "")).startswith("aws"):
        from google.auth import aws

        return aws.Credentials.from_info(info, scopes=scopes)
    if "executable" in source:
        from google.auth import pluggable

        return pluggable.Credentials.from_info(info, scopes=scopes)
    from google.auth import identity_pool

    return identity_pool.Credentials.from_info(info, scopes=scopes)


def _iam_endpoint(config: GcpConnectorConfig) -> str | None:
    if config.iam_credentials_endpoint is None:
        return None
    base = config.iam_credentials_endpoint.rstrip("/")
    return (
        f"{base}/v1/projects/-/serviceAccounts/{config.target_service_account}:generateAccessToken"
    )


def _service_account_key(name: str, config: GcpConnectorConfig, text: str) -> Any:
    from google.oauth2 import service_account

    where = f"connector {name!r} service_account_key ({config.service_account_key})"
    try:
        info = json.loads(text)
    except ValueError:
        info = None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        kind = info.get("type") if isinstance(info, dict) else None
        raise ConfigError(
            f"{where} is not a service-account key JSON"
            + (f" (its type is {kind!r})" if kind else "")
            + ": create one with `gcloud iam service-accounts keys create key.json "
            "--iam-account=NAME@PROJECT.iam.gserviceaccount.com`, then `stepframe secret "
            "set NAME < key.json`"
        )
    try:
        return service_account.Credentials.from_service_account_info(
            info, scopes=list(config.scopes)
        )
    except (ValueError, KeyError) as error:
        field = str(error).strip("'\"")
        raise ConfigError(
            f"{where}: the key JSON is incomplete or damaged ({field}); download a new key"
        ) from None


def _default(name: str, scopes: list[str]) -> Any:
    import google.auth
    import google.auth.exceptions

    try:
        found, _ = google.auth.default(scopes=scopes)
    except google.auth.exceptions.DefaultCredentialsError:
        raise ConnectorError(
            f"connector {name!r} (implicit): no Application Default Credentials on this "
            "machine; run `gcloud auth application-default login`, set "
            "GOOGLE_APPLICATION_CREDENTIALS, or use auth_method 'service-account'"
        ) from None
    return found


def _external_account(name: str, config: GcpConnectorConfig, scopes: list[str]) -> tuple[Any, str]:
    import google.auth
    import google.auth.exceptions

    path = config.credential_config
    assert path is not None  # the config checked it
    try:
        with open(path, encoding="utf-8") as stream:
            info = json.load(stream)
    except OSError as error:
        raise ConfigError(
            f"connector {name!r} credential_config {path}: cannot read it ({error.strerror})"
        ) from None
    except ValueError:
        info = None
    if not isinstance(info, dict) or info.get("type") != "external_account":
        raise ConfigError(
            f"connector {name!r} credential_config {path} is not a workload identity "
            "federation configuration (type external_account); create it with `gcloud iam "
            "workload-identity-pools create-cred-config`"
        )
    try:
        found = _federated(info, scopes)
    except (ValueError, google.auth.exceptions.GoogleAuthError) as error:
        raise ConfigError(f"connector {name!r} credential_config {path}: {error}") from None
    email = getattr(found, "service_account_email", None)
    return found, email or f"the federated identity of {info.get('audience', path)}"
