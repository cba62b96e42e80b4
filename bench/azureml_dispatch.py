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
import functools
import importlib
import json
import os
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
from _support import clean_env, stepframe_command, timing_line

TESTS = Path(__file__).resolve().parent.parent / "stepframe-azure" / "tests"
SUBSCRIPTION = "0b1f6471-1bf0-4dda-aec3-777788889999"
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


def dispatch(args: argparse.Namespace, service: Any, azurite: Any, scratch: Path) -> None:
    account = importlib.import_module("_azurite").ACCOUNT
    # The job stays Queued here: each run is interrupted once the create came.
    figure = Dispatch(
        args,
        operator="azureml",
        fixed_image="benchregistry.azurecr.io/steps/bench:v1",
        creates=CreateTimes(service, "_put_job"),
        label="PUT jobs/NAME",
        interrupt=True,
    )

    def measure(builder: str) -> bool:
        env = {
            **_children_env(),
            "BENCH_AZURE_TOKEN": "bench-token",
            "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string(),
            "HTTP_PROXY": "http://127.0.0.1:9",
        }
        return figure.measure(
            builder,
            scratch / builder,
            env,
            lambda builder_toml, stack_lines: STACK.format(
                account=account,
                container=azurite.create_container(),
                subscription=SUBSCRIPTION,
                builder=builder_toml,
                service=service.url,
                stack_lines=stack_lines,
            ),
        )

    run_dispatch(args, "azureml_dispatch", measure)


# ---- 3. polling ----------------------------------------------------------------------


def _held_job(service: Any) -> tuple[Any, Any]:
    """A command job the service keeps Queued, and the operator's handle to it."""
    from stepframe_azure._azureml import jobs
    from stepframe_azure._azureml.config import AzureMLOperatorConfig, AzureMLSettings
    from stepframe_azure._connector.config import MANAGEMENT_SCOPE

    from stepframe import Component, ComponentKind, Credentials, ResourceRequest

    name = f"poll-{uuid.uuid4().hex[:8]}"
    manifest = f"az://devstoreaccount1/bench/{name}/launch.json"
    launch = held_launch(
        name, manifest, AzureMLSettings(), "benchregistry.azurecr.io/steps/bench:v1"
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


def polling(args: argparse.Namespace, service: Any) -> None:
    from stepframe_azure._azureml import jobs

    for label, caller_wait in CALLERS:
        handle, credentials = _held_job(service)
        details_before = _calls(service, "details", handle.job_id)
        status_times = poll_times(
            jobs.poll,
            handle,
            credentials,
            functools.partial(_calls, service, "get-job", handle.job_id),
            minutes=args.minutes,
            caller_wait=caller_wait,
        )
        history_calls = _calls(service, "details", handle.job_id) - details_before
        counts = per_minute(status_times, FakeClock.START, args.minutes)
        busiest = busiest_minute(status_times)
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
    times = poll_times(
        jobs.poll,
        handle,
        credentials,
        functools.partial(_calls, service, "get-job", handle.job_id),
        real_seconds=args.real_seconds,
    )
    busiest = busiest_minute(times)
    print(
        f"polling, real clock, {args.real_seconds:g} s: {len(times)} job-status calls, "
        f"busiest 60 s {busiest}; budget <= {BUDGET}: "
        f"{'meets' if busiest <= BUDGET else 'MISSES'}  ratio {busiest / BUDGET:.2f} of budget"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser, real_seconds=75.0)
    parser.add_argument("--startup-runs", type=int, default=21)
    parser.add_argument("--skip-startup", action="store_true")
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
