"""Steps on this machine use the artifact store's connector credentials.

The connector's keys live only in stepframe's secrets file: the environment has none, so
anything that opened the store without them (boto3's default chain) would fail.  An
``inprocess`` step shares the run's open store; a ``local`` job process gets the
credentials from its operator, out of sight of the step's own code.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from stepframe.testing import (  # noqa: F401 - fixtures
    SmallPipeline,
    TempProject,
    make_plugins,
    small_pipeline,
    stepframe_project,
)


@pytest.mark.parametrize("operator", ["inprocess", "local"])
def test_a_step_on_this_machine_reads_and_writes_through_the_stores_connector(
    operator: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stepframe_project: TempProject,  # noqa: F811
    small_pipeline: Callable[..., SmallPipeline],  # noqa: F811
) -> None:
    import boto3

    bucket = f"stepframe-creds-{uuid.uuid4().hex[:10]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"key-id": "AKIASTOREONLY0001", "secret-key": "s3cr3t"}))
    secrets.chmod(0o600)
    monkeypatch.setenv("STEPFRAME_SECRETS_FILE", str(secrets))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/stepframe-test")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-role lookup
    stepframe_project.write_config(
        f"""
        [connectors.aws]
        flavor = "aws"
        auth_method = "secret-key"
        aws_access_key_id = "key-id"
        aws_secret_access_key = "secret-key"

        [artifact_stores.s3]
        flavor = "s3"
        connector = "aws"
        path = "s3://{bucket}/project"

        [stacks.cloud]
        artifact_store = "s3"
        step_operators = ["{operator}"]
        """
    )
    small = small_pipeline(operator=operator, count=6)
    stepframe_project.plugins = make_plugins(load=("aws",))

    result = stepframe_project.run(small.pipeline, stack="cloud")

    assert result.output(small.step) == small.expected
    listed = boto3.client("s3", aws_access_key_id="x", aws_secret_access_key="y").list_objects_v2(
        Bucket=bucket, Prefix="project/runs/"
    )
    assert any(item["Key"].endswith("/result.json") for item in listed.get("Contents", []))
