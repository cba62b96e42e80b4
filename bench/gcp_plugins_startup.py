"""``stepframe plugins`` with stepframe-gcp installed, and what the time is spent on.

    python bench/gcp_plugins_startup.py [--runs 21]

Prints the median wall time of ``stepframe plugins`` (target: at most 0.15 s) with every
installed plugin, without gcp (``STEPFRAME_DISABLE_PLUGINS=gcp``) and with the core's own
plugins only, taking turns run by run, so gcp's share is the difference; then, in fresh
processes, the median time of each phase of loading: importing the CLI, the plugin
manager, the entry point scan, ``packaging`` (the core's version-skew check imports it
once any plugin distribution is found), each plugin's module, and the rest of
``load_plugins`` (registration); and whether loading the plugins imported any google
module (exits 1 if it did).

The packages' bytecode is compiled first and ``PYTHONDONTWRITEBYTECODE`` is dropped from
the children's environment: ``pip install`` compiles a wheel's modules, while an editable
install run with that variable set compiles every module from source at each start (it
added about 0.03 s here).
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile

from _support import clean_env, stepframe_command, timing_line

TARGET_SECONDS = 0.15
PLUGIN_PACKAGES = (
    "stepframe",
    "stepframe_docker",
    "stepframe_aws",
    "stepframe_gcp",
    "stepframe_azure",
)

PHASES = r"""
import json, sys, time
marks = [("start", time.perf_counter())]
def mark(name):
    marks.append((name, time.perf_counter()))
import stepframe._cli.main
mark("import the CLI (stepframe._cli.main)")
import stepframe._plugins.manager as manager
mark("import the plugin manager")
from importlib import metadata
entry_points = list(metadata.entry_points(group="stepframe"))
mark("scan the entry points")
import packaging.requirements, packaging.specifiers, packaging.utils, packaging.version
mark("import packaging (version-skew check)")
import importlib
for entry_point in entry_points:
    module = entry_point.value.split(":")[0]
    if module.split(".")[0] != "stepframe":
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        mark(f"import {module}")
plugins = manager.load_plugins()
mark("load_plugins() once the modules are imported")
google = sorted(name for name in sys.modules if name.split(".")[0] in ("google", "googleapiclient"))
print(json.dumps({"phases": [(n, b - a) for (_, a), (n, b) in zip(marks, marks[1:])],
                  "google": google}))
"""


def _children_env() -> dict[str, str]:
    env = clean_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _compile_bytecode() -> None:
    for package in PLUGIN_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            for folder in spec.submodule_search_locations:
                compileall.compile_dir(folder, quiet=1)


def _timed_interleaved(
    args: list[str], runs: int, cwd: str, variants: dict[str, dict[str, str]]
) -> dict[str, list[float]]:
    """Wall times of ``args`` under each variant's environment, the variants taking turns
    run by run (a machine whose load drifts weighs on each alike); the first round warms
    the file system cache and is not counted."""
    import time

    times: dict[str, list[float]] = {label: [] for label in variants}
    for round_ in range(runs + 1):
        for label, extra in variants.items():
            start = time.perf_counter()
            subprocess.run(
                args,
                cwd=cwd,
                env={**_children_env(), **extra},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=True,
            )
            if round_:
                times[label].append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="timed runs per variant")
    options = parser.parse_args()
    if importlib.util.find_spec("stepframe_gcp") is None:
        print("gcp_plugins_startup: stepframe-gcp is not installed; pip install ./stepframe-gcp")
        return 2
    _compile_bytecode()
    command = [*stepframe_command(), "plugins"]
    print(f"stepframe plugins  (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    variants = {
        "every plugin": {},
        "without gcp": {"STEPFRAME_DISABLE_PLUGINS": "gcp"},
        "core's only": {"STEPFRAME_DISABLE_PLUGINS": "docker,aws,gcp,azure"},
    }
    with tempfile.TemporaryDirectory(prefix="stepframe-bench-") as project:
        times = _timed_interleaved(command, options.runs, project, variants)
    medians = {label: statistics.median(found) for label, found in times.items()}
    for label, found in times.items():
        print("  " + timing_line(f"{label:<13}", found, TARGET_SECONDS))
    share = medians["every plugin"] - medians["without gcp"]
    print(f"  gcp's share (every plugin - without gcp): {share * 1000:+.1f} ms")

    runs: list[dict[str, float]] = []
    google: list[str] = []
    for _ in range(max(options.runs // 2, 5)):
        done = subprocess.run(
            [sys.executable, "-c", PHASES],
            env=_children_env(),
            capture_output=True,
            text=True,
            check=True,
        )
        answer = json.loads(done.stdout.splitlines()[-1])
        runs.append(dict(answer["phases"]))
        google = answer["google"]
    print(f"phases of loading, median of {len(runs)} fresh processes (the interpreter's own")
    print("start and `click` running the command come on top):")
    for name in runs[0]:
        print(f"  {statistics.median(run[name] for run in runs) * 1000:6.1f} ms  {name}")
    print(f"google modules imported by loading the plugins: {', '.join(google) or 'none'}")
    return 1 if google else 0


if __name__ == "__main__":
    sys.exit(main())
