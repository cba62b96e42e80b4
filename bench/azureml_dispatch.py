"""The ``azureml`` operator's costs: loading the plugin, reaching AzureML, polling a job.

    python bench/azureml_dispatch.py [--runs 5] [--startup-runs 21]
        [--builder auto|docker|fixed] [--minutes 10] [--real-seconds 75]

Needs stepframe-azure[test] and Azurite (``azurite-blob``, see stepframe-azure's tests).
The AzureML job service of stepframe-azure/tests/_azureml_service.py runs in this
process on 127.0.0.1 (it judges each body by AzureML's REST models and, here, runs no
container: jobs stay Queued); Azurite is the artifact store; nothing reaches Azure (a
dead HTTPS proxy, a token from ``env:``).

1. ``stepframe plugins`` with stepframe-azure installed: median wall time with every
   installed plugin, with what stepframe-azure alone brings (the core, docker, azure) and
   with that less azure, taking turns; target at most 0.15 s; and whether loading the
   plugins imported any azure module (it must not).
2. Dispatch overhead: from starting ``stepframe run`` (a subprocess, with an azure
   connector, an azure-blob store on Azurite and an azureml operator) to the service
   receiving the job's create (PUT .../jobs/NAME), with the step's image already in the
   registry.  ``docker`` uses the real docker builder and the registry at 127.0.0.1:5000
   (a warm-up run builds and pushes once; `bash .ci/services.sh` starts them); ``fixed``
   a builder flavor that answers a fixed image by digest.  The run is interrupted once
   the create arrived (Ctrl-C: the job is cancelled).  Target: median at most 1.5 s.
3. Polling: job-status calls (GET .../jobs/NAME) per job-minute for a job held Queued,
   through the real ``poll()`` over a fake clock for ``--minutes`` (the caller waits
   ``poll_after``, or an impatient caller polls every 0.2 s), then one real run of
   ``--real-seconds``.  Budget: at most 12 in any minute.  Run history reads (the job's
   details, for its log) are shown beside them.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
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

TESTS = Path(__file__).resolve().parent.parent / "stepframe-azure" / "tests"
SUBSCRIPTION = "0b1f6471-1bf0-4dda-aec3-777788889999"
BUDGET = 12
DISPATCH_TARGET = 1.5
STARTUP_TARGET = 0.15

STACK = """\
active_stack = "azure"

[connectors.azure]
flavor = "azure"
auth_method = "access-token"
token = "env:BENCH_AZURE_TOKEN"

[artifact_stores.blob]
flavor = "azure-blob"
path = "az://{account}/{container}/store"

{builder}

[step_operators.azureml]
flavor = "azureml"
connector = "azure"
subscription_id = "{subscription}"
resource_group = "bench-rg"
workspace = "bench-ws"
endpoint = "{service}"
history_endpoint = "{service}"

[stacks.azure]
artifact_store = "blob"
step_operators = ["azureml"]
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
    return ImageRef("benchregistry.azurecr.io/steps/bench:v1", "sha256:" + "ab" * 32)
"""

PIPELINE = """\
from stepframe import pipeline, step


@step(operator="azureml")
def train() -> int:
    return 1


@pipeline
def bench() -> None:
    train()
"""

# Loads every installed plugin as `stepframe plugins` does; lists the azure modules loaded.
AZURE_IMPORTS = """
import json, sys
from stepframe._plugins.manager import load_plugins
plugins = load_plugins()
print(json.dumps({
    "plugins": sorted(plugins.infos),
    "azure": sorted(n for n in sys.modules if n.split(".")[0] in ("azure", "msal")),
}))
"""


def _children_env() -> dict[str, str]:
    # An editable install run with PYTHONDONTWRITEBYTECODE compiles every module at each
    # start; `pip install` of a wheel compiles them once.
    env = clean_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


# ---- 1. start-up ---------------------------------------------------------------------


# What each start-up figure loads: every installed plugin; what `pip install
# stepframe-azure` alone gives (the core's, docker and azure); the same less azure
# (docker only, so the difference is azure's share).
STARTUP_VARIANTS = {
    "all plugins": {},
    "core, docker, azure": {"STEPFRAME_LOAD_PLUGINS": "docker,azure"},
    "core, docker": {"STEPFRAME_LOAD_PLUGINS": "docker"},
}


def _time_plugins(env: dict[str, str], runs: int, cwd: str) -> dict[str, list[float]]:
    """Wall times of ``stepframe plugins`` per variant, the variants taking turns so a
    busy machine weighs on each alike; the first round warms the caches, uncounted."""
    times: dict[str, list[float]] = {name: [] for name in STARTUP_VARIANTS}
    for run in range(runs + 1):
        for name, extra in STARTUP_VARIANTS.items():
            started = time.perf_counter()
            subprocess.run(
                [*stepframe_command(), "plugins"],
                cwd=cwd,
                env={**env, **extra},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=True,
            )
            if run:
                times[name].append(time.perf_counter() - started)
    return times


def startup(args: argparse.Namespace) -> None:
    import compileall
    import importlib.util

    for package in ("stepframe", "stepframe_docker", "stepframe_azure"):
        spec = importlib.util.find_spec(package)
        if spec and spec.submodule_search_locations:
            for folder in spec.submodule_search_locations:
                compileall.compile_dir(folder, quiet=1)
    with tempfile.TemporaryDirectory(prefix="stepframe-bench-") as cwd:
        env = _children_env()
        loaded = subprocess.run(
            [sys.executable, "-c", AZURE_IMPORTS], env=env, capture_output=True, text=True
        )
        if loaded.returncode != 0:
            sys.exit(f"azureml_dispatch: loading the plugins failed:\n{loaded.stderr}")
        found = json.loads(loaded.stdout)
        if "azure" not in found["plugins"]:
            sys.exit(
                "azureml_dispatch: stepframe-azure is not installed (pip install ./stepframe-azure)"
            )
        times = _time_plugins(env, args.startup_runs, cwd)
    print(f"stepframe plugins (installed: {', '.join(found['plugins'])}):")
    for name, measured in times.items():
        print("  " + timing_line(f"{name}:", measured, STARTUP_TARGET))
    share = statistics.median(
        [a - b for a, b in zip(times["core, docker, azure"], times["core, docker"])]
    )
    print(f"  azure's share (median of the paired differences): {share:+.3f} s")
    azure = found["azure"]
    print(
        "  azure modules imported by loading the plugins: "
        + (", ".join(azure[:8]) + (" ..." if len(azure) > 8 else "") if azure else "none")
    )


# ---- 2. dispatch ---------------------------------------------------------------------


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


class CreateTimes:
    """When the service got each job create (this process's perf_counter)."""

    def __init__(self, service: Any) -> None:
        self.times: list[float] = []
        self.arrived = threading.Event()
        original = service._put_job

        def put_job(match: Any, body: Any) -> Any:
            self.times.append(time.perf_counter())
            self.arrived.set()
            return original(match, body)

        service._put_job = put_job

    def since(self, started: float) -> float | None:
        return next((t for t in self.times if t >= started), None)


def dispatch(args: argparse.Namespace, service: Any, azurite: Any, scratch: Path) -> None:
    builder = args.builder
    if builder in ("auto", "docker"):
        problem = _docker_ready(args.registry, args.base_image)
        if problem and builder == "docker":
            sys.exit(f"azureml_dispatch: --builder docker: {problem}")
        if problem:
            print(f"dispatch: real docker builder unavailable ({problem}); using a fixed image")
        builder = "fixed" if problem else "docker"
    creates = CreateTimes(service)
    done = _dispatch_with(builder, args, service, creates, azurite, scratch / builder)
    if not done and builder == "docker" and args.builder == "auto":
        print("dispatch: falling back to the fixed-image builder")
        _dispatch_with("fixed", args, service, creates, azurite, scratch / "fixed")


def _dispatch_with(
    builder: str,
    args: argparse.Namespace,
    service: Any,
    creates: CreateTimes,
    azurite: Any,
    scratch: Path,
) -> bool:
    account = importlib.import_module("_azurite").ACCOUNT
    project = scratch / "project"
    project.mkdir(parents=True)
    (project / "pipeline.py").write_text(PIPELINE)
    env = {
        **_children_env(),
        "BENCH_AZURE_TOKEN": "bench-token",
        "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string(),
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
        "STEPFRAME_SECRETS_FILE": str(scratch / "secrets.json"),
    }
    if builder == "docker":
        registry = f"{args.registry}/bench-azureml-{uuid.uuid4().hex[:6]}"
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
            account=account,
            container=azurite.create_container(),
            subscription=SUBSCRIPTION,
            builder=builder_toml,
            service=service.url,
            stack_lines=stack_lines,
        )
    )
    times = []
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
        # The job stays Queued here: interrupt the run as Ctrl-C does (it cancels the job).
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
            print(f"dispatch with the {builder} builder: no job create arrived:\n{tail}")
            return False
        if attempt:
            times.append(created - started)
    print(f"dispatch with the {builder} builder, image already in the registry:")
    print("  " + timing_line("stepframe run -> PUT jobs/NAME", times, DISPATCH_TARGET))
    return True


def _read_all(process: subprocess.Popen[str], into: list[str]) -> None:
    assert process.stdout is not None
    into.append(process.stdout.read())


# ---- 3. polling ----------------------------------------------------------------------


class FakeClock:
    """UNIX time that moves only when the caller says so."""

    START = 1_800_000_000.0

    def __init__(self) -> None:
        self.now = self.START

    def __call__(self) -> float:
        return self.now


def _held_job(service: Any) -> tuple[Any, Any]:
    """A command job the service keeps Queued, and the operator's handle to it."""
    from stepframe_azure._azureml import jobs
    from stepframe_azure._azureml.config import AzureMLOperatorConfig, AzureMLSettings
    from stepframe_azure._connector.config import MANAGEMENT_SCOPE

    from stepframe import Component, ComponentKind, Credentials, ImageRef, Launch, ResourceRequest

    name = f"poll-{uuid.uuid4().hex[:8]}"
    manifest = f"az://devstoreaccount1/bench/{name}/launch.json"
    launch = Launch(
        run_id=name,
        pipeline="bench",
        step="train",
        attempt=1,
        job_name=name,
        manifest_uri=manifest,
        result_uri=manifest.replace("launch", "result"),
        command=("python", "-m", "stepframe.entrypoint", manifest),
        settings=AzureMLSettings(),
        image=ImageRef("benchregistry.azurecr.io/steps/bench:v1", "sha256:" + "ab" * 32),
    )
    config = AzureMLOperatorConfig(
        subscription_id=SUBSCRIPTION,
        resource_group="bench-rg",
        workspace="bench-ws",
        endpoint=service.url,
        history_endpoint=service.url,
    )
    operator = Component(ComponentKind.STEP_OPERATOR, "azureml", "azureml", config)
    credentials = Credentials(
        "azure", ResourceRequest("generic"), {"access_token": "bench", "scope": MANAGEMENT_SCOPE}
    )
    return jobs.submit(launch, operator, credentials), credentials


def _calls(service: Any, kind: str, name: str) -> int:
    return sum(
        1
        for call_kind, method, path, _ in list(service.requests)
        if call_kind == kind and f"/{name}" in path
    )


def _per_minute(times: list[float], start: float, minutes: int) -> list[int]:
    """Calls in each whole minute after the first."""
    return [sum(1 for t in times if 60 * m <= t - start < 60 * (m + 1)) for m in range(1, minutes)]


def _busiest_minute(times: list[float]) -> int:
    return max((sum(1 for t in times if s <= t < s + 60) for s in times), default=0)


def polling(args: argparse.Namespace, service: Any) -> None:
    from stepframe_azure._azureml import jobs

    callers = (("caller waits poll_after", None), ("caller polls every 0.2 s", 0.2))
    for label, caller_wait in callers:
        handle, credentials = _held_job(service)
        clock = FakeClock()
        status_times: list[float] = []
        history_calls = 0
        cursor = None
        while clock.now - FakeClock.START < 60 * args.minutes:
            before = _calls(service, "get-job", handle.job_id)
            details_before = _calls(service, "details", handle.job_id)
            status = jobs.poll(handle, credentials, cursor, clock=clock)
            status_times += [clock.now] * (_calls(service, "get-job", handle.job_id) - before)
            history_calls += _calls(service, "details", handle.job_id) - details_before
            cursor = status.cursor
            clock.now += caller_wait if caller_wait is not None else (status.poll_after or 0.0)
        counts = _per_minute(status_times, FakeClock.START, args.minutes)
        busiest = _busiest_minute(status_times)
        median = statistics.median(counts)
        print(
            f"polling, fake clock, {args.minutes} min, {label}: job-status calls per "
            f"job-minute after the first: median {median:g} (min {min(counts)}, max "
            f"{max(counts)}), busiest 60 s {busiest}; run history reads {history_calls}; "
            f"budget <= {BUDGET}: {'meets' if busiest <= BUDGET else 'MISSES'}  "
            f"ratio {busiest / BUDGET:.2f} of budget"
        )
    if args.real_seconds <= 0:
        return
    handle, credentials = _held_job(service)
    times: list[float] = []
    cursor = None
    start = time.time()
    while time.time() - start < args.real_seconds:
        before = _calls(service, "get-job", handle.job_id)
        status = jobs.poll(handle, credentials, cursor)
        times += [time.time()] * (_calls(service, "get-job", handle.job_id) - before)
        cursor = status.cursor
        time.sleep(status.poll_after or 0.0)
    busiest = _busiest_minute(times)
    print(
        f"polling, real clock, {args.real_seconds:g} s: {len(times)} job-status calls, "
        f"busiest 60 s {busiest}; budget <= {BUDGET}: "
        f"{'meets' if busiest <= BUDGET else 'MISSES'}  ratio {busiest / BUDGET:.2f} of budget"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--startup-runs", type=int, default=21)
    parser.add_argument("--builder", choices=("auto", "docker", "fixed"), default="auto")
    parser.add_argument("--registry", default="127.0.0.1:5000")
    parser.add_argument("--base-image", default="stepframe-test-base:bookworm")
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--real-seconds", type=float, default=75.0)
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--skip-dispatch", action="store_true")
    args = parser.parse_args()
    try:
        import stepframe_azure  # noqa: F401
    except ImportError as error:
        print(f"azureml_dispatch: {error}; pip install './stepframe-azure[test]'")
        return 2
    if not args.skip_startup:
        startup(args)
    sys.path.insert(0, str(TESTS))
    # The tests' own modules (not installed): imported by name from their folder.
    azurite_module = importlib.import_module("_azurite")
    service_class = importlib.import_module("_azureml_service").AzureMLService

    # Nothing may reach Azure from this process either.
    os.environ.update({"HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost"})
    service = service_class(run_containers=False).start()
    try:
        if not args.skip_dispatch:
            program = azurite_module.find_azurite()
            if program is None:
                print("dispatch: skipped, no azurite-blob (see stepframe-azure/tests/_azurite.py)")
            else:
                azurite = azurite_module.start_azurite(program)
                try:
                    with tempfile.TemporaryDirectory(prefix="stepframe-bench-") as scratch:
                        dispatch(args, service, azurite, Path(scratch))
                finally:
                    azurite.stop()
        polling(args, service)
    finally:
        service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
