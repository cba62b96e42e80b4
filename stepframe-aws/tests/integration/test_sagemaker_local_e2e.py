"""A pipeline whose training step runs in SageMaker local mode, set up as a user would.

The project is examples/sagemaker/pipeline.py, configured with the CLI: an ``s3``
artifact store on moto's S3, the ``docker`` image builder (parent image
``stepframe-test-base``), the registry on 127.0.0.1:5000, and a ``sagemaker`` step
operator; ``stepframe run --config run.toml`` sends ``train`` to local mode (as
examples/sagemaker/local.toml does).  ``make_data`` and ``report`` run here; ``train``
runs in a container of the image stepframe-docker built, started by the SageMaker SDK
through Docker Compose, reading its input from S3 and writing its output there, and
``report`` gets that output.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "sagemaker"
ROLE = "arn:aws:iam::123456789012:role/stepframe-sagemaker"


def _containers(label: str) -> list[str]:
    """Names of the containers, running or not, with ``label`` (``KEY`` or ``KEY=VALUE``)."""
    import docker

    found = docker.from_env().containers.list(all=True, filters={"label": label})
    return [str(c.name) for c in found]


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
    """examples/sagemaker in a fresh folder, its stack registered through the CLI."""
    import boto3

    bucket = f"sf-local-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    root = tmp_path / f"proj-{uuid.uuid4().hex[:6]}"
    root.mkdir()
    shutil.copy(EXAMPLE / "pipeline.py", root / "pipeline.py")
    (root / ".stepframe").mkdir()
    (root / ".dockerignore").write_text(".stepframe\nrun.toml\n")
    commands = [
        ["artifact-store", "register", "s3", "--flavor", "s3", "--path", f"s3://{bucket}/stepframe"],
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
    # examples/sagemaker/local.toml, plus what this machine needs: the job reaches moto's
    # S3 (the SDK also passes AWS_ENDPOINT_URL_S3).
    (root / "run.toml").write_text(
        (EXAMPLE / "local.toml").read_text()
        + f'environment = {{ AWS_ENDPOINT_URL = "{aws_environment}" }}\n'
    )
    return root, bucket


def test_a_training_step_runs_in_sagemaker_local_mode(project: tuple[Path, str]) -> None:
    import boto3

    root, bucket = project
    dry = _ok(_stepframe(root, "run", "pipeline.py", "--config", "run.toml", "--dry-run"))
    assert "local" in dry, dry

    started = time.monotonic()
    result = _stepframe(root, "run", "pipeline.py", "--config", "run.toml", timeout=900)
    seconds = time.monotonic() - started
    output = _ok(result) + result.stderr
    print(f"stepframe run with a local-mode step: {seconds:.1f} s\n{output}")

    # The report step, here, printed the line fitted in the container from make_data's
    # points (y = 2x + 1 with a little noise).
    fitted = re.search(r"report \| y = (-?[0-9.]+) x \+ (-?[0-9.]+)", output)
    assert fitted, output
    assert abs(float(fitted[1]) - 2.0) < 0.05 and abs(float(fitted[2]) - 1.0) < 0.2, fitted[0]
    # The train step's log came back through the runner: the SDK's local mode ran the
    # image, and the step printed in it.
    assert "train | stepframe: SageMaker local mode, job" in output, output
    assert re.search(r"train \| .*algo-1-\w+ +\| trained on 200 points", output), output

    runs = json.loads(_ok(_stepframe(root, "runs", "list", "--json")))
    run_id = runs[0]["run_id"]
    shown = json.loads(_ok(_stepframe(root, "runs", "show", run_id, "--json")))
    steps = {s["step"]: s for s in shown["steps"]}
    assert shown["run"]["status"] == "succeeded", shown["run"]
    assert (steps["train"]["operator"], steps["train"]["flavor"]) == ("sagemaker", "sagemaker")
    assert steps["train"]["status"] == "succeeded", steps["train"]
    assert steps["report"]["status"] == "succeeded", steps["report"]

    # The artifacts went through moto's S3: every one recorded is there.
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="stepframe/")
    keys = {item["Key"] for item in listed.get("Contents", [])}
    uris = [a["uri"] for a in shown["artifacts"]]
    assert uris and all(u.startswith(f"s3://{bucket}/stepframe/") for u in uris), uris
    assert {u.split("/", 3)[3] for u in uris} <= keys, (uris, sorted(keys))

    # The job's containers are gone (the SDK leaves exited ones; local mode removes them).
    assert _containers(f"stepframe.run={run_id}") == []
