"""Configuration of the ``aws`` connector (attrs only: no boto3 at plugin load)."""

from __future__ import annotations

import re

import attrs

from stepframe import SecretRef

__all__ = [
    "AUTH_METHODS",
    "MAX_SESSION_SECONDS",
    "MIN_SESSION_SECONDS",
    "AwsConnectorConfig",
]

AUTH_METHODS = ("implicit", "secret-key", "sts-token", "iam-role", "session-token")

# STS's own limits for DurationSeconds: checked here so a typo fails at `register`, not
# in the middle of a run.
MIN_SESSION_SECONDS = 900
MAX_SESSION_SECONDS = 43200

# What each method needs, and what it cannot use: a field set for a method that ignores
# it is almost always a mistake (keys under `implicit`, a role under `secret-key`).
_NEEDS: dict[str, tuple[str, ...]] = {
    "implicit": (),
    "secret-key": ("aws_access_key_id", "aws_secret_access_key"),
    "sts-token": ("aws_access_key_id", "aws_secret_access_key"),
    "iam-role": ("aws_access_key_id", "aws_secret_access_key", "role_arn"),
    "session-token": ("aws_access_key_id", "aws_secret_access_key", "aws_session_token"),
}
_KEYS = ("aws_access_key_id", "aws_secret_access_key")
_REFUSES: dict[str, tuple[str, ...]] = {
    "implicit": (*_KEYS, "aws_session_token"),
    "secret-key": ("aws_session_token", "role_arn", "profile"),
    "sts-token": ("aws_session_token", "role_arn", "profile"),
    "iam-role": ("aws_session_token", "profile"),
    "session-token": ("role_arn", "profile"),
}
_ROLE_ONLY = ("external_id", "session_policy")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")


def _duration(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not MIN_SESSION_SECONDS <= value <= MAX_SESSION_SECONDS:
        raise ValueError(
            f"must be between {MIN_SESSION_SECONDS} and {MAX_SESSION_SECONDS} seconds "
            f"(STS's limits), not {value}"
        )


def _session_name(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not _SESSION_NAME.match(value):
        raise ValueError(
            f"{value!r} is not a role session name: 2-64 characters of letters, digits and +=,.@-_"
        )


def _role_arn(instance: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and not _ROLE_ARN.match(value):
        raise ValueError(f"{value!r} is not a role ARN; expected arn:aws:iam::ACCOUNT:role/NAME")


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
    role_arn: str | None = attrs.field(default=None, validator=_role_arn)
    role_session_name: str = attrs.field(default="stepframe", validator=_session_name)
    external_id: str | None = None
    session_duration_seconds: int = attrs.field(default=3600, validator=_duration)
    session_policy: str | None = None
    aws_access_key_id: SecretRef | None = None
    aws_secret_access_key: SecretRef | None = None
    aws_session_token: SecretRef | None = None

    def __attrs_post_init__(self) -> None:
        # Cross-field rules: each names the method, the field and what to do instead.
        method = self.auth_method
        missing = [name for name in _NEEDS[method] if getattr(self, name) is None]
        if missing:
            raise ValueError(
                f"auth_method {method!r} needs {', '.join(missing)} (secrets by name: "
                "`stepframe secret set NAME`, then --aws-access-key-id NAME ...)"
            )
        refused = [name for name in _REFUSES[method] if getattr(self, name) is not None]
        if self.role_arn is None:
            refused += [name for name in _ROLE_ONLY if getattr(self, name) is not None]
        if refused:
            raise ValueError(
                f"auth_method {method!r} does not use {', '.join(refused)}; "
                + _instead(method, refused)
            )
        if self.session_policy is not None and not self.session_policy.lstrip().startswith("{"):
            raise ValueError("session_policy must be a JSON policy document ({...})")

    @property
    def assumes_role(self) -> bool:
        """Whether this connector assumes ``role_arn`` on top of its base credentials."""
        return self.role_arn is not None


def _instead(method: str, refused: list[str]) -> str:
    if set(refused) <= set(_ROLE_ONLY):
        return "external_id and session_policy apply only when role_arn is set"
    if "role_arn" in refused:
        return "to assume a role from keys use auth_method 'iam-role'"
    if method == "implicit":
        return "to authenticate with stored keys use auth_method 'secret-key' (or 'iam-role')"
    if "aws_session_token" in refused:
        return "temporary keys with a token use auth_method 'session-token'"
    if "profile" in refused:
        return "a named profile is read by auth_method 'implicit'"
    return "remove them"
