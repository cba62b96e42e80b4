"""The ``azureml`` operator's job client, two candidates: install size and import time.

    python bench/azureml_job_client.py [--runs 7]

For each candidate (azure-mgmt-machinelearningservices 2.0.0b2, the management SDK
generated from AzureML's REST specification, and azure-ai-ml 1.35.2, the AzureML v2 SDK)
makes a fresh virtual environment, installs the candidate there with pip, and prints what
it added to site-packages (distributions and MiB on disk) and the median wall time of
importing what the operator would use, less a bare ``python -c pass``.  Figures, not a
test; README.md's "Dependencies" section quotes them.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CANDIDATES = {
    "azure-mgmt-machinelearningservices==2.0.0b2": (
        "from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient, models"
    ),
    "azure-ai-ml==1.35.2": "from azure.ai.ml import MLClient, command",
}


def site_packages(venv: Path) -> Path:
    return sorted(venv.glob("lib/python3*/site-packages"))[0]


def size_and_distributions(folder: Path) -> tuple[int, set[str]]:
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    names = {path.name.split("-")[0].lower() for path in folder.glob("*.dist-info")}
    return size, names


def median_seconds(python: Path, code: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([str(python), "-c", code], check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(requirement: str, code: str, runs: int, root: Path) -> None:
    venv = root / requirement.split("==")[0]
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    before_size, before = size_and_distributions(site_packages(venv))
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", requirement],
        check=True,
    )
    after_size, after = size_and_distributions(site_packages(venv))
    added = sorted(after - before)
    bare = median_seconds(python, "pass", runs)
    imported = median_seconds(python, code, runs)
    print(
        f"{requirement}: {len(added)} distributions, "
        f"{(after_size - before_size) / 2**20:.1f} MiB in site-packages; "
        f"`{code}` {imported - bare:.3f} s (median of {runs}, bare interpreter {bare:.3f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="azureml-client-") as folder:
        for requirement, code in CANDIDATES.items():
            measure(requirement, code, args.runs, Path(folder))


if __name__ == "__main__":
    main()
