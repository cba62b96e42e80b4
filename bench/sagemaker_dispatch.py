"""The ``sagemaker`` operator against moto: how fast a step reaches SageMaker, and how
often a running job is polled.

    python bench/sagemaker_dispatch.py [--runs 5] [--builder auto|docker|fixed]
        [--minutes 10] [--real-seconds 90]

Needs stepframe-aws and moto[server].  moto's server runs in this process on 127.0.0.1
(nothing reaches AWS: fake keys, a dead HTTPS proxy).

1. Dispatch overhead: from starting ``stepframe run`` (a subprocess, on an s3 artifact
   store in moto and an aws connector reading keys from ``env:``) to moto receiving
   CreateTrainingJob, with the step's image already in the registry.  ``docker`` uses the
   real docker builder and the registry at 127.0.0.1:5000 (a warm-up run builds and
   pushes once; `bash .ci/services.sh` starts them); ``fixed`` a test builder flavor
   that answers a fixed image by digest.  Target: median < 1.5 s.
2. Polling: DescribeTrainingJob calls per job-minute after the first minute, for a job
   held InProgress: the real ``poll()`` over a fake clock for ``--minutes`` (the caller
   waits ``poll_after``, and an impatient caller polls every 0.2 s), then one real run of
   ``--real-seconds``.  Budget: at most 12 per minute.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _support import clean_env, stepframe_command, timing_line

ACCOUNT = "123456789012"
REGION = "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/stepframe-bench"
BUCKET = "stepframe-bench"
BUDGET = 12
TARGET_SECONDS = 1.5

STACK = """\
active_stack = "aws"

[connectors.aws]
flavor = "aws"
auth_method = "secret-key"
aws_access_key_id = "env:AWS_ACCESS_KEY_ID"
aws_secret_access_key = "env:AWS_SECRET_ACCESS_KEY"
region = "{region}"

[artifact_stores.s3]
flavor = "s3"
connector = "aws"
path = "s3://{bucket}/{prefix}"

{builder}

[step_operators.sagemaker]
flavor = "sagemaker"
connector = "aws"
execution_role = "{role}"

[stacks.aws]
artifact_store = "s3"
step_operators = ["sagemaker"]
{stack_lines}
"""

DOCKER_BUILDER = """\
[image_builders.docker]
flavor = "docker"
parent_image = "{base_image}"

[container_registries.local]
flavor = "default"
uri = "{registry}"
"""

FIXED_BUILDER = """\
[image_builders.fixed]
flavor = "fixed-image"
"""

# The test builder flavor, installed for the subprocess through a dist-info entry point.
FIXED_PLUGIN = """\
from stepframe import ComponentKind, Flavor, ImageRef, hookimpl


@hookimpl
def register_flavors(register):
    register(Flavor(kind=ComponentKind.IMAGE_BUILDER, name="fixed-image"))


@hookimpl
def build_image(request, builder):
    if builder.flavor != "fixed-image":
        return None
    return ImageRef("123456789012.dkr.ecr.us-east-1.amazonaws.com/bench:v1", "sha256:" + "ab" * 32)
"""

PIPELINE = """\
from stepframe import pipeline, step


@step(operator="sagemaker")
def train() -> int:
    return 1


@pipeline
def bench() -> None:
    train()
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _aws_environment(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/stepframe-bench",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
    }


def _docker_ready(registry: str, base_image: str) -> str | None:
    """Why the real docker builder cannot be used, or None when it can."""
    import urllib.request

    try:
        subprocess.run(["docker", "image", "inspect", base_image], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return f"no docker engine or no base image {base_image}"
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        opener.open(f"http://{registry.split('/')[0]}/v2/", timeout=2).read()
    except OSError:
        return f"no registry at {registry}"
    return None


# ---- 1. dispatch -------------------------------------------------------------------------


class CreateTimes:
    """When moto's backend got each CreateTrainingJob (this process's perf_counter)."""

    _installed: CreateTimes | None = None

    def __init__(self) -> None:
        from moto.sagemaker.models import SageMakerModelBackend

        self.times: list[float] = []
        original = SageMakerModelBackend.create_training_job
        seen = self

        def create(backend: Any, *args: Any, **kwargs: Any) -> Any:
            seen.times.append(time.perf_counter())
            return original(backend, *args, **kwargs)

        SageMakerModelBackend.create_training_job = create  # type: ignore[method-assign,assignment]

    @classmethod
    def installed(cls) -> CreateTimes:
        if cls._installed is None:
            cls._installed = cls()
        return cls._installed

    def since(self, started: float) -> float | None:
        """The first CreateTrainingJob after ``started``, if one came."""
        return next((t for t in self.times if t >= started), None)


def dispatch(args: argparse.Namespace, endpoint: str, scratch: Path) -> list[float] | None:
    builder = args.builder
    if builder in ("auto", "docker"):
        problem = _docker_ready(args.registry, args.base_image)
        if problem and builder == "docker":
            sys.exit(f"sagemaker_dispatch: --builder docker: {problem}")
        if problem:
            print(f"dispatch: real docker builder unavailable ({problem}); using a fixed image")
        builder = "fixed" if problem else "docker"
    times = _dispatch_with(builder, args, endpoint, scratch / builder)
    if times is None and builder == "docker" and args.builder == "auto":
        print("dispatch: falling back to the fixed-image builder")
        times = _dispatch_with("fixed", args, endpoint, scratch / "fixed")
    return times


def _dispatch_with(
    builder: str, args: argparse.Namespace, endpoint: str, scratch: Path
) -> list[float] | None:
    import boto3

    project = scratch / "project"
    project.mkdir(parents=True)
    (project / "pipeline.py").write_text(PIPELINE)
    env = {**clean_env(), **_aws_environment(endpoint), "PYTHONUNBUFFERED": "1"}
    env["STEPFRAME_SECRETS_FILE"] = str(scratch / "secrets.json")
    if builder == "docker":
        registry = f"{args.registry}/bench-sm-{uuid.uuid4().hex[:6]}"
        builder_toml = DOCKER_BUILDER.format(base_image=args.base_image, registry=registry)
        stack_lines = 'image_builder = "docker"\ncontainer_registry = "local"'
    else:
        site = scratch / "site"
        site.mkdir()
        (site / "stepframe_bench_fixed.py").write_text(FIXED_PLUGIN)
        info = site / "stepframe_bench_fixed-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: stepframe-bench-fixed\nVersion: 0.1\n"
        )
        (info / "entry_points.txt").write_text("[stepframe]\nfixed-image = stepframe_bench_fixed\n")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
        builder_toml = FIXED_BUILDER
        stack_lines = 'image_builder = "fixed"'
    (project / "stepframe.toml").write_text(
        STACK.format(
            region=REGION,
            bucket=BUCKET,
            prefix=f"store-{uuid.uuid4().hex[:6]}",
            builder=builder_toml,
            role=ROLE,
            stack_lines=stack_lines,
        )
    )
    s3 = boto3.client("s3", region_name=REGION)
    if BUCKET not in [bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])]:
        s3.create_bucket(Bucket=BUCKET)
    creates = CreateTimes.installed()
    times = []
    # The first run warms the file system cache (and, with docker, builds and pushes).
    for attempt in range(args.runs + 1):
        started = time.perf_counter()
        process = subprocess.Popen(
            [*stepframe_command(), "run", "pipeline.py"],
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # moto says Completed at once and no entrypoint ran: the run ends by itself.
        output, _ = process.communicate(timeout=900 if attempt == 0 else 120)
        created = creates.since(started)
        if created is None:
            tail = "\n".join(output.strip().splitlines()[-6:])
            print(f"dispatch with the {builder} builder: no CreateTrainingJob arrived:\n{tail}")
            return None
        if attempt:
            times.append(created - started)
    print(f"dispatch with the {builder} builder, image already in the registry:")
    print("  " + timing_line("stepframe run -> CreateTrainingJob", times, TARGET_SECONDS))
    return times


# ---- 2. polling --------------------------------------------------------------------------


def _held_job() -> Any:
    """A submitted training job that moto keeps InProgress."""
    import boto3
    from moto.backends import get_backend

    from stepframe import Component, ComponentKind, ImageRef, Launch
    from stepframe_aws._sagemaker import jobs
    from stepframe_aws._sagemaker.config import SageMakerOperatorConfig, SageMakerSettings

    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    name = f"poll-{uuid.uuid4().hex[:8]}"
    manifest = f"s3://{BUCKET}/store/runs/{name}/train/attempt-1/launch.json"
    launch = Launch(
        run_id=name,
        pipeline="bench",
        step="train",
        attempt=1,
        job_name=name,
        manifest_uri=manifest,
        result_uri=manifest.replace("launch", "result"),
        command=("python", "-m", "stepframe.entrypoint", manifest),
        environment={"STEPFRAME_LAUNCH_MANIFEST": manifest},
        settings=SageMakerSettings(),
        image=ImageRef("bench:v1", "sha256:" + "ab" * 32),
    )
    operator = Component(
        ComponentKind.STEP_OPERATOR, "sagemaker", "sagemaker", SageMakerOperatorConfig(ROLE)
    )
    handle = jobs.submit(launch, operator, None)
    job = get_backend("sagemaker")[ACCOUNT][REGION].training_jobs[handle.job_id]
    job.training_job_status = "InProgress"
    job.secondary_status = "Training"
    return handle


def _count_describes(handle: Any) -> list[float]:
    """Registers a hook on the poll client; returns the list it appends call times to."""
    from stepframe_aws._sagemaker.clients import cached_client

    calls: list[float] = []
    client = cached_client("poll", None, handle.data["region"])
    client.meta.events.register(
        "before-send.sagemaker.DescribeTrainingJob", lambda **kwargs: calls.append(0.0)
    )
    return calls


class FakeClock:
    """UNIX time that moves only when the caller says so."""

    START = 1_800_000_000.0

    def __init__(self) -> None:
        self.now = self.START

    def __call__(self) -> float:
        return self.now


def _per_minute(times: list[float], start: float, minutes: int) -> list[int]:
    """Calls in each whole minute after the first."""
    return [sum(1 for t in times if 60 * m <= t - start < 60 * (m + 1)) for m in range(1, minutes)]


def polling(args: argparse.Namespace) -> None:
    from stepframe_aws._sagemaker import jobs
    from stepframe_aws._sagemaker.clients import clear_clients

    callers = (("caller waits poll_after", None), ("caller polls every 0.2 s", 0.2))
    for label, caller_wait in callers:
        clear_clients()
        handle = _held_job()
        calls = _count_describes(handle)
        clock = FakeClock()
        times: list[float] = []
        cursor = None
        while clock.now - FakeClock.START < 60 * args.minutes:
            before = len(calls)
            status = jobs.poll(handle, None, cursor, clock=clock)
            times.extend([clock.now] * (len(calls) - before))
            cursor = status.cursor
            clock.now += caller_wait if caller_wait is not None else (status.poll_after or 0.0)
        counts = _per_minute(times, FakeClock.START, args.minutes)
        median = statistics.median(counts)
        print(
            f"polling, fake clock, {args.minutes} min, {label}: DescribeTrainingJob per "
            f"job-minute after the first: median {median:g} (min {min(counts)}, max "
            f"{max(counts)}), first minute {len([t for t in times if t - times[0] < 60])}; "
            f"budget <= {BUDGET}: {'meets' if max(counts) <= BUDGET else 'MISSES'}  "
            f"ratio {median / BUDGET:.2f} of budget"
        )
    if args.real_seconds <= 0:
        return
    clear_clients()
    handle = _held_job()
    calls = _count_describes(handle)
    times = []
    cursor = None
    start = time.time()
    while time.time() - start < args.real_seconds:
        before = len(calls)
        status = jobs.poll(handle, None, cursor)
        times.extend([time.time()] * (len(calls) - before))
        cursor = status.cursor
        time.sleep(status.poll_after or 0.0)
    after = [t for t in times if t - start >= 60]
    span = max(time.time() - start - 60, 1e-9)
    rate = len(after) * 60 / span
    print(
        f"polling, real clock, {args.real_seconds:g} s: {len(times)} DescribeTrainingJob "
        f"calls, {len([t for t in times if t - start < 60])} in the first minute, "
        f"{len(after)} in the {span:.0f} s after it = {rate:.1f} per minute; "
        f"budget <= {BUDGET}: {'meets' if rate <= BUDGET else 'MISSES'}  "
        f"ratio {rate / BUDGET:.2f} of budget"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--builder", choices=("auto", "docker", "fixed"), default="auto")
    parser.add_argument("--registry", default="127.0.0.1:5000")
    parser.add_argument("--base-image", default="stepframe-test-base:bookworm")
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--real-seconds", type=float, default=90.0)
    parser.add_argument("--skip-dispatch", action="store_true")
    args = parser.parse_args()
    try:
        from moto.server import ThreadedMotoServer

        import stepframe_aws  # noqa: F401
    except ImportError as error:
        print(f"sagemaker_dispatch: {error}; pip install ./stepframe-aws 'moto[server]'")
        return 2
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(_aws_environment(endpoint))
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory(prefix="stepframe-bench-") as scratch:
            if not args.skip_dispatch:
                dispatch(args, endpoint, Path(scratch))
            polling(args)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
