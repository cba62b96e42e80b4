"""CLI start-up time and the cost of ``import stepframe``.

    python bench/cli_startup.py [--runs 15]

Prints the median wall time of ``stepframe --help`` and ``stepframe plugins`` (target:
under 0.25 s each), the cumulative ``python -X importtime`` figure for ``import
stepframe``, and whether ``import stepframe`` (or the CLI module) imported boto3, docker,
sagemaker, numpy or rich.  Exits 1 if it did; the timings are figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from _support import clean_env, stepframe_command, time_command, timing_line

TARGET_SECONDS = 0.25
HEAVY = ("boto3", "botocore", "docker", "sagemaker", "numpy", "rich")


def import_time_ms() -> float:
    """Cumulative microseconds ``python -X importtime`` reports for the stepframe package."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import stepframe"],
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    for line in result.stderr.splitlines():
        # import time: self [us] | cumulative | imported package
        parts = [part.strip() for part in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == "stepframe":
            return int(parts[1]) / 1000
    raise RuntimeError("python -X importtime printed no line for stepframe")


def heavy_modules_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], env=clean_env(), capture_output=True, text=True, check=True
    )
    loaded = {name.partition(".")[0] for name in json.loads(result.stdout.splitlines()[-1])}
    return sorted(loaded & set(HEAVY))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command")
    options = parser.parse_args()

    command = stepframe_command()
    print(f"stepframe: {command[0]}  (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="stepframe-bench-") as project:
        for args in (["--help"], ["plugins"]):
            times = time_command([*command, *args], options.runs, project)
            print(timing_line(f"stepframe {' '.join(args):<8}", times, TARGET_SECONDS))

    imports = statistics.median(import_time_ms() for _ in range(5))
    print(f"import stepframe (python -X importtime, cumulative): median {imports:.1f} ms")

    failed = False
    for code in ("import stepframe", "import stepframe._cli.main"):
        heavy = heavy_modules_after(code)
        print(f"{code}: heavy modules imported: {', '.join(heavy) or 'none'}")
        failed |= bool(heavy)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
