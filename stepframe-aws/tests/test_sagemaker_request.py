"""The CreateTrainingJob request the ``sagemaker`` operator builds, and what it refuses
before AWS is called (each refusal a ConfigError naming the setting and the fix)."""

from __future__ import annotations

import re
from typing import Any

import attrs
import pytest

from stepframe import ConfigError, Credentials, ImageRef, Launch, ResourceRequest
from stepframe_aws._sagemaker.config import SageMakerOperatorConfig, SageMakerSettings
from stepframe_aws._sagemaker.request import (
    build_request,
    image_by_digest,
    output_path,
    training_job_name,
)

ROLE = "arn:aws:iam::123456789012:role/stepframe-sagemaker"
DIGEST = "sha256:" + "ab" * 32
MANIFEST = "s3://bucket/store/runs/20260101-000000-abcdef/train/attempt-1/launch.json"


def make_launch(**changes: Any) -> Launch:
    launch = Launch(
        run_id="20260101-000000-abcdef",
        pipeline="fit",
        step="train",
        attempt=1,
        job_name="fit-train-20260101-000000-abcdef-1",
        manifest_uri=MANIFEST,
        result_uri=MANIFEST.replace("launch.json", "result.json"),
        command=("python", "-m", "stepframe.entrypoint", MANIFEST),
        environment={"STEPFRAME_LAUNCH_MANIFEST": MANIFEST},
        settings=SageMakerSettings(),
        image=ImageRef("123456789012.dkr.ecr.us-east-1.amazonaws.com/fit:abc123", DIGEST),
    )
    return attrs.evolve(launch, **changes)


def request_for(
    settings: SageMakerSettings | None = None,
    config: SageMakerOperatorConfig | None = None,
    credentials: Credentials | None = None,
    **launch_changes: Any,
) -> dict[str, Any]:
    return build_request(
        make_launch(**launch_changes),
        config or SageMakerOperatorConfig(execution_role=ROLE),
        settings or SageMakerSettings(),
        credentials,
    )


def test_the_plain_request() -> None:
    request = request_for()
    assert request["TrainingJobName"] == "fit-train-20260101-000000-abcdef-1"
    assert request["AlgorithmSpecification"] == {
        "TrainingImage": f"123456789012.dkr.ecr.us-east-1.amazonaws.com/fit@{DIGEST}",
        "TrainingInputMode": "File",
        "ContainerEntrypoint": ["python", "-m", "stepframe.entrypoint"],
    }
    assert request["Environment"] == {"STEPFRAME_LAUNCH_MANIFEST": MANIFEST}
    assert request["OutputDataConfig"] == {"S3OutputPath": "s3://bucket/store/sagemaker-output/"}
    assert request["ResourceConfig"] == {
        "InstanceType": "ml.m5.large",
        "InstanceCount": 1,
        "VolumeSizeInGB": 30,
    }
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 86400}
    assert {"Key": "stepframe:step", "Value": "train"} in request["Tags"]
    assert "EnableManagedSpotTraining" not in request


def test_every_setting_lands_in_its_field() -> None:
    settings = SageMakerSettings(
        instance_type="ml.g5.xlarge",
        instance_count=2,
        volume_size_gb=100,
        max_runtime_seconds=3600,
        use_spot=True,
        max_wait_seconds=7200,
        checkpoint_s3_uri="s3://bucket/checkpoints/",
        environment={"LEVEL": "debug"},
        tags={"team": "ml"},
        subnets=["subnet-1"],
        security_group_ids=["sg-1"],
        volume_kms_key="vol-key",
        output_kms_key="out-key",
        input_channels={"train": "s3://bucket/data/train/"},
        experiment_config={"ExperimentName": "fit"},
        retry_attempts=2,
        extra_request={"EnableNetworkIsolation": True, "HyperParameters": {"lr": "0.1"}},
    )
    config = SageMakerOperatorConfig(
        execution_role=ROLE,
        output_path="s3://elsewhere/out/",
        environment={"LEVEL": "info", "OWNER": "ops"},
        tags={"team": "platform", "cost": "42"},
    )
    request = request_for(settings, config)
    assert request["ResourceConfig"] == {
        "InstanceType": "ml.g5.xlarge",
        "InstanceCount": 2,
        "VolumeSizeInGB": 100,
        "VolumeKmsKeyId": "vol-key",
    }
    assert request["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 3600,
        "MaxWaitTimeInSeconds": 7200,
    }
    assert request["EnableManagedSpotTraining"] is True
    assert request["CheckpointConfig"] == {"S3Uri": "s3://bucket/checkpoints/"}
    assert request["OutputDataConfig"] == {
        "S3OutputPath": "s3://elsewhere/out/",
        "KmsKeyId": "out-key",
    }
    # The operator's environment and tags lie under the step's, key by key.
    assert request["Environment"] == {
        "LEVEL": "debug",
        "OWNER": "ops",
        "STEPFRAME_LAUNCH_MANIFEST": MANIFEST,
    }
    tags = {tag["Key"]: tag["Value"] for tag in request["Tags"]}
    assert tags["team"] == "ml" and tags["cost"] == "42"
    assert request["VpcConfig"] == {"Subnets": ["subnet-1"], "SecurityGroupIds": ["sg-1"]}
    assert request["InputDataConfig"][0]["ChannelName"] == "train"
    assert request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == (
        "s3://bucket/data/train/"
    )
    assert request["ExperimentConfig"] == {"ExperimentName": "fit"}
    assert request["RetryStrategy"] == {"MaximumRetryAttempts": 2}
    assert request["EnableNetworkIsolation"] is True
    assert request["HyperParameters"] == {"lr": "0.1"}


def test_warm_pool() -> None:
    request = request_for(SageMakerSettings(keep_alive_seconds=600))
    assert request["ResourceConfig"]["KeepAlivePeriodInSeconds"] == 600


def test_spot_without_a_wait_gets_an_hour_beyond_the_run() -> None:
    request = request_for(SageMakerSettings(use_spot=True, max_runtime_seconds=600))
    assert request["StoppingCondition"]["MaxWaitTimeInSeconds"] == 4200


# ---- job names ---------------------------------------------------------------------------


def test_a_valid_name_is_kept() -> None:
    assert training_job_name("fit-train-20260101-000000-abcdef-1") == (
        "fit-train-20260101-000000-abcdef-1"
    )


def test_long_names_are_shortened_and_stay_distinct() -> None:
    base = "a-very-long-pipeline-name-for-fitting-lines-" + "x" * 30
    names = [training_job_name(f"{base}-train-20260101-000000-abcdef-{n}") for n in (1, 2)]
    assert names[0] != names[1]
    for name in names:
        assert len(name) <= 63
        assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name), name
        assert name.startswith("a-very-long-pipeline")


def test_odd_characters_are_replaced_and_hashed() -> None:
    name = training_job_name("-fit_train.x-1")
    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name), name
    assert name != training_job_name("-fit-train-x-1")


# ---- images and output -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("repo:tag", "repo@"),
        ("127.0.0.1:5000/team/fit:abc", "127.0.0.1:5000/team/fit@"),
        ("127.0.0.1:5000/fit", "127.0.0.1:5000/fit@"),
        (f"host/fit@{DIGEST}", "host/fit@"),
    ],
)
def test_the_image_runs_by_digest(uri: str, expected: str) -> None:
    assert image_by_digest(ImageRef(uri, DIGEST)) == expected + DIGEST


def test_an_image_without_a_digest_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"no digest.*container registry"):
        image_by_digest(ImageRef("fit:abc"))


def test_a_local_artifact_store_is_refused() -> None:
    local = "file:///home/me/project/.stepframe/artifacts/runs/r/train/attempt-1/launch.json"
    with pytest.raises(ConfigError, match="SageMaker jobs need an s3 artifact store"):
        output_path(make_launch(manifest_uri=local), SageMakerOperatorConfig(execution_role=ROLE))


# ---- refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (SageMakerSettings(instance_type="m5.large"), "instance_type 'm5.large' is not"),
        (SageMakerSettings(instance_count=0), "instance_count must be at least 1"),
        (SageMakerSettings(max_wait_seconds=10), "max_wait_seconds applies to managed spot"),
        (
            SageMakerSettings(use_spot=True, max_wait_seconds=10, max_runtime_seconds=20),
            "must be at least max_runtime_seconds",
        ),
        (
            SageMakerSettings(keep_alive_seconds=30000),
            r"keep_alive_seconds is 30000; SageMaker accepts at most 21600",
        ),
        (SageMakerSettings(keep_alive_seconds=60, use_spot=True), "warm pools"),
        (SageMakerSettings(subnets=["subnet-1"]), "both subnets and security_group_ids"),
        (SageMakerSettings(input_channels={"train": "/data"}), "must be an s3:// URI"),
        (
            SageMakerSettings(input_channels={"a b": "s3://b/k"}),
            r"input_channels\['a b'\] name 'a b' does not match SageMaker's pattern",
        ),
        (
            SageMakerSettings(retry_attempts=99),
            "retry_attempts is 99; SageMaker accepts at most 30",
        ),
        (SageMakerSettings(environment={"X": "y" * 513}), r"\['X'\] is 513 characters"),
        (
            SageMakerSettings(environment={f"V{i}": "1" for i in range(100)}),
            r"environment has 101 entries; SageMaker accepts at most 100",
        ),
        (SageMakerSettings(environment={"1X": "y"}), "environment key '1X' does not match"),
        (
            SageMakerSettings(environment={"AWS_SECRET_ACCESS_KEY": "x"}),
            "client credentials never go into a job",
        ),
        (
            SageMakerSettings(tags={"k": "v" * 300}),
            r"tags\['k'\] is 300 characters; SageMaker accepts at most 256",
        ),
        (
            SageMakerSettings(extra_request={"Environment": {}}),
            "stepframe sets Environment itself; use environment",
        ),
        (
            SageMakerSettings(extra_request={"HyperParameter": {}}),
            "not a CreateTrainingJob field; did you mean 'HyperParameters'",
        ),
        (
            SageMakerSettings(extra_request={"EnableNetworkIsolation": "yes"}),
            r"extra_request\['EnableNetworkIsolation'\].*would refuse.*type",
        ),
        (
            SageMakerSettings(extra_request={"ProfilerConfig": {"S3OutputPat": "s3://b"}}),
            r"extra_request\['ProfilerConfig'\].*Unknown parameter",
        ),
        (
            SageMakerSettings(experiment_config={"Experiment": "x"}),
            r"settings.sagemaker: .*Unknown parameter in ExperimentConfig",
        ),
    ],
)
def test_what_aws_would_refuse_is_refused_first(settings: SageMakerSettings, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        request_for(settings)


def test_the_connectors_secret_never_goes_into_the_job() -> None:
    credentials = Credentials(
        connector="aws",
        resource=ResourceRequest(),
        values={"aws_access_key_id": "AKIA", "aws_secret_access_key": "s3cr3t"},
    )
    settings = SageMakerSettings(environment={"SOMETHING": "s3cr3t"})
    with pytest.raises(ConfigError, match="holds the connector's secret key") as caught:
        request_for(settings, credentials=credentials)
    assert "s3cr3t" not in str(caught.value)


def test_a_role_that_is_no_arn_is_refused_when_the_operator_is_registered(
    tmp_path: Any,
) -> None:
    """At `register`, before anything is written: one line naming the setting, exit 2."""
    import os
    import subprocess
    import sys

    def register(role: str) -> subprocess.CompletedProcess[str]:
        command = ("step-operator", "register", "sm", "--flavor", "sagemaker")
        return subprocess.run(
            [sys.executable, "-m", "stepframe", *command, "--execution-role", role],
            cwd=tmp_path,
            env={**os.environ, "STEPFRAME_LOAD_PLUGINS": "aws"},
            capture_output=True,
            text=True,
            timeout=60,
        )

    refused = register("admin")
    assert refused.returncode == 2, refused
    assert "execution_role 'admin' is not an IAM role ARN" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "stepframe.toml").exists()
    assert register(ROLE).returncode == 0


# ---- every rule of SageMaker's API model (issue 13 part 2) ----------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            SageMakerSettings(instance_type="ml.m5.lrage"),
            "settings.sagemaker.instance_type 'ml.m5.lrage' is not a SageMaker training "
            "instance type; did you mean 'ml.m5.large'?",
        ),
        (
            SageMakerSettings(input_channels={f"c{i}": f"s3://b/{i}" for i in range(21)}),
            "settings.sagemaker.input_channels has 21 entries; SageMaker accepts at most 20",
        ),
        (
            SageMakerSettings(extra_request={"HyperParameters": {"lr": "1" * 3000}}),
            "settings.sagemaker.extra_request['HyperParameters']['lr'] is 3000 characters; "
            "SageMaker accepts at most 2500",
        ),
        (
            SageMakerSettings(
                subnets=[f"subnet-{i}" for i in range(17)], security_group_ids=["sg-1"]
            ),
            "settings.sagemaker.subnets has 17 entries; SageMaker accepts at most 16",
        ),
        (
            SageMakerSettings(experiment_config={"ExperimentName": "my experiment"}),
            "settings.sagemaker.experiment_config['ExperimentName'] 'my experiment' does not "
            "match SageMaker's pattern",
        ),
        (
            SageMakerSettings(volume_size_gb=100000),
            "settings.sagemaker.volume_size_gb 100000 is larger than an EBS volume can be",
        ),
        (
            SageMakerSettings(max_pending_seconds=60),
            "settings.sagemaker.max_pending_seconds is 60; SageMaker needs at least 1800",
        ),
        (
            SageMakerSettings(input_mode="Fast"),
            "settings.sagemaker.input_mode 'Fast' is not one of SageMaker's TrainingInputMode "
            "values (CreateTrainingJob AlgorithmSpecification.TrainingInputMode); did you mean",
        ),
        (
            SageMakerSettings(input_channels={"a": "s3://b/a"}, sharded_channels=["b"]),
            "settings.sagemaker.sharded_channels names 'b', which input_channels does not have",
        ),
        (
            SageMakerSettings(tags={"team": "ml!"}),
            "settings.sagemaker.tags['team'] 'ml!' does not match SageMaker's pattern",
        ),
        (
            SageMakerSettings(metric_definitions={"loss": ""}),
            "settings.sagemaker.metric_definitions[0]['Regex'] '' is 0 characters",
        ),
        (
            SageMakerSettings(extra_request={"CheckpointConfig": {"S3Uri": "s3://b/c"}}),
            "extra_request['CheckpointConfig']['S3Uri']: stepframe sets it itself; use "
            "checkpoint_s3_uri",
        ),
        (SageMakerSettings(distribution="mpi"), "distribution 'mpi' is not known"),
        (SageMakerSettings(processes_per_host=2), "processes_per_host applies to"),
    ],
)
def test_every_rule_of_the_model_is_checked(settings: SageMakerSettings, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        request_for(settings)
    assert message in str(caught.value), str(caught.value)


def test_the_models_own_limits_allow_what_sagemaker_allows() -> None:
    """100 environment entries, a warm pool of 2 hours, checkpoints without spot, a tag
    value with letters of any script: all accepted, as SageMaker accepts them."""
    environment = {f"V{i}": "1" for i in range(99)}  # and stepframe's manifest variable
    settings = SageMakerSettings(
        environment=environment,
        keep_alive_seconds=7200,
        checkpoint_s3_uri="s3://bucket/checkpoints/",
        tags={"owner": "Zoë Ångström"},
    )
    request = request_for(settings)
    assert len(request["Environment"]) == 100
    assert request["ResourceConfig"]["KeepAlivePeriodInSeconds"] == 7200
    assert request["CheckpointConfig"] == {"S3Uri": "s3://bucket/checkpoints/"}
    assert "EnableManagedSpotTraining" not in request


def test_algorithm_and_checkpoint_fields_are_merged_from_extra_request() -> None:
    settings = SageMakerSettings(
        checkpoint_s3_uri="s3://bucket/checkpoints/",
        metric_definitions={"loss": r"loss=([0-9.]+)"},
        max_pending_seconds=3600,
        input_mode="FastFile",
        input_channels={"train": "s3://bucket/train/", "eval": "s3://bucket/eval/"},
        channel_input_modes={"eval": "File"},
        sharded_channels=["train"],
        extra_request={
            "AlgorithmSpecification": {
                "ContainerArguments": ["--epochs", "3"],
                "TrainingImageConfig": {"TrainingRepositoryAccessMode": "Vpc"},
                "EnableSageMakerMetricsTimeSeries": True,
            },
            "CheckpointConfig": {"LocalPath": "/opt/ml/ckpt"},
        },
    )
    request = request_for(settings)
    assert request["AlgorithmSpecification"] == {
        "TrainingImage": f"123456789012.dkr.ecr.us-east-1.amazonaws.com/fit@{DIGEST}",
        "TrainingInputMode": "FastFile",
        # The arguments come after the manifest, which the entrypoint reads first.
        "ContainerEntrypoint": ["python", "-m", "stepframe.entrypoint", MANIFEST],
        "MetricDefinitions": [{"Name": "loss", "Regex": r"loss=([0-9.]+)"}],
        "ContainerArguments": ["--epochs", "3"],
        "TrainingImageConfig": {"TrainingRepositoryAccessMode": "Vpc"},
        "EnableSageMakerMetricsTimeSeries": True,
    }
    assert request["CheckpointConfig"] == {
        "LocalPath": "/opt/ml/ckpt",
        "S3Uri": "s3://bucket/checkpoints/",
    }
    assert request["StoppingCondition"]["MaxPendingTimeInSeconds"] == 3600
    train, evaluation = request["InputDataConfig"]
    assert train["DataSource"]["S3DataSource"]["S3DataDistributionType"] == "ShardedByS3Key"
    assert "InputMode" not in train  # the job's default, FastFile
    assert evaluation["DataSource"]["S3DataSource"]["S3DataDistributionType"] == ("FullyReplicated")
    assert evaluation["InputMode"] == "File"


def test_torchrun_distribution_is_the_entry_point() -> None:
    settings = SageMakerSettings(
        instance_type="ml.g5.12xlarge", instance_count=2, distribution="torchrun"
    )
    assert request_for(settings)["AlgorithmSpecification"]["ContainerEntrypoint"] == [
        "python",
        "-m",
        "stepframe.entrypoint",
        "--torchrun",
        MANIFEST,
    ]
    settings = attrs.evolve(settings, processes_per_host=2)
    assert request_for(settings)["AlgorithmSpecification"]["ContainerEntrypoint"] == [
        "python",
        "-m",
        "stepframe.entrypoint",
        "--torchrun",
        "--processes-per-host=2",
        MANIFEST,
    ]
