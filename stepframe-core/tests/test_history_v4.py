"""Schema version 4 of the run history (issue 12's review): each step's DAG edges, and
whether a ledger row's attempt timed out.

A version 3 file, as the code of that version wrote it (``data/history-v3.sql``), is
upgraded in place and keeps its runs; a run records its edges, and ``stepframe runs show``
lists each step's upstream steps without importing the pipeline.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

from stepframe._history.database import SCHEMA_VERSION, RunHistory, StepEdge

V3_DUMP = Path(__file__).parent / "data" / "history-v3.sql"
V3_RUN = "20261206-084936-3d0c58"

DIAMOND = """
from stepframe import pipeline, step


@step
def load() -> int:
    return 3


@step
def double(x: int) -> int:
    return x * 2


@step
def square(x: int) -> int:
    return x * x


@step
def join(left: int, right: int) -> int:
    return left + right


@pipeline
def diamond():
    loaded = load()
    join(double(loaded), right=square(loaded))
"""


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def test_a_version_3_history_is_upgraded_in_place_and_keeps_its_runs(project, cli) -> None:
    project.state_dir.mkdir()
    with sqlite3.connect(project.database_path) as conn:
        conn.executescript(V3_DUMP.read_text())
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    conn.close()

    with RunHistory(project.database_path) as history:
        steps = history.get_steps(V3_RUN)
        jobs = history.list_jobs(run_id=V3_RUN)
        assert [(s.step, s.status, s.upstream) for s in steps] == [
            ("first", "succeeded", None),
            ("middle", "succeeded", None),
            ("last", "succeeded", None),
        ]
        assert [(j.step, j.state, j.timed_out_after) for j in jobs] == [
            ("first", "succeeded", None),
            ("middle", "succeeded", None),
            ("last", "succeeded", None),
        ]
        assert len(history.get_artifacts(V3_RUN)) == 3
        # The new columns take writes.
        history.set_step(V3_RUN, "last", upstream=[StepEdge("middle", "output", "y")])
        history.update_job_state(jobs[1].id, "cancelled", timed_out_after=2.5)
        assert history.get_steps(V3_RUN)[2].upstream == (StepEdge("middle", "output", "y"),)
        assert history.get_job(jobs[1].id).timed_out_after == 2.5
    with sqlite3.connect(project.database_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    conn.close()

    shown = ok(cli("runs", "show", V3_RUN))
    assert "upstream\n  STEP  INPUT  FROM\n  last  y      middle.output\n" in shown
    assert "cancelled (timed out)" in ok(cli("jobs", "list"))


def test_a_run_records_its_edges_and_runs_show_lists_each_step_s_upstream(project, cli) -> None:
    ok(cli("run", str(project.write(DIAMOND, name="diamond"))))
    with RunHistory(project.database_path) as history:
        (run,) = history.list_runs()
        upstream = {s.step: s.upstream_steps for s in history.get_steps(run.run_id)}
        edges = {s.step: s.upstream for s in history.get_steps(run.run_id)}
    assert upstream == {
        "load": (),
        "double": ("load",),
        "square": ("load",),
        "join": ("double", "square"),
    }
    assert edges["join"] == (
        StepEdge("double", "output", "left"),
        StepEdge("square", "output", "right"),
    )

    shown = ok(cli("runs", "show", run.run_id))

    section = shown.split("\nupstream\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split() for line in section] == [
        ["STEP", "INPUT", "FROM"],
        ["double", "x", "load.output"],
        ["square", "x", "load.output"],
        ["join", "left", "double.output"],
        ["join", "right", "square.output"],
    ]
    as_json = json.loads(ok(cli("runs", "show", run.run_id, "--json")))
    (join,) = [s for s in as_json["steps"] if s["step"] == "join"]
    assert join["upstream"][1] == {"from_step": "square", "output": "output", "input": "right"}
