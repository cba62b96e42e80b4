"""``connector verify`` for a SageMaker execution role: it exists, SageMaker may assume
it, and the connector's identity may pass it and run jobs with it.

Read-only: iam:GetRole for the role and its trust policy, iam:SimulatePrincipalPolicy
for what the connector's identity may do (PassRole on the role, the SageMaker calls the
operator makes, the CloudWatch Logs calls that follow a job, the ECR calls that push its
image).  A user with no ``sagemaker:*`` permission is told so here, not when the first
job is submitted.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from stepframe import ConnectorError, Credentials
from stepframe_aws._errors import CredentialSource, aws_errors, error_code

__all__ = ["RESOURCE_KIND", "SAGEMAKER_SERVICE", "check_execution_role", "needed_actions"]

#: The ResourceRequest kind naming a SageMaker execution role (resource_id: its ARN).
RESOURCE_KIND = "execution_role"
SAGEMAKER_SERVICE = "sagemaker.amazonaws.com"

# What the connector's identity does with the role, and the resource each applies to
# ("ROLE": the role's ARN; "*": any).
_NEEDED: tuple[tuple[str, str], ...] = (
    ("iam:PassRole", "ROLE"),
    ("sagemaker:CreateTrainingJob", "*"),
    ("sagemaker:AddTags", "*"),
    ("sagemaker:DescribeTrainingJob", "*"),
    ("sagemaker:StopTrainingJob", "*"),
    ("sagemaker:ListTags", "*"),
    ("logs:DescribeLogStreams", "*"),
    ("logs:GetLogEvents", "*"),
    ("ecr:GetAuthorizationToken", "*"),
    ("ecr:DescribeRepositories", "*"),
    ("ecr:CreateRepository", "*"),
    ("ecr:InitiateLayerUpload", "*"),
    ("ecr:PutImage", "*"),
)
_ASSUMED_ROLE = re.compile(r"arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/.+")


def needed_actions(role_arn: str) -> list[tuple[str, str]]:
    """(action, resource ARN) pairs the connector's identity needs for jobs as the role."""
    return [(action, role_arn if where == "ROLE" else "*") for action, where in _NEEDED]


def check_execution_role(
    role_arn: str, caller_arn: str, credentials: Credentials, source: CredentialSource
) -> str:
    """Check the role and what the caller may do with it; the line for the report.

    :param role_arn: the operator's ``execution_role``.
    :param caller_arn: sts:GetCallerIdentity's ARN for the connector.
    :raises ConnectorError: naming the role and what is missing.
    """
    from botocore.exceptions import ClientError

    from stepframe_aws._session import client

    iam = client("iam", credentials)
    name = role_arn.rsplit("/", 1)[-1]
    with aws_errors(f"reading role {role_arn} (iam:GetRole)", source=source):
        try:
            role = iam.get_role(RoleName=name)["Role"]
        except ClientError as error:
            if error_code(error) in ("NoSuchEntity", "NoSuchEntityException"):
                raise ConnectorError(
                    f"execution role {role_arn} does not exist; create it (trusting "
                    f"{SAGEMAKER_SERVICE}) or fix the sagemaker operator's execution_role"
                ) from None
            raise
    if not trusts_service(role.get("AssumeRolePolicyDocument"), SAGEMAKER_SERVICE):
        raise ConnectorError(
            f"execution role {role_arn} does not trust {SAGEMAKER_SERVICE}: SageMaker "
            "cannot run jobs as it; add a trust policy statement allowing sts:AssumeRole "
            f'for {{"Service": "{SAGEMAKER_SERVICE}"}}'
        )
    principal = _principal(caller_arn)
    if principal is None:
        return (
            f"role {role_arn} exists and trusts {SAGEMAKER_SERVICE}; permissions not "
            f"simulated for {caller_arn} (IAM simulates users and roles only)"
        )
    denied = _denied(iam, principal, role_arn, source)
    if denied is None:
        return (
            f"role {role_arn} exists and trusts {SAGEMAKER_SERVICE}; permissions not "
            "simulated (this endpoint has no iam:SimulatePrincipalPolicy)"
        )
    if any(action == "iam:PassRole" for action in denied):
        raise ConnectorError(
            f"the connector may not pass role {role_arn} ({principal} lacks iam:PassRole "
            "on it); allow iam:PassRole on the role for the connector's identity"
        )
    if denied:
        raise ConnectorError(
            f"the connector may not run SageMaker jobs as role {role_arn}: {principal} "
            f"lacks {', '.join(denied)}; allow them for the connector's identity"
        )
    return (
        f"role {role_arn} exists, trusts {SAGEMAKER_SERVICE}, and the connector may pass "
        "it and run, follow and stop jobs"
    )


def trusts_service(document: Any, service: str) -> bool:
    """Whether a trust policy lets ``service`` assume the role (an Allow statement for
    sts:AssumeRole with that service principal)."""
    if isinstance(document, str):  # IAM answers it URL-encoded JSON; boto3 decodes it
        document = json.loads(urllib.parse.unquote(document))
    if not isinstance(document, Mapping):
        return False
    statements = document.get("Statement", [])
    if isinstance(statements, Mapping):
        statements = [statements]
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        actions = _as_list(statement.get("Action"))
        if not any(action in ("sts:AssumeRole", "sts:*", "*") for action in actions):
            continue
        principal = statement.get("Principal", {})
        services = _as_list(principal.get("Service")) if isinstance(principal, Mapping) else []
        if service in services:
            return True
    return False


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _principal(caller_arn: str) -> str | None:
    """The IAM ARN to simulate for the caller: the user, or the role of an assumed-role
    session; None for the root user and federated sessions."""
    found = _ASSUMED_ROLE.fullmatch(caller_arn)
    if found is not None:
        partition, account, role = found.groups()
        return f"arn:{partition}:iam::{account}:role/{role}"
    if ":user/" in caller_arn or ":role/" in caller_arn:
        return caller_arn
    return None


def _denied(iam: Any, principal: str, role_arn: str, source: CredentialSource) -> list[str] | None:
    """The actions IAM's simulator denies ``principal``; None when it cannot simulate."""
    from botocore.exceptions import ClientError
    from botocore.parsers import ResponseParserError

    denied: list[str] = []
    by_resource: dict[str, list[str]] = {}
    for action, resource in needed_actions(role_arn):
        by_resource.setdefault(resource, []).append(action)
    for resource, actions in by_resource.items():
        with aws_errors(
            f"simulating the connector's permissions (iam:SimulatePrincipalPolicy on {principal})",
            source=source,
        ):
            try:
                pages = iam.get_paginator("simulate_principal_policy").paginate(
                    PolicySourceArn=principal, ActionNames=actions, ResourceArns=[resource]
                )
                results = [r for page in pages for r in page.get("EvaluationResults", [])]
            except ClientError as error:
                status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
                if error_code(error) in ("InvalidAction", "NotImplemented") or status >= 500:
                    return None
                raise
            except ResponseParserError:  # an endpoint without the action (moto: a 500 page)
                return None
        denied += [
            str(result["EvalActionName"])
            for result in results
            if result.get("EvalDecision") != "allowed"
        ]
    return denied
