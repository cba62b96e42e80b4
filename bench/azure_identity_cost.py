"""What azure-identity costs the ``azure`` connector: install size and import time.

    python bench/azure_identity_cost.py [--runs 15] [--version 1.27.0]

Makes a fresh virtual environment, measures its site-packages, installs azure-identity
there with pip and prints what it added (distributions and MiB on disk), then the median
wall time of ``python -c "import azure.identity"`` in that environment less a bare
``python -c pass``, and ``python -X importtime``'s cumulative figure for
``azure.identity``.  The connector imports it inside its functions only, so loading the
plugin never pays this; the first token request does.  Figures, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if not found:
        sys.exit(f"bench: no site-packages under {venv}")
    return found[0]


def tree_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def distributions(folder: Path) -> set[str]:
    return {path.name.split("-")[0].lower() for path in folder.glob("*.dist-info")}


def median_seconds(python: Path, code: str, runs: int) -> float:
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        subprocess.run([str(python), "-c", code], check=True)
        if i:  # the first run warms the file system cache
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def importtime_ms(python: Path, module: str) -> float:
    result = subprocess.run(
        [str(python), "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in result.stderr.splitlines():
        parts = [part.strip() for part in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1]) / 1000
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--version", default="1.27.0")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-azure-identity-") as folder:
        venv = Path(folder) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python = venv / "bin" / "python"
        packages = site_packages(venv)
        before_bytes, before = tree_bytes(packages), distributions(packages)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
             f"azure-identity=={options.version}"],
            check=True,
        )  # fmt: skip
        added = sorted(distributions(packages) - before)
        size = (tree_bytes(packages) - before_bytes) / 2**20
        bare = median_seconds(python, "pass", options.runs)
        loaded = median_seconds(python, "import azure.identity", options.runs)
        print(f"azure-identity {options.version}: {len(added)} distributions, {size:.1f} MiB")
        print(f"  added: {', '.join(added)}")
        print(
            f"import azure.identity: median {loaded - bare:.3f} s over a bare interpreter "
            f"({loaded:.3f} s - {bare:.3f} s, {options.runs} runs); -X importtime cumulative "
            f"{importtime_ms(python, 'azure.identity'):.0f} ms"
        )


if __name__ == "__main__":
    main()
