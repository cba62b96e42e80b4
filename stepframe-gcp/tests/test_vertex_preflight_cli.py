"""The ``vertex`` pre-flight through the command line: ``stepframe run --dry-run`` (and a
real ``run``) stops with every problem of every vertex step, exit 2, one line each, no
traceback, before anything is built or submitted.

The stack's bucket does not exist and its endpoints lead nowhere: a run that got past
the pre-flight would fail differently (exit 1), so exit 2 with the pre-flight's lines
proves nothing was started.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

STACK = """\
active_stack = "gcp"

[connectors.gcp]
flavor = "gcp"
auth_method = "oauth2-token"
token = "env:PREFLIGHT_TOKEN"
project = "test-project"
region = "europe-west4"

[artifact_stores.gcs]
flavor = "gcs"
connector = "gcp"
path = "gs://stepframe-preflight-nowhere/stepframe"

[image_builders.docker]
flavor = "docker"

[container_registries.ar]
flavor = "artifact-registry"
uri = "europe-west4-docker.pkg.dev/test-project/steps"
connector = "gcp"

[step_operators.vertex]
flavor = "vertex"
connector = "gcp"
project = "test-project"
region = "europe-west4"
api_endpoint = "http://127.0.0.1:9"

[stacks.gcp]
artifact_store = "gcs"
image_builder = "docker"
container_registry = "ar"
step_operators = ["vertex"]
"""

PIPELINE = """\
from stepframe import pipeline, step


@step
def numbers() -> list[int]:
    return [1, 2, 3]


@step(operator="vertex", settings={"vertex": {
    "accelerator_type": "nvidia-tesla-t4", "accelerator_count": 1,
    "labels": {"Team": "vision"},
}})
def train(values: list[int]) -> int:
    return sum(values)


KEY_FILE = {"GOOGLE_APPLICATION_CREDENTIALS": "/k.json"}


@step(operator="vertex", settings={"vertex": {"environment": KEY_FILE}})
def evaluate(total: int) -> int:
    return total


@pipeline
def training():
    evaluate(train(numbers()))
"""


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "run"])
def test_every_problem_of_every_vertex_step_stops_the_run(tmp_path: Path, dry_run: bool) -> None:
    (tmp_path / "stepframe.toml").write_text(STACK)
    (tmp_path / "pipeline.py").write_text(PIPELINE)
    env = {
        **os.environ,
        "PREFLIGHT_TOKEN": "ya29.preflight",
        "STEPFRAME_LOAD_PLUGINS": "gcp,docker",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stepframe",
            "run",
            "pipeline.py",
            *(["--dry-run"] if dry_run else []),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )

    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    text = result.stderr
    accelerator = "settings.accelerator_type: 'nvidia-tesla-t4' is not a Vertex AI accelerator"
    assert f"{accelerator} (did you mean NVIDIA_TESLA_T4?)" in text
    assert "settings.labels: key 'Team' breaks Google's label rules" in text
    assert (
        "settings.environment.GOOGLE_APPLICATION_CREDENTIALS: credentials never go into a job"
        in text
    )
    assert "train" in text and "evaluate" in text
    assert not (tmp_path / ".stepframe" / "artifacts").exists()
