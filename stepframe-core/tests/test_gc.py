"""``stepframe runs delete|prune`` and ``stepframe gc`` on real runs and the local store.

What must never go: anything a kept run references (its own outputs, or those it took
from the cache), anything of a run that is going, and what a run just starting stored.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path

from stepframe import Runs
from stepframe._cli.runs import _size as size_text

PIPELINE = """
    from stepframe import pipeline, step

    @step
    def load(rows: int = 6) -> list[int]:
        return list(range(rows))

    @step(operator="local")
    def total(xs: list[int]) -> int:
        print("adding", len(xs))
        return sum(xs)

    @pipeline
    def numbers(rows: int = 6) -> None:
        total(load(rows))
"""

GATED = """
    import os, time
    from pathlib import Path
    from stepframe import pipeline, step

    @step
    def gate() -> int:
        gate = Path(os.environ["GATE"])
        Path(str(gate) + ".waiting").touch()
        while not gate.exists():  # the test opens the gate
            time.sleep(0.02)
        return 1

    @pipeline
    def gated() -> None:
        gate()
"""


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.stdout


def files_of(project, run_id: str) -> set[Path]:
    folder = project.state_dir / "artifacts" / "runs" / run_id
    return {p for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


def run_ids(project) -> list[str]:
    with sqlite3.connect(project.database_path) as conn:
        return [r[0] for r in conn.execute("SELECT run_id FROM runs ORDER BY started_at")]


def job_logs(project) -> set[str]:
    return {p.name for p in (project.state_dir / "jobs").glob("*.log")}


def test_deleting_a_run_keeps_what_a_later_run_took_from_the_cache(project, run, cli) -> None:
    pipeline = project.load(PIPELINE)
    first = run(pipeline)
    second = run(pipeline)  # every step from the cache: it references first's outputs
    assert {o.status for o in second.steps.values()} == {"cached"}
    referenced = {
        Path(a.uri.removeprefix("file://"))
        for a in Runs(project.root).get(second.run_id).step("total").artifacts.values()
    }
    first_logs = {n for n in job_logs(project) if first.run_id in n}
    assert first_logs
    assert (project.state_dir / "logs" / first.run_id).is_dir()  # the step logs

    out = ok(cli("runs", "delete", first.run_id[-6:]))

    assert f"deleted run {first.run_id} (numbers, succeeded)" in out
    assert run_ids(project) == [second.run_id]
    left = files_of(project, first.run_id)
    assert left and referenced <= left  # the outputs the second run uses stay...
    assert len(left) == 2  # ...and nothing else of the first run: manifests and inputs went
    assert not {n for n in job_logs(project) if first.run_id in n}
    assert not (project.state_dir / "logs" / first.run_id).exists()
    assert Runs(project.root).get(second.run_id).step("total").output() == 15

    # Once no run references them, they go too.
    ok(cli("runs", "delete", second.run_id))
    out = ok(cli("gc", "--yes", "--min-age", "0s"))
    assert "deleted 2 object(s)" in out
    assert not files_of(project, first.run_id)


def test_gc_is_a_dry_run_unless_told_and_prints_counts_and_bytes(project, run, cli) -> None:
    kept = run(project.load(PIPELINE))
    gone = run(project.load(PIPELINE.replace("rows: int = 6", "rows: int = 7")))
    with sqlite3.connect(project.database_path) as conn:  # a run whose record went
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("DELETE FROM runs WHERE run_id = ?", (gone.run_id,))
    garbage = files_of(project, gone.run_id)
    size = sum(p.stat().st_size for p in garbage)
    before = {p: p.stat().st_mtime_ns for p in files_of(project, kept.run_id)}

    out = ok(cli("gc", "--min-age", "0s"))
    assert f"would delete {len(garbage)} object(s), {size_text(size)}" in out
    assert "dry run: nothing was deleted" in out
    assert files_of(project, gone.run_id) == garbage

    # The default min age keeps what a run started within the hour left: it may be
    # starting now, its inputs stored before its record.
    out = ok(cli("gc", "--yes"))
    assert f"deleted 0 object(s), 0 B; kept {len(garbage)} of runs with no record" in out
    assert files_of(project, gone.run_id) == garbage

    lost_logs = {p for p in (project.state_dir / "jobs").iterdir() if gone.run_id in p.name}
    lost_logs |= {p for p in (project.state_dir / "logs" / gone.run_id).rglob("*") if p.is_file()}
    assert lost_logs  # the local job's log and exit status, the steps' logs

    out = ok(cli("gc", "--yes", "--min-age", "0s"))
    assert f"deleted {len(garbage)} object(s), {size_text(size)}" in out
    assert f"logs: deleted {len(lost_logs)} file(s)" in out
    assert not any(p.exists() for p in lost_logs)
    assert not (project.state_dir / "logs" / gone.run_id).exists()
    assert not files_of(project, gone.run_id)
    assert {p: p.stat().st_mtime_ns for p in files_of(project, kept.run_id)} == before
    assert Runs(project.root).get(kept.run_id).step("total").output() == 15


def test_prune_keeps_the_newest_and_refuses_bad_durations(project, run, cli) -> None:
    pipeline = project.load(PIPELINE)
    runs = [run(pipeline, use_cache=False).run_id for _ in range(3)]

    out = ok(cli("runs", "prune", "--keep", "1", "--dry-run"))
    assert out.count("would delete run") == 2
    assert run_ids(project) == runs

    ok(cli("runs", "prune", "--older-than", "30d"))
    assert run_ids(project) == runs  # nothing is that old

    out = ok(cli("runs", "prune", "--keep", "1"))
    assert run_ids(project) == runs[-1:]
    assert not files_of(project, runs[0]) and not files_of(project, runs[1])
    assert files_of(project, runs[2])

    for args, words in (
        (("--older-than", "a while"), "--older-than 'a while' is not a duration"),
        ((), "say which runs to prune: --keep N or --older-than 30d"),
    ):
        done = cli("runs", "prune", *args)
        assert done.returncode == 2
        assert done.stderr.strip().startswith("stepframe: error: ")
        assert words in done.stderr
        assert "Traceback" not in done.stderr


def test_safe_while_another_run_is_going(project, run, cli, cli_popen, tmp_path) -> None:
    old = run(project.load(PIPELINE))
    gate = tmp_path / "gate"
    path = project.write(GATED)
    going = cli_popen("run", str(path), env={"GATE": str(gate)})
    waiting = Path(str(gate) + ".waiting")
    deadline = time.monotonic() + 60
    while not waiting.exists():  # until the run is recorded and in its step
        assert going.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    (running_id,) = set(run_ids(project)) - {old.run_id}
    # A run that is only starting: its inputs are stored, its record not written yet.
    starting = project.state_dir / "artifacts" / "runs" / "29991231-235959-abcdef" / "x"
    starting.parent.mkdir(parents=True)
    starting.write_text("inputs")

    done = cli("runs", "delete", running_id)
    assert done.returncode == 2
    assert f"run {running_id} is still running" in done.stderr

    out = ok(cli("runs", "delete", old.run_id))
    # The old run's cacheable outputs stay while a run goes: it may have just found them.
    assert "kept 2 cacheable output(s) while another run is going" in out
    assert len(files_of(project, old.run_id)) == 2
    running_files = files_of(project, running_id)

    # gc while the run goes: the deleted run's outputs can no longer be found in the
    # cache, so they go; the running run's objects and the starting run's stay.
    out = ok(cli("gc", "--yes", "--min-age", "0s"))
    assert "deleted 2 object(s)" in out
    assert "kept 1 of runs with no record that may be starting" in out
    assert not files_of(project, old.run_id)
    assert starting.exists()
    assert files_of(project, running_id) == running_files

    gate.touch()
    assert going.wait(timeout=60) == 0
    ok(cli("gc", "--yes", "--min-age", "0s"))
    assert starting.exists()  # it "started" after the gc: never taken
    assert json.loads(ok(cli("runs", "list", "--json")))[0]["status"] == "succeeded"
