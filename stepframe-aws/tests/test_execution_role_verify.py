"""``connector verify`` of a SageMaker execution role (issue 13 part 2), against moto.

moto's IAM has roles and their trust policies, so "the role does not exist" and "it
does not trust SageMaker" are real answers.  moto has no iam:SimulatePrincipalPolicy (it
answers a 500 page): without help, verify says the permissions were not simulated.  To
check the messages for denied actions, `teach_simulation` gives moto's server a
SimulatePrincipalPolicy that evaluates the user's inline policy (Allow statements,
``*`` wildcards in actions and resources) -- a stand-in for IAM's simulator, which the
code under test only reads the EvalDecision of.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest
from _moto_helpers import ACCOUNT, MotoIam

from stepframe import Component, ComponentKind, ConnectorError, ResourceRequest, SecretRef
from stepframe_aws._connector.config import AwsConnectorConfig
from stepframe_aws._connector.role_check import RESOURCE_KIND, needed_actions, trusts_service
from stepframe_aws._connector.verify import verify

SAGEMAKER_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "sagemaker.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
GENERIC = ResourceRequest("generic")


def connector(key_id: str, secret: str, monkeypatch: pytest.MonkeyPatch) -> Component:
    monkeypatch.setenv("ROLE_TEST_KEY_ID", key_id)
    monkeypatch.setenv("ROLE_TEST_SECRET", secret)
    return Component(
        ComponentKind.CONNECTOR,
        "aws",
        "aws",
        AwsConnectorConfig(
            auth_method="secret-key",
            aws_access_key_id=SecretRef("env:ROLE_TEST_KEY_ID"),
            aws_secret_access_key=SecretRef("env:ROLE_TEST_SECRET"),
        ),
    )


def execution_role(name: str, trust: dict[str, Any] = SAGEMAKER_TRUST) -> str:
    import boto3

    iam = boto3.client("iam")
    return str(
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    )


def role_request(arn: str) -> ResourceRequest:
    return ResourceRequest(RESOURCE_KIND, arn)


@pytest.fixture
def teach_simulation(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """moto's IAM answers SimulatePrincipalPolicy from the user's inline policies."""
    from moto.iam.models import iam_backends
    from moto.iam.responses import IamResponse

    calls: list[dict[str, Any]] = []

    def simulate_principal_policy(self: Any) -> str:
        source = self._get_param("PolicySourceArn")
        actions = self._get_param("ActionNames")
        resources = self._get_param("ResourceArns") or ["*"]
        calls.append({"source": source, "actions": actions, "resources": resources})
        user = iam_backends[ACCOUNT]["global"].get_user(source.rsplit("/", 1)[-1])
        statements = [
            statement
            for policy in user.policies.values()
            for statement in json.loads(policy)["Statement"]
            if statement["Effect"] == "Allow"
        ]

        def allowed(action: str, resource: str) -> bool:
            return any(
                any(fnmatch.fnmatchcase(action, a) for a in _list(s["Action"]))
                and any(fnmatch.fnmatchcase(resource, r) for r in _list(s["Resource"]))
                for s in statements
            )

        members = "".join(
            f"<member><EvalActionName>{action}</EvalActionName>"
            f"<EvalResourceName>{resources[0]}</EvalResourceName><EvalDecision>"
            f"{'allowed' if allowed(action, resources[0]) else 'implicitDeny'}"
            "</EvalDecision></member>"
            for action in actions
        )
        return (
            '<SimulatePrincipalPolicyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
            f"<SimulatePrincipalPolicyResult><IsTruncated>false</IsTruncated>"
            f"<EvaluationResults>{members}</EvaluationResults></SimulatePrincipalPolicyResult>"
            "<ResponseMetadata><RequestId>x</RequestId></ResponseMetadata>"
            "</SimulatePrincipalPolicyResponse>"
        )

    monkeypatch.setattr(
        IamResponse, "simulate_principal_policy", simulate_principal_policy, raising=False
    )
    return calls


def _list(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]


def test_a_missing_role_is_named(moto_iam: MotoIam, monkeypatch: pytest.MonkeyPatch) -> None:
    _, key_id, secret = moto_iam.user("ops")
    arn = f"arn:aws:iam::{ACCOUNT}:role/no-such-role"
    with pytest.raises(ConnectorError) as caught:
        verify(connector(key_id, secret, monkeypatch), [GENERIC, role_request(arn)])
    assert f"execution role {arn} does not exist" in str(caught.value)


def test_a_role_sagemaker_cannot_assume_is_named(
    moto_iam: MotoIam, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, key_id, secret = moto_iam.user("ops")
    trust_ec2 = json.loads(json.dumps(SAGEMAKER_TRUST).replace("sagemaker", "ec2"))
    arn = execution_role("ec2-only", trust_ec2)
    with pytest.raises(ConnectorError) as caught:
        verify(connector(key_id, secret, monkeypatch), [GENERIC, role_request(arn)])
    assert f"execution role {arn} does not trust sagemaker.amazonaws.com" in str(caught.value)


def test_without_a_simulator_the_report_says_so(
    moto_iam: MotoIam, monkeypatch: pytest.MonkeyPatch, instant_retries: None
) -> None:
    """moto's own IAM has no SimulatePrincipalPolicy: verify passes, saying what it
    could not check."""
    _, key_id, secret = moto_iam.user("ops")
    arn = execution_role("sagemaker-jobs")
    report = verify(connector(key_id, secret, monkeypatch), [GENERIC, role_request(arn)])
    (line,) = [check for check in report.checks if "execution role" in check]
    assert "exists and trusts sagemaker.amazonaws.com" in line
    assert "permissions not simulated" in line


def test_a_connector_that_may_not_pass_the_role_is_told_so(
    moto_iam: MotoIam, monkeypatch: pytest.MonkeyPatch, teach_simulation: list[dict[str, Any]]
) -> None:
    arn = execution_role("sagemaker-jobs")
    no_pass = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["sagemaker:*", "logs:*", "ecr:*"], "Resource": "*"}
        ],
    }
    user, key_id, secret = moto_iam.user("ops", no_pass)
    with pytest.raises(ConnectorError) as caught:
        verify(connector(key_id, secret, monkeypatch), [GENERIC, role_request(arn)])
    message = str(caught.value)
    assert f"the connector may not pass role {arn}" in message, message
    assert "AWS refused the credentials" not in message
    assert {call["source"] for call in teach_simulation} == {user}


def test_a_connector_without_sagemaker_permissions_fails_verify(
    moto_iam: MotoIam, monkeypatch: pytest.MonkeyPatch, teach_simulation: list[dict[str, Any]]
) -> None:
    arn = execution_role("sagemaker-jobs")
    pass_only = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iam:PassRole", "Resource": arn},
            {
                "Effect": "Allow",
                "Action": ["sts:*", "iam:GetRole", "iam:Simulate*"],
                "Resource": "*",
            },
        ],
    }
    _, key_id, secret = moto_iam.user("ops", pass_only)
    with pytest.raises(ConnectorError) as caught:
        verify(connector(key_id, secret, monkeypatch), [GENERIC, role_request(arn)])
    message = str(caught.value)
    assert f"the connector may not run SageMaker jobs as role {arn}" in message, message
    assert "sagemaker:CreateTrainingJob" in message and "logs:GetLogEvents" in message


def test_a_connector_allowed_everything_passes(
    moto_iam: MotoIam, monkeypatch: pytest.MonkeyPatch, teach_simulation: list[dict[str, Any]]
) -> None:
    arn = execution_role("sagemaker-jobs")
    _, key_id, secret = moto_iam.user("ops")
    report = verify(connector(key_id, secret, monkeypatch), [GENERIC, role_request(arn)])
    assert any(
        "the connector may pass it and run, follow and stop jobs" in c for c in report.checks
    )
    simulated = {a for call in teach_simulation for a in call["actions"]}
    assert simulated == {action for action, _ in needed_actions(arn)}


def test_trust_policies_in_their_shapes() -> None:
    assert trusts_service(SAGEMAKER_TRUST, "sagemaker.amazonaws.com")
    listed = json.loads(json.dumps(SAGEMAKER_TRUST))
    listed["Statement"][0]["Principal"]["Service"] = [
        "ec2.amazonaws.com",
        "sagemaker.amazonaws.com",
    ]
    assert trusts_service(listed, "sagemaker.amazonaws.com")
    denied = json.loads(json.dumps(SAGEMAKER_TRUST))
    denied["Statement"][0]["Effect"] = "Deny"
    assert not trusts_service(denied, "sagemaker.amazonaws.com")
