"""boto3 sessions and clients from connector credentials, the one place that makes them.

``Credentials.values`` from the ``aws`` connector hold ``aws_access_key_id``,
``aws_secret_access_key`` and, for temporary credentials, ``aws_session_token``; also
``region`` and ``endpoint_url`` when the connector sets them.  With no credentials (inside
a job container) boto3's default chain finds the job's own role.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import boto3

    from stepframe import Credentials

__all__ = ["client", "session"]


def session(credentials: Credentials | None, region: str | None = None) -> boto3.Session:
    """A boto3 session that signs with ``credentials`` (refreshed before they expire)."""
    import boto3

    values = credentials.values if credentials is not None else {}
    region = region or values.get("region") or None
    if credentials is None:
        return boto3.Session(region_name=region)
    if credentials.refresh is None or credentials.expires_at is None:
        return boto3.Session(
            aws_access_key_id=values["aws_access_key_id"],
            aws_secret_access_key=values["aws_secret_access_key"],
            aws_session_token=values.get("aws_session_token") or None,
            region_name=region,
        )
    import botocore.session
    from botocore.credentials import RefreshableCredentials

    holder = [credentials]

    def refreshed() -> dict[str, Any]:
        holder[0] = holder[0].fresh()
        return _metadata(holder[0])

    refreshable = RefreshableCredentials.create_from_metadata(
        metadata=_metadata(credentials), refresh_using=refreshed, method="stepframe-connector"
    )
    core = botocore.session.get_session()
    core._credentials = refreshable  # botocore has no public setter for refreshable ones
    return boto3.Session(botocore_session=core, region_name=region)


def client(
    service: str,
    credentials: Credentials | None,
    *,
    region: str | None = None,
    config: Any = None,
) -> Any:
    """A boto3 client for ``service``, at the connector's endpoint when it sets one."""
    values = credentials.values if credentials is not None else {}
    endpoint = values.get("endpoint_url") or None
    return session(credentials, region).client(service, endpoint_url=endpoint, config=config)


def _metadata(credentials: Credentials) -> dict[str, Any]:
    import datetime

    assert credentials.expires_at is not None
    values = credentials.values
    return {
        "access_key": values["aws_access_key_id"],
        "secret_key": values["aws_secret_access_key"],
        "token": values.get("aws_session_token") or None,
        "expiry_time": datetime.datetime.fromtimestamp(
            credentials.expires_at, tz=datetime.timezone.utc
        ).isoformat(),
    }
