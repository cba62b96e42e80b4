"""Configuration of the ``aws`` connector (attrs only: no boto3 at plugin load)."""

from __future__ import annotations

import attrs

from stepframe import SecretRef

__all__ = ["AUTH_METHODS", "AwsConnectorConfig"]

AUTH_METHODS = ("implicit", "secret-key", "sts-token", "iam-role", "session-token")


@attrs.frozen
class AwsConnectorConfig:
    """How the ``aws`` connector authenticates.

    :param auth_method: ``implicit`` (boto3's default chain or ``profile``, then
        ``role_arn`` if set), ``secret-key`` (long-lived keys), ``sts-token`` (keys traded
        for a session token), ``iam-role`` (keys used to assume ``role_arn``) or
        ``session-token`` (temporary keys and token the user already has).
    :param region: the AWS region; default the environment's (``AWS_DEFAULT_REGION``).
    :param endpoint_url: another endpoint for every service (a VPC endpoint, a test server).
    :param profile: for ``implicit``: a named profile from ``~/.aws/config``.
    :param role_arn: the role to assume (``iam-role``, optionally ``implicit``).
    :param role_session_name: the session name the assumed role shows in CloudTrail.
    :param external_id: the external id the role's trust policy asks for, if any.
    :param session_duration_seconds: how long temporary credentials last (900-43200).
    :param session_policy: a JSON policy that narrows the assumed role's permissions.
    :param aws_access_key_id: secret name (or ``env:VAR``) of the access key id.
    :param aws_secret_access_key: secret name (or ``env:VAR``) of the secret access key.
    :param aws_session_token: secret name (or ``env:VAR``) of the session token
        (``session-token``).
    """

    auth_method: str = attrs.field(default="implicit", validator=attrs.validators.in_(AUTH_METHODS))
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    role_arn: str | None = None
    role_session_name: str = "stepframe"
    external_id: str | None = None
    session_duration_seconds: int = 3600
    session_policy: str | None = None
    aws_access_key_id: SecretRef | None = None
    aws_secret_access_key: SecretRef | None = None
    aws_session_token: SecretRef | None = None
