"""One SageMaker local-mode job, run by ``python -m stepframe_aws._sagemaker.local_runner SPEC``.

`local_mode.submit_local` starts this module as a detached process in a session of its
own, with its output going to the job's log file, and returns at once.  Here, and only
here, the SageMaker SDK (v2) is imported (about 3 s): a ``LocalSession`` and an
``Estimator`` with ``instance_type="local"`` run the step's image through Docker
Compose, the way a SageMaker training job would run it, and ``fit`` blocks until the
container ends.  The outcome goes to ``status.json`` in the job's folder, which
`local_mode.poll_local` reads.

SPEC is a JSON file written by `local_mode` (no secrets in it): the image references to
try, the role, region, S3 endpoint, the job's environment and entry point, input
channels, output path, container root and the labels put on the job's containers.  The
AWS credentials, when the operator has a connector, come in this process's environment.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from stepframe_aws._sagemaker.local_mode import (
    COMPOSE_MISSING,
    SDK_MISSING,
    compose_available,
    remove_job_containers,
)

__all__ = ["main"]


def write_status(path: str, state: str, reason: str | None = None, **extra: Any) -> None:
    """Write the job's outcome atomically (poll may read it at any moment)."""
    record = {"state": state, "reason": reason, "ended_at": time.time(), **extra}
    scratch = f"{path}.{os.getpid()}.tmp"
    with open(scratch, "w") as out:
        json.dump(record, out)
    os.replace(scratch, path)


def choose_image(spec: dict[str, Any]) -> str:
    """The first of the candidate references (digest first, then tag) the local engine
    has; else the first, which Compose pulls."""
    candidates: list[str] = list(spec["images"])
    try:
        import docker

        client = docker.from_env()
    except Exception:  # no engine here: Compose will say so, clearly enough
        return candidates[0]
    from docker.errors import DockerException

    for reference in candidates:
        try:
            client.images.get(reference)
        except DockerException:
            continue
        return reference
    return candidates[0]


# Set by SIGTERM (a cancel).  The SDK's telemetry wrapper around `fit` returns from a
# `finally`, which swallows the SystemExit the handler raises, so `main` checks this too.
_stopped: list[int] = []


def _on_sigterm(signum: int, frame: Any) -> None:
    _stopped.append(signum)
    raise SystemExit(128 + signum)


def _run(spec: dict[str, Any]) -> None:
    try:
        import boto3
        from sagemaker.estimator import (
            Estimator,
        )
        from sagemaker.local.local_session import (
            LocalSession,
        )
    except ImportError as error:
        raise _Refused(f"{SDK_MISSING} ({error})") from None

    if not compose_available():
        raise _Refused(COMPOSE_MISSING)

    boto_session = boto3.Session(region_name=spec.get("region") or None)
    if boto_session.region_name is None:
        raise _Refused(
            "instance_type local: no AWS region; set the operator's region, the connector's "
            "region or AWS_DEFAULT_REGION"
        )
    session = LocalSession(
        boto_session=boto_session,
        s3_endpoint_url=spec.get("s3_endpoint_url") or None,
        # The SDK's defaults files are not read, and its telemetry is off: a job runner
        # does not phone home for its user.
        sagemaker_config={
            "SchemaVersion": "1.0",
            "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
        },
    )
    container_root = Path(spec["container_root"])
    container_root.mkdir(parents=True, exist_ok=True)
    session.config = {
        "local": {
            "local_code": True,
            "container_root": str(container_root),
            "container_config": {"labels": dict(spec["labels"])},
        }
    }
    image = choose_image(spec)
    print(f"stepframe: SageMaker local mode, job {spec['job_name']}, image {image}", flush=True)
    entry_point = list(spec["entry_point"])
    estimator = Estimator(
        image_uri=image,
        role=spec["role"],
        instance_count=int(spec.get("instance_count") or 1),
        instance_type="local",
        container_entry_point=entry_point[:3],
        container_arguments=entry_point[3:] or None,
        environment=dict(spec["environment"]),
        output_path=spec["output_path"],
        sagemaker_session=session,
    )
    # Blocks until the container ends; the container's output is copied to stdout.
    # With the SDK, the container gets the session's credentials in its environment,
    # the way a training job gets its role's: stepframe itself adds none.
    estimator.fit(
        inputs=spec.get("inputs") or None, job_name=spec["job_name"], wait=True, logs=True
    )


def _say(line: str) -> None:
    print(line, flush=True)


class _Refused(Exception):
    """A precondition the user has to fix; its message is the whole story."""


def main(argv: list[str]) -> int:
    spec_path = argv[1]
    with open(spec_path) as handle:
        spec = json.load(handle)
    status_path = spec["status_path"]
    signal.signal(signal.SIGTERM, _on_sigterm)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stdout,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    noisy_loggers = (
        "botocore",
        "boto3",
        "urllib3",
        "s3transfer",
        "docker",
        "sagemaker.config",
        "sagemaker.telemetry",
        "sagemaker.deprecations",
    )
    for noisy in noisy_loggers:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    started = time.time()
    outcome: tuple[str, str | None] = ("succeeded", None)
    code = 0
    try:
        _run(spec)
        if _stopped:
            raise SystemExit(128 + _stopped[0])
    except _Refused as error:
        print(f"stepframe: {error}", flush=True)
        outcome, code = ("failed", str(error)), 2
    except SystemExit as stop:  # SIGTERM: a cancel
        print("stepframe: the local-mode job was stopped", flush=True)
        outcome = ("cancelled", "stopped by a cancel")
        code = stop.code if isinstance(stop.code, int) else 143
    except KeyboardInterrupt:
        outcome, code = ("cancelled", "interrupted"), 130
    except BaseException as error:
        if _stopped:  # the SDK turned the stop into another error on its way out
            outcome, code = ("cancelled", "stopped by a cancel"), 128 + _stopped[0]
        else:
            traceback.print_exc(file=sys.stdout)
            message = str(error).strip() or type(error).__name__
            outcome, code = ("failed", f"SageMaker local mode: {message}"), 1
    # Clean up before the status says the job ended, so nothing of it is left by then.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    removed = remove_job_containers(spec["stepframe_job"], say=_say)
    if removed:
        print(f"stepframe: removed container(s) {', '.join(removed)}", flush=True)
    # The compose file the SDK wrote holds the session's credentials; the rest is
    # scratch (the SDK deletes the input data itself).
    shutil.rmtree(spec["container_root"], ignore_errors=True)
    state, reason = outcome
    write_status(status_path, state, reason, seconds=round(time.time() - started, 3))
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
