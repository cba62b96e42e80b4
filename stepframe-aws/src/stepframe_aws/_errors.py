"""botocore's exceptions turned into stepframe errors whose messages say what to fix.

Every AWS call in this plugin goes through `aws_errors`, so a user sees one line naming
the operation, the resource and the fix, never a botocore traceback.  Calls the connector
makes pass a `CredentialSource`, so a refused credential is explained in terms of the
connector's own configuration: its auth method, the last four characters of the key id,
the role, and the secret to update.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import attrs

from stepframe import ConnectorError, StepframeError

__all__ = [
    "AUTH_ERROR_CODES",
    "CredentialSource",
    "aws_errors",
    "error_code",
    "key_hint",
    "scrub",
    "transient_problem",
]

# Codes that mean "these credentials are wrong or no longer valid", not "this call failed".
AUTH_ERROR_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "InvalidAccessKeyId",
        "AuthFailure",
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
    }
)


# botocore's own list of throttling codes (its standard retry mode retries these).
_THROTTLING = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)

_UNKNOWN_KEY = frozenset(
    {"InvalidClientTokenId", "InvalidAccessKeyId", "UnrecognizedClientException", "AuthFailure"}
)
_BAD_SECRET = frozenset({"SignatureDoesNotMatch"})
_EXPIRED = frozenset({"ExpiredToken", "ExpiredTokenException"})
_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})

# Access key ids (AKIA... long-lived, ASIA... temporary) in AWS's messages are cut to their
# last four characters: the id is not the secret, but logs should not collect it either.
_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,124}\b")


def key_hint(access_key_id: str | None) -> str | None:
    """``...ABCD``: the most of an access key id a message may show."""
    if not access_key_id:
        return None
    return "..." + access_key_id[-4:]


def scrub(text: str) -> str:
    """``text`` with any access key id in it shortened to its last four characters."""
    return _KEY_ID.sub(lambda found: "..." + found.group(0)[-4:], text)


@attrs.frozen
class CredentialSource:
    """Where a connector's credentials came from, for error messages; holds no secret.

    :param connector: the connector component's name.
    :param method: its auth method (``secret-key``, ``iam-role``, ...).
    :param key_hint: the last characters of the access key id (`key_hint`), if known.
    :param role_arn: the role the connector assumes, if any.
    :param external_id_set: whether an external id is sent with AssumeRole.
    :param profile: the named profile (``implicit``), if any.
    :param secret_names: the config fields that name secrets, to the names they hold
        (``aws_access_key_id`` -> ``prod-key-id``), so a message can say what to update.
    """

    connector: str
    method: str
    key_hint: str | None = None
    role_arn: str | None = None
    external_id_set: bool = False
    profile: str | None = None
    secret_names: tuple[tuple[str, str], ...] = ()

    @property
    def who(self) -> str:
        return f"connector {self.connector!r} (auth method {self.method!r})"

    def secret(self, field: str) -> str | None:
        return dict(self.secret_names).get(field)

    def _store(self, *fields: str) -> str:
        """How to store new values for ``fields``: `stepframe secret set` or the variable."""
        steps = []
        for field in fields:
            name = self.secret(field)
            if name is None:
                continue
            if name.startswith("env:"):
                steps.append(f"set {name[4:]}")
            else:
                steps.append(f"`stepframe secret set {name}`")
        return ", ".join(steps) if steps else "update the connector's secrets"

    def _chain(self) -> str:
        if self.profile:
            return f"profile {self.profile!r}"
        return "boto3's default chain (AWS_ACCESS_KEY_ID, AWS_PROFILE, ~/.aws, the instance role)"

    def refused(self, doing: str, code: str, message: str, operation: str) -> ConnectorError:
        """The error for AWS refusing these credentials with ``code`` during ``doing``."""
        key = f"access key id {self.key_hint}" if self.key_hint else "the access key id"
        detail = f"({code}: {scrub(message)})" if message else f"({code})"
        if operation == "AssumeRole" and code in _DENIED:
            external = (
                "the external id sent must match its sts:ExternalId condition"
                if self.external_id_set
                else "if it requires an external id, set --external-id"
            )
            return ConnectorError(
                f"{self.who}: {doing}: cannot assume role {self.role_arn} {detail}. The "
                f"role's trust policy must allow sts:AssumeRole for this identity ({external}), "
                "and the identity's own policy must allow sts:AssumeRole on the role"
            )
        if code in _EXPIRED:
            if self.method == "session-token":
                fix = (
                    "get new temporary credentials (`aws sts get-session-token`) and store them: "
                    + self._store("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
                    + "; or let the connector make its own with auth method 'sts-token' or "
                    "'iam-role'"
                )
            elif self.method == "implicit":
                fix = f"renew the credentials of {self._chain()} (`aws sso login`, new keys)"
            else:
                fix = "run the command again; the connector asks for a new session token"
            return ConnectorError(
                f"{self.who}: {doing}: the session token has expired {detail}; {fix}"
            )
        if code in _UNKNOWN_KEY:
            if self.method == "session-token":
                fix = (
                    "the key id or its session token is wrong, or the session ended; store "
                    "current temporary credentials: "
                    + self._store("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
                )
            elif self.method == "implicit":
                fix = f"check the keys {self._chain()} gives"
            elif self.role_arn is not None and operation != "AssumeRole":
                fix = f"the temporary credentials of role {self.role_arn} were refused; run again"
            else:
                fix = (
                    "it was deleted, deactivated or mistyped; create a key in IAM and store "
                    "it: " + self._store("aws_access_key_id", "aws_secret_access_key")
                )
            return ConnectorError(f"{self.who}: {doing}: AWS does not accept {key} {detail}; {fix}")
        if code in _BAD_SECRET:
            where = (
                self._chain() if self.method == "implicit" else self._store("aws_secret_access_key")
            )
            return ConnectorError(
                f"{self.who}: {doing}: the secret access key does not belong to {key} {detail}; "
                f"store the key's own secret ({where})"
            )
        if code == "RequestExpired":
            return ConnectorError(
                f"{self.who}: {doing}: AWS says the request was signed at the wrong time "
                f"{detail}; this machine's clock is off, sync it (NTP)"
            )
        return ConnectorError(
            f"{self.who}: {doing}: access denied {detail}; give the identity permission for "
            f"{operation or 'this call'}"
        )


def error_code(error: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (``""`` for anything else)."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def transient_problem(error: BaseException) -> str | None:
    """What passing trouble ``error`` is, or None when it is not passing.

    :return: ``"throttling"`` (a throttling code or HTTP 429), ``"unavailable"`` (a 5xx
        answer) or ``"unreachable"`` (no answer: connection refused, reset or timed out);
        None for anything else (a refusal, a missing resource, a bad request), which
        trying again will not mend.
    """
    from botocore.exceptions import (
        ClientError,
        HTTPClientError,
    )
    from botocore.exceptions import (
        ConnectionError as BotoConnectionError,
    )

    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if error_code(error) in _THROTTLING or status == 429:
            return "throttling"
        if status >= 500:
            return "unavailable"
        return None
    if isinstance(error, (BotoConnectionError, HTTPClientError)):
        return "unreachable"
    return None


def _message(error: BaseException) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Message", "")) or str(error)
    return str(error)


_XML_CODE = re.compile(r"<Code>([^<]{1,100})</Code>")
_XML_MESSAGE = re.compile(r"<Message>([^<]{0,500})</Message>")
_MAX_MESSAGE = 400


def _explained(error: BaseException) -> tuple[str, str]:
    """The error's code and message, also when botocore could not parse the answer.

    An answer in a format the service's protocol does not expect (an XML error from a JSON
    service, a proxy's HTML page) leaves botocore with only the HTTP status as the code and
    the raw body as the message.  Read the code out of the body where there is one, and
    take a bare 403 for what it is, so the message still says what to fix.
    """
    code, message = error_code(error), _message(error)
    if code.isdigit():
        found_code, found_message = _XML_CODE.search(message), _XML_MESSAGE.search(message)
        if found_code is not None:
            code = found_code.group(1).strip()
            message = found_message.group(1).strip() if found_message is not None else ""
        elif code == "403":
            code = "AccessDenied"
    message = " ".join(message.split())
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "..."
    return code, message


@contextmanager
def aws_errors(doing: str, *, source: CredentialSource | None = None) -> Iterator[None]:
    """Turn botocore errors raised in the block into stepframe errors.

    :param doing: what the block does, for the message (``"creating training job X"``).
    :param source: the connector's credentials in use, to explain a refusal in terms of
        its configuration; without it a refusal gets a general message.
    """
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
    )

    try:
        yield
    except ClientError as error:
        code, message = _explained(error)
        if code in AUTH_ERROR_CODES or code == "RequestExpired":
            if source is not None:
                operation = str(getattr(error, "operation_name", "") or "")
                raise source.refused(doing, code, message, operation) from None
            raise ConnectorError(
                f"{doing}: AWS refused the credentials ({code}: {scrub(message)}); "
                "check the connector's keys or role (`stepframe connector verify NAME`)"
            ) from None
        raise StepframeError(f"{doing}: AWS answered {code}: {scrub(message)}") from None
    except NoCredentialsError:
        raise ConnectorError(
            f"{doing}: no AWS credentials found; give the component a connector "
            "(`stepframe connector register aws --flavor aws ...`) or configure boto3's "
            "default chain (AWS_PROFILE, ~/.aws/credentials); a job in a container uses "
            "its own role, never the connector's keys"
        ) from None
    except NoRegionError:
        raise ConnectorError(
            f"{doing}: no AWS region; set the connector's region (`--region eu-west-1`) or "
            "AWS_DEFAULT_REGION"
        ) from None
    except EndpointConnectionError as error:
        raise StepframeError(
            f"{doing}: cannot reach {getattr(error, 'kwargs', {}).get('endpoint_url', 'AWS')}; "
            "check the network and the connector's region and endpoint_url"
        ) from None
    except BotoCoreError as error:
        raise StepframeError(f"{doing}: {error}") from None
