"""Credentials from the ``aws`` connector: boto3 keys for S3 and the rest, logins for ECR.

Temporary credentials (a session token, an assumed role, an ECR login) are cached in this
process per connector (its name, config and secret values) and resource, and handed out
again until they are within `REFRESH_MARGIN_SECONDS` of expiring.  Each carries a
``refresh`` that returns newer ones, which is what `Credentials.fresh` and the refreshable
botocore credentials of `stepframe_aws._session` call.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import threading
import time
from collections.abc import Callable, Mapping
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
from stepframe_aws._connector.config import AwsConnectorConfig
from stepframe_aws._ecr.hosts import registry_account_region, registry_host
from stepframe_aws._errors import CredentialSource, aws_errors, key_hint

__all__ = [
    "EXPIRED_LOGIN_SECONDS",
    "REFRESH_MARGIN_SECONDS",
    "Clock",
    "authenticate",
    "clear_cache",
    "credential_source",
]

Clock = Callable[[], float]

# The same margin as `Credentials.fresh` and the botocore refresh window in _session.
REFRESH_MARGIN_SECONDS = 300.0
# How long an ECR login whose expiresAt has already passed is kept before asking again.
EXPIRED_LOGIN_SECONDS = 60.0

_GENERIC = ResourceRequest("generic")
_SECRET_FIELDS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")


def authenticate(
    connector: Component, resource: ResourceRequest, *, clock: Clock = time.time
) -> Credentials:
    """Credentials for ``resource`` through the ``aws`` ``connector``.

    :param connector: an ``aws`` connector component.
    :param resource: ``generic`` or ``object_store`` (``s3://`` URI): AWS keys;
        ``container_registry`` (the ECR host): a docker login.
    :param clock: UNIX time now; tests pass a fake one to cross an expiry without waiting.
    :raises ConnectorError: when AWS refuses the connector's credentials, saying why.
    :raises ConfigError: when the configuration or a secret it names is missing.
    """
    config = _config(connector)
    secrets = _secrets(connector.name, config)
    key = _Key(connector.name, config, _digest(secrets), resource)
    return _CACHE.get(key, lambda stale: _issue(key, secrets, clock, stale), clock, None)


def clear_cache() -> None:
    """Forget every cached credential (tests do this between moto resets)."""
    _CACHE.clear()


def credential_source(connector: Component) -> CredentialSource:
    """What error messages may say about ``connector``'s credentials (no secret values)."""
    config = _config(connector)
    key_id = None
    if config.aws_access_key_id is not None:
        try:
            key_id = resolve_secret(config.aws_access_key_id)
        except ConfigError:
            key_id = None
    return _source(connector.name, config, key_id)


# ---- the cache -------------------------------------------------------------------------


@attrs.frozen
class _Key:
    connector: str
    config: AwsConnectorConfig
    # A digest, not the values: rotating a secret gives a new key, and the cache never
    # holds secrets outside the credentials themselves.
    secrets: str
    resource: ResourceRequest

    def with_resource(self, resource: ResourceRequest) -> _Key:
        return attrs.evolve(self, resource=resource)


class _Cache:
    """Credentials by key, each key issued by one thread at a time."""

    def __init__(self) -> None:
        self._issued: dict[_Key, Credentials] = {}
        self._locks: dict[_Key, threading.Lock] = {}
        self._guard = threading.Lock()

    def clear(self) -> None:
        with self._guard:
            self._issued.clear()

    def get(
        self,
        key: _Key,
        issue: Callable[[float | None], Credentials],
        clock: Clock,
        stale: float | None,
    ) -> Credentials:
        """The cached credentials for ``key``, or new ones from ``issue``.

        :param stale: the expiry of credentials the caller wants replaced: cached ones
            that do not expire later than that are issued anew.
        """
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        # One issuer per key: threads refreshing together make one STS call, not many.
        with lock:
            cached = self._issued.get(key)
            if cached is not None and _usable(cached, clock, stale):
                return cached
            issued = issue(stale)
            with self._guard:
                self._issued[key] = issued
            return issued


def _usable(credentials: Credentials, clock: Clock, stale: float | None) -> bool:
    if credentials.expires_at is None:
        return True
    if stale is not None and credentials.expires_at <= stale:
        return False
    return credentials.expires_at - clock() > REFRESH_MARGIN_SECONDS


_CACHE = _Cache()


# ---- issuing ---------------------------------------------------------------------------


def _issue(key: _Key, secrets: Mapping[str, str], clock: Clock, stale: float | None) -> Credentials:
    resource = key.resource
    source = _source(key.connector, key.config, secrets.get("aws_access_key_id"))
    expires_at: float | None
    if resource.kind == "generic":
        values, expires_at = _aws_credentials(key.config, secrets, source)
    elif resource.kind == "object_store":
        _check_s3_uri(key.connector, resource.resource_id)
        # The same AWS credentials as `generic`, and the same cache entry underneath, so
        # the store and the steps of a run share one session.
        base = _CACHE.get(
            key.with_resource(_GENERIC),
            lambda s: _issue(key.with_resource(_GENERIC), secrets, clock, s),
            clock,
            stale,
        )
        values, expires_at = dict(base.values), base.expires_at
    elif resource.kind == "container_registry":
        base = _CACHE.get(
            key.with_resource(_GENERIC),
            lambda s: _issue(key.with_resource(_GENERIC), secrets, clock, s),
            clock,
            None,
        )
        values, expires_at = _registry_login(base, resource.resource_id, source, clock)
    else:
        raise ConnectorError(
            f"connector {key.connector!r} (flavor aws) gives credentials for 'generic', "
            f"'object_store' and 'container_registry' resources, not {resource.kind!r}"
        )
    refresh = None
    if expires_at is not None:
        # Bound to this expiry: calling it asks for credentials that expire later.
        refresh = functools.partial(
            _CACHE.get, key, lambda s: _issue(key, secrets, clock, s), clock, expires_at
        )
    return Credentials(
        connector=key.connector,
        resource=resource,
        values=values,
        expires_at=expires_at,
        refresh=refresh,
    )


def _aws_credentials(
    config: AwsConnectorConfig, secrets: Mapping[str, str], source: CredentialSource
) -> tuple[dict[str, str], float | None]:
    """The connector's AWS keys (and token), and when they expire."""
    method = config.auth_method
    region = config.region
    expires_at: float | None = None
    if method == "implicit":
        keys, region, expires_at = _default_chain(config, source)
        # Which of the user's keys the chain picked is the first thing to know when refused.
        source = attrs.evolve(source, key_hint=key_hint(keys["aws_access_key_id"]))
    else:
        keys = {name: secrets[name] for name in _SECRET_FIELDS if name in secrets}
    if method == "sts-token":
        with aws_errors("getting a session token (sts:GetSessionToken)", source=source):
            answer = _sts(keys, config, region).get_session_token(
                DurationSeconds=config.session_duration_seconds
            )
        keys, expires_at = _temporary(answer["Credentials"])
    if config.role_arn is not None:
        keys, expires_at = _assume_role(keys, config, region, source)
    values = dict(keys)
    if region:
        values["region"] = region
    if config.endpoint_url:
        values["endpoint_url"] = config.endpoint_url
    return values, expires_at


def _default_chain(
    config: AwsConnectorConfig, source: CredentialSource
) -> tuple[dict[str, str], str | None, float | None]:
    """Keys from boto3's default chain or a named profile, its region and their expiry."""
    import boto3
    from botocore.exceptions import BotoCoreError, ProfileNotFound

    try:
        chain = boto3.Session(profile_name=config.profile)
    except ProfileNotFound:
        raise ConfigError(
            f"{source.who}: profile {config.profile!r} is not in ~/.aws/config or "
            "~/.aws/credentials (or AWS_CONFIG_FILE); create it (`aws configure --profile "
            f"{config.profile}`) or fix the connector's profile"
        ) from None
    try:
        found = chain.get_credentials()
        frozen = found.get_frozen_credentials() if found is not None else None
    except BotoCoreError as error:
        raise ConnectorError(
            f"{source.who}: boto3's default chain failed to load credentials ({error}); "
            "fix the profile or the environment's AWS_* variables"
        ) from None
    if frozen is None or not frozen.access_key:
        where = f"profile {config.profile!r}" if config.profile else "the environment"
        raise ConnectorError(
            f"{source.who}: boto3 found no AWS credentials in {where}; set AWS_PROFILE or "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, run `aws configure`, or store keys and "
            "use auth method 'secret-key'"
        )
    keys = {"aws_access_key_id": frozen.access_key, "aws_secret_access_key": frozen.secret_key}
    if frozen.token:
        keys["aws_session_token"] = frozen.token
    # Refreshable chain credentials (SSO, instance role) say when they expire; botocore
    # keeps that on a private attribute, so read it defensively.
    expiry = getattr(found, "_expiry_time", None)
    expires_at = expiry.timestamp() if expiry is not None and hasattr(expiry, "timestamp") else None
    return keys, config.region or chain.region_name, expires_at


def _assume_role(
    keys: Mapping[str, str],
    config: AwsConnectorConfig,
    region: str | None,
    source: CredentialSource,
) -> tuple[dict[str, str], float]:
    assert config.role_arn is not None
    request: dict[str, Any] = {
        "RoleArn": config.role_arn,
        "RoleSessionName": config.role_session_name,
        "DurationSeconds": config.session_duration_seconds,
    }
    if config.external_id is not None:
        request["ExternalId"] = config.external_id
    if config.session_policy is not None:
        request["Policy"] = config.session_policy
    with aws_errors(f"assuming role {config.role_arn}", source=source):
        answer = _sts(keys, config, region).assume_role(**request)
    return _temporary(answer["Credentials"])


def _sts(keys: Mapping[str, str], config: AwsConnectorConfig, region: str | None) -> Any:
    from stepframe_aws._session import client

    values = dict(keys)
    if region:
        values["region"] = region
    if config.endpoint_url:
        values["endpoint_url"] = config.endpoint_url
    return client("sts", Credentials(connector="", resource=_GENERIC, values=values))


def _temporary(answer: Mapping[str, Any]) -> tuple[dict[str, str], float]:
    keys = {
        "aws_access_key_id": str(answer["AccessKeyId"]),
        "aws_secret_access_key": str(answer["SecretAccessKey"]),
        "aws_session_token": str(answer["SessionToken"]),
    }
    return keys, float(answer["Expiration"].timestamp())


def _registry_login(
    base: Credentials, resource_id: str | None, source: CredentialSource, clock: Clock
) -> tuple[dict[str, str], float]:
    """A docker login for the ECR registry ``resource_id``, and when it expires."""
    from stepframe_aws._session import client

    host = registry_host(resource_id)
    account, region = registry_account_region(host)
    # The login is per account and region: ask the registry's own region, not the
    # connector's, for a registry in another one.
    ecr = client("ecr", base, region=region)
    request: dict[str, Any] = {"registryIds": [account]} if account else {}
    with aws_errors(f"getting an ECR login for {host}", source=source):
        answer = ecr.get_authorization_token(**request)
    data = answer["authorizationData"][0]
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    expires_at = float(data["expiresAt"].timestamp())
    now = clock()
    if expires_at <= now:
        # ECR issues 12-hour logins, so one already expired by this machine's clock is
        # either expired indeed or the clock is hours off.  Neither is a reason to trust
        # it for 12 hours: keep it a minute (the registry may still take it) and then ask
        # again.  (moto dates every token 2015-01-01: its tests run on a fake clock.)
        expires_at = now + EXPIRED_LOGIN_SECONDS
    if base.expires_at is not None:
        # A login made with temporary credentials stops working when they do.
        expires_at = min(expires_at, base.expires_at)
    return {"username": username, "password": password, "registry": f"https://{host}"}, expires_at


# ---- configuration ---------------------------------------------------------------------


def _config(connector: Component) -> AwsConnectorConfig:
    config = connector.config if connector.config is not None else AwsConnectorConfig()
    if not isinstance(config, AwsConnectorConfig):
        raise ConfigError(
            f"connector {connector.name!r}: expected an AwsConnectorConfig, got "
            f"{type(config).__name__}"
        )
    return config


def _secrets(connector: str, config: AwsConnectorConfig) -> dict[str, str]:
    """The secret values the config names, resolved now (never stored in the config)."""
    found = {}
    for field in _SECRET_FIELDS:
        reference = getattr(config, field)
        if reference is None:
            continue
        try:
            found[field] = resolve_secret(reference)
        except ConfigError as error:
            raise ConfigError(f"connector {connector!r}, {field}: {error}") from None
    return found


def _digest(secrets: Mapping[str, str]) -> str:
    hasher = hashlib.sha256()
    for name in sorted(secrets):
        hasher.update(f"{name}\0{secrets[name]}\0".encode())
    return hasher.hexdigest()


def _source(connector: str, config: AwsConnectorConfig, key_id: str | None) -> CredentialSource:
    return CredentialSource(
        connector=connector,
        method=config.auth_method,
        key_hint=key_hint(key_id),
        role_arn=config.role_arn,
        external_id_set=config.external_id is not None,
        profile=config.profile,
        secret_names=tuple(
            (name, str(getattr(config, name)))
            for name in _SECRET_FIELDS
            if getattr(config, name) is not None
        ),
    )


def _check_s3_uri(connector: str, resource_id: str | None) -> None:
    if not resource_id or not resource_id.startswith("s3://") or len(resource_id) <= 5:
        raise ConfigError(
            f"connector {connector!r} (flavor aws) reaches object stores on S3 only; "
            f"{resource_id!r} is not an s3://BUCKET[/PREFIX] URI"
        )
