"""SageMaker local mode without Docker: what submit checks and writes, how poll and cancel
read the runner's files.  The real thing runs in tests/integration (nox -s integration_aws).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import attrs
import pytest

from stepframe import (
    Component,
    ComponentKind,
    Credentials,
    ImageRef,
    JobHandle,
    JobState,
    Launch,
    ResourceRequest,
    StepframeError,
)
from stepframe.support import process_start_ticks
from stepframe_aws._sagemaker import local_mode
from stepframe_aws._sagemaker.config import SageMakerOperatorConfig, SageMakerSettings

ROLE = "arn:aws:iam::123456789012:role/stepframe-sagemaker"
DIGEST = "sha256:" + "ab" * 32


def _operator(**config: object) -> Component:
    return Component(
        ComponentKind.STEP_OPERATOR,
        "sm",
        "sagemaker",
        SageMakerOperatorConfig(execution_role=ROLE, instance_type="local", **config),  # type: ignore[arg-type]
    )


def _launch(tmp_path: Path, job_name: str = "flow-train-20261122-000000-abcdef-1") -> Launch:
    return Launch(
        run_id="20261122-000000-abcdef",
        pipeline="flow",
        step="train",
        attempt=1,
        job_name=job_name,
        manifest_uri="s3://bucket/runs/x/launch.json",
        result_uri="s3://bucket/runs/x/result.json",
        command=("python", "-m", "stepframe.entrypoint", "s3://bucket/runs/x/launch.json"),
        environment={"STEPFRAME_LAUNCH_MANIFEST": "s3://bucket/runs/x/launch.json"},
        image=ImageRef("127.0.0.1:5000/ns/proj:tag-1", DIGEST),
        code_root=str(tmp_path),
        workdir=str(tmp_path / ".stepframe" / "jobs"),
    )


def _sdk_installed(monkeypatch: pytest.MonkeyPatch, installed: bool) -> None:
    """Whether the SageMaker SDK seems installed; other modules are found as ever (moto's
    server looks its own up when it answers its first request)."""
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> object:
        if name == "sagemaker":
            return object() if installed else None
        return real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


@pytest.fixture
def tools_present(monkeypatch: pytest.MonkeyPatch) -> None:
    """Submit's checks pass: an SDK and docker-compose seem to be installed."""
    _sdk_installed(monkeypatch, True)
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")


@pytest.fixture
def no_runner(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Popen of the runner replaced by a short sleep; the commands it was given."""
    started: list[list[str]] = []
    real = subprocess.Popen

    def popen(command: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        started.append(command)
        env = kwargs["env"]
        assert isinstance(env, dict)
        Path(str(kwargs["cwd"]), "env.json").write_text(json.dumps(env))
        return real([sys.executable, "-c", "import time; time.sleep(0.5)"], **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(subprocess, "Popen", popen)
    return started


@pytest.mark.usefixtures("tools_present")
def test_job_names_follow_sagemakers_rule_without_collisions(
    tmp_path: Path, no_runner: list[list[str]]
) -> None:
    """Local mode names jobs the way remote jobs are named: valid names stay as they are,
    others get a hash of the whole name, so ``a_b`` and ``a.b`` stay apart."""
    rule = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
    names = {}
    for job_name in (
        "flow-train-20261122-000000-abcdef-1",
        "flow-a_b-20261122-000000-abcdef-1",
        "flow-a.b-20261122-000000-abcdef-1",
        "p" * 50 + "-step-" + "x" * 40 + "-1",
        "p" * 50 + "-step-" + "x" * 40 + "-2",
    ):
        handle = local_mode.submit_local(
            _launch(tmp_path, job_name), _operator(), SageMakerSettings(), None
        )
        spec = json.loads(Path(handle.data["dir"], "spec.json").read_text())
        assert spec["job_name"] == handle.job_id
        assert rule.match(handle.job_id), handle.job_id
        names[job_name] = handle.job_id
    assert names["flow-train-20261122-000000-abcdef-1"] == "flow-train-20261122-000000-abcdef-1"
    assert len(set(names.values())) == len(names), names


def test_without_the_sdk_submit_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sdk_installed(monkeypatch, False)
    with pytest.raises(StepframeError) as error:
        local_mode.submit_local(_launch(tmp_path), _operator(), SageMakerSettings(), None)
    assert str(error.value) == (
        "instance_type local needs the SageMaker SDK: pip install 'stepframe-aws[local]'"
    )


def test_without_compose_submit_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _sdk_installed(monkeypatch, True)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("PATH", str(tmp_path))  # no `docker` either
    with pytest.raises(StepframeError, match="needs Docker Compose"):
        local_mode.submit_local(_launch(tmp_path), _operator(), SageMakerSettings(), None)


@pytest.mark.usefixtures("tools_present")
def test_several_instances_and_torchrun_reach_the_sdks_estimator(
    tmp_path: Path, no_runner: list[list[str]]
) -> None:
    """The SDK's local mode runs one container per instance; the spec asks for them, and
    for the entrypoint's torchrun options when the step is distributed that way."""
    launch = _launch(tmp_path)
    settings = SageMakerSettings(instance_count=2, distribution="torchrun", processes_per_host=1)
    handle = local_mode.submit_local(launch, _operator(), settings, None)
    spec = json.loads(Path(handle.data["dir"], "spec.json").read_text())
    assert spec["instance_count"] == 2
    command = list(launch.command)
    assert spec["entry_point"] == [
        *command[:3],
        "--torchrun",
        "--processes-per-host=1",
        *command[3:],
    ]


@pytest.mark.usefixtures("tools_present")
def test_submit_writes_the_spec_and_returns_a_local_handle_at_once(
    tmp_path: Path, no_runner: list[list[str]]
) -> None:
    launch = _launch(tmp_path)
    settings = SageMakerSettings(
        environment={"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "EPOCHS": "3"},
        input_channels={"train": "s3://bucket/data/"},
    )
    operator = _operator(region="eu-west-1")
    started = time.monotonic()
    handle = local_mode.submit_local(launch, operator, settings, None)
    assert time.monotonic() - started < 2.0
    assert (handle.flavor, handle.operator, handle.job_id) == ("sagemaker", "sm", launch.job_name)
    assert handle.data["mode"] == "local"
    assert json.loads(json.dumps(dict(handle.data))) == dict(handle.data)
    assert no_runner == [
        [sys.executable, "-m", local_mode.RUNNER_MODULE, str(Path(handle.data["dir"], "spec.json"))]
    ]
    spec = json.loads(Path(handle.data["dir"], "spec.json").read_text())
    assert spec["images"] == [f"127.0.0.1:5000/ns/proj@{DIGEST}", "127.0.0.1:5000/ns/proj:tag-1"]
    assert spec["role"] == ROLE and spec["region"] == "eu-west-1"
    assert spec["entry_point"] == list(launch.command)
    assert spec["inputs"] == {"train": "s3://bucket/data/"}
    assert spec["output_path"] == Path(handle.data["dir"], "output").as_uri()
    assert spec["environment"] == {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        "EPOCHS": "3",
        "STEPFRAME_LAUNCH_MANIFEST": launch.manifest_uri,
        "PYTHONUNBUFFERED": "1",
    }
    assert spec["labels"]["stepframe.job"] == launch.job_name
    assert spec["instance_count"] == 1
    # The same job submitted again while its runner runs: the same job, no second runner.
    again = local_mode.submit_local(launch, operator, settings, None)
    assert again == handle and len(no_runner) == 1


@pytest.mark.usefixtures("tools_present")
def test_connector_credentials_go_to_the_runner_not_into_the_spec_or_the_job(
    tmp_path: Path, no_runner: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "someone-else")
    credentials = Credentials(
        "aws",
        ResourceRequest(),
        {
            "aws_access_key_id": "AKIACONNECTOR",
            "aws_secret_access_key": "connector-secret",
            "aws_session_token": "connector-token",
            "region": "ap-south-1",
            "endpoint_url": "http://127.0.0.1:2",
        },
    )
    handle = local_mode.submit_local(
        _launch(tmp_path), _operator(), SageMakerSettings(), credentials
    )
    folder = Path(handle.data["dir"])
    env = json.loads((folder / "env.json").read_text())
    assert env["AWS_ACCESS_KEY_ID"] == "AKIACONNECTOR"
    assert env["AWS_SESSION_TOKEN"] == "connector-token"
    assert "AWS_PROFILE" not in env
    spec_text = (folder / "spec.json").read_text()
    assert "connector-secret" not in spec_text and "AKIACONNECTOR" not in spec_text
    spec = json.loads(spec_text)
    assert not [k for k in spec["environment"] if k.startswith("AWS_") and "KEY" in k]
    assert (spec["region"], spec["s3_endpoint_url"]) == ("ap-south-1", "http://127.0.0.1:2")
    assert oct(folder.stat().st_mode & 0o777) == "0o700"


def test_submit_needs_an_image(tmp_path: Path, tools_present: None) -> None:
    launch = _launch(tmp_path)
    with pytest.raises(StepframeError, match="needs an image"):
        local_mode.submit_local(
            attrs.evolve(launch, image=None), _operator(), SageMakerSettings(), None
        )


def _handle(folder: Path, pid: int, ticks: str | None = None) -> JobHandle:
    folder.mkdir(parents=True, exist_ok=True)
    return JobHandle(
        "sagemaker",
        "sm",
        "job-1",
        {
            "mode": "local",
            "job": "job-1",
            "dir": str(folder),
            "log": str(folder / "runner.log"),
            "status": str(folder / "status.json"),
            "pid": pid,
            "start_ticks": ticks,
        },
    )


def test_poll_tails_the_log_from_the_cursor_and_reads_the_status(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        handle = _handle(tmp_path / "job", sleeper.pid, process_start_ticks(sleeper.pid))
        log = Path(handle.data["log"])
        log.write_bytes(b"one\n\x1b[36malgo-1 |\x1b[0m two\nthr")
        first = local_mode.poll_local(handle, None)
        assert first.state is JobState.RUNNING
        assert first.log_lines == ("one", "algo-1 | two")
        with log.open("ab") as out:
            out.write(b"ee\n")
        second = local_mode.poll_local(handle, first.cursor)
        assert second.log_lines == ("three",)
        Path(handle.data["status"]).write_text(json.dumps({"state": "succeeded"}))
        done = local_mode.poll_local(handle, second.cursor)
        assert done.state is JobState.SUCCEEDED and done.log_lines == ()
        assert local_mode.cancel_local(handle) is True  # ended: nothing to stop
    finally:
        sleeper.kill()
        sleeper.wait()


def test_poll_reports_failures_and_a_runner_gone_without_a_status(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    handle = _handle(tmp_path / "a", gone.pid, "1")
    status = local_mode.poll_local(handle, None)
    assert status.state is JobState.FAILED
    assert "ended without a status" in (status.failure_reason or "")

    failed = _handle(tmp_path / "b", gone.pid, "1")
    Path(failed.data["status"]).write_text(
        json.dumps({"state": "failed", "reason": "SageMaker local mode: exited with code 1"})
    )
    status = local_mode.poll_local(failed, None)
    assert status.state is JobState.FAILED
    assert status.failure_reason == "SageMaker local mode: exited with code 1"


def test_cancel_stops_the_runners_process_group(tmp_path: Path) -> None:
    runner = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        handle = _handle(tmp_path / "job", runner.pid, process_start_ticks(runner.pid))
        assert local_mode.cancel_local(handle) is True
        assert runner.wait(timeout=10) == -15
        status = local_mode.poll_local(handle, None)
        assert status.state is JobState.CANCELLED
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, 9)
            runner.wait()
