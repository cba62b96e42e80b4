"""The README's "Run a step on SageMaker" commands, run as written against moto.

The block is read from the README itself, so the page cannot drift from what works.  Two
things differ from a user's machine, both outside the commands: the bucket is created
first (the README lists it as a prerequisite), and the final ``stepframe run`` is a
``--dry-run``, because moto cannot receive an image push to ECR nor run a container (the
SageMaker path itself runs in test_sagemaker_* and the local-mode integration test).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def _readme_commands() -> list[str]:
    text = README.read_text()
    section = text.split("## Run a step on SageMaker", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```\n(.*?)```", section, re.DOTALL)
    setup = next(block for block in blocks if "stepframe connector register" in block)
    return [line for line in setup.splitlines() if line.strip()]


def _run(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("STEPFRAME_LOAD_PLUGINS", None)
    return subprocess.run(
        ["bash", "-c", f"set -e\nsource ./vars.sh\n{line}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def test_the_readme_commands_set_up_a_sagemaker_stack(tmp_path: Path) -> None:
    import boto3

    commands = _readme_commands()
    assert commands[0].startswith("export "), commands[0]
    assert commands[-1].startswith("stepframe run "), commands[-1]
    (tmp_path / "vars.sh").write_text(commands[0] + "\n")
    shutil.copytree(ROOT / "examples" / "sagemaker", tmp_path / "examples" / "sagemaker")
    bucket = re.search(r"BUCKET=(\S+)", commands[0])
    region = re.search(r"AWS_REGION=(\S+)", commands[0])
    assert bucket and region
    boto3.client("s3", region_name=region.group(1)).create_bucket(
        Bucket=bucket.group(1),
        CreateBucketConfiguration={"LocationConstraint": region.group(1)},
    )
    # The execution role the README names exists, as the README's IAM section asks
    # (`connector verify` checks that it does and that SageMaker may assume it).
    role = re.search(r"role/([A-Za-z0-9+=,.@_-]+)", "\n".join(commands))
    assert role
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
             "Action": "sts:AssumeRole"}
        ],
    }  # fmt: skip
    boto3.client("iam").create_role(
        RoleName=role.group(1), AssumeRolePolicyDocument=json.dumps(trust)
    )

    outputs = {}
    for line in commands[1:-1]:
        done = _run(line, tmp_path)
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        outputs[line] = done.stdout
    dry = _run(commands[-1] + " --dry-run", tmp_path)
    assert dry.returncode == 0, f"{commands[-1]} --dry-run\n{dry.stdout}\n{dry.stderr}"

    verify = next(out for line, out in outputs.items() if "connector verify" in line)
    assert "authenticated as arn:aws:" in verify, verify
    assert bucket.group(1) in verify, verify
    assert f"role/{role.group(1)}" in verify, verify  # the execution role was checked
    assert "train" in dry.stdout and "sagemaker" in dry.stdout, dry.stdout
    config = (tmp_path / "stepframe.toml").read_text()
    assert "secret" not in config.lower(), config
