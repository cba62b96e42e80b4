"""What the dispatch benchmarks of the cloud operators share (sagemaker_dispatch.py,
gcp_vertex_dispatch.py, azureml_dispatch.py): the image builder of the measured project
(the real docker builder or a fixed image), timing ``stepframe run`` to the service's
create call, and the fake clock the polling figures run on."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _support import stepframe_command, timing_line

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
    return ImageRef({image!r}, "sha256:" + "ab" * 32)
"""

PIPELINE = """\
from stepframe import pipeline, step


@step(operator="{operator}")
def train() -> int:
    return 1


@pipeline
def bench() -> None:
    train()
"""


def add_arguments(parser: argparse.ArgumentParser, *, real_seconds: float) -> None:
    """The options every dispatch benchmark takes."""
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--builder", choices=("auto", "docker", "fixed"), default="auto")
    parser.add_argument("--registry", default="127.0.0.1:5000")
    parser.add_argument("--base-image", default="stepframe-test-base:bookworm")
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--real-seconds", type=float, default=real_seconds)
    parser.add_argument("--skip-dispatch", action="store_true")


def docker_ready(registry: str, base_image: str) -> str | None:
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


def dispatch(args: argparse.Namespace, bench: str, measure: Callable[[str], bool]) -> None:
    """``measure(builder)`` with the builder ``--builder`` asks for: ``auto`` takes docker
    when the engine, base image and registry are there, and falls back to the fixed image
    when that fails."""
    builder = args.builder
    if builder in ("auto", "docker"):
        problem = docker_ready(args.registry, args.base_image)
        if problem and builder == "docker":
            sys.exit(f"{bench}: --builder docker: {problem}")
        if problem:
            print(f"dispatch: real docker builder unavailable ({problem}); using a fixed image")
        builder = "fixed" if problem else "docker"
    if not measure(builder) and builder == "docker" and args.builder == "auto":
        print("dispatch: falling back to the fixed-image builder")
        measure("fixed")


class Dispatch:
    """One operator's dispatch figure: a project whose one step runs on ``operator``,
    ``stack(builder_toml, stack_lines)`` its ``stepframe.toml``, timed from ``stepframe
    run`` to the service's ``label`` call (`CreateTimes`).  ``interrupt``: the job stays
    queued, so each run is interrupted once the create came, as Ctrl-C does (it cancels
    the job); else each run ends by itself."""

    def __init__(
        self,
        args: argparse.Namespace,
        *,
        operator: str,
        fixed_image: str,
        creates: CreateTimes,
        label: str,
        interrupt: bool,
    ) -> None:
        self.args = args
        self.operator = operator
        self.fixed_image = fixed_image
        self.creates = creates
        self.label = label
        self.interrupt = interrupt

    def measure(
        self, builder: str, scratch: Path, env: dict[str, str], stack: Callable[[str, str], str]
    ) -> bool:
        """Print the figure with ``builder``; False when a create never came.  The runs'
        environment is ``env`` with `OFFLINE` over it."""
        env = {**env, **OFFLINE, "STEPFRAME_SECRETS_FILE": str(scratch / "secrets.json")}
        project = scratch / "project"
        write_project(project, env, self.operator, builder, self.args, self.fixed_image, stack)
        times = time_dispatches(
            project, env, self.creates, self.args.runs, builder, self.label, self.interrupt
        )
        return times is not None


def write_project(
    project: Path,
    env: dict[str, str],
    operator: str,
    builder: str,
    args: argparse.Namespace,
    fixed_image: str,
    stack: Callable[[str, str], str],
) -> None:
    """``project`` with the one-step pipeline on ``operator`` and its ``stepframe.toml``,
    ``stack(builder_toml, stack_lines)``.  The fixed builder's plugin is installed beside
    the project, on ``env``'s PYTHONPATH."""
    project.mkdir(parents=True)
    (project / "pipeline.py").write_text(PIPELINE.format(operator=operator))
    if builder == "docker":
        registry = f"{args.registry}/bench-{operator}-{uuid.uuid4().hex[:6]}"
        builder_toml = DOCKER_BUILDER.format(base_image=args.base_image, registry=registry)
        stack_lines = 'image_builder = "docker"\ncontainer_registry = "local"'
    else:
        site = project.parent / "site"
        site.mkdir()
        (site / "stepframe_bench_fixed.py").write_text(FIXED_PLUGIN.format(image=fixed_image))
        info = site / "stepframe_bench_fixed-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: stepframe-bench-fixed\nVersion: 0.1\n"
        )
        (info / "entry_points.txt").write_text("[stepframe]\nfixed-image = stepframe_bench_fixed\n")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
        builder_toml = FIXED_BUILDER
        stack_lines = 'image_builder = "fixed"'
    (project / "stepframe.toml").write_text(stack(builder_toml, stack_lines))


#: Under every run's environment: nothing reaches the real cloud (a dead HTTPS proxy),
#: and the run's output comes as it is printed.
OFFLINE = {
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost",
    "PYTHONUNBUFFERED": "1",
}


class CreateTimes:
    """When the service got each create call (this process's perf_counter): wraps the
    method ``name`` of ``owner`` (a service object, or a class whose instances serve)."""

    def __init__(self, owner: Any, name: str) -> None:
        self.times: list[float] = []
        self.arrived = threading.Event()
        original = getattr(owner, name)

        def create(*args: Any, **kwargs: Any) -> Any:
            self.times.append(time.perf_counter())
            self.arrived.set()
            return original(*args, **kwargs)

        setattr(owner, name, create)

    def since(self, started: float) -> float | None:
        """The first create after ``started``, if one came."""
        return next((t for t in self.times if t >= started), None)


def time_dispatches(
    project: Path,
    env: dict[str, str],
    creates: CreateTimes,
    runs: int,
    builder: str,
    label: str,
    interrupt: bool,
) -> list[float] | None:
    """Seconds from starting ``stepframe run pipeline.py`` to the create call, for
    ``runs`` runs after a first, uncounted one (it warms the file system cache and, with
    docker, builds and pushes); printed as one figure.  ``interrupt``: the job stays
    queued, so each run is interrupted once the create came, as Ctrl-C does (it cancels
    the job); else each run ends by itself.  None (the run's last lines printed) when a
    create never came."""
    times: list[float] = []
    outputs: list[str] = []
    for attempt in range(runs + 1):
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
        if interrupt:
            while not creates.arrived.wait(0.05):
                if process.poll() is not None or time.monotonic() > deadline:
                    break
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60 if interrupt else deadline - time.monotonic())
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        reader.join()
        created = creates.since(started)
        if created is None:
            tail = "\n".join("".join(output).strip().splitlines()[-8:])
            print(f"dispatch with the {builder} builder: no {label} arrived:\n{tail}")
            return None
        if attempt:
            times.append(created - started)
            outputs.append("".join(output))
    print(f"dispatch with the {builder} builder, image already in the registry:")
    print("  " + timing_line(f"stepframe run -> {label}", times, DISPATCH_TARGET))
    slowest = max(range(len(times)), key=times.__getitem__)
    if len(times) > 1 and times[slowest] > 2 * sorted(times)[len(times) // 2]:
        tail = "\n    ".join(outputs[slowest].strip().splitlines()[-6:])
        print(f"  the slowest run ({times[slowest]:.1f} s) ended with:\n    {tail}")
    return times


def _read_all(process: subprocess.Popen[str], into: list[str]) -> None:
    assert process.stdout is not None
    into.append(process.stdout.read())


#: Dispatch from `stepframe run` to the create call, image in the registry: at most.
DISPATCH_TARGET = 1.5
#: Job-status calls per job-minute: at most.
POLL_BUDGET = 12


class FakeClock:
    """UNIX time that moves only when the caller says so."""

    START = 1_800_000_000.0

    def __init__(self) -> None:
        self.now = self.START

    def __call__(self) -> float:
        return self.now


def per_minute(times: list[float], start: float, minutes: int) -> list[int]:
    """Calls in each whole minute after the first."""
    return [sum(1 for t in times if 60 * m <= t - start < 60 * (m + 1)) for m in range(1, minutes)]


def busiest_minute(times: list[float]) -> int:
    """The most calls in any 60 s."""
    return max((sum(1 for t in times if s <= t < s + 60) for s in times), default=0)


#: The polling figures' two callers: one waits the ``poll_after`` the status asks for, an
#: impatient one polls every 0.2 s.
CALLERS = (("caller waits poll_after", None), ("caller polls every 0.2 s", 0.2))


def poll_times(
    poll: Callable[..., Any],
    handle: Any,
    credentials: Any,
    calls: Callable[[], int],
    *,
    minutes: float = 0,
    caller_wait: float | None = None,
    real_seconds: float = 0,
) -> list[float]:
    """When each status call came while a job was polled: for ``minutes`` on a
    `FakeClock` (the caller waits ``poll_after``, or ``caller_wait``), or, with
    ``real_seconds``, that long on the real clock.

    :param poll: the operator's ``poll(handle, credentials, cursor, clock=)``.
    :param calls: how many status calls the service has had for the job so far.
    """
    clock: Callable[[], float] = time.time if real_seconds else FakeClock()
    start = clock()
    times: list[float] = []
    cursor = None
    while clock() - start < (real_seconds or 60 * minutes):
        before = calls()
        status = poll(handle, credentials, cursor, clock=clock)
        times.extend([clock()] * (calls() - before))
        cursor = status.cursor
        wait = caller_wait if caller_wait is not None else (status.poll_after or 0.0)
        if isinstance(clock, FakeClock):
            clock.now += wait
        else:
            time.sleep(wait)
    return times


def held_launch(name: str, manifest_uri: str, settings: Any, image: str) -> Any:
    """The launch of a polling figure's job (it never runs: the service holds it)."""
    from stepframe import ImageRef, Launch

    return Launch(
        run_id=name,
        pipeline="bench",
        step="train",
        attempt=1,
        job_name=name,
        manifest_uri=manifest_uri,
        result_uri=manifest_uri.replace("launch", "result"),
        command=("python", "-m", "stepframe.entrypoint", manifest_uri),
        environment={"STEPFRAME_LAUNCH_MANIFEST": manifest_uri},
        settings=settings,
        image=ImageRef(image, "sha256:" + "ab" * 32),
    )
