"""CLI start-up time and the cost of ``import stepframe``.

    python bench/cli_startup.py [--runs 15] [--before REV]

Prints which plugins are installed, the median wall time of ``stepframe --help``,
``stepframe plugins`` and ``stepframe stack --help`` (a core command that needs no plugin;
target: under 0.25 s each), the cumulative ``python -X importtime`` figure for ``import
stepframe``, and whether ``import stepframe`` (or the CLI module) imported boto3, docker,
sagemaker, numpy or rich.  Exits 1 if it did; the timings are figures, not a test.

``--before REV`` times the same commands with the core of git revision REV and with the
core of HEAD, each unpacked alike and put first on PYTHONPATH (the plugins stay the
installed ones), a run of one alternating with a run of the other so that the machine's
load falls on both alike, and prints both medians (wall and CPU time) and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


COMMANDS = (["--help"], ["plugins"], ["stack", "--help"])


def installed_plugins() -> str:
    result = subprocess.run(
        [*stepframe_command(), "plugins", "--json"],
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    found = {info["distribution"] or "registered directly" for info in json.loads(result.stdout)}
    return ", ".join(sorted(found))


def core_source_of(revision: str, into: Path) -> Path:
    """``stepframe-core/src`` as it was at ``revision``, unpacked under ``into``."""
    root = Path(__file__).resolve().parent.parent
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", revision, "stepframe-core/src"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "stepframe-core" / "src"


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_alternating(
    args: list[str], runs: int, cwd: str, envs: list[dict[str, str]]
) -> tuple[list[list[float]], list[list[float]]]:
    """Wall times and CPU times (user + system) of ``args`` under each environment, one
    run of each in turn (a first, untimed round warms the file system cache).  On a
    loaded machine the CPU time is the steadier figure: waiting for a core is not in it."""
    times: list[list[float]] = [[] for _ in envs]
    cpu: list[list[float]] = [[] for _ in envs]
    for i in range(runs + 1):
        for slot, env in enumerate(envs):
            start, cpu_start = time.perf_counter(), child_cpu_seconds()
            subprocess.run(
                args,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=True,
            )
            if i:
                times[slot].append(time.perf_counter() - start)
                cpu[slot].append(child_cpu_seconds() - cpu_start)
    return times, cpu


def compare(command: list[str], revision: str, runs: int, project: str) -> None:
    with tempfile.TemporaryDirectory(prefix="stepframe-bench-before-") as scratch:
        env = clean_env()
        before, now = (
            {
                **env,
                "PYTHONPATH": os.pathsep.join(
                    [str(core_source_of(rev, Path(scratch) / rev)), env.get("PYTHONPATH", "")]
                ),
            }
            for rev in (revision, "HEAD")
        )
        for args in COMMANDS:
            (old, new), (old_cpu, new_cpu) = time_alternating(
                [*command, *args], runs, project, [before, now]
            )
            label = f"stepframe {' '.join(args):<12}"
            for kind, was, now_ in (("wall", old, new), ("CPU ", old_cpu, new_cpu)):
                print(
                    f"{label} {kind} median {revision} {statistics.median(was):.3f} s, "
                    f"HEAD {statistics.median(now_):.3f} s, "
                    f"ratio {statistics.median(now_) / statistics.median(was):.2f}  "
                    f"({runs} runs each)"
                )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command")
    parser.add_argument("--before", metavar="REV", help="also time the core of git revision REV")
    options = parser.parse_args()

    command = stepframe_command()
    print(f"stepframe: {command[0]}  (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    print(f"plugin distributions installed: {installed_plugins()}")
    print(f"load average: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="stepframe-bench-") as project:
        for args in COMMANDS:
            times = time_command([*command, *args], options.runs, project)
            print(timing_line(f"stepframe {' '.join(args):<12}", times, TARGET_SECONDS))
        if options.before:
            compare(command, options.before, options.runs, project)

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
