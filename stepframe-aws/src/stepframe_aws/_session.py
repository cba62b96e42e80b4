"""boto3 sessions and clients from connector credentials, the one place that makes them.

``Credentials.values`` from the ``aws`` connector hold ``aws_access_key_id``,
``aws_secret_access_key`` and, for temporary credentials, ``aws_session_token``; also
``region`` and ``endpoint_url`` when the connector sets them.  With no credentials (inside
a job container) boto3's default chain finds the job's own role.

Temporary credentials (``expires_at`` and ``refresh`` set) become botocore
``RefreshableCredentials``: botocore asks for new ones shortly before they expire, so a
client made once keeps working through a long poll loop or a multipart upload.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stepframe import ConnectorError, Credentials, StepframeError

if TYPE_CHECKING:
    import boto3

__all__ = ["ADVISORY_REFRESH_SECONDS", "MANDATORY_REFRESH_SECONDS", "client", "session"]

log = logging.getLogger(__name__)

# botocore's defaults (15 and 10 minutes) would refresh a 15-minute STS session on every
# call.  Five minutes matches `Credentials.fresh` and the connector's cache, so botocore,
# the core and the connector agree on when credentials are due.
ADVISORY_REFRESH_SECONDS = 300
MANDATORY_REFRESH_SECONDS = 120
# Refreshed credentials that no longer say when they expire are kept this long.
_NO_EXPIRY_SECONDS = 365 * 24 * 3600.0


def session(
    credentials: Credentials | None,
    region: str | None = None,
    *,
    clock: Callable[[], float] | None = None,
) -> boto3.Session:
    """A boto3 session that signs with ``credentials`` (refreshed before they expire).

    :param credentials: from the ``aws`` connector, or None for boto3's default chain.
    :param region: overrides the credentials' region.
    :param clock: UNIX time now; tests pass a fake one to cross an expiry without waiting.
    """
    import boto3

    values = credentials.values if credentials is not None else {}
    region = region or values.get("region") or None
    if credentials is None:
        return boto3.Session(region_name=region)
    _check_aws_keys(credentials)
    if credentials.refresh is None or credentials.expires_at is None:
        return boto3.Session(
            aws_access_key_id=values["aws_access_key_id"],
            aws_secret_access_key=values["aws_secret_access_key"],
            aws_session_token=values.get("aws_session_token") or None,
            region_name=region,
        )
    import botocore.session

    core = botocore.session.get_session()
    provider = _refreshable_provider(credentials, clock or time.time)
    # First in the chain, so nothing in the environment is preferred over the connector.
    core.get_component("credential_provider").providers.insert(0, provider)
    return boto3.Session(botocore_session=core, region_name=region)


def client(
    service: str,
    credentials: Credentials | None,
    *,
    region: str | None = None,
    config: Any = None,
) -> Any:
    """A boto3 client for ``service``, at the connector's endpoint when it sets one.

    :param service: the boto3 service name (``"s3"``, ``"sagemaker"``).
    :param credentials: from the ``aws`` connector, or None for boto3's default chain.
    :param region: overrides the credentials' region.
    :param config: a ``botocore.config.Config`` for the client, if any.
    """
    values = credentials.values if credentials is not None else {}
    endpoint = values.get("endpoint_url") or None
    return session(credentials, region).client(service, endpoint_url=endpoint, config=config)


def _check_aws_keys(credentials: Credentials) -> None:
    # A registry login (username/password) handed to boto3 by mistake would otherwise
    # fail with a KeyError deep inside botocore.
    missing = [
        k for k in ("aws_access_key_id", "aws_secret_access_key") if not credentials.values.get(k)
    ]
    if missing:
        raise ConnectorError(
            f"credentials from connector {credentials.connector!r} for "
            f"{credentials.resource.kind!r} carry no {' or '.join(missing)}; AWS clients need "
            "credentials of kind 'generic' or 'object_store' from an 'aws' connector"
        )


def _refreshable_provider(credentials: Credentials, clock: Callable[[], float]) -> Any:
    """A botocore credential provider that hands out refreshable ``credentials``."""
    from botocore.credentials import CredentialProvider, RefreshableCredentials

    holder = [credentials]

    def now() -> datetime.datetime:
        return datetime.datetime.fromtimestamp(clock(), tz=datetime.timezone.utc)

    def refreshed() -> dict[str, Any]:
        # botocore calls this once the advisory window has begun, so refresh now rather
        # than through `fresh()`, whose margin could disagree and hand back the same ones.
        current = holder[0]
        assert current.refresh is not None
        try:
            holder[0] = current.refresh()
        except StepframeError as error:
            left = (current.expires_at or 0.0) - clock()
            if left <= MANDATORY_REFRESH_SECONDS:
                raise
            # Still time left: keep signing with the current ones and try again on the next
            # call.  One line, not botocore's traceback of a failed advisory refresh.
            log.warning("refreshing AWS credentials failed, %d s left: %s", left, error)
        return _metadata(holder[0], clock)

    refreshable = RefreshableCredentials(
        access_key=credentials.values["aws_access_key_id"],
        secret_key=credentials.values["aws_secret_access_key"],
        token=credentials.values.get("aws_session_token") or None,
        expiry_time=now() if credentials.expires_at is None else _utc(credentials.expires_at),
        refresh_using=refreshed,
        method="stepframe-connector",
        time_fetcher=now,
        advisory_timeout=ADVISORY_REFRESH_SECONDS,
        mandatory_timeout=MANDATORY_REFRESH_SECONDS,
    )

    class ConnectorProvider(CredentialProvider):  # type: ignore[misc,unused-ignore]  # botocore is untyped
        METHOD = "stepframe-connector"
        CANONICAL_NAME = "stepframe-connector"

        def load(self) -> Any:
            return refreshable

    return ConnectorProvider()


def _utc(timestamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc)


def _metadata(credentials: Credentials, clock: Callable[[], float]) -> dict[str, Any]:
    _check_aws_keys(credentials)
    values = credentials.values
    expires_at = credentials.expires_at
    if expires_at is None:
        expires_at = clock() + _NO_EXPIRY_SECONDS
    return {
        "access_key": values["aws_access_key_id"],
        "secret_key": values["aws_secret_access_key"],
        "token": values.get("aws_session_token") or None,
        "expiry_time": _utc(expires_at).isoformat(),
    }
