"""What the benchmark scripts share."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path


def stepframe_command() -> list[str]:
    """The ``stepframe`` script installed next to this Python, else the one on PATH."""
    script = Path(sys.executable).with_name("stepframe")
    if script.is_file():
        return [str(script)]
    found = shutil.which("stepframe")
    if found is None:
        sys.exit("bench: the `stepframe` command is not installed; pip install ./stepframe-core")
    return [found]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("STEPFRAME_")}


def time_command(args: list[str], runs: int, cwd: str) -> list[float]:
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        subprocess.run(
            args,
            cwd=cwd,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )
        elapsed = time.perf_counter() - start
        if i:  # the first run warms the file system cache and is not counted
            times.append(elapsed)
    return times


def timing_line(label: str, times: list[float], target_seconds: float) -> str:
    """One benchmark figure: median, spread, and how it stands against its target."""
    median = statistics.median(times)
    verdict = "meets" if median < target_seconds else "MISSES"
    return (
        f"{label} median {median:.3f} s  "
        f"(min {min(times):.3f}, max {max(times):.3f}, {len(times)} runs)  "
        f"target < {target_seconds} s: {verdict}  "
        f"ratio {median / target_seconds:.2f} of target"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a service a bench starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read a MiB at a time (a transfer bench's round-trip check)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def run_transfer(
    child: str, tool: str, direction: str, args: list[str], env: dict[str, str]
) -> dict[str, float]:
    """One transfer in a fresh process (so its memory is its own): ``python -c child tool
    direction *args``, whose last output line is the figures as JSON; exits on failure."""
    done = subprocess.run(
        [sys.executable, "-c", child, tool, direction, *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"bench: the {tool} {direction} transfer failed:\n{done.stderr}")
    return dict(json.loads(done.stdout.splitlines()[-1]))
