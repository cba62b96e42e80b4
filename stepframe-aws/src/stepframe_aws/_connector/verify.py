"""``stepframe connector verify`` for the ``aws`` connector: who it is, what it reaches.

Every check is one cheap read: sts:GetCallerIdentity for the identity, s3:HeadBucket per
object store, ecr:GetAuthorizationToken and ecr:DescribeRepositories (one result) per
registry; iam:GetRole and iam:SimulatePrincipalPolicy per SageMaker execution role
(`role_check`, for ``ResourceRequest("execution_role", ARN)``).  Nothing is created or
changed.
"""

from __future__ import annotations

import time
from typing import Any

import attrs

from stepframe import (
    Component,
    ConnectorError,
    ConnectorReport,
    Credentials,
    ResourceRequest,
    StepframeError,
)
from stepframe_aws._connector.auth import Clock, authenticate, credential_source
from stepframe_aws._connector.role_check import RESOURCE_KIND, check_execution_role
from stepframe_aws._ecr.hosts import registry_account_region, registry_host
from stepframe_aws._errors import CredentialSource, aws_errors, error_code, key_hint

__all__ = ["verify"]


def verify(
    connector: Component, resources: list[ResourceRequest], *, clock: Clock = time.time
) -> ConnectorReport:
    """Authenticate through ``connector`` and check each resource, read-only.

    :param connector: an ``aws`` connector component.
    :param resources: what the components using the connector need it for.
    :param clock: UNIX time now (tests pass a fake one).
    :return: the caller's ARN and one line per check.
    :raises ConnectorError: when authentication fails (naming the method, the key, the
        role and the fix), or when any resource cannot be reached (listing each).
    """
    source = credential_source(connector)
    generic = authenticate(connector, ResourceRequest("generic"), clock=clock)
    if source.method == "implicit" and source.role_arn is None:
        # The keys boto3's chain found: say which, should AWS refuse them.
        source = attrs.evolve(source, key_hint=key_hint(generic.values["aws_access_key_id"]))
    arn, account = _identity(generic, source)
    checks = [_credentials_line(source, account, generic)]
    failures = []
    for resource in resources:
        if resource.kind == "generic":
            continue
        label = _label(resource)
        try:
            line = _check(connector, resource, generic, source, clock, arn)
            checks.append(f"{label}: {line}")
        except StepframeError as error:
            failures.append(f"{label}: {error}")
    if failures:
        lines = "\n  ".join([*checks, *(f"FAILED {line}" for line in failures)])
        raise ConnectorError(
            f"connector {connector.name!r} authenticated as {arn}, but "
            f"{len(failures)} of {len(resources) - _generic_count(resources)} resource(s) "
            f"cannot be reached:\n  {lines}"
        )
    return ConnectorReport(identity=arn, checks=tuple(checks))


def _identity(credentials: Credentials, source: CredentialSource) -> tuple[str, str]:
    from stepframe_aws._session import client

    with aws_errors("checking the credentials (sts:GetCallerIdentity)", source=source):
        answer = client("sts", credentials).get_caller_identity()
    return str(answer["Arn"]), str(answer["Account"])


def _credentials_line(source: CredentialSource, account: str, credentials: Credentials) -> str:
    parts = [f"aws credentials ({source.method}"]
    if source.role_arn:
        parts.append(f", role {source.role_arn}")
    parts.append(f"): account {account}")
    region = credentials.values.get("region")
    if region:
        parts.append(f", region {region}")
    if credentials.expires_at is not None:
        parts.append(f", temporary until {_when(credentials.expires_at)}")
    return "".join(parts)


def _label(resource: ResourceRequest) -> str:
    if resource.kind == "object_store":
        return f"s3 {resource.resource_id or '(no path)'}"
    if resource.kind == "container_registry":
        return f"ecr {resource.resource_id or '(no uri)'}"
    if resource.kind == RESOURCE_KIND:
        return f"sagemaker execution role {resource.resource_id or '(none)'}"
    return f"{resource.kind} {resource.resource_id or ''}".rstrip()


def _generic_count(resources: list[ResourceRequest]) -> int:
    return sum(1 for resource in resources if resource.kind == "generic")


def _check(
    connector: Component,
    resource: ResourceRequest,
    generic: Credentials,
    source: CredentialSource,
    clock: Clock,
    caller_arn: str,
) -> str:
    if resource.kind == RESOURCE_KIND:
        return check_execution_role(resource.resource_id or "", caller_arn, generic, source)
    if resource.kind == "object_store":
        credentials = authenticate(connector, resource, clock=clock)
        return _check_bucket(resource.resource_id or "", credentials, source)
    if resource.kind == "container_registry":
        login = authenticate(connector, resource, clock=clock)
        return _check_registry(resource.resource_id, generic, login, source)
    raise ConnectorError(f"the aws connector cannot check {resource.kind!r} resources")


def _check_bucket(uri: str, credentials: Credentials, source: CredentialSource) -> str:
    from botocore.exceptions import ClientError

    from stepframe_aws._session import client

    bucket = uri[len("s3://") :].split("/", 1)[0]
    with aws_errors(f"checking s3 bucket {bucket}", source=source):
        try:
            client("s3", credentials).head_bucket(Bucket=bucket)
        except ClientError as error:
            explained = _bucket_error(bucket, error, credentials, source)
            if explained is None:
                raise  # aws_errors explains the rest (a refused key, a throttle)
            raise explained from None
    return f"bucket {bucket} readable"


def _bucket_error(
    bucket: str, error: Any, credentials: Credentials, source: CredentialSource
) -> ConnectorError | None:
    # HEAD answers carry no body, so the code is the HTTP status ("404", "403", "301").
    code = error_code(error)
    if code in ("404", "NoSuchBucket", "NotFound"):
        return ConnectorError(
            f"bucket {bucket} does not exist; create it (`aws s3 mb s3://{bucket}`) or fix "
            "the artifact store's path"
        )
    if code in ("403", "Forbidden"):
        return ConnectorError(
            f"access to bucket {bucket} denied; allow s3:ListBucket on arn:aws:s3:::{bucket} "
            f"for the identity of {source.who}"
        )
    headers = error.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    actual = headers.get("x-amz-bucket-region")
    if code in ("301", "PermanentRedirect", "400", "AuthorizationHeaderMalformed") and actual:
        return ConnectorError(
            f"bucket {bucket} is in region {actual}, the connector uses "
            f"{credentials.values.get('region') or 'the default region'}; set the connector's "
            f"region (`stepframe connector update {source.connector} --region {actual}`)"
        )
    return None


def _check_registry(
    resource_id: str | None,
    generic: Credentials,
    login: Credentials,
    source: CredentialSource,
) -> str:
    from stepframe_aws._session import client

    host = registry_host(resource_id)
    account, region = registry_account_region(host)
    ecr = client("ecr", generic, region=region)
    request: dict[str, Any] = {"maxResults": 1}
    if account:
        request["registryId"] = account
    with aws_errors(f"listing repositories of {host} (ecr:DescribeRepositories)", source=source):
        ecr.describe_repositories(**request)
    until = f" until {_when(login.expires_at)}" if login.expires_at is not None else ""
    return f"login as {login.values.get('username', '?')} valid{until}, repositories readable"


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))
