"""A fully cached re-run of the quickstart pipeline: what stepframe itself costs.

    python bench/cached_rerun.py [--runs 9]

Copies examples/quickstart into a temporary project, runs it once, then times re-runs in
which every step is cached (nothing is dispatched) and subtracts the start-up time of the
interpreter itself (``python -c pass``).  Target: under 0.5 s beyond interpreter start.
The timings are figures, not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _support import clean_env, stepframe_command

TARGET_SECONDS = 0.5
QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart" / "pipeline.py"
STEPS = 5


def timed(args: list[str], cwd: str) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(
        args, cwd=cwd, env=clean_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"bench: {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return elapsed, result.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="timed re-runs")
    options = parser.parse_args()

    command = stepframe_command()
    print(f"stepframe: {command[0]}  (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="stepframe-bench-") as project:
        shutil.copy(QUICKSTART, Path(project) / "pipeline.py")
        first, _ = timed([*command, "run", "pipeline.py"], project)
        print(f"first run (every step runs): {first:.3f} s")
        reruns, starts = [], []
        for i in range(options.runs + 1):
            elapsed, out = timed([*command, "run", "pipeline.py"], project)
            if f"succeeded: {STEPS} cached" not in out:
                sys.exit(f"bench: the re-run was not fully cached:\n{out}")
            start, _ = timed([sys.executable, "-c", "pass"], project)
            if i:  # the first of each warms the file system cache and is not counted
                reruns.append(elapsed)
                starts.append(start)
    rerun, start = statistics.median(reruns), statistics.median(starts)
    beyond = rerun - start
    verdict = "meets" if beyond < TARGET_SECONDS else "MISSES"
    print(
        f"cached re-run median {rerun:.3f} s (min {min(reruns):.3f}, max {max(reruns):.3f}, "
        f"{len(reruns)} runs); python -c pass median {start:.3f} s"
    )
    print(
        f"cached re-run beyond interpreter start: {beyond:.3f} s  "
        f"target < {TARGET_SECONDS} s: {verdict}  ratio {beyond / TARGET_SECONDS:.2f} of target"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
