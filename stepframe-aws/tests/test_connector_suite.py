"""The conformance kit's connector suite, run against the ``aws`` flavor's auth methods.

Each class is one configuration of the installed ``aws`` plugin (through its entry point,
as the CLI loads it) against moto: the temporary-credential methods declare
``supports_refresh``; long-lived keys hand out no expiry for AWS itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

import pytest

from stepframe import Component, ComponentKind, ResourceRequest
from stepframe.testing import ConnectorSuite
from stepframe_aws._connector.auth import clear_cache
from stepframe_aws._connector.config import AwsConnectorConfig

ACCOUNT = "123456789012"
KEY_ID = "AKIASUITEKEYID000001"
SECRET_KEY = "suite-secret-access-key-000001"
TOKEN = "FQoGZXIvYXdzSUITEsessionTOKEN0001"
ALL_KINDS = ("generic", "object_store", "container_registry")


class _AwsSuite(ConnectorSuite):
    flavor = "aws"
    plugin_names = ("aws",)
    resource_kinds: ClassVar[tuple[str, ...]] = ALL_KINDS
    config: ClassVar[dict[str, Any]] = {}

    @pytest.fixture(autouse=True)
    def _keys(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        monkeypatch.setenv("SUITE_KEY_ID", KEY_ID)
        monkeypatch.setenv("SUITE_SECRET_KEY", SECRET_KEY)
        monkeypatch.setenv("SUITE_TOKEN", TOKEN)
        clear_cache()
        yield
        clear_cache()

    def make_connector(self, plugins: Any) -> Component:
        return Component(ComponentKind.CONNECTOR, "suite", "aws", AwsConnectorConfig(**self.config))

    def make_resource(self, kind: str) -> ResourceRequest:
        if kind == "object_store":
            return ResourceRequest(kind, "s3://suite-bucket/stepframe")
        if kind == "container_registry":
            return ResourceRequest(kind, f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com")
        return ResourceRequest(kind)

    def secret_values(self) -> Iterable[str]:
        return (KEY_ID, SECRET_KEY, TOKEN)


_KEYS = {"aws_access_key_id": "env:SUITE_KEY_ID", "aws_secret_access_key": "env:SUITE_SECRET_KEY"}


class TestIamRoleConnector(_AwsSuite):
    supports_refresh = True
    config: ClassVar[dict[str, Any]] = {
        "auth_method": "iam-role",
        "role_arn": f"arn:aws:iam::{ACCOUNT}:role/suite",
        "external_id": "suite-external",
        "session_duration_seconds": 900,
        **_KEYS,
    }


class TestStsTokenConnector(_AwsSuite):
    supports_refresh = True
    config: ClassVar[dict[str, Any]] = {"auth_method": "sts-token", **_KEYS}


class TestImplicitRoleConnector(_AwsSuite):
    supports_refresh = True
    config: ClassVar[dict[str, Any]] = {"role_arn": f"arn:aws:iam::{ACCOUNT}:role/suite"}


class TestSecretKeyConnector(_AwsSuite):
    # Long-lived keys do not expire; only their ECR logins would need refreshing.
    supports_refresh = False
    config: ClassVar[dict[str, Any]] = {"auth_method": "secret-key", **_KEYS}


class TestSessionTokenConnector(_AwsSuite):
    supports_refresh = False
    resource_kinds = ("generic", "object_store")
    config: ClassVar[dict[str, Any]] = {
        "auth_method": "session-token",
        "aws_session_token": "env:SUITE_TOKEN",
        **_KEYS,
    }
