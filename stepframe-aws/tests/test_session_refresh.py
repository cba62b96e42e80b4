"""`stepframe_aws._session`: clients keep working when the connector's credentials expire.

The connector's real temporary credentials (moto's AssumeRole, checked by moto's IAM
enforcement), a fake clock shared by the connector and botocore's refresh logic, and S3
calls on both sides of the refresh window.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from _moto_helpers import ALLOW_ALL, FakeClock, moto_api, sts_follows

from stepframe import (
    Component,
    ComponentKind,
    ConnectorError,
    Credentials,
    ResourceRequest,
    SecretRef,
)
from stepframe_aws._connector.auth import authenticate
from stepframe_aws._connector.config import AwsConnectorConfig
from stepframe_aws._session import ADVISORY_REFRESH_SECONDS, MANDATORY_REFRESH_SECONDS, session

ACCOUNT = "123456789012"
BUCKET = "long-uploads"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """A fake clock that moto's STS dates its sessions by too (its server is in-process),
    so a session issued after the clock jumped expires after the jump, as on AWS."""
    fake = FakeClock()
    sts_follows(fake, monkeypatch)
    return fake


def _reset_auth(endpoint: str, count: bytes) -> None:
    moto_api(endpoint, "/moto-api/reset-auth", "POST", count)


@pytest.fixture
def role_connector(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Component]:
    """An ``iam-role`` connector with 15-minute sessions, moto enforcing IAM."""
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    iam = boto3.client("iam")
    user = iam.create_user(UserName="alice")["User"]["Arn"]
    iam.put_user_policy(UserName="alice", PolicyName="all", PolicyDocument=json.dumps(ALLOW_ALL))
    key = iam.create_access_key(UserName="alice")["AccessKey"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": user}, "Action": "sts:AssumeRole"}],
    }
    role = iam.create_role(RoleName="uploader", AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(RoleName="uploader", PolicyName="all", PolicyDocument=json.dumps(ALLOW_ALL))
    monkeypatch.setenv("SF_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("SF_SECRET_KEY", key["SecretAccessKey"])
    config = AwsConnectorConfig(
        auth_method="iam-role",
        role_arn=role["Role"]["Arn"],
        session_duration_seconds=900,
        aws_access_key_id=SecretRef("env:SF_KEY_ID"),
        aws_secret_access_key=SecretRef("env:SF_SECRET_KEY"),
    )
    _reset_auth(moto_endpoint, b"0")
    try:
        yield Component(ComponentKind.CONNECTOR, "aws", "aws", config)
    finally:
        _reset_auth(moto_endpoint, b"inf")


def signing_key(boto_session: Any) -> str:
    return str(boto_session.get_credentials().get_frozen_credentials().access_key)


def assumed_count() -> int:
    from moto.sts.models import sts_backends

    return len(sts_backends[ACCOUNT]["aws"].assumed_roles)


def test_a_multipart_upload_outlives_the_credentials_it_started_with(
    role_connector: Component, clock: FakeClock
) -> None:
    credentials = authenticate(
        role_connector, ResourceRequest("object_store", f"s3://{BUCKET}"), clock=clock
    )
    assert credentials.expires_at is not None
    boto = session(credentials, clock=clock)
    s3 = boto.client("s3")

    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="model.bin")["UploadId"]
    part = b"x" * (5 * 1024 * 1024)
    first = s3.upload_part(Bucket=BUCKET, Key="model.bin", UploadId=upload, PartNumber=1, Body=part)
    started_with = signing_key(boto)

    # Still outside the window: the same credentials, no new AssumeRole.
    clock.now = credentials.expires_at - ADVISORY_REFRESH_SECONDS - 5
    s3.head_bucket(Bucket=BUCKET)
    assert signing_key(boto) == started_with
    assert assumed_count() == 1

    # Into the window: botocore refreshes through the connector before signing.
    clock.now = credentials.expires_at - ADVISORY_REFRESH_SECONDS + 5
    second = s3.upload_part(
        Bucket=BUCKET, Key="model.bin", UploadId=upload, PartNumber=2, Body=b"end"
    )
    renewed = signing_key(boto)
    assert renewed != started_with
    assert assumed_count() == 2

    # Past the first session's end, on the renewed one, without another AssumeRole.
    clock.now = credentials.expires_at + 60
    s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key="model.bin",
        UploadId=upload,
        MultipartUpload={
            "Parts": [
                {"PartNumber": 1, "ETag": first["ETag"]},
                {"PartNumber": 2, "ETag": second["ETag"]},
            ]
        },
    )
    assert signing_key(boto) == renewed
    assert assumed_count() == 2
    body = s3.get_object(Bucket=BUCKET, Key="model.bin")["Body"].read()
    assert len(body) == len(part) + 3
    # moto checked every request's key and token against its live role sessions.
    assert credentials.values["aws_access_key_id"] == started_with


def test_renewed_credentials_are_used_until_their_own_window() -> None:
    # Hand-made credentials whose refresh counts its calls: what is under test is when
    # _session and botocore ask, not how the connector answers.
    clock = FakeClock()
    calls: list[float] = []

    def issue() -> Credentials:
        calls.append(clock.now)
        return Credentials(
            connector="aws",
            resource=ResourceRequest("generic"),
            values={"aws_access_key_id": f"ASIA{len(calls):016d}", "aws_secret_access_key": "s"},
            expires_at=clock.now + 3600,
            refresh=issue,
        )

    first = issue()
    assert first.expires_at is not None
    boto = session(first, clock=clock)
    sts = boto.client("sts")
    for _ in range(3):
        sts.get_caller_identity()
    assert len(calls) == 1

    clock.now = first.expires_at - ADVISORY_REFRESH_SECONDS + 1
    for _ in range(3):
        sts.get_caller_identity()
    assert len(calls) == 2, "one refresh in the window, then the renewed ones"
    assert signing_key(boto) == "ASIA0000000000000002"

    clock.now += 3600 - ADVISORY_REFRESH_SECONDS + 1
    sts.get_caller_identity()
    assert len(calls) == 3
    assert signing_key(boto) == "ASIA0000000000000003"


def test_long_lived_keys_make_a_plain_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SF_KEY_ID", "AKIAEXAMPLEKEY000001")
    monkeypatch.setenv("SF_SECRET_KEY", "example-secret-000001")
    config = AwsConnectorConfig(
        auth_method="secret-key",
        region="eu-north-1",
        aws_access_key_id=SecretRef("env:SF_KEY_ID"),
        aws_secret_access_key=SecretRef("env:SF_SECRET_KEY"),
    )
    credentials = authenticate(
        Component(ComponentKind.CONNECTOR, "aws", "aws", config), ResourceRequest("generic")
    )

    boto = session(credentials)

    assert boto.region_name == "eu-north-1"
    assert signing_key(boto) == "AKIAEXAMPLEKEY000001"
    assert boto.get_credentials().method != "stepframe-connector"


def test_no_credentials_means_boto3s_own_chain() -> None:
    boto = session(None, region="sa-east-1")

    assert boto.region_name == "sa-east-1"
    assert signing_key(boto) == "testing"  # the conftest's environment keys


def test_a_registry_login_is_not_aws_keys() -> None:
    login = Credentials(
        connector="aws",
        resource=ResourceRequest("container_registry", "host"),
        values={"username": "AWS", "password": "token-value-123", "registry": "https://host"},
    )

    with pytest.raises(ConnectorError) as raised:
        session(login)

    message = str(raised.value)
    assert "connector 'aws' for 'container_registry' carry no aws_access_key_id" in message
    assert "token-value-123" not in message


def test_a_failed_refresh_waits_while_there_is_time_and_fails_when_there_is_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The refresh is the one thing replaced here: it fails the way the connector does when
    # AWS refuses it.  What is under test is how _session and botocore handle that.
    clock = FakeClock()
    expires_at = clock.now + 3600

    def refuse() -> Credentials:
        raise ConnectorError("connector 'aws' (auth method 'iam-role'): cannot assume role")

    credentials = Credentials(
        connector="aws",
        resource=ResourceRequest("generic"),
        values={"aws_access_key_id": "testing", "aws_secret_access_key": "testing"},
        expires_at=expires_at,
        refresh=refuse,
    )
    sts = session(credentials, clock=clock).client("sts")

    clock.now = expires_at - (ADVISORY_REFRESH_SECONDS + MANDATORY_REFRESH_SECONDS) / 2
    with caplog.at_level(logging.WARNING):
        assert sts.get_caller_identity()["Account"] == ACCOUNT
    warnings = [r for r in caplog.records if r.name == "stepframe_aws._session"]
    assert len(warnings) == 1 and "cannot assume role" in warnings[0].getMessage()
    assert warnings[0].exc_info is None

    clock.now = expires_at - MANDATORY_REFRESH_SECONDS / 2
    with pytest.raises(ConnectorError, match="cannot assume role"):
        sts.get_caller_identity()
