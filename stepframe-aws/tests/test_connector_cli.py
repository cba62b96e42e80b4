"""``stepframe connector verify`` with an ``aws`` connector, run as a user runs it.

Real ``python -m stepframe`` processes in a temporary project: secrets stored with
``stepframe secret set`` (in a file named by STEPFRAME_SECRETS_FILE), a connector, an S3
artifact store and an ECR registry registered with the CLI, and moto's server (in this
process) enforcing IAM where a test needs refusals.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from _moto_helpers import MotoIam, expire_sts_answers

from stepframe.testing import StepframeCli

ACCOUNT = "123456789012"
REGISTRY = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
BUCKET = "cli-artifacts"


@pytest.fixture
def cli(tmp_path: Path) -> StepframeCli:
    # This process's environment carries the conftest's moto endpoint, fake keys and dead
    # proxy into the commands.
    return StepframeCli(tmp_path / "project", plugins="aws")


def failed(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The one-line error of a command that must fail, checked for a traceback."""
    assert result.returncode == code, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr and "botocore" not in result.stderr, result.stderr
    assert result.stderr.startswith("stepframe: error: "), result.stderr
    return result.stderr


def no_secret(result: subprocess.CompletedProcess[str], *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result.stdout + result.stderr, f"{secret[:3]}... was printed"


def register_stack(
    cli: StepframeCli, key_id: str, secret_key: str, *connector_options: str
) -> None:
    """Secrets, a ``secret-key`` connector, an S3 store and an ECR registry using it."""
    cli.ok("secret", "set", "prod-key-id", input=key_id + "\n")
    cli.ok("secret", "set", "prod-secret", input=secret_key + "\n")
    cli.ok(
        "connector", "register", "aws", "--flavor", "aws",
        "--auth-method", "secret-key",
        "--aws-access-key-id", "prod-key-id",
        "--aws-secret-access-key", "prod-secret",
        "--region", "us-east-1",
        *connector_options,
    )  # fmt: skip
    cli.ok(
        "artifact-store", "register", "s3", "--flavor", "s3",
        "--path", f"s3://{BUCKET}/stepframe", "--connector", "aws",
    )  # fmt: skip
    cli.ok(
        "container-registry", "register", "ecr", "--flavor", "ecr",
        "--uri", REGISTRY, "--connector", "aws",
    )  # fmt: skip


def test_verify_prints_the_identity_and_a_line_per_resource(
    cli: StepframeCli, moto_iam: MotoIam
) -> None:
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    arn, key_id, secret_key = moto_iam.user("alice")
    register_stack(cli, key_id, secret_key)
    moto_iam.enforce()

    result = cli("connector", "verify", "aws")

    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    lines = result.stdout.splitlines()
    assert lines[0] == f"connector 'aws' authenticated as {arn}"
    assert lines[1] == f"  aws credentials (secret-key): account {ACCOUNT}, region us-east-1"
    assert lines[2] == f"  s3 s3://{BUCKET}/stepframe: bucket {BUCKET} readable"
    assert lines[3].startswith(f"  ecr {REGISTRY}: login as AWS valid until ")
    no_secret(result, key_id, secret_key)
    config = (cli.project / "stepframe.toml").read_text()
    assert key_id not in config and secret_key not in config
    assert 'aws_access_key_id = "prod-key-id"' in config


def test_a_wrong_key_fails_verify_with_the_fix(cli: StepframeCli, moto_iam: MotoIam) -> None:
    moto_iam.user("alice")
    register_stack(cli, "AKIANOTAKEYATALL0Q7R", "wrong-secret-wrong-secret")
    moto_iam.enforce()

    result = cli("connector", "verify", "aws")

    message = failed(result)
    assert "connector 'aws' (auth method 'secret-key')" in message
    assert "AWS does not accept access key id ...0Q7R" in message
    assert "`stepframe secret set prod-key-id`" in message
    no_secret(result, "AKIANOTAKEYATALL0Q7R", "wrong-secret-wrong-secret")


def test_a_wrong_secret_fails_verify_naming_the_secret_to_fix(
    cli: StepframeCli, moto_iam: MotoIam
) -> None:
    _, key_id, secret_key = moto_iam.user("alice")
    wrong = secret_key[::-1]
    register_stack(cli, key_id, wrong)
    moto_iam.enforce()

    result = cli("connector", "verify", "aws")

    message = failed(result)
    assert f"the secret access key does not belong to access key id ...{key_id[-4:]}" in message
    assert "`stepframe secret set prod-secret`" in message
    no_secret(result, key_id, secret_key, wrong)


def test_a_missing_bucket_fails_verify_after_the_identity(cli: StepframeCli) -> None:
    register_stack(cli, "AKIAEXAMPLEKEY000001", "example-secret-000001")

    result = cli("connector", "verify", "aws")

    message = failed(result)
    assert "connector 'aws' authenticated as arn:aws:" in message
    assert f"FAILED s3 s3://{BUCKET}/stepframe: bucket {BUCKET} does not exist" in message
    assert f"ecr {REGISTRY}: login as AWS" in message
    no_secret(result, "AKIAEXAMPLEKEY000001", "example-secret-000001")


def test_a_role_that_cannot_be_assumed_fails_verify_naming_the_role(
    cli: StepframeCli, moto_iam: MotoIam
) -> None:
    import boto3

    _, key_id, secret_key = moto_iam.user("alice")
    bob, _, _ = moto_iam.user("bob")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": bob}, "Action": "sts:AssumeRole"}],
    }
    role = boto3.client("iam").create_role(
        RoleName="bobs-role", AssumeRolePolicyDocument=json.dumps(trust)
    )["Role"]["Arn"]
    cli.ok("secret", "set", "alice-key", input=key_id)
    cli.ok("secret", "set", "alice-secret", input=secret_key)
    cli.ok(
        "connector", "register", "team", "--flavor", "aws", "--auth-method", "iam-role",
        "--aws-access-key-id", "alice-key", "--aws-secret-access-key", "alice-secret",
        "--role-arn", role,
    )  # fmt: skip
    moto_iam.enforce()

    result = cli("connector", "verify", "team")

    message = failed(result)
    assert f"connector 'team' (auth method 'iam-role'): assuming role {role}" in message
    assert "trust policy must allow sts:AssumeRole" in message
    no_secret(result, key_id, secret_key)


def test_a_pasted_key_never_reaches_the_config_file(cli: StepframeCli) -> None:
    result = cli(
        "connector", "register", "aws", "--flavor", "aws", "--auth-method", "secret-key",
        "--aws-access-key-id", "AKIAPASTEDKEY0000001",
        "--aws-secret-access-key", "pasted/secret+value",
    )  # fmt: skip

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "stepframe secret set" in result.stderr
    no_secret(result, "pasted/secret+value")
    config = cli.project / "stepframe.toml"
    assert not config.exists() or "AKIAPASTEDKEY0000001" not in config.read_text()


def test_a_method_without_what_it_needs_is_refused_at_register(cli: StepframeCli) -> None:
    result = cli("connector", "register", "aws", "--flavor", "aws", "--auth-method", "iam-role")

    message = failed(result, code=2)
    assert "auth_method 'iam-role' needs aws_access_key_id, aws_secret_access_key, role_arn" in (
        message
    )


def test_an_expired_token_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # moto never expires a token, so this one runs the CLI in this process, where botocore's
    # event system can answer ExpiredToken the way AWS does (and botocore parses it).
    from click.testing import CliRunner

    import stepframe
    from stepframe._cli.main import cli as stepframe_cli
    from stepframe._plugins.manager import activated

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STEPFRAME_SECRETS_FILE", str(tmp_path / "secrets.json"))
    secrets = {
        "tmp-key": "ASIATEMPORARYKEY00T1",
        "tmp-secret": "tmp-secret-value",
        "tmp-token": "FQoGexpiredTOKEN",
    }
    (tmp_path / "secrets.json").write_text(json.dumps(secrets))
    (tmp_path / "secrets.json").chmod(0o600)
    (tmp_path / "stepframe.toml").write_text(
        "[connectors.aws]\n"
        'flavor = "aws"\n'
        'auth_method = "session-token"\n'
        'aws_access_key_id = "tmp-key"\n'
        'aws_secret_access_key = "tmp-secret"\n'
        'aws_session_token = "tmp-token"\n'
    )
    expire_sts_answers(monkeypatch)
    plugins = stepframe.load_plugins(env={"STEPFRAME_LOAD_PLUGINS": "aws"})
    try:
        runner = CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # click < 8.2
    except TypeError:
        runner = CliRunner()

    with activated(plugins):
        result = runner.invoke(
            stepframe_cli, ["connector", "verify", "aws"], catch_exceptions=False
        )

    assert result.exit_code == 1
    assert result.stderr.startswith(
        "stepframe: error: connector 'aws' (auth method 'session-token'): checking the "
        "credentials (sts:GetCallerIdentity): the session token has expired"
    )
    assert "`stepframe secret set tmp-token`" in result.stderr
    for value in secrets.values():
        assert value not in result.stdout + result.stderr


def test_verify_checks_the_execution_role_of_the_operators_using_the_connector(
    cli: StepframeCli, moto_iam: MotoIam
) -> None:
    """`connector verify` hands each sagemaker operator's execution role to the check: a
    role SageMaker may not assume fails verify, naming the role."""
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    _, key_id, secret_key = moto_iam.user("alice")
    register_stack(cli, key_id, secret_key)
    trust_ec2 = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
             "Action": "sts:AssumeRole"}
        ],
    }  # fmt: skip
    role = boto3.client("iam").create_role(
        RoleName="ec2-only", AssumeRolePolicyDocument=json.dumps(trust_ec2)
    )["Role"]["Arn"]
    cli.ok(
        "step-operator", "register", "sm", "--flavor", "sagemaker",
        "--execution-role", role, "--connector", "aws",
    )  # fmt: skip
    moto_iam.enforce()

    result = cli("connector", "verify", "aws")

    assert result.returncode != 0
    assert f"execution role {role} does not trust sagemaker.amazonaws.com" in result.stderr
    no_secret(result, key_id, secret_key)
