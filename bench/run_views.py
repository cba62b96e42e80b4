"""Looking at runs afterwards: the report, the web view and the client API.

    python bench/run_views.py [--runs 7]

Runs two pipelines once in a temporary project (200 in-process steps; one step returning
a 1 MB JSON list), then times, as medians:

- ``stepframe report RUN`` of the 200-step run, the whole command (target < 0.5 s);
- ``stepframe ui``'s page for that run, served by the real command, from request to last
  byte, after a first request (target < 0.1 s);
- a fresh ``python -c`` doing ``Runs().latest(...).step(...).output()`` for the 1 MB JSON
  artifact, the whole process (target < 0.2 s).

The timings are figures, not a test.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _support import clean_env, stepframe_command, timing_line

WIDE = """
from stepframe import pipeline, step

@step
def source(rows: int = 100) -> list[int]:
    return list(range(rows))

@step
def part(xs: list[int], index: int) -> dict[str, int]:
    return {"index": index, "sum": sum(xs) * index}

@step
def pair(a: dict[str, int], b: dict[str, int]) -> int:
    return a["sum"] + b["sum"]

@pipeline
def wide(width: int = 133) -> None:   # 1 + 133 + 66 = 200 steps
    xs = source()
    parts = [part(xs, i) for i in range(width)]
    for i in range(0, width - 1, 2):
        pair(parts[i], parts[i + 1])
"""

BIG = """
from stepframe import pipeline, step

@step
def vector(n: int = 55_000) -> list[float]:   # about 1 MB of JSON
    return [i / 7 for i in range(n)]

@pipeline
def big() -> None:
    vector()
"""

LOAD = (
    "from stepframe import Runs; "
    "v = Runs().latest('big').step('vector').output(); assert len(v) == 55_000"
)


def run(args: list[str], cwd: str) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=clean_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"bench: {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


CPU_TIMES: dict[str, list[float]] = {}


def timed(args: list[str], cwd: str, runs: int) -> list[float]:
    """Wall-clock times; the processes' CPU times go to CPU_TIMES (on a busy machine
    they say more about stepframe's own cost than the wall clock does)."""
    times = []
    cpu = CPU_TIMES.setdefault(" ".join(args), [])
    for i in range(runs + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        run(args, cwd)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if i:  # the first warms the file system cache and is not counted
            times.append(elapsed)
            cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return times


def cpu_line(args: list[str]) -> str:
    values = CPU_TIMES[" ".join(args)]
    return f"  (CPU time of the process: median {statistics.median(values):.3f} s)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed repetitions")
    options = parser.parse_args()
    command = stepframe_command()
    print(f"stepframe: {command[0]}  (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="stepframe-bench-") as project:
        Path(project, "wide.py").write_text(WIDE)
        Path(project, "big.py").write_text(BIG)
        out = run([*command, "run", "wide.py"], project)
        wide_id = re.search(r"run (\S+) succeeded: 200 succeeded", out)
        if wide_id is None:
            sys.exit(f"bench: the 200-step run did not succeed:\n{out}")
        run([*command, "run", "big.py"], project)
        size = sum(p.stat().st_size for p in Path(project, ".stepframe").rglob("output"))
        print(f"runs recorded: 200 steps ({wide_id.group(1)}); 1 MB JSON ({size} bytes of outputs)")

        report_command = [*command, "report", wide_id.group(1), "-o", "r.html"]
        report = timed(report_command, project, options.runs)
        print(timing_line("stepframe report, 200 steps:", report, 0.5))
        print(cpu_line(report_command))

        ui = subprocess.Popen(
            [*command, "ui"],
            cwd=project,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert ui.stdout is not None
            url = re.search(r"http://127\.0\.0\.1:\d+/", ui.stdout.readline())
            if url is None:
                sys.exit("bench: stepframe ui printed no address")
            page = f"{url.group(0)}run/{wide_id.group(1)}"
            pages = []
            for i in range(options.runs * 3 + 1):
                start = time.perf_counter()
                with urllib.request.urlopen(page, timeout=30) as response:
                    response.read()
                if i:  # the first reads the manifests; later requests reuse them
                    pages.append(time.perf_counter() - start)
        finally:
            ui.terminate()
            ui.wait(timeout=10)
        print(timing_line("stepframe ui run page, 200 steps:", pages, 0.1))

        loads = timed([sys.executable, "-c", LOAD], project, options.runs)
        print(timing_line("Runs()...output(), 1 MB JSON, fresh process:", loads, 0.2))
        print(cpu_line([sys.executable, "-c", LOAD]))
        starts = timed([sys.executable, "-c", "pass"], project, options.runs)
        print(f"  (the interpreter's own start: median {statistics.median(starts):.3f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
