"""The ``aws`` connector's credentials, each auth method against moto's STS, S3 and ECR.

Expiry is tested with a fake clock handed to `authenticate`: moto issues real temporary
credentials, and the clock jumps to just before they expire instead of the test waiting.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from _moto_helpers import FakeClock, ecr_logins_last

from stepframe import Component, ComponentKind, ConfigError, ConnectorError, ResourceRequest
from stepframe_aws._connector.auth import (
    EXPIRED_LOGIN_SECONDS,
    REFRESH_MARGIN_SECONDS,
    authenticate,
)
from stepframe_aws._connector.config import AwsConnectorConfig
from stepframe_aws._session import client

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/pipelines"
REGISTRY = f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com"
KEY_ID = "AKIAEXAMPLEKEYID7Q3Z"
SECRET_KEY = "wJalrXUtnFEMIexampleSECRETkey0000"
TOKEN = "FQoGZXIvYXdzEXAMPLEsessionTOKEN"
GENERIC = ResourceRequest("generic")


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Secret references to a key pair and token, held in environment variables."""
    monkeypatch.setenv("SF_KEY_ID", KEY_ID)
    monkeypatch.setenv("SF_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("SF_TOKEN", TOKEN)
    return {
        "aws_access_key_id": "env:SF_KEY_ID",
        "aws_secret_access_key": "env:SF_SECRET_KEY",
    }


def connector(name: str = "aws", **config: Any) -> Component:
    return Component(ComponentKind.CONNECTOR, name, "aws", AwsConnectorConfig(**config))


def assumed_roles() -> list[Any]:
    """Every AssumeRole moto answered since the last reset (its server runs in-process)."""
    from moto.sts.models import sts_backends

    return list(sts_backends[ACCOUNT]["aws"].assumed_roles)


def caller_arn(credentials: Any) -> str:
    return str(client("sts", credentials).get_caller_identity()["Arn"])


# ---- each auth method ------------------------------------------------------------------


def test_secret_key_hands_out_the_stored_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moto_endpoint: str
) -> None:
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"prod-key-id": KEY_ID, "prod-secret": SECRET_KEY}))
    secrets.chmod(0o600)
    monkeypatch.setenv("STEPFRAME_SECRETS_FILE", str(secrets))
    aws = connector(
        auth_method="secret-key",
        aws_access_key_id="prod-key-id",
        aws_secret_access_key="prod-secret",
        region="eu-central-1",
        endpoint_url=moto_endpoint,
    )

    credentials = authenticate(aws, GENERIC)

    assert dict(credentials.values) == {
        "aws_access_key_id": KEY_ID,
        "aws_secret_access_key": SECRET_KEY,
        "region": "eu-central-1",
        "endpoint_url": moto_endpoint,
    }
    assert credentials.expires_at is None and credentials.refresh is None
    assert credentials.connector == "aws" and credentials.resource == GENERIC
    assert caller_arn(credentials).startswith(f"arn:aws:sts::{ACCOUNT}:")


def test_session_token_passes_the_users_temporary_credentials_through(
    keys: dict[str, str],
) -> None:
    aws = connector(auth_method="session-token", aws_session_token="env:SF_TOKEN", **keys)

    credentials = authenticate(aws, GENERIC)

    assert credentials.values["aws_access_key_id"] == KEY_ID
    assert credentials.values["aws_session_token"] == TOKEN
    # Nobody said when the user's token expires: nothing to refresh it with either.
    assert credentials.expires_at is None and credentials.refresh is None


def test_sts_token_trades_the_keys_for_a_session_token(keys: dict[str, str]) -> None:
    aws = connector(auth_method="sts-token", session_duration_seconds=1800, **keys)
    before = time.time()

    credentials = authenticate(aws, GENERIC)

    assert credentials.values["aws_access_key_id"] != KEY_ID
    assert credentials.values["aws_session_token"]
    assert credentials.expires_at is not None
    assert before + 1800 - 60 <= credentials.expires_at <= time.time() + 1800 + 60
    assert credentials.refresh is not None
    renewed = credentials.refresh()
    assert renewed is not credentials
    assert renewed.expires_at is not None and renewed.expires_at >= credentials.expires_at


def test_iam_role_assumes_the_role_as_configured(keys: dict[str, str]) -> None:
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
    )
    aws = connector(
        auth_method="iam-role",
        role_arn=ROLE,
        role_session_name="nightly-train",
        external_id="ext-4711",
        session_duration_seconds=900,
        session_policy=policy,
        **keys,
    )

    credentials = authenticate(aws, GENERIC)

    assert caller_arn(credentials) == f"arn:aws:sts::{ACCOUNT}:assumed-role/pipelines/nightly-train"
    [assumed] = assumed_roles()
    assert assumed.role_arn == ROLE
    assert assumed.external_id == "ext-4711"
    assert json.loads(assumed.policy) == json.loads(policy)
    assert credentials.values["aws_access_key_id"] == assumed.access_key_id
    assert credentials.expires_at is not None
    assert abs(credentials.expires_at - (time.time() + 900)) < 60


def test_implicit_uses_boto3s_default_chain() -> None:
    # The conftest put fake keys and a region into the environment, as a user's shell would.
    credentials = authenticate(connector(), GENERIC)

    assert credentials.values["aws_access_key_id"] == os.environ["AWS_ACCESS_KEY_ID"]
    assert credentials.values["region"] == os.environ["AWS_DEFAULT_REGION"]
    assert credentials.expires_at is None


def test_implicit_reads_a_named_profile_and_can_assume_a_role(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "credentials").write_text(
        f"[dev]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    (tmp_path / "config").write_text("[profile dev]\nregion = ap-south-1\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.delenv("AWS_DEFAULT_REGION")  # it would win over the profile's region

    plain = authenticate(connector(profile="dev"), GENERIC)
    assert plain.values["aws_access_key_id"] == KEY_ID
    assert plain.values["region"] == "ap-south-1"

    with_role = authenticate(connector("assumer", profile="dev", role_arn=ROLE), GENERIC)
    assert caller_arn(with_role).endswith(":assumed-role/pipelines/stepframe")
    assert with_role.expires_at is not None and with_role.refresh is not None


def test_implicit_names_a_missing_profile_and_how_to_create_it() -> None:
    with pytest.raises(ConfigError) as raised:
        authenticate(connector(profile="nosuch"), GENERIC)

    message = str(raised.value)
    assert "profile 'nosuch'" in message
    assert "aws configure --profile nosuch" in message


def test_implicit_without_any_credentials_says_where_it_looked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/stepframe-test-config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role here

    with pytest.raises(ConnectorError) as raised:
        authenticate(connector(), GENERIC)

    message = str(raised.value)
    assert "connector 'aws' (auth method 'implicit')" in message
    assert "no AWS credentials" in message and "secret-key" in message


def test_a_missing_secret_names_the_field_and_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEPFRAME_SECRETS_FILE", str(tmp_path / "none.json"))
    aws = connector(
        auth_method="secret-key", aws_access_key_id="team-key", aws_secret_access_key="team-sk"
    )

    with pytest.raises(ConfigError) as raised:
        authenticate(aws, GENERIC)

    message = str(raised.value)
    assert "connector 'aws', aws_access_key_id" in message
    assert "stepframe secret set team-key" in message


# ---- object stores and registries --------------------------------------------------------


def test_an_object_store_gets_the_connectors_aws_credentials(keys: dict[str, str]) -> None:
    aws = connector(auth_method="iam-role", role_arn=ROLE, **keys)
    store = ResourceRequest("object_store", "s3://artifacts-bucket/team")

    generic = authenticate(aws, GENERIC)
    for_store = authenticate(aws, store)

    assert for_store.resource == store
    assert dict(for_store.values) == dict(generic.values)
    assert for_store.expires_at == generic.expires_at
    assert len(assumed_roles()) == 1, "the store should share the connector's role session"
    s3 = client("s3", for_store)
    s3.create_bucket(Bucket="artifacts-bucket")
    s3.put_object(Bucket="artifacts-bucket", Key="team/x", Body=b"1")


def test_an_object_store_that_is_not_s3_is_refused(keys: dict[str, str]) -> None:
    aws = connector(auth_method="secret-key", **keys)

    with pytest.raises(ConfigError, match=r"S3 only; '/tmp/store' is not an s3://"):
        authenticate(aws, ResourceRequest("object_store", "/tmp/store"))


def test_a_registry_gets_a_docker_login_from_the_registrys_own_region(
    keys: dict[str, str], moto_endpoint: str
) -> None:
    aws = connector(auth_method="secret-key", region="us-east-1", **keys)
    resource = ResourceRequest("container_registry", REGISTRY)

    with recording(moto_endpoint) as requests:
        login = authenticate(aws, resource)

    assert dict(login.values) == {
        "username": "AWS",
        "password": f"{ACCOUNT}-auth-token",  # what moto's ECR issues for the account
        "registry": f"https://{REGISTRY}",
    }
    [request] = [
        r for r in requests() if "GetAuthorizationToken" in r["headers"].get("X-Amz-Target", "")
    ]
    # Signed for the registry's region (eu-west-1), not the connector's (us-east-1).
    assert "/eu-west-1/ecr/aws4_request" in request["headers"]["Authorization"]
    assert json.loads(request["body"]) == {"registryIds": [ACCOUNT]}


def test_a_registry_login_expires_with_the_credentials_that_made_it(
    keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ecr_logins_last(12 * 3600, monkeypatch)  # as ECR's do
    registry = ResourceRequest("container_registry", REGISTRY)
    role = connector(auth_method="iam-role", role_arn=ROLE, session_duration_seconds=900, **keys)
    base = authenticate(role, GENERIC)
    login = authenticate(role, registry)
    assert login.expires_at == base.expires_at

    # With long-lived keys the login lasts as long as ECR says.
    clock = FakeClock()
    plain = connector("plain", auth_method="secret-key", **keys)
    login = authenticate(plain, registry, clock=clock)
    assert login.expires_at == pytest.approx(clock.now + 12 * 3600, abs=60)
    assert login.refresh is not None
    assert authenticate(plain, registry, clock=clock) is login  # cached until it is due
    assert login.fresh() is login


def test_a_registry_login_already_expired_is_not_trusted_for_long(keys: dict[str, str]) -> None:
    """An expiresAt in the past (moto's logins all expire 2015-01-01; on AWS, a clock
    hours off) is kept a minute at most, then asked for again, not taken for 12 hours."""
    clock = FakeClock()
    plain = connector("plain", auth_method="secret-key", **keys)
    registry = ResourceRequest("container_registry", REGISTRY)
    login = authenticate(plain, registry, clock=clock)
    assert login.expires_at is not None
    assert login.expires_at <= clock.now + EXPIRED_LOGIN_SECONDS
    assert authenticate(plain, registry, clock=clock) is not login  # asked again


def test_an_unknown_resource_kind_is_refused(keys: dict[str, str]) -> None:
    with pytest.raises(ConnectorError, match="not 'queue'"):
        authenticate(connector(auth_method="secret-key", **keys), ResourceRequest("queue"))


# ---- caching and refresh -----------------------------------------------------------------


def test_credentials_are_cached_until_they_are_due_then_renewed(keys: dict[str, str]) -> None:
    clock = FakeClock()
    aws = connector(auth_method="iam-role", role_arn=ROLE, session_duration_seconds=900, **keys)

    first = authenticate(aws, GENERIC, clock=clock)
    assert authenticate(aws, GENERIC, clock=clock) is first
    assert first.expires_at is not None
    clock.now = first.expires_at - REFRESH_MARGIN_SECONDS - 1
    assert authenticate(aws, GENERIC, clock=clock) is first
    assert len(assumed_roles()) == 1

    clock.advance(2)  # now inside the margin: a new session, not the old one again
    second = authenticate(aws, GENERIC, clock=clock)
    assert second is not first
    assert second.values["aws_access_key_id"] != first.values["aws_access_key_id"]
    assert len(assumed_roles()) == 2
    assert caller_arn(second).endswith("assumed-role/pipelines/stepframe")


def test_refresh_renews_even_when_the_cache_still_holds_the_same_credentials(
    keys: dict[str, str],
) -> None:
    aws = connector(auth_method="iam-role", role_arn=ROLE, **keys)
    store = ResourceRequest("object_store", "s3://bucket-a")
    for_store = authenticate(aws, store)
    assert for_store.refresh is not None

    renewed = for_store.refresh()

    assert renewed.resource == store
    assert renewed.values["aws_access_key_id"] != for_store.values["aws_access_key_id"]
    assert len(assumed_roles()) == 2
    # ...and the renewed session is what everyone gets from now on.
    assert authenticate(aws, GENERIC).values == renewed.values


def test_threads_refreshing_together_make_one_call(keys: dict[str, str]) -> None:
    aws = connector(auth_method="iam-role", role_arn=ROLE, **keys)
    old = authenticate(aws, GENERIC)
    assert old.refresh is not None
    refresh = old.refresh
    results: list[Any] = []
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        results.append(refresh())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(assumed_roles()) == 2, "one initial AssumeRole and one refresh"
    assert len({id(result) for result in results}) == 1


def test_the_cache_is_per_connector_config_and_secret_value(
    keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    aws = connector(auth_method="iam-role", role_arn=ROLE, **keys)
    first = authenticate(aws, GENERIC)
    longer = connector(auth_method="iam-role", role_arn=ROLE, session_duration_seconds=7200, **keys)
    assert authenticate(longer, GENERIC) is not first
    assert (
        authenticate(connector("other", auth_method="iam-role", role_arn=ROLE, **keys), GENERIC)
        is not first
    )

    monkeypatch.setenv("SF_SECRET_KEY", "rotated-secret-access-key-0001")
    assert authenticate(aws, GENERIC) is not first, (
        "a rotated secret must not reuse the old session"
    )
    assert len(assumed_roles()) == 4


def test_secret_values_never_show_in_reprs_or_errors(
    keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    aws = connector(auth_method="session-token", aws_session_token="env:SF_TOKEN", **keys)
    credentials = authenticate(aws, GENERIC)
    shown = " ".join([repr(credentials), str(credentials), repr(aws), repr(aws.config)])
    for secret in (KEY_ID, SECRET_KEY, TOKEN):
        assert secret not in shown

    monkeypatch.delenv("SF_TOKEN")
    with pytest.raises(ConfigError) as raised:
        authenticate(aws, GENERIC)
    assert "SF_TOKEN" in str(raised.value)
    for secret in (KEY_ID, SECRET_KEY, TOKEN):
        assert secret not in str(raised.value)


# ---- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"auth_method": "secret-key"}, "needs aws_access_key_id, aws_secret_access_key"),
        (
            {"auth_method": "iam-role", "aws_access_key_id": "k", "aws_secret_access_key": "s"},
            "needs role_arn",
        ),
        (
            {
                "auth_method": "session-token",
                "aws_access_key_id": "k",
                "aws_secret_access_key": "s",
            },
            "needs aws_session_token",
        ),
        ({"aws_access_key_id": "k"}, "use auth_method 'secret-key'"),
        (
            {
                "auth_method": "secret-key",
                "aws_access_key_id": "k",
                "aws_secret_access_key": "s",
                "role_arn": ROLE,
            },
            "use auth_method 'iam-role'",
        ),
        ({"external_id": "x"}, "apply only when role_arn is set"),
        ({"session_duration_seconds": 60}, "between 900 and 43200"),
        ({"role_arn": "pipelines"}, "not a role ARN"),
        ({"role_session_name": "has space"}, "not a role session name"),
        ({"role_arn": ROLE, "session_policy": "s3:*"}, "JSON policy document"),
        ({"auth_method": "password"}, "auth_method"),
    ],
)
def test_a_config_that_cannot_work_is_refused_with_the_reason(
    config: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ValueError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        AwsConnectorConfig(**config)


# ---- helpers -----------------------------------------------------------------------------


class recording:
    """moto's request recorder, on for the block; calling the result lists the requests."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _call(self, path: str, method: str = "POST") -> bytes:
        request = urllib.request.Request(f"{self.endpoint}/moto-api/recorder/{path}", method=method)
        with self.opener.open(request) as answer:
            return bytes(answer.read())

    def __enter__(self) -> Any:
        self._call("reset-recording")
        self._call("start-recording")
        return self.requests

    def __exit__(self, *exc: object) -> None:
        self._call("stop-recording")

    def requests(self) -> list[dict[str, Any]]:
        import base64

        lines = self._call("download-recording", method="GET").decode().splitlines()
        found = []
        for line in lines:
            entry = json.loads(line)
            body = entry.get("body") or ""
            if entry.get("body_encoded"):
                body = base64.b64decode(body).decode()
            found.append({**entry, "body": body})
        return found
