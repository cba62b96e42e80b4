"""What a real run leaves in the run history, two runs at once in one project, and
``stepframe runs`` showing them."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from stepframe._artifacts.local import path_from_file_uri

RECORDED = """
from pathlib import Path

import numpy as np

from stepframe import pipeline, step


@step
def numbers(n: int) -> list[int]:
    return list(range(n))


@step(operator="local")
def blob(values: list[int]) -> bytes:
    return bytes(values)


@step
def table(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.int64).reshape(2, -1)


@step(outputs=["report", "size"])
def write_report(data: bytes, matrix: np.ndarray):
    path = Path("report.txt")
    path.write_text(f"{len(data)} bytes, shape {matrix.shape}")
    return path, len(data)


@pipeline
def recorded(n: int = 6):
    values = numbers(n)
    write_report(blob(values), table(values))
"""


def test_a_run_records_its_steps_jobs_and_artifacts(project, run) -> None:
    pytest.importorskip("numpy")
    result = run(project.load(RECORDED))
    with project.history() as history:
        record = history.get_run(result.run_id)
        steps = {s.step: s for s in history.get_steps(result.run_id)}
        artifacts = {(a.step, a.output): a for a in history.get_artifacts(result.run_id)}
        jobs = {j.step: j for j in history.list_jobs(run_id=result.run_id)}

    assert record.pipeline == "recorded" and record.status == "succeeded"
    assert record.pid == os.getpid()
    assert record.started_at <= record.ended_at
    assert record.params == {"n": 6}  # a JSON value stays typed

    assert list(steps) == ["numbers", "blob", "table", "write_report"]
    for name, row in steps.items():
        assert row.status == "succeeded"
        assert row.started_at is not None and row.ended_at is not None
        assert row.started_at <= row.ended_at
        assert row.job_id == jobs[name].job_id
        assert jobs[name].state == "succeeded"
    assert (steps["blob"].operator, steps["blob"].flavor) == ("local", "local")
    assert (steps["table"].operator, steps["table"].flavor) == ("inprocess", "inprocess")
    assert steps["blob"].job_id.isdigit()  # a process id

    assert set(artifacts) == {
        ("numbers", "output"),
        ("blob", "output"),
        ("table", "output"),
        ("write_report", "report"),
        ("write_report", "size"),
    }
    materializers = {key: a.materializer for key, a in artifacts.items()}
    assert materializers == {
        ("numbers", "output"): "json",
        ("blob", "output"): "bytes",
        ("table", "output"): "numpy",
        ("write_report", "report"): "path",
        ("write_report", "size"): "json",
    }
    for artifact in artifacts.values():
        stored = path_from_file_uri(artifact.uri).read_bytes()
        assert artifact.size == len(stored)
        assert artifact.sha256 == hashlib.sha256(stored).hexdigest()
        assert artifact.uri == result.steps[artifact.step].outputs[artifact.output].uri
    assert path_from_file_uri(artifacts[("blob", "output")].uri).read_bytes() == bytes(range(6))


FANOUT = """
import time

from stepframe import pipeline, step


@step
def seed(label: str) -> str:
    return label


@step
def work(label: str, i: int) -> str:
    time.sleep(0.05)
    return f"{label}-{i}"


@step(operator="local")
def work_elsewhere(label: str, i: int) -> str:
    return f"{label}-far-{i}"


@step
def gather(a: str, b: str, c: str, d: str, e: str, f: str) -> str:
    return ",".join([a, b, c, d, e, f])


@pipeline
def fanout(label: str = "run"):
    base = seed(label)
    parts = [work(base, i) for i in range(4)] + [work_elsewhere(base, i) for i in range(2)]
    gather(*parts)
"""


def test_two_concurrent_runs_in_one_project_are_both_recorded(project, cli_popen, cli) -> None:
    path = project.write(FANOUT)
    # Started together on a fresh project: both create the database and the store.
    first = cli_popen("run", f"{path}", "--max-parallel", "8", "--no-cache")
    second = cli_popen("run", f"{path}", "--max-parallel", "8", "--no-cache")
    outputs = [process.communicate(timeout=60)[0] for process in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    for output in outputs:
        assert "succeeded: 8 succeeded" in output
        assert "database is locked" not in output

    with project.history() as history:
        runs = history.list_runs()
        assert len(runs) == 2
        assert {r.status for r in runs} == {"succeeded"}
        assert {r.pid for r in runs} == {first.pid, second.pid}
        for record in runs:
            steps = history.get_steps(record.run_id)
            assert len(steps) == 8 and {s.status for s in steps} == {"succeeded"}
            assert len(history.get_artifacts(record.run_id)) == 8
            assert len(history.list_jobs(run_id=record.run_id)) == 8
    run_ids = sorted(r.run_id for r in runs)

    listed = cli("runs", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["RUN", "ID", "PIPELINE", "STATUS", "STARTED", "DURATION"]
    rows = [line.split() for line in lines[1:]]
    assert sorted(row[0] for row in rows) == run_ids
    assert all(row[1:3] == ["fanout", "succeeded"] for row in rows)

    as_json = json.loads(cli("runs", "list", "--json").stdout)
    assert sorted(r["run_id"] for r in as_json) == run_ids

    shown = cli("runs", "show", run_ids[0])
    assert shown.returncode == 0, shown.stderr
    assert run_ids[0] in shown.stdout and "fanout" in shown.stdout
    for name in ("seed", "work_4", "work_elsewhere_2", "gather"):
        assert f"  {name} " in shown.stdout
    assert "gather.output" in shown.stdout and "json" in shown.stdout

    document = json.loads(cli("runs", "show", run_ids[1], "--json").stdout)
    assert document["run"]["run_id"] == run_ids[1]
    assert {s["step"] for s in document["steps"]} == {
        "seed",
        "work",
        "work_2",
        "work_3",
        "work_4",
        "work_elsewhere",
        "work_elsewhere_2",
        "gather",
    }
    assert all(len(a["sha256"]) == 64 and a["size"] > 0 for a in document["artifacts"])


def test_runs_show_names_a_failed_step_and_its_error(project, run, cli) -> None:
    pipe = project.load(
        """
        from stepframe import pipeline, step

        @step
        def fails() -> int:
            raise KeyError("missing column 'price'")

        @pipeline
        def broken():
            fails()
        """
    )
    result = run(pipe, raise_on_failure=False)
    shown = cli("runs", "show", result.run_id)
    assert shown.returncode == 0, shown.stderr
    assert "failed" in shown.stdout
    assert "fails" in shown.stdout and "missing column" in shown.stdout
