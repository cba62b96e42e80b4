"""How fast the configuration commands answer in a configured project.

    python bench/cli_config.py [--runs 15]

Registers a few components and a stack with the CLI in a temporary project (the
installed first-party plugins' flavors too, when they take no required options), then
prints the median wall time of ``stepframe stack describe`` and ``stepframe step-operator
list`` (target: under 0.3 s each).  The timings are figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from _support import clean_env, stepframe_command, time_command, timing_line

TARGET_SECONDS = 0.3


def run(command: list[str], args: list[str], cwd: str, check: bool = True) -> str:
    result = subprocess.run(
        [*command, *args], cwd=cwd, env=clean_env(), capture_output=True, text=True
    )
    if check and result.returncode != 0:
        sys.exit(f"bench: stepframe {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout if result.returncode == 0 else ""


def configure(command: list[str], project: str) -> list[str]:
    """Register components and a stack; return what the stack holds."""
    shared = ["artifact-store", "register", "shared", "-f", "local", "--path", "shared"]
    run(command, shared, project)
    run(command, ["step-operator", "register", "proc", "-f", "local"], project)
    run(command, ["step-operator", "register", "proc2", "-f", "local"], project)
    stack = ["-a", "shared", "-s", "proc", "-s", "proc2"]
    flavors = run(command, ["flavor", "list"], project).splitlines()
    held = ["artifact store shared (local)", "step operators proc, proc2 (local)"]
    # The first-party plugins' flavors, where they register without options.
    for kind, option in (("image_builder", "-i"), ("container_registry", "-c")):
        flavor = next((row.split()[1] for row in flavors if row.split()[0] == kind), None)
        name = kind.replace("_", "-")
        if flavor and run(command, [name, "register", "b", "-f", flavor], project, check=False):
            stack += [option, "b"]
            held.append(f"{kind.replace('_', ' ')} b ({flavor})")
    run(command, ["stack", "register", "bench", *stack, "--set"], project)
    return held


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command")
    options = parser.parse_args()

    command = stepframe_command()
    print(f"stepframe: {command[0]}  (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory(prefix="stepframe-bench-") as project:
        plugins = json.loads(run(command, ["plugins", "--json"], project))
        print("plugins: " + ", ".join(f"{p['name']} ({p['distribution']})" for p in plugins))
        print("stepframe.toml: " + "; ".join(configure(command, project)))
        for args in (["stack", "describe"], ["step-operator", "list"]):
            times = time_command([*command, *args], options.runs, project)
            print(timing_line(f"stepframe {' '.join(args):<18}", times, TARGET_SECONDS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
