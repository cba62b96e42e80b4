"""The ``sagemaker`` operator's pre-flight: what SageMaker would refuse is reported for
every step before anything runs or is built (``stepframe run`` and ``--dry-run`` exit 2),
and the submit-time check stays as the last line.

The CLI tests run ``examples/sagemaker`` as the README sets it up (docker builder, ECR,
S3, the sagemaker operator), with a run config that breaks SageMaker's rules.  The bucket
does not even exist: a run that got past the pre-flight would fail (exit 1) opening the
store, so exit 2 with the pre-flight's message proves nothing was started.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stepframe import Component, ComponentKind, PlannedStep
from stepframe_aws._sagemaker.config import SageMakerOperatorConfig, SageMakerSettings
from stepframe_aws._sagemaker.preflight import step_problems

ROOT = Path(__file__).resolve().parents[2]
ROLE = "arn:aws:iam::123456789012:role/stepframe-sagemaker"

STACK = f"""\
active_stack = "aws"

[connectors.aws]
flavor = "aws"
region = "us-east-1"

[artifact_stores.s3]
flavor = "s3"
connector = "aws"
path = "s3://stepframe-preflight-nowhere/stepframe"

[image_builders.docker]
flavor = "docker"

[container_registries.ecr]
flavor = "ecr"
uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
connector = "aws"

[step_operators.sagemaker]
flavor = "sagemaker"
connector = "aws"
execution_role = "{ROLE}"

[stacks.aws]
artifact_store = "s3"
image_builder = "docker"
container_registry = "ecr"
step_operators = ["sagemaker"]
"""

LONG_VALUE = "v" * 600

RUN_CONFIG = f"""\
[steps.train.settings.sagemaker]
environment = {{ HYPERPARAMETERS = "{LONG_VALUE}" }}
"""


@pytest.fixture
def example(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    shutil.copytree(ROOT / "examples" / "sagemaker", project)
    (project / "stepframe.toml").write_text(STACK)
    (project / "run.toml").write_text(RUN_CONFIG)
    return project


def _stepframe(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPFRAME_")}
    return subprocess.run(
        [sys.executable, "-m", "stepframe", *args],
        cwd=project,
        env={**env, "STEPFRAME_LOAD_PLUGINS": "aws,docker"},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "run"])
def test_a_600_character_environment_value_stops_the_run_before_anything_runs(
    example: Path, dry_run: bool
) -> None:
    args = ["run", "pipeline.py", "--config", "run.toml"] + (["--dry-run"] if dry_run else [])
    result = _stepframe(example, *args)

    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "the pre-flight check found 1 problem; nothing was run" in result.stderr
    assert (
        "step 'train' settings.sagemaker.environment['HYPERPARAMETERS'] is 600 characters; "
        "SageMaker accepts at most 512" in result.stderr
    )
    assert LONG_VALUE not in result.stderr
    assert not (example / ".stepframe").exists()  # no run recorded, no image built
    assert "make_data" not in result.stdout


def test_the_example_passes_the_pre_flight_as_it_is(example: Path) -> None:
    result = _stepframe(example, "run", "pipeline.py", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "train: operator sagemaker (flavor sagemaker)" in result.stdout
    assert "    input points <- make_data.output" in result.stdout


# ---- what the pre-flight checks ----------------------------------------------------------


def planned(
    settings: SageMakerSettings | None = None,
    config: SageMakerOperatorConfig | None = None,
    store: str = "s3://bucket/store",
) -> PlannedStep:
    operator = Component(
        ComponentKind.STEP_OPERATOR,
        "sagemaker",
        "sagemaker",
        config=config or SageMakerOperatorConfig(execution_role=ROLE),
    )
    return PlannedStep(
        pipeline="fit",
        step="train",
        operator=operator,
        settings=settings or SageMakerSettings(),
        needs_image=True,
        code_root="/project",
        artifact_store_uri=store,
    )


def test_a_good_step_has_no_problems() -> None:
    assert step_problems(planned()) == []


def test_every_problem_of_a_step_is_reported_at_once() -> None:
    settings = SageMakerSettings(
        instance_type="m5.large",
        keep_alive_seconds=60,
        use_spot=True,
        subnets=["subnet-1"],
        input_channels={"a b": "/data"},
        environment={"X": "y" * 600},
    )
    problems = step_problems(planned(settings, store="file:///tmp/store"))
    expected = [
        "instance_type 'm5.large' is not a SageMaker training instance type",
        "warm pools (keep_alive_seconds) do not work with spot",
        "a VPC needs both subnets and security_group_ids",
        "input_channels['a b'] name 'a b' does not match SageMaker's pattern",
        "input_channels['a b'] must be an s3:// URI",
        "environment['X'] is 600 characters",
        "SageMaker jobs need an s3 artifact store",
    ]
    for part in expected:
        assert any(part in problem for problem in problems), (part, problems)
    assert len(problems) == len(expected), problems


def test_the_operators_environment_counts_too() -> None:
    config = SageMakerOperatorConfig(execution_role=ROLE, environment={"OWNER": "o" * 513})
    (problem,) = step_problems(planned(config=config))
    assert "environment['OWNER'] is 513 characters" in problem


def test_the_api_model_is_checked_in_the_pre_flight() -> None:
    settings = SageMakerSettings(extra_request={"HyperParameter": {}})
    (problem,) = step_problems(planned(settings))
    assert "not a CreateTrainingJob field; did you mean 'HyperParameters'" in problem


def test_local_mode_checks_only_what_applies_to_it() -> None:
    settings = SageMakerSettings(instance_type="local", environment={"X": "y" * 600})
    assert step_problems(planned(settings)) == []
    leaked = SageMakerSettings(instance_type="local", environment={"AWS_SECRET_ACCESS_KEY": "k"})
    (problem,) = step_problems(planned(leaked))
    assert "client credentials never go into a job" in problem


def test_an_operator_without_sagemaker_config_is_a_problem() -> None:
    step = planned()
    bare = PlannedStep(
        pipeline=step.pipeline,
        step=step.step,
        operator=Component(ComponentKind.STEP_OPERATOR, "sm", "sagemaker"),
    )
    (problem,) = step_problems(bare)
    assert "has no sagemaker configuration" in problem


def test_a_builder_platform_other_than_sagemakers_stops_the_run_before_anything_runs(
    example: Path,
) -> None:
    # An Apple-silicon user pinning their laptop's platform: the image could not run on
    # SageMaker, and the builder would refuse it only after the upstream steps ran.
    (example / "run.toml").write_text('[steps.train.settings.docker]\nplatform = "linux/arm64"\n')
    result = _stepframe(example, "run", "pipeline.py", "--config", "run.toml")

    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert (
        "step 'train': settings.docker.platform 'linux/arm64': SageMaker runs linux/amd64 "
        "images only; remove the setting or set it to 'linux/amd64'" in result.stderr
    )
    assert not (example / ".stepframe").exists()


def test_the_platform_sagemaker_runs_may_be_named_explicitly() -> None:
    builder = Component(ComponentKind.IMAGE_BUILDER, "docker", "docker")
    step = planned()
    for platform in ("linux/amd64", None):
        settings = {"docker": {"platform": platform}} if platform else {}
        explicit = PlannedStep(
            pipeline=step.pipeline,
            step=step.step,
            operator=step.operator,
            settings=step.settings,
            settings_by_flavor=settings,
            needs_image=True,
            code_root=step.code_root,
            artifact_store_uri=step.artifact_store_uri,
            image_builder=builder,
        )
        assert step_problems(explicit) == []
