"""``run --resume`` reuses what the interrupted run finished only when it is intact.

A step the interrupted run finished, whose output was corrupted since, runs again: its
succeeded job is not taken up in place of running it (that would hand the same corrupt
output on).  Runs go through the ``stepframe`` command; steps count their executions.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

PIPELINE = """
import os
from pathlib import Path

from stepframe import pipeline, step

HERE = Path(__file__).resolve().parent


def count(name):
    with open(HERE / f"{name}.runs", "a") as runs:
        runs.write(f"{os.getpid()}\\n")


@step
def produce() -> str:
    count("produce")
    return "a value worth keeping"


@step
def consume(text: str) -> str:
    count("consume")
    if (HERE / "fail-consume").exists():
        raise RuntimeError("consume was told to fail")
    (HERE / "consumed").write_text(text)
    return text.upper()


@pipeline
def chain():
    consume(produce())
"""


def _executions(root: Path, step: str) -> int:
    path = root / f"{step}.runs"
    return len(path.read_text().split()) if path.exists() else 0


def _run_id(out: str) -> str:
    first = next(line for line in out.splitlines() if line.startswith("run "))
    return first.split()[1]


def test_a_finished_step_whose_output_was_corrupted_runs_again_on_resume(project, cli) -> None:
    path = project.write(PIPELINE)
    (project.root / "fail-consume").touch()
    failed: subprocess.CompletedProcess[str] = cli("run", str(path))
    assert failed.returncode != 0, failed.stdout
    (artifact,) = [
        p for p in (project.state_dir / "artifacts").rglob("output") if "/produce/" in str(p)
    ]
    data = artifact.read_bytes()
    artifact.write_bytes(bytes([data[0] ^ 0x01]) + data[1:])
    (project.root / "fail-consume").unlink()

    resumed = cli("run", "--resume", _run_id(failed.stdout))
    assert resumed.returncode == 0, f"{resumed.stdout}\n{resumed.stderr}"
    assert f"not reusing output 'output' at {artifact.as_uri()}: sha256" in resumed.stdout
    assert _executions(project.root, "produce") == 2
    assert (project.root / "consumed").read_text() == "a value worth keeping"
