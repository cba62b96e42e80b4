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
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _dispatch import (
    CALLERS,
    CreateTimes,
    Dispatch,
    FakeClock,
    add_arguments,
    held_launch,
    per_minute,
    poll_times,
)
from _dispatch import POLL_BUDGET as BUDGET
from _dispatch import dispatch as run_dispatch
from _support import clean_env

ACCOUNT = "123456789012"
REGION = "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/stepframe-bench"
BUCKET = "stepframe-bench"

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


# ---- 1. dispatch -------------------------------------------------------------------------


def dispatch(args: argparse.Namespace, endpoint: str, scratch: Path) -> None:
    import boto3
    from moto.sagemaker.models import SageMakerModelBackend

    s3 = boto3.client("s3", region_name=REGION)
    if BUCKET not in [bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])]:
        s3.create_bucket(Bucket=BUCKET)
    # moto says Completed at once and no entrypoint ran: each run ends by itself.
    figure = Dispatch(
        args,
        operator="sagemaker",
        fixed_image=f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/bench:v1",
        creates=CreateTimes(SageMakerModelBackend, "create_training_job"),
        label="CreateTrainingJob",
        interrupt=False,
    )

    def measure(builder: str) -> bool:
        env = {**clean_env(), **_aws_environment(endpoint)}
        prefix = f"store-{uuid.uuid4().hex[:6]}"
        return figure.measure(
            builder,
            scratch / builder,
            env,
            lambda builder_toml, stack_lines: STACK.format(
                region=REGION,
                bucket=BUCKET,
                prefix=prefix,
                builder=builder_toml,
                role=ROLE,
                stack_lines=stack_lines,
            ),
        )

    run_dispatch(args, "sagemaker_dispatch", measure)


# ---- 2. polling --------------------------------------------------------------------------


def _held_job() -> Any:
    """A submitted training job that moto keeps InProgress."""
    import boto3
    from moto.backends import get_backend

    from stepframe import Component, ComponentKind
    from stepframe_aws._sagemaker import jobs
    from stepframe_aws._sagemaker.config import SageMakerOperatorConfig, SageMakerSettings

    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    name = f"poll-{uuid.uuid4().hex[:8]}"
    manifest = f"s3://{BUCKET}/store/runs/{name}/train/attempt-1/launch.json"
    launch = held_launch(name, manifest, SageMakerSettings(), "bench:v1")
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


def polling(args: argparse.Namespace) -> None:
    from stepframe_aws._sagemaker import jobs
    from stepframe_aws._sagemaker.clients import clear_clients

    def held() -> tuple[Any, None, Callable[[], int]]:
        """A held job's handle, its credentials and its count of status calls so far."""
        clear_clients()
        handle = _held_job()
        return handle, None, _count_describes(handle).__len__

    for label, caller_wait in CALLERS:
        times = poll_times(jobs.poll, *held(), minutes=args.minutes, caller_wait=caller_wait)
        counts = per_minute(times, FakeClock.START, args.minutes)
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
    start = time.time()
    times = poll_times(jobs.poll, *held(), real_seconds=args.real_seconds)
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
    add_arguments(parser, real_seconds=90.0)
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
