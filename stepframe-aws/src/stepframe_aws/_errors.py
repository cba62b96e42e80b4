"""botocore's exceptions turned into stepframe errors whose messages say what to fix.

Every AWS call in this plugin goes through `aws_errors`, so a user sees one line naming
the operation, the resource and the fix, never a botocore traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from stepframe import ConnectorError, StepframeError

__all__ = ["AUTH_ERROR_CODES", "aws_errors", "error_code"]

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


def error_code(error: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (``""`` for anything else)."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def _message(error: BaseException) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Message", "")) or str(error)
    return str(error)


@contextmanager
def aws_errors(doing: str) -> Iterator[None]:
    """Turn botocore errors raised in the block into stepframe errors.

    :param doing: what the block does, for the message (``"creating training job X"``).
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
        code = error_code(error)
        if code in AUTH_ERROR_CODES:
            raise ConnectorError(
                f"{doing}: AWS refused the credentials ({code}: {_message(error)}); check the "
                "connector's keys or role (`stepframe connector verify NAME`)"
            ) from None
        raise StepframeError(f"{doing}: AWS answered {code}: {_message(error)}") from None
    except NoCredentialsError:
        raise ConnectorError(
            f"{doing}: no AWS credentials found; give the component a connector "
            "(`stepframe connector register aws --flavor aws ...`) or configure boto3's "
            "default chain (AWS_PROFILE, ~/.aws/credentials)"
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
