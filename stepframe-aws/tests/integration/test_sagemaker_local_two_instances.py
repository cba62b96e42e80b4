"""A step on two instances in SageMaker local mode: the SDK starts one container per
instance (``algo-1-XXXX``, ``algo-2-XXXX``) through Docker Compose; each runs the step
function, ``stepframe.current_job()`` tells them apart, and only rank 0 writes the
outputs and the result manifest, so the run succeeds once, not twice or never.

Set up as test_sagemaker_local_e2e.py is (docker builder on ``stepframe-test-base``,
the registry on 127.0.0.1:5000, moto's S3), with a pipeline of its own.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROLE = "arn:aws:iam::123456789012:role/stepframe-sagemaker"

PIPELINE = """\
import stepframe
from stepframe import pipeline, step


@step
def make() -> int:
    return 21


@step(operator="sagemaker", settings={"sagemaker": {"instance_count": 2}})
def train(n: int) -> int:
    import json
    import os

    import boto3

    job = stepframe.current_job()
    print(f"on {job.current_host}: rank {job.rank} of {job.world_size}", flush=True)
    mark = json.dumps([job.rank, job.world_size, job.hosts])
    boto3.client("s3").put_object(
        Bucket=os.environ["MARKS_BUCKET"], Key=f"hosts/{job.current_host}", Body=mark
    )
    return n * 2


@step
def report(doubled: int) -> None:
    print(f"doubled = {doubled}")


@pipeline
def twice() -> None:
    report(train(make()))
"""


def _stepframe(project: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    command = shutil.which("stepframe", path=str(Path(sys.executable).parent)) or "stepframe"
    return subprocess.run(
        [command, *args],
        cwd=project,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (
        f"$ stepframe {' '.join(result.args[1:])}\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


@pytest.fixture
def project(
    tmp_path: Path, local_mode_host: dict[str, str], aws_environment: str
) -> tuple[Path, str]:
    import boto3

    bucket = f"sf-local2-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    root = tmp_path / f"proj-{uuid.uuid4().hex[:6]}"
    root.mkdir()
    (root / "pipeline.py").write_text(PIPELINE)
    (root / ".stepframe").mkdir()
    (root / ".dockerignore").write_text(".stepframe\nrun.toml\n")
    commands = [
        ["artifact-store", "register", "s3", "--flavor", "s3", "--path", f"s3://{bucket}/sf"],
        [
            "image-builder", "register", "docker", "--flavor", "docker",
            "--parent-image", local_mode_host["base_image"],
        ],
        [
            "container-registry", "register", "local", "--flavor", "default",
            "--uri", local_mode_host["registry"],
        ],
        [
            "step-operator", "register", "sagemaker", "--flavor", "sagemaker",
            "--execution-role", ROLE,
        ],
        ["stack", "register", "aws", "-a", "s3", "-i", "docker", "-c", "local", "-s", "sagemaker"],
        ["stack", "set", "aws"],
    ]  # fmt: skip
    for command in commands:
        _ok(_stepframe(root, *command))
    (root / "run.toml").write_text(
        '[steps.train.settings.sagemaker]\ninstance_type = "local"\n'
        f'environment = {{ AWS_ENDPOINT_URL = "{aws_environment}", MARKS_BUCKET = "{bucket}" }}\n'
    )
    return root, bucket


def test_a_step_on_two_local_instances_runs_on_both_and_writes_its_output_once(
    project: tuple[Path, str],
) -> None:
    import boto3

    root, bucket = project
    result = _stepframe(root, "run", "pipeline.py", "--config", "run.toml", timeout=900)
    output = _ok(result) + result.stderr

    # Each container ran the step as itself, with its own rank of the same two hosts
    # (marks it left in moto's S3; its log lines come back through Compose too).
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="hosts/").get("Contents", [])
    marks = {
        item["Key"].removeprefix("hosts/"): json.loads(
            s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        )
        for item in listed
    }
    assert len(marks) == 2, (marks, output)
    assert sorted(rank for rank, _, _ in marks.values()) == [0, 1], marks
    assert all(size == 2 and sorted(hosts) == sorted(marks) for _, size, hosts in marks.values())
    assert re.search(r"train \| .*algo-1-\w+ +\| on algo-1-\w+: rank 0 of 2", output), output
    assert "report | doubled = 42" in output, output

    runs = json.loads(_ok(_stepframe(root, "runs", "list", "--json")))
    shown = json.loads(_ok(_stepframe(root, "runs", "show", runs[0]["run_id"], "--json")))
    assert shown["run"]["status"] == "succeeded", shown["run"]
    assert [a["step"] for a in shown["artifacts"] if a["step"] == "train"] == ["train"]
