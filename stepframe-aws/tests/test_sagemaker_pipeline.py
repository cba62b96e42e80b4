"""Real pipelines with a step on the ``sagemaker`` operator, against moto.

The stack is a tmp project's ``stepframe.toml``: an ``aws`` connector with keys from
``env:`` references, an ``s3`` artifact store in a moto bucket, the ``sagemaker``
operator, and a test image builder that answers a fixed image by digest (the operator is
under test, not the builder).  moto never runs the container, so a driver thread plays
SageMaker's part: once the job exists it runs the real entrypoint in this process,
against the launch manifest in moto's S3 and with the environment the request gave the
job, then marks the job Completed or Failed in moto's backend.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _moto_helpers import (
    ACCOUNT,
    REGION,
    Recording,
    sagemaker_backend,
    teach_stop_training_job,
    write_logs,
)

import stepframe
from stepframe import ComponentKind, Flavor, ImageRef, RunCancelled, RunFailed, StepFailed, hookimpl
from stepframe._orchestrator.console import PlainConsole
from stepframe._orchestrator.run import RunResult, run_pipeline
from stepframe._pipeline.loader import load_pipeline
from stepframe._project import Project
from stepframe.testing import CuttingProxy
from stepframe_aws._sagemaker.clients import clear_clients

ROLE = f"arn:aws:iam::{ACCOUNT}:role/stepframe-sagemaker"
BUCKET = "stepframe-pipeline"
DIGEST = "sha256:" + "ef" * 32
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/fit:0123abcd"

STACK = """\
active_stack = "aws"

[connectors.aws]
flavor = "aws"
auth_method = "secret-key"
aws_access_key_id = "env:AWS_ACCESS_KEY_ID"
aws_secret_access_key = "env:AWS_SECRET_ACCESS_KEY"
region = "{region}"
endpoint_url = "{endpoint}"

[artifact_stores.s3]
flavor = "s3"
connector = "aws"
path = "s3://{bucket}/store"

[image_builders.fixed]
flavor = "fixed-image"

[step_operators.sagemaker]
flavor = "sagemaker"
connector = "aws"
execution_role = "{role}"
environment = {{ OWNER = "ops" }}

[stacks.aws]
artifact_store = "s3"
image_builder = "fixed"
step_operators = ["sagemaker"]
"""

PIPELINE = """\
from stepframe import pipeline, step


@step(operator="inprocess")
def make(n: int = 5) -> list[float]:
    return [float(i) for i in range(n)]


@step(
    operator="sagemaker",
    settings={{
        "sagemaker": {{"max_runtime_seconds": 3600, "environment": {{"SCALE": "3"}}{settings}}}
    }},
)
def train(xs: list[float]) -> float:
    import os

    {body}
    print("training on", len(xs), "values", flush=True)
    return sum(xs) * float(os.environ.get("SCALE", "1"))


@step(operator="inprocess")
def report(total: float) -> str:
    return f"total={{total}}"


@pipeline
def fit() -> None:
    report(train(make()))
"""


class FixedImage:
    """An image builder flavor that "builds" a fixed, already pushed image, and keeps the
    requests it was given."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    @hookimpl
    def register_flavors(self, register: Callable[[Flavor], None]) -> None:
        register(Flavor(kind=ComponentKind.IMAGE_BUILDER, name="fixed-image"))

    @hookimpl
    def build_image(self, request: Any, builder: Any) -> ImageRef | None:
        if builder.flavor != "fixed-image":
            return None
        self.requests.append(request)
        return ImageRef(IMAGE, DIGEST)


# ---- moto helpers ------------------------------------------------------------------------


@pytest.fixture
def sagemaker_like(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """moto's SageMaker, closer to the real one: a new job starts InProgress (moto's is
    Completed at once), and StopTrainingJob (moto answers 500) stops it."""
    from moto.sagemaker.exceptions import ResourceInUseException
    from moto.sagemaker.models import SageMakerModelBackend

    create = SageMakerModelBackend.create_training_job

    def create_in_progress(self: Any, *args: Any, **kwargs: Any) -> Any:
        # Job names are unique for good on SageMaker (moto would replace the job).
        name = kwargs.get("training_job_name", args[0] if args else None)
        if name in self.training_jobs:
            raise ResourceInUseException(f"Training job {name} already exists")
        job = create(self, *args, **kwargs)
        job.training_job_status = "InProgress"
        job.secondary_status = "Starting"
        return job

    monkeypatch.setattr(SageMakerModelBackend, "create_training_job", create_in_progress)
    return teach_stop_training_job(monkeypatch)


# ---- the project and the driver ----------------------------------------------------------


class Project_:
    def __init__(self, root: Path, endpoint: str) -> None:
        self.root = root
        self.endpoint = endpoint
        self.output = ""
        self.builder = FixedImage()

    def run(self, body: str = "pass", settings: str = "") -> RunResult:
        """Run the pipeline; ``body`` goes into the sagemaker step (lines joined with
        ``"\n    "``), ``settings`` after its sagemaker settings (``, "key": value``)."""
        module = f"fitpipe_{uuid.uuid4().hex[:8]}"
        path = self.root / f"{module}.py"
        path.write_text(PIPELINE.format(body=body, settings=settings))
        spec = load_pipeline(str(path)).compile()
        plugins = stepframe.load_plugins(
            extra=[("fixed-image", self.builder)], env={"STEPFRAME_LOAD_PLUGINS": "aws"}
        )
        stream = io.StringIO()
        try:
            return run_pipeline(
                spec, plugins=plugins, project=Project(self.root), console=PlainConsole(stream)
            )
        finally:
            self.output = stream.getvalue()


@pytest.fixture
def project(
    tmp_path: Path, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Project_]:
    import boto3

    root = tmp_path / "project"
    root.mkdir()
    (root / "stepframe.toml").write_text(
        STACK.format(region=REGION, endpoint=moto_endpoint, bucket=BUCKET, role=ROLE)
    )
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv("STEPFRAME_STACK", raising=False)
    monkeypatch.setenv("STEPFRAME_SECRETS_FILE", str(tmp_path / "secrets.json"))
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    clear_clients()
    before = set(sys.modules)
    yield Project_(root, moto_endpoint)
    clear_clients()
    for name in set(sys.modules) - before:
        if name.startswith("fitpipe_"):
            del sys.modules[name]


def wait_for_job(timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(sagemaker_backend().training_jobs.values())
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError("no training job was created")


def play_sagemaker(
    recording: Recording,
    monkeypatch: pytest.MonkeyPatch,
    before_end: Callable[[Any], None] | None = None,
) -> threading.Thread:
    """SageMaker's part: start the job's container (the real entrypoint, in process, with
    the environment the request gave it) and record how it ended (``before_end`` may
    set what SageMaker reports of a finished job: billing, metrics)."""
    from stepframe.entrypoint import main

    errors: list[BaseException] = []

    def drive() -> None:
        try:
            job = wait_for_job()
            # Retries of a create whose answer was lost send the same request again.
            request = recording.requests("CreateTrainingJob")[0]
            job.secondary_status = "Training"
            job.secondary_status_transitions.append(
                {"Status": "Training", "StartTime": time.time(), "StatusMessage": "running"}
            )
            # The container's environment, as SageMaker would set it.
            for key, value in request["Environment"].items():
                monkeypatch.setenv(key, value)
            code = main([])
            write_logs(f"{job.training_job_name}/algo-1-1700000000", f"entrypoint exited {code}")
            if before_end is not None:
                before_end(job)
            if code == 0:
                job.secondary_status = job.training_job_status = "Completed"
            else:
                job.failure_reason = f"AlgorithmError: ExecuteUserScriptError: exit code {code}"
                job.secondary_status = job.training_job_status = "Failed"
        except BaseException as error:  # reported by the test, not lost in the thread
            errors.append(error)

    thread = threading.Thread(target=drive, daemon=True)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    return thread


def play_sagemaker_hosts(
    recording: Recording, root: Path, hosts: list[str], marks: Path
) -> threading.Thread:
    """SageMaker's part for a job on several instances: one entrypoint process per host,
    each with SageMaker's host variables, all at once, against moto's S3."""
    import json
    import subprocess

    results: dict[str, tuple[int, str]] = {}
    errors: list[BaseException] = []

    def drive() -> None:
        try:
            job = wait_for_job()
            request = recording.requests("CreateTrainingJob")[0]
            job.secondary_status = "Training"
            base = {**os.environ, **request["Environment"], "HOSTS_DIR": str(marks)}
            base["SM_HOSTS"] = json.dumps(hosts)
            running = {
                host: subprocess.Popen(
                    [sys.executable, "-m", "stepframe.entrypoint"],
                    cwd=root,
                    env={**base, "SM_CURRENT_HOST": host},
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                for host in hosts
            }
            for host, process in running.items():
                output, _ = process.communicate(timeout=120)
                results[host] = (process.returncode, output)
            if all(code == 0 for code, _ in results.values()):
                job.secondary_status = job.training_job_status = "Completed"
            else:
                job.failure_reason = "AlgorithmError: a host exited non-zero"
                job.secondary_status = job.training_job_status = "Failed"
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=drive, daemon=True)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.results = results  # type: ignore[attr-defined]
    thread.start()
    return thread


# ---- tests -------------------------------------------------------------------------------


def test_a_pipeline_sends_this_exact_request(
    project: Project_,
    recording: Recording,
    sagemaker_like: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    driver = play_sagemaker(recording, monkeypatch)
    result = project.run()
    driver.join(10)
    assert driver.errors == []  # type: ignore[attr-defined]

    run_id = result.run_id
    name = f"fit-train-{run_id}-1"
    manifest = f"s3://{BUCKET}/store/runs/{run_id}/train/attempt-1/launch.json"
    (sent,) = recording.requests("CreateTrainingJob")
    assert sent == {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/fit@{DIGEST}",
            "TrainingInputMode": "File",
            "ContainerEntrypoint": ["python", "-m", "stepframe.entrypoint"],
        },
        "RoleArn": ROLE,
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/store/sagemaker-output/"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "Environment": {"OWNER": "ops", "SCALE": "3", "STEPFRAME_LAUNCH_MANIFEST": manifest},
        "Tags": [
            {"Key": "stepframe:run", "Value": run_id},
            {"Key": "stepframe:pipeline", "Value": "fit"},
            {"Key": "stepframe:step", "Value": "train"},
            {"Key": "stepframe:attempt", "Value": "1"},
        ],
    }
    # The job's output came back through S3 to the next step.
    assert result.status == "succeeded"
    assert result.output("train") == 30.0
    assert result.output("report") == "total=30.0"
    output = project.output
    assert "train | sagemaker: Training - running" in output, output
    assert "train | entrypoint exited 0" in output, output
    assert f"train | sagemaker: training job {name} is Completed" in output, output
    with _history(project.root) as history:
        (job,) = [j for j in history.list_jobs(run_id=run_id) if j.step == "train"]
    assert job.state == "succeeded"
    assert job.job_id == name
    assert job.handle is not None and job.handle.data["region"] == REGION
    # SageMaker runs x86-64 images only: the builder was asked for that platform
    # (the flavor's image_platform), whatever machine the client runs on.
    assert [request.platform for request in project.builder.requests] == ["linux/amd64"]


def test_a_failed_job_brings_back_its_reason_and_traceback(
    project: Project_,
    recording: Recording,
    sagemaker_like: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    driver = play_sagemaker(recording, monkeypatch)
    with pytest.raises(RunFailed) as caught:
        project.run(body='raise ValueError("bad data in the job")')
    driver.join(10)
    assert driver.errors == []  # type: ignore[attr-defined]
    failure = caught.value.failures["train"]
    assert isinstance(failure, StepFailed)
    assert failure.error_type == "ValueError"
    assert "bad data in the job" in failure.message
    assert 'raise ValueError("bad data in the job")' in failure.remote_traceback
    # SageMaker's own reason is in the step's log.
    assert "AlgorithmError: ExecuteUserScriptError: exit code 1" in project.output, project.output
    with _history(project.root) as history:
        (job,) = [j for j in history.list_jobs(run_id=caught.value.run_id) if j.step == "train"]
    assert job.state == "failed"


def test_ctrl_c_stops_the_training_job(
    project: Project_,
    recording: Recording,
    sagemaker_like: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl+C while the run polls a training job: the SIGINT goes once the run has
    described the job in its Training state (an event set by moto's answer), not after a
    guessed delay."""
    from moto.sagemaker.responses import SageMakerResponse

    describe = SageMakerResponse.describe_training_job
    polled_while_training = threading.Event()

    def describe_and_tell(self: Any) -> Any:
        answer = describe(self)
        job = sagemaker_backend().training_jobs.get(self._get_param("TrainingJobName"))
        if job is not None and job.secondary_status == "Training":
            polled_while_training.set()
        return answer

    monkeypatch.setattr(SageMakerResponse, "describe_training_job", describe_and_tell)
    polled: list[bool] = []

    def interrupt_once_polled_while_training() -> None:
        job = wait_for_job()
        job.secondary_status = "Training"
        # Interrupt in any case (the run would wait for the job forever), but say so below.
        polled.append(polled_while_training.wait(60))
        os.kill(os.getpid(), signal.SIGINT)

    interrupter = threading.Thread(target=interrupt_once_polled_while_training, daemon=True)
    interrupter.start()
    with pytest.raises(RunCancelled) as caught:
        project.run()
    interrupter.join(60)
    assert not interrupter.is_alive()
    assert polled == [True], "the run never described the job while it was Training"
    (job,) = sagemaker_backend().training_jobs.values()
    assert sagemaker_like == [job.training_job_name]
    assert recording.requests("StopTrainingJob") == [{"TrainingJobName": job.training_job_name}]
    assert job.training_job_status == "Stopped"
    with _history(project.root) as history:
        steps = {s.step: s.status for s in history.get_steps(caught.value.run_id)}
        jobs = history.list_jobs(run_id=caught.value.run_id)
        (record,) = [j for j in jobs if j.step == "train"]
    assert steps["train"] == "cancelled"
    assert record.state == "cancelled"


def test_a_job_outlives_aws_throttling_its_polls(
    project: Project_,
    recording: Recording,
    sagemaker_like: list[str],
    instant_retries: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DescribeTrainingJob throttled ten times in a row, more than one poll's retries:
    the run waits it out instead of stopping a healthy job."""
    from moto.core.exceptions import JsonRESTError
    from moto.sagemaker.responses import SageMakerResponse

    describe = SageMakerResponse.describe_training_job
    throttled: list[str] = []

    def throttle_ten(self: Any) -> Any:
        if len(throttled) < 10:
            throttled.append(self._get_param("TrainingJobName"))
            raise JsonRESTError("ThrottlingException", "Rate exceeded")
        return describe(self)

    monkeypatch.setattr(SageMakerResponse, "describe_training_job", throttle_ten)
    driver = play_sagemaker(recording, monkeypatch)
    result = project.run()
    driver.join(10)
    assert driver.errors == []  # type: ignore[attr-defined]
    assert len(throttled) == 10
    assert result.status == "succeeded"
    assert result.output("report") == "total=30.0"
    assert sagemaker_like == []
    assert recording.requests("StopTrainingJob") == []
    assert "AWS is throttling DescribeTrainingJob" in project.output, project.output


# ---- a CreateTrainingJob whose answer is lost ---------------------------------------------


@pytest.fixture
def lossy_endpoint(project: Project_) -> Iterator[CuttingProxy]:
    """The connector reaches moto through a `CuttingProxy` (the job's own calls do not)."""
    proxy = CuttingProxy(int(project.endpoint.rsplit(":", 1)[1]))
    config = project.root / "stepframe.toml"
    config.write_text(config.read_text().replace(project.endpoint, proxy.url))
    yield proxy
    proxy.close()


def test_a_create_whose_answers_are_lost_adopts_the_job_and_creates_it_once(
    project: Project_,
    recording: Recording,
    sagemaker_like: list[str],
    lossy_endpoint: CuttingProxy,
    instant_retries: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SageMaker processes CreateTrainingJob, and the connection closes before every
    answer (the first try and each retry): the run finds the job by its name, follows it
    to the end and never creates a second one."""
    from stepframe_aws._sagemaker.jobs import CREATE_ATTEMPTS

    # One more than the attempts: a further create would lose its answer too, and count.
    lossy_endpoint.arm_answer_to(
        r"^POST / ",
        0,
        times=CREATE_ATTEMPTS + 1,
        header=r"^X-Amz-Target: SageMaker\.CreateTrainingJob$",
    )
    driver = play_sagemaker(recording, monkeypatch)
    result = project.run()
    driver.join(10)
    assert driver.errors == []  # type: ignore[attr-defined]
    assert lossy_endpoint.cuts == CREATE_ATTEMPTS
    assert len(recording.requests("CreateTrainingJob")) == CREATE_ATTEMPTS
    (job,) = sagemaker_backend().training_jobs.values()  # the retries met ResourceInUse
    assert result.status == "succeeded"
    assert result.output("report") == "total=30.0"
    assert "the submit's answer was lost" in project.output, project.output
    assert f"found job {job.training_job_name!r}" in project.output, project.output
    with _history(project.root) as history:
        (record,) = [j for j in history.list_jobs(run_id=result.run_id) if j.step == "train"]
    assert record.state == "succeeded"
    assert record.job_id == job.training_job_name
    assert record.handle is not None
    assert record.handle.data["console_url"].endswith(f"#/jobs/{job.training_job_name}")


def test_a_create_answered_by_a_server_error_after_creating_is_adopted(
    project: Project_,
    recording: Recording,
    sagemaker_like: list[str],
    instant_retries: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 5xx does not prove that nothing was created: SageMaker made the job, then
    answered 500 to the create and to every retry."""
    from moto.core.exceptions import JsonRESTError
    from moto.sagemaker.responses import SageMakerResponse

    create = SageMakerResponse.create_training_job

    def create_then_fail(self: Any) -> Any:
        try:
            create(self)
        except Exception:  # the retries' ResourceInUse, also hidden behind a 500
            pass
        raise JsonRESTError("InternalFailure", "We encountered an internal error")

    monkeypatch.setattr(JsonRESTError, "code", 500, raising=False)
    monkeypatch.setattr(SageMakerResponse, "create_training_job", create_then_fail)
    driver = play_sagemaker(recording, monkeypatch)
    result = project.run()
    driver.join(10)
    assert driver.errors == []  # type: ignore[attr-defined]
    assert result.status == "succeeded"
    assert len(sagemaker_backend().training_jobs) == 1


def test_a_refused_create_fails_the_step_without_looking_for_a_job(
    project: Project_,
    recording: Recording,
    sagemaker_like: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 4xx proves that nothing was created: the step fails at once, the ledger says
    failed (not possibly submitted or unknown), and no DescribeTrainingJob is made."""
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.responses import SageMakerResponse

    def refuse(self: Any) -> Any:
        raise ValidationError("1 validation error detected: Value 'ml.m5.lrage'")

    monkeypatch.setattr(SageMakerResponse, "create_training_job", refuse)
    with pytest.raises(RunFailed) as caught:
        project.run()
    failure = caught.value.failures["train"]
    assert "AWS answered ValidationException" in str(failure), failure
    assert recording.requests("DescribeTrainingJob") == []
    assert len(recording.requests("CreateTrainingJob")) == 1
    with _history(project.root) as history:
        (record,) = [j for j in history.list_jobs(run_id=caught.value.run_id) if j.step == "train"]
    assert record.state == "failed"


# ---- what a SageMaker user sees ------------------------------------------------------------


def test_the_console_link_billing_spot_savings_and_final_metrics_are_shown_and_recorded(
    project: Project_,
    recording: Recording,
    sagemaker_like: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    import boto3

    def billed(job: Any) -> None:
        job.billable_time_in_seconds = 120
        job.training_time_in_seconds = 300
        job.final_metric_data_list = [
            {"MetricName": "loss", "Value": 0.25, "Timestamp": time.time()},
            {"MetricName": "accuracy", "Value": 0.9, "Timestamp": time.time()},
        ]

    driver = play_sagemaker(recording, monkeypatch, before_end=billed)
    settings = ', "use_spot": True, "metric_definitions": {"loss": "loss=([0-9.]+)"}'
    result = project.run(settings=settings)
    driver.join(10)
    assert driver.errors == []  # type: ignore[attr-defined]
    name = f"fit-train-{result.run_id}-1"
    url = f"https://{REGION}.console.aws.amazon.com/sagemaker/home?region={REGION}#/jobs/{name}"
    output = project.output
    assert f"train | sagemaker: training job {name}: {url}" in output, output
    assert (
        "train | sagemaker: billable 120 s on 1 x ml.m5.large (training 300 s, managed spot "
        "saved 60%)"
    ) in output, output
    assert "train | sagemaker: final metrics: loss = 0.25, accuracy = 0.9" in output, output
    (sent,) = recording.requests("CreateTrainingJob")
    assert sent["AlgorithmSpecification"]["MetricDefinitions"] == [
        {"Name": "loss", "Regex": "loss=([0-9.]+)"}
    ]
    with _history(project.root) as history:
        (job,) = [j for j in history.list_jobs(run_id=result.run_id) if j.step == "train"]
    assert job.handle is not None and job.handle.data["console_url"] == url
    key = f"store/runs/{result.run_id}/train/attempt-1/sagemaker-job.json"
    assert job.handle.data["summary_uri"] == f"s3://{BUCKET}/{key}"
    body = boto3.client("s3", region_name=REGION).get_object(Bucket=BUCKET, Key=key)["Body"]
    summary = json.loads(body.read())
    assert summary["billable_seconds"] == 120 and summary["spot_savings"] == 0.6
    assert (summary["instance_type"], summary["instance_count"]) == ("ml.m5.large", 1)
    assert summary["final_metrics"] == {"loss": 0.25, "accuracy": 0.9}
    assert summary["console_url"] == url


def _stepframe(root: Path, *args: str) -> Any:
    """The ``stepframe`` command in its own process, in the project (moto's endpoint and
    keys come from this test's environment)."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPFRAME_")}
    return subprocess.run(
        [sys.executable, "-m", "stepframe", *args],
        cwd=root,
        env={**env, "STEPFRAME_LOAD_PLUGINS": "aws"},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def test_runs_show_prices_a_job_by_what_sagemaker_billed(
    project: Project_,
    recording: Recording,
    sagemaker_like: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json
    import re

    def billed(job: Any) -> None:
        job.billable_time_in_seconds = 120  # per instance; spot: already discounted
        job.training_time_in_seconds = 300

    driver = play_sagemaker(recording, monkeypatch, before_end=billed)
    result = project.run(settings=', "use_spot": True, "instance_count": 2')
    driver.join(10)
    assert driver.errors == []  # type: ignore[attr-defined]
    name = f"fit-train-{result.run_id}-1"

    shown = _stepframe(project.root, "runs", "show", result.run_id[-6:], "--price")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "\ncost (estimates from list prices, instances only: not a bill)\n" in out, out
    # 120 s x 2 instances x $0.115/h; on demand it would have been 300 s.
    row = (
        rf"\n  train\s+1\s+{name}\s+\$0\.0077\s+2 x ml\.m5\.large, 120 billable s at "
        r"\$0\.115/h; managed spot saved 60% \(\$0\.02 on demand\)\n"
    )
    assert re.search(row, out), out
    assert re.search(r"\n  total\s+\$0\.0077\s*\n", out), out
    assert (
        "  prices: stepframe-aws's table of SageMaker training on-demand list prices, "
        "us-east-1, 2024: an estimate\n" in out
    ), out
    # The in-process steps bill nothing: no rows of their own.
    assert "no estimate for the other 2 job(s)" in out, out

    table = project.root / "prices.toml"
    table.write_text('# USD per instance-hour\n"ml.m5.large" = 3.6\n')
    shown = _stepframe(
        project.root, "runs", "show", result.run_id, "--price-table", str(table), "--json"
    )
    assert shown.returncode == 0, shown.stderr
    (cost,) = [c for c in json.loads(shown.stdout)["costs"] if c["step"] == "train"]
    assert cost["amount"] == pytest.approx(120 * 2 * 3.6 / 3600)
    assert (cost["job_id"], cost["prices"]) == (name, "your price table")


def test_a_bad_price_table_is_one_line_and_exit_2(project: Project_) -> None:
    table = project.root / "prices.toml"
    table.write_text('"ml.m5.large" = "cheap"\n')
    shown = _stepframe(project.root, "runs", "show", "nothing", "--price-table", str(table))
    assert shown.returncode == 2
    assert shown.stderr == (
        f"stepframe: error: --price-table {table}: ml.m5.large = 'cheap' is not a price; "
        'write one line per instance type: "ml.g5.xlarge" = 1.408 (USD per hour)\n'
    )


# ---- several instances ---------------------------------------------------------------------

HOST_MARK = "\n    ".join(
    [
        "import json, stepframe",
        "job = stepframe.current_job()",
        "with open(os.path.join(os.environ['HOSTS_DIR'], job.current_host), 'w') as mark:",
        "    json.dump([job.rank, job.world_size, job.master_addr, len(xs)], mark)",
    ]
)


def test_a_step_on_two_instances_runs_on_both_and_writes_its_outputs_once(
    project: Project_,
    recording: Recording,
    sagemaker_like: list[str],
    tmp_path: Path,
) -> None:
    """Two entrypoint processes play SageMaker's two hosts: both run the step (each
    knows its rank and the first host), only algo-1 writes the outputs and the result
    manifest, and both exit 0 (host 2 used to fail on write-once, failing the job)."""
    import json

    marks = tmp_path / "marks"
    marks.mkdir()
    hosts = ["algo-1", "algo-2"]
    driver = play_sagemaker_hosts(recording, project.root, hosts, marks)
    result = project.run(body=HOST_MARK, settings=', "instance_count": 2')
    driver.join(60)
    assert driver.errors == []  # type: ignore[attr-defined]
    outcomes = driver.results  # type: ignore[attr-defined]
    assert {host: code for host, (code, _) in outcomes.items()} == {"algo-1": 0, "algo-2": 0}, (
        outcomes
    )
    assert "algo-2 (rank 1 of 2) ran the step; rank 0 on algo-1 writes" in outcomes["algo-2"][1]
    (sent,) = recording.requests("CreateTrainingJob")
    assert sent["ResourceConfig"]["InstanceCount"] == 2
    assert json.loads((marks / "algo-1").read_text()) == [0, 2, "algo-1", 5]
    assert json.loads((marks / "algo-2").read_text()) == [1, 2, "algo-1", 5]
    assert result.status == "succeeded"
    assert result.output("report") == "total=30.0"


def _history(root: Path) -> Any:
    from stepframe._history.database import RunHistory

    return RunHistory(root / ".stepframe" / "runs.db")
