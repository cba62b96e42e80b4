"""Fan-out: 32 independent steps that each sleep 1 s, on the ``local`` operator.

    python bench/fanout.py [--steps 32] [--sleep 1.0] [--runs 3]

Writes the pipeline into a temporary project, runs ``stepframe run FILE --max-parallel
N`` and times the whole command; the steps' own durations come from ``stepframe runs
show RUN --json``.  Target: wall time at most 1.5 x the slowest step + 1 s.  Each step is
a fresh Python process (``python -m stepframe.entrypoint``), so its duration includes
that process's start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PIPELINE = """\
import time

from stepframe import pipeline, step


@step(operator="local")
def nap(index: int, seconds: float) -> int:
    time.sleep(seconds)
    return index


@pipeline
def fanout(steps: int = {steps}, seconds: float = {sleep}) -> None:
    for index in range(steps):
        nap(index, seconds)
"""


def stepframe_command() -> list[str]:
    script = Path(sys.executable).with_name("stepframe")
    if script.is_file():
        return [str(script)]
    found = shutil.which("stepframe")
    if found is None:
        sys.exit("bench: the `stepframe` command is not installed; pip install ./stepframe-core")
    return [found]


def run_once(project: Path, steps: int) -> tuple[float, float, float]:
    """(wall time of the CLI, slowest step, first start to last end of the steps)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEPFRAME_")}
    command = [*stepframe_command(), "run", "fanout_pipeline.py", "--max-parallel", str(steps)]
    start = time.perf_counter()
    result = subprocess.run(
        command, cwd=project, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"bench: the run failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    found = re.search(r"^run (\S+) of pipeline", result.stdout, re.MULTILINE)
    if found is None:
        sys.exit(f"bench: no run id in the output:\n{result.stdout}")
    shown = subprocess.run(
        [*stepframe_command(), "runs", "show", found.group(1), "--json"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    records = json.loads(shown.stdout)["steps"]
    if len(records) != steps or any(r["status"] != "succeeded" for r in records):
        sys.exit(f"bench: expected {steps} succeeded steps, got {records}")
    slowest = max(r["ended_at"] - r["started_at"] for r in records)
    span = max(r["ended_at"] for r in records) - min(r["started_at"] for r in records)
    return wall, slowest, span


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--sleep", type=float, default=1.0, help="seconds each step sleeps")
    parser.add_argument("--runs", type=int, default=3, help="runs; the figures are medians")
    options = parser.parse_args()

    print(
        f"{options.steps} steps x sleep {options.sleep} s, local operator, "
        f"--max-parallel {options.steps}, {options.runs} runs, {os.cpu_count()} CPUs"
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="stepframe-bench-fanout-") as folder:
        project = Path(folder)
        source = PIPELINE.format(steps=options.steps, sleep=options.sleep)
        (project / "fanout_pipeline.py").write_text(source)
        for number in range(1, options.runs + 1):
            wall, slowest, span = run_once(project, options.steps)
            limit = 1.5 * slowest + 1.0
            print(
                f"  run {number}: wall {wall:.2f} s, slowest step {slowest:.2f} s, "
                f"steps span {span:.2f} s, limit {limit:.2f} s"
            )
            results.append((wall, slowest, span))

    wall = statistics.median(r[0] for r in results)
    slowest = statistics.median(r[1] for r in results)
    span = statistics.median(r[2] for r in results)
    limit = 1.5 * slowest + 1.0
    verdict = "meets" if wall <= limit else "MISSES"
    print(f"median wall time:             {wall:.2f} s")
    print(f"median slowest step:          {slowest:.2f} s  (sleep {options.sleep} s)")
    print(f"median steps span:            {span:.2f} s")
    print(f"limit = 1.5 x slowest + 1 s:  {limit:.2f} s  -> {verdict}")
    print(f"ratio wall / slowest:         {wall / slowest:.2f}")
    print(f"ratio wall / limit:           {wall / limit:.2f}  (<= 1 meets the target)")
    # The slowest step includes its own process start-up, which is where 32 processes
    # starting at once on a few cores show: compare with the bare sleep as well.
    if options.sleep > 0:
        print(f"ratio wall / sleep:           {wall / options.sleep:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
