"""``verify`` for the ``aws`` connector: the identity, each resource, and every refusal.

Refusals are real where moto can make them: with its IAM enforcement on (the server's
``/moto-api/reset-auth``), an unknown key id, a wrong secret, a wrong session token, a
role whose trust policy names someone else and a missing external id are all refused by
moto's own checks.  moto never expires a token, so that one answer is injected through
botocore's event system, and still goes through botocore's real parsing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from _moto_helpers import MotoIam, expire_sts_answers

from stepframe import (
    Component,
    ComponentKind,
    ConnectorError,
    ConnectorReport,
    ResourceRequest,
    SecretRef,
)
from stepframe.exceptions import PluginError
from stepframe_aws._connector.config import AwsConnectorConfig
from stepframe_aws._connector.verify import verify

ACCOUNT = "123456789012"
REGISTRY = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
BUCKET = "team-artifacts"
GENERIC = ResourceRequest("generic")


@pytest.fixture
def secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A stepframe secrets file; tests put values in and connectors name them."""
    store: dict[str, str] = {}
    path = tmp_path / "secrets.json"
    monkeypatch.setenv("STEPFRAME_SECRETS_FILE", str(path))

    class Store(dict[str, str]):
        def __setitem__(self, name: str, value: str) -> None:
            super().__setitem__(name, value)
            path.write_text(json.dumps(dict(self)))
            path.chmod(0o600)

    store = Store()
    return store


def keyed(secrets: dict[str, str], key_id: str, secret_key: str, **config: Any) -> Component:
    """An ``aws`` connector whose keys are the named secrets ``key-id`` and ``secret-key``."""
    secrets["key-id"] = key_id
    secrets["secret-key"] = secret_key
    config.setdefault("auth_method", "secret-key")
    return Component(
        ComponentKind.CONNECTOR,
        "aws",
        "aws",
        AwsConnectorConfig(
            aws_access_key_id=SecretRef("key-id"),
            aws_secret_access_key=SecretRef("secret-key"),
            **config,
        ),
    )


def refused(connector: Component, resources: list[ResourceRequest] | None = None) -> str:
    with pytest.raises(ConnectorError) as raised:
        verify(connector, resources or [GENERIC])
    message = str(raised.value)
    # No botocore exception chained on: the CLI's message is the whole story.
    error = raised.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    assert "botocore" not in message and "Traceback" not in message
    return message


def assert_no_secret(message: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in message, f"{secret[:3]}... leaked into: {message}"


# ---- what a working connector reports ----------------------------------------------------


def test_verify_names_the_identity_and_checks_each_resource(
    moto_iam: MotoIam, secrets: dict[str, str]
) -> None:
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    arn, key_id, secret_key = moto_iam.user("alice")
    aws = keyed(secrets, key_id, secret_key, region="us-east-1")
    moto_iam.enforce()

    report = verify(
        aws,
        [
            GENERIC,
            ResourceRequest("object_store", f"s3://{BUCKET}/stepframe"),
            ResourceRequest("container_registry", REGISTRY),
        ],
    )

    assert isinstance(report, ConnectorReport)
    assert report.identity == arn == f"arn:aws:iam::{ACCOUNT}:user/alice"
    assert report.checks[0] == f"aws credentials (secret-key): account {ACCOUNT}, region us-east-1"
    assert report.checks[1] == f"s3 s3://{BUCKET}/stepframe: bucket {BUCKET} readable"
    assert report.checks[2].startswith(f"ecr {REGISTRY}: login as AWS valid until ")
    assert report.checks[2].endswith(", repositories readable")


def test_an_assumed_role_reports_the_roles_session(
    moto_iam: MotoIam, secrets: dict[str, str]
) -> None:
    user_arn, key_id, secret_key = moto_iam.user("alice")
    role = moto_iam.role("deployer", trusted=user_arn)
    aws = keyed(secrets, key_id, secret_key, auth_method="iam-role", role_arn=role)
    moto_iam.enforce()

    report = verify(aws, [GENERIC])

    assert report.identity == f"arn:aws:sts::{ACCOUNT}:assumed-role/deployer/stepframe"
    assert f"role {role}" in report.checks[0] and "temporary until" in report.checks[0]


# ---- each refusal has its own message ----------------------------------------------------


def test_an_unknown_access_key(moto_iam: MotoIam, secrets: dict[str, str]) -> None:
    moto_iam.user("alice")  # IAM has users, just not this key
    aws = keyed(secrets, "AKIAUNKNOWNKEY00W9XY", "not-the-secret-of-anything-0000")
    moto_iam.enforce()

    message = refused(aws)

    assert message.startswith(
        "connector 'aws' (auth method 'secret-key'): checking the credentials "
        "(sts:GetCallerIdentity): AWS does not accept access key id ...W9XY (InvalidClientTokenId"
    )
    assert "deleted, deactivated or mistyped" in message
    assert "`stepframe secret set key-id`" in message
    assert_no_secret(message, "AKIAUNKNOWNKEY00W9XY", "not-the-secret-of-anything-0000")


def test_a_wrong_secret_key(moto_iam: MotoIam, secrets: dict[str, str]) -> None:
    _, key_id, secret_key = moto_iam.user("alice")
    # One character off (moto's secrets are random, so never the same letter again).
    wrong = ("y" if secret_key.startswith("x") else "x") + secret_key[1:]
    aws = keyed(secrets, key_id, wrong)
    moto_iam.enforce()

    message = refused(aws)

    assert f"the secret access key does not belong to access key id ...{key_id[-4:]}" in message
    assert "(SignatureDoesNotMatch" in message
    assert "`stepframe secret set secret-key`" in message
    assert_no_secret(message, key_id, secret_key, wrong)


def test_a_wrong_key_under_sts_token_names_the_session_token_call(
    moto_iam: MotoIam, secrets: dict[str, str]
) -> None:
    aws = keyed(secrets, "AKIAUNKNOWNKEY00ZZ11", "nope-nope-nope-nope", auth_method="sts-token")
    moto_iam.enforce()

    message = refused(aws)

    assert message.startswith(
        "connector 'aws' (auth method 'sts-token'): getting a session token "
        "(sts:GetSessionToken): AWS does not accept access key id ...ZZ11"
    )


def test_a_session_token_that_does_not_belong_to_the_key(
    moto_iam: MotoIam, secrets: dict[str, str]
) -> None:
    import boto3

    user_arn, key_id, secret_key = moto_iam.user("alice")
    role = moto_iam.role("deployer", trusted=user_arn)
    session = boto3.client(
        "sts", aws_access_key_id=key_id, aws_secret_access_key=secret_key
    ).assume_role(RoleArn=role, RoleSessionName="handmade")["Credentials"]
    secrets["token"] = session["SessionToken"][:-4] + "AAAA"
    aws = keyed(
        secrets,
        session["AccessKeyId"],
        session["SecretAccessKey"],
        auth_method="session-token",
        aws_session_token="token",
    )
    moto_iam.enforce()

    message = refused(aws)

    assert "(auth method 'session-token')" in message
    assert f"access key id ...{session['AccessKeyId'][-4:]}" in message
    assert "key id or its session token is wrong, or the session ended" in message
    assert "`stepframe secret set token`" in message
    assert_no_secret(message, session["SessionToken"], session["SecretAccessKey"])


def test_implicit_keys_that_aws_does_not_know_are_named_by_their_end(
    moto_iam: MotoIam, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMTHESHELL00K9")
    aws = Component(ComponentKind.CONNECTOR, "aws", "aws", AwsConnectorConfig())
    moto_iam.enforce()

    message = refused(aws)

    assert message.startswith(
        "connector 'aws' (auth method 'implicit'): checking the credentials "
        "(sts:GetCallerIdentity): AWS does not accept access key id ...00K9"
    )
    assert "check the keys boto3's default chain" in message
    assert_no_secret(message, "AKIAFROMTHESHELL00K9", os.environ["AWS_SECRET_ACCESS_KEY"])


def test_a_role_whose_trust_policy_names_someone_else(
    moto_iam: MotoIam, secrets: dict[str, str]
) -> None:
    _, key_id, secret_key = moto_iam.user("alice")
    bob, _, _ = moto_iam.user("bob")
    role = moto_iam.role("deployer", trusted=bob)
    aws = keyed(secrets, key_id, secret_key, auth_method="iam-role", role_arn=role)
    moto_iam.enforce()

    message = refused(aws)

    assert message.startswith(
        f"connector 'aws' (auth method 'iam-role'): assuming role {role}: cannot assume role "
        f"{role} (AccessDenied"
    )
    assert "trust policy must allow sts:AssumeRole for this identity" in message
    assert "if it requires an external id, set --external-id" in message


def test_a_role_that_wants_another_external_id(moto_iam: MotoIam, secrets: dict[str, str]) -> None:
    user_arn, key_id, secret_key = moto_iam.user("alice")
    role = moto_iam.role("partner", trusted=user_arn, external_id="contract-42")
    wrong = keyed(
        secrets,
        key_id,
        secret_key,
        auth_method="iam-role",
        role_arn=role,
        external_id="contract-41",
    )
    right = keyed(
        secrets,
        key_id,
        secret_key,
        auth_method="iam-role",
        role_arn=role,
        external_id="contract-42",
    )
    moto_iam.enforce()

    message = refused(wrong)
    assert "the external id sent must match its sts:ExternalId condition" in message

    assert verify(right, [GENERIC]).identity.endswith(":assumed-role/partner/stepframe")


def test_an_expired_session_token(secrets: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    expire_sts_answers(monkeypatch)
    secrets["token"] = "FQoGZXIvYXdzEXPIREDtoken0000"
    aws = keyed(
        secrets,
        "ASIAEXPIREDKEY00EX12",
        "expired-secret-0000",
        auth_method="session-token",
        aws_session_token="token",
    )

    message = refused(aws)

    assert message.startswith(
        "connector 'aws' (auth method 'session-token'): checking the credentials "
        "(sts:GetCallerIdentity): the session token has expired (ExpiredToken: The security "
        "token included in the request is expired)"
    )
    assert "aws sts get-session-token" in message
    assert "`stepframe secret set key-id`, `stepframe secret set secret-key`" in message
    assert "or let the connector make its own with auth method 'sts-token' or 'iam-role'" in message
    assert_no_secret(message, "ASIAEXPIREDKEY00EX12", "expired-secret-0000", secrets["token"])


def test_an_expired_login_under_implicit_says_to_renew_it(monkeypatch: pytest.MonkeyPatch) -> None:
    expire_sts_answers(monkeypatch)
    aws = Component(ComponentKind.CONNECTOR, "aws", "aws", AwsConnectorConfig())

    message = refused(aws)

    assert "(auth method 'implicit')" in message and "session token has expired" in message
    assert "renew the credentials of boto3's default chain" in message


# ---- resources that cannot be reached ----------------------------------------------------


def test_a_missing_bucket_fails_verify_and_lists_every_check(
    secrets: dict[str, str],
) -> None:
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    aws = keyed(secrets, "AKIAEXAMPLEKEY000001", "example-secret-000001")

    with pytest.raises(ConnectorError) as raised:
        verify(
            aws,
            [
                GENERIC,
                ResourceRequest("object_store", f"s3://{BUCKET}/x"),
                ResourceRequest("object_store", "s3://no-such-bucket/y"),
            ],
        )

    lines = str(raised.value).splitlines()
    assert lines[0].startswith("connector 'aws' authenticated as arn:aws:")
    assert lines[0].endswith("but 1 of 2 resource(s) cannot be reached:")
    assert lines[2] == f"  s3 s3://{BUCKET}/x: bucket {BUCKET} readable"
    assert lines[3] == (
        "  FAILED s3 s3://no-such-bucket/y: bucket no-such-bucket does not exist; create it "
        "(`aws s3 mb s3://no-such-bucket`) or fix the artifact store's path"
    )


def test_a_bucket_the_identity_may_not_read(moto_iam: MotoIam, secrets: dict[str, str]) -> None:
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    no_s3 = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["sts:*", "ecr:*"], "Resource": "*"}],
    }
    _, key_id, secret_key = moto_iam.user("carol", policy=no_s3)
    aws = keyed(secrets, key_id, secret_key)
    moto_iam.enforce()

    message = refused(aws, [GENERIC, ResourceRequest("object_store", f"s3://{BUCKET}")])

    assert (
        f"FAILED s3 s3://{BUCKET}: access to bucket {BUCKET} denied; allow s3:ListBucket on "
        f"arn:aws:s3:::{BUCKET} for the identity of connector 'aws'"
    ) in message


def test_a_registry_the_identity_may_not_list(moto_iam: MotoIam, secrets: dict[str, str]) -> None:
    no_ecr = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["sts:*", "s3:*"], "Resource": "*"}],
    }
    _, key_id, secret_key = moto_iam.user("dave", policy=no_ecr)
    aws = keyed(secrets, key_id, secret_key)
    moto_iam.enforce()

    message = refused(aws, [GENERIC, ResourceRequest("container_registry", REGISTRY)])

    assert f"FAILED ecr {REGISTRY}: connector 'aws' (auth method 'secret-key'): " in message
    assert "getting an ECR login" in message and "ecr:GetAuthorizationToken" in message


def test_a_store_that_is_not_on_s3_is_a_failed_check(secrets: dict[str, str]) -> None:
    aws = keyed(secrets, "AKIAEXAMPLEKEY000001", "example-secret-000001")

    message = refused(aws, [GENERIC, ResourceRequest("object_store", "/srv/artifacts")])

    assert "FAILED s3 /srv/artifacts:" in message and "is not an s3://BUCKET" in message


# ---- helpers -----------------------------------------------------------------------------


def test_the_verify_connector_hook_answers_for_aws_connectors_only(
    moto_iam: MotoIam, secrets: dict[str, str]
) -> None:
    from stepframe import load_plugins

    arn, key_id, secret_key = moto_iam.user("carol")
    aws = keyed(secrets, key_id, secret_key, region="us-east-1")
    plugins = load_plugins()

    report = plugins.hooks.verify_connector(aws, [GENERIC])
    # A flavor no installed plugin provides (stepframe-gcp may be installed beside).
    other = Component(ComponentKind.CONNECTOR, "elsewhere", "no-such-cloud")
    with pytest.raises(PluginError, match="no installed plugin can verify connector 'elsewhere'"):
        plugins.hooks.verify_connector(other, [GENERIC])  # never sent to the aws plugin

    assert report.identity == arn
